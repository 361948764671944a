//! Checker for balancer files: directive tree → typed [`BalancerConfig`].
//!
//! Same order and error style as the node checker in [`crate::check`]:
//! known in this block → block or `;` → argument count → not a duplicate →
//! values, and errors point at the offending token. What spans the whole
//! file is checked after it has been read, so the order of blocks does not
//! matter: a channel may name a server defined below it. Likewise what
//! depends on a server's `kind` (a `generic` server needs `load`, only kinds
//! with a list API take `stream_list api`, `match_label` needs a Prometheus
//! load) is checked once its block is read, whatever the order inside it;
//! a server no viewer can reach is a warning, not an error.
//!
//! Two more warnings describe the file as it will run, not as it is
//! written: `edit_auth` without `state_file` (or the reverse) leaves the
//! admin API's changes off, and a `geoip` file missing on this machine
//! (`strom balancer` refuses to start without it). The latter is the only
//! check that looks at the file system, and only a warning, since a file
//! may be checked on another machine than the one that runs it.
//!
//! Invariant: when no error was reported, the returned `BalancerConfig`
//! satisfies every invariant documented on it in [`crate::model`].

use crate::check::{items_of, usize_range, Checker, Seen, Shape};
use crate::diag::{Diags, Pos, WarningKind};
use crate::lex::Token;
use crate::model::*;
use crate::schema::{suggest, suggest_unique, unknown_directive, Ctx};
use crate::server_kind::check_target;
use crate::syntax::{Body, Directive};
use crate::value::{
    check_base_url, check_country, check_http_url, check_server_name, check_stream_name, parse_host_port, parse_net,
};
use std::collections::HashMap;
use std::fmt::Display;

/// Checks the top-level directives of a balancer file and builds the config.
pub(crate) fn check_balancer(items: &[Directive], diags: &mut Diags) -> BalancerConfig {
    Checker { d: diags }.balancer(items)
}

/// Most server names listed in an "unknown server" message.
const LISTED_SERVERS: usize = 10;

/// Where a server block wrote the directives whose checks span the block.
#[derive(Default)]
struct ReadingAt {
    load: Option<Pos>,
    stream_list: Option<Pos>,
    match_label: Option<Pos>,
    api_auth: Option<Pos>,
    api_token: Option<Pos>,
}

/// A channel's reference to a server, resolved once every server is known.
struct ServerRef {
    channel: String,
    server: String,
    pos: Pos,
}

impl Checker<'_> {
    fn balancer(&mut self, items: &[Directive]) -> BalancerConfig {
        let ctx = Ctx::BalancerTop;
        let mut cfg = BalancerConfig {
            http: Vec::new(),
            ..BalancerConfig::default()
        };
        let mut seen = Seen::new();
        let mut http_at = HashMap::new();
        let mut proxies_at = Vec::new();
        let mut peers_at = Vec::new();
        let mut server_at: HashMap<String, Pos> = HashMap::new();
        // Every server name written, valid or not, in file order: a channel
        // naming a server whose block has errors is not blamed again.
        let mut written_servers: Vec<&str> = Vec::new();
        let mut channel_at: HashMap<String, Pos> = HashMap::new();
        let mut refs: Vec<ServerRef> = Vec::new();
        let mut first_countries: Option<Pos> = None;
        let mut any_server = false;
        let mut geoip_written = false;
        let mut geoip_at: Option<Pos> = None;
        let (mut edit_auth_at, mut state_file_at): (Option<Pos>, Option<Pos>) = (None, None);
        for d in items {
            let a0 = d.args.first();
            match d.name.text.as_str() {
                "http" => self.http(d, ctx, &mut http_at, &mut cfg.http),
                "refresh" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        if let Some(v) = self.duration(d, REFRESH_RANGE) {
                            cfg.refresh = v;
                        }
                    }
                }
                "geoip" => {
                    geoip_written = true;
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        cfg.geoip = a0.and_then(|a| self.non_empty(d, a)).map(Into::into);
                        geoip_at = a0.map(|a| a.pos);
                    }
                }
                "trusted_proxies" => {
                    if self.header(d, ctx, Shape::Simple, 1, None) {
                        self.list(d, &mut cfg.trusted_proxies, &mut proxies_at, parse_net);
                    }
                }
                // The admin API's credentials, checked as a node's.
                n @ ("view_auth" | "edit_auth") => {
                    if self.header(d, ctx, Shape::Simple, 2, Some(2)) && self.once(&mut seen, d, ctx) {
                        let creds = self.credentials(d);
                        if n == "view_auth" {
                            cfg.view_auth = creds;
                        } else {
                            edit_auth_at = Some(d.name.pos);
                            cfg.edit_auth = creds;
                        }
                    }
                }
                "state_file" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        cfg.state_file = a0.and_then(|a| self.non_empty(d, a)).map(Into::into);
                        state_file_at = Some(d.name.pos);
                    }
                }
                "peers" => {
                    if self.header(d, ctx, Shape::Simple, 1, None) {
                        self.list(d, &mut cfg.peers, &mut peers_at, check_base_url);
                    }
                }
                "zone_fallback" => {
                    // `zone_fallback;` alone means on.
                    if self.header(d, ctx, Shape::Simple, 0, Some(1)) && self.once(&mut seen, d, ctx) {
                        if let Some(v) = self.flag(d) {
                            cfg.zone_fallback = v;
                        }
                    }
                }
                "source" => {
                    if let Some(k) = a0.filter(|k| k.text != "prometheus") {
                        let mut msg = format!(
                            "unknown source kind `{}`; a balancer reads load only from `source prometheus URL`",
                            k.text.escape_debug()
                        );
                        if let Some(s) = suggest(&k.text, &["prometheus"]) {
                            msg.push_str(&format!("; did you mean `{s}`?"));
                        }
                        self.d.error(k.pos, msg);
                        continue;
                    }
                    if !self.header(d, ctx, Shape::Either, 2, Some(2)) || !self.once(&mut seen, d, ctx) {
                        continue;
                    }
                    let (query, kind_queries) = self.prometheus(items_of(d));
                    let Some(url) = d.args.get(1) else { continue };
                    match check_http_url(&url.text) {
                        Err(e) => self.d.error(url.pos, e),
                        Ok(()) => {
                            cfg.prometheus = Some(PrometheusSource {
                                url: url.text.clone(),
                                query,
                                kind_queries,
                                pos: url.pos,
                            })
                        }
                    }
                }
                "server" => {
                    any_server = true;
                    if !self.header(d, ctx, Shape::Block, 1, Some(1)) {
                        continue;
                    }
                    let Some(a) = a0 else { continue };
                    if !written_servers.contains(&a.text.as_str()) {
                        written_servers.push(&a.text);
                    }
                    let keep = self.block_name(a, "server", check_server_name, &mut server_at);
                    let closed = matches!(d.body, Body::Block { closed: true, .. });
                    let s = self.server(a, items_of(d), closed, &mut first_countries);
                    if keep {
                        cfg.servers.push(s);
                    }
                }
                "channel" => {
                    if !self.header(d, ctx, Shape::Block, 1, Some(1)) {
                        continue;
                    }
                    let Some(a) = a0 else { continue };
                    let keep = self.block_name(a, "channel", check_stream_name, &mut channel_at);
                    let closed = matches!(d.body, Body::Block { closed: true, .. });
                    let c = self.channel(a, items_of(d), closed, &mut refs);
                    if keep {
                        cfg.channels.push(c);
                    }
                }
                other => self.d.error(d.name.pos, unknown_directive(ctx, other)),
            }
        }
        if cfg.http.is_empty() {
            cfg.http = BalancerConfig::default().http;
        }
        if !any_server {
            self.d
                .error(Pos::new(1, 1), "a balancer config needs at least one `server` block");
        }
        if !written_servers.is_empty() {
            for r in &refs {
                if !written_servers.contains(&r.server.as_str()) {
                    let msg = unknown_server(r, &written_servers);
                    self.d.error(r.pos, msg);
                }
            }
        }
        if let (Some(pos), false) = (first_countries, geoip_written) {
            self.d.error(
                pos,
                "`countries` needs a GeoIP database: add `geoip PATH;` at top level",
            );
        }
        match (&cfg.edit_auth, &cfg.state_file, edit_auth_at, state_file_at) {
            (Some(_), None, Some(pos), _) => self.d.warn(
                pos,
                WarningKind::AdminChangesOff,
                "`edit_auth` without `state_file`: the admin API refuses every change (403 admin_disabled); add \
                 `state_file PATH;` to keep changes in",
            ),
            (None, Some(_), _, Some(pos)) => self.d.warn(
                pos,
                WarningKind::AdminChangesOff,
                "`state_file` without `edit_auth`: the admin API refuses every change (403 admin_disabled), so the \
                 file is only read; add `edit_auth USER PASSWORD;` to make changes",
            ),
            _ => {}
        }
        if let (Some(path), Some(pos)) = (&cfg.geoip, geoip_at) {
            if !path.is_file() {
                let why = match std::fs::metadata(path) {
                    Ok(_) => "is not a file".to_string(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist on this machine".to_string(),
                    Err(e) => format!("cannot be read on this machine ({e})"),
                };
                self.d.warn(
                    pos,
                    WarningKind::GeoipMissing,
                    format!(
                        "GeoIP database `{}` {why}; `strom balancer` refuses to start without it",
                        path.display()
                    ),
                );
            }
        }
        for s in &cfg.servers {
            if s.stream_list() == StreamList::Channels && !cfg.channels.iter().any(|c| c.servers.contains(&s.name)) {
                let why = match (s.stream_list.is_some(), s.kind.stream_api()) {
                    (true, _) => "`stream_list channels`".to_string(),
                    (false, _) => format!("a {} server", s.kind),
                };
                self.d.warn(
                    s.pos,
                    WarningKind::ServerInNoChannel,
                    format!(
                        "server `{}` is in no `channel` block and learns no stream list ({why}), so no viewer is ever \
                         sent to it; name it in the `servers` of the channels it plays",
                        s.name
                    ),
                );
            }
        }
        cfg
    }

    /// Checks each argument of list directive `d` with `parse` and appends
    /// the values to `out` (`at`: where each was written), reporting bad
    /// values and duplicates. Returns the accepted arguments.
    fn list<'t, T: PartialEq + Display>(
        &mut self,
        d: &'t Directive,
        out: &mut Vec<T>,
        at: &mut Vec<Pos>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<&'t Token> {
        let mut accepted = Vec::new();
        for a in &d.args {
            match parse(&a.text) {
                Err(e) => self.d.error(a.pos, e),
                Ok(v) => {
                    if let Some(i) = out.iter().position(|x| *x == v) {
                        self.d.error(
                            a.pos,
                            format!("duplicate `{v}` in `{}`; first at line {}", d.name.text, at[i].line),
                        );
                    } else {
                        out.push(v);
                        at.push(a.pos);
                        accepted.push(a);
                    }
                }
            }
        }
        accepted
    }

    /// The `source prometheus` block's queries: `query Q;` for every kind
    /// (the default when not set) and `query KIND Q;` for one kind.
    fn prometheus(&mut self, items: &[Directive]) -> (String, Vec<(ServerKind, String)>) {
        let ctx = Ctx::Prometheus;
        let mut query = DEFAULT_PROMETHEUS_QUERY.to_string();
        let mut query_at: Option<Pos> = None;
        let mut kind_queries: Vec<(ServerKind, String)> = Vec::new();
        let mut kind_at: Vec<Pos> = Vec::new();
        for d in items {
            let n = d.name.text.as_str();
            if !ctx.knows(n) {
                self.d.error(d.name.pos, unknown_directive(ctx, n));
                continue;
            }
            if !self.header(d, ctx, Shape::Simple, 1, Some(2)) {
                continue;
            }
            let (kind, text) = match d.args.as_slice() {
                [q] => (None, q),
                [k, q] => match self.kind_word(k) {
                    Some(kind) => (Some(kind), q),
                    None => continue,
                },
                _ => continue,
            };
            let Some(q) = self.non_empty(d, text) else { continue };
            match kind {
                None => {
                    if let Some(first) = query_at {
                        self.d.error(
                            d.name.pos,
                            format!("duplicate `query` {}; first set at line {}", ctx.describe(), first.line),
                        );
                        continue;
                    }
                    query_at = Some(d.name.pos);
                    query = q;
                }
                Some(kind) => {
                    if let Some(i) = kind_queries.iter().position(|(k, _)| *k == kind) {
                        self.d.error(
                            d.args[0].pos,
                            format!("duplicate `query {kind}`; first set at line {}", kind_at[i].line),
                        );
                        continue;
                    }
                    kind_queries.push((kind, q));
                    kind_at.push(d.args[0].pos);
                }
            }
        }
        (query, kind_queries)
    }

    /// A server kind word, or an error naming the kinds.
    fn kind_word(&mut self, a: &Token) -> Option<ServerKind> {
        match check_server_kind(&a.text) {
            Ok(k) => Some(k),
            Err(msg) => {
                self.d.error(a.pos, msg);
                None
            }
        }
    }

    /// A `health` or `load` target: a path or an `http(s)://` URL without
    /// user or fragment.
    fn target(&mut self, a: &Token) -> Option<String> {
        let url = |t: &str| -> Result<(), String> {
            check_http_url(t)?;
            let rest = t.split_once("://").map_or("", |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if authority.contains('@') {
                return Err(format!(
                    "bad URL `{t}`: it must not carry a user; use `api_auth` or `api_token`"
                ));
            }
            if t.contains('#') {
                return Err(format!("bad URL `{t}`: it must not have a fragment"));
            }
            Ok(())
        };
        match check_target(&a.text, url) {
            Ok(()) => Some(a.text.clone()),
            Err(e) => {
                self.d.error(a.pos, e);
                None
            }
        }
    }

    /// The server-block directives that say how a server is read: `kind`,
    /// `health`, `load`, `match_label`, `stream_list` and `api_token`.
    /// Returns false when `d` is none of them.
    fn server_reading(&mut self, d: &Directive, s: &mut ServerConfig, seen: &mut Seen, at: &mut ReadingAt) -> bool {
        let ctx = Ctx::Server;
        let (min, max) = match d.name.text.as_str() {
            "kind" | "stream_list" | "api_token" => (1, 1),
            "health" | "match_label" => (1, 2),
            "load" => (3, 3),
            _ => return false,
        };
        if !self.header(d, ctx, Shape::Simple, min, Some(max)) || !self.once(seen, d, ctx) {
            return true;
        }
        let a0 = &d.args[0];
        match d.name.text.as_str() {
            "kind" => {
                if let Some(k) = self.kind_word(a0) {
                    s.kind = k;
                }
            }
            "stream_list" => match StreamList::parse(&a0.text) {
                Some(l) => {
                    s.stream_list = Some(l);
                    at.stream_list = Some(a0.pos);
                }
                None => self.d.error(
                    a0.pos,
                    format!(
                        "bad value `{}` for `stream_list`: expected api (the server's stream list API) or channels \
                         (only `channel` blocks)",
                        a0.text.escape_debug()
                    ),
                ),
            },
            "api_token" => {
                at.api_token = Some(d.name.pos);
                if let Some(t) = self.non_empty(d, a0) {
                    s.api_token = Some(ApiToken(t));
                }
            }
            "health" => {
                let target = self.target(a0);
                let status = match d.args.get(1) {
                    None => Some(200),
                    Some(a) => match a.text.parse::<u16>() {
                        Ok(v) if (100..=599).contains(&v) => Some(v),
                        _ => {
                            self.d.error(
                                a.pos,
                                format!(
                                    "bad status `{}` for `health`: expected an HTTP status 100..599",
                                    a.text.escape_debug()
                                ),
                            );
                            None
                        }
                    },
                };
                if let (Some(target), Some(status)) = (target, status) {
                    s.health = Some(HealthCheck { target, status });
                }
            }
            "load" => {
                at.load = Some(d.name.pos);
                let format = LoadFormat::parse(&a0.text);
                if format.is_none() {
                    let words = LoadFormat::ALL.map(LoadFormat::as_str);
                    let mut msg = format!(
                        "unknown load format `{}`; expected {}",
                        a0.text.escape_debug(),
                        words.join(", ")
                    );
                    if let Some(w) = suggest(&a0.text, &words) {
                        msg.push_str(&format!("; did you mean `{w}`?"));
                    }
                    self.d.error(a0.pos, msg);
                }
                let target = self.target(&d.args[1]);
                let field = &d.args[2];
                if let Some(format) = format {
                    match check_field(format, &field.text) {
                        Err(e) => self.d.error(field.pos, format!("bad `load` field: {e}")),
                        Ok(()) => {
                            if let Some(target) = target {
                                s.load = Some(LoadSource {
                                    format,
                                    target,
                                    field: field.text.clone(),
                                });
                            }
                        }
                    }
                }
            }
            "match_label" => {
                at.match_label = Some(d.name.pos);
                let label_ok = {
                    let mut chars = a0.text.chars();
                    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                };
                if !label_ok {
                    self.d.error(
                        a0.pos,
                        format!(
                            "bad label name `{}`: use letters, digits and `_`, not starting with a digit",
                            a0.text.escape_debug()
                        ),
                    );
                }
                let value = match d.args.get(1) {
                    None => Some(None),
                    Some(v) => self.non_empty(d, v).map(Some),
                };
                if let (true, Some(value)) = (label_ok, value) {
                    s.match_label = Some(LabelMatch {
                        label: a0.text.clone(),
                        value,
                    });
                }
            }
            _ => {}
        }
        true
    }

    /// What depends on the server's kind, once its block is read.
    fn server_reading_end(&mut self, name: &Token, s: &ServerConfig, closed: bool, at: &ReadingAt) {
        if s.kind == ServerKind::Generic && at.load.is_none() && closed {
            self.d.error(
                name.pos,
                format!(
                    "server `{}` is of kind generic and has no `load`; add `load FORMAT URL FIELD;` (FORMAT is \
                     prometheus, json or xml)",
                    name.text
                ),
            );
        }
        if let (Some(pos), Some(StreamList::Api), None) = (at.stream_list, s.stream_list, s.kind.stream_api()) {
            self.d.error(
                pos,
                format!(
                    "a {} server has no stream list API; list its streams in `channel` blocks (`stream_list channels`)",
                    s.kind
                ),
            );
        }
        if let (Some(pos), Some(load)) = (at.match_label, s.load_source()) {
            if load.format != LoadFormat::Prometheus {
                self.d.error(
                    pos,
                    format!(
                        "`match_label` picks series of a Prometheus metric, but this server's load is read as {}",
                        load.format
                    ),
                );
            }
        }
        if let (Some(_), Some(token_at)) = (&s.api_auth, at.api_token) {
            let pos = match at.api_auth {
                Some(auth_at) if (auth_at.line, auth_at.col) > (token_at.line, token_at.col) => auth_at,
                _ => token_at,
            };
            self.d.error(
                pos,
                "a server takes either `api_auth USER PASSWORD` (HTTP Basic) or `api_token TOKEN` (Bearer), not both",
            );
        }
    }

    /// A server block. An unclosed one (already reported) is not also
    /// blamed for a missing `url` or `max_clients`. Records where the
    /// file's first `countries` is, for the `geoip` check.
    fn server(
        &mut self,
        name: &Token,
        items: &[Directive],
        closed: bool,
        first_countries: &mut Option<Pos>,
    ) -> ServerConfig {
        let ctx = Ctx::Server;
        let mut s = ServerConfig::new(name.text.clone(), String::new(), 0);
        s.pos = name.pos;
        let mut seen = Seen::new();
        let (mut networks_at, mut countries_at) = (Vec::new(), Vec::new());
        let mut at = ReadingAt::default();
        // Written at all, even if wrongly or misspelt: not reported missing.
        let (mut any_url, mut any_max) = (false, false);
        for d in items {
            let n = d.name.text.as_str();
            if !ctx.knows(n) {
                match suggest(n, ctx.directives()) {
                    Some("url") => any_url = true,
                    Some("max_clients") => any_max = true,
                    Some("load") => at.load = Some(d.name.pos),
                    _ => {}
                }
                self.d.error(d.name.pos, unknown_directive(ctx, n));
                continue;
            }
            any_url |= n == "url";
            any_max |= n == "max_clients";
            if n == "networks" || n == "countries" {
                if !self.header(d, ctx, Shape::Simple, 1, None) {
                    continue;
                }
                if n == "networks" {
                    self.list(d, &mut s.networks, &mut networks_at, parse_net);
                } else {
                    first_countries.get_or_insert(d.name.pos);
                    self.list(d, &mut s.countries, &mut countries_at, |c| {
                        check_country(c).map(|()| c.to_string())
                    });
                }
                continue;
            }
            if self.server_reading(d, &mut s, &mut seen, &mut at) {
                continue;
            }
            if n == "api_auth" {
                at.api_auth = Some(d.name.pos);
                if self.header(d, ctx, Shape::Simple, 2, Some(2)) && self.once(&mut seen, d, ctx) {
                    let (user, password) = (&d.args[0].text, &d.args[1].text);
                    if user.is_empty() || user.contains(':') || password.is_empty() {
                        self.d.error(
                            d.args[0].pos,
                            "`api_auth` needs a user name without `:` and a password".to_string(),
                        );
                    } else {
                        s.api_auth = Some(crate::model::Credentials {
                            user: user.clone(),
                            password: password.clone(),
                        });
                    }
                }
                continue;
            }
            let min = usize::from(n != "monitoring");
            if !self.header(d, ctx, Shape::Simple, min, Some(1)) || !self.once(&mut seen, d, ctx) {
                continue;
            }
            if n == "monitoring" {
                // `monitoring;` alone means on.
                if let Some(v) = self.flag(d) {
                    s.monitoring = v;
                }
                continue;
            }
            let Some(a) = d.args.first() else { continue };
            match n {
                "url" => match check_base_url(&a.text) {
                    Ok(url) => s.url = url,
                    Err(e) => self.d.error(a.pos, e),
                },
                "public" => {
                    let checked = if a.text.contains("://") {
                        check_http_url(&a.text)
                    } else {
                        parse_host_port(&a.text).map(|_| ())
                    };
                    match checked {
                        Ok(()) => s.public = Some(a.text.clone()),
                        Err(e) => self.d.error(
                            a.pos,
                            format!("bad `public` address: {e}; expected http(s)://HOST[:PORT][/PATH] or HOST[:PORT]"),
                        ),
                    }
                }
                "max_clients" => {
                    if let Some(v) = self.count(d, usize_range(&MAX_CLIENTS_RANGE)) {
                        s.max_clients = v as u64;
                    }
                }
                _ => {}
            }
        }
        self.server_reading_end(name, &s, closed, &at);
        if closed {
            for (written, what) in [(any_url, "url"), (any_max, "max_clients")] {
                if !written {
                    self.d
                        .error(name.pos, format!("server `{}` has no `{what}`", name.text));
                }
            }
        }
        s
    }

    /// A channel block; its server names are collected into `refs` and
    /// resolved when the whole file has been read.
    fn channel(&mut self, name: &Token, items: &[Directive], closed: bool, refs: &mut Vec<ServerRef>) -> ChannelConfig {
        let ctx = Ctx::Channel;
        let mut c = ChannelConfig {
            name: name.text.clone(),
            pos: name.pos,
            servers: Vec::new(),
        };
        let mut at = Vec::new();
        let mut any_servers = false;
        for d in items {
            let n = d.name.text.as_str();
            if !ctx.knows(n) {
                any_servers |= suggest(n, ctx.directives()) == Some("servers");
                self.d.error(d.name.pos, unknown_directive(ctx, n));
                continue;
            }
            any_servers = true;
            if !self.header(d, ctx, Shape::Simple, 1, None) {
                continue;
            }
            let accepted = self.list(d, &mut c.servers, &mut at, |s| {
                check_server_name(s).map(|()| s.to_string())
            });
            refs.extend(accepted.into_iter().map(|a| ServerRef {
                channel: name.text.clone(),
                server: a.text.clone(),
                pos: a.pos,
            }));
        }
        if !any_servers && closed {
            self.d.error(
                name.pos,
                format!("channel `{}` lists no servers; add `servers NAME ...;`", name.text),
            );
        }
        c
    }
}

/// A `kind` value, or the message `strom check` gives for it (the admin
/// API's too).
pub fn check_server_kind(word: &str) -> Result<ServerKind, String> {
    if let Some(k) = ServerKind::parse(word) {
        return Ok(k);
    }
    let words = ServerKind::words();
    let mut msg = format!(
        "unknown server kind `{}`; expected {}",
        word.escape_debug(),
        words.join(", ")
    );
    if let Some(s) = suggest(word, &words) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    Err(msg)
}

/// "channel `news` names unknown server `s9`; servers are s1, s2, s3", with
/// a did-you-mean when one server name is clearly the closest.
fn unknown_server(r: &ServerRef, servers: &[&str]) -> String {
    let mut list = servers
        .iter()
        .take(LISTED_SERVERS)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if servers.len() > LISTED_SERVERS {
        list.push_str(&format!(" and {} more", servers.len() - LISTED_SERVERS));
    }
    let mut msg = format!(
        "channel `{}` names unknown server `{}`; servers are {list}",
        r.channel, r.server
    );
    if let Some(s) = suggest_unique(&r.server, servers) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    msg
}
