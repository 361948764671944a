//! The client side of an RTMP connection, sans I/O: strom pulling a stream
//! from another server (play), or publishing to one (strom's tests use it as
//! a scripted encoder).
//!
//! Flow, as OBS and ffmpeg do it: handshake; Set Chunk Size 4096;
//! `connect` (tx 1); on its `_result`, for publish `releaseStream` and
//! `FCPublish`, then `createStream`; on that `_result`, `publish(name,
//! "live")`, or Set Buffer Length and `play(name, -2000)`, on the new stream.
//! onStatus `NetStream.Publish.Start` / `NetStream.Play.Start` makes it
//! [`ClientEvent::Started`]. An `_error` or an error-level onStatus before
//! that is [`ClientEvent::Rejected`]; any other onStatus is
//! [`ClientEvent::Status`] (e.g. `NetStream.Play.UnpublishNotify`,
//! `NetStream.Play.Stop`: the stream ended).
//!
//! The play `connect` advertises Enhanced RTMP's `fourCcList` with `hvc1`,
//! so servers that support it may send HEVC.

use std::collections::VecDeque;

use bytes::Bytes;

use super::amf::Value;
use super::chunk::Message;
use super::conn::Conn;
use super::message::{self as msg, Command};
use super::{Limits, MediaKind, RtmpError, Stats};

/// Outgoing chunk size the client sets after the handshake, bytes.
pub const CHUNK_SIZE: u32 = 4096;
/// Buffer length announced before `play`, ms.
const BUFFER_MS: u32 = 3000;

/// What the client does once connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMode {
    /// Pull `name` from the server's `app`.
    Play { name: String },
    /// Publish to `name` on the server's `app` (type "live").
    Publish { name: String },
}

/// A client connection's parameters: for `rtmp://HOST/APP/NAME`, `app` is
/// `APP` (with any `?query`), `tc_url` is `rtmp://HOST/APP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub app: String,
    pub tc_url: String,
    pub mode: ClientMode,
    pub limits: Limits,
}

/// What the server did.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// Publishing or playing has started on `stream_id`.
    Started { stream_id: u32 },
    /// An onStatus not covered by the other events.
    Status {
        level: String,
        code: String,
        description: String,
    },
    /// The server refused `connect`, `createStream`, `publish` or `play`.
    /// Nothing more will happen; close the connection.
    Rejected { code: String, description: String },
    /// Audio or video from the played stream: an FLV tag body, `timestamp`
    /// in ms as on the wire (32-bit, may wrap).
    Media {
        stream_id: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    },
    /// A data message from the played stream (`onMetaData`, …), without an
    /// `@setDataFrame` wrapper.
    Metadata { stream_id: u32, values: Vec<Value> },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Handshake,
    /// `connect` sent with this transaction id.
    Connecting(f64),
    /// `createStream` sent with this transaction id.
    CreatingStream(f64),
    /// `publish` or `play` sent on this stream.
    Starting(u32),
    Started(u32),
    Closed,
}

/// One client connection.
pub struct ClientSession {
    conn: Conn,
    config: ClientConfig,
    phase: Phase,
    next_tx: f64,
    events: VecDeque<ClientEvent>,
    failed: Option<RtmpError>,
}

impl ClientSession {
    /// A new connection; C0+C1 are queued in the output at once.
    pub fn new(config: ClientConfig) -> Self {
        ClientSession {
            conn: Conn::client(config.limits, config.tc_url.as_bytes()),
            config,
            phase: Phase::Handshake,
            next_tx: 1.0,
            events: VecDeque::new(),
            failed: None,
        }
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
        if self.phase == Phase::Handshake {
            self.connect()?;
        }
        while let Some(m) = self.conn.next_message(&mut data)? {
            self.on_message(m)?;
        }
        Ok(())
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes to send to the server (empty when there are none).
    pub fn take_output(&mut self) -> Bytes {
        self.conn.take_output()
    }

    pub fn has_output(&self) -> bool {
        self.conn.has_output()
    }

    pub fn stats(&self) -> Stats {
        self.conn.stats()
    }

    /// The stream publishing or playing, once started.
    pub fn stream_id(&self) -> Option<u32> {
        match self.phase {
            Phase::Started(id) => Some(id),
            _ => None,
        }
    }

    /// Publish mode, once started: queues an audio (csid 4) or video (csid 6)
    /// message. `timestamp` in ms, 32-bit (it may wrap); `payload` an FLV
    /// tag body.
    pub fn send_media(&mut self, kind: MediaKind, timestamp: u32, payload: Bytes) -> Result<(), RtmpError> {
        let stream_id = self.publishing()?;
        let (csid, type_id) = match kind {
            MediaKind::Audio => (msg::CSID_AUDIO, msg::TYPE_AUDIO),
            MediaKind::Video => (msg::CSID_VIDEO, msg::TYPE_VIDEO),
        };
        self.conn.send(&Message {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
        })
    }

    /// Publish mode, once started: queues `@setDataFrame` + `values`
    /// (normally `"onMetaData"` and an ECMA array) as a data message.
    pub fn send_metadata(&mut self, values: &[Value]) -> Result<(), RtmpError> {
        let stream_id = self.publishing()?;
        let mut all = Vec::with_capacity(values.len() + 1);
        all.push("@setDataFrame".into());
        all.extend_from_slice(values);
        self.conn.send(&msg::amf_message(
            msg::CSID_STREAM,
            stream_id,
            msg::TYPE_DATA_AMF0,
            &all,
        ))
    }

    /// Ends publishing or playing politely (`FCUnpublish` for publish, then
    /// `deleteStream`); the connection may be closed once the output is sent.
    pub fn close(&mut self) -> Result<(), RtmpError> {
        if let Phase::Starting(id) | Phase::Started(id) = self.phase {
            if let ClientMode::Publish { name } = &self.config.mode {
                let name = Value::from(name.as_str());
                self.command(0, "FCUnpublish", vec![Value::Null, name])?;
            }
            self.command(0, "deleteStream", vec![Value::Null, (id as f64).into()])?;
        }
        self.phase = Phase::Closed;
        Ok(())
    }

    fn publishing(&self) -> Result<u32, RtmpError> {
        match (self.phase, &self.config.mode) {
            (Phase::Started(id), ClientMode::Publish { .. }) => Ok(id),
            _ => Err(RtmpError::State("not publishing")),
        }
    }

    /// Sends a command on csid 3 (stream 0) or 5; returns its transaction id.
    fn command(&mut self, stream_id: u32, name: &str, rest: Vec<Value>) -> Result<f64, RtmpError> {
        let tx = self.next_tx;
        self.next_tx += 1.0;
        let mut values = vec![name.into(), tx.into()];
        values.extend(rest);
        let csid = if stream_id == 0 {
            msg::CSID_COMMAND
        } else {
            msg::CSID_STREAM
        };
        self.conn
            .send(&msg::amf_message(csid, stream_id, msg::TYPE_COMMAND_AMF0, &values))?;
        Ok(tx)
    }

    fn connect(&mut self) -> Result<(), RtmpError> {
        self.conn.set_chunk_size(CHUNK_SIZE)?;
        let c = &self.config;
        let mut object = vec![
            ("app".to_owned(), Value::from(c.app.as_str())),
            ("type".to_owned(), "nonprivate".into()),
            ("tcUrl".to_owned(), Value::from(c.tc_url.as_str())),
        ];
        match c.mode {
            ClientMode::Publish { .. } => {
                object.push(("flashVer".into(), "FMLE/3.0 (compatible; strom)".into()));
            }
            ClientMode::Play { .. } => {
                object.extend([
                    ("flashVer".to_owned(), "LNX 9,0,124,2".into()),
                    ("fpad".to_owned(), false.into()),
                    ("capabilities".to_owned(), 15.0.into()),
                    ("audioCodecs".to_owned(), 4071.0.into()),
                    ("videoCodecs".to_owned(), 252.0.into()),
                    ("videoFunction".to_owned(), 1.0.into()),
                    ("fourCcList".to_owned(), Value::StrictArray(vec!["hvc1".into()])),
                ]);
            }
        }
        let tx = self.command(0, "connect", vec![Value::Object(object)])?;
        self.phase = Phase::Connecting(tx);
        Ok(())
    }

    fn on_message(&mut self, m: Message) -> Result<(), RtmpError> {
        match m.type_id {
            msg::TYPE_COMMAND_AMF0 | msg::TYPE_COMMAND_AMF3 => self.on_command(&m),
            msg::TYPE_AUDIO | msg::TYPE_VIDEO => {
                if self.playing(m.stream_id) {
                    let kind = if m.type_id == msg::TYPE_AUDIO {
                        MediaKind::Audio
                    } else {
                        MediaKind::Video
                    };
                    self.conn.stats.media_in += 1;
                    self.events.push_back(ClientEvent::Media {
                        stream_id: m.stream_id,
                        kind,
                        timestamp: m.timestamp,
                        payload: m.payload,
                    });
                } else {
                    self.conn.stats.dropped += 1;
                }
                Ok(())
            }
            msg::TYPE_DATA_AMF0 | msg::TYPE_DATA_AMF3 => {
                let (mut values, err) = msg::decode_values(m.type_id, &m.payload);
                if err.is_some() {
                    self.conn.stats.amf_errors += 1;
                }
                if values.first().and_then(Value::as_str) == Some("@setDataFrame") {
                    values.remove(0);
                }
                if self.playing(m.stream_id) && !values.is_empty() {
                    self.events.push_back(ClientEvent::Metadata {
                        stream_id: m.stream_id,
                        values,
                    });
                } else {
                    self.conn.stats.dropped += 1;
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

    /// Media and data are taken on the played stream once `play` is sent.
    fn playing(&self, stream_id: u32) -> bool {
        matches!(self.config.mode, ClientMode::Play { .. })
            && matches!(self.phase, Phase::Starting(id) | Phase::Started(id) if id == stream_id)
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
        // The info object: after the null command object, or in its place.
        let info = cmd.args.first().unwrap_or(&cmd.object);
        let (level, code, description) = msg::read_status(info);
        match cmd.name.as_str() {
            "_result" => match self.phase {
                Phase::Connecting(tx) if tx == cmd.transaction_id => {
                    if level == "error" {
                        return self.reject(code, description);
                    }
                    self.events.push_back(ClientEvent::Connected);
                    if let ClientMode::Publish { name } = &self.config.mode {
                        let name = Value::from(name.as_str());
                        self.command(0, "releaseStream", vec![Value::Null, name.clone()])?;
                        self.command(0, "FCPublish", vec![Value::Null, name])?;
                    }
                    let tx = self.command(0, "createStream", vec![Value::Null])?;
                    self.phase = Phase::CreatingStream(tx);
                    Ok(())
                }
                Phase::CreatingStream(tx) if tx == cmd.transaction_id => {
                    let id = cmd
                        .args
                        .first()
                        .and_then(Value::as_f64)
                        .filter(|n| *n >= 1.0 && *n <= u32::MAX as f64)
                        .ok_or(RtmpError::Protocol("createStream answered without a stream id"))?
                        as u32;
                    self.start(id)
                }
                _ => Ok(()),
            },
            "_error" => match self.phase {
                Phase::Connecting(tx) | Phase::CreatingStream(tx) if tx == cmd.transaction_id => {
                    self.reject(code, description)
                }
                _ => {
                    self.events.push_back(ClientEvent::Status {
                        level,
                        code,
                        description,
                    });
                    Ok(())
                }
            },
            "onStatus" => {
                match self.phase {
                    Phase::Starting(id) if code == "NetStream.Publish.Start" || code == "NetStream.Play.Start" => {
                        self.phase = Phase::Started(id);
                        self.events.push_back(ClientEvent::Started { stream_id: id });
                    }
                    Phase::Starting(_) if level == "error" => return self.reject(code, description),
                    _ => self.events.push_back(ClientEvent::Status {
                        level,
                        code,
                        description,
                    }),
                }
                Ok(())
            }
            "onBWDone" | "onFCPublish" | "onFCUnpublish" | "onFCSubscribe" | "_checkbw" => Ok(()),
            "close" => {
                self.events.push_back(ClientEvent::Status {
                    level: "status".into(),
                    code: "NetConnection.Connect.Closed".into(),
                    description: "the server closed the connection".into(),
                });
                Ok(())
            }
            _ => {
                self.conn.stats.unknown_commands += 1;
                Ok(())
            }
        }
    }

    fn start(&mut self, id: u32) -> Result<(), RtmpError> {
        match &self.config.mode {
            ClientMode::Publish { name } => {
                let name = Value::from(name.as_str());
                self.command(id, "publish", vec![Value::Null, name, "live".into()])?;
            }
            ClientMode::Play { name } => {
                let name = Value::from(name.as_str());
                self.conn.send(&msg::set_buffer_length(id, BUFFER_MS))?;
                self.command(id, "play", vec![Value::Null, name, (-2000.0).into()])?;
            }
        }
        self.phase = Phase::Starting(id);
        Ok(())
    }

    fn reject(&mut self, code: String, description: String) -> Result<(), RtmpError> {
        self.phase = Phase::Closed;
        self.events.push_back(ClientEvent::Rejected { code, description });
        Ok(())
    }
}
