//! PES layer (ISO/IEC 13818-1 §2.4.3.6, §2.4.3.7): the state of each
//! followed stream, PES reassembly from transport packets, header parsing
//! (PTS and DTS optional), and the hand-over of each complete PES payload to
//! its codec (video access units, AAC, opaque audio, subtitles).
//!
//! Invariants: a PES is at most [`MAX_PES_SIZE`] bytes and all buffered
//! bytes at most [`MAX_BUFFERED`]; a PES that lost a packet never reaches a
//! codec; the payload handed over is a frozen slice of the reassembly
//! buffer (no copy), which codecs slice further into frames.

use bytes::{Buf, BytesMut};

use super::audio::{AacState, OpaqueState};
use super::data::{DataState, Scte35State};
use super::psi::SectionBuf;
use super::video::VideoAsm;
use super::{Demuxer, TsErrorKind, MAX_BUFFERED, MAX_PES_SIZE};
use crate::frame::{Codec, TrackParams};
use crate::ts::PACKET_SIZE;

/// Capacity of a fresh PES buffer. `BytesMut` keeps allocating blocks at
/// least this large, so several frames share one allocation.
const PES_BLOCK: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PesState {
    /// Waiting for a packet with payload_unit_start_indicator.
    Idle,
    /// Collecting the PES header (it may span packets).
    Header,
    /// Header parsed; collecting payload.
    Payload,
}

/// What the codec of a stream keeps between PES.
pub(super) enum Kind {
    Video(Box<VideoAsm>),
    Aac(Box<AacState>),
    Opaque(OpaqueState),
    Data(DataState),
    Scte35(Box<Scte35State>),
    /// Taken out while its handler runs.
    Taken,
}

/// One elementary stream being demuxed.
pub(super) struct Stream {
    pub(super) pid: u16,
    pub(super) codec: Codec,
    /// AAC in LATM/LOAS.
    pub(super) latm: bool,
    pub(super) params: TrackParams,
    state: PesState,
    pub(super) pes: BytesMut,
    /// PTS and DTS of the PES being assembled; `None` without PTS.
    pub(super) ts: Option<(i64, i64)>,
    /// Payload bytes announced by PES_packet_length, if non-zero.
    expected: Option<usize>,
    /// Recent large PES payload size (decaying maximum), for reserving.
    size_hint: usize,
    /// Video: the head of this PES still has to tell whether the access
    /// unit held from before ends here.
    peek: bool,
    pub(super) kind: Kind,
}

impl Stream {
    pub(super) fn new(pid: u16, codec: Codec, latm: bool) -> Self {
        let kind = match codec {
            Codec::H264 | Codec::H265 => Kind::Video(Box::new(VideoAsm::new(codec))),
            Codec::Aac => Kind::Aac(Box::new(AacState::new(latm))),
            Codec::MpegAudio | Codec::Ac3 | Codec::Eac3 => Kind::Opaque(OpaqueState::default()),
            Codec::Teletext | Codec::DvbSubtitle => Kind::Data(DataState::default()),
            Codec::Scte35 => Kind::Scte35(Box::default()),
        };
        Stream {
            pid,
            codec,
            latm,
            params: TrackParams::default(),
            state: PesState::Idle,
            pes: BytesMut::new(),
            ts: None,
            expected: None,
            size_hint: 0,
            peek: false,
            kind,
        }
    }

    /// Drops the PES being assembled. Returns true if one was in progress.
    fn abort_pes(&mut self) -> bool {
        let was = !matches!(self.state, PesState::Idle);
        self.state = PesState::Idle;
        self.pes.clear();
        self.peek = false;
        was
    }

    pub(super) fn section_buf(&mut self) -> Option<&mut SectionBuf> {
        match &mut self.kind {
            Kind::Scte35(s) => Some(&mut s.section),
            _ => None,
        }
    }

    pub(super) fn reset_section(&mut self) {
        if let Some(b) = self.section_buf() {
            b.reset();
        }
    }

    /// Bytes this stream holds: the PES in progress and, for video, the
    /// access unit whose end is not known yet.
    fn buffered(&self) -> usize {
        self.pes.len()
            + match &self.kind {
                Kind::Video(v) => v.held_bytes(),
                _ => 0,
            }
    }
}

pub(super) enum HeaderParse {
    NeedMore,
    Bad,
    Ok {
        header_len: usize,
        /// (PTS, DTS); DTS = PTS when only a PTS is coded.
        ts: Option<(i64, i64)>,
        expected: Option<usize>,
    },
}

/// Parses a PES header (§2.4.3.6) at the start of `b`. PTS_DTS_flags '00'
/// (no timestamps) is accepted; '01' is forbidden.
pub(super) fn parse_pes_header(b: &[u8]) -> HeaderParse {
    if b.len() < 9 {
        // Reject a wrong start code as soon as it is visible.
        let n = b.len().min(3);
        return if b[..n] == [0, 0, 1][..n] {
            HeaderParse::NeedMore
        } else {
            HeaderParse::Bad
        };
    }
    if b[..3] != [0, 0, 1] {
        return HeaderParse::Bad;
    }
    let stream_id = b[3];
    // Streams without the optional header carry no PTS and no media of ours.
    if matches!(stream_id, 0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF) {
        return HeaderParse::Bad;
    }
    let packet_len = usize::from(u16::from_be_bytes([b[4], b[5]]));
    if b[6] & 0xC0 != 0x80 {
        return HeaderParse::Bad;
    }
    let flags = b[7] >> 6;
    let hdl = usize::from(b[8]);
    let header_len = 9 + hdl;
    if b.len() < header_len {
        return HeaderParse::NeedMore;
    }
    let ts = match flags {
        0b00 => None,
        0b10 if hdl >= 5 => {
            let pts = read_timestamp(&b[9..14]);
            Some((pts, pts))
        }
        0b11 if hdl >= 10 => Some((read_timestamp(&b[9..14]), read_timestamp(&b[14..19]))),
        _ => return HeaderParse::Bad, // forbidden 01, or too short
    };
    let expected = if packet_len == 0 {
        None
    } else {
        match packet_len.checked_sub(3 + hdl) {
            Some(n) => Some(n),
            None => return HeaderParse::Bad,
        }
    };
    HeaderParse::Ok {
        header_len,
        ts,
        expected,
    }
}

/// 33-bit PTS/DTS from its 5-byte field (marker bits ignored, as decoders do).
pub(super) fn read_timestamp(b: &[u8]) -> i64 {
    let b = |i: usize| i64::from(b.get(i).copied().unwrap_or(0));
    ((b(0) >> 1) & 0x07) << 30 | b(1) << 22 | (b(2) >> 1) << 15 | b(3) << 7 | b(4) >> 1
}

impl Demuxer {
    pub(super) fn pes_payload(&mut self, si: usize, payload: &[u8], pusi: bool) {
        if pusi {
            self.finish_pes(si);
        }
        // Past 1 MiB also check all streams together, so a PMT announcing
        // many streams cannot multiply the per-PES bound.
        let big = self
            .streams
            .get(si)
            .is_some_and(|s| !pusi && s.pes.len() + payload.len() > 1 << 20);
        let total = if big { self.buffered() } else { 0 };
        let Some(st) = self.streams.get_mut(si) else {
            return;
        };
        if pusi {
            st.state = PesState::Header;
            st.pes.clear();
            // Reserve for a PES as large as recent ones so the payload is
            // copied once, not again on every growth of the buffer.
            let want = st.size_hint + st.size_hint / 4 + PACKET_SIZE;
            if st.pes.capacity() < want {
                st.pes.reserve(want.max(PES_BLOCK));
            }
        }
        if matches!(st.state, PesState::Idle) {
            return;
        }
        let len = st.pes.len() + payload.len();
        if len > MAX_PES_SIZE || total + payload.len() > MAX_BUFFERED {
            let pid = st.pid;
            self.lose_pes_quietly(si);
            self.error(pid, TsErrorKind::Oversize);
            return;
        }
        st.pes.extend_from_slice(payload);
        if matches!(st.state, PesState::Header) {
            match parse_pes_header(&st.pes) {
                HeaderParse::NeedMore => return,
                HeaderParse::Bad => {
                    let pid = st.pid;
                    self.lose_pes_quietly(si);
                    self.error(pid, TsErrorKind::Pes);
                    return;
                }
                HeaderParse::Ok {
                    header_len,
                    ts,
                    expected,
                } => {
                    st.pes.advance(header_len);
                    st.ts = ts;
                    st.expected = expected;
                    st.state = PesState::Payload;
                    st.peek = matches!(&st.kind, Kind::Video(v) if v.holds());
                }
            }
        }
        if st.peek {
            self.video_peek(si, false);
            let done = self
                .streams
                .get(si)
                .is_some_and(|st| st.expected.is_some_and(|n| st.pes.len() >= n));
            if done {
                self.finish_pes(si);
            }
        } else if st.expected.is_some_and(|n| st.pes.len() >= n) {
            self.finish_pes(si);
        }
    }

    /// PES and access-unit bytes buffered over all streams.
    fn buffered(&self) -> usize {
        self.streams.iter().map(Stream::buffered).sum()
    }

    /// Drops the PES in progress and what the codec held that it may have
    /// belonged to, without counting (the caller counts the cause).
    #[cold]
    #[inline(never)]
    fn lose_pes_quietly(&mut self, si: usize) {
        if let Some(st) = self.streams.get_mut(si) {
            st.abort_pes();
        }
        self.with_kind(si, |d, kind| match kind {
            Kind::Video(v) => v.lost(d),
            Kind::Aac(a) => a.lost(),
            Kind::Opaque(o) => o.lost(),
            Kind::Data(_) | Kind::Scte35(_) | Kind::Taken => {}
        });
    }

    /// A packet of stream `si` was lost or damaged: its PES is dropped
    /// (counted if one was in progress).
    #[cold]
    #[inline(never)]
    pub(super) fn lose_pes(&mut self, pid: u16, si: usize) {
        let was = self
            .streams
            .get(si)
            .is_some_and(|st| !matches!(st.state, PesState::Idle));
        self.lose_pes_quietly(si);
        if was {
            self.error(pid, TsErrorKind::Pes);
        }
    }

    /// Runs `f` on the codec state of stream `si`, taken out of the stream
    /// so that `f` can use the whole demuxer.
    pub(super) fn with_kind(&mut self, si: usize, f: impl FnOnce(&mut Demuxer, &mut Kind)) {
        let Some(st) = self.streams.get_mut(si) else {
            return;
        };
        let mut kind = std::mem::replace(&mut st.kind, Kind::Taken);
        f(self, &mut kind);
        if let Some(st) = self.streams.get_mut(si) {
            // What is put back over is the `Taken` marker, which owns
            // nothing: skip its drop glue on this per-PES path.
            let taken = std::mem::replace(&mut st.kind, kind);
            debug_assert!(matches!(taken, Kind::Taken));
            std::mem::forget(taken);
        }
    }

    /// Lets the video codec look at the head of the PES being assembled.
    /// `complete`: the PES has ended, so there is nothing more to wait for.
    fn video_peek(&mut self, si: usize, complete: bool) {
        let Some(st) = self.streams.get_mut(si) else {
            return;
        };
        let Kind::Video(v) = &mut st.kind else {
            st.peek = false;
            return;
        };
        let Some(decision) = v.classify_head(&st.pes, complete) else {
            return; // not enough bytes yet
        };
        st.peek = false;
        self.with_kind(si, |d, kind| {
            if let Kind::Video(v) = kind {
                v.apply_head(d, si, decision);
            }
        });
    }

    /// Completes the PES of stream `si` (if any) and hands its payload to
    /// the codec.
    pub(super) fn finish_pes(&mut self, si: usize) {
        let Some(st) = self.streams.get_mut(si) else {
            return;
        };
        let pid = st.pid;
        match st.state {
            PesState::Idle => return,
            PesState::Header => {
                self.lose_pes_quietly(si);
                self.error(pid, TsErrorKind::Pes);
                return;
            }
            PesState::Payload => {}
        }
        if let Some(n) = st.expected {
            if st.pes.len() < n {
                // Cut short by the next PUSI: a packet went missing.
                self.lose_pes_quietly(si);
                self.error(pid, TsErrorKind::Pes);
                return;
            }
            st.pes.truncate(n);
        }
        if st.peek {
            self.video_peek(si, true);
        }
        let Some(st) = self.streams.get_mut(si) else {
            return;
        };
        st.state = PesState::Idle;
        st.peek = false;
        if st.pes.is_empty() {
            self.error(pid, TsErrorKind::Pes);
            return;
        }
        let len = st.pes.len();
        st.size_hint = len.max(st.size_hint - st.size_hint / 8).min(4 << 20);
        let data = st.pes.split().freeze();
        let ts = st.ts;
        let bounded = st.expected.is_some();
        self.with_kind(si, |d, kind| match kind {
            Kind::Video(v) => v.pes_end(d, si, data, ts, bounded),
            Kind::Aac(a) => a.pes(d, si, data, ts),
            Kind::Opaque(o) => o.pes(d, si, data, ts),
            Kind::Data(x) => x.pes(d, si, data, ts),
            Kind::Scte35(_) | Kind::Taken => {}
        });
    }

    /// End of input for stream `si`: emits what its codec still holds.
    pub(super) fn flush_stream(&mut self, si: usize) {
        self.with_kind(si, |d, kind| match kind {
            Kind::Video(v) => v.flush(d, si),
            Kind::Aac(a) => a.lost(),
            Kind::Opaque(_) | Kind::Data(_) | Kind::Scte35(_) | Kind::Taken => {}
        });
    }

    /// Releases a video frame held in the event order: its access unit is
    /// taken as complete.
    pub(super) fn release_held(&mut self, si: usize) {
        self.with_kind(si, |d, kind| {
            if let Kind::Video(v) = kind {
                v.release(d, si);
            }
        });
    }

    /// Gives up the place of a held video frame; its access unit stays open
    /// and is emitted when it ends.
    pub(super) fn unhold(&mut self, si: usize) {
        self.with_kind(si, |d, kind| {
            if let Kind::Video(v) = kind {
                v.unhold(d);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::TS_WRAP;

    #[test]
    fn timestamp_field() {
        // PTS 0x1_2345_6789 with marker bits.
        let v: i64 = 0x1_2345_6789;
        let f = [
            0x21 | (((v >> 30) & 7) << 1) as u8,
            (v >> 22) as u8,
            (((v >> 15) & 0x7F) << 1) as u8 | 1,
            (v >> 7) as u8,
            ((v & 0x7F) << 1) as u8 | 1,
        ];
        assert_eq!(read_timestamp(&f), v);
        assert_eq!(read_timestamp(&[0xFF; 5]), TS_WRAP - 1);
    }

    #[test]
    fn pes_header_variants() {
        let mut h = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        match parse_pes_header(&h) {
            HeaderParse::Ok {
                header_len,
                ts,
                expected,
            } => assert_eq!((header_len, ts, expected), (14, Some((0, 0)), None)),
            _ => panic!("PTS-only header rejected"),
        }
        assert!(matches!(parse_pes_header(&h[..10]), HeaderParse::NeedMore));
        assert!(matches!(parse_pes_header(&h[..2]), HeaderParse::NeedMore));
        // No PTS (flags 00): accepted, without timestamps.
        h[7] = 0;
        assert!(matches!(
            parse_pes_header(&h),
            HeaderParse::Ok {
                header_len: 14,
                ts: None,
                ..
            }
        ));
        h[7] = 0x40; // forbidden
        assert!(matches!(parse_pes_header(&h), HeaderParse::Bad));
        // PTS flag with a header too short for it.
        let short = [0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 2, 0xFF, 0xFF];
        assert!(matches!(parse_pes_header(&short), HeaderParse::Bad));
        assert!(matches!(parse_pes_header(&[0, 1]), HeaderParse::Bad));
        // PES_packet_length shorter than the header.
        let h = [0, 0, 1, 0xC0, 0, 4, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        assert!(matches!(parse_pes_header(&h), HeaderParse::Bad));
        // PTS and DTS; a private_stream_2 (no optional header) is refused.
        let h = [0, 0, 1, 0xE0, 0, 0, 0x80, 0xC0, 10, 0x31, 0, 1, 0, 3, 0x11, 0, 1, 0, 1];
        assert!(matches!(parse_pes_header(&h), HeaderParse::Ok { ts: Some((1, 0)), .. }));
        assert!(matches!(
            parse_pes_header(&[0, 0, 1, 0xBF, 0, 3, 1, 2, 3]),
            HeaderParse::Bad
        ));
    }
}
