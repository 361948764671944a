//! The server side of an RTMP connection (RTMP 1.0 §7.2), sans I/O: what
//! an encoder publishing to strom (and, later, a player) talks to.
//!
//! Flow: handshake; `connect` is answered at once (Window Acknowledgement
//! Size, Set Peer Bandwidth, Set Chunk Size 4096, `_result`
//! NetConnection.Connect.Success) and reported as [`ServerEvent::Connected`];
//! `createStream` gets a new message stream id; `publish` is reported as
//! [`ServerEvent::PublishRequested`] and waits for the node's
//! [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`].
//! Media and data that arrive meanwhile are held (up to
//! [`Limits::max_held_bytes`]) and released on acceptance. `play` is reported
//! as [`ServerEvent::PlayRequested`]; for now the node refuses it with
//! [`ServerSession::reject_play`] (playing will be a state of the same
//! stream table, not a rewrite).
//!
//! Leniency, on purpose: commands strom does not know (`releaseStream`,
//! `FCPublish`, `getStreamLength`, `_checkbw`, anything) are answered with
//! `_result` when their transaction id is not 0 and never close the
//! connection; AMF3 command messages (type 17) are read like AMF0 ones and
//! answered in kind; a command whose AMF breaks off is used as far as it
//! decoded. Closed: commands before `connect`, a second `connect`, publish
//! or play on stream 0, chunk-layer violations.
//!
//! After [`ServerSession::feed`] fails the session stays failed; the
//! connection is to be closed.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::amf::Value;
use super::chunk::Message;
use super::conn::Conn;
use super::message::{self as msg, Command};
use super::{Limits, MediaKind, RtmpError, Stats};

/// Outgoing chunk size set after `connect`, bytes.
pub const CHUNK_SIZE: u32 = 4096;
/// Window Acknowledgement Size and peer bandwidth announced, bytes.
pub const WINDOW: u32 = 2_500_000;
const FMS_VERSION: &str = "FMS/3,0,1,123";
const CAPABILITIES: f64 = 31.0;

/// The publishing type of `publish` (§7.2.2.6); unknown values read as live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishKind {
    Live,
    Record,
    Append,
}

impl PublishKind {
    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("record") => PublishKind::Record,
            Some("append") => PublishKind::Append,
            _ => PublishKind::Live,
        }
    }
}

/// What the peer did, for the node to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect` was answered. `app` is as sent (it may carry `?query`);
    /// `object_encoding` is 0 (AMF0) or 3 (AMF3).
    Connected {
        app: String,
        tc_url: Option<String>,
        object_encoding: f64,
    },
    /// `publish(name, kind)` on `stream_id`; answer with
    /// [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`].
    /// `name` is as sent: it may carry `?query`, and may be empty (ffmpeg
    /// publishing to `rtmp://HOST/NAME` names the stream by the app alone).
    PublishRequested {
        stream_id: u32,
        name: String,
        kind: PublishKind,
    },
    /// `play(name)` on `stream_id`; answer with [`ServerSession::reject_play`].
    PlayRequested { stream_id: u32, name: String },
    /// The publisher stopped (`FCUnpublish`, `closeStream` or
    /// `deleteStream`), or withdrew a publish not yet answered.
    Unpublished { stream_id: u32 },
    /// An audio or video message on an accepted publishing stream: an FLV
    /// tag body, `timestamp` in ms as on the wire (32-bit, may wrap).
    Media {
        stream_id: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    },
    /// A data message (`onMetaData`, `onTextData`, …) on an accepted
    /// publishing stream, with an `@setDataFrame` wrapper removed: the first
    /// value is normally the handler name.
    Metadata { stream_id: u32, values: Vec<Value> },
}

/// A message stream's state.
enum Stream {
    /// Created; nothing asked yet.
    Idle,
    /// `publish` waits for the node; media and data are held meanwhile.
    PublishRequested {
        name: String,
        held: Vec<ServerEvent>,
        held_bytes: usize,
    },
    Publishing {
        name: String,
    },
    /// `play` waits for the node.
    PlayRequested,
}

/// One server-side connection.
pub struct ServerSession {
    conn: Conn,
    limits: Limits,
    connected: bool,
    /// Commands go out as type 17 when the client's `connect` came so.
    command_type: u8,
    streams: BTreeMap<u32, Stream>,
    next_stream_id: u32,
    events: VecDeque<ServerEvent>,
    failed: Option<RtmpError>,
}

impl ServerSession {
    pub fn new(limits: Limits) -> Self {
        ServerSession {
            conn: Conn::server(limits),
            limits,
            connected: false,
            command_type: msg::TYPE_COMMAND_AMF0,
            streams: BTreeMap::new(),
            next_stream_id: 1,
            events: VecDeque::new(),
            failed: None,
        }
    }

    /// Replaces the connection's caps, typically to widen
    /// [`Limits::UNADMITTED`] to the defaults once the publisher is
    /// admitted. What is already held stays.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.conn.set_limits(limits);
    }

    /// Consumes received bytes (any split), queuing events and output.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.feed_inner(data);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn feed_inner(&mut self, mut data: &[u8]) -> Result<(), RtmpError> {
        self.conn.stats.bytes_in += data.len() as u64;
        if !self.conn.handshake(&mut data)? {
            return Ok(());
        }
        while let Some(m) = self.conn.next_message(&mut data)? {
            self.on_message(m)?;
        }
        Ok(())
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Bytes to send to the peer (empty when there are none).
    pub fn take_output(&mut self) -> Bytes {
        self.conn.take_output()
    }

    pub fn has_output(&self) -> bool {
        self.conn.has_output()
    }

    /// True once the handshake is over.
    pub fn handshake_done(&self) -> bool {
        self.conn.handshake_done()
    }

    pub fn stats(&self) -> Stats {
        self.conn.stats()
    }

    /// Accepts a [`ServerEvent::PublishRequested`]: sends Stream Begin and
    /// onStatus `NetStream.Publish.Start`, then releases held media and data
    /// as events.
    pub fn accept_publish(&mut self, stream_id: u32) -> Result<(), RtmpError> {
        let Some(s) = self.streams.get_mut(&stream_id) else {
            return Err(RtmpError::State("no publish waits on this stream"));
        };
        let Stream::PublishRequested { name, held, .. } = std::mem::replace(s, Stream::Idle) else {
            return Err(RtmpError::State("no publish waits on this stream"));
        };
        let description = format!("{name} is now published.");
        *s = Stream::Publishing { name };
        self.conn.send(&msg::stream_begin(stream_id))?;
        self.send_status(stream_id, "status", "NetStream.Publish.Start", &description)?;
        self.conn.stats.media_in += held.iter().filter(|e| matches!(e, ServerEvent::Media { .. })).count() as u64;
        self.events.extend(held);
        Ok(())
    }

    /// Refuses a [`ServerEvent::PublishRequested`] with an onStatus of level
    /// "error": `code` such as `NetStream.Publish.BadName` (unknown or busy
    /// name) or `NetStream.Publish.Unauthorized`. The node then closes the
    /// connection.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) -> Result<(), RtmpError> {
        match self.streams.get_mut(&stream_id) {
            Some(s @ Stream::PublishRequested { .. }) => {
                if let Stream::PublishRequested { held, .. } = std::mem::replace(s, Stream::Idle) {
                    self.conn.stats.dropped += held.len() as u64;
                }
            }
            _ => return Err(RtmpError::State("no publish waits on this stream")),
        }
        self.send_status(stream_id, "error", code, description)
    }

    /// Refuses a [`ServerEvent::PlayRequested`] with an onStatus of level
    /// "error", e.g. `NetStream.Play.StreamNotFound`.
    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str) -> Result<(), RtmpError> {
        match self.streams.get_mut(&stream_id) {
            Some(s @ Stream::PlayRequested) => *s = Stream::Idle,
            _ => return Err(RtmpError::State("no play waits on this stream")),
        }
        self.send_status(stream_id, "error", code, description)
    }

    fn on_message(&mut self, m: Message) -> Result<(), RtmpError> {
        match m.type_id {
            msg::TYPE_COMMAND_AMF0 | msg::TYPE_COMMAND_AMF3 => self.on_command(&m),
            msg::TYPE_AUDIO | msg::TYPE_VIDEO => {
                let kind = if m.type_id == msg::TYPE_AUDIO {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                let len = m.payload.len();
                self.deliver(
                    m.stream_id,
                    len,
                    ServerEvent::Media {
                        stream_id: m.stream_id,
                        kind,
                        timestamp: m.timestamp,
                        payload: m.payload,
                    },
                );
                Ok(())
            }
            msg::TYPE_DATA_AMF0 | msg::TYPE_DATA_AMF3 => {
                let values = self.data_values(&m);
                if values.is_empty() {
                    self.conn.stats.dropped += 1;
                } else {
                    let ev = ServerEvent::Metadata {
                        stream_id: m.stream_id,
                        values,
                    };
                    self.deliver(m.stream_id, m.payload.len(), ev);
                }
                Ok(())
            }
            msg::TYPE_AGGREGATE => {
                for sub in msg::split_aggregate(&m) {
                    self.on_message(sub)?;
                }
                Ok(())
            }
            _ => {
                self.conn.stats.dropped += 1;
                Ok(())
            }
        }
    }

    /// A data message's values without the `@setDataFrame` wrapper.
    fn data_values(&mut self, m: &Message) -> Vec<Value> {
        let (mut values, err) = msg::decode_values(m.type_id, &m.payload);
        if err.is_some() {
            self.conn.stats.amf_errors += 1;
        }
        if values.first().and_then(Value::as_str) == Some("@setDataFrame") {
            values.remove(0);
        }
        values
    }

    /// Passes media or data on if its stream publishes, holds it if the
    /// publish waits for an answer, drops it otherwise.
    fn deliver(&mut self, stream_id: u32, len: usize, ev: ServerEvent) {
        match self.streams.get_mut(&stream_id) {
            Some(Stream::Publishing { .. }) => {
                if matches!(ev, ServerEvent::Media { .. }) {
                    self.conn.stats.media_in += 1;
                }
                self.events.push_back(ev);
            }
            Some(Stream::PublishRequested { held, held_bytes, .. })
                if *held_bytes + len <= self.limits.max_held_bytes =>
            {
                *held_bytes += len;
                held.push(ev);
            }
            _ => self.conn.stats.dropped += 1,
        }
    }

    fn on_command(&mut self, m: &Message) -> Result<(), RtmpError> {
        let (values, err) = msg::decode_values(m.type_id, &m.payload);
        if err.is_some() {
            self.conn.stats.amf_errors += 1;
        }
        let Some(cmd) = Command::from_values(values) else {
            self.conn.stats.dropped += 1;
            return Ok(());
        };
        if !self.connected && cmd.name != "connect" {
            return Err(RtmpError::Protocol("command before connect"));
        }
        match cmd.name.as_str() {
            "connect" => self.on_connect(m.type_id, &cmd),
            "createStream" => self.on_create_stream(&cmd),
            "publish" => self.on_publish(m.stream_id, &cmd),
            "play" => self.on_play(m.stream_id, &cmd),
            "closeStream" => {
                self.end_publish(m.stream_id);
                Ok(())
            }
            "deleteStream" => {
                let id = cmd
                    .args
                    .first()
                    .and_then(Value::as_f64)
                    .map_or(m.stream_id, |n| n as u32);
                self.end_publish(id);
                self.streams.remove(&id);
                Ok(())
            }
            "FCUnpublish" => {
                if let Some(name) = cmd.arg_str(0) {
                    let id = self.streams.iter().find_map(|(&id, s)| match s {
                        Stream::PublishRequested { name: n, .. } | Stream::Publishing { name: n } if n == name => {
                            Some(id)
                        }
                        _ => None,
                    });
                    if let Some(id) = id {
                        self.end_publish(id);
                    }
                }
                self.answer_result(&cmd)
            }
            "releaseStream" | "FCPublish" | "FCSubscribe" | "getStreamLength" | "checkBandwidth" | "_checkbw"
            | "receiveAudio" | "receiveVideo" | "pause" | "seek" | "setPeerInfo" => self.answer_result(&cmd),
            // Answers and notices from the client: never answered.
            "_result" | "_error" | "onStatus" | "onBWDone" => Ok(()),
            _ => {
                self.conn.stats.unknown_commands += 1;
                self.answer_result(&cmd)
            }
        }
    }

    fn on_connect(&mut self, type_id: u8, cmd: &Command) -> Result<(), RtmpError> {
        if self.connected {
            return Err(RtmpError::Protocol("second connect"));
        }
        let field = |k: &str| cmd.object.get(k).and_then(Value::as_str).map(str::to_owned);
        let app = field("app").unwrap_or_default();
        let tc_url = field("tcUrl");
        let object_encoding = cmd.object.get("objectEncoding").and_then(Value::as_f64).unwrap_or(0.0);
        self.command_type = type_id;
        self.conn.send_window_ack_size(WINDOW)?;
        self.conn.send(&msg::set_peer_bandwidth(WINDOW, msg::LIMIT_DYNAMIC))?;
        self.conn.set_chunk_size(CHUNK_SIZE)?;
        let properties = Value::Object(vec![
            ("fmsVer".into(), FMS_VERSION.into()),
            ("capabilities".into(), CAPABILITIES.into()),
            ("mode".into(), 1.0.into()),
        ]);
        let mut info = msg::status_info("status", "NetConnection.Connect.Success", "Connection succeeded.");
        if let Value::Object(p) = &mut info {
            p.push(("objectEncoding".into(), object_encoding.into()));
        }
        self.send_command(0, &["_result".into(), cmd.transaction_id.into(), properties, info])?;
        self.connected = true;
        self.events.push_back(ServerEvent::Connected {
            app,
            tc_url,
            object_encoding,
        });
        Ok(())
    }

    fn on_create_stream(&mut self, cmd: &Command) -> Result<(), RtmpError> {
        let tx = cmd.transaction_id;
        // The next id no client took without asking (publish on a stream it
        // never created).
        let free = (self.next_stream_id..u32::MAX).find(|id| !self.streams.contains_key(id));
        let Some(id) = free.filter(|_| self.streams.len() < self.limits.max_streams as usize) else {
            self.conn.stats.dropped += 1;
            let info = msg::status_info("error", "NetConnection.Call.Failed", "too many streams");
            return self.send_command(0, &["_error".into(), tx.into(), Value::Null, info]);
        };
        self.next_stream_id = id + 1;
        self.streams.insert(id, Stream::Idle);
        self.send_command(0, &["_result".into(), tx.into(), Value::Null, (id as f64).into()])
    }

    /// Whether the stream a publish or play names is free, creating it if
    /// the client skipped `createStream`; a busy one is answered here.
    fn idle_stream(&mut self, stream_id: u32, code: &str) -> Result<bool, RtmpError> {
        if stream_id == 0 {
            return Err(RtmpError::Protocol("publish or play on stream 0"));
        }
        if !self.streams.contains_key(&stream_id) {
            if self.streams.len() >= self.limits.max_streams as usize {
                return Err(RtmpError::Limit("message streams"));
            }
            self.streams.insert(stream_id, Stream::Idle);
        }
        if !matches!(self.streams.get(&stream_id), Some(Stream::Idle)) {
            self.send_status(stream_id, "error", code, "stream is busy")?;
            return Ok(false);
        }
        Ok(true)
    }

    fn on_publish(&mut self, stream_id: u32, cmd: &Command) -> Result<(), RtmpError> {
        const BAD_NAME: &str = "NetStream.Publish.BadName";
        if !self.idle_stream(stream_id, BAD_NAME)? {
            return Ok(());
        }
        // An empty name is passed on: `rtmp://HOST/NAME` publishers (ffmpeg)
        // name the stream by the app alone, which the node resolves.
        let Some(name) = cmd.arg_str(0) else {
            return self.send_status(stream_id, "error", BAD_NAME, "no stream name");
        };
        let name = name.to_owned();
        let kind = PublishKind::parse(cmd.arg_str(1));
        self.streams.insert(
            stream_id,
            Stream::PublishRequested {
                name: name.clone(),
                held: Vec::new(),
                held_bytes: 0,
            },
        );
        self.events
            .push_back(ServerEvent::PublishRequested { stream_id, name, kind });
        Ok(())
    }

    fn on_play(&mut self, stream_id: u32, cmd: &Command) -> Result<(), RtmpError> {
        if !self.idle_stream(stream_id, "NetStream.Play.Failed")? {
            return Ok(());
        }
        let Some(name) = cmd.arg_str(0).filter(|n| !n.is_empty()) else {
            return self.send_status(stream_id, "error", "NetStream.Play.StreamNotFound", "no stream name");
        };
        let name = name.to_owned();
        self.streams.insert(stream_id, Stream::PlayRequested);
        self.events.push_back(ServerEvent::PlayRequested { stream_id, name });
        Ok(())
    }

    /// Ends a publish (asked or accepted) on `stream_id`, if any.
    fn end_publish(&mut self, stream_id: u32) {
        let Some(s) = self.streams.get_mut(&stream_id) else {
            return;
        };
        match std::mem::replace(s, Stream::Idle) {
            Stream::PublishRequested { held, .. } => self.conn.stats.dropped += held.len() as u64,
            Stream::Publishing { .. } => {}
            other => {
                *s = other;
                return;
            }
        }
        self.events.push_back(ServerEvent::Unpublished { stream_id });
    }

    /// `_result` for a command that expects an answer (transaction id ≠ 0).
    fn answer_result(&mut self, cmd: &Command) -> Result<(), RtmpError> {
        if cmd.transaction_id == 0.0 {
            return Ok(());
        }
        self.send_command(0, &["_result".into(), cmd.transaction_id.into(), Value::Null])
    }

    fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) -> Result<(), RtmpError> {
        let values = [
            "onStatus".into(),
            0.0.into(),
            Value::Null,
            msg::status_info(level, code, description),
        ];
        self.conn.send(&msg::amf_message(
            msg::CSID_STREAM,
            stream_id,
            self.command_type,
            &values,
        ))
    }

    fn send_command(&mut self, stream_id: u32, values: &[Value]) -> Result<(), RtmpError> {
        self.conn.send(&msg::amf_message(
            msg::CSID_COMMAND,
            stream_id,
            self.command_type,
            values,
        ))
    }
}
