//! The canonical media model: tracks, frames and segments.
//!
//! Every output and the cluster wire format are derived from these types.
//! Invariants:
//! - `Frame::dts`/`pts` are 90 kHz ticks. Straight out of the demuxer they are
//!   raw 33-bit PES values; after [`crate::timeline::Timeline`] they are UTC
//!   (ticks since the Unix epoch) and never wrap.
//! - Video frame data is one Annex B access unit (start codes kept); AAC frame
//!   data is one raw AAC frame without ADTS header; other audio is carried as
//!   the elementary bytes of one PES. Teletext and DVB subtitle frame data is
//!   the PES payload (data_identifier first); an SCTE-35 frame is one complete
//!   `splice_info_section` (table_id 0xFC through CRC_32), timed at the
//!   program clock when it arrived.
//! - A track id is the track's index in program order, independent of source
//!   PIDs, so inputs with different PID layouts map onto the same tracks.

use bytes::Bytes;
use std::sync::Arc;

/// Ticks per second of every timestamp in strom.
pub const CLOCK_HZ: i64 = 90_000;

/// Codecs strom understands. Unknown elementary streams are not tracks
/// (the demuxer counts them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    H265,
    Aac,
    /// MPEG-1/2 audio layers I–III, passed through opaque.
    MpegAudio,
    /// AC-3, passed through opaque.
    Ac3,
    /// E-AC-3, passed through opaque.
    Eac3,
    /// EBU teletext in PES (ETSI EN 300 472), stream_type 0x06 with
    /// teletext_descriptor 0x56; passed through opaque.
    Teletext,
    /// DVB subtitles (ETSI EN 300 743), stream_type 0x06 with
    /// subtitling_descriptor 0x59; passed through opaque.
    DvbSubtitle,
    /// SCTE-35 splice information sections (ANSI/SCTE 35), stream_type 0x86.
    Scte35,
}

/// What a track carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
    /// Teletext and DVB subtitles.
    Subtitle,
    /// Timed metadata such as SCTE-35 cues.
    Data,
}

impl TrackKind {
    /// Lowercase name used in the API.
    pub fn name(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
            TrackKind::Subtitle => "subtitle",
            TrackKind::Data => "data",
        }
    }
}

impl Codec {
    pub fn kind(self) -> TrackKind {
        match self {
            Codec::H264 | Codec::H265 => TrackKind::Video,
            Codec::Aac | Codec::MpegAudio | Codec::Ac3 | Codec::Eac3 => TrackKind::Audio,
            Codec::Teletext | Codec::DvbSubtitle => TrackKind::Subtitle,
            Codec::Scte35 => TrackKind::Data,
        }
    }

    /// Short lowercase name used in the API and logs.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Aac => "aac",
            Codec::MpegAudio => "mp2a",
            Codec::Ac3 => "ac3",
            Codec::Eac3 => "eac3",
            Codec::Teletext => "teletext",
            Codec::DvbSubtitle => "dvbsub",
            Codec::Scte35 => "scte35",
        }
    }
}

/// Codec parameters that travel beside the frames.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TrackParams {
    /// Parameter-set NAL units without start codes: VPS (H.265), SPS, PPS, in that order.
    pub parameter_sets: Vec<Bytes>,
    pub width: u16,
    pub height: u16,
    /// Frame rate as a rational (num, den) when the SPS carries timing info.
    pub frame_rate: Option<(u32, u32)>,
    /// RFC 6381 codec string, e.g. `avc1.64001f` or `mp4a.40.2`, when known.
    pub codec_string: Option<String>,
    pub sample_rate: u32,
    pub channels: u8,
    /// AAC audio object type (2 = LC).
    pub aac_object_type: u8,
    /// ISO 639 language from the PMT, if any (for teletext and DVB
    /// subtitles, the first language of their descriptor).
    pub language: Option<String>,
    /// Elementary-stream descriptors from the source PMT that outputs carry
    /// through verbatim (teletext 0x56, subtitling 0x59, ...): a descriptor
    /// loop of `(tag, length, body)` entries, without the ones strom writes
    /// itself (ISO 639 language 0x0A, registration 0x05). Empty for most tracks.
    pub descriptors: Bytes,
}

/// One elementary track of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    pub id: u16,
    pub codec: Codec,
    pub params: TrackParams,
}

impl Track {
    pub fn kind(&self) -> TrackKind {
        self.codec.kind()
    }
}

/// One access unit (video) or audio frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub track: u16,
    pub dts: i64,
    pub pts: i64,
    pub keyframe: bool,
    pub data: Bytes,
}

/// A keyframe-aligned run of frames with its place on the UTC timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// HLS media sequence number, strictly increasing per stream. The stream
    /// numbers segments (the node's pipeline assigns it);
    /// [`crate::segmenter::Segmenter`] leaves it 0.
    pub seq: u64,
    /// UTC start in 90 kHz ticks since the Unix epoch.
    pub start: i64,
    /// Duration in 90 kHz ticks.
    pub duration: i64,
    /// True when this segment does not continue the previous one (input switch, jump, track change).
    pub discontinuity: bool,
    /// `EXT-X-TARGETDURATION` in whole seconds that the stream declared when
    /// this segment was cut: the segment's duration rounds to at most this,
    /// and the value stays the same for the life of the stream's segmenter
    /// (RFC 8216 §4.3.3.1). 0 when not known (segments from wire v1 peers).
    pub target_duration: u32,
    /// Tracks in effect for every frame of this segment.
    pub tracks: Arc<[Track]>,
    /// Frames in decode order as they arrived (tracks interleaved).
    pub frames: Vec<Frame>,
}

impl Segment {
    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.duration as f64 / CLOCK_HZ as f64
    }

    /// Total elementary-stream payload bytes.
    pub fn payload_bytes(&self) -> usize {
        self.frames.iter().map(|f| f.data.len()).sum()
    }

    /// Copies the payload of every frame into one allocation of exactly
    /// [`Segment::payload_bytes`] bytes, in frame order, and points each
    /// frame's data at its bytes there; every frame stays equal.
    ///
    /// Frames fresh from a demuxer are slices of its receive blocks, each of
    /// which stays allocated, spare capacity and all, as long as any frame
    /// cut from it lives. A segment kept for a while (a live window) is
    /// compacted so it holds its payload and nothing more, in one
    /// allocation instead of hundreds (and its frame list without spare
    /// capacity).
    pub fn compact(&mut self) {
        let mut all = Vec::with_capacity(self.payload_bytes());
        for f in &self.frames {
            all.extend_from_slice(&f.data);
        }
        let all = Bytes::from(all);
        let mut at = 0;
        for f in &mut self.frames {
            let n = f.data.len();
            f.data = all.slice(at..at + n);
            at += n;
        }
        self.frames.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment(frames: Vec<(u16, Vec<u8>)>) -> Segment {
        Segment {
            seq: 1,
            start: 0,
            duration: 2 * CLOCK_HZ,
            discontinuity: false,
            target_duration: 2,
            tracks: Arc::from(Vec::new()),
            frames: frames
                .into_iter()
                .enumerate()
                .map(|(i, (track, data))| Frame {
                    track,
                    dts: i as i64 * 3600,
                    pts: i as i64 * 3600,
                    keyframe: i == 0,
                    data: Bytes::from(data),
                })
                .collect(),
        }
    }

    proptest! {
        #[test]
        fn compact_keeps_every_frame_and_packs_them_in_order(
            frames in proptest::collection::vec((0u16..3, proptest::collection::vec(any::<u8>(), 0..500)), 0..60)
        ) {
            let seg = segment(frames);
            let mut packed = seg.clone();
            packed.compact();
            prop_assert_eq!(&packed, &seg);
            // One run of memory, in frame order, with nothing in between.
            let mut end: Option<*const u8> = None;
            for f in packed.frames.iter().filter(|f| !f.data.is_empty()) {
                let r = f.data.as_ptr_range();
                if let Some(e) = end {
                    prop_assert_eq!(r.start, e);
                }
                end = Some(r.end);
            }
        }
    }

    #[test]
    fn compact_drops_the_blocks_frames_were_cut_from() {
        // Two frames cut from one big receive block: the block lives as
        // long as either frame does, until the segment is compacted.
        let block = Bytes::from(vec![7u8; 64 << 10]);
        let mut seg = segment(Vec::new());
        seg.frames = (0..2)
            .map(|i| Frame {
                track: 0,
                dts: i,
                pts: i,
                keyframe: true,
                data: block.slice(i as usize * 100..i as usize * 100 + 100),
            })
            .collect();
        let weak = block.clone();
        drop(block);
        assert!(!weak.is_unique(), "the frames keep the block");
        seg.compact();
        assert!(weak.is_unique(), "only this handle is left on the block");
        assert_eq!(seg.payload_bytes(), 200);
        assert!(seg.frames.iter().all(|f| f.data.iter().all(|b| *b == 7)));
    }
}
