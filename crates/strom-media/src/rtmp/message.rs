//! RTMP messages above the chunk layer: type ids, protocol control messages
//! (RTMP 1.0 §5.4), user control messages (§6.2, §7.1.7), command and data
//! messages (§7.1.1–2, §7.2) and aggregates (§7.1.6).
//!
//! Conventions for what strom sends: protocol and user control on chunk
//! stream 2 with message stream 0; NetConnection commands on csid 3, audio
//! on 4, NetStream commands and data on 5, video on 6.
//!
//! Invariants: parsers never panic; AMF bodies decode as far as they go
//! ([`amf::decode_prefix`]), so a command with a strange argument is still
//! understood by its name and transaction id.

use bytes::Bytes;

use super::amf::{self, AmfError, Value};
use super::chunk::Message;

pub const TYPE_SET_CHUNK_SIZE: u8 = 1;
pub const TYPE_ABORT: u8 = 2;
pub const TYPE_ACKNOWLEDGEMENT: u8 = 3;
pub const TYPE_USER_CONTROL: u8 = 4;
pub const TYPE_WINDOW_ACK_SIZE: u8 = 5;
pub const TYPE_SET_PEER_BANDWIDTH: u8 = 6;
pub const TYPE_AUDIO: u8 = 8;
pub const TYPE_VIDEO: u8 = 9;
/// Data message, AMF3 encoding: one format byte (0) then AMF0 values.
pub const TYPE_DATA_AMF3: u8 = 15;
pub const TYPE_SHARED_OBJECT_AMF3: u8 = 16;
/// Command message, AMF3 encoding: one format byte (0) then AMF0 values,
/// which may switch to AMF3 with the AVM+ marker.
pub const TYPE_COMMAND_AMF3: u8 = 17;
pub const TYPE_DATA_AMF0: u8 = 18;
pub const TYPE_SHARED_OBJECT_AMF0: u8 = 19;
pub const TYPE_COMMAND_AMF0: u8 = 20;
pub const TYPE_AGGREGATE: u8 = 22;

/// User control event types (§7.1.7).
pub const EVENT_STREAM_BEGIN: u16 = 0;
pub const EVENT_STREAM_EOF: u16 = 1;
pub const EVENT_STREAM_DRY: u16 = 2;
pub const EVENT_SET_BUFFER_LENGTH: u16 = 3;
pub const EVENT_STREAM_IS_RECORDED: u16 = 4;
pub const EVENT_PING_REQUEST: u16 = 6;
pub const EVENT_PING_RESPONSE: u16 = 7;

/// Chunk stream ids strom sends on.
pub const CSID_CONTROL: u32 = 2;
pub const CSID_COMMAND: u32 = 3;
pub const CSID_AUDIO: u32 = 4;
pub const CSID_STREAM: u32 = 5;
pub const CSID_VIDEO: u32 = 6;

/// Set Peer Bandwidth limit types (§5.4.5).
pub const LIMIT_HARD: u8 = 0;
pub const LIMIT_SOFT: u8 = 1;
pub const LIMIT_DYNAMIC: u8 = 2;

/// A protocol control message (csid 2, stream 0, timestamp 0).
pub fn control(type_id: u8, payload: &[u8]) -> Message {
    Message {
        csid: CSID_CONTROL,
        timestamp: 0,
        type_id,
        stream_id: 0,
        payload: Bytes::copy_from_slice(payload),
    }
}

/// Acknowledgement (§5.4.3): bytes received so far, modulo 2^32.
pub fn acknowledgement(sequence: u32) -> Message {
    control(TYPE_ACKNOWLEDGEMENT, &sequence.to_be_bytes())
}

/// Window Acknowledgement Size (§5.4.4), bytes.
pub fn window_ack_size(size: u32) -> Message {
    control(TYPE_WINDOW_ACK_SIZE, &size.to_be_bytes())
}

/// Set Peer Bandwidth (§5.4.5): window in bytes and a `LIMIT_*` type.
pub fn set_peer_bandwidth(size: u32, limit: u8) -> Message {
    let mut p = [0u8; 5];
    p[..4].copy_from_slice(&size.to_be_bytes());
    p[4] = limit;
    control(TYPE_SET_PEER_BANDWIDTH, &p)
}

/// A user control message (§6.2): event type and its data.
pub fn user_control(event: u16, data: &[u8]) -> Message {
    let mut p = Vec::with_capacity(2 + data.len());
    p.extend_from_slice(&event.to_be_bytes());
    p.extend_from_slice(data);
    control(TYPE_USER_CONTROL, &p)
}

/// Stream Begin (§7.1.7): the stream is ready for media.
pub fn stream_begin(stream_id: u32) -> Message {
    user_control(EVENT_STREAM_BEGIN, &stream_id.to_be_bytes())
}

/// Set Buffer Length (§7.1.7): the client's buffer for a stream, in ms.
pub fn set_buffer_length(stream_id: u32, ms: u32) -> Message {
    let mut d = [0u8; 8];
    d[..4].copy_from_slice(&stream_id.to_be_bytes());
    d[4..].copy_from_slice(&ms.to_be_bytes());
    user_control(EVENT_SET_BUFFER_LENGTH, &d)
}

/// A user control event as read (§7.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength {
        stream_id: u32,
        ms: u32,
    },
    StreamIsRecorded(u32),
    /// The sender's timestamp, to be echoed in a Ping Response.
    PingRequest(u32),
    PingResponse(u32),
    /// Any other event type (e.g. 31/32, buffer empty/ready, from some servers).
    Other(u16),
}

/// Reads a user control message body; `None` if too short.
pub fn parse_user_control(p: &[u8]) -> Option<UserControl> {
    let event = u16::from_be_bytes([*p.first()?, *p.get(1)?]);
    let word = |at: usize| -> Option<u32> { Some(u32::from_be_bytes(p.get(at..at + 4)?.try_into().ok()?)) };
    Some(match event {
        EVENT_STREAM_BEGIN => UserControl::StreamBegin(word(2)?),
        EVENT_STREAM_EOF => UserControl::StreamEof(word(2)?),
        EVENT_STREAM_DRY => UserControl::StreamDry(word(2)?),
        EVENT_SET_BUFFER_LENGTH => UserControl::SetBufferLength {
            stream_id: word(2)?,
            ms: word(6)?,
        },
        EVENT_STREAM_IS_RECORDED => UserControl::StreamIsRecorded(word(2)?),
        EVENT_PING_REQUEST => UserControl::PingRequest(word(2)?),
        EVENT_PING_RESPONSE => UserControl::PingResponse(word(2)?),
        other => UserControl::Other(other),
    })
}

/// The AMF part of a command or data message: types 15 and 17 start with a
/// format byte 0 that is skipped (a body without it is taken as is).
pub fn amf_body(type_id: u8, payload: &[u8]) -> &[u8] {
    match (type_id, payload.first()) {
        (TYPE_DATA_AMF3 | TYPE_COMMAND_AMF3, Some(0)) => &payload[1..],
        _ => payload,
    }
}

/// The values of a command or data message, decoded as far as they go.
pub fn decode_values(type_id: u8, payload: &[u8]) -> (Vec<Value>, Option<AmfError>) {
    amf::decode_prefix(amf_body(type_id, payload))
}

/// A command (§7.2): name, transaction id, command object, arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    /// 0 when no answer is expected.
    pub transaction_id: f64,
    /// The command object (`Null` when absent).
    pub object: Value,
    pub args: Vec<Value>,
}

impl Command {
    /// From a message's values; `None` unless the first is a string.
    pub fn from_values(values: Vec<Value>) -> Option<Command> {
        let mut it = values.into_iter();
        let name = match it.next()? {
            Value::String(s) | Value::LongString(s) => s,
            _ => return None,
        };
        let transaction_id = it.next().and_then(|v| v.as_f64()).unwrap_or(0.0);
        let object = it.next().unwrap_or(Value::Null);
        Some(Command {
            name,
            transaction_id,
            object,
            args: it.collect(),
        })
    }

    /// The `i`th argument after the command object, as a string.
    pub fn arg_str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(Value::as_str)
    }
}

/// A command or data message whose body is `values` in AMF0 (type 20 or
/// 18), or behind the format byte when `type_id` is 17 or 15.
pub fn amf_message(csid: u32, stream_id: u32, type_id: u8, values: &[Value]) -> Message {
    let mut body = Vec::new();
    if matches!(type_id, TYPE_DATA_AMF3 | TYPE_COMMAND_AMF3) {
        body.push(0);
    }
    for v in values {
        amf::encode(&mut body, v);
    }
    Message {
        csid,
        timestamp: 0,
        type_id,
        stream_id,
        payload: Bytes::from(body),
    }
}

/// An onStatus info object (§7.2.2): level "status" or "error", a code
/// such as `NetStream.Publish.Start`, and a description.
pub fn status_info(level: &str, code: &str, description: &str) -> Value {
    Value::Object(vec![
        ("level".into(), level.into()),
        ("code".into(), code.into()),
        ("description".into(), description.into()),
    ])
}

/// Level, code and description of an info object (empty when absent).
pub fn read_status(info: &Value) -> (String, String, String) {
    let field = |k: &str| info.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    (field("level"), field("code"), field("description"))
}

/// Splits an aggregate message (§7.1.6) into its audio, video and data
/// sub-messages. Each sub-message header is type (1), length (3),
/// timestamp (3 + 1 extension byte, high), stream id (3), followed by the
/// body and a 4-byte back pointer. Timestamps keep their offsets from the
/// first sub-message and are moved onto the aggregate's own timestamp.
/// A truncated tail is ignored.
pub fn split_aggregate(msg: &Message) -> Vec<Message> {
    let p = &msg.payload;
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut first: Option<u32> = None;
    while let Some(h) = p.get(at..at + 11) {
        let len = (h[1] as usize) << 16 | (h[2] as usize) << 8 | h[3] as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = at + 11;
        let Some(end) = start.checked_add(len).filter(|&e| e <= p.len()) else {
            break;
        };
        let base = *first.get_or_insert(ts);
        if matches!(h[0], TYPE_AUDIO | TYPE_VIDEO | TYPE_DATA_AMF0) {
            out.push(Message {
                csid: msg.csid,
                timestamp: msg.timestamp.wrapping_add(ts.wrapping_sub(base)),
                type_id: h[0],
                stream_id: msg.stream_id,
                payload: p.slice(start..end),
            });
        }
        at = end + 4;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_control_round_trips() {
        let m = set_buffer_length(1, 3000);
        assert_eq!(
            parse_user_control(&m.payload),
            Some(UserControl::SetBufferLength { stream_id: 1, ms: 3000 })
        );
        assert_eq!(
            parse_user_control(&stream_begin(7).payload),
            Some(UserControl::StreamBegin(7))
        );
        assert_eq!(parse_user_control(&[0, 6, 0, 0, 1]), None);
        assert_eq!(parse_user_control(&[0, 31, 0]), Some(UserControl::Other(31)));
    }

    #[test]
    fn amf3_command_body_skips_the_format_byte() {
        let m = amf_message(3, 0, TYPE_COMMAND_AMF3, &["connect".into(), 1.0.into()]);
        assert_eq!(m.payload[0], 0);
        let (values, err) = decode_values(TYPE_COMMAND_AMF3, &m.payload);
        assert!(err.is_none());
        let c = Command::from_values(values).expect("a command");
        assert_eq!(c.name, "connect");
        assert_eq!(c.transaction_id, 1.0);
        assert_eq!(c.object, Value::Null);
        // Without the format byte it still reads.
        let m = amf_message(3, 0, TYPE_COMMAND_AMF0, &["play".into()]);
        let (values, _) = decode_values(TYPE_COMMAND_AMF3, &m.payload);
        assert_eq!(Command::from_values(values).map(|c| c.name), Some("play".into()));
    }

    #[test]
    fn aggregate_sub_messages_keep_their_offsets() {
        let mut p = Vec::new();
        for (t, ts, body) in [(9u8, 1000u32, &b"vv"[..]), (8, 1020, b"a"), (9, 1040, b"v")] {
            p.push(t);
            p.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            p.extend_from_slice(&ts.to_be_bytes()[1..]);
            p.push((ts >> 24) as u8);
            p.extend_from_slice(&[0, 0, 1]);
            p.extend_from_slice(body);
            p.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        }
        p.extend_from_slice(&[9, 0, 0, 50]); // truncated tail
        let agg = Message {
            csid: 6,
            timestamp: 5000,
            type_id: TYPE_AGGREGATE,
            stream_id: 1,
            payload: Bytes::from(p),
        };
        let subs = split_aggregate(&agg);
        let got: Vec<(u8, u32, &[u8])> = subs.iter().map(|m| (m.type_id, m.timestamp, &m.payload[..])).collect();
        assert_eq!(got, [(9, 5000, &b"vv"[..]), (8, 5020, b"a"), (9, 5040, b"v")]);
    }
}
