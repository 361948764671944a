//! HLS playlist rendering (RFC 8216): live media playlists, the master
//! playlist (one variant, or video variants with audio renditions), the
//! per-track URL scheme, and the facts a playlist needs from a segment
//! (random access at its start, SCTE-35 cues). Pure: string building from
//! segment metadata, no I/O and no clock.
//!
//! Invariants:
//! - `EXT-X-MEDIA-SEQUENCE` is the first listed segment's number and the
//!   listed numbers are consecutive; `EXT-X-DISCONTINUITY-SEQUENCE` counts
//!   the discontinuities that have left the window.
//! - Every `EXTINF`, rounded to the nearest second, is at most
//!   `EXT-X-TARGETDURATION` when the target comes from
//!   [`target_duration_for`] (RFC 8216 §4.3.3.1).
//! - `EXT-X-INDEPENDENT-SEGMENTS` (§4.3.5.1) is written only when every
//!   listed segment is [`PlaylistEntry::independent`].
//! - Every `EXT-X-DATERANGE` (§4.3.2.7) is a function of one cue alone,
//!   which tags appear is a function of the listed segments, and a media
//!   playlist holding one also holds `EXT-X-PROGRAM-DATE-TIME` (on every
//!   segment), so every node renders the same tags for the same window.

use crate::frame::{Codec, Segment, Track, TrackKind, CLOCK_HZ};
use crate::scte35::{self, SpliceCommand};
use bytes::Bytes;
use std::fmt::{self, Write};
use std::sync::Arc;

/// Name of a media playlist, in the stream's directory or a track selection's.
pub const MEDIA_PLAYLIST: &str = "mono.m3u8";
/// `GROUP-ID` of the audio renditions in a master playlist.
pub const AUDIO_GROUP: &str = "audio";
/// Cues of one segment that become `EXT-X-DATERANGE` tags; more are dropped
/// (a feed that floods cues must not blow up every playlist).
pub const MAX_CUES_PER_SEGMENT: usize = 16;

/// What a media playlist needs to know about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistEntry {
    pub seq: u64,
    /// UTC start, 90 kHz ticks since the epoch.
    pub start: i64,
    /// Duration in 90 kHz ticks.
    pub duration: i64,
    pub discontinuity: bool,
    /// The `EXT-X-TARGETDURATION` the segment's stream declared, whole
    /// seconds ([`Segment::target_duration`]); 0 when unknown.
    pub target_duration: u32,
    /// The segment begins with a random access point on the timing track of
    /// the playlist's tracks (see [`video_raps`]): decodable on its own.
    pub independent: bool,
    /// `EXT-X-DATERANGE` tags written before this segment (see [`scte35_cues`]).
    pub cues: Arc<[DateRange]>,
}

impl PlaylistEntry {
    /// The entry of `segment`, with the independence and cues the caller
    /// derived from it (once, when the segment entered the window).
    pub fn new(segment: &Segment, independent: bool, cues: Arc<[DateRange]>) -> Self {
        PlaylistEntry {
            seq: segment.seq,
            start: segment.start,
            duration: segment.duration,
            discontinuity: segment.discontinuity,
            target_duration: segment.target_duration,
            independent,
            cues,
        }
    }
}

/// URI of a segment, relative to the playlist: `<seq>.ts`.
pub fn segment_uri(seq: u64) -> String {
    format!("{seq}.ts")
}

/// Parses a segment resource name produced by [`segment_uri`].
pub fn parse_segment_uri(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".ts")?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Highest 1-based video or audio index a [`TrackSelection`] can name.
pub const MAX_TRACK_INDEX: u8 = 32;

/// A choice of tracks in Flussonic's URL form: the directory `tracks-v1a2`
/// of `NAME/tracks-v1a2/mono.m3u8` and `NAME/tracks-v1a2/SEQ.ts`.
///
/// `vN` is the N-th video track and `aN` the N-th audio track of the stream,
/// counted from 1 in track order. A selection names at most one video track,
/// first, then any audio tracks in strictly ascending order, so every
/// selection has exactly one spelling. Subtitle and data tracks (teletext,
/// DVB subtitles, SCTE-35) ride along with every selection that holds video,
/// and with every selection of a stream that has no video; a selection of
/// audio tracks beside video is audio only, as an audio rendition of a
/// master playlist must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrackSelection {
    /// 1-based index among video tracks.
    pub video: Option<u8>,
    /// Bit `N - 1` selects the N-th audio track.
    pub audio: u32,
}

impl TrackSelection {
    /// One video track alone (1-based index), with subtitle and data tracks.
    pub fn video(n: u8) -> Self {
        TrackSelection {
            video: Some(n),
            audio: 0,
        }
    }

    /// One audio track alone (1-based index).
    pub fn audio(n: u8) -> Self {
        TrackSelection {
            video: None,
            audio: 1u32.checked_shl(u32::from(n).wrapping_sub(1)).unwrap_or(0),
        }
    }

    /// Parses a directory name such as `tracks-v1`, `tracks-a2`,
    /// `tracks-v1a1a3`. `None` for anything else: an unknown letter, a
    /// repeated or out-of-order index, an index of 0, above
    /// [`MAX_TRACK_INDEX`] or with a leading zero, or no index at all.
    pub fn parse(dir: &str) -> Option<Self> {
        let mut rest = dir.strip_prefix("tracks-")?.as_bytes();
        let mut sel = TrackSelection { video: None, audio: 0 };
        let mut last_audio = 0u8;
        let mut first = true;
        while let Some((&kind, tail)) = rest.split_first() {
            let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
            let (num, after) = tail.split_at(digits);
            let n = parse_index(num)?;
            match kind {
                b'v' if first => sel.video = Some(n),
                b'a' if n > last_audio => {
                    sel.audio |= 1 << (n - 1);
                    last_audio = n;
                }
                _ => return None,
            }
            first = false;
            rest = after;
        }
        (!first).then_some(sel)
    }

    /// A number that identifies the selection (for caches).
    pub fn key(&self) -> u64 {
        u64::from(self.video.unwrap_or(0)) << 32 | u64::from(self.audio)
    }

    /// The ids of the tracks this selection takes from `tracks`, in track
    /// order, with the subtitle and data tracks that ride along. `None` when
    /// it names a video or audio track that `tracks` does not have.
    pub fn track_ids(&self, tracks: &[Track]) -> Option<Vec<u16>> {
        let videos: Vec<&Track> = tracks.iter().filter(|t| t.kind() == TrackKind::Video).collect();
        let audios: Vec<&Track> = tracks.iter().filter(|t| t.kind() == TrackKind::Audio).collect();
        let video = match self.video {
            Some(n) => Some(videos.get(usize::from(n).checked_sub(1)?)?.id),
            None => None,
        };
        if audios.len() < 32 && self.audio >> audios.len() != 0 {
            return None;
        }
        let audio_ids: Vec<u16> = audios
            .iter()
            .enumerate()
            .filter(|(i, _)| self.audio >> i & 1 == 1)
            .map(|(_, t)| t.id)
            .collect();
        let extras = video.is_some() || videos.is_empty();
        Some(
            tracks
                .iter()
                .filter(|t| match t.kind() {
                    TrackKind::Video => Some(t.id) == video,
                    TrackKind::Audio => audio_ids.contains(&t.id),
                    TrackKind::Subtitle | TrackKind::Data => extras,
                })
                .map(|t| t.id)
                .collect(),
        )
    }
}

/// A 1-based index written without a leading zero, 1..=[`MAX_TRACK_INDEX`].
fn parse_index(digits: &[u8]) -> Option<u8> {
    if digits.is_empty() || digits.len() > 2 || digits[0] == b'0' {
        return None;
    }
    let n = digits.iter().fold(0u8, |n, d| n * 10 + (d - b'0'));
    (n <= MAX_TRACK_INDEX).then_some(n)
}

impl fmt::Display for TrackSelection {
    /// The directory name, e.g. `tracks-v1a2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tracks-")?;
        if let Some(v) = self.video {
            write!(f, "v{v}")?;
        }
        for i in 0..32 {
            if self.audio >> i & 1 == 1 {
                write!(f, "a{}", i + 1)?;
            }
        }
        Ok(())
    }
}

/// For each video track of `segment`, in track order: whether the
/// segment's first frame of that track is a random access point
/// ([`crate::Frame::keyframe`]). A video track with no frame in the segment
/// counts as not starting with one. Audio frames are always random access
/// points, so a playlist without video is always independent.
pub fn video_raps(segment: &Segment) -> Vec<bool> {
    let videos: Vec<u16> = segment
        .tracks
        .iter()
        .filter(|t| t.kind() == TrackKind::Video)
        .map(|t| t.id)
        .collect();
    let mut first: Vec<Option<bool>> = vec![None; videos.len()];
    let mut open = videos.len();
    for f in &segment.frames {
        if open == 0 {
            break;
        }
        if let Some(i) = videos.iter().position(|&v| v == f.track) {
            if first[i].is_none() {
                first[i] = Some(f.keyframe);
                open -= 1;
            }
        }
    }
    first.into_iter().map(|r| r.unwrap_or(false)).collect()
}

/// An `EXT-X-DATERANGE` tag for one SCTE-35 cue (RFC 8216 §4.3.2.7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateRange {
    /// `ID`: `splice-<splice_event_id>-<out|in>-<unix ms>` for a
    /// splice_insert, `scte35-<unix ms>-<CRC_32 hex>` for other commands.
    pub id: String,
    /// `START-DATE`: the cue frame's PTS, UTC 90 kHz ticks.
    pub start: i64,
    /// `SCTE35-OUT`, `SCTE35-IN` or `SCTE35-CMD`.
    pub attribute: &'static str,
    /// `PLANNED-DURATION` in 90 kHz ticks: a splice_insert's break_duration.
    pub planned_duration: Option<i64>,
    /// The whole `splice_info_section`, as the frame carries it.
    pub section: Bytes,
}

/// The SCTE-35 cues of `segment` that become `EXT-X-DATERANGE` tags, in
/// frame order, at most [`MAX_CUES_PER_SEGMENT`]:
/// - splice_insert leaving the network: `SCTE35-OUT` with the break's
///   `PLANNED-DURATION` when given; returning: `SCTE35-IN`;
/// - time_signal and every other command: `SCTE35-CMD`;
/// - splice_null, cancelled events and sections that do not parse (bad
///   CRC, truncated): no tag.
///
/// Each tag is a function of its own cue (section bytes and PTS), never of
/// other cues, so nodes that joined at different times agree. An OUT and
/// its IN therefore get different IDs: pairing them would need the OUT,
/// which has often left the window when the IN arrives.
pub fn scte35_cues(segment: &Segment) -> Vec<DateRange> {
    let cue_tracks: Vec<u16> = segment
        .tracks
        .iter()
        .filter(|t| t.codec == Codec::Scte35)
        .map(|t| t.id)
        .collect();
    if cue_tracks.is_empty() {
        return Vec::new();
    }
    segment
        .frames
        .iter()
        .filter(|f| cue_tracks.contains(&f.track))
        .filter_map(|f| {
            let info = scte35::parse(&f.data).ok()?;
            let attribute = info.daterange_attribute()?;
            let ms = ticks_to_millis(f.pts);
            let (id, planned_duration) = match info.command {
                SpliceCommand::Insert(i) => (
                    format!(
                        "splice-{}-{}-{ms}",
                        i.event_id,
                        if i.out_of_network { "out" } else { "in" }
                    ),
                    i.break_duration.filter(|_| i.out_of_network).map(|b| b.duration),
                ),
                _ => {
                    let crc = f.data.len().checked_sub(4).and_then(|n| f.data.get(n..)).unwrap_or(&[]);
                    let mut id = format!("scte35-{ms}-");
                    for b in crc {
                        let _ = write!(id, "{b:02x}");
                    }
                    (id, None)
                }
            };
            Some(DateRange {
                id,
                start: f.pts,
                attribute,
                planned_duration,
                section: f.data.clone(),
            })
        })
        .take(MAX_CUES_PER_SEGMENT)
        .collect()
}

/// Appends one `EXT-X-DATERANGE` line.
fn write_daterange(out: &mut String, d: &DateRange) {
    let _ = write!(
        out,
        "#EXT-X-DATERANGE:ID=\"{}\",START-DATE=\"{}\"",
        d.id,
        format_utc_millis(ticks_to_millis(d.start))
    );
    if let Some(p) = d.planned_duration {
        let _ = write!(out, ",PLANNED-DURATION={}", format_seconds(p));
    }
    let _ = write!(out, ",{}=0x", d.attribute);
    for b in d.section.iter() {
        let _ = write!(out, "{b:02X}");
    }
    out.push('\n');
}

/// Renders a live media playlist.
///
/// `discontinuity_sequence` is the count of discontinuities before the first
/// entry. `target_duration` is in whole seconds: [`target_duration_for`] the
/// entries, or more (callers keep it from shrinking). `query` (without `?`)
/// is appended to segment URIs so tokens follow the viewer. `base` is
/// prefixed to every segment URI: empty for relative URIs, or an absolute
/// `http://host/NAME/` (`http://host/NAME/tracks-v1/` for a track selection)
/// for a playlist served through a redirect.
///
/// `EXT-X-INDEPENDENT-SEGMENTS` is written only when every entry is
/// independent. Each entry's cues become `EXT-X-DATERANGE` tags before its
/// URI. A cue whose ID or whose section bytes an earlier tag of the
/// playlist already has is skipped: encoders repeat a cue before its splice,
/// and no two tags may share an ID.
pub fn render_media_playlist(
    entries: &[PlaylistEntry],
    target_duration: u64,
    discontinuity_sequence: u64,
    query: Option<&str>,
    base: &str,
) -> String {
    render_playlist(entries, target_duration, discontinuity_sequence, query, base, "")
}

/// [`render_media_playlist`] with `type_tag` (a whole `#EXT-X-PLAYLIST-TYPE`
/// line, or empty) after the version line.
fn render_playlist(
    entries: &[PlaylistEntry],
    target_duration: u64,
    discontinuity_sequence: u64,
    query: Option<&str>,
    base: &str,
    type_tag: &str,
) -> String {
    let mut out = String::with_capacity(192 + entries.len() * (112 + base.len() + query.map_or(0, str::len)));
    out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
    out.push_str(type_tag);
    if entries.iter().all(|e| e.independent) {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target_duration}");
    let first = entries.first().map_or(0, |e| e.seq);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
    let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}");
    let mut written: Vec<&DateRange> = Vec::new();
    for e in entries {
        // Every flagged segment keeps its tag while listed, so callers count
        // into the discontinuity sequence only the flagged segments that left.
        if e.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        // On every segment: DATERANGE needs a PROGRAM-DATE-TIME (§4.3.2.7),
        // and after a discontinuity the dates restart from it.
        out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
        push_utc_millis(&mut out, ticks_to_millis(e.start));
        out.push('\n');
        for d in e.cues.iter() {
            if !written.iter().any(|w| w.id == d.id || w.section == d.section) {
                written.push(d);
                write_daterange(&mut out, d);
            }
        }
        out.push_str("#EXTINF:");
        let millis = (i128::from(e.duration) * 1000 + i128::from(CLOCK_HZ / 2)).div_euclid(i128::from(CLOCK_HZ));
        let _ = write!(out, "{}.", millis.div_euclid(1000));
        push_digits(&mut out, millis.rem_euclid(1000) as u64, 3);
        out.push_str(",\n");
        out.push_str(base);
        let _ = write!(out, "{}.ts", e.seq);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            out.push('?');
            out.push_str(q);
        }
        out.push('\n');
    }
    out
}

/// What kind of DVR playlist [`render_archive_playlist`] writes (RFC 8216
/// §4.3.3.5, EXT-X-PLAYLIST-TYPE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlaylistType {
    /// A finished range (`archive-FROM-DURATION.m3u8`): never changes.
    /// `#EXT-X-PLAYLIST-TYPE:VOD` and `#EXT-X-ENDLIST` (§4.3.3.4).
    Vod,
    /// A range that grows at its end only (`archive-FROM-now.m3u8`):
    /// `#EXT-X-PLAYLIST-TYPE:EVENT`, no `EXT-X-ENDLIST`. The caller keeps
    /// the first entry fixed and only appends (§6.2.1).
    Event,
    /// A sliding window (timeshift, `rewind-SECONDS.m3u8`): no
    /// `EXT-X-PLAYLIST-TYPE` and no `EXT-X-ENDLIST`, like a live playlist.
    Live,
}

/// A DVR playlist (RFC 8216 §4.3.3.5 EXT-X-PLAYLIST-TYPE): what
/// [`render_media_playlist`] writes for `entries`, with
/// `#EXT-X-PLAYLIST-TYPE:VOD` after `EXT-X-VERSION` and `#EXT-X-ENDLIST`
/// at the end ([`PlaylistType::Vod`]), `#EXT-X-PLAYLIST-TYPE:EVENT`
/// ([`PlaylistType::Event`]) or nothing extra ([`PlaylistType::Live`]).
///
/// A gap between two entries ([`crate::dvr::ranges::is_gap`]: the next one
/// starts more than [`crate::dvr::ranges::GAP_TOLERANCE`] after the
/// previous one's end, or that much before it) gets `EXT-X-DISCONTINUITY` (§4.3.2.3) even when the entry's
/// flag is not set, so players do not play across the hole. A caller that
/// slides a window counts such entries into `discontinuity_sequence` like
/// flagged ones. The target duration is [`target_duration_for`] the
/// entries; `query` and `base` are as for [`render_media_playlist`].
pub fn render_archive_playlist(
    entries: &[PlaylistEntry],
    kind: PlaylistType,
    discontinuity_sequence: u64,
    query: Option<&str>,
    base: &str,
) -> String {
    let gap_at = |i: usize| {
        i > 0 && !entries[i].discontinuity && {
            let p = &entries[i - 1];
            crate::dvr::ranges::is_gap(p.start.saturating_add(p.duration), entries[i].start)
        }
    };
    let marked: Option<Vec<PlaylistEntry>> = (0..entries.len()).any(gap_at).then(|| {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| PlaylistEntry {
                discontinuity: e.discontinuity || gap_at(i),
                ..e.clone()
            })
            .collect()
    });
    let entries = marked.as_deref().unwrap_or(entries);
    let tag = match kind {
        PlaylistType::Vod => "#EXT-X-PLAYLIST-TYPE:VOD\n",
        PlaylistType::Event => "#EXT-X-PLAYLIST-TYPE:EVENT\n",
        PlaylistType::Live => "",
    };
    let mut out = render_playlist(
        entries,
        target_duration_for(entries),
        discontinuity_sequence,
        query,
        base,
        tag,
    );
    if kind == PlaylistType::Vod {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// The target duration, whole seconds, that `entries` need (RFC 8216
/// §4.3.3.1): the largest of each segment's declared
/// [`PlaylistEntry::target_duration`] (for a segment that declares none,
/// its duration rounded up) and each `EXTINF` rounded to the nearest
/// second; at least 1. A stream whose segmenter keeps its promise thus gets
/// exactly its declared value; a segment that overran it raises the result
/// rather than break the `EXTINF` rule. Callers keep the largest value they
/// ever declared for a stream.
pub fn target_duration_for(entries: &[PlaylistEntry]) -> u64 {
    entries
        .iter()
        .map(|e| {
            let ticks = i128::from(e.duration.max(0));
            let hz = i128::from(CLOCK_HZ);
            // EXTINF as printed (milliseconds, rounded), then rounded to seconds.
            let printed = (ticks * 1000 + hz / 2) / hz;
            let nearest = (printed + 500) / 1000;
            let declared = match e.target_duration {
                0 => (ticks + hz - 1) / hz,
                t => i128::from(t),
            };
            u64::try_from(nearest.max(declared)).unwrap_or(u64::MAX)
        })
        .max()
        .unwrap_or(0)
        .max(1)
}

/// One variant of a master playlist.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    pub uri: String,
    /// Peak bits per second.
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 codec strings, e.g. `avc1.4d401f`, `mp4a.40.2`.
    pub codecs: Vec<String>,
    pub resolution: Option<(u16, u16)>,
    pub frame_rate: Option<f64>,
    /// `AUDIO`: the group of audio renditions that plays with it.
    pub audio: Option<String>,
}

/// An `EXT-X-MEDIA` audio rendition (RFC 8216 §4.3.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioRendition {
    /// 1-based index among the stream's audio tracks.
    pub index: u8,
    /// RFC 5646 tag (the PMT's ISO 639 code), when known.
    pub language: Option<String>,
    /// Unique within the group.
    pub name: String,
    pub default: bool,
    /// Channel count, when known.
    pub channels: Option<u8>,
    /// RFC 6381 codec string, when known.
    pub codec: Option<String>,
    pub uri: String,
}

/// A language code safe to write into a quoted attribute: 1 to 16 ASCII
/// letters, digits or `-` (ISO 639 codes from PMTs are 3 letters).
fn clean_language(l: &str) -> Option<&str> {
    let l = l.trim();
    (!l.is_empty() && l.len() <= 16 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')).then_some(l)
}

/// The audio renditions of `tracks`, one per audio track in track order:
/// NAME is the language, or `Audio N` without one (with ` N` appended when
/// an earlier track already has that name, so names stay unique in the
/// group as §4.3.4.1.1 requires), LANGUAGE only when known, the first one
/// DEFAULT, and URI `<base>tracks-aN/mono.m3u8[?query]`. At most
/// [`MAX_TRACK_INDEX`] audio tracks are listed (the URL scheme names no more).
pub fn audio_renditions(tracks: &[Track], base: &str, query: Option<&str>) -> Vec<AudioRendition> {
    let mut out: Vec<AudioRendition> = Vec::new();
    for (i, t) in tracks
        .iter()
        .filter(|t| t.kind() == TrackKind::Audio)
        .take(usize::from(MAX_TRACK_INDEX))
        .enumerate()
    {
        let index = (i + 1) as u8;
        let language = t
            .params
            .language
            .as_deref()
            .and_then(clean_language)
            .map(str::to_string);
        let mut name = language.clone().unwrap_or_else(|| format!("Audio {index}"));
        if out.iter().any(|r| r.name == name) {
            name = format!("{name} {index}");
        }
        let mut uri = format!("{base}{}/{MEDIA_PLAYLIST}", TrackSelection::audio(index));
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            uri.push('?');
            uri.push_str(q);
        }
        out.push(AudioRendition {
            index,
            language,
            name,
            default: i == 0,
            channels: (t.params.channels > 0).then_some(t.params.channels),
            codec: t.params.codec_string.clone(),
            uri,
        });
    }
    out
}

/// Renders a master playlist: the audio renditions (if any) as
/// `EXT-X-MEDIA` tags in group [`AUDIO_GROUP`], then `variants`.
/// `independent` writes `EXT-X-INDEPENDENT-SEGMENTS`, which then applies to
/// every media playlist listed (§4.3.5.1).
pub fn render_master_playlist(variants: &[Variant], audio: &[AudioRendition], independent: bool) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    if independent {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    for r in audio {
        let _ = write!(out, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{AUDIO_GROUP}\"");
        if let Some(l) = &r.language {
            let _ = write!(out, ",LANGUAGE=\"{l}\"");
        }
        let _ = write!(
            out,
            ",NAME=\"{}\",DEFAULT={},AUTOSELECT=YES",
            r.name,
            if r.default { "YES" } else { "NO" }
        );
        if let Some(c) = r.channels {
            let _ = write!(out, ",CHANNELS=\"{c}\"");
        }
        let _ = writeln!(out, ",URI=\"{}\"", r.uri);
    }
    for v in variants {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth.max(1));
        if let Some(avg) = v.average_bandwidth {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={}", avg.max(1));
        }
        if !v.codecs.is_empty() {
            let _ = write!(out, ",CODECS=\"{}\"", v.codecs.join(","));
        }
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fr) = v.frame_rate {
            let _ = write!(out, ",FRAME-RATE={fr:.3}");
        }
        if let Some(g) = &v.audio {
            let _ = write!(out, ",AUDIO=\"{g}\"");
        }
        out.push('\n');
        out.push_str(&v.uri);
        out.push('\n');
    }
    out
}

/// Unix milliseconds of UTC 90 kHz ticks (floor).
fn ticks_to_millis(ticks: i64) -> i64 {
    ticks.div_euclid(CLOCK_HZ / 1000)
}

/// Seconds with millisecond precision, rounded to nearest.
fn format_seconds(ticks: i64) -> String {
    let millis = (i128::from(ticks) * 1000 + i128::from(CLOCK_HZ / 2)).div_euclid(i128::from(CLOCK_HZ));
    format!("{}.{:03}", millis.div_euclid(1000), millis.rem_euclid(1000))
}

fn push_digits(out: &mut String, n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut n = n;
    let mut i = buf.len();
    while n > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or(""));
}

fn push_utc_millis(out: &mut String, ms: i64) {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        out.push_str(&format_utc_millis(ms));
        return;
    }
    push_digits(out, y as u64, 4);
    out.push('-');
    push_digits(out, u64::from(m), 2);
    out.push('-');
    push_digits(out, u64::from(d), 2);
    out.push('T');
    push_digits(out, (sod / 3600) as u64, 2);
    out.push(':');
    push_digits(out, (sod / 60 % 60) as u64, 2);
    out.push(':');
    push_digits(out, (sod % 60) as u64, 2);
    out.push('.');
    push_digits(out, millis as u64, 3);
    out.push('Z');
}

/// Formats Unix milliseconds as ISO 8601 UTC (`2026-11-22T01:02:03.456Z`).
pub fn format_utc_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Proleptic Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, TrackParams};
    use crate::ts::crc::crc32_mpeg2;
    use proptest::prelude::*;

    fn entry(seq: u64, start_s: i64, dur_ms: i64, disc: bool) -> PlaylistEntry {
        PlaylistEntry {
            seq,
            start: start_s * CLOCK_HZ,
            duration: dur_ms * 90,
            discontinuity: disc,
            target_duration: 2,
            independent: true,
            cues: Arc::from(Vec::new()),
        }
    }

    fn track(id: u16, codec: Codec, language: Option<&str>, channels: u8, codec_string: Option<&str>) -> Track {
        Track {
            id,
            codec,
            params: TrackParams {
                language: language.map(str::to_string),
                channels,
                codec_string: codec_string.map(str::to_string),
                ..TrackParams::default()
            },
        }
    }

    fn frame(track: u16, pts: i64, keyframe: bool, data: &[u8]) -> Frame {
        Frame {
            track,
            dts: pts,
            pts,
            keyframe,
            data: Bytes::copy_from_slice(data),
        }
    }

    fn segment(tracks: Vec<Track>, frames: Vec<Frame>) -> Segment {
        Segment {
            seq: 7,
            start: 0,
            duration: 2 * CLOCK_HZ,
            discontinuity: false,
            target_duration: 2,
            tracks: Arc::from(tracks),
            frames,
        }
    }

    /// A `splice_info_section` (ANSI/SCTE 35 §9.6) around one command, with CRC.
    fn section(command_type: u8, command: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF];
        s.push(0xF0 | ((command.len() >> 8) as u8 & 0x0F));
        s.push(command.len() as u8);
        s.push(command_type);
        s.extend_from_slice(command);
        s.extend_from_slice(&[0, 0]); // descriptor_loop_length
        let len = s.len() - 3 + 4;
        s[1] = 0x30 | ((len >> 8) as u8 & 0x0F);
        s[2] = len as u8;
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    /// splice_insert (§9.7.3), program splice at a given 33-bit time.
    fn insert(event: u32, out: bool, duration: Option<i64>) -> Vec<u8> {
        let mut c = event.to_be_bytes().to_vec();
        c.push(0x7F);
        c.push(if out { 0x80 } else { 0 } | 0x40 | if duration.is_some() { 0x20 } else { 0 } | 0x0F);
        c.extend_from_slice(&[0xFE, 0, 0, 0x10, 0]);
        if let Some(d) = duration {
            c.push(0xFE | ((d >> 32) & 1) as u8);
            c.extend_from_slice(&(d as u32).to_be_bytes());
        }
        c.extend_from_slice(&[0x00, 0x01, 0, 0]);
        section(0x05, &c)
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02X}")).collect()
    }

    #[test]
    fn renders_media_playlist() {
        let e = [
            entry(1_763_769_600, 1_763_769_600, 2000, false),
            entry(1_763_769_601, 1_763_769_602, 2040, true),
        ];
        let text = render_media_playlist(&e, 3, 4, Some("token=abc"), "");
        let abs = render_media_playlist(&e, 3, 4, None, "http://h:1/x/tracks-a2/");
        assert!(abs.contains("\nhttp://h:1/x/tracks-a2/1763769601.ts\n"), "{abs}");
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:3\n\
             #EXT-X-MEDIA-SEQUENCE:1763769600\n#EXT-X-DISCONTINUITY-SEQUENCE:4\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-11-22T00:00:00.000Z\n#EXTINF:2.000,\n1763769600.ts?token=abc\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-11-22T00:00:02.000Z\n#EXTINF:2.040,\n1763769601.ts?token=abc\n"
        );
    }

    #[test]
    fn independent_segments_only_when_every_entry_is() {
        let mut e = vec![entry(1, 0, 2000, false), entry(2, 2, 2000, false)];
        assert!(render_media_playlist(&e, 2, 0, None, "").contains("#EXT-X-INDEPENDENT-SEGMENTS\n"));
        e[1].independent = false;
        assert!(!render_media_playlist(&e, 2, 0, None, "").contains("INDEPENDENT"));
        e.remove(1);
        assert!(
            render_media_playlist(&e, 2, 0, None, "").contains("#EXT-X-INDEPENDENT-SEGMENTS\n"),
            "back once the segment has left"
        );
    }

    #[test]
    fn target_duration_is_the_declared_one() {
        let with = |dur_ms: i64, declared: u32| PlaylistEntry {
            target_duration: declared,
            ..entry(1, 0, dur_ms, false)
        };
        // Declared: kept while every EXTINF rounds to at most it.
        assert_eq!(target_duration_for(&[with(2000, 2)]), 2);
        assert_eq!(target_duration_for(&[with(2040, 2), with(2499, 2)]), 2);
        assert_eq!(target_duration_for(&[with(1000, 6)]), 6);
        // An overrun raises it rather than break the EXTINF rule.
        assert_eq!(target_duration_for(&[with(2000, 2), with(2500, 2)]), 3);
        assert_eq!(target_duration_for(&[with(9000, 2)]), 9);
        // Not declared (a v1 peer): the duration rounded up.
        assert_eq!(target_duration_for(&[with(2000, 0)]), 2);
        assert_eq!(target_duration_for(&[with(2001, 0)]), 3);
        assert_eq!(target_duration_for(&[with(0, 0)]), 1);
        assert_eq!(target_duration_for(&[]), 1);
        // A restarted source that declares more: the larger one.
        assert_eq!(target_duration_for(&[with(2000, 2), with(4000, 4)]), 4);
    }

    fn four_languages() -> Vec<Track> {
        vec![
            track(0, Codec::H264, None, 0, Some("avc1.4d401f")),
            track(1, Codec::Aac, Some("eng"), 2, Some("mp4a.40.2")),
            track(2, Codec::Ac3, Some("deu"), 6, Some("ac-3")),
            track(3, Codec::Eac3, Some("eng"), 6, Some("ec-3")),
            track(4, Codec::MpegAudio, None, 2, Some("mp4a.40.34")),
            track(5, Codec::Teletext, Some("fra"), 0, None),
            track(6, Codec::Scte35, None, 0, None),
        ]
    }

    #[test]
    fn master_with_four_audio_languages() {
        let tracks = four_languages();
        let audio = audio_renditions(&tracks, "", Some("token=t"));
        let mut codecs = vec!["avc1.4d401f".to_string()];
        codecs.extend(audio.iter().filter_map(|r| r.codec.clone()));
        let v = Variant {
            uri: "tracks-v1/mono.m3u8?token=t".into(),
            bandwidth: 3_000_000,
            average_bandwidth: None,
            codecs,
            resolution: Some((1280, 720)),
            frame_rate: None,
            audio: Some(AUDIO_GROUP.into()),
        };
        assert_eq!(
            render_master_playlist(&[v], &audio, true),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",LANGUAGE=\"eng\",NAME=\"eng\",DEFAULT=YES,AUTOSELECT=YES,\
             CHANNELS=\"2\",URI=\"tracks-a1/mono.m3u8?token=t\"\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",LANGUAGE=\"deu\",NAME=\"deu\",DEFAULT=NO,AUTOSELECT=YES,\
             CHANNELS=\"6\",URI=\"tracks-a2/mono.m3u8?token=t\"\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",LANGUAGE=\"eng\",NAME=\"eng 3\",DEFAULT=NO,AUTOSELECT=YES,\
             CHANNELS=\"6\",URI=\"tracks-a3/mono.m3u8?token=t\"\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Audio 4\",DEFAULT=NO,AUTOSELECT=YES,\
             CHANNELS=\"2\",URI=\"tracks-a4/mono.m3u8?token=t\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS=\"avc1.4d401f,mp4a.40.2,ac-3,ec-3,mp4a.40.34\",\
             RESOLUTION=1280x720,AUDIO=\"audio\"\n\
             tracks-v1/mono.m3u8?token=t\n"
        );
        let abs = audio_renditions(&tracks, "http://h/x/", None);
        assert_eq!(abs[1].uri, "http://h/x/tracks-a2/mono.m3u8");
    }

    #[test]
    fn renditions_never_write_unsafe_languages() {
        let t = [
            track(0, Codec::Aac, Some("e\"n"), 0, None),
            track(1, Codec::Aac, Some(""), 0, None),
        ];
        let r = audio_renditions(&t, "", None);
        assert_eq!((r[0].language.as_deref(), r[0].name.as_str()), (None, "Audio 1"));
        assert_eq!((r[1].language.as_deref(), r[1].name.as_str()), (None, "Audio 2"));
        assert_eq!(r[0].channels, None);
        assert!(!render_master_playlist(&[], &r, false).contains("CHANNELS"));
        assert!(!render_master_playlist(&[], &r, false).contains("INDEPENDENT"));
    }

    #[test]
    fn track_selections_parse_in_one_spelling() {
        let ok = [
            ("tracks-v1", Some(1), 0),
            ("tracks-a2", None, 0b10),
            ("tracks-v1a1", Some(1), 0b1),
            ("tracks-v1a1a3", Some(1), 0b101),
            ("tracks-v2a32", Some(2), 1 << 31),
            ("tracks-a1a2a3a4", None, 0b1111),
        ];
        for (s, v, a) in ok {
            let sel = TrackSelection::parse(s).unwrap_or_else(|| panic!("{s}"));
            assert_eq!((sel.video, sel.audio), (v, a), "{s}");
            assert_eq!(sel.to_string(), s);
        }
        for bad in [
            "tracks-",
            "tracks",
            "tracks-v",
            "tracks-v0",
            "tracks-a0",
            "tracks-v01",
            "tracks-v33",
            "tracks-a33",
            "tracks-a1v1",
            "tracks-v1v2",
            "tracks-a2a1",
            "tracks-a1a1",
            "tracks-x1",
            "tracks-v1t1",
            "tracks-v1a",
            "tracks-v1 ",
            "tracks-v100",
            "Tracks-v1",
            "tracks-V1",
            "tracks-v1a1/",
            "v1",
        ] {
            assert_eq!(TrackSelection::parse(bad), None, "{bad}");
        }
        assert_eq!(TrackSelection::audio(3).to_string(), "tracks-a3");
        assert_eq!(TrackSelection::video(1).to_string(), "tracks-v1");
        assert_ne!(TrackSelection::video(1).key(), TrackSelection::audio(1).key());
    }

    #[test]
    fn selections_pick_tracks_and_carry_subtitles_and_data_with_video() {
        let t = four_languages();
        let ids = |s: &str| TrackSelection::parse(s).and_then(|s| s.track_ids(&t));
        assert_eq!(ids("tracks-v1"), Some(vec![0, 5, 6]));
        assert_eq!(ids("tracks-a2"), Some(vec![2]));
        assert_eq!(ids("tracks-v1a1"), Some(vec![0, 1, 5, 6]));
        assert_eq!(ids("tracks-v1a1a3"), Some(vec![0, 1, 3, 5, 6]));
        assert_eq!(ids("tracks-a1a2a3a4"), Some(vec![1, 2, 3, 4]));
        assert_eq!(ids("tracks-a5"), None, "no fifth audio track");
        assert_eq!(ids("tracks-v2"), None, "no second video track");
        assert_eq!(ids("tracks-v1a5"), None);
        // Radio with teletext: no video, so they ride with the audio.
        let radio = [
            track(0, Codec::Aac, None, 2, None),
            track(1, Codec::Teletext, None, 0, None),
        ];
        assert_eq!(TrackSelection::audio(1).track_ids(&radio), Some(vec![0, 1]));
    }

    #[test]
    fn random_access_is_read_from_each_video_tracks_first_frame() {
        let t = vec![
            track(0, Codec::H264, None, 0, None),
            track(1, Codec::Aac, None, 2, None),
            track(2, Codec::H265, None, 0, None),
        ];
        let s = segment(
            t.clone(),
            vec![
                frame(1, 0, true, b"a"),
                frame(0, 0, true, b"v"),
                frame(2, 0, false, b"w"),
                frame(2, 1, true, b"w"),
            ],
        );
        assert_eq!(video_raps(&s), vec![true, false]);
        let s = segment(t.clone(), vec![frame(0, 0, false, b"v"), frame(0, 1, true, b"v")]);
        assert_eq!(video_raps(&s), vec![false, false], "no frame of track 2 at all");
        let audio_only = segment(
            vec![track(0, Codec::Aac, None, 2, None)],
            vec![frame(0, 0, false, b"a")],
        );
        assert!(video_raps(&audio_only).is_empty(), "nothing to wait for: independent");
    }

    #[test]
    fn scte35_cues_become_dateranges_before_their_segment() {
        let t = vec![
            track(0, Codec::H264, None, 0, None),
            track(1, Codec::Scte35, None, 0, None),
        ];
        let out = insert(0x1234, true, Some(30 * CLOCK_HZ));
        let back = insert(0x1234, false, None);
        let signal = section(0x06, &[0xFE, 0, 0, 0, 0]);
        let null = section(0x00, &[]);
        let mut broken = insert(7, true, None);
        let n = broken.len();
        broken[n - 1] ^= 1;
        // 2025-11-22T00:00:01.500Z
        let at = 1_763_769_601 * CLOCK_HZ + CLOCK_HZ / 2;
        let s = segment(
            t.clone(),
            vec![
                frame(0, at, true, b"v"),
                frame(1, at, true, &null),
                frame(1, at, true, &broken),
                frame(1, at, true, &out),
                frame(1, at + CLOCK_HZ, true, &signal),
                frame(0, at, false, &out),
            ],
        );
        let cues = scte35_cues(&s);
        assert_eq!(cues.len(), 2, "null, broken and video frames make no tag: {cues:?}");
        assert_eq!(cues[0].id, "splice-4660-out-1763769601500");
        assert_eq!(cues[0].planned_duration, Some(30 * CLOCK_HZ));
        let crc = hex(&signal[signal.len() - 4..]).to_lowercase();
        assert_eq!(cues[1].id, format!("scte35-1763769602500-{crc}"));
        assert_eq!(cues[1].attribute, "SCTE35-CMD");
        let later = segment(t, vec![frame(1, at + 4 * CLOCK_HZ, true, &back)]);
        let back_cues = scte35_cues(&later);
        assert_eq!(back_cues[0].attribute, "SCTE35-IN");
        assert_eq!(back_cues[0].planned_duration, None);

        let mut e = [
            entry(1, 1_763_769_600, 2000, false),
            entry(2, 1_763_769_602, 2000, false),
        ];
        e[0].cues = Arc::from(cues);
        e[1].cues = Arc::from(back_cues);
        let text = render_media_playlist(&e, 2, 0, None, "");
        let expected = format!(
            "#EXT-X-PROGRAM-DATE-TIME:2025-11-22T00:00:00.000Z\n\
             #EXT-X-DATERANGE:ID=\"splice-4660-out-1763769601500\",START-DATE=\"2025-11-22T00:00:01.500Z\",\
             PLANNED-DURATION=30.000,SCTE35-OUT=0x{}\n\
             #EXT-X-DATERANGE:ID=\"scte35-1763769602500-{crc}\",START-DATE=\"2025-11-22T00:00:02.500Z\",\
             SCTE35-CMD=0x{}\n\
             #EXTINF:2.000,\n1.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-11-22T00:00:02.000Z\n\
             #EXT-X-DATERANGE:ID=\"splice-4660-in-1763769605500\",START-DATE=\"2025-11-22T00:00:05.500Z\",\
             SCTE35-IN=0x{}\n\
             #EXTINF:2.000,\n2.ts\n",
            hex(&out),
            hex(&signal),
            hex(&back)
        );
        assert!(text.ends_with(&expected), "{text}");
    }

    #[test]
    fn repeated_cues_make_one_tag_and_floods_are_capped() {
        let t = vec![
            track(0, Codec::Aac, None, 2, None),
            track(1, Codec::Scte35, None, 0, None),
        ];
        let out = insert(9, true, None);
        // The same section timed at 0 s and 1 s (an immediate cue sent
        // again): one event.
        let frames: Vec<Frame> = (0..40).map(|i| frame(1, CLOCK_HZ * (i % 2), true, &out)).collect();
        let cues = scte35_cues(&segment(t.clone(), frames));
        assert_eq!(cues.len(), MAX_CUES_PER_SEGMENT);
        assert_ne!(cues[0].id, cues[1].id);
        let mut e = [entry(1, 0, 2000, false), entry(2, 2, 2000, false)];
        e[0].cues = Arc::from(cues.clone());
        e[1].cues = Arc::from(cues);
        let text = render_media_playlist(&e, 2, 0, None, "");
        assert_eq!(text.matches("#EXT-X-DATERANGE:").count(), 1, "{text}");
        // Different bytes under one ID (an update of the same event): the
        // first one only, so the ID's attributes never disagree.
        let updated = insert(9, true, Some(CLOCK_HZ));
        let cues = scte35_cues(&segment(t, vec![frame(1, 0, true, &out), frame(1, 0, true, &updated)]));
        assert_eq!((cues.len(), &cues[0].id), (2, &cues[1].id));
        e[0].cues = Arc::from(cues);
        e[1].cues = Arc::from(Vec::new());
        let text = render_media_playlist(&e, 2, 0, None, "");
        assert_eq!(text.matches("#EXT-X-DATERANGE:").count(), 1, "{text}");
        assert!(!text.contains("PLANNED-DURATION"), "{text}");
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_utc_millis(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn segment_uri_round_trip_and_rejects() {
        assert_eq!(parse_segment_uri(&segment_uri(42)), Some(42));
        for bad in [
            "",
            ".ts",
            "a.ts",
            "1.ts.ts",
            "-1.ts",
            "1.m3u8",
            "99999999999999999999999.ts",
            "../1.ts",
        ] {
            assert_eq!(parse_segment_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn archive_playlists_by_kind() {
        let e = [
            entry(1_763_769_600, 1_763_769_600, 2000, false),
            entry(1_763_769_601, 1_763_769_602, 2000, false),
        ];
        let body = "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:1763769600\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-11-22T00:00:00.000Z\n#EXTINF:2.000,\n1763769600.ts?token=t\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-11-22T00:00:02.000Z\n#EXTINF:2.000,\n1763769601.ts?token=t\n";
        assert_eq!(
            render_archive_playlist(&e, PlaylistType::Vod, 0, Some("token=t"), ""),
            format!("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n{body}#EXT-X-ENDLIST\n")
        );
        assert_eq!(
            render_archive_playlist(&e, PlaylistType::Event, 0, Some("token=t"), ""),
            format!("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:EVENT\n{body}")
        );
        assert_eq!(
            render_archive_playlist(&e, PlaylistType::Live, 3, None, "http://h/x/"),
            render_media_playlist(&e, 2, 3, None, "http://h/x/")
        );
        let empty = render_archive_playlist(&[], PlaylistType::Vod, 0, None, "");
        assert!(
            empty.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n"),
            "{empty}"
        );
        assert!(empty.ends_with("\n#EXT-X-ENDLIST\n"), "{empty}");
    }

    #[test]
    fn archive_gaps_become_discontinuities() {
        let mut e = vec![
            entry(1, 100, 2000, false),
            entry(2, 102, 2000, false), // the tolerance after the end: continuous
            entry(3, 200, 2000, false), // a hole: the stream was down
            entry(4, 202, 2000, true),  // flagged: kept
            entry(5, 190, 2000, false), // time went back
        ];
        e[1].start += crate::dvr::ranges::GAP_TOLERANCE; // ...just within the tolerance
        let text = render_archive_playlist(&e, PlaylistType::Vod, 0, None, "");
        let before = |seq: &str| {
            let at = text.find(&format!("\n{seq}.ts\n")).unwrap_or(0);
            let prev = text[..at].rfind(".ts\n").map_or(0, |i| i + 4);
            text[prev..at].contains("#EXT-X-DISCONTINUITY\n")
        };
        assert_eq!(
            ["1", "2", "3", "4", "5"].map(before),
            [false, false, true, true, true],
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 3);
        // The entries themselves are not changed, and without a gap nothing is copied.
        assert!(!e[2].discontinuity);
        e[1].start += 1;
        let text = render_archive_playlist(&e[..2], PlaylistType::Event, 0, None, "");
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n"),
            "one tick over the tolerance: {text}"
        );
        // The target covers the longest segment.
        let long = [entry(1, 0, 2000, false), entry(2, 2, 6500, false)];
        assert!(render_archive_playlist(&long, PlaylistType::Vod, 0, None, "").contains("#EXT-X-TARGETDURATION:7\n"));
    }

    proptest! {
        #[test]
        fn extinf_never_exceeds_target(
            segs in proptest::collection::vec((1i64..20 * CLOCK_HZ, 0u32..8), 1..10),
        ) {
            let entries: Vec<_> = segs.iter().enumerate().map(|(i, (d, declared))| PlaylistEntry {
                target_duration: *declared,
                duration: *d,
                ..entry(i as u64, 0, 0, false)
            }).collect();
            let target = target_duration_for(&entries);
            for e in &entries {
                prop_assert!(target >= u64::from(e.target_duration), "never below a declared value");
            }
            let text = render_media_playlist(&entries, target, 0, None, "");
            for line in text.lines().filter_map(|l| l.strip_prefix("#EXTINF:")) {
                let secs: f64 = line.trim_end_matches(',').parse().map_err(|_| TestCaseError::fail("extinf"))?;
                prop_assert!(secs.round() as u64 <= target);
            }
            let seqs: Vec<u64> = text.lines().filter_map(|l| l.strip_suffix(".ts")).map(|s| s.parse().unwrap_or(u64::MAX)).collect();
            prop_assert_eq!(seqs, (0..entries.len() as u64).collect::<Vec<_>>());
        }

        #[test]
        fn selections_round_trip(video in proptest::option::of(1u8..=MAX_TRACK_INDEX), audio in any::<u32>()) {
            prop_assume!(video.is_some() || audio != 0);
            let sel = TrackSelection { video, audio };
            prop_assert_eq!(TrackSelection::parse(&sel.to_string()), Some(sel));
        }

        #[test]
        fn parsed_selections_have_one_spelling(s in "tracks-[va0-9]{0,12}") {
            if let Some(sel) = TrackSelection::parse(&s) {
                prop_assert_eq!(sel.to_string(), s);
            }
        }

        #[test]
        fn utc_matches_day_arithmetic(days in 0i64..100_000, sod in 0i64..86_400) {
            let s = format_utc_millis((days * 86_400 + sod) * 1000);
            prop_assert_eq!(s.len(), 24);
            let hh: i64 = s[11..13].parse().unwrap_or(-1);
            let mm: i64 = s[14..16].parse().unwrap_or(-1);
            let ss: i64 = s[17..19].parse().unwrap_or(-1);
            prop_assert_eq!(hh * 3600 + mm * 60 + ss, sod);
        }
    }
}
