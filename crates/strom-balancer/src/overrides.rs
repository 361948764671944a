//! The admin API's changes and the state file that keeps them, applied
//! over the config file. No I/O: [`crate::admin`] reads and writes the file.
//!
//! The state is a list of entries, one per server name ([`Entry`]). Each
//! set field of an entry overrides the config file's value for that server;
//! an entry for a name the config file does not have adds a server (it then
//! needs `url` and `max_clients`); `removed` hides a config server. The
//! flags `enabled` and `draining` exist only here.
//!
//! Invariants:
//! - Validation is `strom check`'s: the config with the state applied is
//!   rendered to config text and parsed again ([`validate`]), so names,
//!   URLs, limits, lists and cross-checks (`countries` without `geoip`) are
//!   judged by the same code with the same messages. One check comes first:
//!   removing a server that a `channel` block names is refused with a
//!   message that says which channel and what to do ([`named_by`]), not the
//!   parser's "names unknown server", which reads as if the channel were
//!   wrong.
//! - [`merge`] never fails: entries that no longer fit the config file
//!   (after an edit and a reload) are skipped one by one and reported, the
//!   rest applies.
//! - A change ([`change`]) starts from the entries that applied, and is
//!   accepted only if all of them still apply with it ([`accepted`]);
//!   entries skipped at a reload are thereby dropped at the next change.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use strom_config::{BalancerConfig, ServerConfig};

/// Version written in the state file.
pub const STATE_VERSION: u32 = 1;

/// The state file: what the admin API changed, by server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDoc {
    /// Format version; only [`STATE_VERSION`] is read.
    pub version: u32,
    /// One entry per server name, in the order they were first changed.
    #[serde(default)]
    pub servers: Vec<Entry>,
}

impl Default for StateDoc {
    fn default() -> Self {
        StateDoc {
            version: STATE_VERSION,
            servers: Vec::new(),
        }
    }
}

/// What the admin API set for one server; unset fields keep the config
/// file's value (or the default, for an added server).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The server's name.
    pub name: String,
    /// The config file's server of this name is removed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub removed: bool,
    /// Where the balancer reads the server (added servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How it is read: `strom`, `flussonic`, `wowza`, `nimble` or
    /// `generic` (added servers; default `strom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Where viewers are redirected (added servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// Capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clients: Option<u64>,
    /// Preferred when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<bool>,
    /// Client networks, as written (checked as `networks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    /// Client countries, as written (checked as `countries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub countries: Option<Vec<String>>,
    /// Off: the server takes no viewers at all (default on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// On: the server takes no new viewers; those there stay (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining: Option<bool>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Entry {
    /// Whether the entry changes nothing.
    fn is_empty(&self) -> bool {
        *self
            == Entry {
                name: self.name.clone(),
                ..Entry::default()
            }
    }
}

/// `POST /api/v1/servers`: a whole new server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewServer {
    /// Its name (as a `server` block's).
    pub name: String,
    /// As `url`.
    pub url: String,
    /// As `max_clients`.
    pub max_clients: u64,
    /// As `kind` (default `strom`). A kind without a stream list API is
    /// reachable only through the config file's `channel` blocks.
    #[serde(default)]
    pub kind: Option<String>,
    /// As `public`.
    #[serde(default)]
    pub public: Option<String>,
    /// As `monitoring` (default off).
    #[serde(default)]
    pub monitoring: Option<bool>,
    /// As `networks`.
    #[serde(default)]
    pub networks: Option<Vec<String>>,
    /// As `countries`.
    #[serde(default)]
    pub countries: Option<Vec<String>>,
    /// Default on.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default off.
    #[serde(default)]
    pub draining: Option<bool>,
}

/// `PATCH /api/v1/servers/NAME`: the fields to change. A field given as
/// `null` goes back to the config file's value (the default for an added
/// server); an absent field is left as it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    /// As `max_clients`.
    #[serde(default, deserialize_with = "present")]
    pub max_clients: Option<Option<u64>>,
    /// As `monitoring`.
    #[serde(default, deserialize_with = "present")]
    pub monitoring: Option<Option<bool>>,
    /// As `networks`.
    #[serde(default, deserialize_with = "present")]
    pub networks: Option<Option<Vec<String>>>,
    /// As `countries`.
    #[serde(default, deserialize_with = "present")]
    pub countries: Option<Option<Vec<String>>>,
    /// Takes viewers at all.
    #[serde(default, deserialize_with = "present")]
    pub enabled: Option<Option<bool>>,
    /// Takes no new viewers.
    #[serde(default, deserialize_with = "present")]
    pub draining: Option<Option<bool>>,
}

/// A field that is present, `null` or not: `Some(None)` for `null`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// One change through the admin API.
#[derive(Debug, Clone)]
pub enum Change {
    /// Add a server.
    Add(NewServer),
    /// Change some fields of a server.
    Modify(String, Patch),
    /// Remove a server.
    Remove(String),
}

impl Change {
    /// The server it is about.
    pub fn server(&self) -> &str {
        match self {
            Change::Add(n) => &n.name,
            Change::Modify(name, _) | Change::Remove(name) => name,
        }
    }

    /// `add`, `modify` or `remove`, for metrics.
    pub fn action(&self) -> &'static str {
        match self {
            Change::Add(_) => "add",
            Change::Modify(..) => "modify",
            Change::Remove(_) => "remove",
        }
    }
}

/// Why a change was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// No server of that name is in force.
    #[error("no server `{0}`")]
    UnknownServer(String),
    /// A server of that name is already in force.
    #[error("server `{0}` exists")]
    Exists(String),
    /// The request changes nothing.
    #[error("nothing to change")]
    Empty,
    /// The result would not pass `strom check`; its messages.
    #[error("invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The server cannot go: the config still needs it (a channel names it).
    #[error("conflict: {}", .0.join("; "))]
    Conflict(Vec<String>),
}

/// Where a setting in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The config file (as written, or its default).
    Config,
    /// The state file (the admin API).
    State,
    /// Not set anywhere: the default.
    Default,
}

/// How one server in force was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    /// `config` for a server of the config file, `api` for an added one.
    pub origin: &'static str,
    /// Takes viewers at all.
    pub enabled: bool,
    /// Takes no new viewers.
    pub draining: bool,
    /// Where each setting came from, by setting name.
    pub sources: BTreeMap<&'static str, Source>,
}

impl Origin {
    /// Whether routing must give it no new viewers.
    pub fn closed(&self) -> bool {
        self.draining || !self.enabled
    }
}

/// An entry of the state file that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The entry's server.
    pub server: String,
    /// Why, in `strom check`'s words.
    pub problems: Vec<String>,
}

/// The config in force: the config file with the state applied.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Validated: it passed `strom check`'s parser.
    pub config: BalancerConfig,
    /// Per server in force, by name.
    pub origins: HashMap<String, Origin>,
    /// The state entries that were applied, in file order.
    pub applied: StateDoc,
    /// The state entries that were not.
    pub skipped: Vec<Skipped>,
}

/// The settings an entry may carry, as `sources` keys.
const SETTINGS: [&str; 9] = [
    "url",
    "kind",
    "public",
    "max_clients",
    "monitoring",
    "networks",
    "countries",
    "enabled",
    "draining",
];

/// Applies one entry to `servers` without validating the values beyond
/// what the typed config needs (networks are parsed as `networks` is).
fn overlay_one(servers: &mut Vec<ServerConfig>, e: &Entry, in_file: bool) -> Result<(), Vec<String>> {
    let pos = servers.iter().position(|s| s.name == e.name);
    if e.removed {
        if let Some(i) = pos {
            servers.remove(i);
        }
        return Ok(());
    }
    let server = match pos {
        Some(i) => &mut servers[i],
        None => {
            let (Some(url), Some(max)) = (&e.url, e.max_clients) else {
                let why = if in_file {
                    format!(
                        "server `{}` was removed; re-add it with `url` and `max_clients`",
                        e.name
                    )
                } else {
                    format!(
                        "server `{}` is not in the config file, so it needs `url` and `max_clients`",
                        e.name
                    )
                };
                return Err(vec![why]);
            };
            servers.push(ServerConfig::new(e.name.clone(), url.clone(), max));
            let Some(s) = servers.last_mut() else {
                return Err(vec!["internal: no server".into()]);
            };
            s
        }
    };
    if let Some(v) = &e.url {
        server.url = v.clone();
    }
    if let Some(k) = &e.kind {
        server.kind = strom_config::check_server_kind(k).map_err(|m| vec![m])?;
    }
    if let Some(v) = &e.public {
        server.public = Some(v.clone());
    }
    if let Some(v) = e.max_clients {
        server.max_clients = v;
    }
    if let Some(v) = e.monitoring {
        server.monitoring = v;
    }
    if let Some(list) = &e.networks {
        let mut nets = Vec::with_capacity(list.len());
        let mut errors = Vec::new();
        for n in list {
            match strom_config::parse_net(n) {
                Ok(net) if nets.contains(&net) => errors.push(format!("duplicate `{net}` in `networks`")),
                Ok(net) => nets.push(net),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        server.networks = nets;
    }
    if let Some(v) = &e.countries {
        server.countries = v.clone();
    }
    Ok(())
}

/// Passes `cfg` through `strom check`'s parser: the parsed config, or the
/// messages (without positions: they would point into generated text).
pub fn validate(cfg: &BalancerConfig) -> Result<BalancerConfig, Vec<String>> {
    strom_config::parse_balancer("state", &cfg.to_text())
        .map_err(|diags| diags.into_iter().map(|d| d.message).collect())
}

/// "server `s1` is named by channel `news`; remove it from the channel
/// block first", or `None` when no `channel` block of `cfg` names `server`.
pub fn named_by(cfg: &BalancerConfig, server: &str) -> Option<String> {
    let channels: Vec<String> = cfg
        .channels
        .iter()
        .filter(|c| c.servers.iter().any(|s| s == server))
        .map(|c| format!("`{}`", c.name))
        .collect();
    match channels.as_slice() {
        [] => None,
        [one] => Some(format!(
            "server `{server}` is named by channel {one}; remove it from the channel block first"
        )),
        many => Some(format!(
            "server `{server}` is named by channels {}; remove it from those channel blocks first",
            many.join(", ")
        )),
    }
}

/// `base` with `entries` applied and validated.
fn try_apply(base: &BalancerConfig, entries: &[Entry]) -> Result<BalancerConfig, Vec<String>> {
    let mut cfg = base.clone();
    for e in entries {
        if e.removed {
            if let Some(why) = named_by(&cfg, &e.name) {
                return Err(vec![why]);
            }
        }
        overlay_one(&mut cfg.servers, e, base.server(&e.name).is_some())?;
    }
    validate(&cfg)
}

/// The config file with the state applied. Entries that do not apply are
/// skipped, each with its problems; the others apply in order.
pub fn merge(base: &BalancerConfig, doc: &StateDoc) -> Merged {
    let (config, applied, skipped) = match try_apply(base, &doc.servers) {
        Ok(c) => (c, doc.servers.clone(), Vec::new()),
        Err(_) => {
            let mut applied: Vec<Entry> = Vec::new();
            let mut skipped = Vec::new();
            let mut config = base.clone();
            for e in &doc.servers {
                applied.push(e.clone());
                match try_apply(base, &applied) {
                    Ok(c) => config = c,
                    Err(problems) => {
                        applied.pop();
                        skipped.push(Skipped {
                            server: e.name.clone(),
                            problems,
                        });
                    }
                }
            }
            (config, applied, skipped)
        }
    };
    let origins = origins(base, &config, &applied);
    Merged {
        config,
        origins,
        applied: StateDoc {
            version: STATE_VERSION,
            servers: applied,
        },
        skipped,
    }
}

/// Origin and setting sources of every server in force.
fn origins(base: &BalancerConfig, cfg: &BalancerConfig, entries: &[Entry]) -> HashMap<String, Origin> {
    cfg.servers
        .iter()
        .map(|s| {
            let entry = entries.iter().find(|e| e.name == s.name);
            let in_file = base.server(&s.name).is_some();
            let set = |field: &str| {
                entry.is_some_and(|e| match field {
                    "url" => e.url.is_some(),
                    "kind" => e.kind.is_some(),
                    "public" => e.public.is_some(),
                    "max_clients" => e.max_clients.is_some(),
                    "monitoring" => e.monitoring.is_some(),
                    "networks" => e.networks.is_some(),
                    "countries" => e.countries.is_some(),
                    "enabled" => e.enabled.is_some(),
                    _ => e.draining.is_some(),
                })
            };
            let sources = SETTINGS
                .iter()
                .map(|&field| {
                    let flag = matches!(field, "enabled" | "draining");
                    let source = if set(field) {
                        Source::State
                    } else if in_file && !flag {
                        Source::Config
                    } else {
                        Source::Default
                    };
                    (field, source)
                })
                .collect();
            let origin = Origin {
                origin: if in_file { "config" } else { "api" },
                enabled: entry.and_then(|e| e.enabled).unwrap_or(true),
                draining: entry.and_then(|e| e.draining).unwrap_or(false),
                sources,
            };
            (s.name.clone(), origin)
        })
        .collect()
}

/// The state after `change`, given the state `doc` in force over `base`
/// (`doc` holds only entries that apply: [`Merged::applied`]). The caller
/// then merges it and checks the result with [`accepted`].
pub fn change(
    base: &BalancerConfig,
    doc: &StateDoc,
    in_force: &BalancerConfig,
    ch: &Change,
) -> Result<StateDoc, ChangeError> {
    let mut out = doc.clone();
    let name = ch.server();
    let exists = in_force.server(name).is_some();
    let in_file = base.server(name).is_some();
    let at = out.servers.iter().position(|e| e.name == name);
    match ch {
        Change::Add(n) => {
            if exists {
                return Err(ChangeError::Exists(name.to_string()));
            }
            // A whole definition: nothing of a removed config server's
            // settings comes back.
            let entry = Entry {
                name: n.name.clone(),
                removed: false,
                url: Some(n.url.clone()),
                kind: n.kind.clone(),
                public: n.public.clone(),
                max_clients: Some(n.max_clients),
                monitoring: Some(n.monitoring.unwrap_or(false)),
                networks: Some(n.networks.clone().unwrap_or_default()),
                countries: Some(n.countries.clone().unwrap_or_default()),
                enabled: n.enabled,
                draining: n.draining,
            };
            match at {
                Some(i) => out.servers[i] = entry,
                None => out.servers.push(entry),
            }
        }
        Change::Modify(_, p) => {
            if !exists {
                return Err(ChangeError::UnknownServer(name.to_string()));
            }
            if p.max_clients.is_none()
                && p.monitoring.is_none()
                && p.networks.is_none()
                && p.countries.is_none()
                && p.enabled.is_none()
                && p.draining.is_none()
            {
                return Err(ChangeError::Empty);
            }
            let i = match at {
                Some(i) => i,
                None => {
                    out.servers.push(Entry {
                        name: name.to_string(),
                        ..Entry::default()
                    });
                    out.servers.len() - 1
                }
            };
            let e = &mut out.servers[i];
            if let Some(v) = &p.max_clients {
                e.max_clients = *v;
            }
            if let Some(v) = &p.monitoring {
                e.monitoring = *v;
            }
            if let Some(v) = &p.networks {
                e.networks.clone_from(v);
            }
            if let Some(v) = &p.countries {
                e.countries.clone_from(v);
            }
            if let Some(v) = &p.enabled {
                e.enabled = *v;
            }
            if let Some(v) = &p.draining {
                e.draining = *v;
            }
            if e.is_empty() && in_file {
                out.servers.remove(i);
            }
        }
        Change::Remove(_) => {
            if !exists {
                return Err(ChangeError::UnknownServer(name.to_string()));
            }
            match (in_file, at) {
                (true, Some(i)) => {
                    out.servers[i] = Entry {
                        name: name.to_string(),
                        removed: true,
                        ..Entry::default()
                    }
                }
                (true, None) => out.servers.push(Entry {
                    name: name.to_string(),
                    removed: true,
                    ..Entry::default()
                }),
                (false, Some(i)) => {
                    out.servers.remove(i);
                }
                (false, None) => {}
            }
        }
    }
    Ok(out)
}

/// Whether `after`, the merge of the state [`change`] returned, takes
/// `ch`: every entry applied (the others all applied before the change).
/// Returns the refusal otherwise.
pub fn accepted(after: &Merged, ch: &Change) -> Result<(), ChangeError> {
    let problems: Vec<String> = after.skipped.iter().flat_map(|s| s.problems.iter().cloned()).collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(match ch {
        Change::Remove(_) => ChangeError::Conflict(problems),
        _ => ChangeError::Invalid(problems),
    })
}

#[cfg(test)]
mod tests;
