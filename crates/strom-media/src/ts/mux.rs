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
//!   `ES_PID_BASE + track.id`. The same tracks and frames always give the same
//!   bytes, so a segment can be re-muxed (cluster peers, DVR) bit-identically.
//! - Continuity counters are per PID and start at 0 in a fresh muxer.
//! - One PES per frame. The last packet of a PES is padded with
//!   adaptation-field stuffing, never with bytes inside the PES payload.
//! - The PCR rides on the first packet of every frame of the PCR track (first
//!   video track, else first track) and equals that frame's DTS minus
//!   [`MUX_DELAY`], so it never runs ahead of the data it clocks.
//! - Timestamps are UTC 90 kHz ticks that never wrap; they are written modulo
//!   2^33 here and nowhere else.
//! - Video access units always start with an AUD, and keyframes always carry
//!   their parameter sets, so any keyframe is a clean entry point (HLS
//!   segment start, HTTP-TS join, Apple's validator).

use bytes::{Bytes, BytesMut};

use crate::codec::aac::write_adts_header;
use crate::frame::{Codec, Frame, Segment, Track, TrackKind, CLOCK_HZ};
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

/// How far the PCR runs behind the DTS of the frame it is stamped on, in
/// 90 kHz ticks. 0.7 s, ffmpeg's default `max_delay`: large enough that audio
/// interleaved a little behind video still arrives with DTS >= the last PCR
/// (the T-STD never sees data after its decode time), and players size their
/// buffers from it the same way they do for ffmpeg output.
pub const MUX_DELAY: i64 = CLOCK_HZ * 7 / 10;

/// Without video there are no keyframes to hang PAT/PMT on, so audio-only
/// streams repeat them on this DTS interval (0.5 s: a joining HTTP-TS client
/// waits at most that long, at ~6 kbit/s of overhead).
const AUDIO_ONLY_TABLE_INTERVAL: i64 = CLOCK_HZ / 2;

const TS_HEADER_SIZE: usize = 4;
const TS_PAYLOAD_SIZE: usize = PACKET_SIZE - TS_HEADER_SIZE;
/// Adaptation field with PCR: length, flags, 6 bytes of PCR.
const AF_PCR_SIZE: usize = 8;
/// Largest PES header we write: 9 fixed bytes + PTS + DTS.
const PES_HEADER_MAX: usize = 19;
/// Largest per-PES prefix beyond the PES header (AUD or ADTS).
const ES_PREFIX_MAX: usize = 7;

const STREAM_ID_VIDEO: u8 = 0xE0;
const STREAM_ID_AUDIO: u8 = 0xC0;
/// private_stream_1: where AC-3/E-AC-3 go (ATSC A/52, ffmpeg does the same).
const STREAM_ID_PRIVATE_1: u8 = 0xBD;

/// Access unit delimiters with a 4-byte start code; `primary_pic_type` /
/// `pic_type` say "any slice type" so they are valid for every AU.
const AUD_H264: [u8; 6] = [0, 0, 0, 1, 0x09, 0xF0];
const AUD_H265: [u8; 7] = [0, 0, 0, 1, 0x46, 0x01, 0x50];
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Per-track muxing state.
#[derive(Debug, Clone)]
struct Stream {
    track: Track,
    /// `None` when `ES_PID_BASE + track.id` is not a usable PID; such a track
    /// is left out of the PMT and its frames are dropped.
    pid: Option<u16>,
    stream_id: u8,
    cc: u8,
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
    /// PAT and PMT packets, built once in `new`; only the continuity counter
    /// nibble (byte 3) is patched when they are written.
    pat_packets: Vec<u8>,
    pmt_packets: Vec<u8>,
    pat_cc: u8,
    pmt_cc: u8,
    /// True from `write_tables` until the next frame, so a keyframe right after
    /// explicit tables does not repeat them.
    tables_just_written: bool,
    tables_ever_written: bool,
    /// DTS of the frame the last tables preceded (audio-only repetition).
    last_tables_dts: Option<i64>,
    /// Scratch buffers reused across frames: PES header + AUD/ADTS, and the
    /// parameter sets to splice in. Never shrink, so steady state allocates nothing.
    head: Vec<u8>,
    mid: Vec<u8>,
}

impl TsMuxer {
    /// A muxer for these tracks. PIDs are deterministic: PMT 0x1000 (4096),
    /// elementary PIDs `0x100 + track.id`, program number 1. PCR on the first
    /// video track, else the first track.
    ///
    /// `Frame::track` indexes `tracks`. A track whose PID would not fit
    /// (`track.id > 0x1EFE`) is left out and its frames are dropped.
    pub fn new(tracks: &[Track]) -> Self {
        let streams: Vec<Stream> = tracks
            .iter()
            .map(|t| Stream {
                track: t.clone(),
                pid: ES_PID_BASE
                    .checked_add(t.id)
                    .filter(|&p| p <= MAX_ES_PID && p != PMT_PID),
                stream_id: stream_id(t.codec),
                cc: 0,
            })
            .collect();
        let usable = || streams.iter().enumerate().filter(|(_, s)| s.pid.is_some());
        let pcr_stream = usable()
            .find(|(_, s)| s.track.kind() == TrackKind::Video)
            .or_else(|| usable().next())
            .map(|(i, _)| i);
        let has_video = streams
            .iter()
            .any(|s| s.pid.is_some() && s.track.kind() == TrackKind::Video);
        let pcr_pid = pcr_stream.and_then(|i| streams[i].pid).unwrap_or(0x1FFF);
        let pat_packets = psi_packets(PAT_PID, &pat_section());
        let pmt_packets = psi_packets(PMT_PID, &pmt_section(&streams, pcr_pid));
        TsMuxer {
            streams,
            pcr_stream,
            has_video,
            pat_packets,
            pmt_packets,
            pat_cc: 0,
            pmt_cc: 0,
            tables_just_written: false,
            tables_ever_written: false,
            last_tables_dts: None,
            head: Vec::with_capacity(PES_HEADER_MAX + ES_PREFIX_MAX),
            mid: Vec::new(),
        }
    }

    /// PID that carries `track` (an index into the tracks given to [`TsMuxer::new`]).
    pub fn pid(&self, track: u16) -> Option<u16> {
        self.streams.get(track as usize).and_then(|s| s.pid)
    }

    /// PID carrying the PCR (0x1FFF if there are no usable tracks).
    pub fn pcr_pid(&self) -> u16 {
        self.pcr_stream.and_then(|i| self.streams[i].pid).unwrap_or(0x1FFF)
    }

    /// Appends PAT and PMT (with CRC) packets.
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        out.reserve(self.pat_packets.len() + self.pmt_packets.len());
        put_psi(out, &self.pat_packets, &mut self.pat_cc);
        put_psi(out, &self.pmt_packets, &mut self.pmt_cc);
        self.tables_just_written = true;
        self.tables_ever_written = true;
    }

    /// Appends the packets of one frame.
    ///
    /// A video keyframe is preceded by PAT/PMT (as is the first frame, and for
    /// audio-only streams a PCR-track frame every 0.5 s); a keyframe whose
    /// data lacks SPS/PPS (VPS/SPS/PPS for H.265) gets the missing ones
    /// inserted from the track's `parameter_sets`; every video AU starts with
    /// an AUD (type 9 for H.264, 35 for H.265) if it has none. AAC frames get
    /// an ADTS header. Frames of unknown or unusable tracks are dropped.
    pub fn write_frame(&mut self, frame: &Frame, out: &mut BytesMut) {
        let idx = frame.track as usize;
        let Some(pid) = self.streams.get(idx).and_then(|s| s.pid) else {
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
        let data: &[u8] = &frame.data;
        head.clear();
        mid.clear();
        // The PES payload is head[PES header..] ++ data[..split] ++ mid ++ data[split..]:
        // AUD first, then inserted parameter sets, then the AU as received.
        let mut split = 0;
        let mut es_prefix: &[u8] = &[];
        let adts: [u8; 7];
        match stream.track.codec {
            Codec::H264 | Codec::H265 => {
                let codec = stream.track.codec;
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
            Codec::MpegAudio | Codec::Ac3 | Codec::Eac3 | Codec::Teletext | Codec::DvbSubtitle => {}
            // Sections, not PES: not muxed yet.
            Codec::Scte35 => return,
        }
        let payload_len = es_prefix.len() + data.len() + mid.len();
        write_pes_header(head, stream.stream_id, frame.pts, frame.dts, payload_len);
        head.extend_from_slice(es_prefix);

        let pcr = (*pcr_stream == Some(idx)).then(|| (frame.dts - MUX_DELAY).rem_euclid(TS_WRAP));
        let (a, b) = data.split_at(split.min(data.len()));
        write_pes(
            out,
            pid,
            &mut stream.cc,
            [head.as_slice(), a, mid.as_slice(), b],
            pcr,
            frame.keyframe,
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
        let kind = self.streams[idx].track.kind();
        if self.has_video {
            kind == TrackKind::Video && frame.keyframe
        } else {
            self.pcr_stream == Some(idx)
                && self
                    .last_tables_dts
                    .is_none_or(|last| frame.dts - last >= AUDIO_ONLY_TABLE_INTERVAL)
        }
    }

    /// Upper bound on the bytes `write_frame` appends for `frame`, so
    /// [`mux_segment`] allocates its output exactly once.
    fn frame_size_bound(&self, frame: &Frame) -> usize {
        let Some(stream) = self.streams.get(frame.track as usize) else {
            return 0;
        };
        let mut overhead = PES_HEADER_MAX + ES_PREFIX_MAX + AF_PCR_SIZE;
        let mut tables = 0;
        if frame.keyframe {
            overhead += stream
                .track
                .params
                .parameter_sets
                .iter()
                .map(|p| p.len() + START_CODE.len())
                .sum::<usize>();
            tables = self.pat_packets.len() + self.pmt_packets.len();
        }
        if !self.has_video {
            tables = self.pat_packets.len() + self.pmt_packets.len();
        }
        (frame.data.len() + overhead).div_ceil(TS_PAYLOAD_SIZE) * PACKET_SIZE + tables
    }
}

/// Muxes a whole segment with a fresh muxer: PAT/PMT first, then frames.
/// Deterministic: the same Segment always yields the same bytes.
pub fn mux_segment(segment: &Segment) -> Bytes {
    let mut mux = TsMuxer::new(&segment.tracks);
    let capacity = mux.pat_packets.len()
        + mux.pmt_packets.len()
        + segment.frames.iter().map(|f| mux.frame_size_bound(f)).sum::<usize>();
    let mut out = BytesMut::with_capacity(capacity);
    mux.write_tables(&mut out);
    for frame in &segment.frames {
        mux.write_frame(frame, &mut out);
    }
    out.freeze()
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
        Codec::Teletext | Codec::DvbSubtitle => 0x06,
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

/// PMT section for the usable streams in track order.
///
/// The version number is derived from the section's content, so a muxer
/// built for a different track set (e.g. after an input switch on a
/// continuous HTTP-TS connection) announces a new PMT version and receivers
/// that filter on version pick up the change, while the same tracks always
/// give the same bytes.
fn pmt_section(streams: &[Stream], pcr_pid: u16) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + streams.len() * 20);
    body.extend_from_slice(&(0xE000 | pcr_pid).to_be_bytes());
    body.extend_from_slice(&0xF000u16.to_be_bytes()); // no program descriptors
    for s in streams {
        let Some(pid) = s.pid else { continue };
        let mut desc = [0u8; 16];
        let mut n = 0;
        let mut put = |bytes: &[u8]| {
            desc[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        };
        match s.track.codec {
            // Registration descriptors as ffmpeg writes them; readers that
            // don't know ATSC stream types 0x81/0x87 identify the codec by it.
            Codec::Ac3 => put(&[0x05, 4, b'A', b'C', b'-', b'3']),
            Codec::Eac3 => put(&[0x05, 4, b'E', b'A', b'C', b'3']),
            _ => {}
        }
        if let Some(lang) = iso639(s.track.params.language.as_deref()) {
            // ISO_639_language_descriptor, audio_type 0 (undefined).
            put(&[0x0A, 4, lang[0], lang[1], lang[2], 0]);
        }
        body.push(stream_type(s.track.codec));
        body.extend_from_slice(&(0xE000 | pid).to_be_bytes());
        body.extend_from_slice(&(0xF000 | n as u16).to_be_bytes());
        body.extend_from_slice(&desc[..n]);
    }
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
    // header, the body and the CRC. It is 10 bits and limited to 1021 for PSI;
    // a body that large would need 50+ tracks, so it is truncated rather than
    // written corrupt.
    let body = &body[..body.len().min(1021 - 9)];
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

/// Appends a PES header to `buf`. `payload_len` is the number of PES payload
/// bytes that will follow it. DTS is written only when it differs from PTS.
fn write_pes_header(buf: &mut Vec<u8>, stream_id: u8, pts: i64, dts: i64, payload_len: usize) {
    let with_dts = dts != pts;
    let header_data_len: u8 = if with_dts { 10 } else { 5 };
    // PES_packet_length counts the bytes after itself. 0 ("unbounded") is only
    // legal for video, which is also the only thing that can be this large.
    let pes_len = 3 + header_data_len as usize + payload_len;
    let pes_len = if pes_len > 0xFFFF { 0 } else { pes_len as u16 };
    buf.extend_from_slice(&[0, 0, 1, stream_id]);
    buf.extend_from_slice(&pes_len.to_be_bytes());
    // '10', not scrambled, no priority, data_alignment_indicator=1 (every PES
    // starts an AU/frame), no copyright, original.
    buf.push(0x84);
    buf.push(if with_dts { 0xC0 } else { 0x80 });
    buf.push(header_data_len);
    if with_dts {
        buf.extend_from_slice(&encode_timestamp(0x3, pts));
        buf.extend_from_slice(&encode_timestamp(0x1, dts));
    } else {
        buf.extend_from_slice(&encode_timestamp(0x2, pts));
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

/// Packetizes one PES given as consecutive parts. The first packet carries
/// PUSI and, when asked, the PCR and random_access_indicator; the last packet
/// is filled up with adaptation-field stuffing.
fn write_pes(out: &mut BytesMut, pid: u16, cc: &mut u8, parts: [&[u8]; 4], pcr: Option<i64>, random_access: bool) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let (first_af, first_flags) = match pcr {
        Some(_) => (AF_PCR_SIZE, 0x10 | if random_access { 0x40 } else { 0 }),
        None if random_access => (2, 0x40),
        None => (0, 0),
    };
    let first_room = TS_PAYLOAD_SIZE - first_af;
    let count = 1 + total.saturating_sub(first_room).div_ceil(TS_PAYLOAD_SIZE);
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
        let n = remaining.min(room);
        let af_len = af_fixed + (room - n); // whole adaptation field incl. its length byte
        let pusi = if first { 0x40 } else { 0 };
        let afc = if af_len > 0 { 0x30 } else { 0x10 };
        pkt[..4].copy_from_slice(&[SYNC_BYTE, pusi | (pid >> 8) as u8, pid as u8, afc | *cc]);
        *cc = (*cc + 1) & 0x0F;
        let (af, payload) = pkt[4..].split_at_mut(af_len);
        if let Some((len, rest)) = af.split_first_mut() {
            // A single stuffing byte is just adaptation_field_length 0 (no flags).
            *len = (af_len - 1) as u8;
            if let Some((flags, rest)) = rest.split_first_mut() {
                *flags = if first { first_flags } else { 0 };
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
        assert_eq!(a.pmt_packets, c.pmt_packets);
        assert_ne!(a.pmt_packets[10] & 0x3E, b.pmt_packets[10] & 0x3E, "version differs");
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
        write_pes_header(&mut h, 0xE0, pts, dts, 1000);
        assert_eq!(&h[..4], &[0, 0, 1, 0xE0]);
        assert_eq!(u16::from_be_bytes([h[4], h[5]]), 3 + 10 + 1000);
        assert_eq!((h[6], h[7], h[8]), (0x84, 0xC0, 10));
        assert_eq!(h[9] >> 4, 0x3);
        assert_eq!(h[14] >> 4, 0x1);
        assert_eq!(decode_timestamp(&h[9..14]), pts % TS_WRAP);
        assert_eq!(decode_timestamp(&h[14..19]), dts % TS_WRAP);
        assert!(pts >= TS_WRAP, "test must exercise wrapping");

        h.clear();
        write_pes_header(&mut h, 0xC0, pts, pts, 100);
        assert_eq!(h.len(), 14);
        assert_eq!((h[7], h[8], h[9] >> 4), (0x80, 5, 0x2));
        assert_eq!(decode_timestamp(&h[9..14]), pts % TS_WRAP);

        h.clear();
        write_pes_header(&mut h, 0xE0, pts, pts, 70_000);
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
        // PAT/PMT: explicit tables + one per keyframe after the first
        // (the first keyframe follows the explicit tables directly).
        assert_eq!(next[&PAT_PID], 2);
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
        // Tables once at the start (not again before the first keyframe) and
        // before the second keyframe.
        assert_eq!(ps.iter().filter(|p| p.pid == PAT_PID).count(), 2);
        // Capacity estimate really is an upper bound (no realloc in mux_segment).
        let mux = TsMuxer::new(&seg.tracks);
        let bound: usize = seg.frames.iter().map(|f| mux.frame_size_bound(f)).sum();
        assert!(a.len() <= bound + 2 * PACKET_SIZE);
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
}
