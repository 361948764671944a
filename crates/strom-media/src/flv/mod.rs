//! FLV audio and video tag bodies (Adobe FLV 10.1 §E.4, Enhanced RTMP) into
//! strom's canonical tracks and frames, without I/O.
//!
//! One [`FlvIngest`] serves one publisher session. The RTMP session hands
//! it each audio or video message payload (an FLV tag body) with the
//! message's 32-bit millisecond timestamp ([`FlvIngest::push`]) and, from
//! `onMetaData`, which kinds of track will come ([`FlvIngest::expect`]);
//! [`FlvIngest::pull`] then gives the same [`DemuxEvent`]s as the MPEG-TS
//! demuxer, so the node's pipeline treats both alike.
//!
//! # Tracks
//! Video (H.264, H.265) is track 0 and audio track 1 when both exist; a lone
//! track is 0. A track exists once its configuration is known: the
//! decoder configuration record or in-band parameter sets for video (SPS
//! and PPS, and a VPS for H.265), the AudioSpecificConfig for AAC, the first
//! frame for MPEG audio, AC-3 and E-AC-3. The first [`DemuxEvent::Tracks`]
//! waits until every expected track is configured (both, when nothing was
//! said), or until [`FlvConfig::probe_ms`] of media has been held, or until
//! the hold reaches its caps; frames are held meanwhile. Afterwards a track
//! that appears or changes its parameters gives a new `Tracks` event before
//! the next frame; a configuration equal to the current one changes
//! nothing. `TrackParams` of video are derived exactly as the TS demuxer
//! derives them ([`crate::codec::params`]).
//!
//! # Frames
//! - Video data is one Annex B access unit (4-byte start codes, no leading
//!   AUD) built from the length-prefixed NAL units; a keyframe that lacks
//!   some kind of parameter set in-band gets the track's ones in front, so
//!   every keyframe decodes on its own. `keyframe` is a random access point
//!   by the bitstream (H.264 IDR or an I picture after a recovery point SEI,
//!   H.265 IRAP), whatever the FLV frame type says. Video is emitted from
//!   its first keyframe after each configuration change; earlier frames are
//!   dropped and counted ([`FlvStats::waiting_keyframe`]).
//! - AAC data is one raw AAC frame (an ADTS header some encoders leave on
//!   a whole frame is taken off); MPEG audio, AC-3 and E-AC-3
//!   data are the tag's elementary bytes. Audio frames are keyframes.
//! - Frames of a track whose configuration is not known are dropped and
//!   counted ([`FlvStats::no_config`]).
//!
//! # Timestamps
//! RTMP timestamps are 32-bit milliseconds that wrap after ~49.7 days. Each
//! coded frame's timestamp is unwrapped against the previous one of the
//! session: a step of less than 2^31 ms either way is taken as it is, so
//! crossing 2^32 continues smoothly. `dts` = ms × 90 and `pts` = (ms +
//! CompositionTime) × 90 (a negative CompositionTime counts as 0), both
//! taken modulo 2^33 like the TS demuxer's raw output; the node's timeline
//! unwraps them. A frame whose timestamp is not after the previous one of
//! its track is counted in [`FlvStats::backwards`]; one with the same
//! timestamp is dropped, one further back is passed on (the timeline drops
//! it, or re-anchors on a large jump).
//!
//! # Bounds
//! Nothing here panics on input, and errors never carry peer bytes (only
//! static names). Held frames are capped by [`FlvConfig::max_held_frames`]
//! and [`FlvConfig::max_held_bytes`] (reaching a cap publishes what is
//! known); a frame is at most [`FlvConfig::max_frame_bytes`]; events not
//! yet pulled are capped at twice the hold (frames beyond are dropped and
//! counted); a track keeps at most 4 parameter sets of each kind. Call
//! `pull` until `None` after every `push`.

mod audio;
mod video;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::aac::AdtsHeader;
use crate::codec::latm::{AudioSpecificConfig, LatmError};
use crate::codec::nal::BitReader;
use crate::codec::params::{has_params, param_kind, update_video_params};
use crate::codec::{h264, h265};
use crate::frame::{Codec, Frame, Track, TrackParams};
use crate::ts::demux::DemuxEvent;
use crate::ts::TS_WRAP;

use audio::{frame_info, parse_audio_tag, AudioTag};
use video::{annex_b, h264_recovery_point, parse_record, parse_video_tag, split_nal_units, VideoTag};

const TS_MASK: i64 = TS_WRAP - 1;
/// 90 kHz ticks per millisecond.
const TICKS_PER_MS: i64 = 90;

/// Which kind of FLV tag (RTMP message type 8 audio, 9 video).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TagKind {
    Audio,
    Video,
}

impl TagKind {
    /// `audio` or `video`.
    pub fn name(self) -> &'static str {
        match self {
            TagKind::Audio => "audio",
            TagKind::Video => "video",
        }
    }
}

impl std::fmt::Display for TagKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a tag body was refused. Carries static names only, never peer bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The body ended before a field its header announces.
    #[error("tag body truncated")]
    Truncated,
    /// A field has a value the syntax forbids, or a frame is over the size cap.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Tuning of an [`FlvIngest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlvConfig {
    /// Media time in milliseconds held, at most, while waiting for the
    /// tracks not configured yet before the first `Tracks` event.
    pub probe_ms: u32,
    /// Most frames held before the first `Tracks` event.
    pub max_held_frames: usize,
    /// Most frame bytes held before the first `Tracks` event.
    pub max_held_bytes: usize,
    /// Largest frame in bytes (a video access unit with the parameter sets
    /// put in front of it, an audio frame); larger tags are refused as
    /// invalid.
    pub max_frame_bytes: usize,
}

impl Default for FlvConfig {
    fn default() -> Self {
        FlvConfig {
            probe_ms: 1000,
            max_held_frames: 1024,
            max_held_bytes: 16 << 20,
            max_frame_bytes: crate::ts::demux::MAX_PES_SIZE,
        }
    }
}

/// Counters for monitoring; they only ever increase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlvStats {
    /// Tags pushed.
    pub tags: u64,
    /// Tag body bytes pushed.
    pub bytes: u64,
    /// Video tags refused as malformed (truncated header, bad configuration
    /// record, NAL unit lengths past the body, oversize).
    pub bad_video_tags: u64,
    /// Audio tags refused as malformed (truncated, bad AudioSpecificConfig, oversize).
    pub bad_audio_tags: u64,
    /// Video tags of a codec or packet type strom does not carry (AV1, VP9,
    /// multitrack, legacy codecs other than AVC/HEVC), dropped.
    pub unsupported_video_tags: u64,
    /// Audio tags of a format strom does not carry (Opus, Speex, G.711,
    /// PCM, Nellymoser, AAC configurations ADTS cannot carry), dropped.
    pub unsupported_audio_tags: u64,
    /// The last unsupported video codec seen, as a short static name.
    pub unsupported_video_codec: Option<&'static str>,
    /// The last unsupported audio format seen, as a short static name.
    pub unsupported_audio_codec: Option<&'static str>,
    /// Frames dropped because their track's configuration was not known.
    pub no_config: u64,
    /// Video frames dropped before the first keyframe after a configuration.
    pub waiting_keyframe: u64,
    /// Frames whose timestamp was not after the previous one of their track.
    pub backwards: u64,
    /// Of those, frames dropped for repeating the previous timestamp.
    pub repeated_timestamps: u64,
    /// Frames emitted.
    pub frames: u64,
    /// `Tracks` events emitted.
    pub tracks_events: u64,
    /// Configuration changes of a track that already existed.
    pub config_changes: u64,
    /// Times the hold before the first `Tracks` event reached its caps and
    /// what was known was published early.
    pub hold_overflows: u64,
    /// Frames dropped because too many events waited to be pulled.
    pub queue_overflows: u64,
    /// The last refused tag's kind and reason.
    pub last_error: Option<(TagKind, FlvError)>,
}

/// Video track state.
struct VideoState {
    codec: Option<Codec>,
    params: TrackParams,
    /// NAL unit length field size in bytes from the configuration record.
    length_size: u8,
    /// A keyframe was passed since the last configuration change.
    started: bool,
    /// Unwrapped ms of the last frame passed.
    last_ms: Option<i64>,
}

impl Default for VideoState {
    fn default() -> Self {
        VideoState {
            codec: None,
            params: TrackParams::default(),
            // Until a record says otherwise, the usual 4 bytes.
            length_size: 4,
            started: false,
            last_ms: None,
        }
    }
}

impl VideoState {
    fn configured(&self) -> Option<Codec> {
        self.codec.filter(|&c| has_params(c, &self.params))
    }
}

/// Audio track state; `codec` is set once configured.
#[derive(Default)]
struct AudioState {
    codec: Option<Codec>,
    params: TrackParams,
    last_ms: Option<i64>,
}

/// FLV tag bodies of one publisher session in, tracks and frames out. See
/// the module docs for the contract.
pub struct FlvIngest {
    cfg: FlvConfig,
    /// (video, audio) announced by `onMetaData`.
    expect: Option<(bool, bool)>,
    video: VideoState,
    audio: AudioState,
    /// Last raw timestamp and its unwrapped value, in ms.
    clock: Option<(u32, i64)>,
    /// Before the first `Tracks` event.
    holding: bool,
    held: VecDeque<(TagKind, Frame)>,
    held_bytes: usize,
    /// Unwrapped ms of the first held frame.
    first_held_ms: Option<i64>,
    out: VecDeque<DemuxEvent>,
    out_bytes: usize,
    /// The track set of the last `Tracks` event and each kind's id in it.
    tracks: Option<Arc<[Track]>>,
    video_id: Option<u16>,
    audio_id: Option<u16>,
    /// A configuration changed since the last `Tracks` event.
    dirty: bool,
    stats: FlvStats,
}

impl Default for FlvIngest {
    fn default() -> Self {
        FlvIngest::new(FlvConfig::default())
    }
}

impl FlvIngest {
    pub fn new(cfg: FlvConfig) -> Self {
        FlvIngest {
            cfg,
            expect: None,
            video: VideoState::default(),
            audio: AudioState::default(),
            clock: None,
            holding: true,
            held: VecDeque::new(),
            held_bytes: 0,
            first_held_ms: None,
            out: VecDeque::new(),
            out_bytes: 0,
            tracks: None,
            video_id: None,
            audio_id: None,
            dirty: false,
            stats: FlvStats::default(),
        }
    }

    /// Which tracks the publisher announced (`onMetaData` has a
    /// `videocodecid` / `audiocodecid`). Without this call both are waited
    /// for. Only the first `Tracks` event waits; later calls change nothing
    /// after it.
    pub fn expect(&mut self, video: bool, audio: bool) {
        self.expect = Some((video, audio));
        self.maybe_release(None);
    }

    /// Takes one FLV tag body (the RTMP audio/video message payload) with
    /// its RTMP timestamp in milliseconds as on the wire (it may wrap at
    /// 2^32). Errors are counted, never returned.
    pub fn push(&mut self, kind: TagKind, timestamp_ms: u32, body: Bytes) {
        self.stats.tags += 1;
        self.stats.bytes += body.len() as u64;
        let res = match kind {
            TagKind::Video => self.video_tag(timestamp_ms, &body),
            TagKind::Audio => self.audio_tag(timestamp_ms, &body),
        };
        if let Err(e) = res {
            match kind {
                TagKind::Video => self.stats.bad_video_tags += 1,
                TagKind::Audio => self.stats.bad_audio_tags += 1,
            }
            self.stats.last_error = Some((kind, e));
        }
    }

    /// The next event: a `Tracks` before the first frame of every new track
    /// set, then frames in the order their tags came.
    pub fn pull(&mut self) -> Option<DemuxEvent> {
        let e = self.out.pop_front()?;
        if let DemuxEvent::Frame(f) = &e {
            self.out_bytes = self.out_bytes.saturating_sub(f.data.len());
        }
        Some(e)
    }

    /// End of the session: publishes what is held (with the tracks known).
    pub fn finish(&mut self) {
        if self.holding {
            self.release();
        }
    }

    pub fn stats(&self) -> &FlvStats {
        &self.stats
    }

    /// The track set of the last `Tracks` event, if any.
    pub fn tracks(&self) -> Option<&Arc<[Track]>> {
        self.tracks.as_ref()
    }

    /// Frame bytes held or queued for `pull`.
    pub fn buffered_bytes(&self) -> usize {
        self.held_bytes + self.out_bytes
    }

    /// Unwraps an RTMP timestamp against the session's previous one.
    fn unwrap_ms(&mut self, ts: u32) -> i64 {
        let ms = match self.clock {
            None => i64::from(ts),
            Some((raw, ext)) => ext.wrapping_add(i64::from(ts.wrapping_sub(raw) as i32)),
        };
        self.clock = Some((ts, ms));
        ms
    }

    /// Checks a frame's timestamp against its track's previous one: true
    /// to pass it on. See the module docs.
    fn in_order(&mut self, kind: TagKind, ms: i64) -> bool {
        let last = match kind {
            TagKind::Video => &mut self.video.last_ms,
            TagKind::Audio => &mut self.audio.last_ms,
        };
        if let Some(l) = *last {
            if ms <= l {
                self.stats.backwards += 1;
                if ms == l {
                    self.stats.repeated_timestamps += 1;
                    return false;
                }
            }
        }
        *last = Some(ms);
        true
    }

    fn video_tag(&mut self, ts: u32, body: &Bytes) -> Result<(), FlvError> {
        match parse_video_tag(body)? {
            VideoTag::Ignored => Ok(()),
            VideoTag::Unsupported(name) => {
                self.stats.unsupported_video_tags += 1;
                self.stats.unsupported_video_codec = Some(name);
                Ok(())
            }
            VideoTag::Config { codec, record } => {
                let rec = parse_record(codec, record)?;
                self.video.length_size = rec.length_size;
                if rec.sets.iter().all(Vec::is_empty) {
                    // Parameter sets will come in-band.
                    if self.video.codec != Some(codec) {
                        self.set_video(codec, TrackParams::default());
                    }
                    return Ok(());
                }
                let mut params = TrackParams::default();
                update_video_params(codec, &mut params, &rec.sets);
                self.set_video(codec, params);
                Ok(())
            }
            VideoTag::Frames { codec, cts, data } => self.video_frame(ts, codec, cts, data),
        }
    }

    /// Applies a video configuration; a change needs a new keyframe and a
    /// new `Tracks` event.
    fn set_video(&mut self, codec: Codec, params: TrackParams) {
        if self.video.codec == Some(codec) && self.video.params == params {
            return;
        }
        if self.video.configured().is_some() {
            self.stats.config_changes += 1;
            if self.holding {
                // Held frames go out with the configuration they used.
                self.release();
            }
        }
        self.video.codec = Some(codec);
        self.video.params = params;
        self.video.started = false;
        self.dirty = true;
        self.maybe_release(None);
    }

    fn video_frame(&mut self, ts: u32, codec: Codec, cts: i32, data: &[u8]) -> Result<(), FlvError> {
        let ms = self.unwrap_ms(ts);
        if self.video.codec.is_none() {
            // No record yet: parameter sets may still come in-band.
            self.set_video(codec, TrackParams::default());
        }
        if self.video.codec != Some(codec) {
            self.stats.no_config += 1;
            return Ok(());
        }
        let nals = split_nal_units(data, self.video.length_size)?;
        let au = annex_b(codec, &[], &nals);
        if au.len() > self.cfg.max_frame_bytes {
            return Err(FlvError::Invalid("video frame size"));
        }
        let scan = match codec {
            Codec::H265 => h265::scan_access_unit(&au),
            _ => h264::scan_access_unit(&au),
        };
        let in_band = [scan.vps, scan.sps, scan.pps].map(|l| l.as_slice().to_vec());
        if in_band.iter().any(|l| !l.is_empty()) {
            let mut params = self.video.params.clone();
            if update_video_params(codec, &mut params, &in_band) {
                let started = self.video.started;
                self.set_video(codec, params);
                // In-band sets precede the picture that uses them.
                self.video.started = started;
            }
        }
        if !scan.has_vcl {
            return Ok(());
        }
        if !has_params(codec, &self.video.params) {
            self.stats.no_config += 1;
            return Ok(());
        }
        let keyframe = scan.keyframe || (codec == Codec::H264 && h264_recovery_point(&nals));
        if !self.video.started && !keyframe {
            self.stats.waiting_keyframe += 1;
            return Ok(());
        }
        if !self.in_order(TagKind::Video, ms) {
            return Ok(());
        }
        self.video.started = true;
        let data = if keyframe {
            let present = in_band.map(|l| !l.is_empty());
            let prefix: Vec<&[u8]> = self
                .video
                .params
                .parameter_sets
                .iter()
                .filter(|ps| param_kind(codec, ps).is_some_and(|k| !present[k]))
                .map(|ps| &ps[..])
                .collect();
            if prefix.is_empty() {
                au
            } else {
                annex_b(codec, &prefix, &nals)
            }
        } else {
            au
        };
        if data.len() > self.cfg.max_frame_bytes {
            return Err(FlvError::Invalid("video frame size"));
        }
        let dts = ms.wrapping_mul(TICKS_PER_MS) & TS_MASK;
        let pts = ms.wrapping_add(i64::from(cts.max(0))).wrapping_mul(TICKS_PER_MS) & TS_MASK;
        let frame = Frame {
            track: 0,
            dts,
            pts,
            keyframe,
            data: Bytes::from(data),
        };
        self.deliver(TagKind::Video, frame, ms);
        Ok(())
    }

    fn audio_tag(&mut self, ts: u32, body: &Bytes) -> Result<(), FlvError> {
        match parse_audio_tag(body)? {
            AudioTag::Ignored => Ok(()),
            AudioTag::Unsupported(name) => {
                self.unsupported_audio(name);
                Ok(())
            }
            AudioTag::AacConfig(offset) => {
                let asc = body.get(offset..).unwrap_or_default();
                match AudioSpecificConfig::parse(&mut BitReader::new(asc), None) {
                    Ok(asc) => {
                        let params = TrackParams {
                            sample_rate: asc.sample_rate,
                            channels: asc.channels,
                            aac_object_type: asc.object_type,
                            codec_string: Some(asc.codec_string()),
                            ..TrackParams::default()
                        };
                        self.set_audio(Codec::Aac, params);
                        Ok(())
                    }
                    Err(LatmError::Unsupported(what)) => {
                        self.unsupported_audio(what);
                        Ok(())
                    }
                    Err(LatmError::Invalid(what)) => Err(FlvError::Invalid(what)),
                    Err(LatmError::Truncated | LatmError::NoConfig) => Err(FlvError::Truncated),
                }
            }
            AudioTag::Frame { codec, offset, flags } => {
                let ms = self.unwrap_ms(ts);
                let data = match body.get(offset..) {
                    Some(d) if !d.is_empty() => body.slice(offset..),
                    _ => return Err(FlvError::Truncated),
                };
                if data.len() > self.cfg.max_frame_bytes {
                    return Err(FlvError::Invalid("audio frame size"));
                }
                let data = if codec == Codec::Aac {
                    if self.audio.codec != Some(Codec::Aac) {
                        self.stats.no_config += 1;
                        return Ok(());
                    }
                    // Some encoders leave the ADTS header on: one whole
                    // ADTS frame is taken without it.
                    match AdtsHeader::parse(&data) {
                        Some(h) if h.frame_len == data.len() => data.slice(h.header_len..),
                        _ => data,
                    }
                } else {
                    // Self-describing formats: the frame header is the
                    // configuration; the FLV flags only when nothing better
                    // is known, so params never flip between the two.
                    let known = self.audio.codec == Some(codec);
                    let info = frame_info(codec, &data).or(if known { None } else { flags });
                    match info {
                        Some(i) => {
                            let params = TrackParams {
                                sample_rate: i.sample_rate,
                                channels: i.channels,
                                codec_string: Some(i.codec_string.to_owned()),
                                ..TrackParams::default()
                            };
                            self.set_audio(codec, params);
                        }
                        None if known => {}
                        None => self.set_audio(codec, TrackParams::default()),
                    }
                    data
                };
                if !self.in_order(TagKind::Audio, ms) {
                    return Ok(());
                }
                let t = ms.wrapping_mul(TICKS_PER_MS) & TS_MASK;
                let frame = Frame {
                    track: 0,
                    dts: t,
                    pts: t,
                    keyframe: true,
                    data,
                };
                self.deliver(TagKind::Audio, frame, ms);
                Ok(())
            }
        }
    }

    fn unsupported_audio(&mut self, name: &'static str) {
        self.stats.unsupported_audio_tags += 1;
        self.stats.unsupported_audio_codec = Some(name);
    }

    /// Applies an audio configuration; a change gives a new `Tracks` event.
    fn set_audio(&mut self, codec: Codec, params: TrackParams) {
        if self.audio.codec == Some(codec) && self.audio.params == params {
            return;
        }
        if self.audio.codec.is_some() {
            self.stats.config_changes += 1;
            if self.holding {
                self.release();
            }
        }
        self.audio.codec = Some(codec);
        self.audio.params = params;
        self.dirty = true;
        self.maybe_release(None);
    }

    /// A frame of a configured track, timed: held before the first
    /// `Tracks` event, else queued.
    fn deliver(&mut self, kind: TagKind, frame: Frame, ms: i64) {
        if !self.holding {
            self.send(kind, frame);
            return;
        }
        self.first_held_ms.get_or_insert(ms);
        self.held_bytes += frame.data.len();
        self.held.push_back((kind, frame));
        self.maybe_release(Some(ms));
    }

    /// Ends the hold when the first `Tracks` event is due (see the module
    /// docs); `now_ms` is the unwrapped time of the frame just held.
    fn maybe_release(&mut self, now_ms: Option<i64>) {
        if !self.holding {
            return;
        }
        let v = self.video.configured().is_some();
        let a = self.audio.codec.is_some();
        if !v && !a {
            return;
        }
        let complete = match self.expect {
            Some((ev, ea)) => (!ev || v) && (!ea || a),
            None => v && a,
        };
        let probed = match (now_ms, self.first_held_ms) {
            (Some(now), Some(first)) => now.saturating_sub(first) >= i64::from(self.cfg.probe_ms),
            _ => false,
        };
        let full = self.held.len() >= self.cfg.max_held_frames || self.held_bytes >= self.cfg.max_held_bytes;
        if full && !complete && !probed {
            self.stats.hold_overflows += 1;
        }
        if complete || probed || full {
            self.release();
        }
    }

    /// Ends the hold: the tracks known are published with the held frames.
    fn release(&mut self) {
        self.holding = false;
        self.dirty = true;
        self.held_bytes = 0;
        self.first_held_ms = None;
        for (kind, frame) in std::mem::take(&mut self.held) {
            self.send(kind, frame);
        }
    }

    /// Queues a frame, after a `Tracks` event if the track set changed.
    fn send(&mut self, kind: TagKind, mut frame: Frame) {
        let max_events = 2 * self.cfg.max_held_frames + 16;
        let max_bytes = 2 * self.cfg.max_held_bytes + self.cfg.max_frame_bytes;
        if self.out.len() >= max_events || self.out_bytes + frame.data.len() > max_bytes {
            self.stats.queue_overflows += 1;
            return;
        }
        if self.dirty {
            self.publish();
        }
        let id = match kind {
            TagKind::Video => self.video_id,
            TagKind::Audio => self.audio_id,
        };
        let Some(id) = id else {
            self.stats.no_config += 1;
            return;
        };
        frame.track = id;
        self.out_bytes += frame.data.len();
        self.stats.frames += 1;
        self.out.push_back(DemuxEvent::Frame(frame));
    }

    /// Queues a `Tracks` event when the configured tracks differ from the
    /// last one sent.
    fn publish(&mut self) {
        self.dirty = false;
        let mut set = Vec::with_capacity(2);
        let mut video_id = None;
        let mut audio_id = None;
        if let Some(codec) = self.video.configured() {
            video_id = Some(0);
            set.push(Track {
                id: 0,
                codec,
                params: self.video.params.clone(),
            });
        }
        if let Some(codec) = self.audio.codec {
            let id = set.len() as u16;
            audio_id = Some(id);
            set.push(Track {
                id,
                codec,
                params: self.audio.params.clone(),
            });
        }
        self.video_id = video_id;
        self.audio_id = audio_id;
        if self.tracks.as_deref() == Some(&set[..]) {
            return;
        }
        let set: Arc<[Track]> = set.into();
        self.tracks = Some(set.clone());
        self.stats.tracks_events += 1;
        self.out.push_back(DemuxEvent::Tracks(set));
    }
}

#[cfg(test)]
mod tests;
