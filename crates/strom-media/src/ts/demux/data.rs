//! Data and subtitle streams: teletext (ETSI EN 300 472) and DVB subtitles
//! (EN 300 743) as one frame per PES, and SCTE-35 `splice_info_section`s
//! (ANSI/SCTE 35 §9) as one frame per distinct section, timed on the
//! program clock.
//!
//! Invariants: subtitle frames carry the PES payload untouched
//! (data_identifier first); an SCTE-35 frame is a whole section whose CRC was
//! checked, never emitted twice in a row, and never without a clock.

use bytes::Bytes;

use super::psi::SectionBuf;
use super::{Demuxer, Frame, TsErrorKind};
use crate::scte35;
use crate::ts::wrap_delta;

/// Splice times further than this from the arrival clock are not trusted
/// (1 hour in 90 kHz ticks).
const MAX_SPLICE_DISTANCE: i64 = 3600 * 90_000;

/// Timing of a teletext or DVB subtitle stream.
#[derive(Default)]
pub(super) struct DataState {
    /// PTS and DTS of the last PES.
    last: Option<(i64, i64)>,
}

impl DataState {
    /// One PES: one frame, at its PTS or, without one, at the previous PES's.
    pub(super) fn pes(&mut self, d: &mut Demuxer, si: usize, data: Bytes, ts: Option<(i64, i64)>) {
        let when = ts.or(self.last);
        self.last = when;
        let Some((pts, dts)) = when else {
            d.stats.dropped_frames += 1;
            return;
        };
        if ts.is_none() {
            d.stats.interpolated += 1;
        }
        d.emit(Frame {
            track: si as u16,
            dts,
            pts,
            keyframe: true,
            data,
        });
    }
}

/// Section reassembly and repeat detection of an SCTE-35 PID.
#[derive(Default)]
pub(super) struct Scte35State {
    pub(super) section: SectionBuf,
    /// The last section emitted, to skip its repeats.
    last: Option<Bytes>,
}

impl Demuxer {
    /// A complete section on the SCTE-35 PID of stream `si`.
    pub(super) fn scte35_section(&mut self, si: usize, pid: u16, s: &[u8]) {
        if s.first() != Some(&scte35::TABLE_ID) {
            return; // other private tables may share the PID
        }
        let repeat = matches!(
            self.streams.get(si).map(|st| &st.kind),
            Some(super::pes::Kind::Scte35(st)) if st.last.as_deref() == Some(s)
        );
        if repeat {
            return;
        }
        let info = match scte35::parse(s) {
            Ok(info) => info,
            Err(_) => {
                self.error(pid, TsErrorKind::Psi);
                return;
            }
        };
        let section = Bytes::copy_from_slice(s);
        if let Some(super::pes::Kind::Scte35(st)) = self.streams.get_mut(si).map(|st| &mut st.kind) {
            st.last = Some(section.clone());
        }
        // The program clock now: the PCR, else the last video DTS.
        let Some(dts) = self.pcr.or(self.video_dts) else {
            self.stats.dropped_frames += 1;
            return;
        };
        let pts = info
            .splice_time()
            .filter(|&t| wrap_delta(dts, t).abs() <= MAX_SPLICE_DISTANCE)
            .unwrap_or(dts);
        self.emit(Frame {
            track: si as u16,
            dts,
            pts,
            keyframe: true,
            data: section,
        });
    }
}
