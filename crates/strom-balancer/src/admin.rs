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
//! every viewer goes. Requests without the credentials get 401 and are
//! counted in `strom_balancer_api_unauthorized_total`.
//!
//! Invariants: a change is validated ([`crate::overrides`]) and written to
//! the state file (a temporary file, fsync, rename, fsync of the directory)
//! before it is applied; if the write fails nothing changes. Changes are
//! serialised by the admin lock, and run on the blocking pool, never on a
//! runtime worker. Bodies are read up to [`MAX_BODY`].

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
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
    /// applies it. Fails if the file cannot be read or is not a state file.
    pub fn load(base: BalancerConfig) -> Result<Admin, String> {
        let doc = match &base.state_file {
            Some(path) => read_state(path)?,
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

    /// Origin, flags and setting sources of server `name`, as JSON fields.
    fn describe(&self, name: &str) -> Option<serde_json::Value> {
        serde_json::to_value(self.merged.origins.get(name)?).ok()
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
        write_state(path, &merged.applied).map_err(|e| AdminError::Write(format!("{}: {e}", path.display())))?;
        Ok(merged)
    }
}

/// Reads a state file; a missing one is an empty state.
fn read_state(path: &Path) -> Result<StateDoc, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateDoc::default()),
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

/// Writes `doc` to `path` atomically: a temporary file beside it, synced,
/// renamed over it, and the directory synced.
fn write_state(path: &Path, doc: &StateDoc) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
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
    std::fs::File::open(dir)?.sync_all()
}

/// Why an admin request failed.
#[derive(Debug)]
enum AdminError {
    /// No `edit_auth` or no `state_file`: changes are off.
    Disabled,
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
            "Admin API requests refused for missing or wrong credentials",
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

    /// Adds the admin view of a server (origin, flags, sources) to its
    /// status object, and `drained`: it takes no new viewers and has none.
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

/// Changes need the edit credentials, and are off without them.
async fn require_edit(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let cfg = s.cfg();
    let Some(edit) = &cfg.edit_auth else {
        return AdminError::Disabled.into_response();
    };
    if strom_node::http::auth::carries(authorization(&req), &[edit]) {
        return next.run(req).await;
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
        assert_eq!(read_state(&path), Ok(doc));
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
        // A directory that does not exist: the write fails, nothing is left.
        assert!(write_state(&dir.join("no/such/dir/state.json"), &StateDoc::default()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
