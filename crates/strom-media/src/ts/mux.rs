//! MPEG-TS muxer: [`Frame`]s of the canonical model → 188-byte transport packets.
//!
//! Role: every output that speaks MPEG-TS (HLS segments, continuous HTTP-TS)
//! goes through here, once per ingested frame per output, so the hot path
//! writes straight into the caller's `BytesMut` with no per-packet allocation.
//!
//! Invariants:
//! - Output is always a whole number of 188-byte packets.
//! - The layout is fixed and deterministic: PAT on PID 0, PMT on
//!   [`PMT_PID`], program [`PROGRAM_NUMBER`], elementary stream of a track on
//!   `ES_PID_BASE + track.id`, whichever tracks a muxer carries, so every
//!   per-track rendition ([`mux_segment_tracks`]) shares the PIDs of the full
//!   mux. The same tracks and frames always give the same bytes, so a segment
//!   can be re-muxed (cluster peers, DVR) bit-identically.
//! - Continuity counters are per PID and start at 0 in a fresh muxer.
//! - **Segments are CC-continuous with each other.** [`mux_segment`] pads
//!   every PID's number of packets to a multiple of 16, so on every PID the
//!   counter starts at 0 and ends at 15 in every segment. Any run of
//!   segments (consecutive, or with a PID absent from some of them) is
//!   therefore one TS without continuity errors, while each segment stays a
//!   pure function of itself (a node that joined mid-stream writes the same
//!   bytes). The padding uses adaptation-field stuffing only (ISO/IEC
//!   13818-1 §2.4.3.4, every packet still carries at least one payload byte,
//!   so every one advances the counter, §2.4.3.3):
//!   - the last PES of each elementary PID is spread over up to 15 more
//!     packets (if it has fewer bytes than packets, a byte or two of PES
//!     header stuffing, §2.4.3.7, makes up the difference); teletext instead
//!     grows its last PES by whole packets of stuffing data units (see below);
//!   - an SCTE-35 PID is padded after its last cue with `splice_null()`
//!     sections (ANSI/SCTE 35 §9.7.1, the no-op command), one complete
//!     section per packet: the cue itself is neither spread thinly nor
//!     repeated;
//!   - PAT and PMT are repeated whole at the end of the segment, one
//!     complete section per packet (pointer_field 0, 0xFF fill), as many
//!     times as their counters need. Sections are never spread thinly:
//!     readers (GStreamer's mpegts library) reject a packet that starts a
//!     section with fewer than its 3 header bytes. A PMT of n > 1 packets
//!     is repeated whole, its last copy spread over at most 2n − 1 packets
//!     so that its first packet still carries 183 or more bytes.
//!
//!   This costs at most 15 packets (2.8 KB) per PID per segment, and at
//!   least 16 PAT and 16 PMT packets per segment: 2.7 % more bytes for the
//!   2 s segments of assets/demo.ts (1.3 Mbit/s), less at broadcast
//!   bitrates. [`TsMuxer`] (continuous HTTP-TS) needs no padding.
//! - PAT and PMT precede the first frame, every video keyframe, and any
//!   frame of the PCR track at least [`TABLE_INTERVAL`] of DTS after the
//!   last copy, so with frames up to 0.1 s apart they repeat at least every
//!   0.5 s (ETSI TR 101 290 §5.2.1, 1.3 PAT_error) even in a 10 s GOP.
//! - One PES per frame. The last packet of a PES is padded with
//!   adaptation-field stuffing, never with bytes inside the PES payload.
//! - The PCR rides on the first packet of every frame of the PCR track (first
//!   video track, else first audio track; subtitle and data tracks never
//!   carry it) and equals that frame's DTS minus [`MUX_DELAY`], so it never
//!   runs ahead of the data it clocks.
//! - `discontinuity_indicator` (§2.4.3.5) is set where a counter or the time
//!   base really breaks: on the first PCR packet of a segment marked
//!   `discontinuity`, and on the next packet of every PID after
//!   [`TsMuxer::mark_discontinuity`].
//! - Timestamps are UTC 90 kHz ticks that never wrap; they are written modulo
//!   2^33 here and nowhere else (SCTE-35 `pts_adjustment` included).
//! - Video access units always start with an AUD, and keyframes always carry
//!   their parameter sets, so any keyframe is a clean entry point (HLS
//!   segment start, HTTP-TS join, Apple's validator).
//! - Teletext (ETSI EN 300 472 §4) and DVB subtitles (ETSI EN 300 743) are
//!   PES on private_stream_1 with a PTS only and their source ES descriptors
//!   carried verbatim. A teletext PES always fills whole packets: its
//!   `PES_header_data_length` is 0x24 and its `PES_packet_length` N×184 − 6,
//!   the payload being padded with stuffing data units when it is short.
//! - SCTE-35 cues are PSI sections on their own PID (ANSI/SCTE 35 §8), never
//!   PES, announced by a `CUEI` registration descriptor in the PMT.

use bytes::{Bytes, BytesMut};

use crate::codec::aac::write_adts_header;
use crate::frame::{Codec, Frame, Segment, Track, TrackKind, CLOCK_HZ};
use crate::scte35;
use crate::ts::crc::crc32_mpeg2;
use crate::ts::{PACKET_SIZE, SYNC_BYTE, TS_WRAP};

/// PID of the Program Association Table.
pub const PAT_PID: u16 = 0x0000;
/// PID of the (single) Program Map Table.
pub const PMT_PID: u16 = 0x1000;
/// Elementary PIDs are `ES_PID_BASE + track.id`.
pub const ES_PID_BASE: u16 = 0x0100;
/// The one program in every strom transport stream.
pub const PROGRAM_NUMBER: u16 = 1;
/// transport_stream_id in the PAT (only needs to be stable).
const TRANSPORT_STREAM_ID: u16 = 1;
/// Highest PID an elementary stream may use (0x1FFF is the null PID).
const MAX_ES_PID: u16 = 0x1FFE;
/// PCR_PID of a program without a PCR (§2.4.4.9).
const NO_PCR_PID: u16 = 0x1FFF;

/// How far the PCR runs behind the DTS of the frame it is stamped on, in
/// 90 kHz ticks. 0.7 s, ffmpeg's default `max_delay`: large enough that audio
/// interleaved a little behind video still arrives with DTS >= the last PCR
/// (the T-STD never sees data after its decode time), and players size their
/// buffers from it the same way they do for ffmpeg output.
pub const MUX_DELAY: i64 = CLOCK_HZ * 7 / 10;

/// PAT and PMT are repeated before the first PCR-track frame whose DTS is
/// at least this far (90 kHz ticks, 0.4 s) past the last copy, keyframe or
/// not. ETSI TR 101 290 §5.2.1 (1.3 PAT_error) wants a PAT at least every
/// 0.5 s; 0.4 s keeps the real gap within that for frames up to 0.1 s apart
/// (10 fps video, any audio), at ~7.5 kbit/s of overhead. An audio-only
/// HTTP-TS client joining at a table copy waits no longer than that either.
pub const TABLE_INTERVAL: i64 = CLOCK_HZ * 2 / 5;

const TS_HEADER_SIZE: usize = 4;
const TS_PAYLOAD_SIZE: usize = PACKET_SIZE - TS_HEADER_SIZE;
/// Adaptation field with PCR: length, flags, 6 bytes of PCR.
const AF_PCR_SIZE: usize = 8;
/// Adaptation field with flags only: length, flags.
const AF_FLAGS_SIZE: usize = 2;
/// Largest PES header we write: 9 fixed bytes + PTS + DTS.
const PES_HEADER_MAX: usize = 19;
/// Largest per-PES prefix beyond the PES header (AUD or ADTS).
const ES_PREFIX_MAX: usize = 7;
/// Continuity counters count modulo 16 (§2.4.3.3).
const CC_MODULUS: usize = 16;

/// Adaptation field flags (§2.4.3.4).
const AF_DISCONTINUITY: u8 = 0x80;
const AF_RANDOM_ACCESS: u8 = 0x40;
const AF_PCR: u8 = 0x10;

const STREAM_ID_VIDEO: u8 = 0xE0;
const STREAM_ID_AUDIO: u8 = 0xC0;
/// private_stream_1: where AC-3/E-AC-3 (ATSC A/52, ffmpeg does the same),
/// teletext (EN 300 472) and DVB subtitles (EN 300 743) go.
const STREAM_ID_PRIVATE_1: u8 = 0xBD;

/// Teletext PES header: `PES_header_data_length` is 0x24 (EN 300 472 §4),
/// i.e. 5 bytes of PTS and 31 stuffing bytes, 45 bytes in all.
const TELETEXT_HEADER_DATA_LEN: usize = 0x24;
const TELETEXT_HEADER_LEN: usize = 9 + TELETEXT_HEADER_DATA_LEN;
/// A teletext PES is N whole packets; N is bounded by the 16-bit
/// `PES_packet_length` (N×184 − 6 ≤ 65535).
const TELETEXT_MAX_PACKETS: usize = (0xFFFF + 6) / TS_PAYLOAD_SIZE;
/// A teletext data unit is 46 bytes: data_unit_id, data_unit_length (0x2C)
/// and 44 bytes. Stuffing units have data_unit_id 0xFF (EN 300 472 §4).
const TELETEXT_UNIT_LEN: usize = 46;
const TELETEXT_UNIT_BODY_LEN: u8 = 0x2C;

/// Smallest `splice_info_section` (ANSI/SCTE 35 §9.6): 14-byte header,
/// descriptor_loop_length and CRC_32.
const SCTE35_MIN_SECTION: usize = 20;

/// Access unit delimiters with a 4-byte start code; `primary_pic_type` /
/// `pic_type` say "any slice type" so they are valid for every AU.
const AUD_H264: [u8; 6] = [0, 0, 0, 1, 0x09, 0xF0];
const AUD_H265: [u8; 7] = [0, 0, 0, 1, 0x46, 0x01, 0x50];
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Per-track muxing state.
#[derive(Debug, Clone)]
struct Stream {
    track: Track,
    /// `None` when the track is not muxed: `ES_PID_BASE + track.id` is not a
    /// usable PID, the track was not selected, or its PMT entry would not
    /// fit. Such a track is left out of the PMT and its frames are dropped.
    pid: Option<u16>,
    stream_id: u8,
    cc: u8,
    /// The next packet of this PID carries discontinuity_indicator.
    discontinuity: bool,
    /// In [`mux_segment`]: index of the stream's last frame in the segment,
    /// whose packets are padded (`usize::MAX` otherwise).
    last_frame: usize,
}

/// One PSI table (PAT or PMT) of the program.
#[derive(Debug, Clone)]
struct Psi {
    pid: u16,
    section: Vec<u8>,
    /// The section packetized (pointer_field 0, 0xFF fill), built once;
    /// only the continuity counter nibble (byte 3) is patched when written.
    packets: Vec<u8>,
    cc: u8,
    /// The next packet of this PID carries discontinuity_indicator.
    discontinuity: bool,
}

impl Psi {
    fn new(pid: u16, section: Vec<u8>) -> Self {
        let packets = psi_packets(pid, &section);
        Psi {
            pid,
            section,
            packets,
            cc: 0,
            discontinuity: false,
        }
    }

    /// Appends the table: the prebuilt packets, or, when a discontinuity is
    /// pending, packets written on the spot with the indicator set.
    fn write(&mut self, out: &mut BytesMut) {
        if !self.discontinuity {
            put_psi(out, &self.packets, &mut self.cc);
            return;
        }
        self.discontinuity = false;
        write_section(out, self.pid, &mut self.cc, &self.section, AF_DISCONTINUITY);
    }

    /// Writes whole copies of the table until the counter is at a multiple
    /// of 16 (nothing if it already is). A one-packet table (the PAT, and
    /// any PMT of up to 183 bytes) takes one packet per copy. A table of
    /// n > 1 packets gets its last copy spread over n + 1 to 2n − 1 packets
    /// (its first packet still carries 183 or more bytes, every later one at
    /// least one), going round the counter once more when fewer than n
    /// packets are missing.
    fn pad(&mut self, out: &mut BytesMut) {
        let n = self.packets.len() / PACKET_SIZE;
        // Ends: each whole copy takes the count down by n (mod 16); from
        // at least 2n it lands in n..2n, which ends the loop, and from below
        // n it wraps to at least 17 - n >= n (n <= 6: 1024-byte sections).
        loop {
            let left = cc_padding(self.cc, 0);
            if left == 0 {
                return;
            }
            if left > n && left < 2 * n && !self.discontinuity {
                let parts: [&[u8]; 4] = [&[0], &self.section, &[], &[]];
                write_unit(out, self.pid, &mut self.cc, parts, 0, None, left);
            } else {
                self.write(out);
            }
        }
    }
}

/// Muxes frames of one fixed set of tracks into MPEG-TS packets.
///
/// Keeps continuity counters across calls, so one muxer serves a continuous
/// HTTP-TS stream; HLS segments use a fresh one each via [`mux_segment`].
#[derive(Debug, Clone)]
pub struct TsMuxer {
    streams: Vec<Stream>,
    /// Index into `streams` of the track carrying the PCR.
    pcr_stream: Option<usize>,
    has_video: bool,
    pat: Psi,
    pmt: Psi,
    /// True from `write_tables` until the next frame, so a keyframe right after
    /// explicit tables does not repeat them.
    tables_just_written: bool,
    tables_ever_written: bool,
    /// DTS of the frame the last tables preceded (audio-only repetition).
    last_tables_dts: Option<i64>,
    /// Scratch buffers reused across frames: PES header + AUD/ADTS, and the
    /// parameter sets to splice in (or teletext stuffing). Never shrink, so
    /// steady state allocates nothing.
    head: Vec<u8>,
    mid: Vec<u8>,
}

impl TsMuxer {
    /// A muxer for these tracks. PIDs are deterministic: PMT 0x1000 (4096),
    /// elementary PIDs `0x100 + track.id`, program number 1. PCR on the first
    /// video track, else the first audio track (none if there are only
    /// subtitle and data tracks: PCR_PID 0x1FFF).
    ///
    /// `Frame::track` indexes `tracks`. A track whose PID would not fit
    /// (`track.id > 0x1EFE`) is left out and its frames are dropped.
    pub fn new(tracks: &[Track]) -> Self {
        Self::with_selection(tracks, None)
    }

    /// A muxer for the tracks whose ids are in `selected` (all with `None`).
    /// Unselected tracks are left out of the PMT and their frames dropped;
    /// PIDs stay `ES_PID_BASE + track.id`.
    fn with_selection(tracks: &[Track], selected: Option<&[u16]>) -> Self {
        let mut streams: Vec<Stream> = tracks
            .iter()
            .map(|t| Stream {
                track: t.clone(),
                pid: ES_PID_BASE
                    .checked_add(t.id)
                    .filter(|&p| p <= MAX_ES_PID && p != PMT_PID)
                    .filter(|_| selected.is_none_or(|sel| sel.contains(&t.id))),
                stream_id: stream_id(t.codec),
                cc: 0,
                discontinuity: false,
                last_frame: usize::MAX,
            })
            .collect();
        // Decides which streams fit the PMT (drops the rest), so it runs
        // before the PCR track is chosen among them.
        let es_info = pmt_es_info(&mut streams);
        let usable = || streams.iter().enumerate().filter(|(_, s)| s.pid.is_some());
        let pcr_stream = usable()
            .find(|(_, s)| s.track.kind() == TrackKind::Video)
            .or_else(|| usable().find(|(_, s)| s.track.kind() == TrackKind::Audio))
            .map(|(i, _)| i);
        let has_video = usable().any(|(_, s)| s.track.kind() == TrackKind::Video);
        let has_scte35 = usable().any(|(_, s)| s.track.codec == Codec::Scte35);
        let pcr_pid = pcr_stream.and_then(|i| streams[i].pid).unwrap_or(NO_PCR_PID);
        let pmt = pmt_section(pcr_pid, has_scte35, &es_info);
        TsMuxer {
            streams,
            pcr_stream,
            has_video,
            pat: Psi::new(PAT_PID, pat_section()),
            pmt: Psi::new(PMT_PID, pmt),
            tables_just_written: false,
            tables_ever_written: false,
            last_tables_dts: None,
            head: Vec::with_capacity(TELETEXT_HEADER_LEN + ES_PREFIX_MAX),
            mid: Vec::new(),
        }
    }

    /// PID that carries `track` (an index into the tracks given to [`TsMuxer::new`]).
    pub fn pid(&self, track: u16) -> Option<u16> {
        self.streams.get(track as usize).and_then(|s| s.pid)
    }

    /// PID carrying the PCR (0x1FFF if no track carries one).
    pub fn pcr_pid(&self) -> u16 {
        self.pcr_stream.and_then(|i| self.streams[i].pid).unwrap_or(NO_PCR_PID)
    }

    /// Sets `discontinuity_indicator` (ISO/IEC 13818-1 §2.4.3.5) in the next
    /// packet of every PID: PAT, PMT and each elementary stream.
    ///
    /// For a muxer that replaces another one mid-connection (continuous
    /// HTTP-TS after a track change): its counters restart at 0, and the
    /// indicator tells the receiver that this break, and the time-base break
    /// on the PCR PID, are intended. A PID's flag stays pending until that
    /// PID next writes a packet.
    pub fn mark_discontinuity(&mut self) {
        self.pat.discontinuity = true;
        self.pmt.discontinuity = true;
        for s in &mut self.streams {
            s.discontinuity = true;
        }
    }

    /// Appends PAT and PMT (with CRC) packets.
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        out.reserve(self.pat.packets.len() + self.pmt.packets.len());
        self.pat.write(out);
        self.pmt.write(out);
        self.tables_just_written = true;
        self.tables_ever_written = true;
    }

    /// Appends the packets of one frame.
    ///
    /// A video keyframe is preceded by PAT/PMT, as are the first frame and
    /// any PCR-track frame [`TABLE_INTERVAL`] (0.4 s of DTS) or more after
    /// the last copy (other audio, subtitle and SCTE-35 frames never cause a
    /// repetition); a keyframe whose data lacks SPS/PPS
    /// (VPS/SPS/PPS for H.265) gets the missing ones inserted from the
    /// track's `parameter_sets`; every video AU starts with an AUD (type 9
    /// for H.264, 35 for H.265) if it has none. AAC frames get an ADTS
    /// header. An SCTE-35 frame becomes a section with `pts_adjustment`
    /// rewritten for the output clock (see [`scte35_section`]). Frames of
    /// unknown or unusable tracks, teletext frames that are empty or too
    /// large for one PES (over 65,459 bytes) and SCTE-35 frames that are not
    /// a section at all are dropped.
    pub fn write_frame(&mut self, frame: &Frame, out: &mut BytesMut) {
        self.write_frame_padded(frame, out, false);
    }

    /// [`TsMuxer::write_frame`]; with `pad`, the frame's packets are spread
    /// so that its PID's continuity counter ends at 15.
    fn write_frame_padded(&mut self, frame: &Frame, out: &mut BytesMut, pad: bool) {
        let idx = frame.track as usize;
        let Some(pid) = self.streams.get(idx).filter(|s| writable(s, frame)).and_then(|s| s.pid) else {
            return;
        };
        if self.tables_due(idx, frame) {
            self.write_tables(out);
            self.last_tables_dts = Some(frame.dts);
        } else if self.tables_just_written {
            self.last_tables_dts = Some(frame.dts);
        }
        self.tables_just_written = false;

        let TsMuxer {
            streams,
            pcr_stream,
            head,
            mid,
            ..
        } = self;
        let stream = &mut streams[idx];
        let mut flags = if std::mem::take(&mut stream.discontinuity) {
            AF_DISCONTINUITY
        } else {
            0
        };
        let codec = stream.track.codec;
        if codec == Codec::Scte35 {
            if let Some(section) = scte35_section(&frame.data, frame.pts) {
                write_section(out, pid, &mut stream.cc, &section, flags);
                if pad {
                    for _ in 0..cc_padding(stream.cc, 0) {
                        put_psi(out, &splice_null_packet(pid), &mut stream.cc);
                    }
                }
            }
            return;
        }
        let data: &[u8] = &frame.data;
        head.clear();
        mid.clear();
        // The PES payload is head[PES header..] ++ data[..split] ++ mid ++ data[split..]:
        // AUD first, then inserted parameter sets, then the AU as received.
        // Teletext: data ++ stuffing data units in `mid`.
        let mut split = 0;
        let mut es_prefix: &[u8] = &[];
        let adts: [u8; 7];
        match codec {
            Codec::H264 | Codec::H265 => {
                let scan = scan_au(data, codec, frame.keyframe);
                match scan.aud_end {
                    Some(end) => split = end,
                    None => es_prefix = if codec == Codec::H264 { &AUD_H264 } else { &AUD_H265 },
                }
                if frame.keyframe {
                    for ps in &stream.track.params.parameter_sets {
                        if let Some(&b) = ps.first() {
                            if scan.present & (1u64 << nal_type(codec, b)) == 0 {
                                mid.extend_from_slice(&START_CODE);
                                mid.extend_from_slice(ps);
                            }
                        }
                    }
                }
            }
            Codec::Aac => {
                let p = &stream.track.params;
                adts = write_adts_header(p.aac_object_type, p.sample_rate, p.channels, data.len());
                es_prefix = &adts;
            }
            // Stuffing data units go after the frame's own.
            Codec::Teletext => split = data.len(),
            Codec::MpegAudio | Codec::Ac3 | Codec::Eac3 | Codec::DvbSubtitle | Codec::Scte35 => {}
        }
        let pcr = (*pcr_stream == Some(idx)).then(|| (frame.dts - MUX_DELAY).rem_euclid(TS_WRAP));
        // Teletext must fill whole packets, so it never gets an adaptation
        // field of its own making (EN 300 472 §4).
        if frame.keyframe && codec != Codec::Teletext {
            flags |= AF_RANDOM_ACCESS;
        }
        if pcr.is_some() {
            flags |= AF_PCR;
        }
        let first_af = af_size(flags);

        let (dts, with_dts) = match codec.kind() {
            TrackKind::Video | TrackKind::Audio => (frame.dts, frame.dts != frame.pts),
            TrackKind::Subtitle | TrackKind::Data => (frame.pts, false),
        };
        let (payload_len, header_stuffing, count) = if codec == Codec::Teletext {
            // Whole packets: N×184 bytes of PES. Growing N (with stuffing
            // data units) is also how its counter is padded, as long as the
            // PES length allows; beyond that, spreading takes over.
            let mut n = (TELETEXT_HEADER_LEN + data.len()).div_ceil(TS_PAYLOAD_SIZE).max(1);
            let natural = natural_packets(n * TS_PAYLOAD_SIZE, first_af);
            if pad {
                let more = cc_padding(stream.cc, natural);
                if n + more <= TELETEXT_MAX_PACKETS {
                    n += more;
                }
            }
            let payload_len = n * TS_PAYLOAD_SIZE - TELETEXT_HEADER_LEN;
            teletext_stuffing(mid, payload_len - data.len());
            let natural = natural_packets(n * TS_PAYLOAD_SIZE, first_af);
            let more = if pad { cc_padding(stream.cc, natural) } else { 0 };
            (payload_len, TELETEXT_HEADER_DATA_LEN - 5, natural + more)
        } else {
            let payload_len = es_prefix.len() + data.len() + mid.len();
            let total = pes_header_len(with_dts) + payload_len;
            let natural = natural_packets(total, first_af);
            let count = if pad {
                natural + cc_padding(stream.cc, natural)
            } else {
                natural
            };
            // Every packet carries at least one byte; a PES too short for
            // that (at most 2 bytes short: the header alone is 14) gets
            // stuffing bytes in its header.
            (payload_len, count.saturating_sub(total), count)
        };
        write_pes_header(
            head,
            stream.stream_id,
            frame.pts,
            dts,
            with_dts,
            payload_len,
            header_stuffing,
        );
        head.extend_from_slice(es_prefix);

        let (a, b) = data.split_at(split.min(data.len()));
        write_unit(
            out,
            pid,
            &mut stream.cc,
            [head.as_slice(), a, mid.as_slice(), b],
            flags,
            pcr,
            count,
        );
    }

    /// Whether PAT/PMT go in front of this frame.
    fn tables_due(&self, idx: usize, frame: &Frame) -> bool {
        if self.tables_just_written {
            return false;
        }
        if !self.tables_ever_written {
            return true;
        }
        // Keyframes first: an HTTP-TS viewer joins at one and needs the
        // tables right there.
        let kind = self.streams[idx].track.kind();
        if self.has_video && kind == TrackKind::Video && frame.keyframe {
            return true;
        }
        self.pcr_stream == Some(idx)
            && self
                .last_tables_dts
                .is_none_or(|last| frame.dts - last >= TABLE_INTERVAL)
    }

    /// Upper bound on the bytes `write_frame` appends for `frame`, so
    /// [`mux_segment`] allocates its output exactly once.
    fn frame_size_bound(&self, frame: &Frame) -> usize {
        let Some(stream) = self.streams.get(frame.track as usize) else {
            return 0;
        };
        let tables = self.pat.packets.len() + self.pmt.packets.len();
        let len = frame.data.len();
        let packets = match stream.track.codec {
            // Rounded up to whole packets, plus one if an adaptation field
            // pushes the PES into another packet.
            Codec::Teletext => (TELETEXT_HEADER_LEN + len).div_ceil(TS_PAYLOAD_SIZE) + 1,
            // pointer_field, adaptation field with flags.
            Codec::Scte35 => (1 + AF_FLAGS_SIZE + len).div_ceil(TS_PAYLOAD_SIZE),
            _ => {
                let mut overhead = PES_HEADER_MAX + ES_PREFIX_MAX + AF_PCR_SIZE;
                if frame.keyframe {
                    overhead += stream
                        .track
                        .params
                        .parameter_sets
                        .iter()
                        .map(|p| p.len() + START_CODE.len())
                        .sum::<usize>();
                }
                (len + overhead).div_ceil(TS_PAYLOAD_SIZE)
            }
        };
        let pcr = self.pcr_stream == Some(frame.track as usize);
        let tables = if frame.keyframe || pcr { tables } else { 0 };
        packets * PACKET_SIZE + tables
    }

    /// Upper bound on the bytes of a segment of `frames` from a fresh muxer:
    /// tables at the start, the frames, up to 15 padding packets per
    /// elementary PID, and the padding copies of PAT and PMT (fewer than
    /// 2n + 15 packets for a table of n).
    fn segment_size_bound(&self, frames: &[Frame]) -> usize {
        let tables = self.pat.packets.len() + self.pmt.packets.len();
        let padding = (self.streams.len() + 2) * (CC_MODULUS - 1) * PACKET_SIZE;
        3 * tables + padding + frames.iter().map(|f| self.frame_size_bound(f)).sum::<usize>()
    }

    /// Sets each stream's `last_frame` to the index in `frames` of its last
    /// frame that will be written: the one whose packets are padded.
    fn find_last_frames(&mut self, frames: &[Frame]) {
        let mut missing = self.streams.iter().filter(|s| s.pid.is_some()).count();
        for (i, f) in frames.iter().enumerate().rev() {
            if missing == 0 {
                break;
            }
            if let Some(s) = self.streams.get_mut(f.track as usize) {
                if s.last_frame == usize::MAX && s.pid.is_some() && writable(s, f) {
                    s.last_frame = i;
                    missing -= 1;
                }
            }
        }
    }
}

/// Muxes a whole segment with a fresh muxer: PAT/PMT first, then frames.
/// Deterministic: the same Segment always yields the same bytes.
///
/// Every PID starts at continuity counter 0 and ends at 15 (module docs), so
/// consecutive segments concatenate into one continuous TS. A segment with
/// `discontinuity` sets `discontinuity_indicator` (with
/// `random_access_indicator` as usual) on the first packet of the PCR PID:
/// the system time base may jump there (ISO/IEC 13818-1 §2.4.3.5).
pub fn mux_segment(segment: &Segment) -> Bytes {
    mux_selected(segment, None)
}

/// [`mux_segment`] of only the tracks with these ids (`Track::id`), in the
/// segment's track order: frames of other tracks are dropped and the PMT
/// lists only the selected streams. PIDs stay `ES_PID_BASE + id`, so every
/// rendition of a stream (HLS `tracks-v1`, `tracks-a2`, …) shares the PIDs of
/// the full mux. PCR on the first selected video track, else the first
/// selected audio track. Deterministic and CC-padded like [`mux_segment`].
pub fn mux_segment_tracks(segment: &Segment, tracks: &[u16]) -> Bytes {
    mux_selected(segment, Some(tracks))
}

fn mux_selected(segment: &Segment, selected: Option<&[u16]>) -> Bytes {
    let mut mux = TsMuxer::with_selection(&segment.tracks, selected);
    if segment.discontinuity {
        if let Some(i) = mux.pcr_stream {
            mux.streams[i].discontinuity = true;
        }
    }
    mux.find_last_frames(&segment.frames);
    let mut out = BytesMut::with_capacity(mux.segment_size_bound(&segment.frames));
    mux.write_tables(&mut out);
    for (i, frame) in segment.frames.iter().enumerate() {
        let pad = mux.streams.get(frame.track as usize).is_some_and(|s| s.last_frame == i);
        mux.write_frame_padded(frame, &mut out, pad);
    }
    mux.pat.pad(&mut out);
    mux.pmt.pad(&mut out);
    out.freeze()
}

/// Whether `frame` of `stream` can be written at all (PID aside).
fn writable(stream: &Stream, frame: &Frame) -> bool {
    match stream.track.codec {
        // Not empty: the payload starts with its data_identifier.
        Codec::Teletext => {
            !frame.data.is_empty() && TELETEXT_HEADER_LEN + frame.data.len() <= TELETEXT_MAX_PACKETS * TS_PAYLOAD_SIZE
        }
        Codec::Scte35 => section_bounds(&frame.data).is_some(),
        _ => true,
    }
}

/// The bytes of the `splice_info_section` at the start of `data` (table_id
/// 0xFC, at least the minimal length, `section_length` within `data`).
fn section_bounds(data: &[u8]) -> Option<&[u8]> {
    match data {
        [0xFC, b1, b2, ..] => {
            let len = 3 + (usize::from(b1 & 0x0F) << 8 | usize::from(*b2));
            data.get(..len).filter(|s| s.len() >= SCTE35_MIN_SECTION)
        }
        _ => None,
    }
}

/// The section an SCTE-35 frame is written as (ANSI/SCTE 35 §9.6).
///
/// `frame_pts` is the UTC splice time (90 kHz) when the command has a
/// `pts_time`: `pts_adjustment` is rewritten so that `pts_time +
/// pts_adjustment ≡ frame_pts (mod 2^33)`, which is where the splice lands on
/// the output clock (PTS are written modulo 2^33 of UTC), and CRC_32 is
/// recomputed. An encrypted section, one without a splice time, or one that
/// does not parse (bad CRC, truncated command) is written unchanged. `None`
/// when `data` is not a section at all (wrong table_id, shorter than the
/// smallest section, or shorter than its `section_length`): writing it would
/// corrupt the PID.
pub fn scte35_section(data: &[u8], frame_pts: i64) -> Option<Bytes> {
    let section = section_bounds(data)?;
    let rewritten = scte35::parse(section)
        .ok()
        .filter(|info| !info.encrypted)
        .and_then(|info| info.pts_time())
        .and_then(|t| scte35::with_pts_adjustment(section, frame_pts - t));
    Some(rewritten.unwrap_or_else(|| Bytes::copy_from_slice(section)))
}

fn stream_id(codec: Codec) -> u8 {
    match codec {
        Codec::H264 | Codec::H265 => STREAM_ID_VIDEO,
        Codec::Aac | Codec::MpegAudio => STREAM_ID_AUDIO,
        Codec::Ac3 | Codec::Eac3 | Codec::Teletext | Codec::DvbSubtitle | Codec::Scte35 => STREAM_ID_PRIVATE_1,
    }
}

fn stream_type(codec: Codec) -> u8 {
    match codec {
        Codec::H264 => 0x1B,
        Codec::H265 => 0x24,
        Codec::Aac => 0x0F,
        Codec::MpegAudio => 0x03,
        Codec::Ac3 => 0x81,
        Codec::Eac3 => 0x87,
        // PES private data (ETSI EN 300 468 annex: teletext, subtitling).
        Codec::Teletext | Codec::DvbSubtitle => 0x06,
        // ANSI/SCTE 35 §8.1.
        Codec::Scte35 => 0x86,
    }
}

/// PAT section: one program, `PROGRAM_NUMBER` → `PMT_PID`.
fn pat_section() -> Vec<u8> {
    let mut body = Vec::with_capacity(4);
    body.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
    body.extend_from_slice(&(0xE000 | PMT_PID).to_be_bytes());
    psi_section(0x00, TRANSPORT_STREAM_ID, 0, &body)
}

/// Largest PMT body: `section_length` is at most 1021 (§2.4.4.9), of which
/// 9 bytes are the extension header and CRC_32.
const PMT_BODY_MAX: usize = 1021 - 9;
/// PCR_PID and program_info_length, plus the CUEI registration descriptor.
const PMT_PROGRAM_INFO_MAX: usize = 4 + 6;

/// The elementary-stream loop of the PMT (§2.4.4.9) for the usable streams
/// in track order: stream_type, PID, ES_info_length and descriptors.
///
/// Descriptors: the track's `params.descriptors` verbatim (complete entries
/// only), plus what strom writes itself: a registration descriptor for
/// AC-3/E-AC-3 and an ISO_639_language_descriptor (0x0A) from
/// `params.language` — except for teletext and DVB subtitles, whose own
/// descriptors (0x56, 0x59) carry the languages. Teletext or DVB subtitles
/// without descriptors get a minimal one (language from `params.language`,
/// else "und"; teletext: initial page 100; subtitles: DVB subtitles with no
/// aspect ratio, composition and ancillary page 1), so readers can still
/// identify them.
///
/// A stream whose entry would overflow the section loses its verbatim
/// descriptors, and if it still does not fit it is not muxed (`pid` None).
fn pmt_es_info(streams: &mut [Stream]) -> Vec<u8> {
    let mut body = Vec::with_capacity(streams.len() * 24);
    for s in streams.iter_mut() {
        let Some(pid) = s.pid else { continue };
        let start = body.len();
        let room = PMT_BODY_MAX - PMT_PROGRAM_INFO_MAX;
        for verbatim in [true, false] {
            body.truncate(start);
            es_entry(&mut body, &s.track, pid, verbatim);
            if body.len() <= room {
                break;
            }
        }
        if body.len() > room {
            body.truncate(start);
            s.pid = None;
        }
    }
    body
}

/// Appends one elementary-stream entry of the PMT.
fn es_entry(body: &mut Vec<u8>, track: &Track, pid: u16, verbatim: bool) {
    let codec = track.codec;
    let params = &track.params;
    body.push(stream_type(codec));
    body.extend_from_slice(&(0xE000 | pid).to_be_bytes());
    let len_at = body.len();
    body.extend_from_slice(&[0, 0]);
    let registration: &[u8] = match codec {
        // Registration descriptors as ffmpeg writes them; readers that
        // don't know ATSC stream types 0x81/0x87 identify the codec by it.
        Codec::Ac3 => b"AC-3",
        Codec::Eac3 => b"EAC3",
        _ => b"",
    };
    if !registration.is_empty() {
        body.extend_from_slice(&[0x05, 4]);
        body.extend_from_slice(registration);
    }
    let subtitle = codec.kind() == TrackKind::Subtitle;
    let own = if verbatim {
        descriptor_prefix(&params.descriptors)
    } else {
        &[]
    };
    let lang = iso639(params.language.as_deref());
    let write_lang = lang.is_some() && !subtitle;
    if let (true, Some(lang)) = (write_lang, lang) {
        // ISO_639_language_descriptor, audio_type 0 (undefined).
        body.extend_from_slice(&[0x0A, 4, lang[0], lang[1], lang[2], 0]);
    }
    if subtitle && own.is_empty() {
        let [a, b, c] = lang.unwrap_or(*b"und");
        if codec == Codec::Teletext {
            // teletext_descriptor (EN 300 468 §6.2.43): type 1 (initial
            // page), magazine 1, page 0x00.
            body.extend_from_slice(&[0x56, 5, a, b, c, (0x01 << 3) | 1, 0x00]);
        } else {
            // subtitling_descriptor (EN 300 468 §6.2.41): type 0x10.
            body.extend_from_slice(&[0x59, 8, a, b, c, 0x10, 0, 1, 0, 1]);
        }
    }
    // Entries strom already wrote (registration, language) are not repeated.
    for (tag, entry) in descriptor_entries(own) {
        let dup = (tag == 0x05 && !registration.is_empty()) || (tag == 0x0A && write_lang);
        if !dup {
            body.extend_from_slice(entry);
        }
    }
    let es_info_len = (body.len() - len_at - 2) as u16;
    body[len_at..len_at + 2].copy_from_slice(&(0xF000 | es_info_len).to_be_bytes());
}

/// The longest prefix of a descriptor loop made of complete `(tag, length,
/// body)` entries.
fn descriptor_prefix(loop_bytes: &[u8]) -> &[u8] {
    let mut end = 0;
    while let Some(&len) = loop_bytes.get(end + 1) {
        let next = end + 2 + usize::from(len);
        if next > loop_bytes.len() {
            break;
        }
        end = next;
    }
    &loop_bytes[..end]
}

/// `(tag, whole entry)` of each descriptor in a loop of complete entries.
fn descriptor_entries(mut d: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = d.split_first()?;
        let len = 2 + usize::from(*rest.first()?);
        let (entry, rest) = d.split_at_checked(len)?;
        d = rest;
        Some((tag, entry))
    })
}

/// PMT section: PCR PID, program_info (a `CUEI` registration descriptor when
/// the program carries SCTE-35, ANSI/SCTE 35 §8.1) and the ES loop.
///
/// The version number is derived from the section's content, so a muxer
/// built for a different track set (e.g. after an input switch on a
/// continuous HTTP-TS connection) announces a new PMT version and receivers
/// that filter on version pick up the change, while the same tracks always
/// give the same bytes.
fn pmt_section(pcr_pid: u16, scte35: bool, es_info: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(PMT_PROGRAM_INFO_MAX + es_info.len());
    body.extend_from_slice(&(0xE000 | pcr_pid).to_be_bytes());
    if scte35 {
        body.extend_from_slice(&0xF006u16.to_be_bytes());
        body.extend_from_slice(&[0x05, 4, b'C', b'U', b'E', b'I']);
    } else {
        body.extend_from_slice(&0xF000u16.to_be_bytes());
    }
    body.extend_from_slice(es_info);
    // The CRC of the version-0 section is a hash of the content.
    let draft = psi_section(0x02, PROGRAM_NUMBER, 0, &body);
    let crc = draft.last_chunk::<4>().map_or(0, |crc| u32::from_be_bytes(*crc));
    let version = (crc >> 27) as u8;
    psi_section(0x02, PROGRAM_NUMBER, version, &body)
}

/// A three-letter ISO 639-2 code, lowercased; anything else is not written.
fn iso639(lang: Option<&str>) -> Option<[u8; 3]> {
    match lang?.as_bytes() {
        &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_alphabetic) => {
            Some([a.to_ascii_lowercase(), b.to_ascii_lowercase(), c.to_ascii_lowercase()])
        }
        _ => None,
    }
}

/// A complete long-form PSI section (single section, current) with CRC.
fn psi_section(table_id: u8, id_ext: u16, version: u8, body: &[u8]) -> Vec<u8> {
    // section_length counts everything after itself: 5 bytes of extension
    // header, the body and the CRC. It is 10 bits and limited to 1021 for
    // PSI; callers keep the body within that (`pmt_es_info`), this is only
    // a backstop against writing a corrupt length.
    let body = &body[..body.len().min(PMT_BODY_MAX)];
    let section_length = (5 + body.len() + 4) as u16;
    let mut s = Vec::with_capacity(3 + section_length as usize);
    s.push(table_id);
    s.extend_from_slice(&(0xB000 | section_length).to_be_bytes());
    s.extend_from_slice(&id_ext.to_be_bytes());
    s.push(0xC1 | ((version & 0x1F) << 1)); // reserved, version, current_next=1
    s.push(0); // section_number
    s.push(0); // last_section_number
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// Packetizes one PSI section (pointer_field 0 in the first packet, 0xFF fill
/// after the section as PSI requires). Continuity counters are left 0 and
/// patched by [`put_psi`].
fn psi_packets(pid: u16, section: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PACKET_SIZE * (1 + section.len() / TS_PAYLOAD_SIZE));
    let mut rest = section;
    let mut first = true;
    while first || !rest.is_empty() {
        let pusi = if first { 0x40 } else { 0 };
        out.extend_from_slice(&[SYNC_BYTE, pusi | (pid >> 8) as u8, pid as u8, 0x10]);
        let mut room = TS_PAYLOAD_SIZE;
        if first {
            out.push(0); // pointer_field
            room -= 1;
        }
        let n = rest.len().min(room);
        out.extend_from_slice(&rest[..n]);
        out.resize(out.len() + room - n, 0xFF);
        rest = &rest[n..];
        first = false;
    }
    out
}

/// Appends prebuilt PSI packets, stamping each with the next continuity counter.
fn put_psi(out: &mut BytesMut, packets: &[u8], cc: &mut u8) {
    for packet in packets.chunks_exact(PACKET_SIZE) {
        let start = out.len();
        out.extend_from_slice(packet);
        out[start + 3] = (packet[3] & 0xF0) | *cc;
        *cc = (*cc + 1) & 0x0F;
    }
}

/// A `splice_null()` splice_info_section (ANSI/SCTE 35 §9.6, §9.7.1: no
/// encryption, `pts_adjustment` 0, tier 0xFFF, no descriptors) in one packet
/// of `pid` (pointer_field 0, 0xFF fill; counter left 0 for [`put_psi`]).
fn splice_null_packet(pid: u16) -> [u8; PACKET_SIZE] {
    const SECTION: [u8; 16] = [0xFC, 0x30, 17, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xF0, 0, 0x00, 0, 0];
    let mut p = [0xFF; PACKET_SIZE];
    p[..5].copy_from_slice(&[SYNC_BYTE, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0]);
    p[5..21].copy_from_slice(&SECTION);
    p[21..25].copy_from_slice(&crc32_mpeg2(&SECTION).to_be_bytes());
    p
}

/// Writes one section (pointer_field 0, then the section) with `flags` in an
/// adaptation field of its first packet, over the fewest packets, the last
/// one filled with adaptation-field stuffing. Sections are never spread
/// over more packets than that: GStreamer rejects sections sliced thinly,
/// so PSI PIDs are padded with whole sections instead.
fn write_section(out: &mut BytesMut, pid: u16, cc: &mut u8, section: &[u8], flags: u8) {
    let count = natural_packets(1 + section.len(), af_size(flags));
    write_unit(out, pid, cc, [&[0], section, &[], &[]], flags, None, count);
}

/// How many packets beyond `packets` make a PID whose counter is now `cc`
/// end at counter 15 (0 to 15).
fn cc_padding(cc: u8, packets: usize) -> usize {
    (CC_MODULUS - (usize::from(cc) + packets) % CC_MODULUS) % CC_MODULUS
}

/// Bytes of the adaptation field a first packet needs for `flags`.
fn af_size(flags: u8) -> usize {
    if flags & AF_PCR != 0 {
        AF_PCR_SIZE
    } else if flags != 0 {
        AF_FLAGS_SIZE
    } else {
        0
    }
}

/// Fewest packets that carry `total` bytes of a payload unit whose first
/// packet has an adaptation field of `first_af` bytes.
fn natural_packets(total: usize, first_af: usize) -> usize {
    1 + total
        .saturating_sub(TS_PAYLOAD_SIZE - first_af)
        .div_ceil(TS_PAYLOAD_SIZE)
}

/// Length of the PES header [`write_pes_header`] writes, without stuffing.
fn pes_header_len(with_dts: bool) -> usize {
    if with_dts {
        PES_HEADER_MAX
    } else {
        PES_HEADER_MAX - 5
    }
}

/// Appends `len` bytes of teletext stuffing data units (data_unit_id 0xFF,
/// data_unit_length 0x2C, 44 × 0xFF; EN 300 472 §4). When the frame's data
/// is a data_identifier plus whole data units, as EN 300 472 has it, the
/// padding is whole units too; otherwise it is cut at `len`.
fn teletext_stuffing(buf: &mut Vec<u8>, len: usize) {
    buf.extend((0..len).map(|i| {
        if i % TELETEXT_UNIT_LEN == 1 {
            TELETEXT_UNIT_BODY_LEN
        } else {
            0xFF
        }
    }));
}

/// Appends a PES header to `buf` (ISO/IEC 13818-1 §2.4.3.7). `payload_len`
/// is the number of PES payload bytes that will follow it. DTS is written
/// only `with_dts`; `stuffing` 0xFF bytes (at most 32) end the header.
fn write_pes_header(
    buf: &mut Vec<u8>,
    stream_id: u8,
    pts: i64,
    dts: i64,
    with_dts: bool,
    payload_len: usize,
    stuffing: usize,
) {
    let header_data_len = if with_dts { 10 } else { 5 } + stuffing;
    // PES_packet_length counts the bytes after itself. 0 ("unbounded") is only
    // legal for video, which is also the only thing that can be this large.
    let pes_len = 3 + header_data_len + payload_len;
    let pes_len = if pes_len > 0xFFFF { 0 } else { pes_len as u16 };
    buf.extend_from_slice(&[0, 0, 1, stream_id]);
    buf.extend_from_slice(&pes_len.to_be_bytes());
    // '10', not scrambled, no priority, data_alignment_indicator=1 (every PES
    // starts an AU/frame), no copyright, original.
    buf.push(0x84);
    buf.push(if with_dts { 0xC0 } else { 0x80 });
    buf.push(header_data_len as u8);
    if with_dts {
        buf.extend_from_slice(&encode_timestamp(0x3, pts));
        buf.extend_from_slice(&encode_timestamp(0x1, dts));
    } else {
        buf.extend_from_slice(&encode_timestamp(0x2, pts));
    }
    if stuffing > 0 {
        buf.resize(buf.len() + stuffing, 0xFF);
    }
}

/// The 5-byte PTS/DTS field: 4-bit prefix, 33-bit value (mod 2^33) split
/// 3/15/15 with a marker bit after each part.
fn encode_timestamp(prefix: u8, ts: i64) -> [u8; 5] {
    let v = ts.rem_euclid(TS_WRAP) as u64;
    [
        (prefix << 4) | (((v >> 30) as u8 & 0x07) << 1) | 1,
        (v >> 22) as u8,
        (((v >> 15) as u8 & 0x7F) << 1) | 1,
        (v >> 7) as u8,
        ((v as u8 & 0x7F) << 1) | 1,
    ]
}

/// The 6-byte PCR field: 33-bit base, 6 reserved bits (1), 9-bit extension 0.
fn encode_pcr(base: i64) -> [u8; 6] {
    let b = base.rem_euclid(TS_WRAP) as u64;
    [
        (b >> 25) as u8,
        (b >> 17) as u8,
        (b >> 9) as u8,
        (b >> 1) as u8,
        (((b & 1) as u8) << 7) | 0x7E,
        0,
    ]
}

/// Packetizes one payload unit (a PES, or pointer_field + section) given as
/// consecutive parts, over exactly `count` packets: at least
/// [`natural_packets`], at most one per payload byte. The first packet
/// carries PUSI and an adaptation field with `flags` (and the PCR when
/// `pcr` is given, with [`AF_PCR`] in `flags`). Packets are filled in order,
/// each as full as the bytes left allow while keeping one byte for every
/// packet after it; what a packet lacks is adaptation-field stuffing, so
/// with the natural count only the last one is stuffed.
#[inline(always)]
fn write_unit(out: &mut BytesMut, pid: u16, cc: &mut u8, parts: [&[u8]; 4], flags: u8, pcr: Option<i64>, count: usize) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let first_af = af_size(flags);
    let natural = natural_packets(total, first_af);
    debug_assert!(count >= natural && count <= total.max(1));
    // Nearly every unit has its natural count: that case gets a loop without
    // the spreading arithmetic (a measurable share of the per-packet work).
    if count == natural {
        fill_packets::<false>(out, pid, cc, parts, total, first_af, flags, pcr, count);
    } else {
        fill_packets::<true>(out, pid, cc, parts, total, first_af, flags, pcr, count);
    }
}

/// The packet loop of [`write_unit`]; without `SPREAD`, `count` must be the
/// natural count.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fill_packets<const SPREAD: bool>(
    out: &mut BytesMut,
    pid: u16,
    cc: &mut u8,
    parts: [&[u8]; 4],
    total: usize,
    first_af: usize,
    flags: u8,
    pcr: Option<i64>,
    count: usize,
) {
    let start = out.len();
    // Grow once, then fill packets in place: every write below is a slice
    // copy into a fixed 188-byte packet, which the compiler inlines, instead
    // of several bounds-and-capacity-checked appends per packet. The zero fill
    // costs far less than what it saves.
    out.resize(start + count * PACKET_SIZE, 0);
    let mut parts = parts.into_iter().filter(|p| !p.is_empty());
    let mut cur: &[u8] = parts.next().unwrap_or_default();
    let mut remaining = total;
    for (i, pkt) in out[start..].chunks_exact_mut(PACKET_SIZE).enumerate() {
        let first = i == 0;
        let af_fixed = if first { first_af } else { 0 };
        let room = TS_PAYLOAD_SIZE - af_fixed;
        let n = if SPREAD {
            room.min(remaining.saturating_sub(count - i - 1))
        } else {
            room.min(remaining)
        };
        let af_len = af_fixed + (room - n); // whole adaptation field incl. its length byte
        let pusi = if first { 0x40 } else { 0 };
        let afc = if af_len > 0 { 0x30 } else { 0x10 };
        pkt[..4].copy_from_slice(&[SYNC_BYTE, pusi | (pid >> 8) as u8, pid as u8, afc | *cc]);
        *cc = (*cc + 1) & 0x0F;
        let (af, payload) = pkt[4..].split_at_mut(af_len);
        if let Some((len, rest)) = af.split_first_mut() {
            // A single stuffing byte is just adaptation_field_length 0 (no flags).
            *len = (af_len - 1) as u8;
            if let Some((field, rest)) = rest.split_first_mut() {
                *field = if first { flags } else { 0 };
                let mut stuffing = rest;
                if let (true, Some(base)) = (first, pcr) {
                    let (field, tail) = stuffing.split_at_mut(6);
                    field.copy_from_slice(&encode_pcr(base));
                    stuffing = tail;
                }
                stuffing.fill(0xFF);
            }
        }
        let mut dst = payload;
        while !dst.is_empty() {
            if cur.is_empty() {
                // `total` counted every part, so one is left while room is.
                match parts.next() {
                    Some(p) => cur = p,
                    None => break,
                }
            }
            let take = dst.len().min(cur.len());
            let (head, tail) = dst.split_at_mut(take);
            head.copy_from_slice(&cur[..take]);
            dst = tail;
            cur = &cur[take..];
        }
        remaining -= n;
    }
}
/// What the muxer needs to know about the start of an access unit.
struct AuScan {
    /// When the AU starts with an AUD: the offset where the NAL after it
    /// begins (its start code included), i.e. where parameter sets go.
    aud_end: Option<usize>,
    /// Bit `t` set if a NAL unit of type `t` occurs before the first VCL NAL.
    present: u64,
}

fn nal_type(codec: Codec, header: u8) -> u8 {
    match codec {
        Codec::H265 => (header >> 1) & 0x3F,
        _ => header & 0x1F,
    }
}

/// Scans the NAL units of `au` up to the first VCL NAL (parameter sets must
/// precede it, so nothing after it matters). Without `deep` only the first
/// NAL is looked at, which is all a non-keyframe needs (the AUD check), so
/// the common case costs O(1) instead of a pass over the frame.
fn scan_au(au: &[u8], codec: Codec, deep: bool) -> AuScan {
    // AUD type, and VCL NAL types (slices) that end the scan.
    let (aud, is_vcl): (u8, fn(u8) -> bool) = match codec {
        Codec::H265 => (35, |t| t <= 31),
        _ => (9, |t| (1..=5).contains(&t)),
    };
    let mut scan = AuScan {
        aud_end: None,
        present: 0,
    };
    let mut pos = match find_start_code(au, 0) {
        Some(sc) => sc + 3,
        None => return scan,
    };
    let mut first = true;
    while let Some(&header) = au.get(pos) {
        let t = nal_type(codec, header);
        if is_vcl(t) {
            break;
        }
        scan.present |= 1 << t;
        let next = find_start_code(au, pos + 1);
        if first && t == aud {
            // End of the AUD = start of the next start code, including the
            // leading zero byte of a 4-byte one.
            scan.aud_end = Some(match next {
                Some(sc) if sc > pos && au[sc - 1] == 0 => sc - 1,
                Some(sc) => sc,
                None => au.len(),
            });
        }
        if !deep {
            break;
        }
        first = false;
        match next {
            Some(sc) => pos = sc + 3,
            None => break,
        }
    }
    scan
}

/// Offset of the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 2 < data.len() {
        // Skip by 3 when the third byte can't end a start code: the usual
        // fast path of Annex B scanners.
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some(i),
            0 | 1 => i += 1,
            _ => i += 3,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::TrackParams;
    use std::collections::HashMap;
    use std::sync::Arc;

    const SPS: &[u8] = &[0x67, 0x4D, 0x40, 0x1F, 0xEC, 0xA0];
    const PPS: &[u8] = &[0x68, 0xEF, 0xBC, 0x80];
    /// A UTC-ish time beyond 2^33 so wrapping is exercised everywhere.
    const T0: i64 = 1_700_000_000 * CLOCK_HZ;

    fn video_track(id: u16) -> Track {
        Track {
            id,
            codec: Codec::H264,
            params: TrackParams {
                parameter_sets: vec![Bytes::from_static(SPS), Bytes::from_static(PPS)],
                width: 1280,
                height: 720,
                ..Default::default()
            },
        }
    }

    fn aac_track(id: u16, lang: Option<&str>) -> Track {
        Track {
            id,
            codec: Codec::Aac,
            params: TrackParams {
                sample_rate: 48000,
                channels: 2,
                aac_object_type: 2,
                language: lang.map(str::to_owned),
                ..Default::default()
            },
        }
    }

    fn frame(track: u16, dts: i64, pts: i64, keyframe: bool, data: Vec<u8>) -> Frame {
        Frame {
            track,
            dts,
            pts,
            keyframe,
            data: Bytes::from(data),
        }
    }

    fn idr(len: usize) -> Vec<u8> {
        let mut d = vec![0, 0, 0, 1, 0x65];
        d.extend((0..len).map(|i| (i % 251) as u8 | 0x02));
        d
    }

    struct Packet<'a> {
        pid: u16,
        pusi: bool,
        cc: u8,
        af: Option<&'a [u8]>,
        payload: &'a [u8],
    }

    fn packets(ts: &[u8]) -> Vec<Packet<'_>> {
        assert_eq!(ts.len() % PACKET_SIZE, 0, "not a whole number of packets");
        ts.chunks_exact(PACKET_SIZE)
            .map(|p| {
                assert_eq!(p[0], SYNC_BYTE);
                let afc = p[3] >> 4 & 3;
                let (af, payload) = if afc & 2 != 0 {
                    let len = p[4] as usize;
                    assert!(len <= 182, "adaptation field leaves no payload byte");
                    (Some(&p[5..5 + len]), &p[5 + len..])
                } else {
                    (None, &p[4..])
                };
                assert!(afc & 1 != 0, "packet without payload");
                Packet {
                    pid: u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]),
                    pusi: p[1] & 0x40 != 0,
                    cc: p[3] & 0xF,
                    af,
                    payload,
                }
            })
            .collect()
    }

    /// A reassembled PES and the adaptation field of its first packet.
    type Pes = (Vec<u8>, Option<Vec<u8>>);

    /// Reassembled PES packets per PID.
    fn pes_by_pid(ts: &[u8]) -> HashMap<u16, Vec<Pes>> {
        let mut map: HashMap<u16, Vec<Pes>> = HashMap::new();
        for p in packets(ts) {
            if p.pid == PAT_PID || p.pid == PMT_PID {
                continue;
            }
            let list = map.entry(p.pid).or_default();
            if p.pusi {
                list.push((Vec::new(), p.af.map(<[u8]>::to_vec)));
            }
            list.last_mut()
                .expect("PES continuation without start")
                .0
                .extend_from_slice(p.payload);
        }
        map
    }

    fn decode_timestamp(b: &[u8]) -> i64 {
        assert_eq!(b[0] & 1, 1, "marker");
        assert_eq!(b[2] & 1, 1, "marker");
        assert_eq!(b[4] & 1, 1, "marker");
        (i64::from(b[0] >> 1 & 7) << 30)
            | (i64::from(b[1]) << 22)
            | (i64::from(b[2] >> 1) << 15)
            | (i64::from(b[3]) << 7)
            | i64::from(b[4] >> 1)
    }

    /// Splits a PSI packet into its section (pointer_field 0 expected).
    fn section(p: &Packet<'_>) -> Vec<u8> {
        assert!(p.pusi);
        assert_eq!(p.payload[0], 0, "pointer_field");
        let s = &p.payload[1..];
        let len = (usize::from(s[1] & 0x0F) << 8 | usize::from(s[2])) + 3;
        assert!(s[len..].iter().all(|&b| b == 0xFF), "PSI fill must be 0xFF");
        s[..len].to_vec()
    }

    #[test]
    fn pat_and_pmt() {
        let tracks = [video_track(0), aac_track(1, Some("eng")), aac_track(2, None)];
        let mut mux = TsMuxer::new(&tracks);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let ps = packets(&out);
        assert_eq!(ps.len(), 2);
        assert_eq!((ps[0].pid, ps[1].pid), (PAT_PID, 0x1000));

        let pat = section(&ps[0]);
        assert_eq!(crc32_mpeg2(&pat), 0, "PAT CRC");
        assert_eq!(pat[0], 0x00);
        assert_eq!(&pat[8..12], &[0x00, 0x01, 0xF0, 0x00], "program 1 -> PMT 0x1000");

        let pmt = section(&ps[1]);
        assert_eq!(crc32_mpeg2(&pmt), 0, "PMT CRC");
        assert_eq!(pmt[0], 0x02);
        assert_eq!(&pmt[3..5], &[0, 1], "program number");
        assert_eq!(pmt[5] & 1, 1, "current_next");
        assert_eq!(u16::from(pmt[8] & 0x1F) << 8 | u16::from(pmt[9]), 0x100, "PCR PID");
        let mut es = Vec::new();
        let mut i = 12 + (usize::from(pmt[10] & 0x0F) << 8 | usize::from(pmt[11]));
        while i < pmt.len() - 4 {
            let pid = u16::from(pmt[i + 1] & 0x1F) << 8 | u16::from(pmt[i + 2]);
            let n = usize::from(pmt[i + 3] & 0x0F) << 8 | usize::from(pmt[i + 4]);
            es.push((pmt[i], pid, pmt[i + 5..i + 5 + n].to_vec()));
            i += 5 + n;
        }
        assert_eq!(
            es,
            vec![
                (0x1B, 0x100, vec![]),
                (0x0F, 0x101, vec![0x0A, 4, b'e', b'n', b'g', 0]),
                (0x0F, 0x102, vec![]),
            ]
        );
    }

    #[test]
    fn stream_types_and_descriptors() {
        let mk = |id, codec| Track {
            id,
            codec,
            params: TrackParams::default(),
        };
        let tracks = [
            mk(0, Codec::H265),
            mk(1, Codec::MpegAudio),
            mk(2, Codec::Ac3),
            mk(3, Codec::Eac3),
        ];
        let mut out = BytesMut::new();
        TsMuxer::new(&tracks).write_tables(&mut out);
        let pmt = section(&packets(&out)[1]);
        assert_eq!(crc32_mpeg2(&pmt), 0);
        let body = &pmt[12..pmt.len() - 4];
        assert_eq!(
            body,
            &[
                0x24, 0xE1, 0x00, 0xF0, 0, //
                0x03, 0xE1, 0x01, 0xF0, 0, //
                0x81, 0xE1, 0x02, 0xF0, 6, 0x05, 4, b'A', b'C', b'-', b'3', //
                0x87, 0xE1, 0x03, 0xF0, 6, 0x05, 4, b'E', b'A', b'C', b'3',
            ][..]
        );
    }

    #[test]
    fn pmt_version_follows_content() {
        let a = TsMuxer::new(&[video_track(0), aac_track(1, None)]);
        let b = TsMuxer::new(&[video_track(0), aac_track(1, Some("deu"))]);
        let c = TsMuxer::new(&[video_track(0), aac_track(1, None)]);
        assert_eq!(a.pmt.packets, c.pmt.packets);
        assert_ne!(a.pmt.packets[10] & 0x3E, b.pmt.packets[10] & 0x3E, "version differs");
    }

    #[test]
    fn timestamp_encoding_wraps_with_markers() {
        let ts = (5 << 33) + 0x1_2345_6789;
        let b = encode_timestamp(0x3, ts);
        assert_eq!(b[0] >> 4, 0x3);
        assert_eq!(decode_timestamp(&b), 0x1_2345_6789);
        // All ones → every value bit and every marker bit set.
        assert_eq!(encode_timestamp(0x2, TS_WRAP - 1), [0x2F, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(encode_timestamp(0x1, TS_WRAP), [0x11, 0x00, 0x01, 0x00, 0x01]);
        assert_eq!(decode_timestamp(&encode_timestamp(0x1, -1)), TS_WRAP - 1);
    }

    #[test]
    fn pes_header_pts_dts() {
        let mut h = Vec::new();
        let (pts, dts) = (T0 + 7200, T0);
        write_pes_header(&mut h, 0xE0, pts, dts, true, 1000, 0);
        assert_eq!(&h[..4], &[0, 0, 1, 0xE0]);
        assert_eq!(u16::from_be_bytes([h[4], h[5]]), 3 + 10 + 1000);
        assert_eq!((h[6], h[7], h[8]), (0x84, 0xC0, 10));
        assert_eq!(h[9] >> 4, 0x3);
        assert_eq!(h[14] >> 4, 0x1);
        assert_eq!(decode_timestamp(&h[9..14]), pts % TS_WRAP);
        assert_eq!(decode_timestamp(&h[14..19]), dts % TS_WRAP);
        assert!(pts >= TS_WRAP, "test must exercise wrapping");

        h.clear();
        write_pes_header(&mut h, 0xC0, pts, pts, false, 100, 0);
        assert_eq!(h.len(), 14);
        assert_eq!((h[7], h[8], h[9] >> 4), (0x80, 5, 0x2));
        assert_eq!(decode_timestamp(&h[9..14]), pts % TS_WRAP);

        h.clear();
        write_pes_header(&mut h, 0xE0, pts, pts, false, 70_000, 0);
        assert_eq!(&h[4..6], &[0, 0], "oversized video PES is unbounded");
    }

    #[test]
    fn pcr_encoding() {
        let base = 0x1_8000_0001i64;
        let b = encode_pcr(base + 3 * TS_WRAP);
        let decoded = (u64::from(b[0]) << 25)
            | (u64::from(b[1]) << 17)
            | (u64::from(b[2]) << 9)
            | (u64::from(b[3]) << 1)
            | u64::from(b[4] >> 7);
        assert_eq!(decoded as i64, base);
        assert_eq!(b[4] & 0x7E, 0x7E, "reserved bits");
        assert_eq!((b[4] & 1, b[5]), (0, 0), "extension 0");
    }

    #[test]
    fn pcr_and_random_access_on_pcr_track() {
        let tracks = [video_track(0), aac_track(1, None)];
        let mut mux = TsMuxer::new(&tracks);
        let mut out = BytesMut::new();
        mux.write_frame(&frame(0, T0, T0 + 3600, true, idr(1000)), &mut out);
        mux.write_frame(&frame(1, T0, T0, true, vec![0x21; 300]), &mut out);
        mux.write_frame(&frame(0, T0 + 3600, T0 + 3600, false, vec![0, 0, 1, 0x41, 9]), &mut out);
        let pes = pes_by_pid(&out);
        let v = &pes[&0x100];
        let af = v[0].1.as_ref().expect("keyframe has an adaptation field");
        assert_eq!(af[0], 0x50, "random_access + PCR flags");
        let pcr = (i64::from(af[1]) << 25)
            | (i64::from(af[2]) << 17)
            | (i64::from(af[3]) << 9)
            | (i64::from(af[4]) << 1)
            | i64::from(af[5] >> 7);
        assert_eq!(pcr, (T0 - MUX_DELAY) % TS_WRAP);
        let af2 = v[1].1.as_ref().expect("every PCR-track frame has a PCR");
        assert_eq!(af2[0] & 0x50, 0x10, "PCR without random access on a non-keyframe");
        // Audio is not the PCR track: no PCR flag, but random access.
        let a = &pes[&0x101];
        assert_eq!(a[0].1.as_ref().map(|af| af[0]), Some(0x40));
    }

    #[test]
    fn audio_only_pcr_on_audio() {
        let mut mux = TsMuxer::new(&[aac_track(0, None)]);
        assert_eq!(mux.pcr_pid(), 0x100);
        let mut out = BytesMut::new();
        mux.write_frame(&frame(0, T0, T0, true, vec![1; 10]), &mut out);
        let pes = pes_by_pid(&out);
        assert_eq!(pes[&0x100][0].1.as_ref().map(|af| af[0] & 0x10), Some(0x10));
    }

    #[test]
    fn continuity_counters_per_pid() {
        let tracks = [video_track(0), aac_track(1, None)];
        let mut mux = TsMuxer::new(&tracks);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        for i in 0..40 {
            let t = T0 + i * 3600;
            mux.write_frame(&frame(0, t, t, i % 20 == 0, idr(700)), &mut out);
            mux.write_frame(&frame(1, t, t, true, vec![0x11; 250]), &mut out);
        }
        let mut next: HashMap<u16, u8> = HashMap::new();
        let mut seen_wrap = false;
        for p in packets(&out) {
            let expect = next.get(&p.pid).copied().unwrap_or(0);
            assert_eq!(p.cc, expect, "CC on PID {:#x}", p.pid);
            seen_wrap |= p.cc == 15;
            next.insert(p.pid, (p.cc + 1) & 0xF);
        }
        assert!(seen_wrap);
        // PAT/PMT: explicit tables (the first keyframe follows them
        // directly), then at 0.4 s (frame 10), the keyframe at 0.8 s (20)
        // and 1.2 s (30).
        assert_eq!(next[&PAT_PID], 4);
    }

    #[test]
    fn last_packet_stuffed_in_adaptation_field() {
        // PES sizes around the boundaries: 1 and 2 bytes of stuffing, exact fit, etc.
        for len in [
            0usize, 100, 160, 161, 162, 163, 164, 165, 166, 340, 345, 346, 347, 348, 1000,
        ] {
            let mut mux = TsMuxer::new(&[aac_track(0, None)]);
            let mut out = BytesMut::new();
            mux.write_tables(&mut out);
            let data: Vec<u8> = (0..len).map(|i| (i as u8) | 1).collect();
            mux.write_frame(&frame(0, T0, T0, false, data.clone()), &mut out);
            assert_eq!(out.len() % PACKET_SIZE, 0);
            let pes = pes_by_pid(&out);
            let (payload, _) = &pes[&0x100][0];
            // 14-byte PES header, 7-byte ADTS, data: nothing else, no 0xFF fill.
            assert_eq!(payload.len(), 14 + 7 + len, "len {len}");
            assert_eq!(&payload[21..], &data[..]);
            assert_eq!(
                usize::from(u16::from_be_bytes([payload[4], payload[5]])),
                payload.len() - 6,
                "exact audio PES_packet_length"
            );
            for p in packets(&out) {
                if let Some(af) = p.af {
                    let stuffing = af.iter().skip(if af.is_empty() { 0 } else { 1 });
                    let pcr = if af.first().is_some_and(|f| f & 0x10 != 0) {
                        6
                    } else {
                        0
                    };
                    assert!(stuffing.skip(pcr).all(|&b| b == 0xFF));
                }
            }
        }
    }

    #[test]
    fn output_is_packet_aligned() {
        let tracks = [video_track(0), aac_track(1, None)];
        let mut mux = TsMuxer::new(&tracks);
        let mut out = BytesMut::new();
        for len in 0..600 {
            let t = T0 + len as i64 * 10;
            mux.write_frame(&frame((len % 2) as u16, t, t, len % 97 == 0, idr(len)), &mut out);
            assert_eq!(out.len() % PACKET_SIZE, 0, "after frame of {len} bytes");
        }
    }

    #[test]
    fn mux_segment_is_deterministic() {
        let tracks: Arc<[Track]> = vec![video_track(0), aac_track(1, Some("eng"))].into();
        let mut frames = Vec::new();
        for i in 0..50i64 {
            let t = T0 + i * 3600;
            frames.push(frame(0, t, t + 7200, i % 25 == 0, idr(500 + i as usize * 37)));
            frames.push(frame(1, t, t, true, vec![i as u8; 200 + i as usize]));
        }
        let seg = Segment {
            seq: 1,
            start: T0,
            duration: 50 * 3600,
            discontinuity: false,
            target_duration: 0,
            tracks,
            frames,
        };
        let a = mux_segment(&seg);
        let b = mux_segment(&seg.clone());
        assert_eq!(a, b);
        assert_eq!(a.len() % PACKET_SIZE, 0);
        let ps = packets(&a);
        assert_eq!((ps[0].pid, ps[1].pid), (PAT_PID, PMT_PID));
        // Fresh muxer: every PID's CC starts at 0.
        let mut firsts: HashMap<u16, u8> = HashMap::new();
        for p in &ps {
            firsts.entry(p.pid).or_insert(p.cc);
        }
        assert!(firsts.values().all(|&cc| cc == 0));
        // Tables once at the start (not again before the first keyframe),
        // every 0.4 s of video DTS (frames 10, 20, 35, 45) and before the
        // second keyframe (25); then whole copies up to counter 15, each
        // packet a complete section (GStreamer rejects thinner slices).
        let pat: Vec<&Packet<'_>> = ps.iter().filter(|p| p.pid == PAT_PID).collect();
        assert_eq!(pat.len(), 16, "PAT counter padded to 15");
        let mux = TsMuxer::new(&seg.tracks);
        for p in &pat {
            assert_eq!(section(p), mux.pat.section, "a whole PAT in every packet");
        }
        let pmt: Vec<&Packet<'_>> = ps.iter().filter(|p| p.pid == PMT_PID).collect();
        assert_eq!(pmt.len(), 16, "PMT counter padded to 15");
        for p in &pmt {
            assert_eq!(section(p), mux.pmt.section, "a whole PMT in every packet");
        }
        let first_padding = ps.iter().rposition(|p| p.pid == 0x100).unwrap_or_default();
        let before = ps[..first_padding].iter().filter(|p| p.pid == PAT_PID).count();
        assert_eq!(before, 6, "PAT at 0, 0.4, 0.8, 1.0 (keyframe), 1.4 and 1.8 s");
        // Capacity estimate really is an upper bound (no realloc in mux_segment).
        assert!(a.len() <= mux.segment_size_bound(&seg.frames));
    }

    #[test]
    fn aud_and_parameter_sets_inserted_into_bare_keyframe() {
        let mut mux = TsMuxer::new(&[video_track(0)]);
        let mut out = BytesMut::new();
        let idr = idr(50);
        mux.write_frame(&frame(0, T0, T0, true, idr.clone()), &mut out);
        let p = &pes_by_pid(&out)[&0x100][0].0;
        let mut expect = AUD_H264.to_vec();
        expect.extend_from_slice(&START_CODE);
        expect.extend_from_slice(SPS);
        expect.extend_from_slice(&START_CODE);
        expect.extend_from_slice(PPS);
        expect.extend_from_slice(&idr);
        assert_eq!(&p[14..], &expect[..]);
    }

    #[test]
    fn parameter_sets_go_after_existing_aud() {
        let mut mux = TsMuxer::new(&[video_track(0)]);
        let mut out = BytesMut::new();
        let mut au = vec![0, 0, 0, 1, 0x09, 0x10, 0, 0, 1, 0x06, 5, 1, 0x80];
        au.extend_from_slice(&idr(20));
        mux.write_frame(&frame(0, T0, T0, true, au.clone()), &mut out);
        let p = &pes_by_pid(&out)[&0x100][0].0;
        let mut expect = au[..6].to_vec(); // the stream's own AUD, kept
        expect.extend_from_slice(&START_CODE);
        expect.extend_from_slice(SPS);
        expect.extend_from_slice(&START_CODE);
        expect.extend_from_slice(PPS);
        expect.extend_from_slice(&au[6..]);
        assert_eq!(&p[14..], &expect[..]);
    }

    #[test]
    fn complete_keyframe_and_non_keyframe_untouched_but_aud() {
        let mut mux = TsMuxer::new(&[video_track(0)]);
        let mut out = BytesMut::new();
        let mut au = vec![0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1];
        au.extend_from_slice(SPS);
        au.extend_from_slice(&[0, 0, 0, 1]);
        au.extend_from_slice(PPS);
        au.extend_from_slice(&idr(30));
        let p_frame = vec![0, 0, 1, 0x41, 0x9A, 0x22];
        mux.write_frame(&frame(0, T0, T0, true, au.clone()), &mut out);
        mux.write_frame(&frame(0, T0 + 3600, T0 + 3600, false, p_frame.clone()), &mut out);
        let pes = &pes_by_pid(&out)[&0x100];
        assert_eq!(&pes[0].0[14..], &au[..]);
        let mut expect = AUD_H264.to_vec();
        expect.extend_from_slice(&p_frame);
        assert_eq!(&pes[1].0[14..], &expect[..]);
    }

    #[test]
    fn h265_aud_and_missing_parameter_sets() {
        let vps: &[u8] = &[0x40, 0x01, 0x0C];
        let sps: &[u8] = &[0x42, 0x01, 0x01];
        let pps: &[u8] = &[0x44, 0x01, 0xC1];
        let track = Track {
            id: 0,
            codec: Codec::H265,
            params: TrackParams {
                parameter_sets: [vps, sps, pps].map(Bytes::copy_from_slice).to_vec(),
                ..Default::default()
            },
        };
        let mut mux = TsMuxer::new(&[track]);
        let mut out = BytesMut::new();
        // Has its own SPS but no VPS/PPS: only those two are added.
        let mut au = vec![0, 0, 0, 1];
        au.extend_from_slice(sps);
        au.extend_from_slice(&[0, 0, 1, 0x26, 0x01, 0xAF]); // IDR_W_RADL
        mux.write_frame(&frame(0, T0, T0, true, au.clone()), &mut out);
        let p = &pes_by_pid(&out)[&0x100][0].0;
        let mut expect = AUD_H265.to_vec();
        for ps in [vps, pps] {
            expect.extend_from_slice(&START_CODE);
            expect.extend_from_slice(ps);
        }
        expect.extend_from_slice(&au);
        assert_eq!(&p[14..], &expect[..]);
    }

    #[test]
    fn tables_precede_keyframes_only() {
        let mut mux = TsMuxer::new(&[video_track(0), aac_track(1, None)]);
        let mut out = BytesMut::new();
        mux.write_frame(&frame(1, T0, T0, true, vec![1; 10]), &mut out); // first frame → tables
        mux.write_frame(&frame(0, T0, T0, true, idr(10)), &mut out); // keyframe → tables
        mux.write_frame(&frame(0, T0 + 1, T0 + 1, false, idr(10)), &mut out);
        mux.write_frame(&frame(1, T0 + 1, T0 + 1, true, vec![1; 10]), &mut out);
        let pids: Vec<u16> = packets(&out).iter().map(|p| p.pid).collect();
        assert_eq!(pids, [0, 0x1000, 0x101, 0, 0x1000, 0x100, 0x100, 0x101]);
    }

    /// DTS (mod 2^33) of the PCR-PID frames that PAT packets precede, in
    /// order, and the DTS of the last frame on that PID.
    fn pat_times(ts: &[u8], pcr_pid: u16) -> (Vec<i64>, i64) {
        let mut times = Vec::new();
        let mut pending = false;
        let mut last = 0;
        for p in packets(ts) {
            if p.pid == PAT_PID {
                pending = true;
            } else if p.pid == pcr_pid && p.pusi {
                let h = p.payload;
                let at = if h[7] & 0xC0 == 0xC0 { 14 } else { 9 };
                last = decode_timestamp(&h[at..at + 5]);
                if std::mem::take(&mut pending) {
                    times.push(last);
                }
            }
        }
        (times, last)
    }

    /// A 10 s GOP (one keyframe in 250 frames at 25 fps) with audio: PAT and
    /// PMT still come at least every 0.5 s of DTS, in a segment and in
    /// continuous output (ETSI TR 101 290 1.3).
    #[test]
    fn tables_repeat_within_half_a_second_in_long_gops() {
        let tracks: Arc<[Track]> = vec![video_track(0), aac_track(1, None)].into();
        let mut frames = Vec::new();
        for i in 0..250i64 {
            let t = T0 + i * 3600;
            frames.push(frame(0, t, t + 7200, i == 0, idr(300)));
            for j in 0..2 {
                let ta = t + j * 1920;
                frames.push(frame(1, ta, ta, true, vec![0x21; 100]));
            }
        }
        let seg = mk_segment(tracks.to_vec(), frames.clone(), false);
        let mut mux = TsMuxer::new(&tracks);
        let mut continuous = BytesMut::new();
        for _ in 0..2 {
            for f in &frames {
                let mut f = f.clone();
                f.dts += 250 * 3600;
                f.pts += 250 * 3600;
                mux.write_frame(&f, &mut continuous);
            }
        }
        for (what, ts) in [("segment", &mux_segment(&seg)[..]), ("continuous", &continuous[..])] {
            let (times, last) = pat_times(ts, 0x100);
            assert!(times.len() >= 20, "{what}: {} PATs in 10 s", times.len());
            for w in times.windows(2) {
                assert!(w[1] - w[0] <= CLOCK_HZ / 2, "{what}: PAT gap {} ticks", w[1] - w[0]);
            }
            assert!(
                last - times[times.len() - 1] <= CLOCK_HZ / 2,
                "{what}: no PAT at the end"
            );
            let pmts = packets(ts).iter().filter(|p| p.pid == PMT_PID && p.pusi).count();
            let pats = packets(ts).iter().filter(|p| p.pid == PAT_PID && p.pusi).count();
            assert_eq!(pmts, pats, "{what}: a PMT with every PAT");
        }
        // Keyframes still get the tables right before them.
        let ps = packets(&continuous);
        let keys: Vec<usize> = (0..ps.len())
            .filter(|&i| ps[i].pid == 0x100 && af_flags(&ps[i]) & AF_RANDOM_ACCESS != 0)
            .collect();
        assert_eq!(keys.len(), 2);
        for key in keys {
            assert!(key >= 2 && ps[key - 2].pid == PAT_PID && ps[key - 1].pid == PMT_PID);
        }
    }

    #[test]
    fn audio_only_tables_repeat() {
        let mut mux = TsMuxer::new(&[aac_track(0, None)]);
        let mut out = BytesMut::new();
        for i in 0..50 {
            let t = T0 + i * 1920; // 1024 samples at 48 kHz
            mux.write_frame(&frame(0, t, t, true, vec![1; 10]), &mut out);
        }
        // 50 frames span 1.07 s: tables at 0, 0.5 s and 1.0 s.
        let pat = packets(&out).iter().filter(|p| p.pid == PAT_PID).count();
        assert_eq!(pat, 3);
    }

    #[test]
    fn unknown_tracks_and_bad_ids_are_dropped() {
        let mut mux = TsMuxer::new(&[video_track(0x1F00), aac_track(1, None)]);
        assert_eq!(mux.pid(0), None);
        assert_eq!(mux.pid(1), Some(0x101));
        assert_eq!(mux.pcr_pid(), 0x101);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let before = out.len();
        mux.write_frame(&frame(0, T0, T0, true, idr(10)), &mut out);
        mux.write_frame(&frame(7, T0, T0, true, idr(10)), &mut out);
        assert_eq!(out.len(), before);
    }

    #[test]
    fn scan_handles_garbage() {
        for data in [&[][..], &[0], &[0, 0, 1], &[0, 0, 0, 1, 0x09], &[0xFF; 9]] {
            let _ = scan_au(data, Codec::H264, true);
            let _ = scan_au(data, Codec::H265, true);
        }
        let s = scan_au(&[0, 0, 0, 1, 0x09, 0xF0], Codec::H264, true);
        assert_eq!(s.aud_end, Some(6));
        assert_eq!(find_start_code(&[5, 0, 0, 0, 1], 0), Some(2));
    }

    // -----------------------------------------------------------------------
    // Continuity across segments, discontinuities, subtitles, SCTE-35,
    // per-track muxing.

    fn mk_track(id: u16, codec: Codec, language: Option<&str>, descriptors: &[u8]) -> Track {
        Track {
            id,
            codec,
            params: TrackParams {
                language: language.map(str::to_owned),
                descriptors: Bytes::copy_from_slice(descriptors),
                ..Default::default()
            },
        }
    }

    fn mk_segment(tracks: Vec<Track>, frames: Vec<Frame>, discontinuity: bool) -> Segment {
        Segment {
            seq: 7,
            start: T0,
            duration: 2 * CLOCK_HZ,
            discontinuity,
            target_duration: 2,
            tracks: tracks.into(),
            frames,
        }
    }

    /// A `splice_info_section` with a time_signal(pts_time) command and one
    /// splice descriptor, CRC included; `encrypted` sets encrypted_packet.
    fn time_signal(pts_time: i64, adj: i64, encrypted: bool) -> Vec<u8> {
        let mut s = vec![0xFC, 0, 0, 0];
        s.push(((adj >> 32) & 1) as u8 | if encrypted { 0x80 } else { 0 });
        s.extend_from_slice(&(adj as u32).to_be_bytes());
        s.extend_from_slice(&[0, 0xFF, 0xF0, 5, 0x06]); // cw_index, tier, command length 5, time_signal
        s.push(0xFE | ((pts_time >> 32) & 1) as u8);
        s.extend_from_slice(&(pts_time as u32).to_be_bytes());
        s.extend_from_slice(&[0, 6, 0x00, 4, b'C', b'U', b'E', b'I']); // avail_descriptor-like entry
        let len = s.len() - 3 + 4;
        s[1] = 0x30 | (len >> 8) as u8;
        s[2] = len as u8;
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    /// Complete PSI sections per PID on PAT, PMT and `more` PIDs
    /// (pointer_field 0 expected on each start).
    fn sections_by_pid(ts: &[u8], more: &[u16]) -> HashMap<u16, Vec<Vec<u8>>> {
        let mut map: HashMap<u16, Vec<Vec<u8>>> = HashMap::new();
        for p in packets(ts) {
            if p.pid != PAT_PID && p.pid != PMT_PID && !more.contains(&p.pid) {
                continue;
            }
            let list = map.entry(p.pid).or_default();
            if p.pusi {
                assert_eq!(p.payload[0], 0, "pointer_field");
                list.push(p.payload[1..].to_vec());
            } else {
                list.last_mut()
                    .expect("section continuation without start")
                    .extend_from_slice(p.payload);
            }
        }
        for list in map.values_mut() {
            for s in list.iter_mut() {
                let len = (usize::from(s[1] & 0x0F) << 8 | usize::from(s[2])) + 3;
                assert!(s[len..].iter().all(|&b| b == 0xFF), "PSI fill must be 0xFF");
                s.truncate(len);
            }
        }
        map
    }

    /// (PCR PID, program_info descriptors, [(stream_type, PID, ES descriptors)]).
    type PmtView = (u16, Vec<u8>, Vec<(u8, u16, Vec<u8>)>);

    fn parse_pmt(pmt: &[u8]) -> PmtView {
        assert_eq!(pmt[0], 0x02);
        assert_eq!(crc32_mpeg2(pmt), 0, "PMT CRC");
        let pcr = u16::from(pmt[8] & 0x1F) << 8 | u16::from(pmt[9]);
        let pi_len = usize::from(pmt[10] & 0x0F) << 8 | usize::from(pmt[11]);
        let program_info = pmt[12..12 + pi_len].to_vec();
        let mut es = Vec::new();
        let mut i = 12 + pi_len;
        while i < pmt.len() - 4 {
            let pid = u16::from(pmt[i + 1] & 0x1F) << 8 | u16::from(pmt[i + 2]);
            let n = usize::from(pmt[i + 3] & 0x0F) << 8 | usize::from(pmt[i + 4]);
            es.push((pmt[i], pid, pmt[i + 5..i + 5 + n].to_vec()));
            i += 5 + n;
        }
        assert_eq!(i, pmt.len() - 4, "ES loop ends at the CRC");
        (pcr, program_info, es)
    }

    fn pmt_of(ts: &[u8]) -> PmtView {
        let sections = sections_by_pid(ts, &[]);
        let pmts = &sections[&PMT_PID];
        assert!(pmts.windows(2).all(|w| w[0] == w[1]), "every PMT copy is the same");
        parse_pmt(&pmts[0])
    }

    /// Asserts that on every PID the counters of `ts` start at 0 and run on
    /// without a gap; returns the packet count per PID.
    fn assert_cc_continuous(ts: &[u8]) -> HashMap<u16, usize> {
        let mut counts: HashMap<u16, usize> = HashMap::new();
        for p in packets(ts) {
            let n = counts.entry(p.pid).or_default();
            assert_eq!(usize::from(p.cc), *n % 16, "CC of PID {:#x} at its packet {n}", p.pid);
            *n += 1;
        }
        counts
    }

    fn af_flags(p: &Packet<'_>) -> u8 {
        p.af.and_then(|af| af.first().copied()).unwrap_or(0)
    }

    #[test]
    fn every_pid_ends_each_segment_at_cc_15() {
        let tracks = vec![video_track(0), aac_track(1, None), aac_track(2, Some("deu"))];
        // Sizes chosen so that the natural counts are all over the place.
        for n in [1i64, 2, 3, 7, 16, 33] {
            let mut frames = Vec::new();
            for i in 0..n {
                let t = T0 + i * 3600;
                frames.push(frame(0, t, t, i % 5 == 0, idr(100 + i as usize * 451)));
                frames.push(frame(1, t, t, true, vec![0x21; 10 + i as usize * 13]));
            }
            // Track 2 has a single tiny frame: its last PES is also its first.
            frames.push(frame(2, T0, T0, true, vec![]));
            let ts = mux_segment(&mk_segment(tracks.clone(), frames, false));
            let counts = assert_cc_continuous(&ts);
            for (pid, count) in &counts {
                assert_eq!(count % 16, 0, "PID {pid:#x} has {count} packets");
            }
            assert_eq!(counts.len(), 5, "PAT, PMT and three PIDs");
            // Padding never puts stuffing inside a PES payload.
            let pes = pes_by_pid(&ts);
            for list in pes.values() {
                for (data, _) in list {
                    let len = usize::from(u16::from_be_bytes([data[4], data[5]]));
                    assert!(len == 0 || len == data.len() - 6);
                }
            }
            // The tiny audio PES got PES header stuffing only if it needed it.
            let (tiny, _) = &pes[&0x102][0];
            assert_eq!(tiny.len(), 9 + usize::from(tiny[8]) + 7, "header + ADTS, no data");
            assert!(tiny[9 + 5..9 + usize::from(tiny[8])].iter().all(|&b| b == 0xFF));
        }
    }

    #[test]
    fn tiny_pes_spread_over_16_packets_gets_header_stuffing() {
        // One MPEG audio frame with no data: a 14-byte PES that must cover
        // 16 packets (15 more than it needs), so 2 stuffing bytes are added.
        let tracks = vec![mk_track(0, Codec::MpegAudio, None, &[])];
        let frames = vec![frame(0, T0, T0, false, vec![])];
        let ts = mux_segment(&mk_segment(tracks, frames, false));
        let counts = assert_cc_continuous(&ts);
        assert_eq!(counts[&0x100], 16);
        let (pes, _) = &pes_by_pid(&ts)[&0x100][0];
        assert_eq!(pes.len(), 16);
        assert_eq!(pes[8], 5 + 2, "PES_header_data_length with 2 stuffing bytes");
        assert_eq!(&pes[14..], &[0xFF, 0xFF]);
        assert_eq!(u16::from_be_bytes([pes[4], pes[5]]), 10);
    }

    #[test]
    fn segment_discontinuity_marks_first_pcr_packet() {
        let tracks = vec![video_track(0), aac_track(1, None)];
        let mut frames = Vec::new();
        for i in 0..10 {
            let t = T0 + i * 3600;
            frames.push(frame(1, t, t, true, vec![1; 300]));
            frames.push(frame(0, t, t, i == 0, idr(3000)));
        }
        let plain = mux_segment(&mk_segment(tracks.clone(), frames.clone(), false));
        let disc = mux_segment(&mk_segment(tracks, frames, true));
        assert!(packets(&plain).iter().all(|p| af_flags(p) & AF_DISCONTINUITY == 0));
        let ps = packets(&disc);
        let marked: Vec<&Packet<'_>> = ps.iter().filter(|p| af_flags(p) & AF_DISCONTINUITY != 0).collect();
        assert_eq!(marked.len(), 1, "only one packet carries the indicator");
        let first_pcr = ps.iter().find(|p| p.pid == 0x100).expect("video packets");
        assert!(std::ptr::eq(marked[0].payload, first_pcr.payload));
        assert_eq!(af_flags(first_pcr), AF_DISCONTINUITY | AF_RANDOM_ACCESS | AF_PCR);
        // Otherwise the same packets.
        assert_eq!(plain.len(), disc.len());
    }

    #[test]
    fn mark_discontinuity_flags_next_packet_of_every_pid() {
        let tracks = [
            video_track(0),
            aac_track(1, None),
            mk_track(2, Codec::Scte35, None, &[]),
        ];
        let mut mux = TsMuxer::new(&tracks);
        let mut out = BytesMut::new();
        mux.write_frame(&frame(0, T0, T0, true, idr(500)), &mut out);
        mux.write_frame(&frame(1, T0, T0, true, vec![1; 100]), &mut out);
        assert!(packets(&out).iter().all(|p| af_flags(p) & AF_DISCONTINUITY == 0));
        mux.mark_discontinuity();
        let before = out.len();
        // Audio first: PAT/PMT are only due with the next video keyframe.
        mux.write_frame(&frame(1, T0 + 1920, T0 + 1920, true, vec![1; 400]), &mut out);
        mux.write_frame(&frame(0, T0 + 3600, T0 + 3600, true, idr(500)), &mut out);
        mux.write_frame(
            &frame(2, T0 + 3600, T0 + 9000, true, time_signal(5, 0, false)),
            &mut out,
        );
        mux.write_frame(&frame(0, T0 + 7200, T0 + 7200, true, idr(500)), &mut out);
        let after = &out[before..];
        let mut seen: HashMap<u16, usize> = HashMap::new();
        for p in packets(after) {
            let n = seen.entry(p.pid).or_default();
            let marked = af_flags(&p) & AF_DISCONTINUITY != 0;
            assert_eq!(marked, *n == 0, "PID {:#x} packet {n}", p.pid);
            *n += 1;
        }
        assert_eq!(seen.len(), 5, "PAT, PMT, video, audio, SCTE-35");
        // The marked tables are still well-formed sections.
        let sections = sections_by_pid(after, &[]);
        assert_eq!(sections[&PAT_PID][0], mux.pat.section);
        assert_eq!(sections[&PMT_PID][0], mux.pmt.section);
        // The flag keeps random access and PCR on the video PID.
        let v = packets(after)
            .into_iter()
            .find(|p| p.pid == 0x100)
            .map(|p| af_flags(&p));
        assert_eq!(v, Some(AF_DISCONTINUITY | AF_RANDOM_ACCESS | AF_PCR));
    }

    /// A teletext PES payload: data_identifier 0x10 and `units` EBU data
    /// units (data_unit_id 0x02, length 0x2C).
    fn teletext_payload(units: usize) -> Vec<u8> {
        let mut d = vec![0x10];
        for u in 0..units {
            d.extend_from_slice(&[0x02, 0x2C]);
            d.extend((0..44).map(|i| (u * 7 + i) as u8));
        }
        d
    }

    /// Teletext descriptor: English initial page 100 and German subtitles 888.
    const TELETEXT_DESC: &[u8] = &[0x56, 10, b'e', b'n', b'g', 0x09, 0x00, b'd', b'e', b'u', 0x10, 0x88];

    #[test]
    fn teletext_pes_fills_whole_packets() {
        let tracks = [video_track(0), mk_track(1, Codec::Teletext, Some("eng"), TELETEXT_DESC)];
        // 0 units: 46 payload bytes; 3 units fit one packet exactly
        // (45 + 1 + 138 = 184); 4 need two; 20 need 6.
        for (units, n) in [(0usize, 1usize), (3, 1), (4, 2), (20, 6)] {
            let mut mux = TsMuxer::new(&tracks);
            let mut out = BytesMut::new();
            mux.write_tables(&mut out);
            let data = teletext_payload(units);
            // keyframe: teletext still gets no adaptation field.
            mux.write_frame(&frame(1, T0, T0 + 1800, true, data.clone()), &mut out);
            let ps: Vec<Packet<'_>> = packets(&out).into_iter().filter(|p| p.pid == 0x101).collect();
            assert_eq!(ps.len(), n, "{units} units");
            assert!(
                ps.iter().all(|p| p.af.is_none()),
                "teletext packets carry no adaptation field"
            );
            let (pes, _) = &pes_by_pid(&out)[&0x101][0];
            assert_eq!(pes.len(), n * 184);
            assert_eq!(&pes[..4], &[0, 0, 1, 0xBD], "private_stream_1");
            assert_eq!(usize::from(u16::from_be_bytes([pes[4], pes[5]])), n * 184 - 6);
            assert_eq!(pes[7], 0x80, "PTS only");
            assert_eq!(pes[8], 0x24, "PES_header_data_length");
            assert_eq!(decode_timestamp(&pes[9..14]), (T0 + 1800) % TS_WRAP);
            assert!(pes[14..45].iter().all(|&b| b == 0xFF), "header stuffing");
            assert_eq!(&pes[45..45 + data.len()], &data[..]);
            // The rest is whole stuffing data units.
            let pad = &pes[45 + data.len()..];
            assert_eq!(pad.len() % 46, 0);
            for unit in pad.chunks(46) {
                assert_eq!(&unit[..2], &[0xFF, 0x2C]);
                assert!(unit[2..].iter().all(|&b| b == 0xFF));
            }
        }
    }

    #[test]
    fn teletext_counter_padding_adds_whole_stuffing_packets() {
        let tracks = vec![video_track(0), mk_track(1, Codec::Teletext, None, TELETEXT_DESC)];
        let mut frames = Vec::new();
        for i in 0..5 {
            let t = T0 + i * 3600;
            frames.push(frame(0, t, t, i == 0, idr(800)));
            frames.push(frame(1, t, t, true, teletext_payload(3 + i as usize)));
        }
        let ts = mux_segment(&mk_segment(tracks, frames, false));
        let counts = assert_cc_continuous(&ts);
        assert_eq!(counts[&0x101], 16);
        let ps = packets(&ts);
        assert!(ps.iter().filter(|p| p.pid == 0x101).all(|p| p.af.is_none()));
        let pes = &pes_by_pid(&ts)[&0x101];
        // Natural: 1+2+2+2+2 = 9 packets, the last PES grows by 7 to 9 packets.
        let sizes: Vec<usize> = pes.iter().map(|(d, _)| d.len() / 184).collect();
        assert_eq!(sizes, [1, 2, 2, 2, 9]);
        for (d, _) in pes {
            assert_eq!(usize::from(u16::from_be_bytes([d[4], d[5]])), d.len() - 6);
        }
    }

    #[test]
    fn oversized_or_empty_teletext_is_dropped() {
        let mut mux = TsMuxer::new(&[mk_track(0, Codec::Teletext, None, TELETEXT_DESC)]);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let before = out.len();
        mux.write_frame(&frame(0, T0, T0, true, vec![0xFF; 65_460]), &mut out);
        mux.write_frame(&frame(0, T0, T0, true, vec![]), &mut out);
        assert_eq!(out.len(), before);
        mux.write_frame(&frame(0, T0, T0, true, vec![0xFF; 65_459]), &mut out);
        assert_eq!(out.len() - before, 356 * PACKET_SIZE, "the largest teletext PES");
    }

    #[test]
    fn subtitle_descriptors_carried_verbatim() {
        let dvb_desc: &[u8] = &[
            0x59, 16, b'f', b'r', b'a', 0x10, 0, 2, 0, 3, b'e', b's', b'l', 0x20, 0, 4, 0, 5,
        ];
        let tracks = [
            video_track(0),
            // Audio with a verbatim descriptor (AAC descriptor 0x7C) and a language.
            Track {
                params: TrackParams {
                    descriptors: Bytes::from_static(&[0x7C, 1, 0x58]),
                    ..aac_track(1, Some("eng")).params
                },
                ..aac_track(1, Some("eng"))
            },
            mk_track(2, Codec::Teletext, Some("eng"), TELETEXT_DESC),
            mk_track(3, Codec::DvbSubtitle, Some("fra"), dvb_desc),
            // No descriptors: a minimal one is made up from the language.
            mk_track(4, Codec::Teletext, Some("FIN"), &[]),
            mk_track(5, Codec::DvbSubtitle, None, &[]),
            // A truncated trailing entry is not carried.
            mk_track(
                6,
                Codec::DvbSubtitle,
                Some("ita"),
                &[0x59, 8, b'i', b't', b'a', 0x10, 0, 1, 0, 1, 0x7F, 9, 1],
            ),
        ];
        let mut out = BytesMut::new();
        TsMuxer::new(&tracks).write_tables(&mut out);
        let (pcr, program_info, es) = pmt_of(&out);
        assert_eq!(pcr, 0x100);
        assert!(program_info.is_empty(), "no SCTE-35: no CUEI");
        assert_eq!(
            es,
            vec![
                (0x1B, 0x100, vec![]),
                (0x0F, 0x101, vec![0x0A, 4, b'e', b'n', b'g', 0, 0x7C, 1, 0x58]),
                (0x06, 0x102, TELETEXT_DESC.to_vec()),
                (0x06, 0x103, dvb_desc.to_vec()),
                (0x06, 0x104, vec![0x56, 5, b'f', b'i', b'n', 0x09, 0x00]),
                (0x06, 0x105, vec![0x59, 8, b'u', b'n', b'd', 0x10, 0, 1, 0, 1]),
                (0x06, 0x106, vec![0x59, 8, b'i', b't', b'a', 0x10, 0, 1, 0, 1]),
            ]
        );
    }

    #[test]
    fn dvb_subtitle_pes_has_pts_only_and_no_pcr() {
        let tracks = [aac_track(0, None), mk_track(1, Codec::DvbSubtitle, Some("fra"), &[])];
        let mut mux = TsMuxer::new(&tracks);
        assert_eq!(mux.pcr_pid(), 0x100, "subtitles never carry the PCR");
        let mut out = BytesMut::new();
        let data = vec![0x20, 0x00, 0x0F, 0x10, 0, 1, 0, 2, 0xAA, 0xBB, 0xFF];
        mux.write_frame(&frame(1, T0 - 900, T0, true, data.clone()), &mut out);
        let pes = pes_by_pid(&out);
        let (p, af) = &pes[&0x101][0];
        assert_eq!(&p[..4], &[0, 0, 1, 0xBD]);
        assert_eq!((p[7], p[8]), (0x80, 5), "PTS only, even when DTS differs");
        assert_eq!(decode_timestamp(&p[9..14]), T0 % TS_WRAP);
        assert_eq!(&p[14..], &data[..]);
        assert_eq!(af.as_ref().map(|af| af[0] & AF_PCR), Some(0));
        // Subtitle-only program: no PCR at all.
        let mux = TsMuxer::new(&[mk_track(0, Codec::Teletext, None, TELETEXT_DESC)]);
        assert_eq!(mux.pcr_pid(), 0x1FFF);
    }

    #[test]
    fn subtitles_and_cues_do_not_repeat_tables() {
        let tracks = [
            aac_track(0, None),
            mk_track(1, Codec::DvbSubtitle, None, &[]),
            mk_track(2, Codec::Scte35, None, &[]),
        ];
        let mut mux = TsMuxer::new(&tracks);
        let mut out = BytesMut::new();
        mux.write_frame(&frame(0, T0, T0, true, vec![1; 10]), &mut out);
        for i in 1..20 {
            let t = T0 + i * CLOCK_HZ;
            mux.write_frame(&frame(1, t, t, true, vec![0x20, 0, 0xFF]), &mut out);
            mux.write_frame(&frame(2, t, t, true, time_signal(t, 0, false)), &mut out);
        }
        let pat = packets(&out).iter().filter(|p| p.pid == PAT_PID).count();
        assert_eq!(pat, 1, "only before the very first frame");
    }

    #[test]
    fn scte35_section_packetized_with_cuei() {
        let tracks = [video_track(0), mk_track(1, Codec::Scte35, None, &[0x8A, 1, 0x01])];
        let mut mux = TsMuxer::new(&tracks);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let (pcr, program_info, es) = pmt_of(&out);
        assert_eq!(pcr, 0x100);
        assert_eq!(program_info, [0x05, 4, b'C', b'U', b'E', b'I']);
        assert_eq!(es[1], (0x86, 0x101, vec![0x8A, 1, 0x01]), "cue_identifier carried");

        // Splice at UTC T0 + 10 s; the source said pts_time 1000 with
        // adjustment 77 (its own clock).
        let splice = T0 + 10 * CLOCK_HZ;
        let section = time_signal(1000, 77, false);
        mux.write_frame(&frame(1, T0, splice, true, section.clone()), &mut out);
        let sections = sections_by_pid(&out, &[0x101]);
        let got = &sections[&0x101][0];
        assert_eq!(got.len(), section.len());
        assert_eq!(crc32_mpeg2(got), 0, "CRC_32 recomputed");
        let info = scte35::parse(got).expect("valid section");
        assert_eq!(info.pts_time(), Some(1000));
        assert_eq!((1000 + info.pts_adjustment) % TS_WRAP, splice % TS_WRAP);
        assert_eq!(info.splice_time(), Some(splice.rem_euclid(TS_WRAP)));
        // Only pts_adjustment (bytes 4..9) and the CRC changed.
        assert_eq!(got[..4], section[..4]);
        assert_eq!(got[9..got.len() - 4], section[9..section.len() - 4]);
        // No PES, no PCR, no random access on the cue PID.
        let ps = packets(&out);
        let cue: Vec<&Packet<'_>> = ps.iter().filter(|p| p.pid == 0x101).collect();
        assert_eq!(cue.len(), 1);
        assert!(cue[0].pusi);
        assert_eq!(af_flags(cue[0]), 0, "stuffing only");
        assert_eq!(cue[0].payload[0], 0, "pointer_field");
    }

    #[test]
    fn scte35_unparsable_or_encrypted_unchanged_and_garbage_dropped() {
        let tracks = [mk_track(0, Codec::Scte35, None, &[])];
        let encrypted = time_signal(1000, 77, true);
        let mut bad_crc = time_signal(1000, 77, false);
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        // A splice_null has no splice time: nothing to rewrite.
        let mut null = vec![0xFC, 0x30, 17, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xF0, 0, 0x00, 0, 0];
        let crc = crc32_mpeg2(&null);
        null.extend_from_slice(&crc.to_be_bytes());
        for section in [encrypted, bad_crc, null] {
            let got = scte35_section(&section, T0).expect("a section");
            assert_eq!(&got[..], &section[..]);
        }
        // Trailing bytes beyond section_length are not written.
        let mut padded = time_signal(1000, 0, false);
        let len = padded.len();
        padded.extend_from_slice(&[0xFF; 9]);
        assert_eq!(scte35_section(&padded, 1000).map(|s| s.len()), Some(len));
        // Not a section: dropped, nothing written.
        let mut mux = TsMuxer::new(&tracks);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let before = out.len();
        for junk in [&[][..], &[0xFC, 0x30], &[0xFD; 40], &time_signal(1, 0, false)[..20]] {
            assert!(scte35_section(junk, T0).is_none());
            mux.write_frame(&frame(0, T0, T0, true, junk.to_vec()), &mut out);
        }
        assert_eq!(out.len(), before);
    }

    #[test]
    fn scte35_long_section_spans_packets_and_pads() {
        // A section with a 400-byte descriptor loop: 3 packets, padded to 16.
        let mut s = vec![0xFC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xF0, 0, 0x00];
        let descriptors: Vec<u8> = (0..400).map(|i| if i % 100 == 0 { 0xF0 } else { 98 }).collect();
        // Four private descriptors (tag 0xF0, length 98).
        let mut d = Vec::new();
        for chunk in descriptors.chunks(100) {
            d.push(chunk[0]);
            d.push(98);
            d.extend_from_slice(&[0x11; 98]);
        }
        s.extend_from_slice(&(d.len() as u16).to_be_bytes());
        s.extend_from_slice(&d);
        let len = s.len() - 3 + 4;
        s[1] = 0x30 | (len >> 8) as u8;
        s[2] = len as u8;
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        let tracks = vec![video_track(0), mk_track(1, Codec::Scte35, None, &[])];
        let frames = vec![frame(0, T0, T0, true, idr(100)), frame(1, T0, T0, true, s.clone())];
        let ts = mux_segment(&mk_segment(tracks, frames, false));
        let counts = assert_cc_continuous(&ts);
        assert_eq!(counts[&0x101], 16);
        // The cue once, then 13 splice_null() sections, one per packet.
        let sections = &sections_by_pid(&ts, &[0x101])[&0x101];
        assert_eq!(sections.len(), 14);
        assert_eq!(sections[0], s);
        for null in &sections[1..] {
            assert_eq!(crc32_mpeg2(null), 0);
            let info = scte35::parse(null).expect("splice_null parses");
            assert!(info.pts_time().is_none() && !info.encrypted);
            assert_eq!(null[13], 0x00, "splice_command_type splice_null");
        }
        let ps = packets(&ts);
        assert!(ps
            .iter()
            .filter(|p| p.pid == 0x101)
            .skip(3)
            .all(|p| p.pusi && p.af.is_none()));
    }

    #[test]
    fn per_track_mux_keeps_pids_and_lists_only_selected() {
        let tracks = vec![
            video_track(0),
            aac_track(1, Some("eng")),
            aac_track(2, Some("deu")),
            mk_track(3, Codec::Teletext, None, TELETEXT_DESC),
            mk_track(4, Codec::Scte35, None, &[]),
        ];
        let mut frames = Vec::new();
        for i in 0..30 {
            let t = T0 + i * 3600;
            frames.push(frame(0, t, t, i % 10 == 0, idr(900)));
            frames.push(frame(1, t, t, true, vec![1; 200]));
            frames.push(frame(2, t, t, true, vec![2; 150]));
            if i % 10 == 5 {
                frames.push(frame(3, t, t, true, teletext_payload(2)));
                frames.push(frame(4, t, t + CLOCK_HZ, true, time_signal(5, 0, false)));
            }
        }
        let seg = mk_segment(tracks, frames, false);
        let full = mux_segment(&seg);
        assert_eq!(
            full,
            mux_segment_tracks(&seg, &[0, 1, 2, 3, 4]),
            "all tracks = mux_segment"
        );

        let pids = |ts: &[u8]| {
            let mut v: Vec<u16> = assert_cc_continuous(ts).into_keys().collect();
            v.sort_unstable();
            v
        };
        let v1 = mux_segment_tracks(&seg, &[0]);
        assert_eq!(v1, mux_segment_tracks(&seg, &[0]), "deterministic");
        assert_eq!(pids(&v1), [PAT_PID, 0x100, PMT_PID]);
        let (pcr, program_info, es) = pmt_of(&v1);
        assert_eq!((pcr, program_info.len()), (0x100, 0));
        assert_eq!(es, vec![(0x1B, 0x100, vec![])]);
        // The video PES are exactly those of the full mux.
        assert_eq!(pes_by_pid(&v1)[&0x100], pes_by_pid(&full)[&0x100]);

        let a2 = mux_segment_tracks(&seg, &[2]);
        assert_eq!(pids(&a2), [PAT_PID, 0x102, PMT_PID]);
        let (pcr, _, es) = pmt_of(&a2);
        assert_eq!(pcr, 0x102, "audio-only rendition carries its own PCR");
        assert_eq!(es, vec![(0x0F, 0x102, vec![0x0A, 4, b'd', b'e', b'u', 0])]);

        let v1a1s = mux_segment_tracks(&seg, &[4, 1, 0]);
        assert_eq!(pids(&v1a1s), [PAT_PID, 0x100, 0x101, 0x104, PMT_PID]);
        let (pcr, program_info, es) = pmt_of(&v1a1s);
        assert_eq!(pcr, 0x100);
        assert_eq!(program_info, [0x05, 4, b'C', b'U', b'E', b'I']);
        let listed: Vec<u16> = es.iter().map(|e| e.1).collect();
        assert_eq!(listed, [0x100, 0x101, 0x104], "track order, not selection order");

        let none = mux_segment_tracks(&seg, &[9]);
        assert_eq!(pids(&none), [PAT_PID, PMT_PID]);
        assert_eq!(pmt_of(&none).0, 0x1FFF);
    }

    #[test]
    fn oversized_pmt_drops_descriptors_then_streams() {
        // 12 subtitle tracks with 200 bytes of descriptors each cannot all
        // keep them in a 1021-byte section.
        let desc: Vec<u8> = [0x59u8, 198].into_iter().chain([0x20; 198]).collect();
        let mut tracks: Vec<Track> = (0..12).map(|i| mk_track(i, Codec::DvbSubtitle, None, &desc)).collect();
        let mux = TsMuxer::new(&tracks);
        let (_, _, es) = parse_pmt(&mux.pmt.section);
        assert!(mux.pmt.section.len() <= 1024);
        assert_eq!(es.len(), 12, "every stream is still listed");
        assert_eq!(es.iter().filter(|e| e.2 == desc).count(), 4);
        // Past ~200 streams, even bare entries stop fitting: those are not muxed.
        tracks = (0..250).map(|i| mk_track(i, Codec::Aac, None, &[])).collect();
        let mux = TsMuxer::new(&tracks);
        let (_, _, es) = parse_pmt(&mux.pmt.section);
        assert_eq!(es.len(), (1012 - 10) / 5);
        assert_eq!(mux.pid(es.len() as u16), None);
        assert_eq!(mux.pid(es.len() as u16 - 1), Some(0x100 + es.len() as u16 - 1));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Codecs a random track set draws from.
        const CODECS: [Codec; 6] = [
            Codec::H264,
            Codec::Aac,
            Codec::MpegAudio,
            Codec::Teletext,
            Codec::DvbSubtitle,
            Codec::Scte35,
        ];

        fn random_track(id: u16, codec: Codec) -> Track {
            match codec {
                Codec::H264 => video_track(id),
                Codec::Aac => aac_track(id, Some("eng")),
                Codec::Teletext => mk_track(id, codec, None, TELETEXT_DESC),
                _ => mk_track(id, codec, None, &[]),
            }
        }

        /// (codecs of the tracks, frames as (track index, size, keyframe),
        /// discontinuity).
        type SegmentSpec = (Vec<usize>, Vec<(usize, usize, bool)>, bool);

        fn segment_spec() -> impl Strategy<Value = SegmentSpec> {
            (
                proptest::collection::vec(0..CODECS.len(), 1..5),
                proptest::collection::vec((0usize..8, 0usize..3000, any::<bool>()), 0..40),
                any::<bool>(),
            )
        }

        fn build(spec: &SegmentSpec, seq: i64) -> Segment {
            let (codecs, frame_specs, discontinuity) = spec;
            let tracks: Vec<Track> = codecs
                .iter()
                .enumerate()
                .map(|(i, &c)| random_track(i as u16, CODECS[c]))
                .collect();
            let base = T0 + seq * 2 * CLOCK_HZ;
            let frames = frame_specs
                .iter()
                .enumerate()
                .map(|(i, &(t, size, key))| {
                    let track = t % tracks.len();
                    let ts = base + i as i64 * 1800;
                    let data = match tracks[track].codec {
                        Codec::H264 => idr(size),
                        Codec::Teletext if key => teletext_payload(size % 40),
                        Codec::Scte35 if key => time_signal(size as i64 * 90, 0, size % 3 == 0),
                        Codec::Scte35 if size % 2 == 0 => vec![0xFC; size % 25], // junk: dropped
                        _ => vec![(size % 251) as u8; size],
                    };
                    frame(track as u16, ts, ts + 3600, key, data)
                })
                .collect();
            mk_segment(tracks, frames, *discontinuity)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Random segments, muxed whole or per track, concatenate into a
            /// TS whose counters run on without a gap on every PID.
            #[test]
            fn concatenated_segments_are_cc_continuous(
                specs in proptest::collection::vec(segment_spec(), 1..6),
                selection in proptest::collection::vec(0u16..5, 0..4),
            ) {
                let mut cat = Vec::new();
                let mut cat_selected = Vec::new();
                for (i, spec) in specs.iter().enumerate() {
                    let seg = build(spec, i as i64);
                    let ts = mux_segment(&seg);
                    prop_assert_eq!(&ts, &mux_segment(&seg.clone()), "deterministic");
                    let ps = packets(&ts);
                    prop_assert_eq!((ps[0].pid, ps[1].pid), (PAT_PID, PMT_PID));
                    for (pid, n) in assert_cc_continuous(&ts) {
                        prop_assert_eq!(n % 16, 0, "PID {:#x}", pid);
                    }
                    // Teletext stays AF-free unless a discontinuity mark forced one.
                    for (idx, t) in seg.tracks.iter().enumerate() {
                        if t.codec == Codec::Teletext {
                            let pid = 0x100 + idx as u16;
                            prop_assert!(ps.iter().filter(|p| p.pid == pid).all(|p| p.af.is_none()));
                        }
                    }
                    // Every PES is complete and every section checks.
                    for list in pes_by_pid(&ts).values() {
                        for (d, _) in list {
                            if d.starts_with(&[0, 0, 1]) {
                                let len = usize::from(u16::from_be_bytes([d[4], d[5]]));
                                prop_assert!(len == 0 || len == d.len() - 6);
                            }
                        }
                    }
                    let cue_pids: Vec<u16> = seg.tracks.iter().filter(|t| t.codec == Codec::Scte35).map(|t| 0x100 + t.id).collect();
                    for sections in sections_by_pid(&ts, &cue_pids).values() {
                        prop_assert!(sections.iter().all(|s| crc32_mpeg2(s) == 0));
                    }
                    prop_assert!(ts.len() <= TsMuxer::new(&seg.tracks).segment_size_bound(&seg.frames));
                    cat.extend_from_slice(&ts);

                    let sel = mux_segment_tracks(&seg, &selection);
                    prop_assert_eq!(&sel, &mux_segment_tracks(&seg, &selection));
                    let ps = packets(&sel);
                    prop_assert_eq!((ps[0].pid, ps[1].pid), (PAT_PID, PMT_PID));
                    let allowed: Vec<u16> = selection.iter().map(|id| 0x100 + id).collect();
                    prop_assert!(ps.iter().all(|p| p.pid == PAT_PID || p.pid == PMT_PID || allowed.contains(&p.pid)));
                    cat_selected.extend_from_slice(&sel);
                }
                // Across the whole concatenation, one packet after another.
                let mut next: HashMap<u16, u8> = HashMap::new();
                for ts in [&cat, &cat_selected] {
                    next.clear();
                    for p in packets(ts) {
                        let want = next.get(&p.pid).copied().unwrap_or(0);
                        prop_assert_eq!(p.cc, want, "PID {:#x}", p.pid);
                        next.insert(p.pid, (p.cc + 1) & 0xF);
                    }
                }
            }
        }
    }
}
