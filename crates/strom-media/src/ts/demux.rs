//! MPEG-TS demuxer: transport packets in, [`Track`] sets and raw [`Frame`]s out.
//!
//! Push/pull like retina's depacketizers: [`Demuxer::push`] takes bytes in
//! chunks of any size as they arrive (UDP datagrams, HTTP body chunks) and
//! queues events; [`Demuxer::pull`] hands them out. Call `pull` until `None`
//! after every `push`; [`Demuxer::flush`] ends the input.
//!
//! Invariants:
//! - Only the first program of the PAT is followed. A track id is the index of
//!   the stream among the recognised streams of its PMT, not its PID.
//! - A [`DemuxEvent::Tracks`] is queued before the first frame that uses a new
//!   track set or new codec parameters, so every `Frame::track` indexes the
//!   most recent `Tracks` event. Changes are coalesced: several changes
//!   before the next frame produce one event.
//! - Frame timestamps are raw 33-bit PES values in `[0, 2^33)`; they may wrap.
//! - Video frames of a track are only emitted from its first keyframe whose
//!   parameter sets are known (earlier ones are counted in `dropped_frames`).
//!   Video frame data is the PES payload (one Annex B access unit) with a
//!   leading access unit delimiter removed: muxers write their own.
//! - A PES that lost a packet (continuity error, transport error) is dropped,
//!   never emitted corrupt. Nothing here panics on input, and memory stays
//!   bounded: partial packets < 2 packets, PES ≤ [`MAX_PES_SIZE`] each and
//!   [`MAX_BUFFERED`] together, PSI
//!   sections ≤ 1024 bytes.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

use crate::codec::aac::{self, AdtsHeader};
use crate::codec::nal::{AuScan, BitReader};
use crate::codec::{h264, h265};
use crate::frame::{Codec, Frame, Track, TrackParams};
use crate::ts::crc::crc32_mpeg2;
use crate::ts::{PACKET_SIZE, SYNC_BYTE, TS_WRAP};

/// Largest PES accepted; a larger one is dropped and counted in `pes_errors`.
pub const MAX_PES_SIZE: usize = 16 << 20;
/// Largest total of PES bytes buffered over all streams.
pub const MAX_BUFFERED: usize = 32 << 20;
/// Most recognised streams turned into tracks; further ones are ignored.
pub const MAX_TRACKS: usize = 32;

/// PSI sections of PAT and PMT are at most 1024 bytes (section_length ≤ 1021).
const MAX_SECTION_LEN: usize = 1024;
const PID_COUNT: usize = 0x2000;
const PAT_PID: u16 = 0;
const NULL_PID: u16 = 0x1FFF;
const TABLE_PAT: u8 = 0x00;
const TABLE_PMT: u8 = 0x02;
const TS_MASK: i64 = TS_WRAP - 1;
/// Bytes needed to confirm a sync candidate: the candidate packet plus the
/// next packet's sync byte.
const SYNC_PROBE: usize = PACKET_SIZE + 1;
/// Capacity of a fresh PES buffer. `BytesMut` keeps allocating blocks at
/// least this large, so several frames share one allocation.
const PES_BLOCK: usize = 64 * 1024;

/// What [`Demuxer::pull`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DemuxEvent {
    /// The set of tracks or their codec parameters changed (first PMT, PMT
    /// stream change, new parameter sets or resolution, AAC config change).
    /// Emitted before the first frame that uses the new set.
    Tracks(Arc<[Track]>),
    Frame(Frame),
}

/// Counters for monitoring; they only ever increase.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct DemuxStats {
    /// Transport packets processed (after sync).
    pub packets: u64,
    /// Bytes pushed.
    pub bytes: u64,
    /// Times sync was lost or garbage had to be skipped to find it (once per resync).
    pub sync_errors: u64,
    /// Continuity counter errors on the PIDs followed.
    pub cc_errors: u64,
    /// PES dropped or damaged: malformed header, missing PTS, oversize, lost
    /// packets, garbage between ADTS frames.
    pub pes_errors: u64,
    /// PAT/PMT sections rejected: bad CRC or malformed.
    pub pmt_errors: u64,
    /// Track set changes after the first PMT.
    pub pmt_changes: u64,
    /// Frames emitted.
    pub frames: u64,
    /// Frames discarded on purpose, e.g. video before its first keyframe.
    pub dropped_frames: u64,
}

/// What a PID carries for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PidRole {
    None,
    Pat,
    Pmt,
    /// Index into `Demuxer::streams`.
    Stream(u8),
}

/// Continuity state of a PID: unknown, or last CC plus whether a duplicate
/// of it was already seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cc {
    Unknown,
    Last { cc: u8, dup_seen: bool },
}

#[derive(Clone, Copy, Debug)]
struct PidState {
    role: PidRole,
    cc: Cc,
}

enum CcCheck {
    Ok,
    Duplicate,
    Error,
}

/// Reassembly of one PSI PID's sections.
#[derive(Default)]
struct SectionBuf {
    buf: Vec<u8>,
    active: bool,
    /// CRC of the last section applied, to skip re-parsing repeats.
    last_crc: Option<u32>,
}

impl SectionBuf {
    fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Psi {
    Pat,
    Pmt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PesState {
    /// Waiting for a packet with payload_unit_start_indicator.
    Idle,
    /// Collecting the PES header (it may span packets).
    Header,
    /// Header parsed; collecting payload.
    Payload,
}

/// One elementary stream being demuxed.
struct Stream {
    pid: u16,
    codec: Codec,
    params: TrackParams,
    state: PesState,
    pes: BytesMut,
    pts: i64,
    dts: i64,
    /// Payload bytes announced by PES_packet_length, if non-zero.
    expected: Option<usize>,
    /// Recent large PES payload size (decaying maximum), for reserving.
    size_hint: usize,
    /// Video: a keyframe with known parameter sets has been emitted.
    started: bool,
    /// AAC: start of an ADTS frame cut by the end of the previous PES.
    carry: Vec<u8>,
    carry_pts: i64,
    carry_dts: i64,
}

impl Stream {
    fn new(pid: u16, codec: Codec, language: Option<String>) -> Self {
        Stream {
            pid,
            codec,
            params: TrackParams {
                language,
                ..TrackParams::default()
            },
            state: PesState::Idle,
            pes: BytesMut::new(),
            pts: 0,
            dts: 0,
            expected: None,
            size_hint: 0,
            started: false,
            carry: Vec::new(),
            carry_pts: 0,
            carry_dts: 0,
        }
    }

    /// Drops the PES being assembled. Returns true if one was in progress.
    fn abort_pes(&mut self) -> bool {
        let was = self.state != PesState::Idle;
        self.state = PesState::Idle;
        self.pes.clear();
        self.carry.clear();
        was
    }
}

/// An elementary stream entry of the PMT that we recognise.
#[derive(Clone, Debug, PartialEq, Eq)]
struct EsInfo {
    pid: u16,
    codec: Codec,
    language: Option<String>,
}

/// The MPEG-TS demuxer. See the module docs for the contract.
pub struct Demuxer {
    pids: Box<[PidState]>,
    /// Bytes of an incomplete packet (or an unconfirmed sync candidate).
    pending: Vec<u8>,
    locked: bool,
    /// The current loss of sync was already counted.
    sync_counted: bool,
    pat: SectionBuf,
    pmt: SectionBuf,
    program_number: Option<u16>,
    pmt_pid: Option<u16>,
    /// Whether a PMT was applied yet (the first one is not a "change").
    had_pmt: bool,
    streams: Vec<Stream>,
    tracks: Arc<[Track]>,
    /// `tracks` changed since the last `Tracks` event.
    tracks_dirty: bool,
    events: VecDeque<DemuxEvent>,
    stats: DemuxStats,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Demuxer {
    pub fn new() -> Self {
        let mut pids = vec![
            PidState {
                role: PidRole::None,
                cc: Cc::Unknown,
            };
            PID_COUNT
        ]
        .into_boxed_slice();
        pids[usize::from(PAT_PID)].role = PidRole::Pat;
        Demuxer {
            pids,
            pending: Vec::with_capacity(2 * SYNC_PROBE),
            locked: false,
            sync_counted: false,
            pat: SectionBuf::default(),
            pmt: SectionBuf::default(),
            program_number: None,
            pmt_pid: None,
            had_pmt: false,
            streams: Vec::new(),
            tracks: Arc::from(Vec::new()),
            tracks_dirty: false,
            events: VecDeque::new(),
            stats: DemuxStats::default(),
        }
    }

    /// Feeds bytes as received. Packets split across calls are reassembled;
    /// garbage is skipped with a resync.
    pub fn push(&mut self, data: &[u8]) {
        self.stats.bytes += data.len() as u64;
        let mut data = data;
        // Complete the buffered partial packet (or sync probe) first, copying
        // only what it needs, so the bulk of `data` is parsed in place.
        while !self.pending.is_empty() && !data.is_empty() {
            let target = if self.locked { PACKET_SIZE } else { 2 * SYNC_PROBE };
            let take = target.saturating_sub(self.pending.len()).max(1).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            let pending = std::mem::take(&mut self.pending);
            let used = self.consume(&pending);
            self.pending = pending;
            self.pending.drain(..used);
        }
        if self.pending.is_empty() {
            let used = self.consume(data);
            self.pending.extend_from_slice(&data[used..]);
        }
    }

    /// Next queued event, if any.
    pub fn pull(&mut self) -> Option<DemuxEvent> {
        self.events.pop_front()
    }

    /// End of input: emits the frames of PES still being assembled (those
    /// ended only by the next PUSI), drops partial packets. The demuxer can be
    /// fed again afterwards; it then resynchronises as on a new input.
    pub fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        // A last packet could not be confirmed by a following sync byte;
        // at the end of input we take it on its own sync byte.
        if !self.locked && pending.len() >= PACKET_SIZE && pending[0] == SYNC_BYTE {
            self.locked = true;
            self.consume(&pending);
        }
        self.pending = pending;
        self.pending.clear();
        for i in 0..self.streams.len() {
            self.finish_pes(i);
            if let Some(st) = self.streams.get_mut(i) {
                st.carry.clear();
            }
        }
        for p in self.pids.iter_mut() {
            p.cc = Cc::Unknown;
        }
        self.pat.reset();
        self.pmt.reset();
        self.locked = false;
        self.sync_counted = false;
        self.emit_tracks_if_dirty();
    }

    /// The current track set (also sent as [`DemuxEvent::Tracks`]).
    pub fn tracks(&self) -> &Arc<[Track]> {
        &self.tracks
    }

    pub fn stats(&self) -> &DemuxStats {
        &self.stats
    }

    // ---- sync and packets ----

    /// Parses the packets of `data`, returning how many bytes were used; the
    /// rest (a partial packet or an unconfirmed sync candidate) must be kept.
    fn consume(&mut self, data: &[u8]) -> usize {
        let mut pos = 0;
        loop {
            if self.locked {
                while let Some(pkt) = data.get(pos..).and_then(|r| r.first_chunk::<PACKET_SIZE>()) {
                    if pkt[0] != SYNC_BYTE {
                        self.locked = false;
                        self.stats.sync_errors += 1;
                        self.sync_counted = true;
                        break;
                    }
                    self.packet(pkt);
                    pos += PACKET_SIZE;
                }
                if self.locked {
                    return pos;
                }
            }
            // Hunting: a candidate is accepted when the byte one packet
            // later is a sync byte too.
            let rest = data.get(pos..).unwrap_or_default();
            let Some(i) = rest.iter().position(|&b| b == SYNC_BYTE) else {
                self.note_garbage(rest.len());
                return data.len();
            };
            self.note_garbage(i);
            pos += i;
            match data.get(pos + PACKET_SIZE) {
                Some(&SYNC_BYTE) => {
                    self.locked = true;
                    self.sync_counted = false;
                }
                Some(_) => {
                    self.note_garbage(1);
                    pos += 1;
                }
                None => return pos,
            }
        }
    }

    fn note_garbage(&mut self, n: usize) {
        if n > 0 && !self.sync_counted {
            self.stats.sync_errors += 1;
            self.sync_counted = true;
        }
    }

    fn packet(&mut self, p: &[u8; PACKET_SIZE]) {
        self.stats.packets += 1;
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let role = self.pids[usize::from(pid)].role;
        if role == PidRole::None {
            return;
        }
        let transport_error = p[1] & 0x80 != 0;
        let pusi = p[1] & 0x40 != 0;
        let scrambled = p[3] & 0xC0 != 0;
        let afc = (p[3] >> 4) & 0x03;
        let cc = p[3] & 0x0F;
        if transport_error {
            // The demodulator says this packet is damaged: CC included.
            self.pids[usize::from(pid)].cc = Cc::Unknown;
            self.reset_pid(role);
            return;
        }
        if afc == 0 {
            return; // reserved: decoders discard such packets
        }
        let mut offset = 4;
        let mut discontinuity = false;
        if afc & 0x02 != 0 {
            let af_len = usize::from(p[4]);
            offset = 5 + af_len;
            if offset > PACKET_SIZE {
                self.reset_pid(role);
                return;
            }
            discontinuity = af_len > 0 && p[5] & 0x80 != 0;
        }
        let has_payload = afc & 0x01 != 0;
        match self.check_cc(pid, cc, has_payload, discontinuity) {
            CcCheck::Ok => {}
            CcCheck::Duplicate => return,
            CcCheck::Error => {
                self.stats.cc_errors += 1;
                self.reset_pid(role);
            }
        }
        if !has_payload {
            return;
        }
        if scrambled {
            self.reset_pid(role);
            return;
        }
        let payload = &p[offset..];
        match role {
            PidRole::Pat => self.psi_payload(Psi::Pat, payload, pusi),
            PidRole::Pmt => self.psi_payload(Psi::Pmt, payload, pusi),
            PidRole::Stream(i) => self.pes_payload(usize::from(i), payload, pusi),
            PidRole::None => {}
        }
    }

    /// ISO/IEC 13818-1 2.4.3.3: the CC increments per packet with payload; one
    /// duplicate is allowed; a set discontinuity_indicator resets it.
    fn check_cc(&mut self, pid: u16, cc: u8, has_payload: bool, discontinuity: bool) -> CcCheck {
        let state = &mut self.pids[usize::from(pid)].cc;
        if !has_payload {
            return CcCheck::Ok;
        }
        let prev = *state;
        *state = Cc::Last { cc, dup_seen: false };
        match prev {
            _ if discontinuity => CcCheck::Ok,
            Cc::Unknown => CcCheck::Ok,
            Cc::Last { cc: last, dup_seen } if last == cc => {
                if dup_seen {
                    CcCheck::Error
                } else {
                    *state = Cc::Last { cc, dup_seen: true };
                    CcCheck::Duplicate
                }
            }
            Cc::Last { cc: last, .. } if (last + 1) & 0x0F == cc => CcCheck::Ok,
            Cc::Last { .. } => CcCheck::Error,
        }
    }

    /// Forgets partial data of a PID after loss or corruption.
    fn reset_pid(&mut self, role: PidRole) {
        match role {
            PidRole::Pat => self.pat.reset(),
            PidRole::Pmt => self.pmt.reset(),
            PidRole::Stream(i) => {
                if let Some(st) = self.streams.get_mut(usize::from(i)) {
                    if st.abort_pes() {
                        self.stats.pes_errors += 1;
                    }
                }
            }
            PidRole::None => {}
        }
    }

    // ---- PSI ----

    fn section_buf(&mut self, which: Psi) -> &mut SectionBuf {
        match which {
            Psi::Pat => &mut self.pat,
            Psi::Pmt => &mut self.pmt,
        }
    }

    fn psi_payload(&mut self, which: Psi, payload: &[u8], pusi: bool) {
        if !pusi {
            if self.section_buf(which).active {
                // Bytes after a section that ends here are stuffing: a new
                // section can only start in a packet with PUSI.
                self.section_bytes(which, payload);
            }
            return;
        }
        let Some((&pointer, rest)) = payload.split_first() else {
            return;
        };
        let Some((tail, mut data)) = rest.split_at_checked(usize::from(pointer)) else {
            self.stats.pmt_errors += 1;
            self.section_buf(which).reset();
            return;
        };
        if self.section_buf(which).active {
            self.section_bytes(which, tail);
        }
        self.section_buf(which).reset();
        while let Some(&table_id) = data.first() {
            if table_id == 0xFF {
                break; // stuffing
            }
            self.section_buf(which).active = true;
            data = self.section_bytes(which, data);
            if self.section_buf(which).active {
                break; // continues in the next packet
            }
        }
    }

    /// Appends to the section being assembled; when it completes, applies it
    /// and returns the bytes after it.
    fn section_bytes<'a>(&mut self, which: Psi, data: &'a [u8]) -> &'a [u8] {
        let sec = self.section_buf(which);
        let mut data = data;
        if sec.buf.len() < 3 {
            let take = (3 - sec.buf.len()).min(data.len());
            sec.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if sec.buf.len() < 3 {
                return &[];
            }
        }
        let total = 3 + ((usize::from(sec.buf[1] & 0x0F) << 8) | usize::from(sec.buf[2]));
        if total > MAX_SECTION_LEN {
            sec.reset();
            self.stats.pmt_errors += 1;
            return &[];
        }
        let take = (total - sec.buf.len()).min(data.len());
        sec.buf.extend_from_slice(&data[..take]);
        if sec.buf.len() < total {
            return &[];
        }
        let section = std::mem::take(&mut sec.buf);
        sec.active = false;
        self.section(which, &section);
        let sec = self.section_buf(which);
        sec.buf = section;
        sec.buf.clear();
        &data[take..]
    }

    /// Validates a complete section (syntax, CRC) and applies PAT or PMT.
    fn section(&mut self, which: Psi, s: &[u8]) {
        // Long-form header (8 bytes) + CRC (4).
        if s.len() < 12 || s[1] & 0x80 == 0 {
            self.stats.pmt_errors += 1;
            return;
        }
        let crc = u32::from_be_bytes([s[s.len() - 4], s[s.len() - 3], s[s.len() - 2], s[s.len() - 1]]);
        if self.section_buf(which).last_crc == Some(crc) {
            return; // the usual repeat of the table we already applied
        }
        if crc32_mpeg2(s) != 0 {
            self.stats.pmt_errors += 1;
            return;
        }
        let current_next = s[5] & 0x01 != 0;
        if !current_next {
            return; // announced for later; applied when it becomes current
        }
        let ok = match (which, s[0]) {
            (Psi::Pat, TABLE_PAT) => self.apply_pat(s),
            (Psi::Pmt, TABLE_PMT) => self.apply_pmt(s),
            // Other tables may share the PMT PID; they are not errors.
            _ => return,
        };
        if ok {
            self.section_buf(which).last_crc = Some(crc);
        } else {
            self.stats.pmt_errors += 1;
        }
    }

    fn apply_pat(&mut self, s: &[u8]) -> bool {
        let body = &s[8..s.len() - 4];
        if !body.len().is_multiple_of(4) {
            return false;
        }
        let section_number = s[6];
        let first = body.chunks_exact(4).find_map(|e| {
            let program = u16::from_be_bytes([e[0], e[1]]);
            let pid = (u16::from(e[2] & 0x1F) << 8) | u16::from(e[3]);
            (program != 0).then_some((program, pid))
        });
        let Some((program, pid)) = first else {
            return true; // only the network PID: nothing to follow
        };
        if section_number != 0 && self.program_number.is_some() {
            return true; // we follow the first program of section 0
        }
        if self.program_number == Some(program) && self.pmt_pid == Some(pid) {
            return true;
        }
        if pid == PAT_PID || pid == NULL_PID || matches!(self.pids[usize::from(pid)].role, PidRole::Stream(_)) {
            return false;
        }
        if let Some(old) = self.pmt_pid {
            self.pids[usize::from(old)] = PidState {
                role: PidRole::None,
                cc: Cc::Unknown,
            };
        }
        self.pids[usize::from(pid)] = PidState {
            role: PidRole::Pmt,
            cc: Cc::Unknown,
        };
        self.program_number = Some(program);
        self.pmt_pid = Some(pid);
        self.pmt.reset();
        self.pmt.last_crc = None;
        true
    }

    fn apply_pmt(&mut self, s: &[u8]) -> bool {
        let program = u16::from_be_bytes([s[3], s[4]]);
        if Some(program) != self.program_number {
            return true; // another program's PMT on the same PID
        }
        let end = s.len() - 4;
        if end < 12 {
            return false;
        }
        let program_info_len = (usize::from(s[10] & 0x0F) << 8) | usize::from(s[11]);
        let mut pos = 12 + program_info_len;
        if pos > end {
            return false;
        }
        let mut list: Vec<EsInfo> = Vec::new();
        while pos < end {
            let Some(e) = s.get(pos..pos + 5).filter(|_| pos + 5 <= end) else {
                return false;
            };
            let stream_type = e[0];
            let pid = (u16::from(e[1] & 0x1F) << 8) | u16::from(e[2]);
            let info_len = (usize::from(e[3] & 0x0F) << 8) | usize::from(e[4]);
            let desc_start = pos + 5;
            let desc_end = desc_start + info_len;
            if desc_end > end {
                return false;
            }
            let descriptors = &s[desc_start..desc_end];
            pos = desc_end;
            let Some(codec) = stream_codec(stream_type, descriptors) else {
                continue;
            };
            let usable =
                pid != PAT_PID && pid != NULL_PID && Some(pid) != self.pmt_pid && !list.iter().any(|x| x.pid == pid);
            if usable && list.len() < MAX_TRACKS {
                list.push(EsInfo {
                    pid,
                    codec,
                    language: language(descriptors),
                });
            }
        }
        self.apply_streams(list);
        true
    }

    /// Switches to a new stream list. Streams that keep their PID and codec
    /// keep their state (parameters, PES in progress); removed streams emit
    /// their pending PES first, under the old track set.
    fn apply_streams(&mut self, list: Vec<EsInfo>) {
        let same = self.had_pmt
            && list.len() == self.streams.len()
            && list
                .iter()
                .zip(&self.streams)
                .all(|(e, st)| e.pid == st.pid && e.codec == st.codec && e.language == st.params.language);
        if same {
            return;
        }
        if self.had_pmt {
            self.stats.pmt_changes += 1;
        }
        self.had_pmt = true;
        let kept = |st: &Stream| list.iter().any(|e| e.pid == st.pid && e.codec == st.codec);
        for i in 0..self.streams.len() {
            if !kept(&self.streams[i]) {
                self.finish_pes(i);
            }
        }
        let mut old: Vec<Option<Stream>> = std::mem::take(&mut self.streams).into_iter().map(Some).collect();
        // Roles are reassigned below; the CC state of a kept PID stays.
        for st in old.iter().flatten() {
            self.pids[usize::from(st.pid)].role = PidRole::None;
        }
        let mut streams = Vec::with_capacity(list.len());
        for e in list {
            let reused = old
                .iter_mut()
                .find(|s| s.as_ref().is_some_and(|s| s.pid == e.pid && s.codec == e.codec))
                .and_then(Option::take);
            let pid_state = &mut self.pids[usize::from(e.pid)];
            if reused.is_none() {
                pid_state.cc = Cc::Unknown;
            }
            pid_state.role = PidRole::Stream(streams.len() as u8);
            let mut st = reused.unwrap_or_else(|| Stream::new(e.pid, e.codec, None));
            st.params.language = e.language;
            streams.push(st);
        }
        self.streams = streams;
        self.rebuild_tracks();
    }

    fn rebuild_tracks(&mut self) {
        self.tracks = self
            .streams
            .iter()
            .enumerate()
            .map(|(i, st)| Track {
                id: i as u16,
                codec: st.codec,
                params: st.params.clone(),
            })
            .collect();
        self.tracks_dirty = true;
    }

    // ---- PES ----

    fn pes_payload(&mut self, si: usize, payload: &[u8], pusi: bool) {
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
        match st.state {
            PesState::Idle => return,
            PesState::Header | PesState::Payload => {
                let len = st.pes.len() + payload.len();
                if len > MAX_PES_SIZE || total + payload.len() > MAX_BUFFERED {
                    st.abort_pes();
                    self.stats.pes_errors += 1;
                    return;
                }
                st.pes.extend_from_slice(payload);
            }
        }
        if st.state == PesState::Header {
            match parse_pes_header(&st.pes) {
                HeaderParse::NeedMore => return,
                HeaderParse::Bad => {
                    st.abort_pes();
                    self.stats.pes_errors += 1;
                    return;
                }
                HeaderParse::Ok {
                    header_len,
                    pts,
                    dts,
                    expected,
                } => {
                    st.pes.advance(header_len);
                    st.pts = pts;
                    st.dts = dts;
                    st.expected = expected;
                    st.state = PesState::Payload;
                }
            }
        }
        if st.expected.is_some_and(|n| st.pes.len() >= n) {
            self.finish_pes(si);
        }
    }

    /// PES bytes buffered over all streams.
    fn buffered(&self) -> usize {
        self.streams.iter().map(|s| s.pes.len()).sum()
    }

    /// Completes the PES of stream `si` (if any) and emits its frames.
    fn finish_pes(&mut self, si: usize) {
        let Some(st) = self.streams.get_mut(si) else {
            return;
        };
        match st.state {
            PesState::Idle => return,
            PesState::Header => {
                st.abort_pes();
                self.stats.pes_errors += 1;
                return;
            }
            PesState::Payload => {}
        }
        st.state = PesState::Idle;
        if let Some(n) = st.expected {
            if st.pes.len() < n {
                // Cut short by the next PUSI: a packet went missing.
                st.abort_pes();
                self.stats.pes_errors += 1;
                return;
            }
            st.pes.truncate(n);
        }
        if st.pes.is_empty() {
            self.stats.pes_errors += 1;
            return;
        }
        let len = st.pes.len();
        st.size_hint = len.max(st.size_hint - st.size_hint / 8).min(4 << 20);
        let data = st.pes.split().freeze();
        let (pts, dts, codec) = (st.pts, st.dts, st.codec);
        match codec {
            Codec::H264 | Codec::H265 => self.video_frame(si, data, pts, dts),
            Codec::Aac => self.aac_frames(si, data, pts, dts),
            Codec::MpegAudio | Codec::Ac3 | Codec::Eac3 => self.opaque_audio_frame(si, data, pts, dts),
            Codec::Teletext | Codec::DvbSubtitle | Codec::Scte35 => {}
        }
    }

    fn video_frame(&mut self, si: usize, data: Bytes, pts: i64, dts: i64) {
        let Some(st) = self.streams.get_mut(si) else {
            return;
        };
        let scan = match st.codec {
            Codec::H265 => h265::scan_access_unit(&data),
            _ => h264::scan_access_unit(&data),
        };
        let changed = update_video_params(st, &scan);
        let (keyframe, has_vcl, aud_end) = (scan.keyframe, scan.has_vcl, scan.aud_end);
        let ready = has_params(st);
        if !has_vcl || !(st.started || (keyframe && ready)) {
            if changed {
                self.rebuild_tracks();
            }
            self.stats.dropped_frames += 1;
            return;
        }
        st.started = true;
        if changed {
            self.rebuild_tracks();
        }
        let data = if aud_end > 0 { data.slice(aud_end..) } else { data };
        self.emit(Frame {
            track: si as u16,
            dts,
            pts,
            keyframe,
            data,
        });
    }

    fn aac_frames(&mut self, si: usize, data: Bytes, pts: i64, dts: i64) {
        let mut start = 0;
        // An ADTS frame cut by the previous PES end continues here.
        if let Some(st) = self.streams.get_mut(si) {
            if !st.carry.is_empty() {
                let mut joined = std::mem::take(&mut st.carry);
                let need = aac::ADTS_MAX_FRAME_LEN.saturating_sub(joined.len()).min(data.len());
                joined.extend_from_slice(&data[..need]);
                match AdtsHeader::parse(&joined) {
                    Some(h) if h.frame_len <= joined.len() => {
                        start = h.frame_len - (joined.len() - need);
                        let (cp, cd) = (st.carry_pts, st.carry_dts);
                        let payload = Bytes::copy_from_slice(&joined[h.header_len..h.frame_len]);
                        self.aac_frame(si, &h, payload, cp, cd);
                    }
                    Some(_) if need == data.len() => {
                        // Still incomplete: this PES was tiny. Keep waiting.
                        st.carry = joined;
                        return;
                    }
                    _ => self.stats.pes_errors += 1,
                }
            }
        }
        let body = data.slice(start..);
        let mut it = aac::adts_frames(&body);
        let mut samples: u64 = 0;
        for f in it.by_ref() {
            let off = samples_to_ticks(samples, f.header.sample_rate);
            samples += u64::from(f.header.samples());
            let payload = body.slice(f.payload.clone());
            self.aac_frame(si, &f.header, payload, (pts + off) & TS_MASK, (dts + off) & TS_MASK);
        }
        if it.skipped() > 0 {
            self.stats.pes_errors += 1;
        }
        let rem = it.remainder();
        if rem < body.len() {
            if let Some(st) = self.streams.get_mut(si) {
                let rate = if st.params.sample_rate > 0 {
                    st.params.sample_rate
                } else {
                    48_000
                };
                let off = samples_to_ticks(samples, rate);
                st.carry.clear();
                st.carry.extend_from_slice(&body[rem..]);
                st.carry_pts = (pts + off) & TS_MASK;
                st.carry_dts = (dts + off) & TS_MASK;
            }
        }
    }

    fn aac_frame(&mut self, si: usize, h: &AdtsHeader, payload: Bytes, pts: i64, dts: i64) {
        let Some(st) = self.streams.get_mut(si) else {
            return;
        };
        let p = &mut st.params;
        if p.aac_object_type != h.object_type || p.sample_rate != h.sample_rate || p.channels != h.channels {
            p.aac_object_type = h.object_type;
            p.sample_rate = h.sample_rate;
            p.channels = h.channels;
            p.codec_string = Some(h.codec_string());
            self.rebuild_tracks();
        }
        self.emit(Frame {
            track: si as u16,
            dts,
            pts,
            keyframe: true,
            data: payload,
        });
    }

    fn opaque_audio_frame(&mut self, si: usize, data: Bytes, pts: i64, dts: i64) {
        let Some(st) = self.streams.get_mut(si) else {
            return;
        };
        let info = match st.codec {
            Codec::MpegAudio => mpeg_audio_info(&data),
            Codec::Ac3 => ac3_info(&data),
            Codec::Eac3 => eac3_info(&data),
            _ => None,
        };
        if let Some((rate, channels, codec_string)) = info {
            let p = &mut st.params;
            if p.sample_rate != rate || p.channels != channels || p.codec_string.as_deref() != Some(codec_string) {
                p.sample_rate = rate;
                p.channels = channels;
                p.codec_string = Some(codec_string.to_owned());
                self.rebuild_tracks();
            }
        }
        self.emit(Frame {
            track: si as u16,
            dts,
            pts,
            keyframe: true,
            data,
        });
    }

    fn emit(&mut self, frame: Frame) {
        self.emit_tracks_if_dirty();
        self.stats.frames += 1;
        self.events.push_back(DemuxEvent::Frame(frame));
    }

    fn emit_tracks_if_dirty(&mut self) {
        if self.tracks_dirty {
            self.tracks_dirty = false;
            self.events.push_back(DemuxEvent::Tracks(self.tracks.clone()));
        }
    }
}

/// Ticks of 90 kHz for `samples` at `rate`, rounded to nearest.
fn samples_to_ticks(samples: u64, rate: u32) -> i64 {
    let rate = u64::from(rate.max(1));
    ((samples * 90_000 + rate / 2) / rate) as i64
}

/// Parameter-set kind: 0 VPS, 1 SPS, 2 PPS.
fn param_kind(codec: Codec, nal: &[u8]) -> Option<usize> {
    match codec {
        Codec::H265 => match h265::nal_type(nal)? {
            h265::NAL_VPS => Some(0),
            h265::NAL_SPS => Some(1),
            h265::NAL_PPS => Some(2),
            _ => None,
        },
        _ => match h264::nal_type(nal)? {
            h264::NAL_SPS => Some(1),
            h264::NAL_PPS => Some(2),
            _ => None,
        },
    }
}

fn has_params(st: &Stream) -> bool {
    let mut seen = [false; 3];
    for ps in &st.params.parameter_sets {
        if let Some(k) = param_kind(st.codec, ps) {
            seen[k] = true;
        }
    }
    seen[1] && seen[2] && (st.codec != Codec::H265 || seen[0])
}

/// Replaces each kind of parameter set the access unit carries; returns
/// true (and re-derives dimensions, frame rate, codec string) on a change.
fn update_video_params(st: &mut Stream, scan: &AuScan<'_>) -> bool {
    if scan.vps.is_empty() && scan.sps.is_empty() && scan.pps.is_empty() {
        return false;
    }
    let codec = st.codec;
    let cur = &st.params.parameter_sets;
    let mut new: Vec<&[u8]> = Vec::with_capacity(cur.len() + 3);
    for (kind, in_au) in [scan.vps, scan.sps, scan.pps].iter().enumerate() {
        if in_au.is_empty() {
            new.extend(
                cur.iter()
                    .filter(|b| param_kind(codec, b) == Some(kind))
                    .map(|b| &b[..]),
            );
        } else {
            new.extend_from_slice(in_au.as_slice());
        }
    }
    if new.len() == cur.len() && new.iter().zip(cur).all(|(a, b)| *a == &b[..]) {
        return false;
    }
    let sets: Vec<Bytes> = new.iter().map(|b| Bytes::copy_from_slice(b)).collect();
    let p = &mut st.params;
    p.width = 0;
    p.height = 0;
    p.frame_rate = None;
    p.codec_string = None;
    if let Some(sps) = sets.iter().find(|b| param_kind(codec, b) == Some(1)) {
        let dims = |w: u32, h: u32| (u16::try_from(w).unwrap_or(0), u16::try_from(h).unwrap_or(0));
        match codec {
            Codec::H265 => {
                if let Ok(s) = h265::parse_sps(sps) {
                    (p.width, p.height) = dims(s.width, s.height);
                    p.frame_rate = s.frame_rate;
                    p.codec_string = Some(s.codec_string());
                }
            }
            _ => match h264::parse_sps(sps) {
                Ok(s) => {
                    (p.width, p.height) = dims(s.width, s.height);
                    p.frame_rate = s.frame_rate;
                    p.codec_string = Some(s.codec_string());
                }
                Err(_) => p.codec_string = h264::codec_string_from_sps(sps),
            },
        }
    }
    p.parameter_sets = sets;
    true
}

enum HeaderParse {
    NeedMore,
    Bad,
    Ok {
        header_len: usize,
        pts: i64,
        dts: i64,
        expected: Option<usize>,
    },
}

/// Parses a PES header (2.4.3.6) at the start of `b`.
fn parse_pes_header(b: &[u8]) -> HeaderParse {
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
    // Streams without the optional header carry no PTS.
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
    let (pts, dts) = match flags {
        0b10 if hdl >= 5 => {
            let pts = read_timestamp(&b[9..14]);
            (pts, pts)
        }
        0b11 if hdl >= 10 => (read_timestamp(&b[9..14]), read_timestamp(&b[14..19])),
        _ => return HeaderParse::Bad, // no PTS, forbidden 01, or too short
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
        pts,
        dts,
        expected,
    }
}

/// 33-bit PTS/DTS from its 5-byte field (marker bits ignored, as decoders do).
fn read_timestamp(b: &[u8]) -> i64 {
    let b = |i: usize| i64::from(b.get(i).copied().unwrap_or(0));
    ((b(0) >> 1) & 0x07) << 30 | b(1) << 22 | (b(2) >> 1) << 15 | b(3) << 7 | b(4) >> 1
}

/// Maps a PMT entry to a codec; `None` for streams we do not carry.
fn stream_codec(stream_type: u8, descriptors: &[u8]) -> Option<Codec> {
    match stream_type {
        0x1B => Some(Codec::H264),
        0x24 => Some(Codec::H265),
        0x0F => Some(Codec::Aac),
        0x03 | 0x04 => Some(Codec::MpegAudio),
        0x81 => Some(Codec::Ac3),
        0x87 => Some(Codec::Eac3),
        // DVB carries (E-)AC-3 as private data flagged by a descriptor.
        0x06 => descriptor_iter(descriptors).find_map(|(tag, body)| match tag {
            0x6A => Some(Codec::Ac3),
            0x7A => Some(Codec::Eac3),
            0x05 if body.get(..4) == Some(b"AC-3") => Some(Codec::Ac3),
            0x05 if body.get(..4) == Some(b"EAC3") => Some(Codec::Eac3),
            _ => None,
        }),
        _ => None,
    }
}

/// ISO 639 language (descriptor 0x0A), lowercase, when it is three letters.
fn language(descriptors: &[u8]) -> Option<String> {
    descriptor_iter(descriptors).find_map(|(tag, body)| {
        let code = body.get(..3).filter(|_| tag == 0x0A)?;
        code.iter()
            .all(u8::is_ascii_alphabetic)
            .then(|| code.iter().map(|c| char::from(c.to_ascii_lowercase())).collect())
    })
}

/// (tag, body) pairs of a descriptor loop; stops at the first truncated one.
fn descriptor_iter(mut d: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = d.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let (body, rest) = rest.split_at_checked(usize::from(len))?;
        d = rest;
        Some((tag, body))
    })
}

/// Sample rate, channels and RFC 6381 string of an MPEG audio frame header.
fn mpeg_audio_info(d: &[u8]) -> Option<(u32, u8, &'static str)> {
    let h = d.get(..4)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 0x03; // 0: 2.5, 2: 2, 3: 1
    let layer = (h[1] >> 1) & 0x03;
    let rate_idx = usize::from((h[2] >> 2) & 0x03);
    if version == 1 || layer == 0 || rate_idx == 3 {
        return None;
    }
    let base = [44_100, 48_000, 32_000][rate_idx];
    let rate = match version {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    let channels = if h[3] >> 6 == 3 { 1 } else { 2 };
    // Object type indication 0x6B: MPEG-1 audio; 0x69: MPEG-2 audio.
    let codec = if version == 3 { "mp4a.6B" } else { "mp4a.69" };
    Some((rate, channels, codec))
}

/// Channels of an AC-3 `acmod`, before the LFE.
const ACMOD_CHANNELS: [u8; 8] = [2, 1, 2, 3, 3, 4, 4, 5];

/// Sample rate and channels of an AC-3 sync frame (A/52 5.3).
fn ac3_info(d: &[u8]) -> Option<(u32, u8, &'static str)> {
    if d.get(..2)? != [0x0B, 0x77] {
        return None;
    }
    let mut r = BitReader::new(d.get(4..)?);
    let fscod = r.read_bits(2).ok()?;
    let rate = *[48_000, 44_100, 32_000].get(fscod as usize)?;
    r.skip_bits(6 + 5 + 3).ok()?; // frmsizecod, bsid, bsmod
    let acmod = r.read_bits(3).ok()? as u8;
    if acmod & 0x01 != 0 && acmod != 1 {
        r.skip_bits(2).ok()?; // cmixlev
    }
    if acmod & 0x04 != 0 {
        r.skip_bits(2).ok()?; // surmixlev
    }
    if acmod == 2 {
        r.skip_bits(2).ok()?; // dsurmod
    }
    let lfe = u8::from(r.read_flag().ok()?);
    Some((rate, ACMOD_CHANNELS[usize::from(acmod)] + lfe, "ac-3"))
}

/// Sample rate and channels of an E-AC-3 sync frame (A/52 E.1.2), from its
/// independent substream.
fn eac3_info(d: &[u8]) -> Option<(u32, u8, &'static str)> {
    if d.get(..2)? != [0x0B, 0x77] {
        return None;
    }
    let mut r = BitReader::new(d.get(4..)?);
    let fscod = r.read_bits(2).ok()?;
    let rate = if fscod == 3 {
        *[24_000, 22_050, 16_000].get(r.read_bits(2).ok()? as usize)?
    } else {
        r.skip_bits(2).ok()?; // numblkscod
        [48_000, 44_100, 32_000][fscod as usize]
    };
    let acmod = r.read_bits(3).ok()? as u8;
    let lfe = u8::from(r.read_flag().ok()?);
    Some((rate, ACMOD_CHANNELS[usize::from(acmod)] + lfe, "ec-3"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                pts,
                expected,
                ..
            } => assert_eq!((header_len, pts, expected), (14, 0, None)),
            _ => panic!("PTS-only header rejected"),
        }
        assert!(matches!(parse_pes_header(&h[..10]), HeaderParse::NeedMore));
        assert!(matches!(parse_pes_header(&h[..2]), HeaderParse::NeedMore));
        h[7] = 0; // no PTS
        assert!(matches!(parse_pes_header(&h), HeaderParse::Bad));
        h[7] = 0x40; // forbidden
        assert!(matches!(parse_pes_header(&h), HeaderParse::Bad));
        assert!(matches!(parse_pes_header(&[0, 1]), HeaderParse::Bad));
        // PES_packet_length shorter than the header.
        let h = [0, 0, 1, 0xC0, 0, 4, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        assert!(matches!(parse_pes_header(&h), HeaderParse::Bad));
    }

    #[test]
    fn descriptors() {
        let d = [0x0A, 4, b'E', b'n', b'g', 0, 0x6A, 1, 0];
        assert_eq!(language(&d).as_deref(), Some("eng"));
        assert_eq!(stream_codec(0x06, &d), Some(Codec::Ac3));
        assert_eq!(
            stream_codec(0x06, &[0x05, 4, b'E', b'A', b'C', b'3']),
            Some(Codec::Eac3)
        );
        assert_eq!(stream_codec(0x06, &[0x59, 0]), None);
        assert_eq!(stream_codec(0x06, &[0x6A, 9]), None); // truncated
        assert_eq!(language(&[0x0A, 2, b'e', b'n']), None);
        assert_eq!(stream_codec(0x15, &[]), None);
    }

    #[test]
    fn audio_headers() {
        // MPEG-1 layer II 48 kHz stereo.
        assert_eq!(mpeg_audio_info(&[0xFF, 0xFD, 0x84, 0x00]), Some((48_000, 2, "mp4a.6B")));
        // AC-3 48 kHz, acmod 7 (3/2) + LFE = 6 channels.
        assert_eq!(
            ac3_info(&[0x0B, 0x77, 0, 0, 0x1E, 0x40, 0xE1, 0xF0]),
            Some((48_000, 6, "ac-3"))
        );
        // E-AC-3 48 kHz, acmod 2 no LFE.
        assert_eq!(eac3_info(&[0x0B, 0x77, 0, 0, 0x34, 0x00]), Some((48_000, 2, "ec-3")));
        assert_eq!(ac3_info(&[0x0B, 0x77]), None);
        assert_eq!(mpeg_audio_info(&[0xFF, 0xE8, 0, 0]), None);
    }

    #[test]
    fn cc_rules() {
        let mut d = Demuxer::new();
        assert!(matches!(d.check_cc(5, 3, true, false), CcCheck::Ok));
        assert!(matches!(d.check_cc(5, 4, true, false), CcCheck::Ok));
        assert!(matches!(d.check_cc(5, 4, false, false), CcCheck::Ok)); // no payload
        assert!(matches!(d.check_cc(5, 4, true, false), CcCheck::Duplicate));
        assert!(matches!(d.check_cc(5, 4, true, false), CcCheck::Error));
        assert!(matches!(d.check_cc(5, 5, true, false), CcCheck::Ok));
        assert!(matches!(d.check_cc(5, 9, true, false), CcCheck::Error));
        assert!(matches!(d.check_cc(5, 2, true, true), CcCheck::Ok)); // discontinuity
        assert!(matches!(d.check_cc(5, 3, true, false), CcCheck::Ok));
        assert!(matches!(d.check_cc(5, 15, true, false), CcCheck::Error));
        assert!(matches!(d.check_cc(5, 0, true, false), CcCheck::Ok)); // wraps
    }

    #[test]
    fn aac_tick_rounding() {
        assert_eq!(samples_to_ticks(1024, 48_000), 1920);
        assert_eq!(samples_to_ticks(1024, 44_100), 2090); // 2089.8
        assert_eq!(samples_to_ticks(3 * 1024, 44_100), 6269); // 6269.4
        assert_eq!(samples_to_ticks(0, 0), 0);
    }
}
