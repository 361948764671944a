//! A scripted RTMP publisher for integration tests: it reads an MPEG-TS
//! file with strom's own demuxer, turns its frames into FLV tag bodies and
//! publishes them over a real TCP connection with
//! `strom_media::rtmp::ClientSession`, paced in real time, with RTMP
//! timestamps that start wherever the test wants (e.g. just before the
//! 32-bit millisecond clock wraps).
//!
//! Tags follow Adobe FLV 10.1 §E.4.2–3 (AAC and AVC packets), ISO/IEC
//! 14496-15 §5.3.3.1 (AVCDecoderConfigurationRecord) and §8.3.3.1
//! (HEVCDecoderConfigurationRecord), and Enhanced RTMP's ExVideoTagHeader
//! for HEVC (FourCC `hvc1`). Everything runs in one thread per publisher;
//! every wait is bounded, and the thread ends when the script ends, the
//! server closes the connection, or the test asks it to stop.

use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_media::codec::aac::sample_rate_index;
use strom_media::codec::nal::{nal_units, rbsp};
use strom_media::frame::{Codec, Frame, Track, TrackKind};
use strom_media::rtmp::{ClientConfig, ClientEvent, ClientMode, ClientSession, Limits, MediaKind, Value};
use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::ts::wrap_delta;

/// 90 kHz ticks per millisecond.
const TICKS_PER_MS: i64 = 90;

/// Frames of a TS file, ready to be sent again and again.
///
/// Invariants: `frames` are in decode order across tracks (sorted by `dts`,
/// stable), start at the first video keyframe (so every loop of the file
/// decodes on its own), and their `dts`/`pts` are 90 kHz ticks counted
/// from that keyframe's `dts` (never negative for `dts`).
#[derive(Debug, Clone)]
pub struct Media {
    /// The tracks the demuxer reported last (video first, then audio).
    pub tracks: Vec<Track>,
    /// Frames, `dts` relative to the first video keyframe.
    pub frames: Vec<Frame>,
    /// Length of one pass in 90 kHz ticks: the next pass starts this much
    /// later than the current one (last `dts` plus one video frame).
    pub period: i64,
}

impl Media {
    /// Demuxes the TS file at `path` with `strom_media::ts::demux::Demuxer`.
    /// Panics (it is a test helper) when the file has no video keyframe.
    pub fn load(path: &Path) -> Media {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut dmx = Demuxer::new();
        let mut tracks: Vec<Track> = Vec::new();
        let mut raw: Vec<Frame> = Vec::new();
        let take = |dmx: &mut Demuxer, tracks: &mut Vec<Track>, raw: &mut Vec<Frame>| {
            while let Some(ev) = dmx.pull() {
                match ev {
                    DemuxEvent::Tracks(t) => *tracks = t.to_vec(),
                    DemuxEvent::Frame(f) => raw.push(f),
                }
            }
        };
        for chunk in data.chunks(188 * 64) {
            dmx.push(chunk);
            take(&mut dmx, &mut tracks, &mut raw);
        }
        dmx.flush();
        take(&mut dmx, &mut tracks, &mut raw);
        let video = tracks
            .iter()
            .find(|t| t.kind() == TrackKind::Video)
            .map(|t| t.id)
            .expect("a video track in the TS");
        let first_key = raw
            .iter()
            .find(|f| f.track == video && f.keyframe)
            .map(|f| f.dts)
            .expect("a video keyframe in the TS");
        let mut frames: Vec<Frame> = raw
            .into_iter()
            .filter(|f| tracks.iter().any(|t| t.id == f.track))
            .map(|f| {
                let dts = wrap_delta(first_key, f.dts);
                Frame {
                    dts,
                    pts: dts + wrap_delta(f.dts, f.pts),
                    ..f
                }
            })
            .filter(|f| f.dts >= 0)
            .collect();
        frames.sort_by_key(|f| f.dts);
        let last = frames.iter().map(|f| f.dts).max().unwrap_or(0);
        Media {
            tracks,
            frames,
            period: last + 40 * TICKS_PER_MS,
        }
    }

    /// The video track.
    pub fn video(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind() == TrackKind::Video)
    }

    /// The audio track.
    pub fn audio(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind() == TrackKind::Audio)
    }
}

/// NAL unit type of an H.264 (ITU-T H.264 §7.3.1) or H.265 (ITU-T H.265
/// §7.3.1.2) NAL unit, header byte(s) first.
fn nal_type(codec: Codec, nal: &[u8]) -> u8 {
    let b = nal.first().copied().unwrap_or(0);
    if codec == Codec::H265 {
        (b >> 1) & 0x3F
    } else {
        b & 0x1F
    }
}

/// Parameter sets of `track` by kind: (VPS, SPS, PPS), the first of each.
fn parameter_sets(track: &Track) -> (Option<Bytes>, Option<Bytes>, Option<Bytes>) {
    let find = |ty: u8| {
        track
            .params
            .parameter_sets
            .iter()
            .find(|p| nal_type(track.codec, p) == ty)
            .cloned()
    };
    match track.codec {
        Codec::H265 => (find(32), find(33), find(34)),
        _ => (None, find(7), find(8)),
    }
}

fn push_u16_prefixed(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
    out.extend_from_slice(nal);
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) for one SPS
/// and one PPS, with 4-byte NAL unit lengths; the High-profile extension
/// says 4:2:0, 8 bits (what libx264 makes with `-pix_fmt yuv420p`).
pub fn avc_decoder_configuration_record(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let profile = sps.get(1).copied().unwrap_or(66);
    let mut out = vec![
        1,
        profile,
        sps.get(2).copied().unwrap_or(0),
        sps.get(3).copied().unwrap_or(30),
        0xFF, // reserved 6 bits, lengthSizeMinusOne = 3
        0xE1, // reserved 3 bits, one SPS
    ];
    push_u16_prefixed(&mut out, sps);
    out.push(1);
    push_u16_prefixed(&mut out, pps);
    if matches!(profile, 100 | 110 | 122 | 144) {
        out.extend_from_slice(&[0xFC | 1, 0xF8, 0xF8, 0]);
    }
    out
}

/// HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1.2) for one
/// VPS, SPS and PPS, with 4-byte NAL unit lengths. The general profile,
/// tier and level come from the SPS's profile_tier_level (ITU-T H.265
/// §7.3.3); chroma format and bit depth say 4:2:0, 8 bits.
pub fn hevc_decoder_configuration_record(vps: &[u8], sps: &[u8], pps: &[u8]) -> Vec<u8> {
    // SPS RBSP after the 2-byte NAL header: sps_video_parameter_set_id(4),
    // sps_max_sub_layers_minus1(3), sps_temporal_id_nesting_flag(1), then
    // the 12 bytes of general_profile_tier_level.
    let body = rbsp(sps.get(2..).unwrap_or(&[]));
    let first = body.first().copied().unwrap_or(0);
    let sub_layers = ((first >> 1) & 0x07) + 1;
    let nesting = first & 1;
    let mut ptl = [0u8; 12];
    for (i, b) in body.iter().skip(1).take(12).enumerate() {
        ptl[i] = *b;
    }
    let mut out = vec![1];
    out.extend_from_slice(&ptl);
    out.extend_from_slice(&[
        0xF0,
        0x00, // min_spatial_segmentation_idc 0
        0xFC, // parallelismType 0
        0xFC | 1,
        0xF8,
        0xF8,
        0,
        0, // avgFrameRate unknown
        (sub_layers << 3) | (nesting << 2) | 3,
        3,
    ]);
    for (ty, nal) in [(32u8, vps), (33, sps), (34, pps)] {
        out.push(0x80 | ty);
        out.extend_from_slice(&1u16.to_be_bytes());
        push_u16_prefixed(&mut out, nal);
    }
    out
}

/// AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1): object type, sampling
/// frequency index, channel configuration, three zero bits.
pub fn audio_specific_config(object_type: u8, sample_rate: u32, channels: u8) -> [u8; 2] {
    let sfi = sample_rate_index(sample_rate).unwrap_or(3);
    let v: u16 =
        (u16::from(object_type.clamp(1, 31)) << 11) | (u16::from(sfi) << 7) | (u16::from(channels & 0x0F) << 3);
    v.to_be_bytes()
}

/// FLV video tag body that carries the decoder configuration of `track`:
/// an AVC sequence header (FLV §E.4.3.1, AVCPacketType 0) for H.264, an
/// Enhanced RTMP `hvc1` SequenceStart for H.265.
pub fn video_config_tag(track: &Track) -> Vec<u8> {
    let (vps, sps, pps) = parameter_sets(track);
    let sps = sps.expect("an SPS in the video track");
    let pps = pps.expect("a PPS in the video track");
    match track.codec {
        Codec::H265 => {
            let vps = vps.expect("a VPS in the H.265 track");
            let mut out = vec![0x80 | (1 << 4), b'h', b'v', b'c', b'1'];
            out.extend(hevc_decoder_configuration_record(&vps, &sps, &pps));
            out
        }
        _ => {
            let mut out = vec![0x17, 0, 0, 0, 0];
            out.extend(avc_decoder_configuration_record(&sps, &pps));
            out
        }
    }
}

/// FLV video tag body for one access unit (Annex B in `frame.data`): NAL
/// units with 4-byte lengths, access unit delimiters left out, composition
/// time `pts − dts` in ms. H.264 uses the legacy header (CodecID 7,
/// AVCPacketType 1); H.265 the Enhanced RTMP one (PacketType 1
/// CodedFrames, FourCC `hvc1`).
pub fn video_frame_tag(codec: Codec, frame: &Frame) -> Vec<u8> {
    let frame_type: u8 = if frame.keyframe { 1 } else { 2 };
    let cts = ((frame.pts - frame.dts) / TICKS_PER_MS).clamp(0, 0x7F_FFFF) as u32;
    let mut out = match codec {
        Codec::H265 => vec![0x80 | (frame_type << 4) | 1, b'h', b'v', b'c', b'1'],
        _ => vec![(frame_type << 4) | 7, 1],
    };
    out.extend_from_slice(&cts.to_be_bytes()[1..]);
    let aud = if codec == Codec::H265 { 35 } else { 9 };
    for nal in nal_units(&frame.data) {
        if nal_type(codec, nal) == aud {
            continue;
        }
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// FLV audio tag body of the AAC sequence header (FLV §E.4.2.2,
/// AACPacketType 0): SoundFormat 10, 44 kHz/16-bit/stereo flags as FLV
/// requires for AAC, then the AudioSpecificConfig.
pub fn audio_config_tag(track: &Track) -> Vec<u8> {
    let p = &track.params;
    let asc = audio_specific_config(p.aac_object_type.max(1), p.sample_rate, p.channels);
    vec![0xAF, 0, asc[0], asc[1]]
}

/// FLV audio tag body of one raw AAC frame (AACPacketType 1).
pub fn audio_frame_tag(frame: &Frame) -> Vec<u8> {
    let mut out = vec![0xAF, 1];
    out.extend_from_slice(&frame.data);
    out
}

/// What a [`Publisher`] sends.
#[derive(Debug, Clone)]
pub struct Script {
    /// strom's RTMP port on 127.0.0.1.
    pub port: u16,
    /// The RTMP application (`live` in `rtmp://HOST/live/NAME`).
    pub app: String,
    /// The stream name, with any `?password=…`.
    pub name: String,
    /// Frames to send, looped for as long as `run_for` lasts.
    pub media: Arc<Media>,
    /// RTMP timestamp of the first frame, in ms (32-bit: it wraps).
    pub start_ms: u32,
    /// Wall-clock time to send media for, once publishing has started.
    pub run_for: Duration,
}

/// What a [`Publisher`] has done so far.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// When the server said `NetStream.Publish.Start`.
    pub started: Option<Instant>,
    /// The server's refusal (`code: description`), if it refused.
    pub rejected: Option<String>,
    /// Audio and video messages sent (configuration tags included).
    pub messages: u64,
    /// RTMP timestamp of the newest message, in ms.
    pub last_ms: Option<u32>,
    /// When the first message whose timestamp wrapped past 2^32 ms went out.
    pub wrapped_at: Option<Instant>,
    /// Why the publisher stopped early (I/O or protocol error, closed by
    /// the server).
    pub error: Option<String>,
    /// The thread has ended.
    pub done: bool,
}

/// A scripted publisher running in its own thread; stopped on drop.
pub struct Publisher {
    stop: Arc<AtomicBool>,
    progress: Arc<Mutex<Progress>>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Connects to `127.0.0.1:PORT` and publishes `script` in a new thread.
    pub fn start(script: Script) -> Publisher {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Mutex::new(Progress::default()));
        let thread = std::thread::spawn({
            let (stop, progress) = (stop.clone(), progress.clone());
            move || {
                let r = run(&script, &stop, &progress);
                let mut p = progress.lock().expect("progress");
                if let Err(e) = r {
                    p.error = Some(e);
                }
                p.done = true;
            }
        });
        Publisher {
            stop,
            progress,
            thread: Some(thread),
        }
    }

    /// A snapshot of what it has done.
    pub fn progress(&self) -> Progress {
        self.progress.lock().expect("progress").clone()
    }

    /// Stops sending (politely: `FCUnpublish`, `deleteStream`) and joins.
    pub fn stop(mut self) -> Progress {
        self.halt();
        self.progress()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Bytes from the server, read by a helper thread; `None` once it closed.
type Inbox = std::sync::mpsc::Receiver<Option<Vec<u8>>>;

/// One connection: the session, the socket and the bytes read so far.
struct Conn {
    session: ClientSession,
    sock: TcpStream,
    inbox: Inbox,
    closed: bool,
}

impl Conn {
    fn flush(&mut self) -> Result<(), String> {
        let out = self.session.take_output();
        if !out.is_empty() {
            use std::io::Write;
            self.sock.write_all(&out).map_err(|e| format!("write: {e}"))?;
        }
        Ok(())
    }

    /// Feeds what has arrived, waiting up to `wait` for the first bytes;
    /// returns the events it caused.
    fn pump(&mut self, wait: Duration) -> Result<Vec<ClientEvent>, String> {
        let mut first = true;
        loop {
            let got = if first {
                first = false;
                match self.inbox.recv_timeout(wait) {
                    Ok(v) => Some(v),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Some(None),
                }
            } else {
                self.inbox.try_recv().ok()
            };
            match got {
                None => break,
                Some(None) => {
                    self.closed = true;
                    break;
                }
                Some(Some(bytes)) => self.session.feed(&bytes).map_err(|e| format!("from the server: {e}"))?,
            }
        }
        self.flush()?;
        let mut events = Vec::new();
        while let Some(ev) = self.session.poll_event() {
            events.push(ev);
        }
        Ok(events)
    }
}

fn run(script: &Script, stop: &AtomicBool, progress: &Mutex<Progress>) -> Result<(), String> {
    let set = |f: &dyn Fn(&mut Progress)| f(&mut progress.lock().expect("progress"));
    let sock = TcpStream::connect(("127.0.0.1", script.port)).map_err(|e| format!("connect: {e}"))?;
    let _ = sock.set_nodelay(true);
    sock.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut reader = sock.try_clone().map_err(|e| e.to_string())?;
    let (tx, inbox) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(n) => {
                    if tx.send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let session = ClientSession::new(ClientConfig {
        app: script.app.clone(),
        tc_url: format!("rtmp://127.0.0.1:{}/{}", script.port, script.app),
        mode: ClientMode::Publish {
            name: script.name.clone(),
        },
        limits: Limits::default(),
    });
    let mut c = Conn {
        session,
        sock,
        inbox,
        closed: false,
    };
    c.flush()?;

    // Handshake, connect, createStream, publish: bounded by 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    'setup: loop {
        for ev in c.pump(Duration::from_millis(50))? {
            match ev {
                ClientEvent::Started { .. } => break 'setup,
                ClientEvent::Rejected { code, description } => {
                    let r = format!("{code}: {description}");
                    set(&|p| p.rejected = Some(r.clone()));
                    return Err(format!("refused: {r}"));
                }
                _ => {}
            }
        }
        if c.closed {
            return Err("closed by the server before publishing started".into());
        }
        if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
            return Err("publishing did not start within 10 s".into());
        }
    }
    let started = Instant::now();
    set(&|p| p.started = Some(started));

    let media = &script.media;
    let video = media.video().cloned();
    let audio = media.audio().cloned();
    let mut meta: Vec<(String, Value)> = Vec::new();
    if let Some(v) = &video {
        meta.push(("width".into(), f64::from(v.params.width).into()));
        meta.push(("height".into(), f64::from(v.params.height).into()));
        let id = if v.codec == Codec::H265 {
            f64::from(u32::from_be_bytes(*b"hvc1"))
        } else {
            7.0
        };
        meta.push(("videocodecid".into(), id.into()));
    }
    if let Some(a) = &audio {
        meta.push(("audiocodecid".into(), 10.0.into()));
        meta.push(("audiosamplerate".into(), f64::from(a.params.sample_rate).into()));
        meta.push(("stereo".into(), (a.params.channels >= 2).into()));
    }
    c.session
        .send_metadata(&["onMetaData".into(), Value::EcmaArray(meta)])
        .map_err(|e| format!("metadata: {e}"))?;

    let mut last: Option<u32> = None;
    let mut send = |c: &mut Conn, kind: MediaKind, ms: u32, body: Vec<u8>| -> Result<(), String> {
        c.session
            .send_media(kind, ms, Bytes::from(body))
            .map_err(|e| format!("send: {e}"))?;
        c.flush()?;
        let wrapped = last.is_some_and(|l| ms < l);
        last = Some(ms);
        set(&|p| {
            p.messages += 1;
            p.last_ms = Some(ms);
            if wrapped && p.wrapped_at.is_none() {
                p.wrapped_at = Some(Instant::now());
            }
        });
        Ok(())
    };
    if let Some(v) = &video {
        send(&mut c, MediaKind::Video, script.start_ms, video_config_tag(v))?;
    }
    if let Some(a) = &audio {
        send(&mut c, MediaKind::Audio, script.start_ms, audio_config_tag(a))?;
    }
    for pass in 0i64.. {
        for f in &media.frames {
            let rel_ms = (pass * media.period + f.dts) / TICKS_PER_MS;
            let due = started + Duration::from_millis(rel_ms as u64);
            if due.duration_since(started) > script.run_for {
                let _ = c.session.close();
                let _ = c.flush();
                let _ = c.sock.shutdown(Shutdown::Write);
                return Ok(());
            }
            // Wait for the frame's time, answering the server meanwhile.
            loop {
                if stop.load(Ordering::Relaxed) {
                    let _ = c.session.close();
                    let _ = c.flush();
                    return Ok(());
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                for ev in c.pump((due - now).min(Duration::from_millis(100)))? {
                    if let ClientEvent::Rejected { code, description } = ev {
                        return Err(format!("stopped by the server: {code}: {description}"));
                    }
                }
                if c.closed {
                    return Err("closed by the server".into());
                }
            }
            let ms = script.start_ms.wrapping_add(rel_ms as u32);
            let track = media.tracks.iter().find(|t| t.id == f.track);
            match track.map(|t| (t.kind(), t.codec)) {
                Some((TrackKind::Video, codec)) => send(&mut c, MediaKind::Video, ms, video_frame_tag(codec, f))?,
                Some((TrackKind::Audio, Codec::Aac)) => send(&mut c, MediaKind::Audio, ms, audio_frame_tag(f))?,
                _ => {}
            }
        }
    }
    Ok(())
}
