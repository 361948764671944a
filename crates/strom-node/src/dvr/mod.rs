//! DVR: every stream with `dvr` records its segments to disk, and archive
//! URLs (catch-up, timeshift, downloads) read them back.
//!
//! The room:
//! - [`store`]: the storage backend trait and the local filesystem;
//! - [`archive`]: one stream's catalogue, writer and reads;
//! - [`request`]: the archive URLs (pure);
//! - [`cluster`]: a source's archive over the cluster (endpoints, remote store, edge cache, replication);
//! - `crate::output::dvr`: the output that feeds the writer and serves the
//!   archive URLs;
//!
//! This module holds [`Dvr`], the node's registry: one [`store::Store`] per
//! storage root, one [`archive::Archive`] per stream, the writer queues and
//! the retention pass.
//!
//! Invariants:
//! - The stream task never waits on a disk: a finished segment is offered to
//!   its archive's writer through a queue of [`WRITE_QUEUE`] segments; when
//!   the queue is full the segment is dropped and counted
//!   (`strom_dvr_dropped_segments_total`).
//! - A write error (a full disk, a read-only filesystem) is counted, noted
//!   in the stream status, and ends the current file; recording resumes
//!   with a new file at the next segment that can be written. Live delivery
//!   never depends on it.
//! - Retention deletes whole hours, oldest first: by depth and size per
//!   stream, by disk usage per storage root across its streams.

pub mod archive;
pub mod cluster;
pub mod request;
pub mod store;

use archive::Archive;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{LocalStore, Store};
use strom_config::DvrConfig;
use strom_media::dvr::layout::FileKey;
use strom_media::dvr::retention;

use crate::metrics::{ReasonLabel, StreamLabel};
use crate::stream::window::StoredSegment;

/// Finished segments waiting for the disk, per stream.
pub const WRITE_QUEUE: usize = 64;
/// How often retention runs.
pub const RETENTION_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PathLabel {
    pub path: String,
}

/// The DVR metric families (registered once per node).
#[derive(Clone, Default)]
pub struct DvrFamilies {
    bytes: Family<StreamLabel, Gauge>,
    depth: Family<StreamLabel, Gauge>,
    write_errors: Family<StreamLabel, Counter>,
    dropped: Family<StreamLabel, Counter>,
    written: Family<StreamLabel, Counter>,
    replicated: Family<StreamLabel, Counter>,
    torn_tails: Counter,
    index_rebuilds: Counter,
    damaged: Counter,
    deleted_bytes: Family<ReasonLabel, Counter>,
    disk_percent: Family<PathLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    bad_requests: Family<ReasonLabel, Counter>,
}

impl DvrFamilies {
    /// Registers every family in `r` (prefix `strom_`).
    pub fn register(&self, r: &mut Registry) {
        r.register("dvr_bytes", "Bytes of a stream's archive on disk", self.bytes.clone());
        r.register(
            "dvr_depth_seconds",
            "Seconds from a stream's oldest archived segment to now",
            self.depth.clone(),
        );
        r.register(
            "dvr_write_errors",
            "Archive writes that failed (full disk, I/O error)",
            self.write_errors.clone(),
        );
        r.register(
            "dvr_dropped_segments",
            "Segments not archived because the disk fell behind (queue full) or a write failed",
            self.dropped.clone(),
        );
        r.register("dvr_segments_written", "Segments archived", self.written.clone());
        r.register(
            "dvr_replicated_segments",
            "Segments copied from a source's archive into this node's (replication after downtime)",
            self.replicated.clone(),
        );
        r.register(
            "dvr_torn_tails",
            "Archive files found with a torn or damaged tail and cut back",
            self.torn_tails.clone(),
        );
        r.register(
            "dvr_damaged_bytes",
            "Archive bytes found damaged (CRC, framing) between good segments and skipped",
            self.damaged.clone(),
        );
        r.register(
            "dvr_index_rebuilds",
            "Archive indexes missing or damaged and rebuilt from the data",
            self.index_rebuilds.clone(),
        );
        r.register(
            "dvr_deleted_bytes",
            "Archive bytes deleted, by reason (depth, size, disk, api)",
            self.deleted_bytes.clone(),
        );
        r.register(
            "dvr_disk_usage_percent",
            "Used space of the filesystem holding a DVR path, percent",
            self.disk_percent.clone(),
        );
        r.register(
            "dvr_bad_requests",
            "Archive requests refused, by reason",
            self.bad_requests.clone(),
        );
    }

    /// Handles for one stream.
    pub fn stream(&self, name: &str) -> DvrMetrics {
        let l = StreamLabel { stream: name.into() };
        DvrMetrics {
            bytes: self.bytes.get_or_create_owned(&l),
            depth: self.depth.get_or_create_owned(&l),
            write_errors: self.write_errors.get_or_create_owned(&l),
            dropped: self.dropped.get_or_create_owned(&l),
            written: self.written.get_or_create_owned(&l),
            torn_tails: self.torn_tails.clone(),
            index_rebuilds: self.index_rebuilds.clone(),
            damaged: self.damaged.clone(),
            deleted_bytes: self.deleted_bytes.clone(),
            bad_requests: self.bad_requests.clone(),
        }
    }

    /// The counter of segments replicated into stream `name`'s archive.
    pub fn replicated(&self, name: &str) -> Counter {
        self.replicated
            .get_or_create_owned(&StreamLabel { stream: name.into() })
    }

    /// Counts a refused archive request.
    pub fn bad_request(&self, reason: &'static str) {
        self.bad_requests.get_or_create(&ReasonLabel { reason }).inc();
    }
}

/// One stream's DVR metric handles.
#[derive(Clone)]
pub struct DvrMetrics {
    pub bytes: Gauge,
    pub depth: Gauge,
    pub write_errors: Counter,
    pub dropped: Counter,
    pub written: Counter,
    pub torn_tails: Counter,
    pub index_rebuilds: Counter,
    pub damaged: Counter,
    deleted_bytes: Family<ReasonLabel, Counter>,
    bad_requests: Family<ReasonLabel, Counter>,
}

impl DvrMetrics {
    /// Counts a refused archive request.
    pub fn bad_request(&self, reason: &'static str) {
        self.bad_requests.get_or_create(&ReasonLabel { reason }).inc();
    }

    fn deleted(&self, reason: &'static str, bytes: u64) {
        self.deleted_bytes.get_or_create(&ReasonLabel { reason }).inc_by(bytes);
    }
}

/// A stream's writer: the queue end the DVR output offers segments to.
pub struct WriterHandle {
    tx: tokio::sync::mpsc::Sender<Arc<StoredSegment>>,
}

impl WriterHandle {
    /// Offers a finished segment; never waits. False (and counted) when the
    /// writer is behind.
    pub fn offer(&self, archive: &Archive, seg: Arc<StoredSegment>) -> bool {
        match self.tx.try_send(seg) {
            Ok(()) => true,
            Err(_) => {
                archive.metrics().dropped.inc();
                false
            }
        }
    }
}

/// The node's archives.
pub struct Dvr {
    families: DvrFamilies,
    stores: Mutex<HashMap<PathBuf, Arc<dyn Store>>>,
    /// Every archive by stream name, and whether local retention manages it.
    archives: Mutex<HashMap<String, (Arc<Archive>, bool)>>,
}

impl Dvr {
    pub fn new(families: DvrFamilies) -> Self {
        Dvr {
            families,
            stores: Mutex::new(HashMap::new()),
            archives: Mutex::new(HashMap::new()),
        }
    }

    pub fn families(&self) -> &DvrFamilies {
        &self.families
    }

    /// The archive of stream `name` recorded per `cfg` (one per name; the
    /// first call's config wins).
    pub fn archive(&self, name: &str, cfg: &DvrConfig) -> Arc<Archive> {
        let mut archives = self.archives.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((a, _)) = archives.get(name) {
            return a.clone();
        }
        let store = self
            .stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(cfg.root.clone())
            .or_insert_with(|| Arc::new(LocalStore::new(cfg.root.clone())) as Arc<dyn Store>)
            .clone();
        let a = Arc::new(Archive::new(name, cfg.clone(), store, self.families.stream(name)));
        archives.insert(name.to_string(), (a.clone(), true));
        a
    }

    /// The archive of stream `name` read from (and, when the store can,
    /// written to) `store` instead of a local directory: a restreamer's view
    /// of its source's archive. One per name, as for [`Dvr::archive`]; not
    /// part of local retention unless `cfg.root` names a local store.
    pub fn archive_with_store(&self, name: &str, cfg: &DvrConfig, store: Arc<dyn Store>) -> Arc<Archive> {
        let mut archives = self.archives.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((a, _)) = archives.get(name) {
            return a.clone();
        }
        let a = Arc::new(Archive::new(name, cfg.clone(), store, self.families.stream(name)));
        archives.insert(name.to_string(), (a.clone(), false));
        a
    }

    /// The archive of stream `name`, if it records.
    pub fn get(&self, name: &str) -> Option<Arc<Archive>> {
        self.archives
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|(a, _)| a.clone())
    }

    /// The archives in local stores (the ones retention manages).
    fn all(&self) -> Vec<Arc<Archive>> {
        self.archives
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|(_, local)| *local)
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Scans every archive's files (names only); run once at start, off the
    /// async workers.
    pub fn scan_all(&self) {
        for a in self.all() {
            if let Err(e) = a.scan() {
                tracing::warn!(stream = %a.name, error = %e, "archive could not be listed");
            }
        }
    }

    /// One retention pass at `now` (UTC ticks): depth and size per stream,
    /// then disk usage per storage root.
    pub fn retain(&self, now: i64) {
        let archives = self.all();
        for a in &archives {
            let files = a.files();
            let doomed_depth = retention::plan_stream(&files, now, a.cfg.depth, None);
            if !doomed_depth.is_empty() {
                a.delete(&doomed_depth, "depth");
            }
            if a.cfg.max_size.is_some() {
                let files = a.files();
                let doomed = retention::plan_stream(&files, now, None, a.cfg.max_size);
                if !doomed.is_empty() {
                    a.delete(&doomed, "size");
                }
            }
            a.update_gauges(Some(now));
        }
        let stores: Vec<(PathBuf, Arc<dyn Store>)> = self
            .stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, s)| (p.clone(), s.clone()))
            .collect();
        for (root, store) in stores {
            let usage = match store.usage() {
                Ok(Some(u)) => u,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(path = %root.display(), error = %e, "cannot read the disk usage of a DVR path");
                    continue;
                }
            };
            self.families
                .disk_percent
                .get_or_create(&PathLabel {
                    path: root.display().to_string(),
                })
                .set(usage.percent());
            let on_root: Vec<&Arc<Archive>> = archives.iter().filter(|a| a.cfg.root == root).collect();
            // The strictest limit of the streams sharing the root applies.
            let Some(percent) = on_root.iter().filter_map(|a| a.cfg.disk_limit_percent).min() else {
                continue;
            };
            let per_stream: Vec<Vec<retention::StoredFile<(usize, FileKey)>>> = on_root
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    a.files()
                        .into_iter()
                        .map(|f| retention::StoredFile {
                            key: (i, f.key),
                            hour: f.hour,
                            bytes: f.bytes,
                            writing: f.writing,
                        })
                        .collect()
                })
                .collect();
            let doomed = retention::plan_disk(per_stream.iter().map(Vec::as_slice), usage.used, usage.total, percent);
            for (i, a) in on_root.iter().enumerate() {
                let keys: Vec<_> = doomed.iter().filter(|(j, _)| *j == i).map(|(_, k)| *k).collect();
                if !keys.is_empty() {
                    a.delete(&keys, "disk");
                }
            }
        }
    }
}

/// Starts the writer task of `archive`; returns the queue end.
pub fn spawn_writer(archive: Arc<Archive>) -> WriterHandle {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<StoredSegment>>(WRITE_QUEUE);
    tracing::info!(
        stream = %archive.name,
        path = %archive.cfg.root.display(),
        depth = ?archive.cfg.depth,
        "recording"
    );
    tokio::spawn(async move {
        while let Some(seg) = rx.recv().await {
            let a = archive.clone();
            let r = tokio::task::spawn_blocking(move || {
                let msg = seg.wire_once();
                a.write(&seg.segment, &msg)
            })
            .await;
            match r {
                Ok(Ok(true)) => {
                    archive.metrics().written.inc();
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => archive.write_failed(&e),
                Err(e) => archive.write_failed(&std::io::Error::other(e.to_string())),
            }
        }
        let a = archive.clone();
        let _ = tokio::task::spawn_blocking(move || a.close()).await;
    });
    WriterHandle { tx }
}

/// Runs retention every [`RETENTION_EVERY`] until `stop`.
pub async fn run_retention(dvr: Arc<Dvr>, stop: tokio_util::sync::CancellationToken) {
    {
        let d = dvr.clone();
        let _ = tokio::task::spawn_blocking(move || d.scan_all()).await;
    }
    let mut tick = tokio::time::interval(RETENTION_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let d = dvr.clone();
        let now = crate::util::utc90_now();
        let _ = tokio::task::spawn_blocking(move || d.retain(now)).await;
    }
    let d = dvr.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for a in d.all() {
            a.sync();
        }
    })
    .await;
}
