//! Video access-unit assembly for H.264 and H.265: PES payloads in, one
//! frame per access unit out (ISO/IEC 13818-1 §2.14 and §2.17, access units
//! per H.264 §7.4.1.2.3 and H.265 §7.4.2.4.4).
//!
//! The elementary stream is read as one byte stream across PES boundaries.
//! An access unit starts at an AUD, at the first slice of a new picture, or
//! at an SPS/PPS/VPS/SEI that follows the slices of the current one; it ends
//! where the next one starts. The PTS/DTS of a PES go to the first access
//! unit whose first NAL header lies in that PES; other access units are
//! timed from the one before (see the module docs of `demux`).
//!
//! Invariants:
//! - `buf[start..]` holds every byte not yet emitted; the open access unit
//!   (if any) starts at `start`. Frames are slices of `buf`. While every PES
//!   starts a new access unit, `buf` is the PES payload itself and nothing
//!   is copied. When held bytes continue into the next PES, they move once
//!   into an owned buffer that grows by doubling and takes each later
//!   payload by one append; the first frame cut from it turns it into
//!   shared bytes without a copy. An access unit spread over n bytes of PES
//!   therefore costs O(n) copying (at most 3n bytes, counted in
//!   `VideoAsm::copied` for tests), whatever the size of its PES.
//! - Access-unit boundaries depend only on the bytes, never on where a PES
//!   or a read ended: a scan that cannot see enough of a NAL header stops
//!   (`stalled`) and resumes with more bytes.
//! - An access unit never exceeds `MAX_PES_SIZE`; one that may have lost
//!   bytes is dropped, and then nothing is emitted before a PES with PTS.

use std::ops::{Deref, Range};

use bytes::Bytes;

use super::{Demuxer, Frame, TsErrorKind, MAX_PES_SIZE, TS_MASK};
use crate::codec::h264::{self, SliceContext, SLICE_HEADER_PREFIX};
use crate::codec::h265;
use crate::codec::nal::{next_nal, NalRole};
use crate::codec::params::{has_params, param_kind, update_video_params};
use crate::frame::Codec;
use crate::ts::wrap_delta;

/// Parameter sets of each kind (VPS, SPS, PPS) remembered per access unit.
const MAX_PARAM_SETS: usize = 4;
/// PES of a stream scanned whole before it is trusted to carry one access
/// unit per PES with PTS; later, every this-many-th PES is scanned whole.
/// Only PES up to `PROBE_MAX_BYTES` are probed: streams that pack several
/// pictures in a PES have small pictures, and a whole scan of a large one
/// would cost more than the rest of its demuxing.
const PROBE_FIRST: u64 = 3;
const PROBE_EVERY: u64 = 128;
const PROBE_MAX_BYTES: usize = 8 * 1024;
/// Interpolation step when neither the SPS nor the stream tells (25 fps).
const DEFAULT_FRAME_TICKS: i64 = 3600;

/// What the head of a new PES says about the access unit held from before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// Nothing is held: the PES starts afresh.
    Nothing,
    /// Nothing is held, but the previous access unit was emitted at the end
    /// of its (bounded) PES and this PES does not start a new one: that
    /// frame was cut.
    CutBefore,
    /// The PES starts a new access unit: the held one is complete.
    Start,
    /// The PES continues the held bytes.
    Continue,
}

/// The PTS/DTS of a PES, waiting for the first access unit whose NAL
/// header lies in that PES's bytes `from..to` of `VideoAsm::buf`.
#[derive(Clone, Copy, Debug)]
struct TsMark {
    from: usize,
    to: usize,
    ts: (i64, i64),
}

/// Timing of the last access unit that had timestamps.
#[derive(Clone, Copy, Debug)]
struct Chain {
    dts: i64,
    /// Its duration in 90 kHz ticks.
    dur: i64,
    /// Its timestamps came from its PES.
    real: bool,
}

/// The access unit being assembled. Offsets are in `VideoAsm::buf`.
#[derive(Debug)]
struct Au {
    dts: i64,
    pts: i64,
    /// It has timestamps (from its PES or interpolated).
    timed: bool,
    interpolated: bool,
    /// NAL units seen.
    nals: u32,
    /// Where the NAL unit after a leading AUD starts (0: no leading AUD).
    aud_end: usize,
    has_vcl: bool,
    keyframe: bool,
    /// An H.264 recovery point SEI precedes the first slice.
    recovery: bool,
    /// H.264 field picture.
    field: bool,
    /// VPS, SPS, PPS NAL units (without start code) as byte ranges (an
    /// access unit is at most MAX_PES_SIZE, so u32 holds them).
    params: [[(u32, u32); MAX_PARAM_SETS]; 3],
    param_count: [usize; 3],
    /// It becomes a frame (decided at its first slice).
    emit: bool,
    /// It began at the first NAL unit of PES number `whole_pes`.
    whole_pes: Option<u64>,
    /// Length when its bounded PES ended and it was the whole PES.
    whole_len: Option<usize>,
}

/// What finishing an access unit needs of it.
#[derive(Clone, Copy)]
struct AuEnd {
    dts: i64,
    pts: i64,
    timed: bool,
    interpolated: bool,
    aud_end: usize,
    has_vcl: bool,
    keyframe: bool,
    field: bool,
    emit: bool,
}

impl From<&Au> for AuEnd {
    fn from(a: &Au) -> Self {
        AuEnd {
            dts: a.dts,
            pts: a.pts,
            timed: a.timed,
            interpolated: a.interpolated,
            aud_end: a.aud_end,
            has_vcl: a.has_vcl,
            keyframe: a.keyframe,
            field: a.field,
            emit: a.emit,
        }
    }
}

/// The elementary-stream bytes being scanned: a PES payload as received
/// (shared, zero-copy), or an owned buffer that PES payloads are appended
/// to while an access unit spans PES.
enum EsBuf {
    Shared(Bytes),
    Owned(Vec<u8>),
}

impl Deref for EsBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            EsBuf::Shared(b) => b,
            EsBuf::Owned(v) => v,
        }
    }
}

impl EsBuf {
    /// Drops the bytes before `start` and appends `more`. Returns the bytes
    /// copied: the kept bytes when they move into an owned buffer, `more`,
    /// and the kept bytes again whenever the owned buffer has to grow (its
    /// capacity at least doubles, so that sums to less than twice the final
    /// size).
    fn append(&mut self, start: usize, more: &[u8]) -> u64 {
        let start = start.min(self.len());
        let need = self.len() - start + more.len();
        let cap = |n: usize| n.min(MAX_PES_SIZE).max(need);
        let mut copied = more.len();
        match self {
            EsBuf::Owned(v) if start == 0 => {
                if v.capacity() < need {
                    let mut grown = Vec::with_capacity(cap(2 * v.capacity()));
                    grown.extend_from_slice(v);
                    copied += v.len();
                    *v = grown;
                }
                v.extend_from_slice(more);
            }
            _ => {
                // Room for twice what is joined, so the next payloads append
                // without growing at once.
                let mut v = Vec::with_capacity(cap(2 * need));
                v.extend_from_slice(&self[start..]);
                copied += v.len();
                v.extend_from_slice(more);
                *self = EsBuf::Owned(v);
            }
        }
        copied as u64
    }

    /// The bytes `r` as a frame payload. An owned buffer becomes shared
    /// first (no copy); later frames of the same bytes are slices of it.
    fn slice(&mut self, r: Range<usize>) -> Bytes {
        if let EsBuf::Owned(v) = self {
            *self = EsBuf::Shared(Bytes::from(std::mem::take(v)));
        }
        match self {
            EsBuf::Shared(b) => b.slice(r),
            EsBuf::Owned(_) => Bytes::new(),
        }
    }
}

/// Per-stream assembly state. See the module docs.
pub(super) struct VideoAsm {
    codec: Codec,
    buf: EsBuf,
    start: usize,
    /// Where the search for the next start code resumes.
    scan_from: usize,
    /// Header offset and role of the NAL unit whose end is not known yet.
    open_nal: Option<(usize, NalRole)>,
    /// The scan stopped before a start code whose header was incomplete.
    stalled: bool,
    au: Option<Au>,
    /// PES timestamps not yet given to an access unit.
    mark: Option<TsMark>,
    /// Event slot reserved for the open access unit's frame.
    hole: Option<u64>,
    /// The last access unit was emitted at the end of its bounded PES,
    /// before the next PES could confirm it was complete.
    early: bool,
    chain: Option<Chain>,
    /// Last PTS − DTS seen.
    comp_offset: i64,
    /// Last DTS step seen between access units with their own timestamps.
    step: Option<i64>,
    /// Frame duration from the SPS timing info.
    frame_dur: Option<i64>,
    slice_ctx: Option<SliceContext>,
    /// Largest bounded PES known to have held a whole access unit.
    confirmed_len: usize,
    /// A PES continued an access unit: bounded PES are never trusted.
    split_seen: bool,
    /// A PES with PTS carried several access units: every PES is scanned.
    multi_au: bool,
    /// PES seen (numbers the PES for probing and `whole_pes`).
    pes_count: u64,
    /// After a loss: wait for a PES with PTS.
    resync: bool,
    /// A random access point with parameter sets was seen.
    started: bool,
    /// Bytes copied to join PES payloads (the cost bound of the module docs).
    copied: u64,
}

impl VideoAsm {
    pub(super) fn new(codec: Codec) -> Self {
        VideoAsm {
            codec,
            buf: EsBuf::Shared(Bytes::new()),
            start: 0,
            scan_from: 0,
            open_nal: None,
            stalled: false,
            au: None,
            mark: None,
            hole: None,
            early: false,
            chain: None,
            comp_offset: 0,
            step: None,
            frame_dur: None,
            slice_ctx: None,
            confirmed_len: 0,
            split_seen: false,
            multi_au: false,
            pes_count: 0,
            resync: false,
            started: false,
            copied: 0,
        }
    }

    /// Bytes copied so far to join access units spread over several PES.
    #[cfg(test)]
    pub(super) fn copied(&self) -> u64 {
        self.copied
    }

    fn h264(&self) -> bool {
        self.codec != Codec::H265
    }

    fn role(&self, nal: &[u8]) -> NalRole {
        if self.h264() {
            h264::nal_role(nal)
        } else {
            h265::nal_role(nal)
        }
    }

    /// Header bytes needed to classify a NAL unit (with the first-slice bit).
    fn min_header(&self) -> usize {
        if self.h264() {
            2
        } else {
            3
        }
    }

    /// Bytes held: not emitted yet.
    pub(super) fn held_bytes(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Whether anything is held whose end the next PES may tell.
    pub(super) fn holds(&self) -> bool {
        self.au.is_some() || self.held_bytes() > 0 || self.early
    }

    fn reset_buf(&mut self) {
        self.buf = EsBuf::Shared(Bytes::new());
        self.start = 0;
        self.scan_from = 0;
        self.open_nal = None;
        self.stalled = false;
        self.mark = None;
    }

    /// Looks at the first bytes of a new PES payload. `None`: too few bytes
    /// to tell yet (only when `complete` is false).
    pub(super) fn classify_head(&self, head: &[u8], complete: bool) -> Option<Head> {
        let held = self.au.is_some() || self.held_bytes() > 0;
        if !held && !self.early {
            return Some(Head::Nothing);
        }
        if self.stalled {
            return Some(Head::Continue);
        }
        let Some(i) = head.iter().position(|&b| b != 0) else {
            return complete.then_some(Head::Continue);
        };
        if head[i] != 1 || i < 2 {
            return Some(if held { Head::Continue } else { Head::CutBefore });
        }
        if i == 2 && held && self.buf.last() == Some(&0) {
            // The held bytes end with the zero_byte of this start code: it
            // belongs to the next access unit, which the scan of the joined
            // bytes gives it.
            return Some(Head::Continue);
        }
        let nal = &head[i + 1..];
        if nal.len() < self.min_header() && !complete {
            return None;
        }
        let role = self.role(nal);
        let after_vcl = self.au.as_ref().is_none_or(|a| a.has_vcl);
        Some(match (held, role.starts_au(after_vcl)) {
            (true, true) => Head::Start,
            (true, false) => Head::Continue,
            (false, true) => Head::Nothing,
            (false, false) => Head::CutBefore,
        })
    }

    /// Acts on what [`VideoAsm::classify_head`] found.
    pub(super) fn apply_head(&mut self, d: &mut Demuxer, si: usize, head: Head) {
        let early = std::mem::take(&mut self.early);
        match head {
            Head::Nothing => {}
            Head::CutBefore => {
                if early {
                    // The frame emitted at its PES end was not whole.
                    self.split_seen = true;
                    let pid = d.streams.get(si).map_or(0, |s| s.pid);
                    d.error(pid, TsErrorKind::Pes);
                }
            }
            Head::Start => {
                if let Some(len) = self.au.as_ref().and_then(|a| a.whole_len) {
                    self.confirmed_len = self.confirmed_len.max(len);
                }
                let end = self.buf.len();
                self.finish_au(d, si, end);
                self.reset_buf();
            }
            Head::Continue => {
                if self.au.is_some() {
                    self.split_seen = true;
                }
            }
        }
    }

    /// A complete PES payload. `bounded`: it ended by its PES_packet_length.
    pub(super) fn pes_end(
        &mut self,
        d: &mut Demuxer,
        si: usize,
        payload: Bytes,
        ts: Option<(i64, i64)>,
        bounded: bool,
    ) {
        self.pes_count += 1;
        self.early = false;
        if self.resync {
            if ts.is_none() {
                return;
            }
            self.resync = false;
        }
        let pes_start;
        if self.held_bytes() > 0 {
            // The held bytes continue into this PES: append (amortised, see
            // the module docs), never re-join everything held.
            let held = self.held_bytes();
            if held + payload.len() > MAX_PES_SIZE {
                let pid = d.streams.get(si).map_or(0, |s| s.pid);
                self.lost(d);
                d.error(pid, TsErrorKind::Oversize);
                return;
            }
            let start = self.start;
            self.rebase(start);
            self.copied += self.buf.append(start, &payload);
            pes_start = held;
            if let Some(au) = &mut self.au {
                au.whole_len = None;
            }
        } else {
            self.reset_buf();
            self.buf = EsBuf::Shared(payload);
            pes_start = 0;
        }
        if let Some(ts) = ts {
            // A PTS before it that found no access unit is void (§2.4.3.7).
            self.mark = Some(TsMark {
                from: pes_start,
                to: self.buf.len(),
                ts,
            });
        }
        let probe = (self.pes_count <= PROBE_FIRST || self.pes_count.is_multiple_of(PROBE_EVERY))
            && self.held_bytes() <= PROBE_MAX_BYTES;
        let fast = ts.is_some() && !self.multi_au && !probe;
        let nals = self.scan(d, si, pes_start, ts.is_some(), fast, false);
        if nals == 0 && pes_start == 0 && ts.is_some() && !self.stalled {
            // A PES that should start an access unit holds no NAL unit.
            let pid = d.streams.get(si).map_or(0, |s| s.pid);
            d.error(pid, TsErrorKind::Pes);
        }
        if bounded {
            self.bounded_end(d, si, pes_start);
        }
    }

    /// Shifts every offset down by `by` (the bytes before it are dropped).
    fn rebase(&mut self, by: usize) {
        let sub = |x: usize| x.saturating_sub(by);
        self.start = sub(self.start);
        self.scan_from = sub(self.scan_from);
        if let Some((h, r)) = self.open_nal {
            self.open_nal = Some((sub(h), r));
        }
        if let Some(m) = &mut self.mark {
            (m.from, m.to) = (sub(m.from), sub(m.to));
        }
        if let Some(au) = &mut self.au {
            if au.aud_end > 0 {
                au.aud_end = sub(au.aud_end).max(1);
            }
            let by = u32::try_from(by).unwrap_or(u32::MAX);
            for (k, ranges) in au.params.iter_mut().enumerate() {
                for r in ranges.iter_mut().take(au.param_count[k]) {
                    *r = (r.0.saturating_sub(by), r.1.saturating_sub(by));
                }
            }
        }
    }

    /// After a bounded PES: emit its access unit now if the stream has shown
    /// such PES hold whole access units, else hold its place in the event
    /// order until the next PES tells.
    fn bounded_end(&mut self, d: &mut Demuxer, si: usize, pes_start: usize) {
        let len = self.held_bytes();
        let pes = self.pes_count;
        let stalled = self.stalled;
        let Some(au) = &mut self.au else {
            return;
        };
        // Only an access unit with a slice can be complete.
        let whole = au.whole_pes == Some(pes) && pes_start == 0 && !stalled && au.has_vcl;
        if whole {
            au.whole_len = Some(len);
        }
        if whole && !self.split_seen && len < self.confirmed_len {
            let end = self.buf.len();
            self.finish_au(d, si, end);
            self.reset_buf();
            self.early = true;
        } else if au.emit && au.has_vcl && au.timed && self.hole.is_none() {
            self.hole = Some(d.reserve_hole());
        }
    }

    /// Scans `buf` from `scan_from` for NAL units, finishing every access
    /// unit whose successor starts. `pes_start`: where the newest PES's
    /// payload starts in `buf` (`had_ts`: it has a PTS, waiting in `mark`
    /// for the first access unit whose NAL header lies in that PES).
    /// `fast`: after the first slice of the first access unit of that PES,
    /// take the rest of the PES as that access unit.
    /// `last`: no more bytes will come; nothing stalls and the open access
    /// unit ends at the end of `buf`. Returns the NAL units found at or
    /// after `pes_start`.
    fn scan(&mut self, d: &mut Demuxer, si: usize, pes_start: usize, had_ts: bool, fast: bool, last: bool) -> u32 {
        let mut aus_here = 0u32;
        let mut nals_here = 0u32;
        let len = self.buf.len();
        self.stalled = false;
        loop {
            let Some((b, h)) = next_nal(&self.buf, self.scan_from) else {
                self.scan_from = self.scan_from.max(len.saturating_sub(2));
                break;
            };
            // The NAL unit before ends here, whatever this one turns out to be
            // (after a stall it was closed already: `open_nal` is empty).
            if let Some((oh, orole)) = self.open_nal.take() {
                self.close_nal(oh, b, orole);
            }
            if len - h < self.min_header() && !last {
                self.stall(b);
                break;
            }
            let role = self.role(&self.buf[h..]);
            let first_of_au = match role {
                NalRole::Vcl { first, .. } => first || self.au.as_ref().is_none_or(|a| !a.has_vcl),
                _ => false,
            };
            if first_of_au && !last && self.may_want_slice_header(role) && slice_window(&self.buf[h..], false).is_none()
            {
                self.stall(b);
                break;
            }
            let opens = match &self.au {
                Some(au) => role.starts_au(au.has_vcl),
                None => role.can_open_au(),
            };
            let in_pes = h >= pes_start;
            if opens {
                if self.au.is_some() {
                    self.finish_au(d, si, b);
                }
                self.start = b;
                let own = match self.mark {
                    Some(m) if (m.from..m.to).contains(&h) => self.mark.take().map(|m| m.ts),
                    // Past its PES without finding an access unit: void.
                    Some(m) if h >= m.to => self.mark.take().and(None),
                    _ => None,
                };
                let whole = (in_pes && nals_here == 0).then_some(self.pes_count);
                self.begin_au(own, whole);
                if in_pes {
                    aus_here += 1;
                }
            } else if self.au.is_none() {
                // Bytes of an access unit whose start was lost: skipped.
                self.start = b;
            }
            if in_pes {
                nals_here += 1;
            }
            let first_vcl = matches!(role, NalRole::Vcl { .. }) && self.au.as_ref().is_some_and(|a| !a.has_vcl);
            if let Some(au) = &mut self.au {
                au.nals += 1;
            }
            if first_vcl {
                self.head(d, si, h, role, last);
            }
            self.open_nal = Some((h, role));
            self.scan_from = h;
            let field = self.au.as_ref().is_some_and(|a| a.field);
            if fast && first_vcl && in_pes && aus_here == 1 && !field {
                // The rest of this PES is taken as this access unit.
                self.scan_from = (h + 1).max(len.saturating_sub(3));
                break;
            }
        }
        if had_ts && aus_here >= 2 {
            self.multi_au = true;
        }
        if self.au.is_none() && !self.stalled {
            self.start = self.scan_from.min(len);
        }
        if last {
            if self.au.is_some() {
                self.finish_au(d, si, len);
            }
            self.reset_buf();
        }
        nals_here
    }

    fn stall(&mut self, at: usize) {
        self.stalled = true;
        self.scan_from = at;
        if self.au.is_none() {
            self.start = at;
        }
    }

    /// The NAL unit at header `h` ends at `end`: record what the access unit
    /// needs from it.
    fn close_nal(&mut self, h: usize, end: usize, role: NalRole) {
        let h264 = self.h264();
        let Some(au) = &mut self.au else {
            return;
        };
        let nal = trim_zeros(self.buf.get(h..end).unwrap_or_default());
        match role {
            NalRole::Aud if au.nals == 1 && au.aud_end == 0 => au.aud_end = end,
            NalRole::Sei if h264 && !au.has_vcl && !au.recovery => {
                au.recovery = h264::recovery_point(nal).is_some();
            }
            NalRole::ParamSet(k) => {
                let k = usize::from(k.min(2));
                let n = au.param_count[k];
                if let (true, Ok(a), Ok(b)) = (
                    n < MAX_PARAM_SETS && !nal.is_empty(),
                    u32::try_from(h),
                    u32::try_from(h + nal.len()),
                ) {
                    au.params[k][n] = (a, b);
                    au.param_count[k] += 1;
                }
            }
            _ => {}
        }
    }

    /// Opens an access unit at `start` with its PES timestamps, if it takes
    /// them, else timed from the one before.
    fn begin_au(&mut self, own: Option<(i64, i64)>, whole_pes: Option<u64>) {
        let (dts, pts, timed, interpolated) = match (own, self.chain) {
            (Some((pts, dts)), chain) => {
                if let Some(c) = chain.filter(|c| c.real) {
                    let s = wrap_delta(c.dts, dts);
                    if s > 0 && s <= 90_000 {
                        self.step = Some(s);
                    }
                }
                self.comp_offset = wrap_delta(dts, pts).max(0);
                (dts, pts, true, false)
            }
            (None, Some(c)) => {
                let dts = (c.dts + c.dur) & TS_MASK;
                (dts, (dts + self.comp_offset) & TS_MASK, true, true)
            }
            (None, None) => (0, 0, false, false),
        };
        self.au = Some(Au {
            dts,
            pts,
            timed,
            interpolated,
            nals: 0,
            aud_end: 0,
            has_vcl: false,
            keyframe: false,
            recovery: false,
            field: false,
            params: [[(0, 0); MAX_PARAM_SETS]; 3],
            param_count: [0; 3],
            emit: false,
            whole_pes,
            whole_len: None,
        });
    }

    /// The first slice of the open access unit, header at `h`: apply its
    /// parameter sets, decide whether it is a random access point and
    /// whether the track has started.
    fn head(&mut self, d: &mut Demuxer, si: usize, h: usize, role: NalRole, last: bool) {
        self.apply_params(d, si);
        let irap = matches!(role, NalRole::Vcl { irap: true, .. });
        let mut keyframe = irap;
        let mut field = false;
        if self.wants_slice_header(role) {
            if let Some(window) = slice_window(&self.buf[h..], last) {
                if let Ok(sh) = h264::parse_slice_header(window, self.slice_ctx.as_ref()) {
                    field = sh.field_pic == Some(true);
                    let recovery = self.au.as_ref().is_some_and(|a| a.recovery);
                    keyframe |= sh.is_intra() && recovery;
                }
            }
        }
        let emit = self.started || (keyframe && d.streams.get(si).is_some_and(|st| has_params(st.codec, &st.params)));
        self.started |= emit;
        if let Some(au) = &mut self.au {
            au.has_vcl = true;
            au.keyframe = keyframe;
            au.field = field;
            au.emit = emit;
        }
    }

    /// Whether the slice header of the first slice of the open access unit
    /// (or of one about to open) has to be read: H.264 only, when a recovery
    /// point SEI came before a non-IDR slice (is it an I picture?) or when
    /// the SPS allows field pictures (a field lasts half a frame). Progressive
    /// streams without recovery points never pay for it.
    fn wants_slice_header(&self, role: NalRole) -> bool {
        if !self.h264() {
            return false;
        }
        let recovery = self.au.as_ref().is_some_and(|a| a.recovery && !a.has_vcl);
        let irap = matches!(role, NalRole::Vcl { irap: true, .. });
        (recovery && !irap) || self.slice_ctx.is_some_and(|c| !c.frame_mbs_only)
    }

    /// [`VideoAsm::wants_slice_header`] before the access unit's parameter
    /// sets are applied: also true while the SPS is unknown or about to
    /// change, so the scan waits for the bytes whenever `head` may read them
    /// (the result then never depends on where a PES or read ended).
    fn may_want_slice_header(&self, role: NalRole) -> bool {
        self.h264()
            && (self.wants_slice_header(role)
                || self.slice_ctx.is_none()
                || self.au.as_ref().is_some_and(|a| a.param_count[1] > 0))
    }

    /// Replaces the track's parameter sets by those of the open access unit.
    fn apply_params(&mut self, d: &mut Demuxer, si: usize) {
        let Some(au) = &mut self.au else {
            return;
        };
        if au.param_count == [0; 3] {
            return;
        }
        let buf = &self.buf;
        let lists: [Vec<&[u8]>; 3] = std::array::from_fn(|k| {
            au.params[k][..au.param_count[k]]
                .iter()
                .filter_map(|&(a, b)| buf.get(a as usize..b as usize))
                .collect()
        });
        au.param_count = [0; 3];
        let Some(st) = d.streams.get_mut(si) else {
            return;
        };
        if update_video_params(st.codec, &mut st.params, &lists) {
            self.slice_ctx = None;
            self.frame_dur = None;
            if let Some(sps) = st
                .params
                .parameter_sets
                .iter()
                .find(|b| param_kind(st.codec, b) == Some(1))
            {
                let rate = match st.codec {
                    Codec::H265 => h265::parse_sps(sps).ok().and_then(|s| s.frame_rate),
                    _ => h264::parse_sps(sps).ok().and_then(|s| {
                        self.slice_ctx = Some(SliceContext::from(&s));
                        s.frame_rate
                    }),
                };
                self.frame_dur = rate.and_then(|(num, den)| {
                    let t = (90_000 * u64::from(den) + u64::from(num) / 2) / u64::from(num.max(1));
                    (1..=900_000).contains(&t).then_some(t as i64)
                });
            }
            d.rebuild_tracks();
        }
    }

    /// Duration of an access unit for interpolating the next one.
    fn duration(&self, field: bool) -> i64 {
        match self.frame_dur {
            Some(f) if field => (f / 2).max(1),
            Some(f) => f,
            None => self.step.unwrap_or(DEFAULT_FRAME_TICKS),
        }
    }

    /// The open access unit ends at `end`: emit it as a frame (into its
    /// reserved place, if it has one) or count it dropped.
    fn finish_au(&mut self, d: &mut Demuxer, si: usize, end: usize) {
        let Some(au) = &self.au else {
            return;
        };
        if !au.has_vcl {
            // Parameter sets in an access unit of their own still count.
            self.apply_params(d, si);
        }
        // The few fields needed, not the whole (large) access unit state.
        let Some(au) = self.au.as_ref().map(AuEnd::from) else {
            return;
        };
        self.au = None;
        // Only pictures take time.
        if au.timed && au.has_vcl {
            self.chain = Some(Chain {
                dts: au.dts,
                dur: self.duration(au.field),
                real: !au.interpolated,
            });
        }
        let from = if au.aud_end > 0 { au.aud_end } else { self.start };
        let data = (au.emit && au.has_vcl && au.timed && from <= end).then(|| {
            let end = end.min(self.buf.len());
            self.buf.slice(from..end)
        });
        match data {
            Some(data) => {
                if au.interpolated {
                    d.stats.interpolated += 1;
                }
                d.video_dts = Some(au.dts);
                let frame = Frame {
                    track: si as u16,
                    dts: au.dts,
                    pts: au.pts,
                    keyframe: au.keyframe,
                    data,
                };
                match self.hole.take() {
                    Some(seq) => d.fill_hole(seq, frame),
                    None => d.emit(frame),
                }
            }
            None => {
                if let Some(seq) = self.hole.take() {
                    d.void_hole(seq);
                }
                d.stats.dropped_frames += 1;
            }
        }
        self.start = end;
    }

    /// Bytes of this stream were lost: drop what may have lost them and
    /// wait for a PES with PTS.
    pub(super) fn lost(&mut self, d: &mut Demuxer) {
        if let Some(seq) = self.hole.take() {
            d.void_hole(seq);
        }
        if self.au.take().is_some_and(|a| a.emit && a.has_vcl) {
            d.stats.dropped_frames += 1;
        }
        self.reset_buf();
        self.chain = None;
        self.early = false;
        self.resync = true;
    }

    /// End of input: everything held is complete.
    pub(super) fn flush(&mut self, d: &mut Demuxer, si: usize) {
        if self.held_bytes() > 0 || self.au.is_some() {
            let at = self.buf.len();
            self.scan(d, si, at, false, false, true);
        }
        if let Some(seq) = self.hole.take() {
            d.void_hole(seq);
        }
        self.reset_buf();
        self.early = false;
        self.resync = false;
    }

    /// Takes the held access unit as complete now (too many events wait).
    pub(super) fn release(&mut self, d: &mut Demuxer, si: usize) {
        if self.hole.is_some() {
            let end = self.buf.len();
            self.finish_au(d, si, end);
            self.reset_buf();
            self.early = true;
        }
    }

    /// Gives up the reserved place; the frame is emitted when its end is known.
    pub(super) fn unhold(&mut self, d: &mut Demuxer) {
        if let Some(seq) = self.hole.take() {
            d.void_hole(seq);
        }
    }
}

/// The bytes of an H.264 slice NAL unit (from its header) that its header
/// fields are read from: up to [`SLICE_HEADER_PREFIX`] bytes, or to the next
/// start code if the NAL unit is shorter. `None` when too few bytes are there
/// to know (unless `last`).
fn slice_window(nal: &[u8], last: bool) -> Option<&[u8]> {
    let look = &nal[..nal.len().min(SLICE_HEADER_PREFIX + 3)];
    match next_nal(look, 1) {
        Some((b, _)) if b < SLICE_HEADER_PREFIX => Some(&nal[..b]),
        _ if look.len() >= SLICE_HEADER_PREFIX + 3 || last => Some(&nal[..nal.len().min(SLICE_HEADER_PREFIX)]),
        _ => None,
    }
}

fn trim_zeros(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_classification() {
        let mut v = VideoAsm::new(Codec::H264);
        assert_eq!(v.classify_head(&[0, 0, 1, 9], false), Some(Head::Nothing));
        v.buf = EsBuf::Shared(Bytes::from_static(&[0, 0, 0, 1, 9, 0xF0, 0, 0, 1, 0x65, 0x88]));
        v.begin_au(Some((0, 0)), Some(1));
        if let Some(au) = &mut v.au {
            au.has_vcl = true;
        }
        assert_eq!(v.classify_head(&[0, 0, 0, 1, 9, 0xF0], false), Some(Head::Start));
        assert_eq!(v.classify_head(&[0, 0, 1, 0x67, 0x42], false), Some(Head::Start));
        // A slice that is not the first of its picture continues it.
        assert_eq!(v.classify_head(&[0, 0, 1, 0x41, 0x40], false), Some(Head::Continue));
        assert_eq!(v.classify_head(&[0, 0, 1, 0x41, 0x80], false), Some(Head::Start));
        assert_eq!(v.classify_head(&[0x12, 0x34], false), Some(Head::Continue));
        // A start code split by the PES boundary: the scan decides.
        assert_eq!(v.classify_head(&[1, 9, 0xF0], false), Some(Head::Continue));
        assert_eq!(v.classify_head(&[0, 0], false), None);
        assert_eq!(v.classify_head(&[0, 0], true), Some(Head::Continue));
        assert_eq!(v.classify_head(&[0, 0, 1, 0x41], false), None);
        // Slices after SEI/SPS only (no VCL yet) continue the access unit.
        if let Some(au) = &mut v.au {
            au.has_vcl = false;
        }
        assert_eq!(v.classify_head(&[0, 0, 1, 0x65, 0x88], false), Some(Head::Continue));
    }

    /// Hands `payload` over as pes.rs does: head classification, then the PES.
    fn feed(v: &mut VideoAsm, d: &mut Demuxer, payload: &[u8], ts: Option<(i64, i64)>) {
        if let Some(head) = v.classify_head(payload, true) {
            v.apply_head(d, 0, head);
        }
        v.pes_end(d, 0, Bytes::copy_from_slice(payload), ts, false);
    }

    fn frames(d: &mut Demuxer) -> Vec<Frame> {
        std::iter::from_fn(|| d.pull())
            .filter_map(|e| match e {
                super::super::DemuxEvent::Frame(f) => Some(f),
                super::super::DemuxEvent::Tracks(_) => None,
            })
            .collect()
    }

    #[test]
    fn an_access_unit_over_many_small_pes_costs_linear_copying() {
        let mut d = Demuxer::new();
        d.streams
            .push(super::super::pes::Stream::new(0x100, Codec::H264, false));
        let mut v = VideoAsm::new(Codec::H264);
        // AUD, SPS, PPS and an IDR slice padded to 4 MiB (no start code in it).
        let mut idr = vec![0, 0, 0, 1, 9, 0xF0];
        idr.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x4D, 0x40, 0x1F, 0xEC, 0xA0]);
        idr.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xEF, 0xBC, 0x80]);
        idr.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        idr.resize(4 << 20, 0x11);
        // A P picture long enough for its slice header to be read at once.
        let mut p = vec![0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1, 0x41, 0x9A];
        p.resize(200, 0x22);
        for (i, chunk) in idr.chunks(150).enumerate() {
            feed(&mut v, &mut d, chunk, (i == 0).then_some((7200, 3600)));
        }
        assert_eq!(v.held_bytes(), idr.len());
        let joined = v.copied();
        assert!(
            joined <= 3 * idr.len() as u64,
            "{joined} bytes copied for {}",
            idr.len()
        );
        // The next access unit ends it; the frame is the bytes as sent.
        feed(&mut v, &mut d, &p, Some((10_800, 7200)));
        v.flush(&mut d, 0);
        let f = frames(&mut d);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].dts, f[0].keyframe, f[0].data.len()), (3600, true, idr.len() - 6));
        assert!(f[0].data[..] == idr[6..]);
        assert_eq!(&f[1].data[..], &p[6..]);
        // Emitting took no further copy, and one access unit per PES none at all.
        assert_eq!(v.copied(), joined);
        for (i, au) in [&idr[..4096], &p[..], &p[..]].into_iter().enumerate() {
            feed(&mut v, &mut d, au, Some((20_000 + 3600 * i as i64, 20_000)));
        }
        v.flush(&mut d, 0);
        assert_eq!(frames(&mut d).len(), 3);
        assert_eq!(v.copied(), joined);
    }

    #[test]
    fn es_buf_appends_in_place_and_freezes_without_copy() {
        let mut b = EsBuf::Shared(Bytes::from_static(b"xxabc"));
        assert_eq!(b.append(2, b"de"), 5);
        assert_eq!(&b[..], b"abcde");
        let mut total = 0;
        for _ in 0..1000 {
            total += b.append(0, b"fgh");
        }
        assert_eq!(b.len(), 3005);
        // Appends once each; growth copies less than twice the final size.
        assert!((3000..3 * 3005).contains(&total), "{total}");
        let f = b.slice(1..4);
        assert_eq!(&f[..], b"bcd");
        assert!(matches!(b, EsBuf::Shared(_)));
        assert_eq!(&b.slice(3003..3005)[..], b"gh");
    }

    #[test]
    fn slice_windows_are_deterministic() {
        const P: usize = SLICE_HEADER_PREFIX;
        let mut nal = vec![0x65u8; P + 8];
        assert_eq!(slice_window(&nal, false).map(<[u8]>::len), Some(P));
        assert_eq!(slice_window(&nal[..P + 2], false), None);
        assert_eq!(slice_window(&nal[..P + 2], true).map(<[u8]>::len), Some(P));
        assert_eq!(slice_window(&nal[..10], true).map(<[u8]>::len), Some(10));
        // A start code inside the window ends it (with its zero_byte).
        nal[8..12].copy_from_slice(&[0, 0, 0, 1]);
        assert_eq!(slice_window(&nal[..12], false).map(<[u8]>::len), Some(8));
        assert_eq!(slice_window(&nal, false).map(<[u8]>::len), Some(8));
    }
}
