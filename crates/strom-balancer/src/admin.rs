//! The admin API: servers added, changed, drained and removed at run time,
//! kept in the state file (`state_file PATH;`) and applied over the config
//! file without a restart.
//!
//! - `GET /api/v1/servers[/NAME]` (view credentials) shows what is in force,
//!   with each server's origin, flags and where each setting came from.
//! - `POST /api/v1/servers`, `PATCH /api/v1/servers/NAME`,
//!   `POST /api/v1/servers/NAME/drain`, `DELETE /api/v1/servers/NAME`
//!   (edit credentials) change it.
//!
//! Credentials are the node's (`view_auth`, `edit_auth`, checked by
//! [`strom_node::http::auth::carries`]). Changes need `edit_auth` and
//! `state_file`: without them they are refused, since this API decides where
//! every viewer goes. Requests without the credentials get 401, view
//! credentials on a change get 403 `forbidden`; both are counted in
//! `strom_balancer_api_unauthorized_total`.
//!
//! Invariants:
//! - A change is validated ([`crate::overrides`]) and written to the state
//!   file (a temporary file, fsync, rename, fsync of the directory) before
//!   it is applied; if the write fails before the rename, nothing changes.
//!   Once the rename succeeded the file holds the change, so it is applied
//!   even if the directory's fsync then fails (logged): the running
//!   balancer never differs from what the next start would read.
//! - The state file's directory is created when missing, at start, at each
//!   reload and before each write.
//! - A state file that cannot be read (corrupt, another version, a
//!   directory) is never written over: before a change replaces it, it is
//!   kept as `NAME.broken-UNIXTIME` (logged). At start such a file stops
//!   the balancer; at a reload it is refused and the old state runs on.
//! - Changes are serialised by the admin lock, and run on the blocking
//!   pool, never on a runtime worker. Bodies are read up to [`MAX_BODY`].

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::json;
use strom_config::{BalancerConfig, Credentials};

use crate::overrides::{self, Change, ChangeError, Merged, NewServer, Patch, StateDoc};
use crate::service::Shared;

/// Largest request body read, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest state file read, in bytes.
const MAX_STATE_FILE: u64 = 16 << 20;

/// What the admin API keeps: the config file as read, and the state over it.
#[derive(Debug)]
pub struct Admin {
    base: BalancerConfig,
    merged: Merged,
}

impl Admin {
    /// Reads the state file of `base` (none yet is an empty state) and
    /// applies it. Creates the file's directory if missing (a failure is
    /// logged: changes then fail, naming the path). Fails if the file
    /// cannot be read or is not a state file, saying what to do.
    pub fn load(base: BalancerConfig) -> Result<Admin, String> {
        let doc = match &base.state_file {
            Some(path) => {
                if let Err(e) = ensure_dir(path) {
                    tracing::warn!(
                        state_file = %path.display(),
                        error = %e,
                        "cannot create the state file's directory; admin API changes will fail until it exists"
                    );
                }
                read_state(path).map_err(|e| {
                    format!(
                        "{e}; fix the file, or remove it to start from the config file alone (the changes made \
                         through the admin API are then lost)"
                    )
                })?
            }
            None => StateDoc::default(),
        };
        let merged = overrides::merge(&base, &doc);
        for s in &merged.skipped {
            tracing::warn!(server = %s.server, problems = %s.problems.join("; "), "state file entry no longer applies; skipped");
        }
        Ok(Admin { base, merged })
    }

    /// The config in force.
    pub fn config(&self) -> &BalancerConfig {
        &self.merged.config
    }

    /// Names of the servers that take no new viewers (drained or disabled).
    pub fn closed(&self) -> HashSet<String> {
        self.merged
            .origins
            .iter()
            .filter(|(_, o)| o.closed())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Origin, flags and setting sources of server `name`, and the
    /// settings in force that the balancer's status does not show:
    /// `networks`, `countries` and `public` (`null`: viewers go to `url`).
    /// JSON fields.
    fn describe(&self, name: &str) -> Option<serde_json::Value> {
        let mut v = serde_json::to_value(self.merged.origins.get(name)?).ok()?;
        if let (Some(obj), Some(server)) = (v.as_object_mut(), self.merged.config.server(name)) {
            let networks: Vec<String> = server.networks.iter().map(ToString::to_string).collect();
            obj.insert("networks".into(), networks.into());
            obj.insert("countries".into(), server.countries.clone().into());
            obj.insert("public".into(), server.public.clone().into());
        }
        Some(v)
    }

    /// Validates `ch` and writes the resulting state file; the new `Admin`
    /// state (not yet in force) on success.
    fn prepare(&self, ch: &Change) -> Result<Merged, AdminError> {
        let Some(path) = &self.base.state_file else {
            return Err(AdminError::Disabled);
        };
        let doc = overrides::change(&self.base, &self.merged.applied, &self.merged.config, ch)?;
        let merged = overrides::merge(&self.base, &doc);
        overrides::accepted(&merged, ch)?;
        let failed = |e: std::io::Error| AdminError::Write(format!("{}: {e}", path.display()));
        if let Some(kept) = keep_broken(path, unix_now()).map_err(failed)? {
            tracing::warn!(
                state_file = %path.display(),
                kept = %kept.display(),
                "the state file could not be read (see the reload error); kept it before writing the state in force"
            );
        }
        write_state(path, &merged.applied).map_err(failed)?;
        Ok(merged)
    }
}

/// The directory a file at `path` goes in (`.` for a bare name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Creates the directory of `path` (and its parents) if missing.
fn ensure_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir_of(path))
}

/// Seconds since the Unix epoch, now (0 if the clock is before it).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// If `path` exists but is not a readable state file (corrupt, another
/// version, a directory), renames it to `NAME.broken-UNIXTIME` (with `-1`,
/// `-2`... if that is taken) so that writing the state in force does not
/// destroy it; the new name. `None` when there is nothing to keep.
fn keep_broken(path: &Path, now_unix: u64) -> std::io::Result<Option<PathBuf>> {
    if std::fs::symlink_metadata(path).is_err() || read_state(path).is_ok() {
        return Ok(None);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = dir_of(path);
    for n in 0..100u32 {
        let kept = match n {
            0 => dir.join(format!("{name}.broken-{now_unix}")),
            n => dir.join(format!("{name}.broken-{now_unix}-{n}")),
        };
        if std::fs::symlink_metadata(&kept).is_err() {
            std::fs::rename(path, &kept)?;
            return Ok(Some(kept));
        }
    }
    Err(std::io::Error::other(format!(
        "unreadable state file, and no free name {name}.broken-{now_unix}[-N] to keep it"
    )))
}

/// Reads a state file; a missing one is an empty state (also when a part
/// of its directory is a file: none can be there).
fn read_state(path: &Path) -> Result<StateDoc, String> {
    use std::io::{ErrorKind, Read};
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(StateDoc::default()),
        Err(e) => return Err(format!("state file {}: {e}", path.display())),
    };
    let mut text = String::new();
    file.take(MAX_STATE_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("state file {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_STATE_FILE {
        return Err(format!(
            "state file {}: larger than {MAX_STATE_FILE} bytes",
            path.display()
        ));
    }
    let doc: StateDoc = serde_json::from_str(&text).map_err(|e| format!("state file {}: {e}", path.display()))?;
    if doc.version != overrides::STATE_VERSION {
        return Err(format!(
            "state file {}: version {} (this strom reads {})",
            path.display(),
            doc.version,
            overrides::STATE_VERSION
        ));
    }
    Ok(doc)
}

/// Writes `doc` to `path` atomically: the directory created if missing, a
/// temporary file beside it, synced, renamed over it, and the directory
/// synced.
fn write_state(path: &Path, doc: &StateDoc) -> std::io::Result<()> {
    write_state_with(path, doc, |dir| std::fs::File::open(dir)?.sync_all())
}

/// [`write_state`] with the directory sync given. An error before the
/// rename is returned (the old file is intact); once the rename succeeded
/// the file holds `doc`, so a failed `sync_dir` is logged and `Ok`: the
/// change must then be applied, or the next start would apply what the
/// running balancer refused.
fn write_state_with(
    path: &Path,
    doc: &StateDoc,
    sync_dir: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = dir_of(path);
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let text = serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?;
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename itself is durable once the directory is.
    if let Err(e) = sync_dir(dir) {
        tracing::warn!(
            state_file = %path.display(),
            error = %e,
            "state file written, but its directory could not be synced: a crash now may lose this change"
        );
    }
    Ok(())
}

/// Why an admin request failed.
#[derive(Debug)]
enum AdminError {
    /// No `edit_auth` or no `state_file`: changes are off.
    Disabled,
    /// Valid view credentials on a change: they may read, not change.
    Forbidden,
    /// Refused by validation.
    Change(ChangeError),
    /// The state file could not be written; nothing changed.
    Write(String),
    /// Applying to the running balancer failed.
    Apply(String),
}

impl From<ChangeError> for AdminError {
    fn from(e: ChangeError) -> Self {
        AdminError::Change(e)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (code, body) = match self {
            AdminError::Disabled => (
                StatusCode::FORBIDDEN,
                json!({"error": "admin_disabled",
                       "message": "changes need `edit_auth USER PASSWORD;` and `state_file PATH;` in the balancer config"}),
            ),
            AdminError::Forbidden => (
                StatusCode::FORBIDDEN,
                json!({"error": "forbidden", "message": "these credentials may read, not change"}),
            ),
            AdminError::Change(ChangeError::UnknownServer(n)) => (
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "message": format!("no server `{n}`")}),
            ),
            AdminError::Change(ChangeError::Exists(n)) => (
                StatusCode::CONFLICT,
                json!({"error": "exists", "message": format!("server `{n}` exists")}),
            ),
            AdminError::Change(ChangeError::Empty) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid", "problems": ["nothing to change"]}),
            ),
            AdminError::Change(ChangeError::Invalid(p)) => {
                (StatusCode::BAD_REQUEST, json!({"error": "invalid", "problems": p}))
            }
            AdminError::Change(ChangeError::Conflict(p)) => {
                (StatusCode::CONFLICT, json!({"error": "conflict", "problems": p}))
            }
            AdminError::Write(m) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "state_file", "message": m}),
            ),
            AdminError::Apply(m) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "apply", "message": m}),
            ),
        };
        (code, axum::Json(body)).into_response()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

/// Counters of the admin API.
#[derive(Default)]
pub struct AdminMetrics {
    unauthorized: Counter,
    changes: Family<ActionLabel, Counter>,
    refused: Family<ActionLabel, Counter>,
}

impl AdminMetrics {
    /// Registers them (under the registry's `strom_balancer` prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "api_unauthorized",
            "Admin API requests refused for missing or wrong credentials (401), or view credentials on a change (403)",
            self.unauthorized.clone(),
        );
        registry.register(
            "admin_changes",
            "Server changes applied through the admin API, by action",
            self.changes.clone(),
        );
        registry.register(
            "admin_refused",
            "Server changes refused (invalid, conflicting, unknown server, state file), by action",
            self.refused.clone(),
        );
    }
}

impl Shared {
    /// Validates, persists and applies one change, under the admin lock.
    /// Blocking (file I/O): call it from the blocking pool.
    fn admin_change(&self, ch: &Change) -> Result<serde_json::Value, AdminError> {
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let merged = admin.prepare(ch)?;
        let closed: HashSet<String> = merged
            .origins
            .iter()
            .filter(|(_, o)| o.closed())
            .map(|(n, _)| n.clone())
            .collect();
        // Written already: apply it; a failure here would be a bug (the
        // config was validated), and is reported, not hidden.
        self.install(merged.config.clone(), &closed)
            .map_err(AdminError::Apply)?;
        admin.merged = merged;
        drop(admin);
        Ok(self.server_json(ch.server()).unwrap_or(serde_json::Value::Null))
    }

    /// One server as `GET /api/v1/servers/NAME` shows it.
    fn server_json(&self, name: &str) -> Option<serde_json::Value> {
        let mut v = crate::service::server_list(self)
            .into_iter()
            .find(|v| v["name"].as_str() == Some(name))?;
        self.describe_into(&mut v);
        Some(v)
    }

    /// Adds the admin view of a server (origin, flags, sources, the
    /// effective `networks`, `countries` and `public`) to its status
    /// object, and `drained`: it takes no new viewers and has none.
    fn describe_into(&self, v: &mut serde_json::Value) {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        let extra = self.admin.lock().unwrap_or_else(|e| e.into_inner()).describe(&name);
        let drained = v["closed"] == true && v["measured"] == 0 && v["sent_since"] == 0 && v["up"] == true;
        if let (Some(obj), Some(serde_json::Value::Object(extra))) = (v.as_object_mut(), extra) {
            obj.extend(extra);
            obj.insert("drained".into(), drained.into());
        }
    }
}

/// Admin routes (merged into the balancer's router).
pub fn routes(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    let view = Router::new()
        .route("/api/v1/servers", get(list))
        .route("/api/v1/servers/{name}", get(one))
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), require_view));
    let edit = Router::new()
        .route("/api/v1/servers", post(add))
        .route("/api/v1/servers/{name}", axum::routing::patch(modify).delete(remove))
        .route("/api/v1/servers/{name}/drain", post(drain))
        .route_layer(axum::middleware::from_fn_with_state(shared, require_edit));
    view.merge(edit)
}

fn authorization(req: &Request) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// 401 with a Basic challenge, counted.
fn unauthorized(s: &Shared) -> Response {
    s.metrics.admin.unauthorized.inc();
    let mut r = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "unauthorized", "message": "credentials required"})),
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"strom\""),
    );
    r
}

/// Reads need view or edit credentials when either is configured (open
/// otherwise, as the node's API).
async fn require_view(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let cfg = s.cfg();
    let allowed: Vec<&Credentials> = [&cfg.view_auth, &cfg.edit_auth].into_iter().flatten().collect();
    if allowed.is_empty() || strom_node::http::auth::carries(authorization(&req), &allowed) {
        return next.run(req).await;
    }
    unauthorized(&s)
}

/// Changes need the edit credentials, and are off without them. View
/// credentials get 403 (they are valid, but may only read), counted with
/// the 401s.
async fn require_edit(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let cfg = s.cfg();
    let Some(edit) = &cfg.edit_auth else {
        return AdminError::Disabled.into_response();
    };
    let given = authorization(&req);
    if strom_node::http::auth::carries(given, &[edit]) {
        return next.run(req).await;
    }
    if let Some(view) = &cfg.view_auth {
        if strom_node::http::auth::carries(given, &[view]) {
            s.metrics.admin.unauthorized.inc();
            return AdminError::Forbidden.into_response();
        }
    }
    unauthorized(&s)
}

async fn list(State(s): State<Arc<Shared>>) -> Response {
    let mut servers = crate::service::server_list(&s);
    for v in &mut servers {
        s.describe_into(v);
    }
    let (state_file, skipped) = {
        let admin = s.admin.lock().unwrap_or_else(|e| e.into_inner());
        (admin.base.state_file.clone(), admin.merged.skipped.clone())
    };
    axum::Json(json!({
        "servers": servers,
        "balancers": s.balancers_json(),
        "state": {"file": state_file, "skipped": skipped},
    }))
    .into_response()
}

async fn one(State(s): State<Arc<Shared>>, axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match s.server_json(&name) {
        Some(v) => axum::Json(v).into_response(),
        None => AdminError::Change(ChangeError::UnknownServer(name)).into_response(),
    }
}

/// The body as `T`: 413 past [`MAX_BODY`], 400 with serde's message (cut
/// to 200 characters) when it is not `T`.
async fn body<T: serde::de::DeserializeOwned>(req: Request) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(json!({"error": "too_large", "message": format!("bodies are at most {MAX_BODY} bytes")})),
        )
            .into_response()
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let mut m = e.to_string();
        if let Some((cut, _)) = m.char_indices().nth(200) {
            m.truncate(cut);
        }
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "bad_json", "message": m})),
        )
            .into_response()
    })
}

/// Runs `ch` on the blocking pool and answers with the server as it now is.
async fn run_change(s: Arc<Shared>, ch: Change, ok: StatusCode) -> Response {
    let action = ch.action();
    let removed = matches!(ch, Change::Remove(_)).then(|| ch.server().to_string());
    let worker = s.clone();
    let done = tokio::task::spawn_blocking(move || worker.admin_change(&ch)).await;
    let label = ActionLabel { action };
    match done {
        Ok(Ok(server)) => {
            s.metrics.admin.changes.get_or_create(&label).inc();
            tracing::info!(action, "admin change applied");
            let body = match removed {
                Some(name) => json!({"removed": name}),
                None => server,
            };
            (ok, axum::Json(body)).into_response()
        }
        Ok(Err(e)) => {
            s.metrics.admin.refused.get_or_create(&label).inc();
            e.into_response()
        }
        Err(e) => AdminError::Apply(format!("admin task: {e}")).into_response(),
    }
}

async fn add(State(s): State<Arc<Shared>>, req: Request) -> Response {
    match body::<NewServer>(req).await {
        Ok(n) => run_change(s, Change::Add(n), StatusCode::CREATED).await,
        Err(r) => r,
    }
}

async fn modify(
    State(s): State<Arc<Shared>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    req: Request,
) -> Response {
    match body::<Patch>(req).await {
        Ok(p) => run_change(s, Change::Modify(name, p), StatusCode::OK).await,
        Err(r) => r,
    }
}

async fn drain(State(s): State<Arc<Shared>>, axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let p = Patch {
        draining: Some(Some(true)),
        ..Patch::default()
    };
    run_change(s, Change::Modify(name, p), StatusCode::OK).await
}

async fn remove(State(s): State<Arc<Shared>>, axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    run_change(s, Change::Remove(name), StatusCode::OK).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("strom-admin-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    }

    #[test]
    fn state_files_are_written_whole_and_read_back() {
        let dir = scratch("rw");
        let path = dir.join("state.json");
        assert_eq!(read_state(&path), Ok(StateDoc::default()), "no file yet: empty");
        let doc = StateDoc {
            version: overrides::STATE_VERSION,
            servers: vec![overrides::Entry {
                name: "s1".into(),
                draining: Some(true),
                ..overrides::Entry::default()
            }],
        };
        write_state(&path, &doc).expect("written");
        assert_eq!(read_state(&path), Ok(doc.clone()));
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
        std::fs::write(&path, "{\"version\": 2, \"servers\": []}").expect("write");
        assert!(read_state(&path).is_err_and(|e| e.contains("version 2")));
        std::fs::write(&path, "garbage").expect("write");
        assert!(read_state(&path).is_err());
        // A directory that does not exist yet is created.
        let deep = dir.join("no/such/dir/state.json");
        write_state(&deep, &doc).expect("directory created");
        assert_eq!(read_state(&deep), Ok(doc));
        // One that cannot be (a file is in the way): the write fails.
        let blocked = dir.join("state.json/sub/state.json");
        assert!(write_state(&blocked, &StateDoc::default()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn config(state: &Path) -> BalancerConfig {
        strom_config::parse_balancer(
            "b.conf",
            &format!(
                "edit_auth admin pw;\nstate_file {};\nserver s1 {{ url http://a; max_clients 5; }}\n\
                 server s2 {{ url http://b; public https://b.example; max_clients 5; networks 10.0.0.0/8; }}\n",
                state.display()
            ),
        )
        .expect("valid")
    }

    fn patch(json: &str) -> Patch {
        serde_json::from_str(json).expect("patch")
    }

    #[test]
    fn the_state_files_directory_is_created_at_load() {
        let dir = scratch("mkdir");
        let state = dir.join("var/lib/strom/balancer.json");
        let mut admin = Admin::load(config(&state)).expect("no state yet");
        assert!(state.parent().is_some_and(Path::is_dir), "created at start");
        // Removed behind the balancer's back: created again by the write.
        std::fs::remove_dir_all(dir.join("var")).expect("rm");
        let ch = Change::Modify("s1".into(), patch(r#"{"max_clients": 3}"#));
        admin.merged = admin.prepare(&ch).expect("written");
        assert_eq!(read_state(&state).map(|d| d.servers.len()), Ok(1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_directory_sync_after_the_rename_still_counts_as_written() {
        let dir = scratch("dirsync");
        let path = dir.join("state.json");
        let doc = StateDoc {
            version: overrides::STATE_VERSION,
            servers: vec![overrides::Entry {
                name: "s1".into(),
                enabled: Some(false),
                ..overrides::Entry::default()
            }],
        };
        let synced = write_state_with(&path, &doc, |_| Err(std::io::Error::other("EIO")));
        assert!(
            synced.is_ok(),
            "the file holds the change, so it must be applied: {synced:?}"
        );
        assert_eq!(read_state(&path), Ok(doc));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unreadable_state_file_at_load_says_what_to_do() {
        let dir = scratch("broken-load");
        let path = dir.join("state.json");
        std::fs::write(&path, "{\"version\": 1, \"servers\": [").expect("write");
        let e = Admin::load(config(&path)).expect_err("refused");
        assert!(e.starts_with(&format!("state file {}:", path.display())), "{e}");
        assert!(e.contains("fix the file, or remove it"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_broken_state_file_is_kept_before_a_change_writes_over_it() {
        let dir = scratch("broken");
        let path = dir.join("state.json");
        assert_eq!(keep_broken(&path, 7).ok(), Some(None), "no file: nothing to keep");
        let mut admin = Admin::load(config(&path)).expect("loaded");
        let ch = Change::Modify("s1".into(), patch(r#"{"draining": true}"#));
        admin.merged = admin.prepare(&ch).expect("written");
        assert_eq!(keep_broken(&path, 7).ok(), Some(None), "a good file is not moved");
        // The operator breaks the file; a reload refused it, the old state runs on.
        std::fs::write(&path, "{ half an edit").expect("write");
        assert!(Admin::load(config(&path)).is_err());
        let ch = Change::Modify("s2".into(), patch(r#"{"max_clients": 4}"#));
        admin.merged = admin.prepare(&ch).expect("written");
        let kept: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("state.json.broken-"))
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(
            std::fs::read_to_string(dir.join(&kept[0])).ok().as_deref(),
            Some("{ half an edit"),
            "the operator's file is kept as it was"
        );
        assert_eq!(read_state(&path).map(|d| d.servers.len()), Ok(2), "the state in force");
        // A name already taken gets a suffix; a directory is kept too.
        std::fs::remove_file(&path).expect("rm");
        std::fs::create_dir(&path).expect("a directory in the way");
        std::fs::write(dir.join("state.json.broken-7"), "older").expect("write");
        assert_eq!(
            keep_broken(&path, 7).ok(),
            Some(Some(dir.join("state.json.broken-7-1")))
        );
        assert!(dir.join("state.json.broken-7-1").is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn describe_shows_the_effective_zone_and_public_address() {
        let dir = scratch("describe");
        let path = dir.join("state.json");
        let mut admin = Admin::load(config(&path)).expect("loaded");
        let v = admin.describe("s2").expect("s2");
        assert_eq!(
            (&v["networks"], &v["countries"], &v["public"]),
            (&json!(["10.0.0.0/8"]), &json!([]), &json!("https://b.example"))
        );
        assert_eq!(admin.describe("s1").map(|v| v["public"].clone()), Some(json!(null)));
        let ch = Change::Modify("s2".into(), patch(r#"{"networks": ["192.168.0.0/24", "10.1.0.0/16"]}"#));
        admin.merged = admin.prepare(&ch).expect("written");
        let v = admin.describe("s2").expect("s2");
        assert_eq!(v["networks"], json!(["192.168.0.0/24", "10.1.0.0/16"]));
        assert_eq!(v["sources"]["networks"], "state");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
