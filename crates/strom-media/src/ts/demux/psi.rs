//! PSI: section reassembly (ISO/IEC 13818-1 §2.4.4, pointer_field and
//! sections spanning packets), the PAT and the PMTs of its programs, the
//! choice of the program to follow, and the mapping of PMT entries to
//! tracks (stream_type and descriptors, ETSI EN 300 468 for DVB private
//! streams).
//!
//! Invariants: sections are at most 1024 bytes (PAT, PMT) or 4096 bytes
//! (SCTE-35); at most [`MAX_PROGRAMS`] programs are tracked (PMT PID
//! followed, one stored PMT section each); a PID keeps one role. Repeated
//! tables are recognised by their CRC field before any parsing.
//!
//! Tracked programs: the program asked for, the program followed, the
//! fallback (first program with a PMT found by the default search so far)
//! and a window of the other PAT entries that fills the rest. The default
//! search looks for video in the window; when every program there is known
//! (or given up) without video and the PAT lists more, the window moves on
//! to the next entries, and after the last one starts again from the first.
//! So any program of any PAT can be chosen, with PMT state for at most
//! [`MAX_PROGRAMS`] programs at a time.

use bytes::Bytes;

use super::{
    Cc, Demuxer, PidRole, PidState, ProgramInfo, Stream, TsErrorKind, MAX_PROGRAMS, MAX_TRACKS, NULL_PID, PAT_PID,
};
use crate::frame::Codec;
use crate::ts::crc::crc32_mpeg2;

/// PSI sections of PAT and PMT are at most 1024 bytes (section_length ≤ 1021).
const MAX_SECTION_LEN: usize = 1024;
/// Private sections (SCTE-35) are at most 4096 bytes (section_length ≤ 4093).
const MAX_PRIVATE_SECTION_LEN: usize = 4096;
const TABLE_PAT: u8 = 0x00;
const TABLE_PMT: u8 = 0x02;
/// PAT sections received without a choice before unseen PMTs count as
/// programs without video.
const PATS_BEFORE_GIVING_UP: u32 = 16;
/// Unknown streams remembered for `take_unknown` between calls.
const MAX_UNKNOWN_QUEUED: usize = 64;

/// What the program search decides now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    /// Follow this program_number.
    Program(u16),
    /// Undecided: PMTs are awaited, or the program asked for is not listed.
    Wait,
    /// No video among the tracked programs: search the next window, keeping
    /// this fallback.
    NextWindow(Option<u16>),
}

/// Which section buffer a PID feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SecId {
    Pat,
    /// Index into `Psi::pmt_bufs`.
    Pmt(u8),
    /// Index into `Demuxer::streams`.
    Scte35(u8),
}

/// Reassembly of one PSI PID's sections.
#[derive(Default)]
pub(super) struct SectionBuf {
    buf: Vec<u8>,
    active: bool,
}

impl SectionBuf {
    pub(super) fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }
}

/// One section of the PAT (programs may span several).
struct PatSection {
    section_number: u8,
    crc: u32,
    /// (program_number, PMT PID) of its programs, network PID left out.
    programs: Vec<(u16, u16)>,
}

/// A program of the PAT.
struct Program {
    number: u16,
    pmt_pid: u16,
    /// Its last valid PMT section (applied when the program is chosen).
    pmt: Option<Vec<u8>>,
    crc: Option<u32>,
    has_video: bool,
}

/// PAT and PMT state.
pub(super) struct Psi {
    pat: SectionBuf,
    /// Section buffers of the PMT PIDs, with their PID.
    pmt_bufs: Vec<(u16, SectionBuf)>,
    /// PAT sections of the current version, by section_number.
    pat_sections: Vec<PatSection>,
    pat_version: Option<u8>,
    /// Tracked programs (see the module docs), in PAT order.
    programs: Vec<Program>,
    /// Index among the usable PAT entries where the search window starts,
    /// and where it ends (exclusive).
    window: usize,
    window_end: usize,
    /// Usable, distinct PAT entries.
    entry_count: usize,
    /// First program with a PMT (and no video) of windows searched before.
    fallback: Option<u16>,
    /// The program asked for (`with_program`), if any.
    wanted: Option<u16>,
    /// The complete PAT without the program asked for was reported.
    missing_reported: bool,
    selected: Option<u16>,
    /// PAT sections seen while no program could be chosen.
    pats_waiting: u32,
    /// Whether a PMT was applied yet (the first one is not a "change").
    had_pmt: bool,
    /// Unknown (pid, stream_type) of the PMT applied last.
    unknown: Vec<(u16, u8)>,
}

impl Psi {
    pub(super) fn new(wanted: Option<u16>) -> Self {
        Psi {
            pat: SectionBuf::default(),
            pmt_bufs: Vec::new(),
            pat_sections: Vec::new(),
            pat_version: None,
            programs: Vec::new(),
            window: 0,
            window_end: 0,
            entry_count: 0,
            fallback: None,
            wanted,
            missing_reported: false,
            selected: None,
            pats_waiting: 0,
            had_pmt: false,
            unknown: Vec::new(),
        }
    }

    pub(super) fn programs(&self) -> Vec<ProgramInfo> {
        self.programs
            .iter()
            .map(|p| ProgramInfo {
                program_number: p.number,
                pmt_pid: p.pmt_pid,
                pmt_seen: p.pmt.is_some(),
                has_video: p.has_video,
                selected: self.selected == Some(p.number),
            })
            .collect()
    }

    pub(super) fn selected(&self) -> Option<u16> {
        self.selected
    }

    pub(super) fn reset_section(&mut self, id: SecId) {
        match id {
            SecId::Pat => self.pat.reset(),
            SecId::Pmt(i) => {
                if let Some((_, b)) = self.pmt_bufs.get_mut(usize::from(i)) {
                    b.reset();
                }
            }
            SecId::Scte35(_) => {}
        }
    }

    /// Forgets partial sections (end of input).
    pub(super) fn reset_sections(&mut self) {
        self.pat.reset();
        for (_, b) in &mut self.pmt_bufs {
            b.reset();
        }
    }

    /// The program to follow now, or what to do instead.
    fn choose(&self) -> Choice {
        let listed = |n: u16| self.programs.iter().any(|p| p.number == n);
        if let Some(n) = self.wanted {
            return if listed(n) { Choice::Program(n) } else { Choice::Wait };
        }
        // Stay with a choice while the PAT lists it.
        if let Some(cur) = self.selected.filter(|&n| listed(n)) {
            return Choice::Program(cur);
        }
        let give_up = self.pats_waiting >= PATS_BEFORE_GIVING_UP;
        // The fallback of earlier windows comes first in PAT order.
        let mut fallback = None;
        for p in &self.programs {
            if p.pmt.is_none() {
                if give_up {
                    continue;
                }
                return Choice::Wait;
            }
            if p.has_video {
                return Choice::Program(p.number);
            }
            fallback.get_or_insert(p.number);
        }
        let more = self.window_end < self.entry_count;
        match fallback {
            _ if more => Choice::NextWindow(fallback),
            Some(n) => Choice::Program(n),
            // Nothing has a PMT yet: search again from the first entries.
            None if self.window > 0 => Choice::NextWindow(None),
            None => Choice::Wait,
        }
    }
}

/// An elementary stream entry of the PMT that becomes a track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct EsInfo {
    pub(super) pid: u16,
    pub(super) codec: Codec,
    /// AAC carried in LATM/LOAS (stream_type 0x11).
    pub(super) latm: bool,
    pub(super) language: Option<String>,
    pub(super) descriptors: Bytes,
}

impl Demuxer {
    fn section_buf(&mut self, id: SecId) -> Option<&mut SectionBuf> {
        match id {
            SecId::Pat => Some(&mut self.psi.pat),
            SecId::Pmt(i) => self.psi.pmt_bufs.get_mut(usize::from(i)).map(|(_, b)| b),
            SecId::Scte35(i) => self.streams.get_mut(usize::from(i)).and_then(|s| s.section_buf()),
        }
    }

    pub(super) fn psi_payload(&mut self, id: SecId, pid: u16, payload: &[u8], pusi: bool) {
        let active = self.section_buf(id).is_some_and(|b| b.active);
        if !pusi {
            if active {
                // Bytes after a section that ends here are stuffing: a new
                // section can only start in a packet with PUSI.
                self.section_bytes(id, pid, payload);
            }
            return;
        }
        let Some((&pointer, rest)) = payload.split_first() else {
            return;
        };
        let Some((tail, mut data)) = rest.split_at_checked(usize::from(pointer)) else {
            if let Some(b) = self.section_buf(id) {
                b.reset();
            }
            self.error(pid, TsErrorKind::Psi);
            return;
        };
        if active {
            self.section_bytes(id, pid, tail);
        }
        match self.section_buf(id) {
            Some(b) => b.reset(),
            None => return,
        }
        while let Some(&table_id) = data.first() {
            if table_id == 0xFF {
                break; // stuffing
            }
            match self.section_buf(id) {
                Some(b) => b.active = true,
                None => return,
            }
            data = self.section_bytes(id, pid, data);
            if self.section_buf(id).is_some_and(|b| b.active) {
                break; // continues in the next packet
            }
        }
    }

    /// Appends to the section being assembled; when it completes, applies it
    /// and returns the bytes after it.
    fn section_bytes<'a>(&mut self, id: SecId, pid: u16, data: &'a [u8]) -> &'a [u8] {
        let max = match id {
            SecId::Scte35(_) => MAX_PRIVATE_SECTION_LEN,
            _ => MAX_SECTION_LEN,
        };
        let Some(sec) = self.section_buf(id) else {
            return &[];
        };
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
        if total > max {
            sec.reset();
            self.error(pid, TsErrorKind::Psi);
            return &[];
        }
        let take = (total - sec.buf.len()).min(data.len());
        sec.buf.extend_from_slice(&data[..take]);
        if sec.buf.len() < total {
            return &[];
        }
        let section = std::mem::take(&mut sec.buf);
        sec.active = false;
        self.section(id, pid, &section);
        if let Some(sec) = self.section_buf(id) {
            sec.buf = section;
            sec.buf.clear();
        }
        &data[take..]
    }

    /// Validates a complete section (syntax, CRC) and applies it.
    fn section(&mut self, id: SecId, pid: u16, s: &[u8]) {
        if let SecId::Scte35(i) = id {
            self.scte35_section(usize::from(i), pid, s);
            return;
        }
        // Long-form header (8 bytes) + CRC (4).
        if s.len() < 12 || s[1] & 0x80 == 0 {
            self.error(pid, TsErrorKind::Psi);
            return;
        }
        let crc = u32::from_be_bytes([s[s.len() - 4], s[s.len() - 3], s[s.len() - 2], s[s.len() - 1]]);
        if id == SecId::Pat && s[0] == TABLE_PAT {
            if self.psi.selected.is_none() {
                self.psi.pats_waiting = self.psi.pats_waiting.saturating_add(1);
            }
            let repeat = self.psi.pat_version == Some((s[5] >> 1) & 0x1F)
                && self
                    .psi
                    .pat_sections
                    .iter()
                    .any(|p| p.section_number == s[6] && p.crc == crc);
            if repeat {
                // The usual repeat; a choice may still be waiting on it.
                if self.psi.selected.is_none() {
                    self.select_program();
                }
                return;
            }
        }
        if id != SecId::Pat && s[0] == TABLE_PMT {
            let number = u16::from_be_bytes([s[3], s[4]]);
            if self
                .psi
                .programs
                .iter()
                .any(|p| p.number == number && p.crc == Some(crc))
            {
                return;
            }
        }
        if crc32_mpeg2(s) != 0 {
            self.error(pid, TsErrorKind::Psi);
            return;
        }
        let current_next = s[5] & 0x01 != 0;
        if !current_next {
            return; // announced for later; applied when it becomes current
        }
        let ok = match (id, s[0]) {
            (SecId::Pat, TABLE_PAT) => self.apply_pat(s, crc),
            (SecId::Pmt(_), TABLE_PMT) => self.on_pmt(s, pid, crc),
            // Other tables may share these PIDs; they are not errors.
            _ => return,
        };
        if !ok {
            self.error(pid, TsErrorKind::Psi);
        }
    }

    fn apply_pat(&mut self, s: &[u8], crc: u32) -> bool {
        let body = &s[8..s.len() - 4];
        let (version, number, last) = ((s[5] >> 1) & 0x1F, s[6], s[7]);
        if !body.len().is_multiple_of(4) || number > last {
            return false;
        }
        let psi = &mut self.psi;
        if psi.pat_version != Some(version) {
            psi.pat_sections.clear();
            psi.pat_version = Some(version);
            // A new PAT: the default search starts again at its first entry.
            psi.window = 0;
            psi.fallback = None;
        }
        // Program 0 is the network PID, not a program.
        let entries: Vec<(u16, u16)> = body
            .chunks_exact(4)
            .map(|e| {
                (
                    u16::from_be_bytes([e[0], e[1]]),
                    (u16::from(e[2] & 0x1F) << 8) | u16::from(e[3]),
                )
            })
            .filter(|&(program, _)| program != 0)
            .collect();
        let section = PatSection {
            section_number: number,
            crc,
            programs: entries,
        };
        match psi.pat_sections.binary_search_by_key(&number, |p| p.section_number) {
            Ok(i) => psi.pat_sections[i] = section,
            Err(i) => psi.pat_sections.insert(i, section),
        }
        let complete = psi.pat_sections.len() == usize::from(last) + 1;
        self.track_programs();
        if let Some(n) = self.psi.wanted {
            let listed = self.psi.programs.iter().any(|p| p.number == n);
            if listed {
                self.psi.missing_reported = false;
            } else if complete && !self.psi.missing_reported {
                // Said once per absence, so the API shows why nothing plays.
                self.psi.missing_reported = true;
                self.error(PAT_PID, TsErrorKind::ProgramMissing);
            }
        }
        self.select_program();
        true
    }

    /// Rebuilds the tracked programs (module docs) from the PAT sections:
    /// usable entries in section order, each program once, keeping the PMT
    /// state of programs that stay; then gives their PIDs the PMT role.
    fn track_programs(&mut self) {
        let psi = &mut self.psi;
        // Program numbers seen (a PAT may list up to 256 × 253 entries).
        let mut seen = vec![0u64; 1 << 10];
        let mut entries: Vec<(u16, u16)> = Vec::new();
        for &(program, pmt_pid) in psi.pat_sections.iter().flat_map(|p| &p.programs) {
            let (word, bit) = (usize::from(program >> 6), 1u64 << (program & 63));
            if seen[word] & bit != 0 {
                continue;
            }
            seen[word] |= bit;
            let usable = pmt_pid != PAT_PID
                && pmt_pid != NULL_PID
                && !matches!(
                    self.pids[usize::from(pmt_pid)].role,
                    PidRole::Stream(_) | PidRole::Scte35(_)
                );
            if usable {
                entries.push((program, pmt_pid));
            }
        }
        if psi.window >= entries.len() {
            psi.window = 0;
        }
        let window = psi.window;
        let pins = [psi.wanted, psi.selected, psi.fallback];
        let pinned = |n: u16| pins.contains(&Some(n));
        let mut room = MAX_PROGRAMS.saturating_sub(entries.iter().filter(|e| pinned(e.0)).count());
        let mut window_end = window;
        let mut old = std::mem::take(&mut psi.programs);
        let mut programs: Vec<Program> = Vec::new();
        for (i, &(program, pmt_pid)) in entries.iter().enumerate() {
            let in_window = i >= window && room > 0 && !pinned(program);
            if in_window {
                room -= 1;
                window_end = i + 1;
            } else if !pinned(program) {
                continue;
            }
            let kept = old
                .iter()
                .position(|p| p.number == program && p.pmt_pid == pmt_pid)
                .map(|i| old.swap_remove(i));
            programs.push(kept.unwrap_or(Program {
                number: program,
                pmt_pid,
                pmt: None,
                crc: None,
                has_video: false,
            }));
        }
        // Pinned entries right after the window are searched with it.
        while entries.get(window_end).is_some_and(|e| pinned(e.0)) {
            window_end += 1;
        }
        psi.window_end = window_end;
        psi.entry_count = entries.len();
        psi.programs = programs;
        self.assign_pmt_pids();
    }

    /// Gives the PMT role to the PIDs of the listed programs (keeping the
    /// buffers and CC state of PIDs that stay) and takes it from the others.
    fn assign_pmt_pids(&mut self) {
        let mut wanted: Vec<u16> = Vec::new();
        for p in &self.psi.programs {
            if !wanted.contains(&p.pmt_pid) {
                wanted.push(p.pmt_pid);
            }
        }
        let mut old = std::mem::take(&mut self.psi.pmt_bufs);
        for (pid, _) in &old {
            if !wanted.contains(pid) && matches!(self.pids[usize::from(*pid)].role, PidRole::Pmt(_)) {
                self.pids[usize::from(*pid)] = PidState {
                    role: PidRole::None,
                    cc: Cc::Unknown,
                };
            }
        }
        for (i, pid) in wanted.into_iter().enumerate() {
            let buf = match old.iter().position(|(p, _)| *p == pid) {
                Some(k) => old.swap_remove(k).1,
                None => {
                    self.pids[usize::from(pid)].cc = Cc::Unknown;
                    SectionBuf::default()
                }
            };
            self.pids[usize::from(pid)].role = PidRole::Pmt(i as u8);
            self.psi.pmt_bufs.push((pid, buf));
        }
    }

    /// Re-evaluates the program choice; a new choice applies its stored PMT.
    fn select_program(&mut self) {
        let choice = match self.psi.choose() {
            Choice::Program(n) => Some(n),
            Choice::Wait => None,
            Choice::NextWindow(fallback) => {
                let psi = &mut self.psi;
                psi.fallback = fallback;
                psi.window = if psi.window_end < psi.entry_count {
                    psi.window_end
                } else {
                    0
                };
                psi.pats_waiting = 0;
                self.track_programs();
                None
            }
        };
        if choice.is_none() {
            // A program the PAT no longer lists is not followed any more,
            // but its tracks stay until another PMT is applied (module docs).
            let listed = self.psi.programs.iter().any(|p| Some(p.number) == self.psi.selected);
            if !listed {
                self.psi.selected = None;
            }
            return;
        }
        if choice == self.psi.selected {
            return;
        }
        self.psi.selected = choice;
        self.psi.pats_waiting = 0;
        let section = self
            .psi
            .programs
            .iter()
            .find(|p| Some(p.number) == choice)
            .and_then(|p| p.pmt.clone());
        if let Some(s) = section {
            self.apply_pmt(&s);
        }
    }

    /// A valid PMT section of some program on `pid`.
    fn on_pmt(&mut self, s: &[u8], pid: u16, crc: u32) -> bool {
        let number = u16::from_be_bytes([s[3], s[4]]);
        let Some(i) = self
            .psi
            .programs
            .iter()
            .position(|p| p.number == number && p.pmt_pid == pid)
        else {
            return true; // a program we do not list, or on another PID
        };
        let Some(entries) = es_entries(s) else {
            return false;
        };
        let has_video = entries.iter().any(|e| {
            matches!(
                stream_codec(e.stream_type, e.descriptors),
                Some((Codec::H264 | Codec::H265, _))
            )
        });
        let p = &mut self.psi.programs[i];
        p.pmt = Some(s.to_vec());
        p.crc = Some(crc);
        p.has_video = has_video;
        if self.psi.selected == Some(number) {
            self.apply_pmt(s);
        } else if self.psi.selected.is_none() || self.psi.wanted.is_none() {
            self.select_program();
        }
        true
    }

    /// Applies the PMT of the followed program: its streams become tracks.
    fn apply_pmt(&mut self, s: &[u8]) {
        let Some(entries) = es_entries(s) else {
            return;
        };
        let pcr_pid = (u16::from(s[8] & 0x1F) << 8) | u16::from(s[9]);
        let pmt_pids: Vec<u16> = self.psi.pmt_bufs.iter().map(|(p, _)| *p).collect();
        let mut list: Vec<EsInfo> = Vec::new();
        let mut unknown: Vec<(u16, u8)> = Vec::new();
        for EsEntry {
            stream_type,
            pid,
            descriptors,
        } in entries
        {
            let usable = pid != PAT_PID && pid != NULL_PID && !pmt_pids.contains(&pid);
            let Some((codec, latm)) = stream_codec(stream_type, descriptors) else {
                if usable && !unknown.contains(&(pid, stream_type)) && unknown.len() < MAX_TRACKS * 4 {
                    unknown.push((pid, stream_type));
                }
                continue;
            };
            if usable && !list.iter().any(|x| x.pid == pid) && list.len() < MAX_TRACKS {
                list.push(EsInfo {
                    pid,
                    codec,
                    latm,
                    language: language(codec, descriptors),
                    descriptors: carried_descriptors(descriptors),
                });
            }
        }
        for u in &unknown {
            if !self.psi.unknown.contains(u) {
                self.stats.unknown_streams += 1;
                if self.unknown_new.len() < MAX_UNKNOWN_QUEUED {
                    self.unknown_new.push(*u);
                }
            }
        }
        self.psi.unknown = unknown;
        self.apply_streams(list);
        self.set_pcr_pid(pcr_pid);
    }

    fn set_pcr_pid(&mut self, pcr_pid: u16) {
        if self.pcr_pid != pcr_pid {
            if self.pcr_pid != NULL_PID && self.pids[usize::from(self.pcr_pid)].role == PidRole::Pcr {
                self.pids[usize::from(self.pcr_pid)].role = PidRole::None;
            }
            self.pcr_pid = pcr_pid;
            self.pcr = None;
        }
        self.want_pcr = self.streams.iter().any(|s| s.codec == Codec::Scte35);
        if pcr_pid != NULL_PID && pcr_pid != PAT_PID && self.pids[usize::from(pcr_pid)].role == PidRole::None {
            self.pids[usize::from(pcr_pid)].role = PidRole::Pcr;
        }
    }

    /// Switches to a new stream list. Streams that keep their PID and codec
    /// keep their state (parameters, data in progress); removed streams emit
    /// what they hold first, under the old track set.
    pub(super) fn apply_streams(&mut self, list: Vec<EsInfo>) {
        let same = self.psi.had_pmt
            && list.len() == self.streams.len()
            && list.iter().zip(&self.streams).all(|(e, st)| {
                e.pid == st.pid
                    && e.codec == st.codec
                    && e.latm == st.latm
                    && e.language == st.params.language
                    && e.descriptors == st.params.descriptors
            });
        if same {
            return;
        }
        if self.psi.had_pmt {
            self.stats.pmt_changes += 1;
        }
        self.psi.had_pmt = true;
        let kept = |st: &Stream| {
            list.iter()
                .any(|e| e.pid == st.pid && e.codec == st.codec && e.latm == st.latm)
        };
        for i in 0..self.streams.len() {
            if kept(&self.streams[i]) {
                // Its index may change: a frame held in place would carry
                // the old one after the new Tracks event, so emit it later.
                self.unhold(i);
            } else {
                self.finish_pes(i);
                self.flush_stream(i);
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
                .find(|s| {
                    s.as_ref()
                        .is_some_and(|s| s.pid == e.pid && s.codec == e.codec && s.latm == e.latm)
                })
                .and_then(Option::take);
            let pid_state = &mut self.pids[usize::from(e.pid)];
            if reused.is_none() {
                pid_state.cc = Cc::Unknown;
            }
            let idx = streams.len() as u8;
            pid_state.role = if e.codec == Codec::Scte35 {
                PidRole::Scte35(idx)
            } else {
                PidRole::Stream(idx)
            };
            let mut st = reused.unwrap_or_else(|| Stream::new(e.pid, e.codec, e.latm));
            st.params.language = e.language;
            st.params.descriptors = e.descriptors;
            streams.push(st);
        }
        self.streams = streams;
        self.rebuild_tracks();
    }
}

/// One elementary-stream entry of a PMT section (§2.4.4.8).
struct EsEntry<'a> {
    stream_type: u8,
    pid: u16,
    descriptors: &'a [u8],
}

/// The entries of a PMT section, or `None` when it is malformed.
fn es_entries(s: &[u8]) -> Option<Vec<EsEntry<'_>>> {
    let end = s.len().checked_sub(4)?;
    if end < 12 {
        return None;
    }
    let program_info_len = (usize::from(s[10] & 0x0F) << 8) | usize::from(s[11]);
    let mut pos = 12 + program_info_len;
    if pos > end {
        return None;
    }
    let mut out = Vec::new();
    while pos < end {
        let e = s.get(pos..pos + 5).filter(|_| pos + 5 <= end)?;
        let stream_type = e[0];
        let pid = (u16::from(e[1] & 0x1F) << 8) | u16::from(e[2]);
        let info_len = (usize::from(e[3] & 0x0F) << 8) | usize::from(e[4]);
        let desc_end = pos + 5 + info_len;
        if desc_end > end {
            return None;
        }
        out.push(EsEntry {
            stream_type,
            pid,
            descriptors: &s[pos + 5..desc_end],
        });
        pos = desc_end;
    }
    Some(out)
}

/// Maps a PMT entry to a codec (and whether AAC comes in LATM); `None` for
/// streams strom does not carry.
pub(super) fn stream_codec(stream_type: u8, descriptors: &[u8]) -> Option<(Codec, bool)> {
    let codec = match stream_type {
        0x1B => Codec::H264,
        0x24 => Codec::H265,
        0x0F => Codec::Aac,
        0x11 => return Some((Codec::Aac, true)),
        0x03 | 0x04 => Codec::MpegAudio,
        0x81 => Codec::Ac3,
        0x87 => Codec::Eac3,
        0x86 => Codec::Scte35,
        // DVB private data: the descriptors say what it is (EN 300 468 §6).
        0x06 => descriptor_iter(descriptors).find_map(|(tag, body)| match tag {
            0x6A => Some(Codec::Ac3),
            0x7A => Some(Codec::Eac3),
            0x05 if body.get(..4) == Some(b"AC-3") => Some(Codec::Ac3),
            0x05 if body.get(..4) == Some(b"EAC3") => Some(Codec::Eac3),
            // teletext_descriptor, VBI_teletext_descriptor (§6.2.43, §6.2.47).
            0x56 | 0x46 => Some(Codec::Teletext),
            // subtitling_descriptor (§6.2.41).
            0x59 => Some(Codec::DvbSubtitle),
            _ => None,
        })?,
        _ => return None,
    };
    Some((codec, false))
}

/// ISO 639 language, lowercase, when it is three letters: from the
/// ISO_639_language_descriptor (0x0A), else for teletext and subtitles the
/// first language of their own descriptor.
pub(super) fn language(codec: Codec, descriptors: &[u8]) -> Option<String> {
    let code = |c: &[u8]| -> Option<String> {
        let c = c.get(..3)?;
        c.iter()
            .all(u8::is_ascii_alphabetic)
            .then(|| c.iter().map(|b| char::from(b.to_ascii_lowercase())).collect())
    };
    let own = |tag: u8| match codec {
        Codec::Teletext => tag == 0x56 || tag == 0x46,
        Codec::DvbSubtitle => tag == 0x59,
        _ => false,
    };
    descriptor_iter(descriptors)
        .find_map(|(tag, body)| if tag == 0x0A { code(body) } else { None })
        .or_else(|| descriptor_iter(descriptors).find_map(|(tag, body)| if own(tag) { code(body) } else { None }))
}

/// The descriptor loop without the entries strom writes itself (ISO 639
/// 0x0A, registration 0x05), whole entries verbatim.
pub(super) fn carried_descriptors(descriptors: &[u8]) -> Bytes {
    let mut out = Vec::new();
    let mut d = descriptors;
    while let [tag, len, rest @ ..] = d {
        let Some((body, next)) = rest.split_at_checked(usize::from(*len)) else {
            break;
        };
        if *tag != 0x0A && *tag != 0x05 {
            out.extend_from_slice(&[*tag, *len]);
            out.extend_from_slice(body);
        }
        d = next;
    }
    Bytes::from(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors() {
        let d = [0x0A, 4, b'E', b'n', b'g', 0, 0x6A, 1, 0];
        assert_eq!(language(Codec::Ac3, &d).as_deref(), Some("eng"));
        assert_eq!(stream_codec(0x06, &d), Some((Codec::Ac3, false)));
        assert_eq!(
            stream_codec(0x06, &[0x05, 4, b'E', b'A', b'C', b'3']),
            Some((Codec::Eac3, false))
        );
        assert_eq!(&carried_descriptors(&d)[..], &[0x6A, 1, 0]);
        assert_eq!(stream_codec(0x06, &[0x6A, 9]), None); // truncated
        assert_eq!(language(Codec::Aac, &[0x0A, 2, b'e', b'n']), None);
        assert_eq!(stream_codec(0x15, &[]), None);
        assert_eq!(stream_codec(0x11, &[]), Some((Codec::Aac, true)));
        assert_eq!(stream_codec(0x86, &[]), Some((Codec::Scte35, false)));
        assert_eq!(stream_codec(0x06, &[]), None);
    }

    #[test]
    fn teletext_and_subtitle_descriptors() {
        // teletext_descriptor: eng type 2 page 888, fra page 889.
        let tt = [0x56, 10, b'e', b'n', b'g', 0x10, 0x88, b'f', b'r', b'a', 0x10, 0x89];
        assert_eq!(stream_codec(0x06, &tt), Some((Codec::Teletext, false)));
        assert_eq!(language(Codec::Teletext, &tt).as_deref(), Some("eng"));
        assert_eq!(&carried_descriptors(&tt)[..], &tt[..]);
        let vbi = [0x46, 5, b'd', b'e', b'u', 0x09, 0x00];
        assert_eq!(stream_codec(0x06, &vbi), Some((Codec::Teletext, false)));
        // subtitling_descriptor, with an ISO 639 descriptor that wins.
        let sub = [
            0x0A, 4, b'p', b'o', b'l', 0, 0x59, 8, b'd', b'e', b'u', 0x10, 0, 1, 0, 1,
        ];
        assert_eq!(stream_codec(0x06, &sub), Some((Codec::DvbSubtitle, false)));
        assert_eq!(language(Codec::DvbSubtitle, &sub).as_deref(), Some("pol"));
        assert_eq!(language(Codec::DvbSubtitle, &sub[6..]).as_deref(), Some("deu"));
        assert_eq!(&carried_descriptors(&sub)[..], &sub[6..]);
        // A subtitling descriptor does not name the language of audio.
        assert_eq!(language(Codec::Ac3, &sub[6..]), None);
        // Registration descriptors are dropped; a truncated tail is cut.
        let reg = [0x05, 4, b'C', b'U', b'E', b'I', 0x8A, 1, 1, 0x52, 5, 1];
        assert_eq!(&carried_descriptors(&reg)[..], &[0x8A, 1, 1]);
    }

    #[test]
    fn pmt_entries_are_bounded_by_the_section() {
        let mut s = vec![0x02, 0xB0, 0, 0, 1, 0xC1, 0, 0, 0xE1, 0x00, 0xF0, 0];
        s.extend_from_slice(&[0x1B, 0xE1, 0x00, 0xF0, 0]);
        s.extend_from_slice(&[0x0F, 0xE1, 0x01, 0xF0, 3, 0x0A, 1, 0]);
        s.extend_from_slice(&[0, 0, 0, 0]);
        let e = es_entries(&s).expect("valid");
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[1].stream_type, e[1].pid, e[1].descriptors),
            (0x0F, 0x101, &[0x0A, 1, 0][..])
        );
        // ES_info_length past the end.
        s[21] = 20;
        assert!(es_entries(&s).is_none());
        assert!(es_entries(&[0; 10]).is_none());
    }
}
