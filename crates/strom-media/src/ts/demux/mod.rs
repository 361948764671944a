//! MPEG-TS demuxer: transport packets in, [`Track`] sets and [`Frame`]s out.
//!
//! Push/pull like retina's depacketizers: [`Demuxer::push`] takes bytes in
//! chunks of any size as they arrive (UDP datagrams, HTTP body chunks) and
//! queues events; [`Demuxer::pull`] hands them out. Call `pull` until `None`
//! after every `push`; [`Demuxer::flush`] ends the input and releases
//! everything still held.
//!
//! # Program
//! One program is followed (ISO/IEC 13818-1 §2.4.4.3, §2.4.4.8):
//! [`Demuxer::with_program`] names its program_number; without one, the
//! first program in PAT order whose PMT has an H.264/H.265 stream, else the
//! first program, once the PMTs of every program listed before it are known
//! (a PMT that does not come within 16 PAT repetitions counts as "no video").
//! The program asked for is found wherever the PAT lists it. The default
//! search tracks the PMTs of at most [`MAX_PROGRAMS`] programs at a time:
//! when none of them has video and the PAT lists more, it moves on to the
//! next ones (the first program with a PMT stays the fallback), so a PAT of
//! any size is searched whole, [`MAX_PROGRAMS`] programs per step. PMTs of
//! several programs may share a PID. A complete PAT that does not list the
//! program asked for is an error of kind `program_missing` on PID 0,
//! counted once per absence in [`DemuxStats::programs_missing`]. When the PAT drops the followed
//! program, its tracks stay (frames of its PIDs keep flowing) until the PMT
//! of the program chosen next is applied. [`Demuxer::programs`] lists what
//! the PAT offers.
//!
//! # Tracks
//! A track id is the index of the stream among the recognised streams of
//! the PMT (program order), not its PID. A [`DemuxEvent::Tracks`] is queued
//! before the first frame that uses a new track set or new codec parameters,
//! so every `Frame::track` indexes the most recent `Tracks` event; several
//! changes before the next frame give one event. Stream types strom does not
//! carry are never dropped silently: they are counted once in
//! [`DemuxStats::unknown_streams`] when a PMT brings them and handed out by
//! [`Demuxer::take_unknown`] for a log line. `TrackParams::descriptors` is
//! the stream's ES descriptor loop without ISO 639 (0x0A) and registration
//! (0x05) descriptors, verbatim.
//!
//! # Frames
//! Timestamps are raw 33-bit values in 90 kHz ticks, in `[0, 2^33)`; they may
//! wrap. A PES without PTS is valid (§2.4.3.7 only asks for one every
//! 0.7 s): what it carries is timed from what came before, and every frame
//! timed that way is counted in [`DemuxStats::interpolated`].
//! - **Video** (H.264, H.265): one frame per access unit, assembled from the
//!   NAL stream across PES boundaries (an access unit ends where the next
//!   starts: AUD, first slice of a new picture, or SPS/PPS/VPS/prefix SEI
//!   after its slices). Data is one Annex B access unit without a leading
//!   AUD (muxers write their own). A PES with PTS gives its PTS/DTS to the
//!   first access unit that starts in it (§2.4.3.7); others get the
//!   previous DTS plus one frame (half for an H.264 field picture) from the
//!   SPS timing info, else the last observed DTS step (else 3600), and the
//!   last observed PTS − DTS on top for their PTS. `keyframe` means random
//!   access point:
//!   H.264 IDR, or an I picture with a recovery point SEI (whatever its
//!   recovery_frame_cnt: the I picture decodes on its own and the pictures
//!   a decoder cannot show yet are treated as leading pictures are, see
//!   below); H.265 IRAP (BLA, IDR, CRA). A track is emitted from its first
//!   random access point with parameter sets known (earlier access units are
//!   counted in `dropped_frames`); leading pictures after a CRA or recovery
//!   point (RASL) are kept, decoders skip them.
//! - **AAC** (ADTS, and LATM/LOAS turned into the same raw frames with the
//!   track's object type, rate and channels taken from the StreamMuxConfig):
//!   one frame per raw AAC frame without header, timed from the PES PTS plus
//!   the samples before it; frames of a PES without PTS continue from the
//!   end of the previous frame.
//! - **MPEG audio, AC-3, E-AC-3**: opaque, one frame per PES (its elementary
//!   bytes); a PES without PTS gets the previous PES's timestamps plus its
//!   duration from the frame headers (1152/384/576, 1536, 256 × blocks
//!   samples), else the last observed step.
//! - **Teletext, DVB subtitles**: one frame per PES (the PES payload), PTS as
//!   given, a PES without PTS takes the previous one's.
//! - **SCTE-35**: one frame per distinct `splice_info_section` (exact repeats
//!   on the PID are skipped), data = the whole section, DTS = the program
//!   clock on arrival (the last PCR base on the PCR PID, else the last video
//!   DTS; without either the section is dropped and counted), PTS = the
//!   splice time (pts_time + pts_adjustment) when it is within an hour of
//!   that, else the DTS.
//! - Audio, subtitle and SCTE-35 frames are always keyframes.
//!
//! # Latency and order
//! Frames come out in the order their data completed. A video access unit
//! is known to be complete when the next one starts, which the first bytes
//! of the next PES on its PID usually show: the frame is emitted while that
//! packet is processed, which for a PES without PES_packet_length is when
//! its end is known at all. A PES with PES_packet_length emits its access
//! unit as soon as its last byte arrives when the stream has shown that such
//! PES hold whole access units: a bounded PES larger than this one held a
//! whole access unit (the PES after it started a new one), and no PES has
//! ever continued an access unit on this PID. Otherwise the frame keeps its
//! place in the event order, and `pull` holds it and what follows until the
//! next PES header on its PID settles it (at most [`MAX_HELD_EVENTS`] events
//! wait; then it is taken as complete). Encoders that split pictures cut
//! them at a maximum PES size, so their first piece is never smaller than a
//! whole picture before it and is always waited for; an encoder that starts
//! splitting pictures into pieces smaller than whole pictures it already
//! sent has that first picture cut (counted in `pes_errors`), and from then
//! on its PID is always waited for.
//!
//! To keep ingest cheap, a PES with PTS is taken to hold one access unit
//! after its first slice. Exceptions, scanned whole: PES without PTS, PES
//! whose first picture is an H.264 field, every PES of a stream where a PES
//! with PTS was found to hold several access units, and, to find those, the
//! first 3 and then every 128th PES up to 8 KiB. An H.264 slice header is
//! only read when its answer matters: after a recovery point SEI (is the
//! picture intra?) and when the SPS allows field pictures.

//! # Damage and bounds
//! A PES that lost a packet (continuity error, transport error, scrambling)
//! is dropped, never emitted corrupt, and so is an access unit it may have
//! belonged to; video then waits for a PES with PTS. Errors are counted in
//! [`DemuxStats`] and the last one is kept with its PID, kind and byte offset
//! ([`TsErrorContext`]). Nothing here panics on input, and memory stays
//! bounded: partial packets < 2 packets, PES and access units ≤
//! [`MAX_PES_SIZE`] each and [`MAX_BUFFERED`] together, PSI sections ≤ 1024
//! bytes (SCTE-35 ≤ 4096), PMT state of at most
//! [`MAX_PROGRAMS`] programs and
//! [`MAX_TRACKS`] tracks.

mod audio;
mod data;
mod pes;
mod psi;
mod video;

use std::collections::VecDeque;
use std::sync::Arc;

use crate::frame::{Frame, Track};
use crate::ts::{PACKET_SIZE, SYNC_BYTE, TS_WRAP};

use pes::Stream;

/// Largest PES (or video access unit) accepted; a larger one is dropped and
/// counted in `pes_errors` (kind `oversize`).
pub const MAX_PES_SIZE: usize = 16 << 20;
/// Largest total of PES and access-unit bytes buffered over all streams.
pub const MAX_BUFFERED: usize = 32 << 20;
/// Most recognised streams turned into tracks; further ones are ignored.
pub const MAX_TRACKS: usize = 32;
/// Most programs of a PAT whose PMTs are tracked (and listed) at a time.
pub const MAX_PROGRAMS: usize = 64;
/// Events `pull` may hold behind a video access unit whose end is not known
/// yet; past this the access unit is taken as complete.
pub const MAX_HELD_EVENTS: usize = 1024;

const PID_COUNT: usize = 0x2000;
const PAT_PID: u16 = 0;
const NULL_PID: u16 = 0x1FFF;
const TS_MASK: i64 = TS_WRAP - 1;
/// Bytes needed to confirm a sync candidate: the candidate packet plus the
/// next packet's sync byte.
const SYNC_PROBE: usize = PACKET_SIZE + 1;

/// What [`Demuxer::pull`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DemuxEvent {
    /// The set of tracks or their codec parameters changed (first PMT, PMT
    /// stream change, new parameter sets or resolution, audio config change).
    /// Emitted before the first frame that uses the new set.
    Tracks(Arc<[Track]>),
    Frame(Frame),
}

/// What went wrong, as a short stable name for logs and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TsErrorKind {
    /// Lost packet sync; bytes skipped to find it again.
    Sync,
    /// Continuity counter gap (§2.4.3.3): packets lost.
    Cc,
    /// transport_error_indicator set by the demodulator.
    TransportError,
    /// Malformed PES, PES cut short, garbage in an elementary stream.
    Pes,
    /// PSI section rejected: bad CRC, malformed, impossible values.
    Psi,
    /// PES or access unit over [`MAX_PES_SIZE`], or all buffers over [`MAX_BUFFERED`].
    Oversize,
    /// LATM/LOAS element that cannot be turned into AAC (malformed or unsupported).
    Latm,
    /// transport_scrambling_control set: the payload is encrypted.
    Scrambled,
    /// The complete PAT does not list the program asked for (PID 0).
    ProgramMissing,
}

impl TsErrorKind {
    /// Short stable lowercase name: `sync`, `cc`, `transport_error`, `pes`,
    /// `psi`, `oversize`, `latm`, `scrambled`, `program_missing`.
    pub fn name(self) -> &'static str {
        match self {
            TsErrorKind::Sync => "sync",
            TsErrorKind::Cc => "cc",
            TsErrorKind::TransportError => "transport_error",
            TsErrorKind::Pes => "pes",
            TsErrorKind::Psi => "psi",
            TsErrorKind::Oversize => "oversize",
            TsErrorKind::Latm => "latm",
            TsErrorKind::Scrambled => "scrambled",
            TsErrorKind::ProgramMissing => "program_missing",
        }
    }
}

/// Where the last error was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TsErrorContext {
    /// PID of the packet; 0x1FFF for sync errors (no packet).
    pub pid: u16,
    pub kind: TsErrorKind,
    /// Byte offset in everything pushed so far of the packet that showed the
    /// error (for sync errors, of the first skipped byte; for errors found
    /// by `flush`, the end of the input).
    pub offset: u64,
}

/// Counters for monitoring; they only ever increase. `last_error` is the
/// most recent error that incremented one of the error counters.
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
    /// Packets with transport_error_indicator on the PIDs followed.
    pub transport_errors: u64,
    /// Scrambled packets on the PIDs followed (their PES are dropped).
    pub scrambled: u64,
    /// PES dropped or damaged: malformed header, oversize, lost packets,
    /// garbage in the elementary stream, LATM that cannot be read.
    pub pes_errors: u64,
    /// PSI sections rejected: bad CRC or malformed (PAT, PMT, SCTE-35).
    pub pmt_errors: u64,
    /// Track set changes after the first PMT.
    pub pmt_changes: u64,
    /// Frames emitted.
    pub frames: u64,
    /// Frames discarded on purpose: video before its first random access
    /// point or without slices, access units that may have lost data,
    /// frames that cannot be timed, SCTE-35 before any program clock.
    pub dropped_frames: u64,
    /// Frames whose timestamps were derived from earlier ones because no
    /// PTS applied to them (see the module docs).
    pub interpolated: u64,
    /// Elementary streams of the followed program that strom does not
    /// carry, counted once each when a PMT brings them.
    pub unknown_streams: u64,
    /// Times a complete PAT did not list the program asked for
    /// ([`Demuxer::with_program`]); once per absence, not per PAT.
    pub programs_missing: u64,
    /// The last error counted, with where it was.
    pub last_error: Option<TsErrorContext>,
}

/// A program listed in the PAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramInfo {
    pub program_number: u16,
    pub pmt_pid: u16,
    /// A valid PMT of the program was received.
    pub pmt_seen: bool,
    /// Its PMT lists an H.264 or H.265 stream.
    pub has_video: bool,
    /// This is the program the demuxer follows.
    pub selected: bool,
}

/// What a PID carries for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PidRole {
    None,
    Pat,
    /// Index into `Psi::pmt_bufs`.
    Pmt(u8),
    /// Index into `Demuxer::streams`: a PES stream.
    Stream(u8),
    /// Index into `Demuxer::streams`: an SCTE-35 section stream.
    Scte35(u8),
    /// Only the program's PCR (when it is not on a followed stream).
    Pcr,
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

/// One place in the held part of the event queue. A `Hole` is a video
/// frame whose place is taken but whose end is not known yet; `pull` stops
/// there.
enum Slot {
    Ready(DemuxEvent),
    Hole,
    /// A hole whose access unit was dropped.
    Void,
}

/// The MPEG-TS demuxer. See the module docs for the contract.
pub struct Demuxer {
    pids: Box<[PidState]>,
    /// Bytes of an incomplete packet (or an unconfirmed sync candidate).
    pending: Vec<u8>,
    /// Offset in the pushed byte stream of `pending[0]`.
    pending_base: u64,
    /// Offset of the packet being processed.
    pkt_offset: u64,
    locked: bool,
    /// The current loss of sync was already counted.
    sync_counted: bool,
    psi: psi::Psi,
    streams: Vec<Stream>,
    tracks: Arc<[Track]>,
    /// `tracks` changed since the last `Tracks` event.
    tracks_dirty: bool,
    /// Events ready to pull.
    events: VecDeque<DemuxEvent>,
    /// Events from the first hole on, held until it is filled; empty or
    /// starting with a hole.
    held: VecDeque<Slot>,
    /// Sequence number of `held[0]` (holes are named by sequence number).
    held_base: u64,
    stats: DemuxStats,
    /// Unknown (pid, stream_type) not yet taken by `take_unknown`.
    unknown_new: Vec<(u16, u8)>,
    /// PCR PID of the followed program (0x1FFF: none).
    pcr_pid: u16,
    /// PCR bases are read only when an SCTE-35 track needs the clock.
    want_pcr: bool,
    /// Last PCR base (90 kHz) seen on the PCR PID.
    pcr: Option<i64>,
    /// Last DTS emitted on a video track (the SCTE-35 clock without PCR).
    video_dts: Option<i64>,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Demuxer {
    /// A demuxer that follows the default program (see the module docs).
    pub fn new() -> Self {
        Self::with_program(None)
    }

    /// A demuxer that follows program `program` (its program_number), or the
    /// default program for `None`.
    pub fn with_program(program: Option<u16>) -> Self {
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
            pending_base: 0,
            pkt_offset: 0,
            locked: false,
            sync_counted: false,
            psi: psi::Psi::new(program),
            streams: Vec::new(),
            tracks: Arc::from(Vec::new()),
            tracks_dirty: false,
            events: VecDeque::new(),
            held: VecDeque::new(),
            held_base: 0,
            stats: DemuxStats::default(),
            unknown_new: Vec::new(),
            pcr_pid: NULL_PID,
            want_pcr: false,
            pcr: None,
            video_dts: None,
        }
    }

    /// Feeds bytes as received. Packets split across calls are reassembled;
    /// garbage is skipped with a resync.
    pub fn push(&mut self, data: &[u8]) {
        let data_base = self.stats.bytes;
        self.stats.bytes += data.len() as u64;
        let mut data = data;
        let mut consumed = 0u64;
        // Complete the buffered partial packet (or sync probe) first, copying
        // only what it needs, so the bulk of `data` is parsed in place.
        while !self.pending.is_empty() && !data.is_empty() {
            let target = if self.locked { PACKET_SIZE } else { 2 * SYNC_PROBE };
            let take = target.saturating_sub(self.pending.len()).max(1).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            consumed += take as u64;
            let pending = std::mem::take(&mut self.pending);
            let used = self.consume(&pending, self.pending_base);
            self.pending = pending;
            self.pending.drain(..used);
            self.pending_base += used as u64;
        }
        if self.pending.is_empty() {
            let base = data_base + consumed;
            let used = self.consume(data, base);
            self.pending.extend_from_slice(&data[used..]);
            self.pending_base = base + used as u64;
        }
    }

    /// Next queued event, if any. Returns `None` while the next event in
    /// order is a video frame whose end is not known yet (see the module docs).
    pub fn pull(&mut self) -> Option<DemuxEvent> {
        self.events.pop_front()
    }

    /// End of input: emits everything still held or being assembled (PES
    /// ended only by the next PUSI, access units ended only by the next one),
    /// drops partial packets. The demuxer can be fed again afterwards; it
    /// then resynchronises as on a new input.
    pub fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        // A last packet could not be confirmed by a following sync byte;
        // at the end of input we take it on its own sync byte.
        if !self.locked && pending.len() >= PACKET_SIZE && pending[0] == SYNC_BYTE {
            self.locked = true;
            self.consume(&pending, self.pending_base);
        }
        self.pending = pending;
        self.pending.clear();
        self.pending_base = self.stats.bytes;
        self.pkt_offset = self.stats.bytes;
        for i in 0..self.streams.len() {
            self.finish_pes(i);
            self.flush_stream(i);
        }
        for p in self.pids.iter_mut() {
            p.cc = Cc::Unknown;
        }
        self.psi.reset_sections();
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

    /// The programs of the PAT whose PMTs are tracked, in PAT order: the
    /// one asked for, the one followed and the current search window (at
    /// most [`MAX_PROGRAMS`] in all; see the module docs).
    pub fn programs(&self) -> Vec<ProgramInfo> {
        self.psi.programs()
    }

    /// The program_number followed, once chosen.
    pub fn selected_program(&self) -> Option<u16> {
        self.psi.selected()
    }

    /// Unknown elementary streams `(PID, stream_type)` found since the last
    /// call, each once (they are also counted in `unknown_streams`).
    pub fn take_unknown(&mut self) -> Vec<(u16, u8)> {
        std::mem::take(&mut self.unknown_new)
    }

    // ---- errors ----

    /// Counts an error of `kind` on `pid` and remembers it as the last one.
    #[cold]
    #[inline(never)]
    fn error(&mut self, pid: u16, kind: TsErrorKind) {
        let s = &mut self.stats;
        match kind {
            TsErrorKind::Sync => s.sync_errors += 1,
            TsErrorKind::Cc => s.cc_errors += 1,
            TsErrorKind::TransportError => s.transport_errors += 1,
            TsErrorKind::Scrambled => s.scrambled += 1,
            TsErrorKind::Psi => s.pmt_errors += 1,
            TsErrorKind::Pes | TsErrorKind::Oversize | TsErrorKind::Latm => s.pes_errors += 1,
            TsErrorKind::ProgramMissing => s.programs_missing += 1,
        }
        s.last_error = Some(TsErrorContext {
            pid,
            kind,
            offset: self.pkt_offset,
        });
    }

    // ---- sync and packets ----

    /// Parses the packets of `data` (whose first byte is at `base` in the
    /// pushed stream), returning how many bytes were used; the rest (a
    /// partial packet or an unconfirmed sync candidate) must be kept.
    fn consume(&mut self, data: &[u8], base: u64) -> usize {
        let mut pos = 0;
        loop {
            if self.locked {
                while let Some(pkt) = data.get(pos..).and_then(|r| r.first_chunk::<PACKET_SIZE>()) {
                    if pkt[0] != SYNC_BYTE {
                        self.locked = false;
                        self.pkt_offset = base + pos as u64;
                        self.error(NULL_PID, TsErrorKind::Sync);
                        self.sync_counted = true;
                        break;
                    }
                    self.pkt_offset = base + pos as u64;
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
                self.note_garbage(rest.len(), base + pos as u64);
                return data.len();
            };
            self.note_garbage(i, base + pos as u64);
            pos += i;
            match data.get(pos + PACKET_SIZE) {
                Some(&SYNC_BYTE) => {
                    self.locked = true;
                    self.sync_counted = false;
                }
                Some(_) => {
                    self.note_garbage(1, base + pos as u64);
                    pos += 1;
                }
                None => return pos,
            }
        }
    }

    fn note_garbage(&mut self, n: usize, offset: u64) {
        if n > 0 && !self.sync_counted {
            self.pkt_offset = offset;
            self.error(NULL_PID, TsErrorKind::Sync);
            self.sync_counted = true;
        }
    }

    fn packet(&mut self, p: &[u8; PACKET_SIZE]) {
        self.stats.packets += 1;
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let role = self.pids[usize::from(pid)].role;
        if matches!(role, PidRole::None) {
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
            if !matches!(role, PidRole::Pcr) {
                self.reset_pid(pid, role);
                self.error(pid, TsErrorKind::TransportError);
            }
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
                if matches!(role, PidRole::Pcr) {
                    return;
                }
                self.reset_pid(pid, role);
                let kind = if matches!(role, PidRole::Stream(_)) {
                    TsErrorKind::Pes
                } else {
                    TsErrorKind::Psi
                };
                self.error(pid, kind);
                return;
            }
            if af_len > 0 {
                discontinuity = p[5] & 0x80 != 0;
                // PCR_flag (§2.4.3.5): the 33-bit base is in 90 kHz.
                if self.want_pcr && pid == self.pcr_pid && af_len >= 7 && p[5] & 0x10 != 0 {
                    let b = |i: usize| i64::from(p[i]);
                    self.pcr = Some(b(6) << 25 | b(7) << 17 | b(8) << 9 | b(9) << 1 | b(10) >> 7);
                }
            }
        }
        let has_payload = afc & 0x01 != 0;
        match self.check_cc(pid, cc, has_payload, discontinuity) {
            CcCheck::Ok => {}
            CcCheck::Duplicate => return,
            // A PID followed only for its PCR: its losses are not ours.
            CcCheck::Error if matches!(role, PidRole::Pcr) => return,
            CcCheck::Error => {
                self.reset_pid(pid, role);
                self.error(pid, TsErrorKind::Cc);
            }
        }
        if !has_payload {
            return;
        }
        if scrambled {
            if !matches!(role, PidRole::Pcr) {
                self.reset_pid(pid, role);
                self.error(pid, TsErrorKind::Scrambled);
            }
            return;
        }
        let payload = &p[offset..];
        match role {
            PidRole::Pat => self.psi_payload(psi::SecId::Pat, pid, payload, pusi),
            PidRole::Pmt(i) => self.psi_payload(psi::SecId::Pmt(i), pid, payload, pusi),
            PidRole::Scte35(i) => self.psi_payload(psi::SecId::Scte35(i), pid, payload, pusi),
            PidRole::Stream(i) => self.pes_payload(usize::from(i), payload, pusi),
            PidRole::None | PidRole::Pcr => {}
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
    #[cold]
    #[inline(never)]
    fn reset_pid(&mut self, pid: u16, role: PidRole) {
        match role {
            PidRole::Pat => self.psi.reset_section(psi::SecId::Pat),
            PidRole::Pmt(i) => self.psi.reset_section(psi::SecId::Pmt(i)),
            PidRole::Scte35(i) => {
                if let Some(st) = self.streams.get_mut(usize::from(i)) {
                    st.reset_section();
                }
            }
            PidRole::Stream(i) => self.lose_pes(pid, usize::from(i)),
            PidRole::None | PidRole::Pcr => {}
        }
    }

    // ---- events ----

    fn emit(&mut self, frame: Frame) {
        self.emit_tracks_if_dirty();
        self.stats.frames += 1;
        self.queue(DemuxEvent::Frame(frame));
    }

    fn emit_tracks_if_dirty(&mut self) {
        if self.tracks_dirty {
            self.tracks_dirty = false;
            self.queue(DemuxEvent::Tracks(self.tracks.clone()));
        }
    }

    fn queue(&mut self, e: DemuxEvent) {
        if self.held.is_empty() {
            self.events.push_back(e);
        } else {
            self.held.push_back(Slot::Ready(e));
            if self.held.len() > MAX_HELD_EVENTS {
                // At a given event, so reads of any size agree. A stream
                // whose handler is running (its state taken) keeps its hole.
                self.bound_held_events();
            }
        }
    }

    /// Takes a place in the event order for a frame emitted later by
    /// [`Demuxer::fill_hole`] (or given up by [`Demuxer::void_hole`]).
    fn reserve_hole(&mut self) -> u64 {
        self.emit_tracks_if_dirty();
        self.held.push_back(Slot::Hole);
        self.held_base + self.held.len() as u64 - 1
    }

    fn hole_slot(&mut self, seq: u64) -> Option<&mut Slot> {
        let idx = usize::try_from(seq.checked_sub(self.held_base)?).ok()?;
        self.held.get_mut(idx).filter(|s| matches!(s, Slot::Hole))
    }

    fn fill_hole(&mut self, seq: u64, frame: Frame) {
        if let Some(slot) = self.hole_slot(seq) {
            *slot = Slot::Ready(DemuxEvent::Frame(frame));
            self.stats.frames += 1;
            self.release_front();
        }
    }

    fn void_hole(&mut self, seq: u64) {
        if let Some(slot) = self.hole_slot(seq) {
            *slot = Slot::Void;
            self.release_front();
        }
    }

    /// Moves the held events before the first remaining hole to `events`.
    fn release_front(&mut self) {
        while let Some(front) = self.held.front() {
            if matches!(front, Slot::Hole) {
                break;
            }
            self.held_base += 1;
            if let Some(Slot::Ready(e)) = self.held.pop_front() {
                self.events.push_back(e);
            }
        }
    }

    /// Keeps the events held behind holes bounded: past
    /// [`MAX_HELD_EVENTS`], the access units of the holes are taken as complete.
    fn bound_held_events(&mut self) {
        for i in 0..self.streams.len() {
            self.release_held(i);
        }
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
}

/// Ticks of 90 kHz for `samples` at `rate`, rounded to nearest.
fn samples_to_ticks(samples: u64, rate: u32) -> i64 {
    let rate = u64::from(rate.max(1));
    (samples.saturating_mul(90_000).saturating_add(rate / 2) / rate) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn error_kind_names_are_stable() {
        let kinds = [
            (TsErrorKind::Sync, "sync"),
            (TsErrorKind::Cc, "cc"),
            (TsErrorKind::TransportError, "transport_error"),
            (TsErrorKind::Pes, "pes"),
            (TsErrorKind::Psi, "psi"),
            (TsErrorKind::Oversize, "oversize"),
            (TsErrorKind::Latm, "latm"),
            (TsErrorKind::Scrambled, "scrambled"),
            (TsErrorKind::ProgramMissing, "program_missing"),
        ];
        for (k, n) in kinds {
            assert_eq!(k.name(), n);
        }
    }

    #[test]
    fn holes_keep_order_and_hold_pull() {
        let mut d = Demuxer::new();
        let f = |t: u16| Frame {
            track: t,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: bytes::Bytes::new(),
        };
        d.rebuild_tracks();
        let hole = d.reserve_hole();
        d.emit(f(1));
        assert!(matches!(d.pull(), Some(DemuxEvent::Tracks(_))));
        assert_eq!(d.pull(), None, "held behind the hole");
        d.fill_hole(hole, f(0));
        assert!(matches!(d.pull(), Some(DemuxEvent::Frame(x)) if x.track == 0));
        assert!(matches!(d.pull(), Some(DemuxEvent::Frame(x)) if x.track == 1));
        let hole = d.reserve_hole();
        d.emit(f(2));
        d.void_hole(hole);
        d.void_hole(hole); // twice is harmless
        assert!(matches!(d.pull(), Some(DemuxEvent::Frame(x)) if x.track == 2));
        assert_eq!(d.pull(), None);
        assert_eq!((d.held.len(), d.stats.frames), (0, 3));
        // A later hole filled first stays behind an earlier one.
        let first = d.reserve_hole();
        let second = d.reserve_hole();
        d.fill_hole(second, f(4));
        assert_eq!(d.pull(), None);
        d.fill_hole(first, f(3));
        assert!(matches!(d.pull(), Some(DemuxEvent::Frame(x)) if x.track == 3));
        assert!(matches!(d.pull(), Some(DemuxEvent::Frame(x)) if x.track == 4));
    }
}
