//! Restreamer side: keeps each source's stream list and turns it into local
//! streams.
//!
//! Rules (from the `source` block):
//! - `except` hides a stream (and beats `only`); `only` makes matching streams
//!   static and every other stream on-demand; with no lists, the source's own
//!   mode is kept. `*` and `?` are wildcards.
//! - A locally configured stream with the same name wins.
//! - Several sources carrying one name make one stream whose sources are tried
//!   in config order.
//! - A list that could not be refreshed for `LIST_STALE` no longer counts, and a
//!   stream no source lists is removed `GRACE` later, so no pull outlives its source.
//!
//! Archives (see [`crate::dvr::cluster`]): a restreamed stream with a `dvr`
//! of its own (the source block's or the global one) records locally, and
//! when a source lists the stream with an archive, its holes are filled
//! from that archive (replication). Without a `dvr` of its own, a stream
//! whose source lists an archive reads that archive over the cluster (via
//! the block's `cache` when set), so every archive URL works here too. The
//! choice is made when the stream is created, from the first source in
//! config order that lists an archive.

use super::server::{RemoteStream, StreamList};
use super::{auth, source_key, PREFIX};
use crate::dvr::cluster::SourceArchives;
use crate::input::cluster::{ClusterSpec, SourceRef};
use crate::input::InputSpec;
use crate::metrics::{KindLabel, SourceLabel};
use crate::stream::{Stream, StreamSpec};
use crate::Node;
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_config::{SourceConfig, StreamConfig};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// How often a source's stream list is refreshed.
pub const REFRESH: Duration = Duration::from_secs(3);
/// A list older than this no longer counts.
pub const LIST_STALE: Duration = Duration::from_secs(20);
/// A stream no source lists any more is removed after this.
pub const GRACE: Duration = Duration::from_secs(10);
/// At startup, streams wait this long for every source's first list, so a
/// stream starts on its first source in config order rather than on
/// whichever answered first.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Longest stream list accepted from a source or peer, bytes.
pub const MAX_LIST_BYTES: usize = 8 << 20;

/// A source's `only`/`except` lists, compiled.
pub struct Filter {
    only: Option<GlobSet>,
    except: GlobSet,
}

fn globs(patterns: &[String]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        match Glob::new(p) {
            Ok(g) => {
                b.add(g);
            }
            Err(e) => tracing::warn!(pattern = %p, error = %e, "ignoring bad stream pattern"),
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

impl Filter {
    pub fn new(src: &SourceConfig) -> Self {
        Filter {
            only: (!src.only.is_empty()).then(|| globs(&src.only)),
            except: globs(&src.except),
        }
    }

    /// None: hidden. Some(true): static here. Some(false): on-demand here.
    pub fn classify(&self, name: &str, remote_static: bool) -> Option<bool> {
        if self.except.is_match(name) {
            return None;
        }
        match &self.only {
            Some(only) => Some(only.is_match(name)),
            None => Some(remote_static),
        }
    }
}

/// Why a list could not be had.
#[derive(Debug)]
pub enum ListError {
    Unauthorized(String),
    Other(String),
}

/// Signed GET to a source node.
pub async fn signed_get(
    client: &reqwest::Client,
    addr: &str,
    key: Option<&str>,
    path_and_query: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut req = client.get(format!("http://{addr}{path_and_query}"));
    if let Some(k) = key {
        for (h, v) in auth::sign(k, "GET", addr, path_and_query, auth::unix_now(), &auth::nonce()) {
            req = req.header(h, v);
        }
    }
    req.send().await
}

/// A whole stream-list exchange (connect, headers and body) must finish
/// within this, so a half-open connection cannot hang a poller.
pub const LIST_DEADLINE: Duration = Duration::from_secs(5);

/// Fetches a node's signed stream list: the body is read as it streams in,
/// refused as soon as it passes [`MAX_LIST_BYTES`], and the whole exchange
/// is bounded by [`LIST_DEADLINE`].
pub async fn fetch_list(client: &reqwest::Client, addr: &str, key: Option<&str>) -> Result<StreamList, ListError> {
    let exchange = async {
        let resp = signed_get(client, addr, key, &format!("{PREFIX}/streams"))
            .await
            .map_err(|e| ListError::Other(format!("request failed: {e}")))?;
        let status = resp.status();
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(ListError::Unauthorized("refused our cluster_key".to_string()));
        }
        if !status.is_success() {
            return Err(ListError::Other(format!("http status {status}")));
        }
        let body = crate::util::read_capped(resp, MAX_LIST_BYTES)
            .await
            .map_err(|e| ListError::Other(format!("stream list: {e}")))?;
        serde_json::from_slice::<StreamList>(&body).map_err(|e| ListError::Other(format!("bad stream list: {e}")))
    };
    tokio::time::timeout(LIST_DEADLINE, exchange).await.unwrap_or_else(|_| {
        Err(ListError::Other(format!(
            "no whole list within {} s",
            LIST_DEADLINE.as_secs()
        )))
    })
}

/// What [`admit_list`] kept and refused of one list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    pub kept: Vec<RemoteStream>,
    /// Entries with invalid names, and the first of them (escaped, bounded).
    pub bad_names: usize,
    pub first_bad: Option<String>,
    /// Valid entries beyond the per-source cap.
    pub over_cap: usize,
}

/// Splits a source's list into the entries that may become streams here
/// (valid names, at most `cap`) and what is refused. Pure.
pub fn admit_list(list: Vec<RemoteStream>, cap: usize) -> Admitted {
    let mut a = Admitted::default();
    for r in list {
        if let Err(e) = strom_config::check_stream_name(&r.name) {
            a.bad_names += 1;
            // Debug formatting escapes newlines and control characters, so a
            // peer cannot forge log lines.
            a.first_bad
                .get_or_insert_with(|| format!("{}: {e}", crate::util::peer_text(&r.name)));
        } else if a.kept.len() < cap {
            a.kept.push(r);
        } else {
            a.over_cap += 1;
        }
    }
    a
}

/// [`admit_list`] with the source's `max_streams`, counting and logging
/// what was refused once per list (never per reconcile tick).
fn admit(node: &Node, src: &SourceConfig, list: Vec<RemoteStream>) -> Vec<RemoteStream> {
    let source = src.addr.as_str();
    let a = admit_list(list, src.max_streams);
    if a.bad_names > 0 {
        node.metrics
            .cluster_errors
            .get_or_create(&KindLabel { kind: "bad_name" })
            .inc_by(a.bad_names as u64);
        tracing::warn!(source, refused = a.bad_names, first = %a.first_bad.unwrap_or_default(), "rejecting stream names from source");
    }
    if a.over_cap > 0 {
        node.metrics
            .cluster_errors
            .get_or_create(&KindLabel {
                kind: "too_many_streams",
            })
            .inc_by(a.over_cap as u64);
        tracing::warn!(
            source,
            kept = a.kept.len(),
            refused = a.over_cap,
            "source lists more streams than one source may create"
        );
    }
    a.kept
}

/// Polls one source's stream list forever, reporting to the manager.
async fn poll(node: Arc<Node>, idx: usize, tx: mpsc::Sender<(usize, Vec<RemoteStream>)>, stop: CancellationToken) {
    let src = &node.config.sources[idx];
    let key = source_key(&node.config, src);
    let label = SourceLabel {
        source: src.addr.clone(),
    };
    let up = node.metrics.source_up.get_or_create_owned(&label);
    let reconnects = node.metrics.source_reconnects.get_or_create_owned(&label);
    let client = crate::util::cluster_client(Duration::from_secs(3)).unwrap_or_default();
    let mut backoff = crate::input::Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let mut was_up = false;
    let mut failed_once = false;
    loop {
        let wait = match fetch_list(&client, &src.addr, key).await {
            Ok(list) => {
                let list = admit(&node, src, list.streams);
                if !was_up {
                    tracing::info!(source = %src.addr, streams = list.len(), "source connected");
                    if failed_once {
                        reconnects.inc();
                    }
                }
                was_up = true;
                backoff.reset();
                up.set(1);
                node.sources.update(idx, |s| {
                    s.state = "connected";
                    s.streams = list.len();
                    s.next_attempt = None;
                });
                if tx.send((idx, list)).await.is_err() {
                    return;
                }
                REFRESH
            }
            Err(e) => {
                failed_once = true;
                up.set(0);
                let delay = backoff.next_delay();
                let (state, msg) = match e {
                    ListError::Unauthorized(m) => ("unauthorized", format!("source refused our cluster_key: {m}")),
                    ListError::Other(m) => ("retrying", m),
                };
                if was_up || state == "unauthorized" {
                    tracing::error!(source = %src.addr, error = %msg, "source unavailable");
                }
                was_up = false;
                node.sources.update(idx, |s| {
                    s.state = state;
                    s.last_error = Some(msg);
                    s.next_attempt = Some(Instant::now() + delay);
                });
                delay
            }
        };
        if !crate::util::sleep_or_cancel(&stop, wait).await {
            return;
        }
    }
}

/// Each source's archive access, made on first need (one remote store and
/// cache per source, shared by its streams).
#[derive(Default)]
struct Archives {
    sources: HashMap<usize, Arc<SourceArchives>>,
}

impl Archives {
    fn source(&mut self, node: &Node, i: usize) -> Option<Arc<SourceArchives>> {
        if let Some(s) = self.sources.get(&i) {
            return Some(s.clone());
        }
        let src = node.config.sources.get(i)?;
        match SourceArchives::new(
            &src.addr,
            source_key(&node.config, src),
            src.cache.as_ref(),
            node.metrics.clone(),
        ) {
            Ok(s) => {
                let s = Arc::new(s);
                self.sources.insert(i, s.clone());
                Some(s)
            }
            Err(e) => {
                tracing::warn!(source = %src.addr, error = %e, "cannot read the source's archives");
                None
            }
        }
    }
}

struct Restreamed {
    sources: watch::Sender<Vec<SourceRef>>,
    indexes: Vec<usize>,
    cancel: CancellationToken,
    stream: Arc<Stream>,
    missing_since: Option<Instant>,
}

/// Runs the restreamer side until `stop`.
pub async fn run(node: Arc<Node>, stop: CancellationToken) {
    let n = node.config.sources.len();
    if n == 0 {
        return;
    }
    let filters: Vec<Filter> = node.config.sources.iter().map(Filter::new).collect();
    let client = crate::util::cluster_client(Duration::from_secs(3)).unwrap_or_default();
    let (tx, mut rx) = mpsc::channel(64);
    for i in 0..n {
        tokio::spawn(poll(node.clone(), i, tx.clone(), stop.clone()));
    }
    drop(tx);
    let mut lists: Vec<Option<(Instant, Vec<RemoteStream>)>> = vec![None; n];
    let mut running: BTreeMap<String, Restreamed> = BTreeMap::new();
    let mut archives = Archives::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let started = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            m = rx.recv() => match m {
                Some((i, list)) => lists[i] = Some((Instant::now(), list)),
                None => break,
            },
            _ = tick.tick() => {}
        }
        if lists.iter().any(|l| l.is_none()) && started.elapsed() < SETTLE {
            continue;
        }
        reconcile(&node, &client, &filters, &lists, &mut running, &mut archives, &stop);
    }
    for (_, r) in running {
        r.cancel.cancel();
        r.stream.closing.cancel();
    }
}

/// The addresses and keys of sources `indexes`, in order.
fn source_refs(node: &Node, indexes: &[usize]) -> Vec<SourceRef> {
    indexes
        .iter()
        .filter_map(|&i| node.config.sources.get(i))
        .map(|src| SourceRef {
            addr: src.addr.clone(),
            key: source_key(&node.config, src).map(str::to_string),
        })
        .collect()
}

fn reconcile(
    node: &Arc<Node>,
    client: &reqwest::Client,
    filters: &[Filter],
    lists: &[Option<(Instant, Vec<RemoteStream>)>],
    running: &mut BTreeMap<String, Restreamed>,
    archives: &mut Archives,
    stop: &CancellationToken,
) {
    // name -> (static anywhere, sources in config order, sources with an archive)
    let mut desired: BTreeMap<String, (bool, Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (i, entry) in lists.iter().enumerate() {
        let Some((at, list)) = entry else { continue };
        if at.elapsed() > LIST_STALE {
            continue;
        }
        for r in list {
            let Some(is_static) = filters[i].classify(&r.name, r.mode == "static") else {
                continue;
            };
            let e = desired.entry(r.name.clone()).or_insert((false, Vec::new(), Vec::new()));
            e.0 |= is_static;
            e.1.push(i);
            if r.dvr {
                e.2.push(i);
            }
        }
    }
    for (name, (is_static, sources, archived)) in &desired {
        if let Some(r) = running.get_mut(name) {
            r.missing_since = None;
            if r.indexes != *sources {
                r.indexes = sources.clone();
                r.sources.send_replace(source_refs(node, sources));
            }
            continue;
        }
        if node.config.stream(name).is_some() || node.stream(name).is_some() {
            continue; // a local stream wins
        }
        let first = &node.config.sources[sources[0]];
        let mut cfg = StreamConfig::new(name.clone(), Vec::new());
        cfg.ondemand = !is_static;
        cfg.on_play = first.on_play.clone();
        cfg.token_secret = first.token_secret.clone();
        cfg.backup = first.backup.clone();
        cfg.dvr = first.dvr.clone().or_else(|| node.config.dvr.clone());
        // `dvr_offline`: recorded without viewers, so never stopped for lack of them.
        if cfg.dvr.as_ref().is_some_and(|d| d.offline) {
            cfg.ondemand = false;
        }
        let (stx, srx) = watch::channel(source_refs(node, sources));
        let feed = ClusterSpec {
            name: name.clone(),
            sources: srx,
            client: client.clone(),
            metrics: node.metrics.clone(),
        };
        let local = cfg.dvr.as_ref().map(|d| node.dvr.archive(name, d));
        let remote = archived.first().and_then(|&i| archives.source(node, i));
        let archive = match (&local, &remote) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(r)) => Some(r.archive(&node.dvr, name)),
            (None, None) => None,
        };
        let spec = StreamSpec {
            inputs: vec![InputSpec::Cluster(Arc::new(feed))],
            backup: cfg.backup.clone().map(InputSpec::Config),
            archive,
            cfg,
        };
        let stream = Stream::new(spec, node.metrics.stream(name), crate::output::REGISTRY);
        if !node.add_stream(stream.clone()) {
            continue;
        }
        tracing::info!(stream = %name, mode = if *is_static { "static" } else { "ondemand" }, sources = ?sources, "restreaming");
        let cancel = stop.child_token();
        tokio::spawn(crate::stream::task::supervise(
            stream.clone(),
            Arc::new(crate::input::Inputs),
            cancel.clone(),
        ));
        if let (Some(local), Some(remote)) = (local, remote) {
            tokio::spawn(crate::dvr::cluster::replicate(
                local,
                remote.remote.clone(),
                replicated_counter(node, name),
                cancel.clone(),
            ));
        }
        running.insert(
            name.clone(),
            Restreamed {
                sources: stx,
                indexes: sources.clone(),
                cancel,
                stream,
                missing_since: None,
            },
        );
    }
    let now = Instant::now();
    running.retain(|name, r| {
        if desired.contains_key(name) {
            return true;
        }
        let since = *r.missing_since.get_or_insert(now);
        if now.duration_since(since) < GRACE {
            return true;
        }
        tracing::info!(stream = %name, "no source lists the stream any more: removing");
        r.cancel.cancel();
        r.stream.closing.cancel();
        node.remove_stream(name);
        false
    });
}

/// The counter of segments replicated into `name`'s archive.
fn replicated_counter(node: &Node, name: &str) -> prometheus_client::metrics::counter::Counter {
    node.metrics.dvr.replicated(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(only: &[&str], except: &[&str]) -> SourceConfig {
        let mut s = SourceConfig::new("origin:8080");
        s.only = only.iter().map(|s| s.to_string()).collect();
        s.except = except.iter().map(|s| s.to_string()).collect();
        s
    }

    #[test]
    fn lists_are_capped_and_bad_names_refused_once() {
        let entry = |name: &str| RemoteStream {
            name: name.to_string(),
            mode: "static".to_string(),
            codecs: Vec::new(),
            last_seq: None,
            alive: None,
            dvr: false,
        };
        let list = vec![
            entry("a"),
            entry("evil\nINFO forged"),
            entry("b"),
            entry("c"),
            entry("../x"),
        ];
        let a = admit_list(list, 2);
        assert_eq!(
            a.kept.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert_eq!((a.bad_names, a.over_cap), (2, 1));
        let first = a.first_bad.unwrap_or_default();
        assert!(first.contains("\\n") && !first.contains('\n'), "escaped: {first}");
    }

    #[test]
    fn lists_and_wildcards() {
        let f = Filter::new(&src(&["cbc", "football", "mylive/*"], &["stream1", "football"]));
        assert_eq!(f.classify("cbc", false), Some(true));
        assert_eq!(f.classify("mylive/cam1", false), Some(true));
        assert_eq!(f.classify("football", true), None, "except beats only");
        assert_eq!(f.classify("stream1", true), None);
        assert_eq!(f.classify("other", true), Some(false), "not in only: on-demand");
        let none = Filter::new(&src(&[], &[]));
        assert_eq!(none.classify("x", true), Some(true));
        assert_eq!(none.classify("x", false), Some(false));
        let q = Filter::new(&src(&["ch?"], &[]));
        assert_eq!(q.classify("ch1", false), Some(true));
        assert_eq!(q.classify("ch10", false), Some(false));
    }
}
