//! RTMP (Adobe RTMP 1.0, with Enhanced RTMP's additions): handshake, chunk
//! stream, AMF0/AMF3 commands and server/client sessions, without I/O.
//!
//! Layers, bottom up:
//! - [`handshake`]: C0/C1/C2 ⇄ S0/S1/S2 (§5.2), simple and the digest
//!   ("complex") form Flash-era encoders use.
//! - [`chunk`]: the chunk stream (§5.3): messages cut into chunks with
//!   compressed headers, Set Chunk Size and Abort (§5.4.1–2) applied there.
//! - [`amf`]: AMF0 values (with AMF3 values behind the AVM+ switch).
//! - [`message`]: message type ids (§5.4, §6.2, §7.1), protocol and user
//!   control messages, command messages (§7.2).
//! - [`session`] ([`ServerSession`]) and [`client`] ([`ClientSession`]):
//!   whole connections. Bytes go in with `feed`, events come out of
//!   `poll_event`, bytes to send out of `take_output`.
//!
//! Invariants:
//! - Nothing here reads a clock, blocks or does I/O; nothing panics on input.
//! - Every buffer is bounded by [`Limits`]: message length, chunk streams,
//!   bytes held in partial messages, message streams per connection.
//! - Timestamps are RTMP's 32-bit milliseconds exactly as sent on the wire
//!   (absolute for type-0 headers, deltas added with wrapping arithmetic);
//!   unwrapping the 32-bit clock (every ~49.7 days) is the FLV layer's job.
//! - Errors name a kind (for metrics labels) and never carry peer bytes.
//!   After an error the connection is to be closed.

pub mod amf;
mod amf3;
pub mod chunk;
pub mod client;
mod conn;
pub mod handshake;
pub mod message;
pub mod session;
#[cfg(test)]
mod tests;

pub use amf::{AmfError, Value};
pub use chunk::Message;
pub use client::{ClientConfig, ClientEvent, ClientMode, ClientSession};
pub use session::{PublishKind, ServerEvent, ServerSession};

/// Caps that bound what one connection may make us hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in bytes (the message length field, §5.3.1.2).
    /// A header announcing more is an error. Default 8 MiB.
    pub max_message_len: usize,
    /// Chunk stream ids with state at once (each may hold one partial
    /// message). Default 64; real encoders use fewer than 8.
    pub max_chunk_streams: usize,
    /// Bytes held in partial messages over all chunk streams. Default 16 MiB.
    pub max_partial_bytes: usize,
    /// Message streams (`createStream`, §7.2.1.3) per connection. Default 16.
    pub max_streams: u32,
    /// Media and data bytes a server holds for a stream whose publish waits
    /// for the node's answer (so an encoder that does not wait for
    /// `NetStream.Publish.Start` keeps its sequence headers). Default 4 MiB.
    pub max_held_bytes: usize,
}

impl Limits {
    /// Tight caps for a connection that has not been admitted yet (before
    /// its publish is accepted): commands and the first media tags fit,
    /// but a stranger cannot make strom hold more than about 3 MiB.
    /// Widen them with [`ServerSession::set_limits`] once the peer is known.
    pub const UNADMITTED: Limits = Limits {
        max_message_len: 1 << 20,
        max_chunk_streams: 16,
        max_partial_bytes: 1 << 20,
        max_streams: 4,
        max_held_bytes: 1 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: 8 << 20,
            max_chunk_streams: 64,
            max_partial_bytes: 16 << 20,
            max_streams: 16,
            max_held_bytes: 4 << 20,
        }
    }
}

/// Why a connection cannot go on. [`RtmpError::kind`] is a short, stable
/// label for metrics; messages never include bytes sent by the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtmpError {
    /// A broken handshake (§5.2): wrong version, or not RTMP at all.
    #[error("rtmp handshake: {0}")]
    Handshake(&'static str),
    /// Set Chunk Size (§5.4.1) of 0 or with the top bit set.
    #[error("rtmp: chunk size {0} outside 1..=0x7FFFFFFF")]
    ChunkSize(u32),
    /// A message longer than [`Limits::max_message_len`] (or, when sending,
    /// than the 24-bit length field).
    #[error("rtmp: message of {len} bytes over the {cap}-byte limit")]
    TooLarge { len: usize, cap: usize },
    /// Another cap of [`Limits`] was reached.
    #[error("rtmp: too many {0}")]
    Limit(&'static str),
    /// AMF that cannot be decoded where it is needed.
    #[error("rtmp: {0}")]
    Amf(#[from] AmfError),
    /// A chunk or message that breaks the protocol.
    #[error("rtmp protocol: {0}")]
    Protocol(&'static str),
    /// The caller asked for something the session's state does not allow
    /// (e.g. accepting a publish nobody asked for). Not the peer's fault.
    #[error("rtmp: {0}")]
    State(&'static str),
}

impl RtmpError {
    /// Stable label: `handshake`, `chunk_size`, `too_large`, `limit`, `amf`,
    /// `protocol` or `state`.
    pub fn kind(&self) -> &'static str {
        match self {
            RtmpError::Handshake(_) => "handshake",
            RtmpError::ChunkSize(_) => "chunk_size",
            RtmpError::TooLarge { .. } => "too_large",
            RtmpError::Limit(_) => "limit",
            RtmpError::Amf(_) => "amf",
            RtmpError::Protocol(_) => "protocol",
            RtmpError::State(_) => "state",
        }
    }
}

/// Audio (message type 8) or video (type 9), §7.1.4–5. The payload is an
/// FLV tag body (Enhanced RTMP extends the video one with FourCCs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

/// Counters of one connection, for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes fed in, handshake included.
    pub bytes_in: u64,
    /// Bytes queued for the peer, handshake included.
    pub bytes_out: u64,
    /// Whole messages decoded (chunk-layer control messages included).
    pub messages_in: u64,
    /// Messages queued for the peer.
    pub messages_out: u64,
    /// Audio and video messages passed on as events.
    pub media_in: u64,
    /// Messages dropped: media or data for a stream that is not publishing
    /// (or playing) or over the held-bytes cap, unknown message types,
    /// shared objects, command messages that are no command.
    pub dropped: u64,
    /// Partial messages discarded by Abort (§5.4.2) or a new header.
    pub aborted: u64,
    /// Commands the session does not know (answered or ignored, never fatal).
    pub unknown_commands: u64,
    /// Command or data messages whose AMF did not decode wholly (what did
    /// decode was still used).
    pub amf_errors: u64,
    /// Type-3 chunks that lacked the extended timestamp their message's
    /// header announced (tolerated).
    pub ext_timestamp_missing: u64,
    /// Acknowledgements (§5.4.3) sent.
    pub acks_sent: u64,
}
