//! What server and client sessions share: the handshake phase, the chunk
//! codec, the output buffer, counters, and the protocol control messages
//! both sides answer the same way (§5.4, §7.1.7):
//! - Window Acknowledgement Size from the peer sets the window at which
//!   Acknowledgements are sent (sequence number = chunk-stream bytes
//!   received, modulo 2^32); Acknowledgements received are ignored;
//! - Set Peer Bandwidth is answered with a Window Acknowledgement Size when
//!   it differs from the last one sent;
//! - Ping Request is answered with a Ping Response carrying its timestamp.
//!
//! Everything else goes up to the session.

use bytes::{Bytes, BytesMut};

use super::chunk::{ChunkDecoder, ChunkEncoder, Message};
use super::handshake::{ClientHandshake, ServerHandshake};
use super::message::{self, UserControl};
use super::{Limits, RtmpError, Stats};

enum Handshake {
    Server(ServerHandshake),
    Client(ClientHandshake),
    Done,
}

pub(super) struct Conn {
    handshake: Handshake,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    out: BytesMut,
    pub(super) stats: Stats,
    /// Chunk-stream bytes received (after the handshake).
    received: u64,
    /// `received` when the last Acknowledgement went out.
    acked: u64,
    /// The window the peer asked us to acknowledge at; 0: none asked.
    ack_window: u32,
    /// The last Window Acknowledgement Size we sent.
    sent_window: Option<u32>,
}

impl Conn {
    /// A server connection: waits for C0+C1.
    pub(super) fn server(limits: Limits) -> Self {
        Self::new(Handshake::Server(ServerHandshake::new()), limits)
    }

    /// A client connection: C0+C1 are queued at once; `seed` varies C1.
    pub(super) fn client(limits: Limits, seed: &[u8]) -> Self {
        let mut c = Self::new(Handshake::Done, limits);
        c.handshake = Handshake::Client(ClientHandshake::new(&mut c.out, seed));
        c
    }

    pub(super) fn set_limits(&mut self, limits: Limits) {
        self.decoder.set_limits(limits);
    }

    fn new(handshake: Handshake, limits: Limits) -> Self {
        Conn {
            handshake,
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(),
            out: BytesMut::new(),
            stats: Stats::default(),
            received: 0,
            acked: 0,
            ack_window: 0,
            sent_window: None,
        }
    }

    /// Runs the handshake on the front of `input`; true when it is over
    /// (now or before) and `input` holds chunk-stream bytes.
    pub(super) fn handshake(&mut self, input: &mut &[u8]) -> Result<bool, RtmpError> {
        let done = match &mut self.handshake {
            Handshake::Server(h) => h.feed(input, &mut self.out)?,
            Handshake::Client(h) => h.feed(input, &mut self.out)?,
            Handshake::Done => return Ok(true),
        };
        if done {
            self.handshake = Handshake::Done;
        }
        Ok(done)
    }

    pub(super) fn handshake_done(&self) -> bool {
        matches!(self.handshake, Handshake::Done)
    }

    /// The next message for the session, protocol control handled here.
    pub(super) fn next_message(&mut self, input: &mut &[u8]) -> Result<Option<Message>, RtmpError> {
        loop {
            let before = input.len();
            let msg = self.decoder.decode(input);
            self.received += (before - input.len()) as u64;
            let Some(msg) = msg? else {
                self.ack_if_due()?;
                return Ok(None);
            };
            match msg.type_id {
                message::TYPE_ACKNOWLEDGEMENT => {}
                message::TYPE_WINDOW_ACK_SIZE => {
                    if let Some(b) = msg.payload.get(..4) {
                        self.ack_window = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                    }
                }
                message::TYPE_SET_PEER_BANDWIDTH => {
                    if let Some(b) = msg.payload.get(..4) {
                        let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        if self.sent_window != Some(size) {
                            self.send_window_ack_size(size)?;
                        }
                    }
                }
                message::TYPE_USER_CONTROL => match message::parse_user_control(&msg.payload) {
                    Some(UserControl::PingRequest(t)) => {
                        self.send(&message::user_control(message::EVENT_PING_RESPONSE, &t.to_be_bytes()))?;
                    }
                    Some(_) => {}
                    None => return Err(RtmpError::Protocol("short user control message")),
                },
                _ => return Ok(Some(msg)),
            }
        }
    }

    fn ack_if_due(&mut self) -> Result<(), RtmpError> {
        if self.ack_window > 0 && self.received - self.acked >= self.ack_window as u64 {
            self.acked = self.received;
            self.stats.acks_sent += 1;
            self.send(&message::acknowledgement(self.received as u32))?;
        }
        Ok(())
    }

    pub(super) fn send(&mut self, msg: &Message) -> Result<(), RtmpError> {
        self.encoder.write(&mut self.out, msg)?;
        self.stats.messages_out += 1;
        Ok(())
    }

    pub(super) fn send_window_ack_size(&mut self, size: u32) -> Result<(), RtmpError> {
        self.sent_window = Some(size);
        self.send(&message::window_ack_size(size))
    }

    pub(super) fn set_chunk_size(&mut self, size: u32) -> Result<(), RtmpError> {
        self.encoder.set_chunk_size(&mut self.out, size)?;
        self.stats.messages_out += 1;
        Ok(())
    }

    pub(super) fn take_output(&mut self) -> Bytes {
        self.stats.bytes_out += self.out.len() as u64;
        self.out.split().freeze()
    }

    pub(super) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub(super) fn stats(&self) -> Stats {
        Stats {
            bytes_out: self.stats.bytes_out + self.out.len() as u64,
            messages_in: self.decoder.messages(),
            aborted: self.decoder.aborted(),
            ext_timestamp_missing: self.decoder.ext_timestamp_missing(),
            ..self.stats
        }
    }
}
