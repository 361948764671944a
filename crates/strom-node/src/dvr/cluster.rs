//! DVR over the cluster: a restreamer reads its source's archive through
//! signed node-to-node calls, at the level of the storage trait, so that
//! every archive URL on the restreamer serves the source's stored bytes.
//!
//! ## Protocol (source side)
//!
//! Both endpoints are signed with the cluster key like every
//! `/api/v1/cluster` call ([`crate::cluster::auth`]); they answer only for
//! streams that have an archive here (`stream.spec.archive`), else 404.
//! - `GET /api/v1/cluster/dvr/files/NAME` → [`FileList`]: the archive's
//!   files as [`Store::list`] gives them, as JSON
//!   `{"files":[{"hour":H,"first_seq":S,"kind":"data"|"index","bytes":N}],"truncated":false}`
//!   (`hour`: hours since the Unix epoch, UTC; `bytes`: file size). At most
//!   [`MAX_LISTED`] entries (the newest; `truncated` says some were left
//!   out). The newest file pair, which the writer may be appending to, is
//!   listed as far as its index covers whole segments, so a reader never
//!   sees a data file ahead of its index or a half-written entry.
//! - `GET /api/v1/cluster/dvr/read/NAME?hour=H&first_seq=S&kind=data|index&offset=O&len=L`
//!   → the raw bytes of [`Store::read`] (`application/octet-stream`),
//!   fewer than `len` only at the end of the file. Every parameter is
//!   required once, a decimal number of at most 20 digits (`hour` at most
//!   [`MAX_HOUR`], the last hour of year 9999); `len` is 1..=[`MAX_READ`]
//!   for data and 1..=[`MAX_INDEX_BYTES`] for an index, and `offset + len`
//!   must not overflow. A bad query is 400 and counted in
//!   `strom_dvr_bad_requests_total{reason="cluster_…"}`; a file that does
//!   not exist is 404.
//!
//! The stream list (`GET /api/v1/cluster/streams`) marks the streams that
//! have an archive with `"dvr":true` (absent means false, as older nodes
//! send it).
//!
//! ## Restreamer side
//!
//! - [`RemoteStore`] implements [`Store`] over those two calls for one
//!   source, read-only: writes, truncation and deletion are
//!   `io::ErrorKind::Unsupported`. Store calls are blocking (archives run
//!   them on `spawn_blocking`): each one runs its request on the runtime
//!   captured at construction and waits for it at most [`CALL_TIMEOUT`]
//!   (plus one second per MiB read). Bodies are read under a byte cap. A
//!   listing that fails falls back to the last good one for the stream.
//! - [`CachingStore`] wraps a [`RemoteStore`] with a [`DiskCache`] (the
//!   source block's `cache PATH SIZE;`): index files and segment messages
//!   of finished files (their hour is over and a newer file exists) are
//!   kept on local disk, at most SIZE bytes, least recently used deleted
//!   first.
//! - [`replicate`] (Flussonic's `replicate`): a restreamer that records a
//!   stream itself fills the holes of its own archive (its downtime) from
//!   the source's: it copies the source's stored segment messages into new
//!   local files, one per run of missing segments and UTC hour, rate- and
//!   size-bounded, counted, stopping with the stream.
//!
//! Invariants:
//! - The bytes a restreamer serves are the source's stored wire messages,
//!   muxed by the same function: identical TS bytes.
//! - Nothing a peer sends reaches a path: cache and archive paths are built
//!   by `strom_media::dvr::layout` from validated stream names and numbers,
//!   and peer text in logs goes through [`crate::util::peer_text`].
//! - A replicated file holds segments that lie between two local files in
//!   both time and sequence number, so the archive's files in key order
//!   still hold strictly increasing sequence numbers.

use super::archive::{decode_one, Archive, ReadError, MAX_INDEX_BYTES};
use super::store::{Appender, Listed, Store, Usage};
use crate::cluster::manager::signed_get;
use crate::cluster::PREFIX;
use crate::http::reply;
use crate::metrics::Metrics;
use crate::Node;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strom_config::DvrConfig;
use strom_media::dvr::index::{self, IndexEntry};
use strom_media::dvr::layout::{self, FileKey, FileKind, HOUR_TICKS};
use strom_media::dvr::ranges::Range;
use strom_media::CLOCK_HZ;
use tokio_util::sync::CancellationToken;

/// Most files one listing carries (50,000 hours of file pairs).
pub const MAX_LISTED: usize = 100_000;
/// Largest data read in one call, bytes (the wire decoder's message limit).
pub const MAX_READ: u64 = 64 << 20;
/// Largest listing body accepted, bytes.
pub const MAX_LIST_BODY: usize = 16 << 20;
/// Largest file size a listing may claim, bytes (1 TiB).
pub const MAX_FILE_BYTES: u64 = 1 << 40;
/// The last hour a request may name: 9999-12-31 23:00 UTC, in hours since
/// the Unix epoch (file names carry a four-digit year).
pub const MAX_HOUR: i64 = 253_402_300_800 / 3600 - 1;
/// Deadline of one store call (a listing or a small read); reads get one
/// more second per MiB.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a failed listing is not retried (the last good one is used).
pub const LIST_RETRY: Duration = Duration::from_secs(2);
/// How old an archive's view of a remote listing may get before it is
/// read again (see `Store::listing_ttl`).
pub const LISTING_TTL: Duration = Duration::from_secs(2);
/// Longest query string of a read request, bytes.
const MAX_QUERY: usize = 512;

// ---------------------------------------------------------------------------
// Protocol shapes and parameters (pure)
// ---------------------------------------------------------------------------

/// A file's kind on the wire; kinds this version does not know are skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireKind {
    Data,
    Index,
    #[serde(other)]
    Unknown,
}

impl From<FileKind> for WireKind {
    fn from(k: FileKind) -> Self {
        match k {
            FileKind::Data => WireKind::Data,
            FileKind::Index => WireKind::Index,
        }
    }
}

/// One entry of `GET …/dvr/files/NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedFile {
    /// Hours since the Unix epoch, UTC.
    pub hour: i64,
    pub first_seq: u64,
    pub kind: WireKind,
    /// File size, bytes.
    pub bytes: u64,
}

/// `GET /api/v1/cluster/dvr/files/NAME`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileList {
    pub files: Vec<ListedFile>,
    /// Older files were left out to stay within [`MAX_LISTED`].
    #[serde(default)]
    pub truncated: bool,
}

/// The parameters of `GET …/dvr/read/NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadQuery {
    pub key: FileKey,
    pub kind: FileKind,
    /// Byte offset in the file.
    pub offset: u64,
    /// Bytes wanted.
    pub len: u64,
}

/// Why a read query was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadQuery {
    #[error("query string too long")]
    TooLong,
    #[error("parameter `{0}` is missing")]
    Missing(&'static str),
    #[error("parameter `{0}` is given twice")]
    Twice(&'static str),
    #[error("parameter `{0}` is not a number in range")]
    Number(&'static str),
    #[error("`kind` must be `data` or `index`")]
    Kind,
    #[error("`len` must be 1 to {0} bytes for this kind")]
    Len(u64),
    #[error("`offset` + `len` overflows")]
    Overflow,
}

impl BadQuery {
    /// The `reason` label of `strom_dvr_bad_requests_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            BadQuery::TooLong => "cluster_query_too_long",
            BadQuery::Missing(_) | BadQuery::Twice(_) => "cluster_bad_parameters",
            BadQuery::Number(_) | BadQuery::Overflow => "cluster_not_a_number",
            BadQuery::Kind => "cluster_bad_kind",
            BadQuery::Len(_) => "cluster_bad_length",
        }
    }
}

/// The largest read of `kind` one call may ask for, bytes.
pub fn read_cap(kind: FileKind) -> u64 {
    match kind {
        FileKind::Data => MAX_READ,
        FileKind::Index => MAX_INDEX_BYTES,
    }
}

/// A decimal number of 1 to 20 ASCII digits that fits a u64.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses the query of a read request. Unknown parameters are ignored
/// (newer clients); each known one must appear exactly once.
pub fn parse_read_query(query: Option<&str>) -> Result<ReadQuery, BadQuery> {
    const NAMES: [&str; 5] = ["hour", "first_seq", "kind", "offset", "len"];
    let q = query.unwrap_or("");
    if q.len() > MAX_QUERY {
        return Err(BadQuery::TooLong);
    }
    let mut values: [Option<&str>; 5] = [None; 5];
    for kv in q.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if let Some(i) = NAMES.iter().position(|n| *n == k) {
            if values[i].replace(v).is_some() {
                return Err(BadQuery::Twice(NAMES[i]));
            }
        }
    }
    let get = |i: usize| values[i].ok_or(BadQuery::Missing(NAMES[i]));
    let num = |i: usize| get(i).and_then(|v| number(v).ok_or(BadQuery::Number(NAMES[i])));
    let hour = i64::try_from(num(0)?)
        .ok()
        .filter(|h| *h <= MAX_HOUR)
        .ok_or(BadQuery::Number("hour"))?;
    let first_seq = num(1)?;
    let kind = match get(2)? {
        "data" => FileKind::Data,
        "index" => FileKind::Index,
        _ => return Err(BadQuery::Kind),
    };
    let offset = num(3)?;
    let len = num(4)?;
    let cap = read_cap(kind);
    if len == 0 || len > cap {
        return Err(BadQuery::Len(cap));
    }
    offset.checked_add(len).ok_or(BadQuery::Overflow)?;
    Ok(ReadQuery {
        key: FileKey { hour, first_seq },
        kind,
        offset,
        len,
    })
}

/// The query string of `q`, as [`parse_read_query`] reads it.
pub fn read_query_string(q: &ReadQuery) -> String {
    let kind = match q.kind {
        FileKind::Data => "data",
        FileKind::Index => "index",
    };
    format!(
        "hour={}&first_seq={}&kind={kind}&offset={}&len={}",
        q.key.hour, q.key.first_seq, q.offset, q.len
    )
}

/// What a restreamer keeps of a source's listing: valid entries only, at
/// most [`MAX_LISTED`], one per (file, kind), in the order `Store::list`
/// gives (key, data before index). Returns the entries and how many were
/// refused (out-of-range numbers, duplicates, over the cap); entries of
/// unknown kinds are skipped without counting.
pub fn admit_listing(list: FileList) -> (Vec<Listed>, usize) {
    let mut bad = 0;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for f in list.files {
        let kind = match f.kind {
            WireKind::Data => FileKind::Data,
            WireKind::Index => FileKind::Index,
            WireKind::Unknown => continue,
        };
        let key = FileKey {
            hour: f.hour,
            first_seq: f.first_seq,
        };
        if !(0..=MAX_HOUR).contains(&f.hour)
            || f.bytes > MAX_FILE_BYTES
            || out.len() >= MAX_LISTED
            || !seen.insert((key, kind == FileKind::Index))
        {
            bad += 1;
            continue;
        }
        out.push(Listed {
            key,
            kind,
            bytes: f.bytes,
        });
    }
    out.sort_by_key(|l| (l.key, l.kind == FileKind::Index));
    (out, bad)
}

// ---------------------------------------------------------------------------
// Source side
// ---------------------------------------------------------------------------

/// The sizes of `key`'s pair as far as its index covers whole segments of
/// its data (`data_bytes` as listed): (data bytes, index bytes). `None`
/// when the index cannot be read or does not belong to the file.
fn covered(store: &dyn Store, dir: &str, key: FileKey, data_bytes: u64) -> Option<(u64, u64)> {
    let raw = store.read_all(dir, key, FileKind::Index, MAX_INDEX_BYTES).ok()?;
    let parsed = index::parse_index(&raw).ok()?;
    if parsed.first_seq != key.first_seq {
        return None;
    }
    let whole: Vec<&IndexEntry> = parsed
        .entries
        .iter()
        .take_while(|e| e.offset.saturating_add(u64::from(e.len)) <= data_bytes)
        .collect();
    let data = whole.last().map_or(0, |e| e.offset + u64::from(e.len));
    Some((data, (index::HEADER_LEN + whole.len() * index::ENTRY_LEN) as u64))
}

/// The listing a source gives for one stream directory (see the module
/// docs): `store.list`, the newest [`MAX_LISTED`] entries, the newest pair
/// cut to what its index covers.
pub fn source_listing(store: &dyn Store, dir: &str) -> io::Result<FileList> {
    let mut listed = store.list(dir)?;
    let truncated = listed.len() > MAX_LISTED;
    if truncated {
        let older = listed.len() - MAX_LISTED;
        listed.drain(..older);
    }
    if let Some(newest) = listed.iter().map(|l| l.key).max() {
        let data = listed
            .iter()
            .find(|l| l.key == newest && l.kind == FileKind::Data)
            .map(|l| l.bytes);
        if let Some((data, idx)) = data.and_then(|d| covered(store, dir, newest, d)) {
            for l in listed.iter_mut().filter(|l| l.key == newest) {
                l.bytes = match l.kind {
                    FileKind::Data => data,
                    FileKind::Index => idx,
                };
            }
        }
    }
    Ok(FileList {
        files: listed
            .iter()
            .map(|l| ListedFile {
                hour: l.key.hour,
                first_seq: l.key.first_seq,
                kind: l.kind.into(),
                bytes: l.bytes,
            })
            .collect(),
        truncated,
    })
}

/// The archive of stream `name` for a cluster call (`None`: answer 404).
fn source_archive(node: &Node, name: &str) -> Option<Arc<Archive>> {
    if strom_config::check_stream_name(name).is_err() {
        node.metrics.dvr.bad_request("cluster_bad_name");
        return None;
    }
    node.stream(name).and_then(|s| s.spec.archive.clone())
}

fn no_archive() -> Response {
    reply::error(StatusCode::NOT_FOUND, "this stream has no archive here")
}

/// Logs a failed archive call of a peer, at most once a second.
fn log_source_error(name: &str, what: &str, e: &dyn std::fmt::Display) {
    static LOG: crate::util::LogLimiter = crate::util::LogLimiter::new(Duration::from_secs(1));
    if let Some(held_back) = LOG.allow(Instant::now()) {
        tracing::warn!(stream = %crate::util::peer_text(name), error = %e, held_back, "{what}");
    }
}

/// `GET /api/v1/cluster/dvr/files/NAME` (signed).
pub async fn files(State(node): State<Arc<Node>>, Path(name): Path<String>, req: Request) -> Response {
    if let Some(r) = crate::cluster::server::refuse(&node, &req) {
        return r;
    }
    let Some(archive) = source_archive(&node, &name) else {
        return no_archive();
    };
    let store = archive.store().clone();
    let dir = layout::stream_dir(&name);
    match tokio::task::spawn_blocking(move || source_listing(store.as_ref(), &dir)).await {
        Ok(Ok(list)) => axum::Json(list).into_response(),
        Ok(Err(e)) => {
            node.metrics.cluster_error("dvr_list");
            log_source_error(&name, "archive listing for a peer failed", &e);
            reply::error(StatusCode::INTERNAL_SERVER_ERROR, "archive unreadable")
        }
        Err(_) => reply::error(StatusCode::INTERNAL_SERVER_ERROR, "archive unreadable"),
    }
}

/// `GET /api/v1/cluster/dvr/read/NAME?…` (signed).
pub async fn read(State(node): State<Arc<Node>>, Path(name): Path<String>, req: Request) -> Response {
    if let Some(r) = crate::cluster::server::refuse(&node, &req) {
        return r;
    }
    let q = match parse_read_query(req.uri().query()) {
        Ok(q) => q,
        Err(bad) => {
            node.metrics.dvr.bad_request(bad.reason());
            return reply::error(StatusCode::BAD_REQUEST, &bad.to_string());
        }
    };
    let Some(archive) = source_archive(&node, &name) else {
        return no_archive();
    };
    let store = archive.store().clone();
    let dir = layout::stream_dir(&name);
    let r = tokio::task::spawn_blocking(move || store.read(&dir, q.key, q.kind, q.offset, q.len)).await;
    match r {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => {
            reply::error(StatusCode::NOT_FOUND, "no such archive file")
        }
        Ok(Err(e)) => {
            node.metrics.cluster_error("dvr_read");
            log_source_error(&name, "archive read for a peer failed", &e);
            reply::error(StatusCode::INTERNAL_SERVER_ERROR, "archive unreadable")
        }
        Err(_) => reply::error(StatusCode::INTERNAL_SERVER_ERROR, "archive unreadable"),
    }
}

// ---------------------------------------------------------------------------
// Restreamer side: the remote store
// ---------------------------------------------------------------------------

/// What a remote store keeps of one stream's listing.
#[derive(Default)]
struct Listing {
    files: Option<Arc<Vec<Listed>>>,
    failed_at: Option<Instant>,
}

/// One source's archives, read over the cluster protocol (see the module
/// docs). One per source; its calls name the stream by directory.
pub struct RemoteStore {
    /// `host:port` of the source.
    addr: String,
    key: Option<String>,
    client: reqwest::Client,
    handle: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    listings: Mutex<HashMap<String, Listing>>,
    log: crate::util::LogLimiter,
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what}: a source's archive is read-only here"),
    )
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the source did not answer in time")
}

/// A signed GET of `path` from `addr`, the body read under `cap` bytes.
async fn fetch(
    client: reqwest::Client,
    addr: String,
    key: Option<String>,
    path: String,
    cap: usize,
    metrics: Arc<Metrics>,
) -> io::Result<Vec<u8>> {
    let resp = signed_get(&client, &addr, key.as_deref(), &path)
        .await
        .map_err(|e| io::Error::other(format!("request failed: {e}")))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(io::Error::new(io::ErrorKind::NotFound, "not in the source's archive"));
    }
    if status == reqwest::StatusCode::FORBIDDEN {
        metrics.cluster_error("auth");
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "source refused our cluster_key",
        ));
    }
    if !status.is_success() {
        return Err(io::Error::other(format!("http status {status}")));
    }
    crate::util::read_capped(resp, cap).await.map_err(io::Error::other)
}

impl RemoteStore {
    /// The archives of source `addr`, signed with `key`. Must be called
    /// inside the tokio runtime, whose handle runs every later call.
    pub fn new(addr: &str, key: Option<&str>, client: reqwest::Client, metrics: Arc<Metrics>) -> io::Result<Self> {
        let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        Ok(RemoteStore {
            addr: addr.to_string(),
            key: key.map(str::to_string),
            client,
            handle,
            metrics,
            listings: Mutex::new(HashMap::new()),
            log: crate::util::LogLimiter::new(Duration::from_secs(60)),
        })
    }

    /// `host:port` of the source.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Runs `path`'s request on the runtime and waits for it, at most
    /// `limit`. Never panics, whatever thread it is called on.
    fn get(&self, path: String, cap: usize, limit: Duration) -> io::Result<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = fetch(
            self.client.clone(),
            self.addr.clone(),
            self.key.clone(),
            path,
            cap,
            self.metrics.clone(),
        );
        self.handle.spawn(async move {
            let r = tokio::time::timeout(limit, fut)
                .await
                .unwrap_or_else(|_| Err(timed_out()));
            let _ = tx.send(r);
        });
        rx.recv_timeout(limit + Duration::from_secs(1))
            .unwrap_or_else(|_| Err(timed_out()))
    }

    fn listings(&self) -> std::sync::MutexGuard<'_, HashMap<String, Listing>> {
        self.listings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last good listing of stream directory `dir`.
    pub fn listed(&self, dir: &str) -> Option<Arc<Vec<Listed>>> {
        self.listings().get(dir).and_then(|l| l.files.clone())
    }

    /// The newest file of `dir` in its last listing.
    pub fn newest(&self, dir: &str) -> Option<FileKey> {
        self.listed(dir)?.iter().map(|l| l.key).max()
    }

    /// The size of a file in `dir`'s last listing.
    pub fn listed_size(&self, dir: &str, key: FileKey, kind: FileKind) -> Option<u64> {
        self.listed(dir)?
            .iter()
            .find(|l| l.key == key && l.kind == kind)
            .map(|l| l.bytes)
    }

    fn note_failure(&self, what: &'static str, e: &io::Error) {
        self.metrics.cluster_error(what);
        if let Some(held_back) = self.log.allow(Instant::now()) {
            tracing::warn!(source = %self.addr, error = %e, held_back, "source archive unreachable");
        }
    }

    fn fetch_listing(&self, name: &str) -> io::Result<Vec<Listed>> {
        let body = match self.get(format!("{PREFIX}/dvr/files/{name}"), MAX_LIST_BODY, CALL_TIMEOUT) {
            Ok(b) => b,
            // The source has no archive for it (any more): nothing to list.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let list: FileList = serde_json::from_slice(&body).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad archive listing: {}", crate::util::peer_text(&e.to_string())),
            )
        })?;
        let (files, bad) = admit_listing(list);
        if bad > 0 {
            self.metrics
                .cluster_errors
                .get_or_create(&crate::metrics::KindLabel { kind: "dvr_list" })
                .inc_by(bad as u64);
        }
        Ok(files)
    }
}

/// The stream name of a directory a caller gave, if it is a valid one.
fn name_of(dir: &str) -> io::Result<String> {
    layout::stream_name_of_dir(dir)
        .filter(|n| strom_config::check_stream_name(n).is_ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a stream directory"))
}

impl Store for RemoteStore {
    fn writable(&self) -> bool {
        false
    }

    fn location(&self) -> String {
        format!("cluster://{}", self.addr)
    }

    fn listing_ttl(&self) -> Option<Duration> {
        Some(LISTING_TTL)
    }

    fn streams(&self) -> io::Result<Vec<String>> {
        Err(unsupported("listing every stream"))
    }

    fn list(&self, stream_dir: &str) -> io::Result<Vec<Listed>> {
        let name = name_of(stream_dir)?;
        let (cached, recently_failed) = {
            let l = self.listings();
            let e = l.get(stream_dir);
            (
                e.and_then(|e| e.files.clone()),
                e.and_then(|e| e.failed_at).is_some_and(|t| t.elapsed() < LIST_RETRY),
            )
        };
        if recently_failed {
            return cached
                .map(|f| f.as_ref().clone())
                .ok_or_else(|| io::Error::other("source archive unreachable"));
        }
        match self.fetch_listing(&name) {
            Ok(files) => {
                let mut l = self.listings();
                // Bounded by the streams this source carries here.
                let e = l.entry(stream_dir.to_string()).or_default();
                e.files = Some(Arc::new(files.clone()));
                e.failed_at = None;
                Ok(files)
            }
            Err(e) => {
                self.note_failure("dvr_list", &e);
                self.listings().entry(stream_dir.to_string()).or_default().failed_at = Some(Instant::now());
                cached.map(|f| f.as_ref().clone()).ok_or(e)
            }
        }
    }

    fn read(&self, stream_dir: &str, key: FileKey, kind: FileKind, offset: u64, len: u64) -> io::Result<Bytes> {
        let name = name_of(stream_dir)?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        let cap = read_cap(kind);
        if len > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a read of {len} bytes is over the cluster limit of {cap}"),
            ));
        }
        let q = ReadQuery { key, kind, offset, len };
        let limit = CALL_TIMEOUT + Duration::from_secs(len >> 20);
        let path = format!("{PREFIX}/dvr/read/{name}?{}", read_query_string(&q));
        // `len` <= 64 MiB: fits usize everywhere strom runs.
        let cap = usize::try_from(len).unwrap_or(usize::MAX);
        match self.get(path, cap, limit) {
            Ok(b) => Ok(Bytes::from(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
            Err(e) => {
                self.note_failure("dvr_read", &e);
                Err(e)
            }
        }
    }

    fn read_all(&self, stream_dir: &str, key: FileKey, kind: FileKind, max: u64) -> io::Result<Bytes> {
        let size = self
            .listed_size(stream_dir, key, kind)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not in the source's listing"))?;
        if size > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("archive file of {size} bytes is over the limit of {max}"),
            ));
        }
        // The file as listed: a growing file's index and data stay
        // consistent with each other (see `source_listing`).
        self.read(stream_dir, key, kind, 0, size)
    }

    fn truncate(&self, _: &str, _: FileKey, _: FileKind, _: u64) -> io::Result<()> {
        Err(unsupported("truncating"))
    }

    fn replace(&self, _: &str, _: FileKey, _: FileKind, _: &[u8]) -> io::Result<()> {
        Err(unsupported("rewriting"))
    }

    fn create(&self, _: &str, _: FileKey, _: &[u8]) -> io::Result<Box<dyn Appender>> {
        Err(unsupported("recording"))
    }

    fn delete(&self, _: &str, _: FileKey) -> io::Result<u64> {
        Err(unsupported("deleting"))
    }

    fn usage(&self) -> io::Result<Option<Usage>> {
        Ok(None)
    }
}

// ---------------------------------------------------------------------------
// Edge cache
// ---------------------------------------------------------------------------

/// Entries a cache tracks at most, whatever their size.
pub const MAX_CACHE_FILES: usize = 1_000_000;
/// A file is finished (cacheable) only when its hour ended this long ago.
pub const FINISH_MARGIN: i64 = 120 * CLOCK_HZ;

/// Least-recently-used bookkeeping of a cache, without I/O: names and
/// sizes. Invariant: after every call, `total() <= max_bytes` and
/// `len() <= max_files`.
#[derive(Debug)]
pub struct Lru {
    max_bytes: u64,
    max_files: usize,
    /// name → (bytes, last use)
    files: HashMap<String, (u64, u64)>,
    /// last use → name
    order: BTreeMap<u64, String>,
    total: u64,
    clock: u64,
}

impl Lru {
    pub fn new(max_bytes: u64, max_files: usize) -> Self {
        Lru {
            max_bytes,
            max_files,
            files: HashMap::new(),
            order: BTreeMap::new(),
            total: 0,
            clock: 0,
        }
    }

    /// Bytes held.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether an entry of `bytes` can be held at all.
    pub fn fits(&self, bytes: u64) -> bool {
        bytes <= self.max_bytes && self.max_files > 0
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The size of `name` if held; marks it used.
    pub fn touch(&mut self, name: &str) -> Option<u64> {
        let t = self.tick();
        let (bytes, used) = self.files.get_mut(name)?;
        let old = std::mem::replace(used, t);
        let bytes = *bytes;
        self.order.remove(&old);
        self.order.insert(t, name.to_string());
        Some(bytes)
    }

    /// Forgets `name`; true if it was held.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.files.remove(name) {
            Some((bytes, used)) => {
                self.order.remove(&used);
                self.total -= bytes;
                true
            }
            None => false,
        }
    }

    /// Holds `name` of `bytes` as the most recently used entry; returns the
    /// names to delete (least recently used first, and `name` itself when
    /// it can never fit).
    pub fn insert(&mut self, name: String, bytes: u64) -> Vec<String> {
        self.remove(&name);
        if !self.fits(bytes) {
            return vec![name];
        }
        let t = self.tick();
        self.files.insert(name.clone(), (bytes, t));
        self.order.insert(t, name);
        self.total += bytes;
        let mut evicted = Vec::new();
        while self.total > self.max_bytes || self.files.len() > self.max_files {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((b, _)) = self.files.remove(&oldest) {
                self.total -= b;
            }
            evicted.push(oldest);
        }
        evicted
    }
}

/// A bounded directory of archive bytes fetched from a source: whole index
/// files and single segment messages, named after their archive file
/// (`<stream dir>/YYYY-MM-DD/HH-SEQ.idx`, `…/HH-SEQ.wire.OFFSET.LEN`).
/// The directory is scanned on first use (files written by an earlier run
/// count, newest kept); files are written whole under a temporary name and
/// renamed, so a reader never sees a partial one.
pub struct DiskCache {
    root: PathBuf,
    size: u64,
    state: Mutex<Option<Lru>>,
    tmp: std::sync::atomic::AtomicU64,
}

/// The cache name of a whole index file.
pub fn index_name(dir: &str, key: FileKey) -> String {
    format!("{dir}/{}", layout::relative_path(key, FileKind::Index))
}

/// The cache name of `len` bytes at `offset` of a data file.
pub fn chunk_name(dir: &str, key: FileKey, offset: u64, len: u64) -> String {
    format!("{dir}/{}.{offset}.{len}", layout::relative_path(key, FileKind::Data))
}

/// The size a cache file name promises: `Some(None)` for an index (any
/// size), `Some(Some(len))` for a chunk, `None` for a name the cache never
/// writes. `day` is the day directory, `file` the name in it.
fn cache_file(day: &str, file: &str) -> Option<Option<u64>> {
    if let Some((_, FileKind::Index)) = layout::parse_file(day, file) {
        return Some(None);
    }
    let mut parts = file.rsplitn(3, '.');
    let len = number(parts.next()?)?;
    let offset = number(parts.next()?)?;
    let base = parts.next()?;
    offset.checked_add(len)?;
    match layout::parse_file(day, base)? {
        (_, FileKind::Data) => Some(Some(len)),
        _ => None,
    }
}

impl DiskCache {
    /// A cache in `root` of at most `size` bytes.
    pub fn new(root: impl Into<PathBuf>, size: u64) -> Self {
        DiskCache {
            root: root.into(),
            size,
            state: Mutex::new(None),
            tmp: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Bytes held now (scanning the directory on first use).
    pub fn total(&self) -> u64 {
        self.with(|l| l.total())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Lru) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let lru = g.get_or_insert_with(|| self.scan());
        f(lru)
    }

    /// Reads the directory: known files by age, temporary and damaged ones
    /// deleted, the oldest dropped beyond the bounds.
    fn scan(&self) -> Lru {
        let mut found: Vec<(std::time::SystemTime, String, u64)> = Vec::new();
        let read = |p: &std::path::Path| std::fs::read_dir(p).into_iter().flatten().flatten();
        for s in read(&self.root) {
            let Some(dir) = s.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if layout::stream_name_of_dir(&dir).is_none() {
                continue;
            }
            for d in read(&s.path()) {
                let Some(day) = d.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                for f in read(&d.path()) {
                    let Some(file) = f.file_name().to_str().map(str::to_string) else {
                        continue;
                    };
                    let Ok(meta) = f.metadata() else { continue };
                    if file.ends_with(".tmp") {
                        let _ = std::fs::remove_file(f.path());
                        continue;
                    }
                    match cache_file(&day, &file) {
                        Some(Some(len)) if len != meta.len() => {
                            let _ = std::fs::remove_file(f.path());
                        }
                        Some(_) => found.push((
                            meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                            format!("{dir}/{day}/{file}"),
                            meta.len(),
                        )),
                        None => {}
                    }
                    if found.len() >= 2 * MAX_CACHE_FILES {
                        break;
                    }
                }
            }
        }
        found.sort();
        let mut lru = Lru::new(self.size, MAX_CACHE_FILES);
        for (_, name, bytes) in found {
            for gone in lru.insert(name, bytes) {
                self.remove_file(&gone);
            }
        }
        lru
    }

    fn remove_file(&self, name: &str) {
        let p = self.root.join(name);
        let _ = std::fs::remove_file(&p);
        // An emptied day directory goes too (fails harmlessly otherwise).
        if let Some(day) = p.parent() {
            let _ = std::fs::remove_dir(day);
        }
    }

    /// The cached bytes of `name` when it holds exactly `len` bytes.
    pub fn get(&self, name: &str, len: u64) -> Option<Bytes> {
        match self.with(|l| l.touch(name)) {
            Some(b) if b == len => {}
            Some(_) => {
                self.with(|l| l.remove(name));
                self.remove_file(name);
                return None;
            }
            None => return None,
        }
        match std::fs::read(self.root.join(name)) {
            Ok(b) if b.len() as u64 == len => Some(Bytes::from(b)),
            _ => {
                self.with(|l| l.remove(name));
                self.remove_file(name);
                None
            }
        }
    }

    /// Keeps `bytes` as `name`, deleting the least recently used files
    /// beyond the size. Errors are returned for counting; the cache stays
    /// consistent either way.
    pub fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        if !self.with(|l| l.fits(bytes.len() as u64)) {
            return Ok(());
        }
        let path = self.root.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let n = self.tmp.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.root.join(format!("{name}.{n}.tmp"));
        let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        for gone in self.with(|l| l.insert(name.to_string(), bytes.len() as u64)) {
            self.remove_file(&gone);
        }
        Ok(())
    }
}

/// A [`RemoteStore`] that keeps what it fetched of finished files in a
/// [`DiskCache`] and reads from there first.
pub struct CachingStore {
    remote: Arc<RemoteStore>,
    cache: Arc<DiskCache>,
}

impl CachingStore {
    pub fn new(remote: Arc<RemoteStore>, cache: Arc<DiskCache>) -> Self {
        CachingStore { remote, cache }
    }

    /// A file that can no longer change on the source: its hour ended
    /// [`FINISH_MARGIN`] ago and the source has a newer file.
    fn finished(&self, dir: &str, key: FileKey) -> bool {
        let hour_over = (key.hour.saturating_add(1))
            .saturating_mul(HOUR_TICKS)
            .saturating_add(FINISH_MARGIN)
            <= crate::util::utc90_now();
        hour_over && self.remote.newest(dir).is_some_and(|n| n > key)
    }

    fn keep(&self, name: &str, bytes: &[u8]) {
        if let Err(e) = self.cache.put(name, bytes) {
            self.remote.note_failure("dvr_cache", &e);
        }
    }
}

impl Store for CachingStore {
    fn writable(&self) -> bool {
        false
    }

    fn location(&self) -> String {
        self.remote.location()
    }

    fn listing_ttl(&self) -> Option<Duration> {
        self.remote.listing_ttl()
    }

    fn streams(&self) -> io::Result<Vec<String>> {
        self.remote.streams()
    }

    fn list(&self, stream_dir: &str) -> io::Result<Vec<Listed>> {
        self.remote.list(stream_dir)
    }

    fn read(&self, stream_dir: &str, key: FileKey, kind: FileKind, offset: u64, len: u64) -> io::Result<Bytes> {
        if kind != FileKind::Data || len == 0 || !self.finished(stream_dir, key) {
            return self.remote.read(stream_dir, key, kind, offset, len);
        }
        name_of(stream_dir)?;
        let name = chunk_name(stream_dir, key, offset, len);
        if let Some(b) = self.cache.get(&name, len) {
            return Ok(b);
        }
        let b = self.remote.read(stream_dir, key, kind, offset, len)?;
        if b.len() as u64 == len {
            self.keep(&name, &b);
        }
        Ok(b)
    }

    fn read_all(&self, stream_dir: &str, key: FileKey, kind: FileKind, max: u64) -> io::Result<Bytes> {
        let size = self.remote.listed_size(stream_dir, key, kind);
        let Some(size) = size.filter(|s| kind == FileKind::Index && *s <= max && self.finished(stream_dir, key)) else {
            return self.remote.read_all(stream_dir, key, kind, max);
        };
        name_of(stream_dir)?;
        let name = index_name(stream_dir, key);
        if let Some(b) = self.cache.get(&name, size) {
            return Ok(b);
        }
        let b = self.remote.read_all(stream_dir, key, kind, max)?;
        if b.len() as u64 == size {
            self.keep(&name, &b);
        }
        Ok(b)
    }

    fn truncate(&self, d: &str, key: FileKey, kind: FileKind, len: u64) -> io::Result<()> {
        self.remote.truncate(d, key, kind, len)
    }

    fn replace(&self, d: &str, key: FileKey, kind: FileKind, content: &[u8]) -> io::Result<()> {
        self.remote.replace(d, key, kind, content)
    }

    fn create(&self, d: &str, key: FileKey, header: &[u8]) -> io::Result<Box<dyn Appender>> {
        self.remote.create(d, key, header)
    }

    fn delete(&self, d: &str, key: FileKey) -> io::Result<u64> {
        self.remote.delete(d, key)
    }

    fn usage(&self) -> io::Result<Option<Usage>> {
        self.remote.usage()
    }
}

/// One source's archive access on a restreamer: its remote store, and the
/// store archives read through (cached when the source block has `cache`).
pub struct SourceArchives {
    pub remote: Arc<RemoteStore>,
    store: Arc<dyn Store>,
}

impl SourceArchives {
    /// The access to source `addr`'s archives, with its block's `cache`.
    pub fn new(
        addr: &str,
        key: Option<&str>,
        cache: Option<&strom_config::CacheConfig>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Self> {
        let client = crate::util::cluster_client(Duration::from_secs(3)).map_err(io::Error::other)?;
        let remote = Arc::new(RemoteStore::new(addr, key, client, metrics)?);
        let store: Arc<dyn Store> = match cache {
            Some(c) => {
                // One directory per source, so that two sources carrying the
                // same stream name never mix their files.
                let sub: String = addr
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let cache = Arc::new(DiskCache::new(c.path.join(sub), c.size));
                Arc::new(CachingStore::new(remote.clone(), cache))
            }
            None => remote.clone(),
        };
        Ok(SourceArchives { remote, store })
    }

    /// The archive of stream `name` on this source, as the restreamer's own
    /// (`root` shows `cluster://ADDR`).
    pub fn archive(&self, dvr: &super::Dvr, name: &str) -> Arc<Archive> {
        let cfg = DvrConfig::new(format!("cluster://{}", self.remote.addr()));
        dvr.archive_with_store(name, &cfg, self.store.clone())
    }
}

// ---------------------------------------------------------------------------
// Replication
// ---------------------------------------------------------------------------

/// The first pass runs this long after the stream is created (its writer
/// has recorded something by then).
pub const REPLICATE_FIRST: Duration = Duration::from_secs(3);
/// A pass that could not finish is retried after this.
pub const REPLICATE_RETRY: Duration = Duration::from_secs(5);
/// Passes after a complete one.
pub const REPLICATE_EVERY: Duration = Duration::from_secs(60);
/// Copy rate, bytes per second.
pub const REPLICATE_RATE: u64 = 32 << 20;
/// Bytes one pass copies at most.
pub const REPLICATE_MAX_BYTES: u64 = 4 << 30;
/// Segments one pass copies at most.
pub const REPLICATE_MAX_SEGMENTS: usize = 20_000;
/// Source indexes one pass reads at most.
const REPLICATE_MAX_INDEXES: usize = 256;
/// Bytes of consecutive messages fetched in one read.
const READ_BATCH: u64 = 8 << 20;
/// How far a copied segment may overlap its local neighbours (10 ms).
const FIT_TOLERANCE: i64 = CLOCK_HZ / 100;
/// Local context read around a hole.
const CONTEXT: i64 = 60 * CLOCK_HZ;

/// The spans of `[from, last range start)` that the local archive's
/// `ranges` (merged, oldest first) do not cover: before the first range
/// and between two. Nothing after the newest range: that is the writer's.
pub fn holes(ranges: &[Range], from: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut cursor = from;
    for r in ranges {
        if r.from > cursor {
            out.push((cursor, r.from));
        }
        cursor = cursor.max(r.from.saturating_add(r.duration));
    }
    out
}

/// Source segments to copy into one new local file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The new local file: the hour and number of its first segment.
    pub key: FileKey,
    /// The segments, each with the source file that holds it, in order.
    pub entries: Vec<(FileKey, IndexEntry)>,
}

/// What [`plan_fill`] decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub runs: Vec<Run>,
    /// Missing segments with no local segment after them yet (the writer
    /// has not recorded since): left for a later pass.
    pub waiting: usize,
}

/// Which `source` segments (with their source file, in sequence order) to
/// copy into the local archive, whose segments around the holes are
/// `local` (in sequence order, which is time order) and whose files are
/// `local_files`. Pure.
///
/// A source segment is copied when it starts at or after `from`, its
/// number is not local, and it fits between its local neighbours: the one
/// before (if any) ends by its start and has a lower number; the one after
/// exists, starts at or after its end, has a higher number, and is the
/// first segment of its file (a hole inside a local file cannot be filled
/// without rewriting that file). Segments between the same neighbours in
/// the same UTC hour form one run, that is one new file.
pub fn plan_fill(
    source: &[(FileKey, IndexEntry)],
    local: &[IndexEntry],
    local_files: &HashSet<FileKey>,
    from: i64,
) -> Plan {
    let mut plan = Plan::default();
    // (insertion point, hour) of the last run.
    let mut last: Option<(usize, i64)> = None;
    let mut prev_seq: Option<u64> = None;
    for &(skey, e) in source {
        if e.start < from || prev_seq.is_some_and(|p| e.seq <= p) || e.duration <= 0 {
            continue;
        }
        prev_seq = Some(e.seq);
        if local.binary_search_by_key(&e.seq, |l| l.seq).is_ok() {
            continue;
        }
        let at = local.partition_point(|l| l.start < e.start);
        let before = at.checked_sub(1).and_then(|i| local.get(i));
        if before.is_some_and(|b| b.seq >= e.seq || b.end() > e.start + FIT_TOLERANCE) {
            continue;
        }
        let Some(after) = local.get(at) else {
            plan.waiting += 1;
            continue;
        };
        let after_first = local_files.contains(&FileKey {
            hour: layout::hour_of(after.start),
            first_seq: after.seq,
        });
        if after.seq <= e.seq || e.end() > after.start + FIT_TOLERANCE || !after_first {
            continue;
        }
        let hour = layout::hour_of(e.start);
        match plan.runs.last_mut() {
            Some(run) if last == Some((at, hour)) => run.entries.push((skey, e)),
            _ => plan.runs.push(Run {
                key: FileKey { hour, first_seq: e.seq },
                entries: vec![(skey, e)],
            }),
        }
        last = Some((at, hour));
    }
    plan
}

/// What one replication pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Segments copied.
    pub copied: usize,
    /// Something is left that a later pass may copy (nothing recorded
    /// locally yet, a budget reached, a read failed).
    pub pending: bool,
}

fn read_err(e: ReadError) -> io::Error {
    match e {
        ReadError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Copies the source's segments that fill the local archive's holes (see
/// [`plan_fill`]), newest run first, within the local depth and size
/// limits and the pass budgets. Blocking; stops early when `stop` fires.
pub fn fill_pass(
    archive: &Archive,
    source: &dyn Store,
    copied: &Counter,
    stop: &CancellationToken,
    now: i64,
) -> io::Result<Outcome> {
    let dir = layout::stream_dir(&archive.name);
    archive.rescan()?;
    let from = archive.cfg.depth.map_or(i64::MIN, |d| {
        now.saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX).saturating_mul(CLOCK_HZ))
    });
    let local_ranges = archive.ranges().map_err(read_err)?;
    if local_ranges.is_empty() {
        // Nothing recorded yet: the hole's far end is unknown.
        return Ok(Outcome {
            copied: 0,
            pending: true,
        });
    }
    let gaps = holes(&local_ranges, from);
    if gaps.is_empty() {
        return Ok(Outcome::default());
    }
    let mut budget = REPLICATE_MAX_BYTES;
    if let Some(max) = archive.cfg.max_size {
        let (bytes, _) = archive.update_gauges(None);
        budget = budget.min((max / 10 * 9).saturating_sub(bytes));
    }
    if let (Some(p), Ok(Some(u))) = (archive.cfg.disk_limit_percent, archive.store().usage()) {
        let limit = u.total / 100 * u64::from(p.saturating_sub(1));
        budget = budget.min(limit.saturating_sub(u.used));
    }
    if budget == 0 {
        return Ok(Outcome::default());
    }
    let listing = source.list(&dir)?;
    let local_files: HashSet<FileKey> = archive.files().iter().map(|f| f.key).collect();
    let mut indexes: BTreeMap<FileKey, Arc<Vec<IndexEntry>>> = BTreeMap::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut pending = false;
    for &(a, b) in &gaps {
        let (lo, hi) = (layout::hour_of(a).saturating_sub(1), layout::hour_of(b));
        let keys: Vec<FileKey> = listing
            .iter()
            .filter(|l| l.kind == FileKind::Index && l.bytes > 0 && l.key.hour >= lo && l.key.hour <= hi)
            .map(|l| l.key)
            .collect();
        let mut src: Vec<(FileKey, IndexEntry)> = Vec::new();
        for key in keys {
            if !indexes.contains_key(&key) {
                if indexes.len() >= REPLICATE_MAX_INDEXES {
                    pending = true;
                    break;
                }
                let raw = source.read_all(&dir, key, FileKind::Index, MAX_INDEX_BYTES)?;
                let parsed = index::parse_index(&raw)
                    .ok()
                    .filter(|p| p.first_seq == key.first_seq)
                    .map(|p| p.entries)
                    .unwrap_or_default();
                indexes.insert(key, Arc::new(parsed));
            }
            if let Some(entries) = indexes.get(&key) {
                src.extend(entries.iter().filter(|e| e.end() > a && e.start < b).map(|e| (key, *e)));
            }
        }
        let local = archive
            .entries_between(a.saturating_sub(CONTEXT), b.saturating_add(CONTEXT), 16_384)
            .map_err(read_err)?;
        let plan = plan_fill(&src, &local, &local_files, from);
        pending |= plan.waiting > 0;
        runs.extend(plan.runs);
    }
    let mut out = Outcome { copied: 0, pending };
    let started = Instant::now();
    let mut bytes_done = 0u64;
    // Newest first: with a budget, the recent past matters most.
    for run in runs.iter().rev() {
        if stop.is_cancelled() {
            out.pending = true;
            break;
        }
        let r = copy_run(archive, source, &dir, run, stop, started, &mut bytes_done, budget);
        match r {
            Ok((n, complete)) => {
                out.copied += n;
                copied.inc_by(n as u64);
                // They are archived segments like the writer's.
                archive.metrics().written.inc_by(n as u64);
                if !complete {
                    out.pending = true;
                    break;
                }
            }
            Err(e) => {
                archive.rescan()?;
                return Err(e);
            }
        }
        if out.copied >= REPLICATE_MAX_SEGMENTS {
            out.pending = true;
            break;
        }
    }
    if out.copied > 0 {
        archive.rescan()?;
    }
    Ok(out)
}

/// Copies one run into a new local file pair. Returns the segments copied
/// and whether the run is complete (false: budget reached or stopped).
#[allow(clippy::too_many_arguments)]
fn copy_run(
    archive: &Archive,
    source: &dyn Store,
    dir: &str,
    run: &Run,
    stop: &CancellationToken,
    started: Instant,
    bytes_done: &mut u64,
    budget: u64,
) -> io::Result<(usize, bool)> {
    let store = archive.store();
    let mut appender = store.create(dir, run.key, &index::encode_header(run.key.first_seq))?;
    let mut offset = 0u64;
    let mut n = 0usize;
    let mut complete = true;
    let mut i = 0;
    'batches: while i < run.entries.len() {
        // Consecutive messages of one source file are read at once.
        let (skey, first) = run.entries[i];
        let mut j = i + 1;
        let mut len = u64::from(first.len);
        while let Some((k, e)) = run.entries.get(j) {
            if *k != skey || e.offset != first.offset + len || len + u64::from(e.len) > READ_BATCH {
                break;
            }
            len += u64::from(e.len);
            j += 1;
        }
        if *bytes_done + len > budget || stop.is_cancelled() {
            complete = false;
            break;
        }
        let data = source.read(dir, skey, FileKind::Data, first.offset, len)?;
        for (_, e) in &run.entries[i..j] {
            let at = usize::try_from(e.offset - first.offset).unwrap_or(usize::MAX);
            let Some(msg) = data.get(at..at.saturating_add(e.len as usize)) else {
                complete = false;
                break 'batches;
            };
            let seg = match decode_one(msg) {
                Ok(s) if s.seq == e.seq && s.start == e.start && s.duration == e.duration => s,
                _ => {
                    // Damaged on the source: the run ends here.
                    complete = false;
                    break 'batches;
                }
            };
            let entry = IndexEntry::of(&seg, offset, e.len);
            appender.append(msg, &entry.encode())?;
            offset += u64::from(e.len);
            n += 1;
        }
        *bytes_done += len;
        i = j;
        // Rate: never ahead of REPLICATE_RATE since the pass began.
        let due = Duration::from_secs_f64(*bytes_done as f64 / REPLICATE_RATE as f64);
        while started.elapsed() < due && !stop.is_cancelled() {
            std::thread::sleep((due - started.elapsed()).min(Duration::from_millis(100)));
        }
    }
    if n == 0 {
        drop(appender);
        let _ = store.delete(dir, run.key);
        return Ok((0, complete && run.entries.is_empty()));
    }
    appender.sync()?;
    Ok((n, complete))
}

/// Replication of one restreamed stream that records locally: passes of
/// [`fill_pass`] from its source's archive until `stop`: the first after
/// [`REPLICATE_FIRST`], then every [`REPLICATE_EVERY`] (or
/// [`REPLICATE_RETRY`] while something is pending). `copied` counts the
/// segments (`strom_dvr_replicated_segments_total`).
pub async fn replicate(archive: Arc<Archive>, source: Arc<dyn Store>, copied: Counter, stop: CancellationToken) {
    let mut wait = REPLICATE_FIRST;
    let log = crate::util::LogLimiter::new(Duration::from_secs(300));
    loop {
        if !crate::util::sleep_or_cancel(&stop, wait).await {
            return;
        }
        let (a, s, c, st) = (archive.clone(), source.clone(), copied.clone(), stop.clone());
        let r = tokio::task::spawn_blocking(move || fill_pass(&a, s.as_ref(), &c, &st, crate::util::utc90_now())).await;
        wait = match r {
            Ok(Ok(o)) => {
                if o.copied > 0 {
                    tracing::info!(stream = %archive.name, segments = o.copied, source = %source.location(), "archive gaps filled from the source");
                }
                if o.pending {
                    REPLICATE_RETRY
                } else {
                    REPLICATE_EVERY
                }
            }
            Ok(Err(e)) => {
                if let Some(held_back) = log.allow(Instant::now()) {
                    tracing::warn!(stream = %archive.name, source = %source.location(), error = %e, held_back, "archive replication failed");
                }
                REPLICATE_RETRY
            }
            Err(_) => REPLICATE_EVERY,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dvr::store::LocalStore;
    use proptest::prelude::*;

    fn tmpdir(tag: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("strom-dvrcluster-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    const Q: &str = "hour=490000&first_seq=1795314471&kind=data&offset=0&len=1000";

    #[test]
    fn read_queries_are_parsed_strictly() {
        let q = parse_read_query(Some(Q)).expect("valid");
        assert_eq!(
            q,
            ReadQuery {
                key: FileKey {
                    hour: 490_000,
                    first_seq: 1_795_314_471
                },
                kind: FileKind::Data,
                offset: 0,
                len: 1000
            }
        );
        assert_eq!(parse_read_query(Some(&read_query_string(&q))), Ok(q));
        // Order does not matter; unknown parameters are ignored.
        let shuffled = "len=5&kind=index&x=1&offset=16&first_seq=7&hour=0";
        assert_eq!(
            parse_read_query(Some(shuffled)).map(|q| (q.kind, q.offset, q.len)),
            Ok((FileKind::Index, 16, 5))
        );
        let bad = |q: &str| parse_read_query(Some(q)).err();
        assert_eq!(parse_read_query(None).err(), Some(BadQuery::Missing("hour")));
        assert_eq!(bad(&Q.replace("&len=1000", "")), Some(BadQuery::Missing("len")));
        assert_eq!(bad(&format!("{Q}&hour=1")), Some(BadQuery::Twice("hour")));
        assert_eq!(
            bad(&Q.replace("hour=490000", "hour=-1")),
            Some(BadQuery::Number("hour"))
        );
        assert_eq!(
            bad(&Q.replace("hour=490000", "hour=+1")),
            Some(BadQuery::Number("hour"))
        );
        assert_eq!(
            bad(&Q.replace("hour=490000", &format!("hour={}", MAX_HOUR + 1))),
            Some(BadQuery::Number("hour"))
        );
        assert_eq!(
            bad(&Q.replace("offset=0", "offset=0x10")),
            Some(BadQuery::Number("offset"))
        );
        assert_eq!(
            bad(&Q.replace("offset=0", "offset=18446744073709551616")),
            Some(BadQuery::Number("offset")),
            "u64 overflow"
        );
        assert_eq!(bad(&Q.replace("offset=0", "offset=")), Some(BadQuery::Number("offset")));
        assert_eq!(
            bad(&Q.replace("offset=0", "offset=18446744073709551615")),
            Some(BadQuery::Overflow)
        );
        assert_eq!(bad(&Q.replace("kind=data", "kind=DATA")), Some(BadQuery::Kind));
        assert_eq!(bad(&Q.replace("len=1000", "len=0")), Some(BadQuery::Len(MAX_READ)));
        assert_eq!(
            bad(&Q.replace("len=1000", &format!("len={}", MAX_READ + 1))),
            Some(BadQuery::Len(MAX_READ))
        );
        assert!(parse_read_query(Some(&Q.replace("len=1000", &format!("len={MAX_READ}")))).is_ok());
        assert_eq!(
            bad(&Q
                .replace("kind=data", "kind=index")
                .replace("len=1000", &format!("len={}", MAX_INDEX_BYTES + 1))),
            Some(BadQuery::Len(MAX_INDEX_BYTES))
        );
        assert_eq!(bad(&format!("{Q}&pad={}", "x".repeat(600))), Some(BadQuery::TooLong));
    }

    proptest! {
        #[test]
        fn read_query_round_trips(hour in 0..=MAX_HOUR, first_seq: u64, data: bool, offset in 0u64..u64::MAX / 2, len in 1u64..=MAX_INDEX_BYTES) {
            let q = ReadQuery { key: FileKey { hour, first_seq }, kind: if data { FileKind::Data } else { FileKind::Index }, offset, len };
            prop_assert_eq!(parse_read_query(Some(&read_query_string(&q))), Ok(q));
        }

        #[test]
        fn read_query_parser_never_panics(s in "\\PC{0,200}") {
            let _ = parse_read_query(Some(&s));
        }
    }

    #[test]
    fn listings_from_a_peer_are_checked() {
        let f = |hour: i64, first_seq: u64, kind: WireKind, bytes: u64| ListedFile {
            hour,
            first_seq,
            kind,
            bytes,
        };
        let list: FileList = serde_json::from_str(
            r#"{"files":[{"hour":5,"first_seq":9,"kind":"index","bytes":64},
                         {"hour":5,"first_seq":9,"kind":"data","bytes":1000},
                         {"hour":5,"first_seq":9,"kind":"thumbnail","bytes":1}],"future":true}"#,
        )
        .expect("an unknown kind and field parse");
        let (ok, bad) = admit_listing(list);
        assert_eq!(bad, 0);
        assert_eq!(
            ok.iter().map(|l| (l.kind, l.bytes)).collect::<Vec<_>>(),
            vec![(FileKind::Data, 1000), (FileKind::Index, 64)],
            "sorted like Store::list, unknown kinds skipped"
        );
        let (ok, bad) = admit_listing(FileList {
            files: vec![
                f(-1, 1, WireKind::Data, 1),
                f(MAX_HOUR + 1, 1, WireKind::Data, 1),
                f(1, 1, WireKind::Data, MAX_FILE_BYTES + 1),
                f(1, 1, WireKind::Data, 5),
                f(1, 1, WireKind::Data, 6),
            ],
            truncated: false,
        });
        assert_eq!((ok.len(), bad), (1, 4));
        assert_eq!(ok[0].bytes, 5, "the first of two duplicates");
        let many = FileList {
            files: (0..MAX_LISTED as u64 + 3).map(|i| f(1, i, WireKind::Data, 1)).collect(),
            truncated: false,
        };
        let (ok, bad) = admit_listing(many);
        assert_eq!((ok.len(), bad), (MAX_LISTED, 3));
    }

    fn segment(seq: u64, start: i64) -> strom_media::Segment {
        let track = strom_media::Track {
            id: 0,
            codec: strom_media::Codec::Aac,
            params: strom_media::TrackParams {
                sample_rate: 48_000,
                channels: 2,
                aac_object_type: 2,
                ..strom_media::TrackParams::default()
            },
        };
        let frames = (0..4)
            .map(|i| strom_media::Frame {
                track: 0,
                dts: start + i * CLOCK_HZ / 2,
                pts: start + i * CLOCK_HZ / 2,
                keyframe: true,
                data: Bytes::from(vec![seq as u8; 100 + i as usize]),
            })
            .collect();
        strom_media::Segment {
            seq,
            start,
            duration: 2 * CLOCK_HZ,
            discontinuity: false,
            target_duration: 2,
            tracks: Arc::from(vec![track]),
            frames,
        }
    }

    /// An hour boundary plus 10 minutes.
    const T0: i64 = 490_000 * HOUR_TICKS + 600 * CLOCK_HZ;

    fn at(seq: u64) -> i64 {
        T0 + (seq as i64 - 100) * 2 * CLOCK_HZ
    }

    fn archive(root: &std::path::Path, name: &str) -> Archive {
        let f = crate::dvr::DvrFamilies::default();
        Archive::new(
            name,
            DvrConfig::new(root),
            Arc::new(LocalStore::new(root)),
            f.stream(name),
        )
    }

    fn record(a: &Archive, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            let s = segment(seq, at(seq));
            a.write(&s, &strom_media::wire::encode_segment(&s)).expect("write");
        }
    }

    #[test]
    fn the_newest_pair_is_listed_as_far_as_its_index_covers() {
        let root = tmpdir("listing");
        let a = archive(&root, "tv/one");
        record(&a, 100..103);
        a.close();
        record(&a, 110..113); // a second file, still "being written"
        let store = LocalStore::new(&root);
        let dir = layout::stream_dir("tv/one");
        let full = source_listing(&store, &dir).expect("list");
        assert_eq!(full.files.len(), 4);
        assert!(!full.truncated);
        let newest = store
            .list(&dir)
            .expect("list")
            .iter()
            .map(|l| l.key)
            .max()
            .expect("a file");
        // The writer appended a message but not yet its index entry, and
        // half of the next one.
        let extra = strom_media::wire::encode_segment(&segment(113, at(113)));
        let data_path = root.join(&dir).join(layout::relative_path(newest, FileKind::Data));
        let mut bytes = std::fs::read(&data_path).expect("data");
        let before = bytes.len() as u64;
        bytes.extend_from_slice(&extra);
        bytes.extend_from_slice(&extra[..10]);
        std::fs::write(&data_path, &bytes).expect("write");
        let l = source_listing(&store, &dir).expect("list");
        let size = |kind: WireKind| {
            l.files
                .iter()
                .find(|f| f.first_seq == newest.first_seq && f.kind == kind)
                .map(|f| f.bytes)
        };
        assert_eq!(size(WireKind::Data), Some(before), "data cut to the indexed segments");
        assert_eq!(
            size(WireKind::Index),
            Some((index::HEADER_LEN + 3 * index::ENTRY_LEN) as u64)
        );
        // Older files are listed as they are.
        assert_eq!(l.files[..2], full.files[..2]);
        let _ = std::fs::remove_dir_all(&root);
    }

    proptest! {
        #[test]
        fn the_lru_stays_within_its_bounds(ops in proptest::collection::vec((0u8..40, 0u64..300, any::<bool>()), 1..300)) {
            let mut lru = Lru::new(1000, 16);
            let mut model: HashMap<String, u64> = HashMap::new();
            for (name, bytes, touch) in ops {
                let name = format!("f{name}");
                if touch {
                    prop_assert_eq!(lru.touch(&name), model.get(&name).copied());
                } else {
                    let gone = lru.insert(name.clone(), bytes);
                    model.insert(name.clone(), bytes);
                    for g in &gone {
                        model.remove(g);
                    }
                    prop_assert!(!gone.contains(&name), "the newest entry that fits is kept");
                }
                prop_assert!(lru.total() <= 1000);
                prop_assert!(lru.len() <= 16);
                prop_assert_eq!(lru.total(), model.values().sum::<u64>());
                prop_assert_eq!(lru.len(), model.len());
            }
        }
    }

    #[test]
    fn the_lru_evicts_the_least_recently_used() {
        let mut lru = Lru::new(100, 10);
        assert!(lru.insert("a".into(), 40).is_empty());
        assert!(lru.insert("b".into(), 40).is_empty());
        assert_eq!(lru.touch("a"), Some(40));
        assert_eq!(lru.insert("c".into(), 40), vec!["b".to_string()]);
        assert_eq!(lru.insert("big".into(), 101), vec!["big".to_string()], "never fits");
        assert_eq!(lru.total(), 80);
        assert!(lru.remove("a"));
        assert_eq!(lru.total(), 40);
    }

    #[test]
    fn the_disk_cache_is_bounded_and_survives_a_restart() {
        let root = tmpdir("cache");
        let key = |s: u64| FileKey {
            hour: 490_000,
            first_seq: s,
        };
        let dir = layout::stream_dir("tv/one");
        let c = DiskCache::new(&root, 250);
        let names: Vec<String> = (0..3).map(|i| chunk_name(&dir, key(1), i * 100, 100)).collect();
        for (i, n) in names.iter().enumerate() {
            c.put(n, &[i as u8; 100]).expect("put");
        }
        assert_eq!(c.total(), 200, "the oldest went to stay within 250 bytes");
        assert!(c.get(&names[0], 100).is_none());
        assert!(!root.join(&names[0]).exists(), "its file is deleted");
        assert_eq!(c.get(&names[2], 100).as_deref(), Some(&[2u8; 100][..]));
        assert!(c.get(&names[2], 99).is_none(), "a size mismatch is a miss");
        c.put(&index_name(&dir, key(1)), &[9u8; 64]).expect("put");
        // Ages as a restart sees them: the chunk older than the index.
        let age = |name: &str, secs: u64| {
            std::fs::File::options()
                .write(true)
                .open(root.join(name))
                .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(secs)))
                .expect("mtime");
        };
        age(&names[1], 60);
        age(&index_name(&dir, key(1)), 1);
        c.put(&chunk_name(&dir, key(1), 0, 300), &[1u8; 300])
            .expect("too big: ignored");
        assert!(!root.join(chunk_name(&dir, key(1), 0, 300)).exists());
        // Leftovers of a crash and foreign files.
        std::fs::write(root.join(format!("{}.7.tmp", names[1])), b"x").expect("tmp");
        std::fs::write(root.join(&dir).join("notes.txt"), b"x").expect("foreign");
        let damaged = chunk_name(&dir, key(2), 0, 50);
        std::fs::create_dir_all(root.join(&damaged).parent().expect("parent")).expect("dir");
        std::fs::write(root.join(&damaged), [0u8; 10]).expect("short chunk");
        // A restart with a smaller bound keeps the newest files only.
        let d = DiskCache::new(&root, 120);
        assert_eq!(d.total(), 64, "only the index fits after the chunk: {}", d.total());
        assert!(d.get(&index_name(&dir, key(1)), 64).is_some());
        assert!(!root.join(&damaged).exists(), "a short chunk is deleted");
        assert!(!root.join(format!("{}.7.tmp", names[1])).exists());
        assert!(
            root.join(&dir).join("notes.txt").exists(),
            "foreign files are left alone"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    fn entry(seq: u64) -> IndexEntry {
        let s = segment(seq, at(seq));
        IndexEntry::of(&s, 0, 100)
    }

    fn first_of(seq: u64) -> FileKey {
        FileKey {
            hour: layout::hour_of(at(seq)),
            first_seq: seq,
        }
    }

    #[test]
    fn holes_are_the_uncovered_spans_before_the_newest_range() {
        let r = |from: i64, duration: i64| Range { from, duration };
        assert_eq!(holes(&[r(10, 5), r(20, 5)], 0), vec![(0, 10), (15, 20)]);
        assert_eq!(holes(&[r(10, 5), r(20, 5)], 12), vec![(15, 20)]);
        assert_eq!(holes(&[r(10, 5)], 10), Vec::<(i64, i64)>::new());
        assert!(holes(&[], 0).is_empty());
        assert_eq!(holes(&[r(10, 5)], i64::MIN), vec![(i64::MIN, 10)]);
    }

    #[test]
    fn a_gap_between_two_files_is_planned_as_runs_per_hour() {
        let src: Vec<(FileKey, IndexEntry)> = (100..120).map(|s| (first_of(100), entry(s))).collect();
        // Local: 100..105 in one file, 112..120 in a file after a restart.
        let local: Vec<IndexEntry> = (100..105).chain(112..120).map(entry).collect();
        let files: HashSet<FileKey> = [first_of(100), first_of(112)].into();
        let p = plan_fill(&src, &local, &files, i64::MIN);
        assert_eq!(p.waiting, 0);
        assert_eq!(p.runs.len(), 1);
        assert_eq!(p.runs[0].key, first_of(105));
        assert_eq!(
            p.runs[0].entries.iter().map(|(_, e)| e.seq).collect::<Vec<_>>(),
            (105..112).collect::<Vec<_>>()
        );
        // Depth: nothing before `from` is copied.
        let p = plan_fill(&src, &local, &files, at(108));
        assert_eq!(p.runs[0].key.first_seq, 108);
        // Across an hour boundary: one file per hour.
        let hour_end = (layout::hour_of(at(100)) + 1) * HOUR_TICKS;
        let shift = |e: IndexEntry| IndexEntry {
            start: e.start - at(108) + hour_end,
            ..e
        };
        let src2: Vec<(FileKey, IndexEntry)> = src.iter().map(|(k, e)| (*k, shift(*e))).collect();
        let local2: Vec<IndexEntry> = local.iter().map(|e| shift(*e)).collect();
        let files2: HashSet<FileKey> = [100, 112]
            .iter()
            .map(|s| FileKey {
                hour: layout::hour_of(shift(entry(*s)).start),
                first_seq: *s,
            })
            .collect();
        let p = plan_fill(&src2, &local2, &files2, i64::MIN);
        assert_eq!(
            p.runs.iter().map(|r| r.key.first_seq).collect::<Vec<_>>(),
            vec![105, 108],
            "{p:?}"
        );
        assert!(p.runs[0].key.hour < p.runs[1].key.hour);
    }

    #[test]
    fn what_cannot_be_placed_safely_is_not_planned() {
        let src: Vec<(FileKey, IndexEntry)> = (100..120).map(|s| (first_of(100), entry(s))).collect();
        let local: Vec<IndexEntry> = (100..105).chain(112..120).map(entry).collect();
        // The segment after the hole is inside a file (a file with a hole of its own).
        let inner: HashSet<FileKey> = [first_of(100)].into();
        assert!(plan_fill(&src, &local, &inner, i64::MIN).runs.is_empty());
        // Nothing recorded after the hole yet: wait.
        let only_before: Vec<IndexEntry> = (100..105).map(entry).collect();
        let p = plan_fill(&src, &only_before, &[first_of(100)].into(), i64::MIN);
        assert!(p.runs.is_empty());
        assert_eq!(p.waiting, 15);
        // Renumbered locally (a feed that did not continue was numbered on
        // from 105): the source's 105..112 are local numbers at other
        // times, and nothing of the source fits between the neighbours.
        let renumbered: Vec<IndexEntry> = (100..105)
            .chain(112..120)
            .map(|s| IndexEntry {
                seq: if s >= 112 { s - 7 } else { s },
                ..entry(s)
            })
            .collect();
        let files: HashSet<FileKey> = [
            first_of(100),
            FileKey {
                hour: first_of(112).hour,
                first_seq: 105,
            },
        ]
        .into();
        assert!(plan_fill(&src, &renumbered, &files, i64::MIN).runs.is_empty());
        // A source segment overlapping a local one in time is not copied.
        let late = (
            first_of(100),
            IndexEntry {
                start: at(104) + CLOCK_HZ,
                ..entry(105)
            },
        );
        let files: HashSet<FileKey> = [first_of(100), first_of(112)].into();
        assert!(plan_fill(&[late], &local, &files, i64::MIN).runs.is_empty());
    }

    #[test]
    fn a_pass_fills_the_hole_with_the_sources_bytes() {
        let src_root = tmpdir("repl-src");
        let dst_root = tmpdir("repl-dst");
        let source = archive(&src_root, "ch");
        record(&source, 100..120);
        source.close();
        let local = archive(&dst_root, "ch");
        record(&local, 100..104);
        local.close();
        record(&local, 113..116);
        local.close();
        let counter = Counter::default();
        let stop = CancellationToken::new();
        let src_store = LocalStore::new(&src_root);
        let o = fill_pass(&local, &src_store, &counter, &stop, at(120)).expect("pass");
        assert_eq!(
            o,
            Outcome {
                copied: 9,
                pending: false
            }
        );
        assert_eq!(counter.get(), 9);
        let r = local.ranges().expect("ranges");
        assert_eq!(r.len(), 1, "no gap left: {r:?}");
        for seq in 100..116 {
            let (sk, se) = source.find(seq).expect("source");
            let (lk, le) = local.find(seq).expect("local");
            assert_eq!(
                source.message(sk, &se).expect("msg"),
                local.message(lk, &le).expect("msg"),
                "segment {seq}"
            );
            assert_eq!(IndexEntry { offset: 0, ..se }, IndexEntry { offset: 0, ..le });
        }
        // The files in key order still hold increasing numbers.
        let fresh = archive(&dst_root, "ch");
        let keys: Vec<FileKey> = {
            fresh.scan().expect("scan");
            fresh.files().iter().map(|f| f.key).collect()
        };
        assert!(
            keys.windows(2).all(|w| w[0] < w[1] && w[0].first_seq < w[1].first_seq),
            "{keys:?}"
        );
        assert_eq!(keys.len(), 3);
        // A second pass finds nothing to do.
        let o = fill_pass(&local, &src_store, &counter, &stop, at(120)).expect("pass");
        assert_eq!(o, Outcome::default());
        // A depth that starts after the hole copies nothing.
        let _ = std::fs::remove_dir_all(&src_root);
        let _ = std::fs::remove_dir_all(&dst_root);
    }

    /// A node serving `ch` (archive in `root`) on a loopback port; its address.
    async fn source_node(root: &std::path::Path, stop: &CancellationToken) -> (Arc<Node>, String) {
        let text = format!(
            "cluster_key k;\nstream ch {{ input udp://239.0.0.1:1234; dvr {}; }}",
            root.display()
        );
        let cfg = strom_config::parse("t.conf", &text).expect("config");
        let node = Node::new(&cfg, stop.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let opts = crate::net::ServeOptions {
            timeouts: crate::net::Timeouts {
                header: Duration::from_secs(5),
                keepalive: Duration::from_secs(5),
                send: Duration::from_secs(5),
            },
            slots: Arc::new(tokio::sync::Semaphore::new(64)),
            counters: crate::net::ConnCounters::default(),
        };
        tokio::spawn(crate::net::serve(
            l,
            crate::http::router(node.clone()),
            opts,
            stop.clone(),
        ));
        (node, addr)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_remote_store_reads_the_sources_bytes_over_signed_calls() {
        let root = tmpdir("remote-src");
        let cache_root = tmpdir("remote-cache");
        let stop = CancellationToken::new();
        let (node, addr) = source_node(&root, &stop).await;
        let src = node.stream("ch").and_then(|s| s.spec.archive.clone()).expect("archive");
        // Two finished hours long ago, and the newest file still growing.
        let old = |seq: u64| segment(seq, at(seq) - 5 * HOUR_TICKS);
        for seq in 100..104 {
            let s = old(seq);
            src.write(&s, &strom_media::wire::encode_segment(&s)).expect("write");
        }
        src.close();
        for seq in 104..106 {
            let s = segment(seq, crate::util::utc90_now() - (106 - seq as i64) * 2 * CLOCK_HZ);
            src.write(&s, &strom_media::wire::encode_segment(&s)).expect("write");
        }
        let client = crate::util::cluster_client(Duration::from_secs(3)).expect("client");
        let remote =
            Arc::new(RemoteStore::new(&addr, Some("k"), client.clone(), node.metrics.clone()).expect("remote"));
        let wrong = RemoteStore::new(&addr, Some("nope"), client, node.metrics.clone()).expect("remote");
        let (src2, remote2, cache_root2) = (src.clone(), remote.clone(), cache_root.clone());
        let cached = tokio::task::spawn_blocking(move || {
            let src = src2;
            let remote = remote2;
            let dir = layout::stream_dir("ch");
            let local = src.store().list(&dir).expect("list");
            assert_eq!(
                remote.list(&dir).expect("remote list"),
                local,
                "a quiet archive is listed as it is"
            );
            assert!(remote
                .list(&layout::stream_dir("other"))
                .expect("no archive")
                .is_empty());
            assert_eq!(
                wrong.list(&dir).map_err(|e| e.kind()).err(),
                Some(io::ErrorKind::PermissionDenied),
                "a wrong key is refused"
            );
            assert_eq!(
                remote.create(&dir, local[0].key, b"").err().map(|e| e.kind()),
                Some(io::ErrorKind::Unsupported)
            );
            assert_eq!(
                remote
                    .read(&dir, local[0].key, FileKind::Data, 0, MAX_READ + 1)
                    .map_err(|e| e.kind())
                    .err(),
                Some(io::ErrorKind::InvalidInput)
            );
            let missing = FileKey { hour: 1, first_seq: 1 };
            assert_eq!(
                remote
                    .read(&dir, missing, FileKind::Data, 0, 10)
                    .map_err(|e| e.kind())
                    .err(),
                Some(io::ErrorKind::NotFound)
            );
            // An archive over the remote store reads the same messages.
            let fam = crate::dvr::DvrFamilies::default();
            let cache = Arc::new(DiskCache::new(&cache_root2, 1 << 20));
            let cached: Arc<dyn Store> = Arc::new(CachingStore::new(remote.clone(), cache.clone()));
            let view = Archive::new("ch", DvrConfig::new("cluster://test"), cached.clone(), fam.stream("ch"));
            for seq in 100..106 {
                let (k, e) = src.find(seq).expect("source");
                let (vk, ve) = view.find(seq).expect("remote");
                assert_eq!((k, e), (vk, ve));
                assert_eq!(
                    src.message(k, &e).expect("msg"),
                    view.message(vk, &ve).expect("remote msg")
                );
            }
            assert_eq!(view.ranges().expect("ranges"), src.ranges().expect("ranges"));
            // The source records on: once the listing is older than its
            // ttl, the view sees the new segments (the growing file's index
            // is read again).
            let newer = |seq: u64| segment(seq, crate::util::utc90_now() + (seq as i64 - 106) * 2 * CLOCK_HZ);
            for seq in 106..108 {
                let s = newer(seq);
                src.write(&s, &strom_media::wire::encode_segment(&s)).expect("write");
            }
            assert!(view.find(107).is_err(), "not listed yet");
            std::thread::sleep(LISTING_TTL + Duration::from_millis(100));
            let (k, e) = view.find(107).expect("listed again");
            assert_eq!(view.message(k, &e).expect("msg"), src.message(k, &e).expect("msg"));
            assert_eq!(view.ranges().expect("ranges"), src.ranges().expect("ranges"));
            assert_eq!(
                view.last_error(),
                None,
                "nothing was repaired or rewritten: {:?}",
                view.last_error()
            );
            // Only the finished old file went to the cache: its index and
            // four messages.
            let old_key = local[0].key;
            let idx_bytes = local.iter().find(|l| l.kind == FileKind::Index).map_or(0, |l| l.bytes);
            let data_bytes = local.iter().find(|l| l.kind == FileKind::Data).map_or(0, |l| l.bytes);
            assert_eq!(cache.total(), idx_bytes + data_bytes);
            assert!(cache_root2.join(index_name(&dir, old_key)).exists());
            (cached, old_key)
        })
        .await
        .expect("blocking part");
        // The source goes away: what was cached still reads, through the
        // last good listing; the rest fails cleanly.
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (cached, old_key) = cached;
        let src2 = src.clone();
        let metrics = node.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let errors = |kind: &'static str| {
                metrics
                    .cluster_errors
                    .get_or_create(&crate::metrics::KindLabel { kind })
                    .get()
            };
            let (lists, reads) = (errors("dvr_list"), errors("dvr_read"));
            let fam = crate::dvr::DvrFamilies::default();
            let view = Archive::new("ch", DvrConfig::new("cluster://test"), cached, fam.stream("ch"));
            for seq in 100..104 {
                let (k, e) = view.find(seq).expect("from the cache");
                assert_eq!(k, old_key);
                assert_eq!(
                    view.message(k, &e).expect("cached msg"),
                    src2.message(k, &e).expect("msg")
                );
            }
            assert!(errors("dvr_list") > lists, "the source was unreachable");
            assert_eq!(errors("dvr_read"), reads, "the cached file needed no call");
            assert!(view.find(105).is_err(), "the newest file was never cached");
            assert!(errors("dvr_read") > reads);
        })
        .await
        .expect("blocking part");
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&cache_root);
    }
}
