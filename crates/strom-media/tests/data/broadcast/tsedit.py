#!/usr/bin/env python3
"""tsedit: a small MPEG-TS editor for building broadcast-like test fixtures.

Python 3 standard library only. It is both a library (``import tsedit``) and
a command-line tool (``python3 tsedit.py --help``).

Everything here follows the public specifications, not another program:

* ISO/IEC 13818-1 (MPEG-2 Systems): transport packets (§2.4.3.2), the
  adaptation field and PCR (§2.4.3.4-5), PES packets (§2.4.3.6-7), PSI
  sections, PAT and PMT (§2.4.4), descriptors (§2.6), CRC-32 (Annex A).
* ETSI EN 300 468 (DVB SI): teletext_descriptor 0x56 (§6.2.43),
  subtitling_descriptor 0x59 (§6.2.41).
* ETSI EN 300 472 (teletext in DVB bitstreams) and EN 300 706 (enhanced
  teletext: packet addressing, Hamming 8/4, odd parity, page header).
* ETSI EN 300 743 (DVB subtitling): segments and pixel-data coding.
* ANSI/SCTE 35 (digital program insertion cueing): splice_info_section,
  splice_insert, time_signal, segmentation_descriptor.
* ITU-T H.264 / H.265 just enough to list NAL unit types, slice types and
  SEI payload types of an access unit.

Conventions: timestamps (PTS, DTS, splice times) are 33-bit values in 90 kHz
ticks; PCR values are in 27 MHz ticks (base * 300 + extension); packet
indices count 188-byte packets from the start of the file. The editor keeps
the whole file in memory as a list of ``Packet`` objects: fixtures are small.
"""

import argparse
import re
import signal
import sys

PACKET_SIZE = 188
SYNC_BYTE = 0x47
PTS_MODULO = 1 << 33  # PTS/DTS/PCR base are 33-bit counters that wrap
PTS_HZ = 90_000
PCR_HZ = 27_000_000

# ---------------------------------------------------------------------------
# CRC-32/MPEG-2 (ISO/IEC 13818-1 Annex A): polynomial 0x04C11DB7, initial
# value 0xFFFFFFFF, no bit reflection, no final XOR. Running the CRC over a
# whole section including its CRC_32 field gives 0 when the section is intact.
# ---------------------------------------------------------------------------


def _crc_table():
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        table.append(c & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data):
    """CRC-32/MPEG-2 of ``data`` (bytes), as used by PSI and SCTE-35 sections."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ b) & 0xFF]
    return crc


# ---------------------------------------------------------------------------
# Bit-level helpers (SCTE-35 and DVB subtitles are bit-packed; H.264/H.265
# headers use Exp-Golomb codes).
# ---------------------------------------------------------------------------


class BitWriter:
    """Big-endian bit writer: ``put(value, n)`` appends the n low bits of value."""

    def __init__(self):
        self._bits = []

    def put(self, value, nbits):
        if value < 0 or value >= (1 << nbits):
            raise ValueError("value %d does not fit in %d bits" % (value, nbits))
        for i in range(nbits - 1, -1, -1):
            self._bits.append((value >> i) & 1)

    def put_bytes(self, data):
        for b in data:
            self.put(b, 8)

    def bit_len(self):
        return len(self._bits)

    def byte_aligned(self):
        return len(self._bits) % 8 == 0

    def to_bytes(self):
        if not self.byte_aligned():
            raise ValueError("bit string is not byte aligned")
        out = bytearray()
        for i in range(0, len(self._bits), 8):
            v = 0
            for bit in self._bits[i : i + 8]:
                v = (v << 1) | bit
            out.append(v)
        return bytes(out)


class BitReader:
    """Big-endian bit reader with Exp-Golomb support (H.264 §9.1)."""

    def __init__(self, data):
        self.data = data
        self.pos = 0  # in bits

    def bits_left(self):
        return len(self.data) * 8 - self.pos

    def get(self, nbits):
        if nbits > self.bits_left():
            raise ValueError("read past end of data")
        v = 0
        for _ in range(nbits):
            byte = self.data[self.pos >> 3]
            v = (v << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self):
        zeros = 0
        while self.get(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.get(zeros)


# ---------------------------------------------------------------------------
# Transport stream packets (ISO/IEC 13818-1 §2.4.3.2 and §2.4.3.4).
# ---------------------------------------------------------------------------


class Packet:
    """One 188-byte transport packet, kept as a mutable bytearray.

    Header layout: sync_byte(8) transport_error_indicator(1)
    payload_unit_start_indicator(1) transport_priority(1) PID(13)
    transport_scrambling_control(2) adaptation_field_control(2)
    continuity_counter(4).
    """

    __slots__ = ("raw",)

    def __init__(self, raw):
        if len(raw) != PACKET_SIZE or raw[0] != SYNC_BYTE:
            raise ValueError("not a 188-byte transport packet with sync byte 0x47")
        self.raw = bytearray(raw)

    # -- header fields ----------------------------------------------------
    @property
    def pid(self):
        return ((self.raw[1] & 0x1F) << 8) | self.raw[2]

    @pid.setter
    def pid(self, value):
        self.raw[1] = (self.raw[1] & 0xE0) | ((value >> 8) & 0x1F)
        self.raw[2] = value & 0xFF

    @property
    def tei(self):
        return bool(self.raw[1] & 0x80)

    @property
    def pusi(self):
        """payload_unit_start_indicator: a PES or a PSI section starts here."""
        return bool(self.raw[1] & 0x40)

    @pusi.setter
    def pusi(self, value):
        self.raw[1] = (self.raw[1] | 0x40) if value else (self.raw[1] & ~0x40 & 0xFF)

    @property
    def scrambling(self):
        return (self.raw[3] >> 6) & 3

    @property
    def afc(self):
        """adaptation_field_control: 1 payload only, 2 AF only, 3 AF + payload."""
        return (self.raw[3] >> 4) & 3

    @property
    def cc(self):
        """continuity_counter: +1 (mod 16) per packet with payload on a PID."""
        return self.raw[3] & 0x0F

    @cc.setter
    def cc(self, value):
        self.raw[3] = (self.raw[3] & 0xF0) | (value & 0x0F)

    @property
    def has_af(self):
        return bool(self.afc & 2)

    @property
    def has_payload(self):
        return bool(self.afc & 1)

    # -- adaptation field ----------------------------------------------------
    @property
    def af_length(self):
        """adaptation_field_length, or None without an adaptation field."""
        return self.raw[4] if self.has_af else None

    @property
    def af_flags(self):
        if not self.has_af or self.raw[4] == 0:
            return 0
        return self.raw[5]

    @property
    def discontinuity(self):
        return bool(self.af_flags & 0x80)

    @property
    def random_access(self):
        """random_access_indicator: the next PES starts a random access point."""
        return bool(self.af_flags & 0x40)

    @property
    def pcr(self):
        """PCR in 27 MHz ticks (base * 300 + extension), or None."""
        if not (self.af_flags & 0x10) or self.raw[4] < 7:
            return None
        b = self.raw[6:12]
        base = (b[0] << 25) | (b[1] << 17) | (b[2] << 9) | (b[3] << 1) | (b[4] >> 7)
        ext = ((b[4] & 1) << 8) | b[5]
        return base * 300 + ext

    @property
    def payload_offset(self):
        if self.has_af:
            return min(PACKET_SIZE, 5 + self.raw[4])
        return 4

    @property
    def payload(self):
        if not self.has_payload:
            return b""
        return bytes(self.raw[self.payload_offset :])

    def copy(self):
        return Packet(bytes(self.raw))


def encode_pcr(pcr):
    """6 bytes: program_clock_reference_base(33) reserved(6) extension(9)."""
    base, ext = (pcr // 300) % PTS_MODULO, pcr % 300
    return bytes(
        [
            (base >> 25) & 0xFF,
            (base >> 17) & 0xFF,
            (base >> 9) & 0xFF,
            (base >> 1) & 0xFF,
            ((base & 1) << 7) | 0x7E | (ext >> 8),
            ext & 0xFF,
        ]
    )


def make_packet(pid, payload, cc, pusi=False, pcr=None, random_access=False, discontinuity=False):
    """Build one packet. Room not used by ``payload`` becomes adaptation-field
    stuffing (0xFF bytes, §2.4.3.5), the only stuffing allowed for PES data."""
    room = 184 - len(payload)
    if room < 0:
        raise ValueError("payload of %d bytes does not fit a packet" % len(payload))
    need_flags = pcr is not None or random_access or discontinuity
    header = bytearray(
        [SYNC_BYTE, (0x40 if pusi else 0) | ((pid >> 8) & 0x1F), pid & 0xFF, 0]
    )
    af = b""
    if room > 0 or need_flags:
        if room == 1 and not need_flags:
            af = b"\x00"  # adaptation_field_length 0: one byte of stuffing
        else:
            body = bytearray([(0x80 if discontinuity else 0) | (0x40 if random_access else 0) | (0x10 if pcr is not None else 0)])
            if pcr is not None:
                body += encode_pcr(pcr)
            if len(body) + 1 > room:
                raise ValueError("payload too long for the adaptation field asked for")
            body += b"\xff" * (room - 1 - len(body))
            af = bytes([len(body)]) + bytes(body)
    afc = (2 if af else 0) | (1 if payload else 0)
    if afc == 0:
        raise ValueError("a packet needs a payload or an adaptation field")
    header[3] = (afc << 4) | (cc & 0x0F)
    return Packet(bytes(header) + af + bytes(payload))


def read_ts(path):
    """Read a file of 188-byte packets. Raises on a lost sync byte."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) % PACKET_SIZE:
        raise ValueError("%s: size %d is not a multiple of 188" % (path, len(data)))
    return [Packet(data[i : i + PACKET_SIZE]) for i in range(0, len(data), PACKET_SIZE)]


def write_ts(path, packets):
    with open(path, "wb") as f:
        for p in packets:
            f.write(p.raw)


def renumber_cc(packets, pid, start=None):
    """Rewrite continuity_counter on ``pid`` so it runs without a gap.

    Packets without payload keep the previous value (§2.4.3.3). ``start`` is
    the counter of the first payload packet (default: its current value)."""
    cc = None
    for p in packets:
        if p.pid != pid:
            continue
        if p.has_payload:
            if cc is None:
                cc = p.cc if start is None else start & 0x0F
            else:
                cc = (cc + 1) & 0x0F
            p.cc = cc
        elif cc is not None:
            p.cc = cc


def continuity_errors(packets):
    """Count continuity-counter gaps per PID (the first packet of a PID and a
    single duplicate packet are not errors)."""
    last, errors = {}, {}
    for p in packets:
        if p.pid == 0x1FFF:
            continue
        if not p.has_payload:
            continue
        prev = last.get(p.pid)
        if prev is not None and p.cc != (prev + 1) & 0x0F and p.cc != prev and not p.discontinuity:
            errors[p.pid] = errors.get(p.pid, 0) + 1
        last[p.pid] = p.cc
    return errors


def insert_packets(packets, insertions):
    """Return a new list with packets inserted. ``insertions`` is a list of
    (index, [Packet]): the new packets go before the packet that had that
    index in the input (index == len(packets) appends). Insertions at the same
    index keep their order."""
    by_index = {}
    for index, new in insertions:
        if not 0 <= index <= len(packets):
            raise ValueError("insertion index %d out of range" % index)
        by_index.setdefault(index, []).extend(new)
    out = []
    for i, p in enumerate(packets):
        out.extend(by_index.get(i, ()))
        out.append(p)
    out.extend(by_index.get(len(packets), ()))
    return out


# ---------------------------------------------------------------------------
# PCR timeline: where in the file (packet index) is a given system time.
# ---------------------------------------------------------------------------


def pcr_pid_of(packets):
    """The PCR_PID of the first program in the first PMT."""
    pat = first_pat(packets)
    if not pat:
        raise ValueError("no PAT")
    for number, pmt_pid in pat[2]:
        if number != 0:
            pmt = first_pmt(packets, pmt_pid)
            if pmt:
                return pmt.pcr_pid
    raise ValueError("no PMT")


def pcr_points(packets, pcr_pid=None):
    """[(packet index, PCR in 27 MHz)] for every PCR on the PCR PID."""
    if pcr_pid is None:
        pcr_pid = pcr_pid_of(packets)
    return [(i, p.pcr) for i, p in enumerate(packets) if p.pid == pcr_pid and p.pcr is not None]


def pcr_at_index(points, index):
    """System time (27 MHz) at packet ``index``, interpolated linearly by packet
    count between the two nearest PCRs (§2.4.2.2), extrapolated at the ends."""
    if len(points) < 2:
        raise ValueError("need at least two PCRs")
    lo, hi = points[0], points[1]
    for k in range(1, len(points)):
        lo, hi = points[k - 1], points[k]
        if hi[0] >= index:
            break
    (i0, c0), (i1, c1) = lo, hi
    return c0 + (c1 - c0) * (index - i0) // max(1, i1 - i0)


def index_at_pcr(points, npackets, target):
    """First packet index whose interpolated system time is >= ``target``
    (27 MHz). Returns ``npackets`` if the file ends first."""
    for index in range(npackets):
        if pcr_at_index(points, index) >= target:
            return index
    return npackets


# ---------------------------------------------------------------------------
# PSI sections (ISO/IEC 13818-1 §2.4.4).
# ---------------------------------------------------------------------------


def iter_sections(packets, pid):
    """Yield (index of the packet where the section starts, section bytes)
    for every complete section on ``pid``; follows pointer_field and sections
    spanning packets. Incomplete or CRC-damaged sections are still yielded:
    check them with ``section_crc_ok``."""
    buf, start = None, None
    for i, p in enumerate(packets):
        if p.pid != pid or not p.has_payload:
            continue
        data = p.payload
        if p.pusi:
            if not data:
                continue
            ptr = data[0]
            if buf is not None:
                buf += data[1 : 1 + ptr]
                done = _section_total(buf)
                if done is not None and len(buf) >= done:
                    yield start, bytes(buf[:done])
            buf = None
            rest = data[1 + ptr :]
            while rest and rest[0] != 0xFF:
                total = _section_total(rest)
                if total is None or len(rest) < total:
                    buf, start = bytearray(rest), i
                    break
                yield i, bytes(rest[:total])
                rest = rest[total:]
        elif buf is not None:
            buf += data
            total = _section_total(buf)
            if total is not None and len(buf) >= total:
                yield start, bytes(buf[:total])
                buf = None


def _section_total(buf):
    if len(buf) < 3:
        return None
    return 3 + (((buf[1] & 0x0F) << 8) | buf[2])


def section_crc_ok(section):
    return crc32_mpeg2(section) == 0


def build_long_section(table_id, table_id_extension, body, version=0, section_number=0, last_section_number=0, current_next=1):
    """A section with section_syntax_indicator 1 (the long form used by PAT and
    PMT): header, ``body``, CRC_32."""
    length = 5 + len(body) + 4
    if length > 1021:
        raise ValueError("section too long")
    sec = bytearray(
        [
            table_id,
            0xB0 | (length >> 8),  # syntax 1, '0', reserved '11'
            length & 0xFF,
            table_id_extension >> 8,
            table_id_extension & 0xFF,
            0xC0 | ((version & 0x1F) << 1) | (current_next & 1),
            section_number,
            last_section_number,
        ]
    )
    sec += body
    sec += crc32_mpeg2(sec).to_bytes(4, "big")
    return bytes(sec)


def parse_long_section(sec):
    """(table_id, table_id_extension, version, body) of a long-form section."""
    if len(sec) < 12 or not sec[1] & 0x80:
        raise ValueError("not a long-form section")
    return sec[0], (sec[3] << 8) | sec[4], (sec[5] >> 1) & 0x1F, sec[8:-4]


def packetize_section(pid, section, cc=0):
    """Packets carrying one section: pointer_field 0 in the first packet and
    0xFF filler after the section (§2.4.4.1; PSI uses payload stuffing, not
    the adaptation field). Returns (packets, next cc)."""
    data = b"\x00" + section
    out = []
    for off in range(0, len(data), 184):
        chunk = data[off : off + 184]
        chunk += b"\xff" * (184 - len(chunk))
        out.append(make_packet(pid, chunk, cc, pusi=(off == 0)))
        cc = (cc + 1) & 0x0F
    return out, cc


def rewrite_sections(packets, pid, fn):
    """Replace every section on ``pid`` by ``fn(section)`` (bytes, or None to
    keep). Each payload_unit_start packet must begin a section (pointer_field
    0), as muxers write PSI. The new section takes the place of the old one's
    packets; any extra packets follow it. Continuity counters of ``pid`` are
    renumbered afterwards. Returns the new packet list."""
    out, i = [], 0
    while i < len(packets):
        p = packets[i]
        if p.pid != pid or not p.pusi or not p.has_payload:
            out.append(p)
            i += 1
            continue
        data = p.payload
        if data[0] != 0:
            raise ValueError("packet %d: pointer_field %d not supported" % (i, data[0]))
        sec = bytearray(data[1:])
        total = _section_total(sec)
        j = i + 1
        while total is not None and len(sec) < total and j < len(packets):
            if packets[j].pid == pid:
                sec += packets[j].payload
            j += 1
        if total is None or len(sec) < total:
            out.append(p)  # truncated at end of file: keep as is
            i += 1
            continue
        new = fn(bytes(sec[:total]))
        if new is None:
            new = bytes(sec[:total])
        new_packets, _ = packetize_section(pid, new, 0)
        out.extend(new_packets)
        # keep the other PIDs' packets that were interleaved with the old section
        out.extend(q for q in packets[i + 1 : j] if q.pid != pid)
        i = j
    renumber_cc(out, pid, start=next((q.cc for q in packets if q.pid == pid and q.has_payload), 0))
    return out


# -- PAT (§2.4.4.3) -----------------------------------------------------------


def build_pat(transport_stream_id, programs, version=0):
    """programs: [(program_number, PMT PID)]; program 0 names the network PID."""
    body = b"".join(
        bytes([n >> 8, n & 0xFF, 0xE0 | (pid >> 8), pid & 0xFF]) for n, pid in programs
    )
    return build_long_section(0x00, transport_stream_id, body, version)


def parse_pat(sec):
    """(transport_stream_id, version, [(program_number, PID)]) in PAT order."""
    table_id, tsid, version, body = parse_long_section(sec)
    if table_id != 0:
        raise ValueError("not a PAT")
    progs = []
    for k in range(0, len(body) - 3, 4):
        progs.append(((body[k] << 8) | body[k + 1], ((body[k + 2] & 0x1F) << 8) | body[k + 3]))
    return tsid, version, progs


def first_pat(packets):
    for _, sec in iter_sections(packets, 0):
        if sec[0] == 0 and section_crc_ok(sec):
            return parse_pat(sec)
    return None


# -- descriptors (§2.6 and EN 300 468 §6) -------------------------------------

DESCRIPTOR_NAMES = {
    0x05: "registration",
    0x0A: "ISO_639_language",
    0x52: "stream_identifier",
    0x56: "teletext",
    0x59: "subtitling",
    0x6A: "AC-3",
    0x7A: "enhanced_AC-3",
    0x7C: "AAC",
    0x02: "video_stream",
    0x03: "audio_stream",
    0x28: "AVC_video",
    0x38: "HEVC_video",
    0x8A: "cue_identifier",
}


def encode_descriptors(descs):
    """[(tag, payload bytes)] -> descriptor loop bytes."""
    out = bytearray()
    for tag, payload in descs:
        if len(payload) > 255:
            raise ValueError("descriptor too long")
        out += bytes([tag, len(payload)]) + bytes(payload)
    return bytes(out)


def parse_descriptors(data):
    descs, k = [], 0
    while k + 2 <= len(data):
        tag, length = data[k], data[k + 1]
        descs.append((tag, bytes(data[k + 2 : k + 2 + length])))
        k += 2 + length
    return descs


def _lang(code):
    b = code.encode("ascii")
    if len(b) != 3:
        raise ValueError("ISO 639-2 codes have three letters")
    return b


def iso639_descriptor(entries):
    """ISO_639_language_descriptor (tag 0x0A): entries [(lang, audio_type)]."""
    return 0x0A, b"".join(_lang(lang) + bytes([audio_type]) for lang, audio_type in entries)


def registration_descriptor(format_identifier, additional=b""):
    """registration_descriptor (tag 0x05), e.g. b'CUEI' for SCTE-35 (§2.6.8)."""
    if len(format_identifier) != 4:
        raise ValueError("format_identifier has four bytes")
    return 0x05, bytes(format_identifier) + bytes(additional)


def teletext_descriptor(entries):
    """teletext_descriptor (tag 0x56, EN 300 468 §6.2.43).

    entries: [(lang, teletext_type, page)] with page the three-digit decimal
    page (100-899). teletext_type 1 = initial page, 2 = subtitle page,
    5 = subtitle page for the hard of hearing. Magazine 8 is coded 0, and the
    page number is the two BCD digits (888 -> magazine 0, page 0x88)."""
    out = bytearray()
    for lang, ttype, page in entries:
        mag, tens, units = page // 100, (page // 10) % 10, page % 10
        if not 1 <= mag <= 8:
            raise ValueError("teletext page %d out of range" % page)
        out += _lang(lang) + bytes([(ttype << 3) | (mag & 7), (tens << 4) | units])
    return 0x56, bytes(out)


def subtitling_descriptor(entries):
    """subtitling_descriptor (tag 0x59, EN 300 468 §6.2.41).

    entries: [(lang, subtitling_type, composition_page_id, ancillary_page_id)];
    subtitling_type 0x10 = DVB subtitles (normal) with no aspect ratio."""
    out = bytearray()
    for lang, stype, comp, anc in entries:
        out += _lang(lang) + bytes([stype]) + comp.to_bytes(2, "big") + anc.to_bytes(2, "big")
    return 0x59, bytes(out)


def describe_descriptor(tag, payload):
    name = DESCRIPTOR_NAMES.get(tag, "tag 0x%02X" % tag)
    if tag == 0x0A:
        parts = ["%s/type%d" % (payload[k : k + 3].decode("latin-1"), payload[k + 3]) for k in range(0, len(payload) - 3, 4)]
        return "%s(%s)" % (name, ",".join(parts))
    if tag == 0x05:
        return "%s(%r)" % (name, bytes(payload[:4]).decode("latin-1"))
    if tag == 0x56:
        parts = []
        for k in range(0, len(payload) - 4, 5):
            mag = payload[k + 3] & 7 or 8
            parts.append("%s/type%d/page%d%02X" % (payload[k : k + 3].decode("latin-1"), payload[k + 3] >> 3, mag, payload[k + 4]))
        return "%s(%s)" % (name, ",".join(parts))
    if tag == 0x59:
        parts = []
        for k in range(0, len(payload) - 7, 8):
            parts.append(
                "%s/type0x%02X/comp%d/anc%d"
                % (payload[k : k + 3].decode("latin-1"), payload[k + 3], int.from_bytes(payload[k + 4 : k + 6], "big"), int.from_bytes(payload[k + 6 : k + 8], "big"))
            )
        return "%s(%s)" % (name, ",".join(parts))
    return "%s(%s)" % (name, payload.hex())


# -- PMT (§2.4.4.8) -------------------------------------------------------------

STREAM_TYPES = {
    0x02: "MPEG-2 video",
    0x03: "MPEG-1 audio",
    0x04: "MPEG-2 audio",
    0x06: "PES private data",
    0x0F: "AAC ADTS",
    0x11: "AAC LATM",
    0x15: "metadata PES",
    0x1B: "H.264",
    0x24: "H.265",
    0x81: "AC-3 (ATSC)",
    0x86: "SCTE-35",
    0x87: "E-AC-3 (ATSC)",
}


class EsInfo:
    """One elementary stream entry of a PMT."""

    def __init__(self, stream_type, pid, descriptors=()):
        self.stream_type = stream_type
        self.pid = pid
        self.descriptors = list(descriptors)  # [(tag, payload)]

    def __repr__(self):
        return "EsInfo(0x%02X, %d, %r)" % (self.stream_type, self.pid, self.descriptors)


class Pmt:
    """A TS_program_map_section, decoded. Serialising keeps the version."""

    def __init__(self, program_number, pcr_pid, program_info=(), streams=(), version=0):
        self.program_number = program_number
        self.pcr_pid = pcr_pid
        self.program_info = list(program_info)
        self.streams = list(streams)
        self.version = version

    @classmethod
    def parse(cls, sec):
        table_id, number, version, body = parse_long_section(sec)
        if table_id != 0x02:
            raise ValueError("not a PMT")
        pcr_pid = ((body[0] & 0x1F) << 8) | body[1]
        info_len = ((body[2] & 0x0F) << 8) | body[3]
        info = parse_descriptors(body[4 : 4 + info_len])
        k, streams = 4 + info_len, []
        while k + 5 <= len(body):
            stype = body[k]
            pid = ((body[k + 1] & 0x1F) << 8) | body[k + 2]
            es_len = ((body[k + 3] & 0x0F) << 8) | body[k + 4]
            streams.append(EsInfo(stype, pid, parse_descriptors(body[k + 5 : k + 5 + es_len])))
            k += 5 + es_len
        return cls(number, pcr_pid, info, streams, version)

    def build(self):
        info = encode_descriptors(self.program_info)
        body = bytearray([0xE0 | (self.pcr_pid >> 8), self.pcr_pid & 0xFF, 0xF0 | (len(info) >> 8), len(info) & 0xFF])
        body += info
        for es in self.streams:
            d = encode_descriptors(es.descriptors)
            body += bytes([es.stream_type, 0xE0 | (es.pid >> 8), es.pid & 0xFF, 0xF0 | (len(d) >> 8), len(d) & 0xFF]) + d
        return build_long_section(0x02, self.program_number, bytes(body), self.version)

    def stream(self, pid):
        return next((s for s in self.streams if s.pid == pid), None)

    def remove_stream(self, pid):
        self.streams = [s for s in self.streams if s.pid != pid]


def first_pmt(packets, pmt_pid):
    for _, sec in iter_sections(packets, pmt_pid):
        if sec[0] == 0x02 and section_crc_ok(sec):
            return Pmt.parse(sec)
    return None


def pmt_pids(packets):
    pat = first_pat(packets)
    return [pid for n, pid in pat[2] if n != 0] if pat else []


def rewrite_pmt(packets, pmt_pid, fn):
    """Apply ``fn(pmt)`` (edits a ``Pmt`` in place) to every PMT section on
    ``pmt_pid``, re-encode it with a new CRC and the same version_number."""

    def edit(sec):
        if sec[0] != 0x02 or not section_crc_ok(sec):
            return None
        pmt = Pmt.parse(sec)
        fn(pmt)
        return pmt.build()

    return rewrite_sections(packets, pmt_pid, edit)


# ---------------------------------------------------------------------------
# PES packets (ISO/IEC 13818-1 §2.4.3.6).
# ---------------------------------------------------------------------------

# stream_ids whose PES packets have no optional header (Table 2-21 branch).
_NO_PES_HEADER = {0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF}


def encode_timestamp(prefix, ts):
    """5 bytes: '0010'/'0011'/'0001' prefix, ts[32..30], marker, ts[29..15],
    marker, ts[14..0], marker (§2.4.3.7)."""
    ts %= PTS_MODULO
    return bytes(
        [
            (prefix << 4) | (((ts >> 30) & 7) << 1) | 1,
            (ts >> 22) & 0xFF,
            (((ts >> 15) & 0x7F) << 1) | 1,
            (ts >> 7) & 0xFF,
            ((ts & 0x7F) << 1) | 1,
        ]
    )


def decode_timestamp(b):
    return (((b[0] >> 1) & 7) << 30) | (b[1] << 22) | ((b[2] >> 1) << 15) | (b[3] << 7) | (b[4] >> 1)


class PesHeader:
    """The fixed part of a PES header plus PTS/DTS. ``header_end`` is the
    offset of the first PES_packet_data_byte (9 + PES_header_data_length)."""

    def __init__(self, buf):
        if len(buf) < 6 or buf[0:3] != b"\x00\x00\x01":
            raise ValueError("no PES start code")
        self.stream_id = buf[3]
        self.packet_length = (buf[4] << 8) | buf[5]
        self.pts = self.dts = None
        self.has_optional = self.stream_id not in _NO_PES_HEADER
        if not self.has_optional:
            self.header_data_length, self.header_end, self.pts_dts_flags = 0, 6, 0
            self.data_alignment = False
            return
        if len(buf) < 9 or (buf[6] & 0xC0) != 0x80:
            raise ValueError("bad PES optional header")
        self.data_alignment = bool(buf[6] & 0x04)
        self.pts_dts_flags = buf[7] >> 6
        self.header_data_length = buf[8]
        self.header_end = 9 + buf[8]
        if len(buf) < self.header_end:
            raise ValueError("PES header continues in the next packet")
        if self.pts_dts_flags in (2, 3):
            self.pts = decode_timestamp(buf[9:14])
        if self.pts_dts_flags == 3:
            self.dts = decode_timestamp(buf[14:19])


def build_pes(stream_id, payload, pts=None, dts=None, data_alignment=True, header_data_length=None, packet_length="auto"):
    """A PES packet with the optional header.

    ``header_data_length`` pads the optional fields with stuffing bytes 0xFF
    (at most 32 are allowed, §2.4.3.7). ``packet_length`` is "auto" (the real
    length, or 0 if it does not fit 16 bits: only allowed for video), 0, or
    an int."""
    flags2, fields = 0, b""
    if pts is not None and dts is not None and dts != pts:
        flags2, fields = 0xC0, encode_timestamp(3, pts) + encode_timestamp(1, dts)
    elif pts is not None:
        flags2, fields = 0x80, encode_timestamp(2, pts)
    if header_data_length is None:
        header_data_length = len(fields)
    stuffing = header_data_length - len(fields)
    if stuffing < 0 or stuffing > 32:
        raise ValueError("PES_header_data_length %d leaves %d stuffing bytes" % (header_data_length, stuffing))
    fields += b"\xff" * stuffing
    body = bytes([0x80 | (0x04 if data_alignment else 0), flags2, header_data_length]) + fields + bytes(payload)
    if packet_length == "auto":
        packet_length = len(body) if len(body) <= 0xFFFF else 0
    return b"\x00\x00\x01" + bytes([stream_id]) + packet_length.to_bytes(2, "big") + body


def pes_units(packets, pid):
    """[[packet indices]] of every PES on ``pid``: each list starts at a
    payload_unit_start packet. Packets before the first start are skipped
    (they continue a PES whose start is not in the file)."""
    units, cur = [], None
    for i, p in enumerate(packets):
        if p.pid != pid or not p.has_payload:
            continue
        if p.pusi:
            cur = [i]
            units.append(cur)
        elif cur is not None:
            cur.append(i)
    return units


def unit_bytes(packets, unit):
    return b"".join(packets[i].payload for i in unit)


def packetize(pid, pes_list, cc=0, pcr_at=None, random_access_first=False):
    """Packets carrying consecutive PES packets on ``pid``. ``pcr_at`` maps an
    ordinal (0 = first packet made here) to a PCR (27 MHz) to put in that
    packet's adaptation field. Each PES starts a packet and its last packet
    is filled with adaptation-field stuffing. Returns (packets, next cc)."""
    pcr_at = pcr_at or {}
    out = []
    for n, pes in enumerate(pes_list):
        off = 0
        while off < len(pes):
            ordinal = len(out)
            pcr = pcr_at.get(ordinal)
            rai = random_access_first and n == 0 and off == 0
            flags_len = (2 if (pcr is not None or rai) else 0) + (6 if pcr is not None else 0)
            chunk = pes[off : off + 184 - flags_len]
            out.append(make_packet(pid, chunk, cc, pusi=(off == 0), pcr=pcr, random_access=rai))
            cc = (cc + 1) & 0x0F
            off += len(chunk)
    return out, cc


def replace_pes(packets, pid, fn):
    """Replace each PES on ``pid`` by the PES list ``fn(n, pes_bytes)``
    returns (None keeps it). The new packets take the old packets' places;
    extra ones follow the old PES's last packet, and surplus old places are
    dropped. PCRs and the random_access_indicator of the old packets are kept
    at the same ordinal. Continuity counters are renumbered."""
    replace = {}
    for n, unit in enumerate(pes_units(packets, pid)):
        new = fn(n, unit_bytes(packets, unit))
        if new is None:
            continue
        pcr_at = {k: packets[i].pcr for k, i in enumerate(unit) if packets[i].pcr is not None}
        new_packets, _ = packetize(pid, new, 0, pcr_at, packets[unit[0]].random_access)
        for k, i in enumerate(unit):
            if k < len(unit) - 1:
                replace[i] = new_packets[k : k + 1] if k < len(new_packets) else []
            else:
                replace[i] = new_packets[k:]
    out = []
    for i, p in enumerate(packets):
        out.extend(replace.get(i, [p]))
    renumber_cc(out, pid, start=next((q.cc for q in packets if q.pid == pid and q.has_payload), 0))
    return out


def strip_pes_timestamps(packet, mode="af"):
    """Clear PTS_DTS_flags of the PES starting in ``packet`` and drop the PTS
    (and DTS) fields. Returns the number of bytes removed (0 if none).

    mode "af": PES_header_data_length shrinks by the 5/10 bytes and a nonzero
    PES_packet_length shrinks with it; the freed bytes become adaptation-field
    stuffing in the same TS packet, so the packet count and all later packets
    are unchanged. mode "stuffing": the header keeps its length and the fields
    become PES header stuffing bytes (0xFF).
    Fields after PTS/DTS (ESCR, ES_rate, ...) keep their order."""
    if not packet.pusi or not packet.has_payload:
        raise ValueError("packet does not start a PES")
    off = packet.payload_offset
    buf = bytes(packet.raw[off:])
    h = PesHeader(buf)
    if not h.has_optional or h.pts_dts_flags == 0:
        return 0
    n = 10 if h.pts_dts_flags == 3 else 5
    optional = buf[9 : h.header_end]
    fixed = bytearray(buf[:9])
    fixed[7] &= 0x3F  # PTS_DTS_flags = '00'
    if mode == "stuffing":
        newhdr = bytes(fixed) + optional[n:] + b"\xff" * n
        packet.raw[off:] = newhdr + buf[h.header_end :]
        return n
    if mode != "af":
        raise ValueError("mode is 'af' or 'stuffing'")
    fixed[8] = h.header_data_length - n
    if h.packet_length:
        length = h.packet_length - n
        fixed[4], fixed[5] = length >> 8, length & 0xFF
    payload = bytes(fixed) + optional[n:] + buf[h.header_end :]
    if packet.has_af and packet.raw[4] > 0:
        old = bytes(packet.raw[5 : 5 + packet.raw[4]])
        af = bytes([len(old) + n]) + old + b"\xff" * n
    elif packet.has_af:  # adaptation_field_length 0: add the flags byte
        af = bytes([n, 0x00]) + b"\xff" * (n - 1)
    else:
        af = b"\x00" if n == 1 else bytes([n - 1, 0x00]) + b"\xff" * (n - 2)
    raw = bytearray(packet.raw[:4]) + af + payload
    raw[3] = (raw[3] & 0xCF) | 0x30  # adaptation field + payload
    if len(raw) != PACKET_SIZE:
        raise AssertionError("packet size changed")
    packet.raw[:] = raw
    return n


# ---------------------------------------------------------------------------
# Video elementary stream inspection (H.264 §7.3.1, H.265 §7.3.1.2).
# ---------------------------------------------------------------------------

H264_NAL_NAMES = {1: "slice", 5: "IDR", 6: "SEI", 7: "SPS", 8: "PPS", 9: "AUD", 12: "filler"}
H265_NAL_NAMES = {
    0: "TRAIL_N", 1: "TRAIL_R", 2: "TSA_N", 3: "TSA_R", 4: "STSA_N", 5: "STSA_R",
    6: "RADL_N", 7: "RADL_R", 8: "RASL_N", 9: "RASL_R", 16: "BLA_W_LP", 17: "BLA_W_RADL",
    18: "BLA_N_LP", 19: "IDR_W_RADL", 20: "IDR_N_LP", 21: "CRA", 32: "VPS", 33: "SPS",
    34: "PPS", 35: "AUD", 39: "SEI_PREFIX", 40: "SEI_SUFFIX",
}


def split_nals(es):
    """NAL unit payloads (without start codes) of an Annex B byte stream."""
    starts, i = [], 0
    while True:
        i = es.find(b"\x00\x00\x01", i)
        if i < 0:
            break
        starts.append(i + 3)
        i += 3
    nals = []
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else len(es)
        nal = es[s:end]
        while nal.endswith(b"\x00"):  # trailing_zero_8bits / next 4-byte start code
            nal = nal[:-1]
        nals.append(nal)
    return nals


def rbsp(nal):
    """Remove emulation_prevention_three_byte (00 00 03 -> 00 00)."""
    out, zeros = bytearray(), 0
    for b in nal:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def sei_messages(payload):
    """[(payloadType, payload bytes)] of an SEI RBSP (H.264 §7.3.2.3)."""
    msgs, k = [], 0
    while k < len(payload) and payload[k] != 0x80:
        ptype = 0
        while k < len(payload) and payload[k] == 0xFF:
            ptype += 255
            k += 1
        if k >= len(payload):
            break
        ptype += payload[k]
        k += 1
        size = 0
        while k < len(payload) and payload[k] == 0xFF:
            size += 255
            k += 1
        if k >= len(payload):
            break
        size += payload[k]
        k += 1
        msgs.append((ptype, payload[k : k + size]))
        k += size
    return msgs


def describe_access_unit(es, codec):
    """A short list of words for one access unit: NAL types, slice types and
    SEI payload types (recovery point shown with its recovery_frame_cnt)."""
    words = []
    for nal in split_nals(es):
        if not nal:
            continue
        if codec == "h264":
            t = nal[0] & 0x1F
            name = H264_NAL_NAMES.get(t, "nal%d" % t)
            if t in (1, 5):
                try:
                    r = BitReader(rbsp(nal[1:8]))
                    r.ue()  # first_mb_in_slice
                    name += ":" + ("P", "B", "I", "SP", "SI")[r.ue() % 5]  # slice_type
                except ValueError:
                    pass
            if t == 6:
                parts = []
                for ptype, body in sei_messages(rbsp(nal[1:])):
                    if ptype == 6:
                        try:
                            parts.append("recovery_point(cnt=%d)" % BitReader(body).ue())
                        except ValueError:
                            parts.append("recovery_point(?)")
                    else:
                        parts.append("type%d" % ptype)
                name += "[" + ",".join(parts) + "]"
        else:
            t = (nal[0] >> 1) & 0x3F
            name = H265_NAL_NAMES.get(t, "nal%d" % t)
            if t in (39, 40):
                name += "[" + ",".join("type%d" % pt for pt, _ in sei_messages(rbsp(nal[2:]))) + "]"
        words.append(name)
    return words


def nal_types(es, codec):
    """The nal_unit_type of every NAL unit in ``es``."""
    if codec == "h264":
        return [n[0] & 0x1F for n in split_nals(es) if n]
    return [(n[0] >> 1) & 0x3F for n in split_nals(es) if n]


def sei_payload_types(es, codec):
    types = []
    for n in split_nals(es):
        if codec == "h264" and n and n[0] & 0x1F == 6:
            types += [t for t, _ in sei_messages(rbsp(n[1:]))]
        elif codec == "hevc" and len(n) > 1 and (n[0] >> 1) & 0x3F in (39, 40):
            types += [t for t, _ in sei_messages(rbsp(n[2:]))]
    return types


def pes_list(packets, pid):
    """[(first packet index, PesHeader, payload bytes)] for each PES on pid."""
    out = []
    for unit in pes_units(packets, pid):
        data = unit_bytes(packets, unit)
        try:
            h = PesHeader(data)
        except ValueError:
            continue
        out.append((unit[0], h, data[h.header_end :]))
    return out


# ---------------------------------------------------------------------------
# Teletext (EN 300 706 coding, carried per EN 300 472).
# ---------------------------------------------------------------------------


def hamming84(nibble):
    """Hamming 8/4 code byte (EN 300 706 §8.2) in teletext bit order, that is
    with bit 0 the first bit transmitted: P1 D1 P2 D2 P3 D3 P4 D4."""
    d1, d2, d3, d4 = (nibble >> 0) & 1, (nibble >> 1) & 1, (nibble >> 2) & 1, (nibble >> 3) & 1
    p1 = 1 ^ d1 ^ d3 ^ d4
    p2 = 1 ^ d1 ^ d2 ^ d4
    p3 = 1 ^ d1 ^ d2 ^ d3
    p4 = 1 ^ p1 ^ d1 ^ p2 ^ d2 ^ p3 ^ d3 ^ d4
    return p1 | (d1 << 1) | (p2 << 2) | (d2 << 3) | (p3 << 4) | (d3 << 5) | (p4 << 6) | (d4 << 7)


def unhamming84(byte):
    """Inverse of ``hamming84`` (no error correction; None if not a code word)."""
    for n in range(16):
        if hamming84(n) == byte:
            return n
    return None


def odd_parity(ch):
    """7-bit character with bit 8 set so the byte has an odd number of ones."""
    c = ch & 0x7F
    return c | (0x80 if bin(c).count("1") % 2 == 0 else 0)


def rev8(b):
    """Reverse the bit order of a byte. EN 300 472 carries teletext bytes in
    transmission order (first bit transmitted = most significant bit)."""
    return int("{:08b}".format(b)[::-1], 2)


def teletext_text(s, width):
    """Display bytes for text ``s`` (ASCII subset of the Latin G0 set),
    padded with spaces to ``width``, each with odd parity."""
    raw = [ord(c) for c in s] + [0x20] * (width - len(s))
    if len(raw) > width or any(c < 0x20 and c not in (0x07, 0x0A, 0x0B, 0x0D) or c > 0x7E for c in raw):
        raise ValueError("text does not fit or has unsupported characters")
    return bytes(odd_parity(c) for c in raw)


def teletext_packet(magazine, row, data40):
    """A 42-byte teletext packet: magazine and row address group (two Hamming
    8/4 bytes: M1 M2 M3 R1 and R2..R5) and 40 data bytes, in teletext order.
    Magazine 8 is coded 0."""
    if len(data40) != 40:
        raise ValueError("teletext packets carry 40 data bytes")
    m = magazine & 7
    return bytes([hamming84(m | ((row & 1) << 3)), hamming84(row >> 1)]) + bytes(data40)


def teletext_page_header(page, header_text="", erase=True, subtitle=True, suppress_header=True, subcode=0, national=0):
    """Packet X/0, the page header (EN 300 706 §9.3.1): page units and tens,
    subcode S1-S4 with control bits C4 (erase page), C5 (newsflash),
    C6 (subtitle), C7-C10 (suppress header, update, interrupted sequence,
    inhibit display), C11-C14 (magazine serial, national option subset),
    then 32 bytes of header text with odd parity."""
    mag, tens, units = page // 100, (page // 10) % 10, page % 10
    s1, s2, s3, s4 = subcode & 0xF, (subcode >> 4) & 0x7, (subcode >> 8) & 0xF, (subcode >> 12) & 0x3
    c4, c6, c7 = int(erase), int(subtitle), int(suppress_header)
    data = bytes(
        [
            hamming84(units),
            hamming84(tens),
            hamming84(s1),
            hamming84(s2 | (c4 << 3)),
            hamming84(s3),
            hamming84(s4 | (0 << 2) | (c6 << 3)),
            hamming84(c7 | (0 << 1) | (0 << 2) | (0 << 3)),  # C8 update, C9, C10 = 0
            hamming84(0 | ((national & 7) << 1)),  # C11 = 0: parallel magazine mode
        ]
    ) + teletext_text(header_text, 32)
    return teletext_packet(mag, 0, data)


def teletext_row(page, row, text, boxed=True):
    """Packet X/row: a display row. Subtitle pages show only boxed text, so
    the text is wrapped in Start Box (0x0B) twice and End Box (0x0A) twice
    after an Alpha White (0x07) spacing attribute."""
    if boxed:
        line = "\x07\x0b\x0b" + text + "\x0a\x0a"
    else:
        line = text
    return teletext_packet(page // 100, row, teletext_text(line, 40))


def teletext_data_unit(packet42, data_unit_id=0x03, field_parity=1, line_offset=0):
    """An EN 300 472 data unit (§4.4): data_unit_id (0x02 teletext, 0x03
    teletext subtitle), data_unit_length 0x2C, then reserved '11',
    field_parity, line_offset(5), framing_code 0xE4 and the 42 bytes of the
    packet bit-reversed into transmission order."""
    if len(packet42) != 42:
        raise ValueError("teletext packets are 42 bytes")
    if not (line_offset == 0 or 7 <= line_offset <= 22):
        raise ValueError("line_offset is 0 (undefined) or 7-22")
    head = bytes([0xC0 | (field_parity << 5) | line_offset, 0xE4])
    return bytes([data_unit_id, 0x2C]) + head + bytes(rev8(b) for b in packet42)


def teletext_stuffing_unit():
    return bytes([0xFF, 0x2C]) + b"\xff" * 44


def teletext_pes(pts, units, data_identifier=0x10):
    """A teletext PES (EN 300 472 §4.3): stream_id 0xBD, PTS,
    PES_header_data_length 0x24, data_identifier, then 46-byte data units,
    stuffed with 0xFF units so the PES fills N whole TS packets
    (PES_packet_length = N * 184 - 6)."""
    units = list(units)
    while (1 + 46 * len(units) + 45) % 184:
        units.append(teletext_stuffing_unit())
    return build_pes(0xBD, bytes([data_identifier]) + b"".join(units), pts=pts, header_data_length=0x24)


def decode_teletext_pes(payload):
    """[(page or None, row, text)] from a teletext PES payload (after the PES
    header): undoes the bit reversal, Hamming 8/4 and parity."""
    out, k = [], 1
    current = {}
    while k + 2 <= len(payload):
        uid, ulen = payload[k], payload[k + 1]
        unit = payload[k + 2 : k + 2 + ulen]
        k += 2 + ulen
        if uid not in (0x02, 0x03) or ulen != 0x2C:
            continue
        pkt = bytes(rev8(b) for b in unit[2:44])
        a, b = unhamming84(pkt[0]), unhamming84(pkt[1])
        if a is None or b is None:
            out.append((None, None, "<hamming error>"))
            continue
        mag = (a & 7) or 8
        row = (a >> 3) | (b << 1)
        if row == 0:
            units_, tens = unhamming84(pkt[2]), unhamming84(pkt[3])
            current[mag] = mag * 100 + tens * 10 + units_
            text = "".join(chr(c & 0x7F) for c in pkt[10:42])
        else:
            text = "".join(chr(c & 0x7F) if 0x20 <= (c & 0x7F) < 0x7F else " " for c in pkt[2:42])
        out.append((current.get(mag), row, text.strip()))
    return out


# ---------------------------------------------------------------------------
# DVB subtitles (EN 300 743).
# ---------------------------------------------------------------------------

# A 5x7 pixel font for the characters the fixtures use: each glyph is seven
# rows of five bits, most significant bit on the left.
FONT_5X7 = {
    " ": [0, 0, 0, 0, 0, 0, 0],
    "-": [0, 0, 0, 31, 0, 0, 0],
    ".": [0, 0, 0, 0, 0, 12, 12],
    ":": [0, 12, 12, 0, 12, 12, 0],
    "0": [14, 17, 19, 21, 25, 17, 14],
    "1": [4, 12, 4, 4, 4, 4, 14],
    "2": [14, 17, 1, 2, 4, 8, 31],
    "3": [31, 2, 4, 2, 1, 17, 14],
    "4": [2, 6, 10, 18, 31, 2, 2],
    "5": [31, 16, 30, 1, 1, 17, 14],
    "6": [6, 8, 16, 30, 17, 17, 14],
    "7": [31, 1, 2, 4, 8, 8, 8],
    "8": [14, 17, 17, 14, 17, 17, 14],
    "9": [14, 17, 17, 15, 1, 2, 12],
    "A": [14, 17, 17, 31, 17, 17, 17],
    "B": [30, 17, 17, 30, 17, 17, 30],
    "C": [14, 17, 16, 16, 16, 17, 14],
    "D": [30, 17, 17, 17, 17, 17, 30],
    "E": [31, 16, 16, 30, 16, 16, 31],
    "F": [31, 16, 16, 30, 16, 16, 16],
    "G": [14, 17, 16, 23, 17, 17, 15],
    "H": [17, 17, 17, 31, 17, 17, 17],
    "I": [14, 4, 4, 4, 4, 4, 14],
    "J": [7, 2, 2, 2, 2, 18, 12],
    "K": [17, 18, 20, 24, 20, 18, 17],
    "L": [16, 16, 16, 16, 16, 16, 31],
    "M": [17, 27, 21, 21, 17, 17, 17],
    "N": [17, 17, 25, 21, 19, 17, 17],
    "O": [14, 17, 17, 17, 17, 17, 14],
    "P": [30, 17, 17, 30, 16, 16, 16],
    "Q": [14, 17, 17, 17, 21, 18, 13],
    "R": [30, 17, 17, 30, 20, 18, 17],
    "S": [15, 16, 16, 14, 1, 1, 30],
    "T": [31, 4, 4, 4, 4, 4, 4],
    "U": [17, 17, 17, 17, 17, 17, 14],
    "V": [17, 17, 17, 17, 17, 10, 4],
    "W": [17, 17, 17, 21, 21, 21, 10],
    "X": [17, 17, 10, 4, 10, 17, 17],
    "Y": [17, 17, 17, 10, 4, 4, 4],
    "Z": [31, 1, 2, 4, 8, 16, 31],
}


def render_text(text, scale=2, margin=4):
    """Rows of pixel codes (0 background, 1 text) for ``text`` in the 5x7
    font scaled by ``scale``, with ``margin`` background pixels around."""
    text = text.upper()
    glyph_w, gap = 5 * scale, scale
    width = 2 * margin + len(text) * (glyph_w + gap) - gap
    height = 2 * margin + 7 * scale
    rows = [[0] * width for _ in range(height)]
    for n, ch in enumerate(text):
        glyph = FONT_5X7.get(ch)
        if glyph is None:
            raise ValueError("no glyph for %r" % ch)
        x0 = margin + n * (glyph_w + gap)
        for gy, bits in enumerate(glyph):
            for gx in range(5):
                if bits & (0x10 >> gx):
                    for dy in range(scale):
                        for dx in range(scale):
                            rows[margin + gy * scale + dy][x0 + gx * scale + dx] = 1
    return rows


def _segment(segment_type, page_id, data):
    """subtitling_segment: sync_byte 0x0F, segment_type, page_id,
    segment_length, segment data (EN 300 743 §7.2)."""
    return bytes([0x0F, segment_type]) + page_id.to_bytes(2, "big") + len(data).to_bytes(2, "big") + bytes(data)


def dvbsub_page_composition(page_id, timeout_s, version, state, regions):
    """page_composition_segment (0x10, §7.2.2). state: 0 normal case,
    1 acquisition point, 2 mode change. regions: [(region_id, x, y)]."""
    data = bytearray([timeout_s, ((version & 0xF) << 4) | (state << 2) | 0x03])
    for rid, x, y in regions:
        data += bytes([rid, 0xFF]) + x.to_bytes(2, "big") + y.to_bytes(2, "big")
    return _segment(0x10, page_id, data)


def dvbsub_region_composition(page_id, region_id, version, width, height, clut_id, objects, fill_code=0):
    """region_composition_segment (0x11, §7.2.3): a 4-bit region (depth and
    level of compatibility 4-bit), filled with ``fill_code``.
    objects: [(object_id, x, y)] of basic bitmap objects from this stream."""
    data = bytearray([region_id, ((version & 0xF) << 4) | 0x08 | 0x07])  # fill flag set
    data += width.to_bytes(2, "big") + height.to_bytes(2, "big")
    data += bytes([(2 << 5) | (2 << 2) | 0x03, clut_id, 0x00, ((fill_code & 0xF) << 4) | 0x03])
    for oid, x, y in objects:
        data += oid.to_bytes(2, "big")
        data += bytes([(0 << 6) | (0 << 4) | ((x >> 8) & 0x0F), x & 0xFF, 0xF0 | ((y >> 8) & 0x0F), y & 0xFF])
    return _segment(0x11, page_id, data)


def dvbsub_clut(page_id, clut_id, version, entries):
    """CLUT_definition_segment (0x12, §7.2.4) with full-range 4-bit entries.
    entries: [(entry_id, Y, Cr, Cb, T)]; Y 0 means fully transparent and T is
    transparency (0 opaque)."""
    data = bytearray([clut_id, ((version & 0xF) << 4) | 0x0F])
    for eid, y, cr, cb, t in entries:
        data += bytes([eid, 0x40 | 0x1F, y, cr, cb, t])  # 4-bit entry, full range
    return _segment(0x12, page_id, data)


def _code_4bit_line(pixels):
    """One line as 4-bit/pixel code strings (§7.2.5.2.2, Table 21)."""
    w = BitWriter()
    runs = []
    for px in pixels:
        if runs and runs[-1][0] == px:
            runs[-1][1] += 1
        else:
            runs.append([px, 1])
    for code, length in runs:
        while length:
            n = min(length, 280)
            if n == 8 and length == 8:
                n = 7  # 8 has no single code for colour != 0; split 7 + 1
            if code == 0 and n <= 2:
                w.put(0, 4), w.put(1, 1), w.put(1, 1), w.put(n - 1, 2)  # 1 or 2 pixels of 0
            elif code == 0 and 3 <= n <= 9:
                w.put(0, 4), w.put(0, 1), w.put(n - 2, 3)
            elif code != 0 and n <= 3:
                for _ in range(n):
                    w.put(code, 4)
            elif 4 <= n <= 7:
                w.put(0, 4), w.put(1, 1), w.put(0, 1), w.put(n - 4, 2), w.put(code, 4)
            elif 9 <= n <= 24:
                w.put(0, 4), w.put(1, 1), w.put(1, 1), w.put(2, 2), w.put(n - 9, 4), w.put(code, 4)
            elif n >= 25:
                w.put(0, 4), w.put(1, 1), w.put(1, 1), w.put(3, 2), w.put(n - 25, 8), w.put(code, 4)
            else:  # n == 8 and code == 0 is covered above (3..9); n == 8 colour: 7 + 1
                raise AssertionError("unreachable run length")
            length -= n
    w.put(0, 8)  # end_of_string_signal: 0000 0 000
    while not w.byte_aligned():
        w.put(0, 1)  # 4_stuff_bits
    return bytes([0x11]) + w.to_bytes() + bytes([0xF0])  # data_type 4-bit, end of object line


def dvbsub_object(page_id, object_id, version, rows):
    """object_data_segment (0x13, §7.2.5) coded as pixels: top field = even
    lines, bottom field = odd lines."""
    top = b"".join(_code_4bit_line(r) for r in rows[0::2])
    bottom = b"".join(_code_4bit_line(r) for r in rows[1::2])
    data = bytearray(object_id.to_bytes(2, "big") + bytes([((version & 0xF) << 4) | 0x00 | 0x00 | 0x01]))
    data += len(top).to_bytes(2, "big") + len(bottom).to_bytes(2, "big") + top + bottom
    if len(data) % 2:
        # 8_stuff_bits: the segment (6-byte header + data) ends word aligned
        data += b"\x00"
    return _segment(0x13, page_id, data)


def dvbsub_end_of_display_set(page_id):
    return _segment(0x80, page_id, b"")


def dvbsub_pes(pts, segments):
    """PES_data_field (§7.1): data_identifier 0x20, subtitle_stream_id 0x00,
    segments, end_of_PES_data_field_marker 0xFF; stream_id 0xBD."""
    return build_pes(0xBD, b"\x20\x00" + b"".join(segments) + b"\xff", pts=pts)


def dvbsub_display_sets(text, start_pts, end_pts, version, page_id=1, display=(720, 576)):
    """Two PES: one showing ``text`` centred near the bottom of the display
    (a mode-change display set), one clearing the page at ``end_pts``."""
    rows = render_text(text)
    h, w = len(rows), len(rows[0])
    x, y = (display[0] - w) // 2, display[1] - h - 48
    timeout = min(255, (end_pts - start_pts) // PTS_HZ + 2)
    clut = [(0, 0, 128, 128, 0), (1, 235, 128, 128, 0), (2, 16, 128, 128, 0)]
    show = [
        dvbsub_page_composition(page_id, timeout, version, 2, [(0, x, y)]),
        dvbsub_region_composition(page_id, 0, version, w, h, 0, [(0, 0, 0)], fill_code=0),
        dvbsub_clut(page_id, 0, version, clut),
        dvbsub_object(page_id, 0, version, [[2 if px == 0 else 1 for px in r] for r in rows]),
        dvbsub_end_of_display_set(page_id),
    ]
    clear = [
        dvbsub_page_composition(page_id, timeout, (version + 1) & 0xF, 0, []),
        dvbsub_end_of_display_set(page_id),
    ]
    return dvbsub_pes(start_pts, show), dvbsub_pes(end_pts, clear)


def parse_srt(text):
    """[(start seconds, end seconds, text)] from SubRip text."""
    cues = []
    pat = re.compile(r"(\d+):(\d+):(\d+)[,.](\d+)\s*-->\s*(\d+):(\d+):(\d+)[,.](\d+)")
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.strip().splitlines()
        for k, line in enumerate(lines):
            m = pat.search(line)
            if m:
                g = [int(v) for v in m.groups()]
                start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
                end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
                cues.append((start, end, " ".join(lines[k + 1 :]).strip()))
                break
    return cues


def dvbsub_segments(payload):
    """[(segment_type, page_id, length)] of a DVB subtitle PES payload."""
    out, k = [], 2
    while k + 6 <= len(payload) and payload[k] == 0x0F:
        seg_type, page_id, length = payload[k + 1], int.from_bytes(payload[k + 2 : k + 4], "big"), int.from_bytes(payload[k + 4 : k + 6], "big")
        out.append((seg_type, page_id, length))
        k += 6 + length
    return out


# ---------------------------------------------------------------------------
# SCTE-35 (ANSI/SCTE 35): splice_info_section and the commands used here.
# ---------------------------------------------------------------------------


def splice_time(pts=None):
    """splice_time(): time_specified_flag, then reserved '111111' and a 33-bit
    pts_time, or reserved '1111111' when no time is given."""
    w = BitWriter()
    if pts is None:
        w.put(0, 1), w.put(0x7F, 7)
    else:
        w.put(1, 1), w.put(0x3F, 6), w.put(pts % PTS_MODULO, 33)
    return w.to_bytes()


def break_duration(duration, auto_return=True):
    """break_duration(): auto_return, reserved '111111', 33-bit duration (90 kHz)."""
    w = BitWriter()
    w.put(int(auto_return), 1), w.put(0x3F, 6), w.put(duration, 33)
    return w.to_bytes()


def splice_insert(event_id, out_of_network, pts=None, duration=None, auto_return=True, unique_program_id=1, avail_num=0, avails_expected=0, immediate=False):
    """splice_insert() command (type 0x05), program splice mode."""
    w = BitWriter()
    w.put(event_id, 32)
    w.put(0, 1)  # splice_event_cancel_indicator
    w.put(0x7F, 7)  # reserved
    w.put(int(out_of_network), 1)
    w.put(1, 1)  # program_splice_flag
    w.put(int(duration is not None), 1)
    w.put(int(immediate), 1)
    w.put(0xF, 4)  # reserved
    out = w.to_bytes()
    if not immediate:
        out += splice_time(pts)
    if duration is not None:
        out += break_duration(duration, auto_return)
    return 0x05, out + unique_program_id.to_bytes(2, "big") + bytes([avail_num, avails_expected])


def time_signal(pts):
    """time_signal() command (type 0x06)."""
    return 0x06, splice_time(pts)


def splice_null():
    """splice_null() command (type 0x00): a heartbeat with no command."""
    return 0x00, b""


def segmentation_descriptor(event_id, type_id, duration=None, upid_type=0, upid=b"", segment_num=0, segments_expected=0):
    """segmentation_descriptor (splice_descriptor_tag 0x02, identifier 'CUEI'),
    program segmentation, delivery not restricted."""
    w = BitWriter()
    w.put_bytes(b"CUEI")
    w.put(event_id, 32)
    w.put(0, 1)  # segmentation_event_cancel_indicator
    w.put(0x7F, 7)  # reserved
    w.put(1, 1)  # program_segmentation_flag
    w.put(int(duration is not None), 1)
    w.put(1, 1)  # delivery_not_restricted_flag
    w.put(0x1F, 5)  # reserved
    if duration is not None:
        w.put(duration, 40)
    w.put(upid_type, 8)
    w.put(len(upid), 8)
    w.put_bytes(upid)
    w.put(type_id, 8)
    w.put(segment_num, 8)
    w.put(segments_expected, 8)
    if type_id in (0x34, 0x36, 0x38, 0x3A, 0x44, 0x46):
        w.put(0, 8), w.put(0, 8)  # sub_segment_num, sub_segments_expected
    body = w.to_bytes()
    return bytes([0x02, len(body)]) + body


def splice_info_section(command, descriptors=b"", pts_adjustment=0, tier=0xFFF, cw_index=0, sap_type=3):
    """splice_info_section (table_id 0xFC) with CRC_32; not encrypted.
    ``command`` is (splice_command_type, bytes) from the builders above.
    sap_type 3 means "not specified"."""
    ctype, cbytes = command
    w = BitWriter()
    w.put(0, 8)  # protocol_version
    w.put(0, 1)  # encrypted_packet
    w.put(0, 6)  # encryption_algorithm
    w.put(pts_adjustment % PTS_MODULO, 33)
    w.put(cw_index, 8)
    w.put(tier, 12)
    w.put(len(cbytes), 12)
    w.put(ctype, 8)
    body = w.to_bytes() + cbytes + len(descriptors).to_bytes(2, "big") + descriptors
    length = len(body) + 4
    sec = bytes([0xFC, (sap_type << 4) | (length >> 8), length & 0xFF]) + body
    return sec + crc32_mpeg2(sec).to_bytes(4, "big")


def parse_splice_info_section(sec):
    """A dict of the fields of a splice_info_section (for dumping/checking)."""
    r = BitReader(sec)
    d = {"table_id": r.get(8)}
    r.get(1), r.get(1)
    d["sap_type"] = r.get(2)
    d["section_length"] = r.get(12)
    d["protocol_version"] = r.get(8)
    d["encrypted"] = r.get(1)
    r.get(6)
    d["pts_adjustment"] = r.get(33)
    r.get(8)
    d["tier"] = r.get(12)
    clen = r.get(12)
    ctype = r.get(8)
    d["command_type"] = ctype
    start = r.pos // 8
    cmd = sec[start : start + clen]
    cr = BitReader(cmd)

    def read_time(rd):
        if rd.get(1):
            rd.get(6)
            return rd.get(33)
        rd.get(7)
        return None

    if ctype == 0x05:
        d["command"] = "splice_insert"
        d["splice_event_id"] = cr.get(32)
        cancel = cr.get(1)
        cr.get(7)
        if not cancel:
            d["out_of_network"] = cr.get(1)
            program = cr.get(1)
            dur = cr.get(1)
            imm = cr.get(1)
            cr.get(4)
            d["splice_immediate"] = imm
            if program and not imm:
                d["pts_time"] = read_time(cr)
            if dur:
                d["auto_return"] = cr.get(1)
                cr.get(6)
                d["break_duration"] = cr.get(33)
            d["unique_program_id"] = cr.get(16)
    elif ctype == 0x06:
        d["command"] = "time_signal"
        d["pts_time"] = read_time(cr)
    elif ctype == 0x00:
        d["command"] = "splice_null"
    k = start + clen
    dlen = int.from_bytes(sec[k : k + 2], "big")
    descs, j = [], k + 2
    while j + 2 <= k + 2 + dlen:
        tag, ln = sec[j], sec[j + 1]
        body = sec[j + 2 : j + 2 + ln]
        if tag == 0x02 and len(body) >= 10:
            br = BitReader(body[4:])
            seg = {"tag": "segmentation", "event_id": br.get(32)}
            if not br.get(1):
                br.get(7)
                prog, has_dur = br.get(1), br.get(1)
                br.get(6)
                if not prog:
                    seg["components"] = "?"
                elif has_dur:
                    seg["duration"] = br.get(40)
                ut, ul = br.get(8), br.get(8)
                seg["upid_type"] = ut
                seg["upid"] = bytes(br.get(8) for _ in range(ul)).hex()
                seg["type_id"] = "0x%02X" % br.get(8)
            descs.append(seg)
        else:
            descs.append({"tag": tag})
        j += 2 + ln
    d["descriptors"] = descs
    if d.get("pts_time") is not None:
        d["splice_pts"] = (d["pts_time"] + d["pts_adjustment"]) % PTS_MODULO
    d["crc_ok"] = section_crc_ok(sec)
    return d


# ---------------------------------------------------------------------------
# Whole-file operations used by the command line.
# ---------------------------------------------------------------------------


def cut_at_rap(packets, video_pid, from_seconds):
    """Drop everything before the PAT that precedes the first video random
    access point (random_access_indicator set) whose PTS is at least
    ``from_seconds`` after the first video PTS. Returns the remaining list."""
    pes = pes_list(packets, video_pid)
    first = next(h.pts for _, h, _ in pes if h.pts is not None)
    for index, h, _ in pes:
        if h.pts is None or (h.pts - first) % PTS_MODULO < from_seconds * PTS_HZ:
            continue
        if packets[index].random_access:
            pat = max((i for i in range(index) if packets[i].pid == 0 and packets[i].pusi), default=None)
            if pat is None:
                raise ValueError("no PAT before the random access point")
            return packets[pat:]
    raise ValueError("no random access point after %.3f s" % from_seconds)


def split_video_pes(packets, pid, max_payload):
    """Split every PES on ``pid`` whose payload is longer than ``max_payload``
    bytes into PES of at most that size, at arbitrary byte positions. The
    first keeps PTS/DTS and data_alignment_indicator; the continuation PES
    have neither and a real PES_packet_length. Returns (packets, number of
    continuation PES made)."""
    made = [0]

    def fn(_n, data):
        h = PesHeader(data)
        body = data[h.header_end :]
        if len(body) <= max_payload:
            return None
        chunks = [body[k : k + max_payload] for k in range(0, len(body), max_payload)]
        first = data[: h.header_end] + chunks[0]
        first = bytearray(first)
        length = len(first) - 6
        first[4:6] = (length if length <= 0xFFFF else 0).to_bytes(2, "big")
        out = [bytes(first)]
        for c in chunks[1:]:
            out.append(build_pes(h.stream_id, c, data_alignment=False))
            made[0] += 1
        return out

    return replace_pes(packets, pid, fn), made[0]


def strip_pts_every(packets, pid, every, offset, mode="af", skip=None):
    """Clear PTS/DTS on PES number offset, offset+every, ... of ``pid`` (counted
    over PES that carry a PTS). Returns the number of PES changed."""
    changed, n = 0, 0
    for unit in pes_units(packets, pid):
        p = packets[unit[0]]
        try:
            h = PesHeader(p.payload)
        except ValueError:
            continue
        if h.pts is None:
            continue
        if n >= offset and (n - offset) % every == 0 and not (skip and skip(h)):
            if strip_pes_timestamps(p, mode):
                changed += 1
        n += 1
    return changed


def info(packets, out=sys.stdout):
    counts = {}
    for p in packets:
        counts[p.pid] = counts.get(p.pid, 0) + 1
    print("packets: %d (%d bytes)" % (len(packets), len(packets) * PACKET_SIZE), file=out)
    pat = first_pat(packets)
    if pat:
        print("PAT: transport_stream_id %d version %d programs %s" % (pat[0], pat[1], ", ".join("%d->PMT %d" % x for x in pat[2])), file=out)
        for number, pmt_pid in pat[2]:
            if number == 0:
                continue
            pmt = first_pmt(packets, pmt_pid)
            if not pmt:
                print("  program %d: no PMT on PID %d" % (number, pmt_pid), file=out)
                continue
            print(
                "  program %d (PMT PID %d, version %d): PCR PID %d, program_info %s"
                % (number, pmt_pid, pmt.version, pmt.pcr_pid, [describe_descriptor(*d) for d in pmt.program_info]),
                file=out,
            )
            for es in pmt.streams:
                print(
                    "    PID %d stream_type 0x%02X (%s) %s"
                    % (es.pid, es.stream_type, STREAM_TYPES.get(es.stream_type, "?"), " ".join(describe_descriptor(*d) for d in es.descriptors)),
                    file=out,
                )
    for pid in sorted(counts):
        line = "PID %d: %d packets" % (pid, counts[pid])
        if pid not in (0, 0x11, 0x1FFF) and pid not in pmt_pids(packets):
            pl = pes_list(packets, pid)
            pts = [h.pts for _, h, _ in pl if h.pts is not None]
            if pl:
                line += ", %d PES (%d without PTS)" % (len(pl), len(pl) - len(pts))
            if pts:
                line += ", PTS %d..%d (%.3f s)" % (pts[0], pts[-1], ((pts[-1] - pts[0]) % PTS_MODULO) / PTS_HZ)
        print(line, file=out)
    try:
        points = pcr_points(packets)
        if points:
            print("PCR: %d values, %.6f s .. %.6f s" % (len(points), points[0][1] / PCR_HZ, points[-1][1] / PCR_HZ), file=out)
    except ValueError:
        pass
    print("continuity errors: %s" % (continuity_errors(packets) or "none"), file=out)


def main(argv=None):
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("info", help="PAT, PMTs with descriptors, per-PID PES/PTS counts, CC check")
    s.add_argument("file")
    s = sub.add_parser("pes", help="list the PES of a PID")
    s.add_argument("file")
    s.add_argument("--pid", type=int, required=True)
    s = sub.add_parser("nals", help="NAL units of every video PES (H.264 or H.265)")
    s.add_argument("file")
    s.add_argument("--pid", type=int, default=256)
    s.add_argument("--codec", choices=["h264", "hevc"], default="h264")
    s.add_argument("--summary", action="store_true", help="only counts")
    s = sub.add_parser("cut", help="start the file at the PAT before the first RAP after N seconds")
    s.add_argument("input")
    s.add_argument("output")
    s.add_argument("--pid", type=int, default=256, help="video PID")
    s.add_argument("--from-seconds", type=float, required=True)
    s = sub.add_parser("split-pes", help="split video PES longer than N bytes; continuation PES have no PTS")
    s.add_argument("input")
    s.add_argument("output")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--max-payload", type=int, required=True)
    s = sub.add_parser("strip-pts", help="clear PTS/DTS of every Nth PES of a PID")
    s.add_argument("input")
    s.add_argument("output")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--every", type=int, default=2)
    s.add_argument("--offset", type=int, default=1)
    s.add_argument("--mode", choices=["af", "stuffing"], default="af")
    s = sub.add_parser("scte35", help="decode the splice_info_sections of a PID")
    s.add_argument("file")
    s.add_argument("--pid", type=int, required=True)
    s = sub.add_parser("teletext", help="decode the teletext packets of a PID")
    s.add_argument("file")
    s.add_argument("--pid", type=int, required=True)
    s = sub.add_parser("dvbsub", help="list the DVB subtitle segments of a PID")
    s.add_argument("file")
    s.add_argument("--pid", type=int, required=True)
    a = ap.parse_args(argv)

    if a.cmd == "info":
        info(read_ts(a.file))
    elif a.cmd == "pes":
        for index, h, payload in pes_list(read_ts(a.file), a.pid):
            print("packet %d stream_id 0x%02X PES_packet_length %d header_data_length %d pts %s dts %s payload %d"
                  % (index, h.stream_id, h.packet_length, h.header_data_length, h.pts, h.dts, len(payload)))
    elif a.cmd == "nals":
        packets = read_ts(a.file)
        counts, sei = {}, {}
        for index, h, payload in pes_list(packets, a.pid):
            for t in nal_types(payload, a.codec):
                counts[t] = counts.get(t, 0) + 1
            for t in sei_payload_types(payload, a.codec):
                sei[t] = sei.get(t, 0) + 1
            if not a.summary:
                rai = "RAI " if packets[index].random_access else ""
                print("packet %d pts %s dts %s %s%s" % (index, h.pts, h.dts, rai, " ".join(describe_access_unit(payload, a.codec))))
        names = H264_NAL_NAMES if a.codec == "h264" else H265_NAL_NAMES
        print("nal_unit_type counts: %s" % ", ".join("%d(%s)=%d" % (t, names.get(t, "?"), c) for t, c in sorted(counts.items())))
        print("SEI payloadType counts: %s" % ", ".join("%d=%d" % kv for kv in sorted(sei.items())))
    elif a.cmd == "cut":
        write_ts(a.output, cut_at_rap(read_ts(a.input), a.pid, a.from_seconds))
    elif a.cmd == "split-pes":
        packets, made = split_video_pes(read_ts(a.input), a.pid, a.max_payload)
        write_ts(a.output, packets)
        print("continuation PES without PTS: %d" % made)
    elif a.cmd == "strip-pts":
        packets = read_ts(a.input)
        n = strip_pts_every(packets, a.pid, a.every, a.offset, a.mode)
        write_ts(a.output, packets)
        print("PES whose PTS was cleared: %d" % n)
    elif a.cmd == "scte35":
        packets = read_ts(a.file)
        try:
            points = pcr_points(packets)
        except ValueError:
            points = []
        for index, sec in iter_sections(packets, a.pid):
            d = parse_splice_info_section(sec)
            at = " pcr %.3f s" % (pcr_at_index(points, index) / PCR_HZ) if len(points) > 1 else ""
            print("packet %d%s: %s" % (index, at, d))
    elif a.cmd == "teletext":
        for index, h, payload in pes_list(read_ts(a.file), a.pid):
            rows = decode_teletext_pes(payload)
            print("packet %d pts %s: %s" % (index, h.pts, "; ".join("P%s/%s %r" % r for r in rows)))
    elif a.cmd == "dvbsub":
        for index, h, payload in pes_list(read_ts(a.file), a.pid):
            print("packet %d pts %s: %s" % (index, h.pts, ", ".join("0x%02X(page %d, %d bytes)" % s for s in dvbsub_segments(payload))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
