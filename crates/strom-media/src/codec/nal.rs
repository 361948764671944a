//! Annex B NAL unit helpers shared by H.264 and H.265: start-code scanning,
//! emulation-prevention removal and an MSB-first bit reader with exp-Golomb.
//!
//! Invariants: nothing here allocates except [`rbsp`] when the input actually
//! contains emulation-prevention bytes; every read past the end of the input
//! is an error ([`CodecError::Truncated`]), never a panic.

use std::borrow::Cow;

/// Why a codec bitstream could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bitstream ended before the syntax element being read.
    #[error("bitstream truncated")]
    Truncated,
    /// A syntax element has a value the parser does not accept.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Finds the next Annex B start code (`00 00 01`, or `00 00 00 01`) at or after
/// `from`. Returns `(position, length)` of the start code, where a 4-byte code
/// is reported when a zero byte precedes the 3-byte one.
pub fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from.checked_add(2)?;
    while i < data.len() {
        // Eight bytes without a zero byte cannot hold the start of a start
        // code: skip them a word at a time (slice data is mostly such runs).
        while let Some(w) = data.get(i - 2..).and_then(|r| r.first_chunk::<8>()) {
            let w = u64::from_ne_bytes(*w);
            if w.wrapping_sub(0x0101_0101_0101_0101) & !w & 0x8080_8080_8080_8080 != 0 {
                break;
            }
            i += 8;
        }
        // Then byte steps over the next eight candidates. Look at the third
        // byte of a candidate: it must be 1, and the two before it 0. When it
        // is > 1 no start code can end at i, i+1 or i+2 with this byte inside
        // its zero run, so we can skip three bytes.
        let end = data.len().min(i + 8);
        while i < end {
            let b = data[i];
            if b > 1 {
                i += 3;
            } else if b == 0 {
                i += 1;
            } else if data[i - 1] == 0 && data[i - 2] == 0 {
                let start = i - 2;
                if start > from && data[start - 1] == 0 {
                    return Some((start - 1, 4));
                }
                return Some((start, 3));
            } else {
                i += 3;
            }
        }
    }
    None
}

/// The next NAL unit at or after `from`: `(boundary, header)`, where `header`
/// is the offset of its first header byte and `boundary` where its start
/// code begins, a `zero_byte` before `00 00 01` included (B.1.1). The
/// boundary looks back before `from` for that zero byte, so the result does
/// not depend on where a search resumes, only on the bytes: an access unit
/// cut at `boundary` is the same whatever the PES or read chunking was.
pub fn next_nal(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let (p, l) = find_start_code(data, from)?;
    let pattern = p + l - 3;
    let boundary = match pattern.checked_sub(1) {
        Some(z) if data[z] == 0 => z,
        _ => pattern,
    };
    Some((boundary, pattern + 3))
}

/// The part a NAL unit plays in access-unit assembly (H.264 §7.4.1.2.3,
/// H.265 §7.4.2.4.4): which NAL units may only open an access unit once the
/// current one has its VCL NAL units, and which slice is the first of a
/// picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NalRole {
    /// Access unit delimiter: always the first NAL unit of an access unit.
    Aud,
    /// Parameter set: 0 VPS (H.265), 1 SPS, 2 PPS. Opens a new access unit
    /// when it follows the VCL NAL units of the current one.
    ParamSet(u8),
    /// SEI (H.264) or prefix SEI (H.265). Opens a new access unit after VCL
    /// NAL units; H.264 recovery points are carried in it.
    Sei,
    /// Other NAL unit types that open a new access unit after VCL NAL units
    /// (H.264 types 14..=18, H.265 41..=44 and 48..=55).
    Prefix,
    /// A slice. `first`: first slice of a picture (H.264 `first_mb_in_slice`
    /// = 0, H.265 `first_slice_segment_in_pic_flag`). `irap`: H.264 IDR,
    /// H.265 IRAP (BLA, IDR, CRA).
    Vcl { first: bool, irap: bool },
    /// Belongs to the current access unit (suffix SEI, end of sequence,
    /// filler data, data partitions B and C, other layers, reserved types).
    Other,
}

impl NalRole {
    /// Whether this NAL unit starts a new access unit, given whether the
    /// current one already has a VCL NAL unit.
    pub fn starts_au(self, after_vcl: bool) -> bool {
        match self {
            NalRole::Aud => true,
            NalRole::ParamSet(_) | NalRole::Sei | NalRole::Prefix => after_vcl,
            NalRole::Vcl { first, .. } => first && after_vcl,
            NalRole::Other => false,
        }
    }

    /// Whether this NAL unit can be the first of an access unit when no
    /// access unit is open (after a loss or at the start of a stream): a
    /// slice that is not the first of its picture, or a trailing NAL unit,
    /// continues an access unit whose start is gone.
    pub fn can_open_au(self) -> bool {
        !matches!(self, NalRole::Other | NalRole::Vcl { first: false, .. })
    }
}

/// Iterator over the NAL units of an Annex B byte stream. Yields sub-slices
/// without start codes and without trailing zero bytes (which belong to the
/// next start code or are `trailing_zero_8bits`). Bytes before the first start
/// code are skipped; empty NAL units are not yielded.
#[derive(Clone, Debug)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    /// Start of the next NAL unit's payload, or `None` when exhausted.
    next: Option<usize>,
}

/// Iterates the NAL units of `data` (Annex B). See [`NalUnits`].
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    NalUnits {
        data,
        next: find_start_code(data, 0).map(|(p, l)| p + l),
    }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let start = self.next?;
            let end = match find_start_code(self.data, start) {
                Some((p, l)) => {
                    self.next = Some(p + l);
                    p
                }
                None => {
                    self.next = None;
                    self.data.len()
                }
            };
            let nal = trim_trailing_zeros(self.data.get(start..end)?);
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }
}

fn trim_trailing_zeros(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = s {
        s = rest;
    }
    s
}

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`) to recover the
/// RBSP of a NAL unit. Borrows when there is nothing to remove.
pub fn rbsp(nal: &[u8]) -> Cow<'_, [u8]> {
    // An emulation-prevention byte is a 3 after two zeros: most NAL units
    // (and slice-header prefixes) have no zero byte at all.
    let has_epb = nal.contains(&0)
        && nal
            .iter()
            .enumerate()
            .skip(2)
            .any(|(i, &b)| b == 3 && nal[i - 1] == 0 && nal[i - 2] == 0);
    if !has_epb {
        return Cow::Borrowed(nal);
    }
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    Cow::Owned(out)
}

/// MSB-first bit reader over an RBSP (emulation prevention already removed).
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// Bits not yet read.
    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// Reads one bit.
    pub fn read_bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self.data.get(self.pos / 8).ok_or(CodecError::Truncated)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads a flag (`u(1)`).
    pub fn read_flag(&mut self) -> Result<bool, CodecError> {
        self.read_bit()
    }

    /// The next 57 or more bits, MSB first, as the high bits of a u64 (bits
    /// past the end of the data read as 0).
    fn peek64(&self) -> u64 {
        let byte = self.pos / 8;
        let mut w = [0u8; 8];
        if let Some(rest) = self.data.get(byte..) {
            let n = rest.len().min(8);
            w[..n].copy_from_slice(&rest[..n]);
        }
        u64::from_be_bytes(w) << (self.pos % 8)
    }

    /// Reads `n` bits (0..=32) as an unsigned integer, MSB first.
    pub fn read_bits(&mut self, n: u32) -> Result<u32, CodecError> {
        if n > 32 {
            return Err(CodecError::Invalid("bit count"));
        }
        if (n as usize) > self.bits_left() {
            return Err(CodecError::Truncated);
        }
        if n == 0 {
            return Ok(0);
        }
        let v = self.peek64() >> (64 - n);
        self.pos += n as usize;
        Ok(v as u32)
    }

    /// Reads `n` bits as a `u8` (n ≤ 8).
    pub fn read_u8(&mut self, n: u32) -> Result<u8, CodecError> {
        if n > 8 {
            return Err(CodecError::Invalid("bit count"));
        }
        Ok(self.read_bits(n)? as u8)
    }

    /// Skips `n` bits.
    pub fn skip_bits(&mut self, n: usize) -> Result<(), CodecError> {
        if n > self.bits_left() {
            return Err(CodecError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// Bits read so far.
    pub fn bit_pos(&self) -> usize {
        self.pos
    }

    /// Appends `n` bytes read at the current bit position (not necessarily
    /// byte aligned) to `out`. Nothing is appended when fewer bits are left.
    pub fn read_bytes(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if n.checked_mul(8).is_none_or(|bits| bits > self.bits_left()) {
            return Err(CodecError::Truncated);
        }
        let start = self.pos / 8;
        let shift = self.pos % 8;
        if shift == 0 {
            out.extend_from_slice(&self.data[start..start + n]);
        } else {
            // Each output byte is the low bits of one input byte and the
            // high bits of the next; the last one may not exist (the bits
            // needed from it are then zero).
            let src = &self.data[start..];
            out.extend((0..n).map(|i| {
                let hi = src[i] << shift;
                let lo = src.get(i + 1).map_or(0, |&b| b >> (8 - shift));
                hi | lo
            }));
        }
        self.pos += n * 8;
        Ok(())
    }

    /// Skips to the next byte boundary.
    pub fn byte_align(&mut self) {
        self.pos = self.pos.div_ceil(8) * 8;
    }

    /// Reads an unsigned exp-Golomb code (`ue(v)`). Codes longer than 32 bits
    /// of value are rejected: no syntax element we read can be that large.
    pub fn read_ue(&mut self) -> Result<u32, CodecError> {
        let left = self.bits_left();
        // Leading zeros, as far as the data goes.
        let zeros = (self.peek64().leading_zeros() as usize).min(left);
        if zeros > 31 {
            return Err(CodecError::Invalid("exp-Golomb code"));
        }
        if zeros >= left {
            return Err(CodecError::Truncated);
        }
        self.pos += zeros + 1;
        let zeros = zeros as u32;
        let rest = self.read_bits(zeros)?;
        // (1 << zeros) - 1 + rest fits u32 for zeros <= 31 only if no overflow:
        // max is 2^32 - 2 when zeros == 31 and rest == 2^31 - 1.
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// Reads a signed exp-Golomb code (`se(v)`).
    pub fn read_se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.read_ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

/// Up to [`ParamSetList::CAPACITY`] parameter-set NAL units seen in one access
/// unit, borrowed from it. Fixed capacity so scanning never allocates.
#[derive(Clone, Copy, Debug, Default)]
pub struct ParamSetList<'a> {
    items: [&'a [u8]; ParamSetList::CAPACITY],
    len: usize,
}

impl<'a> ParamSetList<'a> {
    /// More parameter sets of one kind in one access unit are ignored.
    pub const CAPACITY: usize = 4;

    /// Adds `nal` unless the list is full or already holds identical bytes.
    pub fn push(&mut self, nal: &'a [u8]) {
        if self.len < Self::CAPACITY && !self.as_slice().contains(&nal) {
            self.items[self.len] = nal;
            self.len += 1;
        }
    }

    pub fn as_slice(&self) -> &[&'a [u8]] {
        &self.items[..self.len]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What the demuxer needs to know about one video access unit.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuScan<'a> {
    /// The access unit is a random access point (H.264 IDR, H.265 IRAP).
    pub keyframe: bool,
    /// At least one VCL (slice) NAL unit was found.
    pub has_vcl: bool,
    /// Offset of the first byte after a leading access unit delimiter, or 0.
    /// Slicing the AU at this offset drops the AUD and keeps the next start code.
    pub aud_end: usize,
    /// H.265 video parameter sets (always empty for H.264).
    pub vps: ParamSetList<'a>,
    pub sps: ParamSetList<'a>,
    pub pps: ParamSetList<'a>,
}

/// How a codec classifies a NAL unit for [`scan_access_unit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NalClass {
    Aud,
    Vps,
    Sps,
    Pps,
    /// A slice; the bool tells whether it belongs to a random access picture.
    Vcl(bool),
    Other,
}

/// Scans an access unit up to its first VCL NAL unit. Parameter sets precede
/// the slices that use them and every slice of a picture has the same
/// keyframe-ness, so stopping there keeps the scan proportional to the header
/// NAL units instead of the (much larger) slice data.
pub(crate) fn scan_access_unit<'a>(au: &'a [u8], classify: impl Fn(&[u8]) -> NalClass) -> AuScan<'a> {
    let mut scan = AuScan::default();
    let mut next = find_start_code(au, 0);
    let mut first = true;
    while let Some((p, l)) = next {
        let start = p + l;
        let header = au.get(start..).unwrap_or_default();
        let class = classify(header);
        if let NalClass::Vcl(key) = class {
            scan.has_vcl = true;
            scan.keyframe = key;
            break;
        }
        next = find_start_code(au, start);
        let end = next.map_or(au.len(), |(np, _)| np);
        let nal = trim_trailing_zeros(au.get(start..end).unwrap_or_default());
        match class {
            NalClass::Aud if first => scan.aud_end = end,
            NalClass::Vps => scan.vps.push(nal),
            NalClass::Sps => scan.sps.push(nal),
            NalClass::Pps => scan.pps.push(nal),
            _ => {}
        }
        first = false;
    }
    scan
}

/// Test helpers shared by the codec modules' tests.
#[cfg(test)]
pub(crate) mod test_bits {
    /// Minimal MSB-first writer for building test bitstreams.
    #[derive(Default)]
    pub(crate) struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        /// Appends the `n` low bits of `v`, most significant first.
        pub(crate) fn put(&mut self, v: u64, n: u32) {
            for i in (0..n).rev() {
                if self.bits.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                if let Some(last) = self.bytes.last_mut() {
                    *last |= (((v >> i) & 1) as u8) << (7 - self.bits % 8);
                }
                self.bits += 1;
            }
        }

        /// Appends `v` as Exp-Golomb ue(v) (H.264 §9.1).
        pub(crate) fn ue(&mut self, v: u32) {
            let x = u64::from(v) + 1;
            let len = 64 - x.leading_zeros();
            self.put(0, len - 1);
            self.put(x, len);
        }

        /// Appends rbsp_stop_one_bit and returns the bytes.
        pub(crate) fn finish(mut self) -> Vec<u8> {
            self.put(1, 1);
            self.bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_mixed_start_codes() {
        let data = [
            0xAA, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 5, 0,
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]);
    }

    #[test]
    fn start_code_positions() {
        assert_eq!(find_start_code(&[0, 0, 1], 0), Some((0, 3)));
        assert_eq!(find_start_code(&[0, 0, 0, 1], 0), Some((0, 4)));
        assert_eq!(find_start_code(&[9, 0, 0, 1], 0), Some((1, 3)));
        assert_eq!(find_start_code(&[9, 0, 0, 0, 1], 0), Some((1, 4)));
        assert_eq!(find_start_code(&[5, 0, 0, 0, 1], 2), Some((2, 3)));
        assert_eq!(find_start_code(&[0, 0, 2, 0, 1], 0), None);
        assert_eq!(find_start_code(&[0, 1], 0), None);
        assert_eq!(find_start_code(&[], 0), None);
        assert_eq!(find_start_code(&[0, 0, 1], usize::MAX), None);
    }

    #[test]
    fn start_code_scan_matches_naive() {
        // Pseudo-random bytes biased to 0/1 so start codes are frequent.
        let mut x: u32 = 12345;
        let data: Vec<u8> = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                match (x >> 16) % 5 {
                    0..=2 => 0,
                    3 => 1,
                    _ => (x >> 8) as u8,
                }
            })
            .collect();
        let naive: Vec<usize> = (0..data.len().saturating_sub(2))
            .filter(|&i| data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1)
            .collect();
        let mut fast = Vec::new();
        let mut from = 0;
        while let Some((p, l)) = find_start_code(&data, from) {
            fast.push(p + l - 3);
            from = p + l;
        }
        assert_eq!(fast, naive);
    }

    #[test]
    fn next_nal_boundary_does_not_depend_on_resume_point() {
        let d = [7, 0, 0, 0, 1, 9, 0xF0, 0, 0, 1, 0x65];
        assert_eq!(next_nal(&d, 0), Some((1, 5)));
        // Resuming inside the zero run finds the same boundary.
        assert_eq!(next_nal(&d, 2), Some((1, 5)));
        assert_eq!(next_nal(&d, 5), Some((7, 10)));
        assert_eq!(next_nal(&d, 8), None);
        assert_eq!(next_nal(&[0, 0, 1], 0), Some((0, 3)));
        assert_eq!(next_nal(&[], 0), None);
    }

    #[test]
    fn nal_roles_open_access_units() {
        assert!(NalRole::Aud.starts_au(false));
        assert!(!NalRole::ParamSet(1).starts_au(false) && NalRole::ParamSet(1).starts_au(true));
        let first = NalRole::Vcl {
            first: true,
            irap: false,
        };
        let next = NalRole::Vcl {
            first: false,
            irap: false,
        };
        assert!(!first.starts_au(false) && first.starts_au(true));
        assert!(!next.starts_au(true) && !NalRole::Other.starts_au(true));
        assert!(first.can_open_au() && !next.can_open_au() && !NalRole::Other.can_open_au());
    }

    #[test]
    fn no_nal_without_start_code() {
        assert_eq!(nal_units(&[1, 2, 3, 4]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1, 0, 0, 1, 9]).count(), 1);
    }

    #[test]
    fn strips_emulation_prevention() {
        assert_eq!(&*rbsp(&[1, 0, 0, 3, 1, 0, 0, 3, 0, 3]), &[1, 0, 0, 1, 0, 0, 0, 3]);
        assert!(matches!(rbsp(&[1, 2, 3]), Cow::Borrowed(_)));
        // 00 00 03 03: only the first 03 is emulation prevention.
        assert_eq!(&*rbsp(&[0, 0, 3, 3]), &[0, 0, 3]);
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 → ue 0,1,2,3,4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        for want in 0..5 {
            assert_eq!(r.read_ue().expect("valid test input"), want);
        }
        // se: 010 → 1, 011 → -1, 00100 → 2, 00101 → -2
        let mut r = BitReader::new(&data[..]);
        r.skip_bits(1).expect("valid test input");
        assert_eq!(r.read_se().expect("valid test input"), 1);
        assert_eq!(r.read_se().expect("valid test input"), -1);
        assert_eq!(r.read_se().expect("valid test input"), 2);
        assert_eq!(r.read_se().expect("valid test input"), -2);
    }

    #[test]
    fn exp_golomb_extremes_and_errors() {
        // 31 zeros, a one, 31 ones → 2^32 - 2.
        let mut bits = vec![0u8; 8];
        // bit 31 = 1, bits 32..63 = 1
        bits[3] = 0x01;
        for b in &mut bits[4..8] {
            *b = 0xFF;
        }
        let mut r = BitReader::new(&bits);
        assert_eq!(r.read_ue().expect("valid test input"), u32::MAX - 1);
        // 32 zeros: rejected, not a panic.
        assert_eq!(
            BitReader::new(&[0, 0, 0, 0, 0xFF]).read_ue(),
            Err(CodecError::Invalid("exp-Golomb code"))
        );
        assert_eq!(BitReader::new(&[0, 0]).read_ue(), Err(CodecError::Truncated));
        assert_eq!(BitReader::new(&[0x01]).read_ue(), Err(CodecError::Truncated));
        assert_eq!(BitReader::new(&[]).read_bit(), Err(CodecError::Truncated));
        let mut r = BitReader::new(&[0xAB, 0xCD]);
        assert_eq!(r.read_bits(12).expect("valid test input"), 0xABC);
        assert_eq!(r.bits_left(), 4);
        assert_eq!(r.read_bits(5), Err(CodecError::Truncated));
        assert_eq!(r.read_bits(33), Err(CodecError::Invalid("bit count")));
        assert_eq!(r.read_bits(4).expect("valid test input"), 0xD);
    }

    #[test]
    fn word_reads_match_bit_reads() {
        let data: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..40 {
            for n in 0..=32 {
                let mut fast = BitReader::new(&data);
                fast.skip_bits(start).expect("valid test input");
                let mut slow = fast.clone();
                let mut v: u64 = 0;
                for _ in 0..n {
                    v = (v << 1) | u64::from(slow.read_bit().expect("valid test input"));
                }
                assert_eq!(
                    fast.read_bits(n).expect("valid test input"),
                    v as u32,
                    "start {start} n {n}"
                );
                assert_eq!(fast.bit_pos(), slow.bit_pos());
            }
        }
        // Reads ending exactly at the last bit, across the 8-byte window.
        let mut r = BitReader::new(&data[..5]);
        r.skip_bits(7).expect("valid test input");
        assert_eq!(
            r.read_bits(32).expect("valid test input"),
            u32::from_be_bytes([data[0], data[1], data[2], data[3]]) << 7 | u32::from(data[4] >> 1)
        );
        assert_eq!(r.read_bits(1).expect("valid test input"), u32::from(data[4] & 1));
        assert_eq!(r.read_bits(1), Err(CodecError::Truncated));
        // Exactly 32 zero bits: an invalid code, not a truncated one.
        assert_eq!(
            BitReader::new(&[0, 0, 0, 0]).read_ue(),
            Err(CodecError::Invalid("exp-Golomb code"))
        );
        assert_eq!(BitReader::new(&[0, 0, 0, 1]).read_ue(), Err(CodecError::Truncated));
    }

    #[test]
    fn unaligned_byte_reads() {
        let data = [0xAB, 0xCD, 0xEF, 0x12];
        let mut r = BitReader::new(&data);
        let mut out = Vec::new();
        r.read_bytes(1, &mut out).expect("valid test input");
        assert_eq!(out, [0xAB]);
        r.skip_bits(4).expect("valid test input");
        out.clear();
        r.read_bytes(2, &mut out).expect("valid test input");
        assert_eq!(out, [0xDE, 0xF1]);
        assert_eq!(r.bit_pos(), 28);
        assert_eq!(r.read_bytes(1, &mut out), Err(CodecError::Truncated));
        assert_eq!(r.read_bytes(usize::MAX, &mut out), Err(CodecError::Truncated));
        assert_eq!(out.len(), 2);
        r.byte_align();
        assert_eq!(r.bits_left(), 0);
        // Reading up to the very last bit while unaligned.
        let mut r = BitReader::new(&[0x0F, 0xF0]);
        r.skip_bits(4).expect("valid test input");
        out.clear();
        r.read_bytes(1, &mut out).expect("valid test input");
        assert_eq!(out, [0xFF]);
    }

    #[test]
    fn scan_stops_at_first_slice_and_finds_aud() {
        let au = [
            0, 0, 0, 1, 9, 0xF0, 0, 0, 1, 7, 1, 0, 0, 1, 8, 2, 0, 0, 1, 5, 0xAA, 0, 0, 1, 7, 9,
        ];
        let scan = scan_access_unit(&au, |h| match h.first().map(|b| b & 0x1F) {
            Some(9) => NalClass::Aud,
            Some(7) => NalClass::Sps,
            Some(8) => NalClass::Pps,
            Some(5) => NalClass::Vcl(true),
            Some(1) => NalClass::Vcl(false),
            _ => NalClass::Other,
        });
        assert!(scan.keyframe && scan.has_vcl);
        assert_eq!(scan.aud_end, 6);
        assert_eq!(scan.sps.as_slice(), &[&[7u8, 1][..]]);
        assert_eq!(scan.pps.as_slice(), &[&[8u8, 2][..]]);
    }
}
