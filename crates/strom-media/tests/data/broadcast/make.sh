#!/bin/sh
# Regenerates the broadcast-like MPEG-TS fixtures of this directory from
# ffmpeg's lavfi sources and tsedit.py. README.md says what each one holds.
#
# Needs ffmpeg with libx264, libx265 and the native aac, ac3, eac3, mp2 and
# dvbsub encoders, and python3. Run from anywhere: ./make.sh
# `./make.sh check` only prints the checks of the files already here.
#
# The output is deterministic for a given ffmpeg/x264/x265 build (bitexact
# muxing, one encoder thread, no random sources); another build may encode
# slightly different pictures, and the README figures may then move a little.
set -eu
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ next to the fixtures
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ff() { ffmpeg -nostdin -hide_banner -v error -y "$@"; }
tsedit() { python3 tsedit.py "$@"; }

# Sources: a 160x90 25 fps test pattern and a 440 Hz tone with a beep each
# second (the beep marks whole seconds, which helps A/V sync checks).
VIDEO="-f lavfi -i testsrc2=size=160x90:rate=25"
TONE="-f lavfi -i sine=frequency=440:sample_rate=48000:beep_factor=4"
# Encoders: tiny bitrates; one thread so x264 output does not depend on the
# machine. Closed 2 s GOPs unless a fixture says otherwise.
X264="-c:v libx264 -threads 1 -preset veryfast -b:v 24k"
GOP2="-x264-params keyint=50:min-keyint=50:scenecut=0"
AAC="-c:a aac -b:a 16k -ac 1"
# Muxer: bitexact, PAT/PMT every 0.5 s (and before each keyframe, which
# ffmpeg always does), SDT every second. PIDs: PMT 0x1000 (4096), streams from
# 0x100 (256) in output order.
MUX="-fflags +bitexact -flags +bitexact -pat_period 0.5 -sdt_period 1 -metadata service_provider=strom"

open_gop() {
    # H.264 open GOP: IDR only at the start, then an I picture with a
    # recovery point SEI every 25 frames. Cut 3 s in, at the PAT before such
    # an I picture, so no IDR is left.
    ff $VIDEO $TONE -t 15 -map 0:v -map 1:a $X264 \
        -x264-params open_gop=1:keyint=25:min-keyint=25:scenecut=0 $AAC \
        -metadata service_name=open_gop $MUX -f mpegts "$tmp/open_gop_full.ts"
    tsedit cut "$tmp/open_gop_full.ts" open_gop.ts --pid 256 --from-seconds 3
}

hevc_cra() {
    # H.265 open GOP: IDR_N_LP at the start, then CRA pictures every 25 frames,
    # each followed in decoding order by RASL pictures. Cut 3 s in as above.
    # info=0 drops x265's version SEI (1.5 KB per keyframe).
    ff $VIDEO $TONE -t 15 -map 0:v -map 1:a -c:v libx265 -preset veryfast -b:v 24k \
        -x265-params open-gop=1:keyint=25:min-keyint=25:scenecut=0:info=0:pools=none:frame-threads=1:log-level=error \
        $AAC -metadata service_name=hevc_cra $MUX -f mpegts "$tmp/hevc_cra_full.ts"
    tsedit cut "$tmp/hevc_cra_full.ts" hevc_cra.ts --pid 256 --from-seconds 3
}

long_gop() {
    # A 10 s GOP: IDRs at 0, 10 and 20 s only. 12 kb/s video and 24 kHz AAC
    # keep 22 s under 200 KB (25 pictures/s cost at least 25 packets/s).
    ff $VIDEO -f lavfi -i sine=frequency=440:sample_rate=24000:beep_factor=4 -t 22 -map 0:v -map 1:a \
        -c:v libx264 -threads 1 -preset veryfast -b:v 12k \
        -x264-params keyint=250:min-keyint=250:scenecut=0 -c:a aac -b:a 12k -ac 1 \
        -metadata service_name=long_gop $MUX -f mpegts long_gop.ts
}

split_pes() {
    # Audio PES of at most 400 bytes (-pes_payload_size); then every video PES
    # over 400 bytes is split into PES of at most 400 bytes whose
    # continuations carry no PTS/DTS, and every other audio PES loses its PTS.
    ff $VIDEO $TONE -t 10 -map 0:v -map 1:a -c:v libx264 -threads 1 -preset veryfast -b:v 64k \
        -x264-params keyint=25:min-keyint=25:scenecut=0 $AAC \
        -metadata service_name=split_pes $MUX -pes_payload_size 400 -f mpegts "$tmp/split_full.ts"
    tsedit split-pes "$tmp/split_full.ts" "$tmp/split_video.ts" --pid 256 --max-payload 400
    tsedit strip-pts "$tmp/split_video.ts" split_pes.ts --pid 257 --every 2 --offset 1
}

latm() {
    # AAC in LATM/LOAS (stream_type 0x11), as DVB-T2 multiplexes carry it.
    ff $VIDEO $TONE -t 8 -map 0:v -map 1:a $X264 $GOP2 $AAC \
        -metadata service_name=latm $MUX -mpegts_flags latm -f mpegts latm.ts
}

mpts() {
    # Two programs; the radio service (MP2 only) is first in the PAT.
    ff $VIDEO $TONE -f lavfi -i sine=frequency=660:sample_rate=48000 -t 8 \
        -map 0:v -map 1:a -map 2:a $X264 $GOP2 \
        -c:a:0 aac -b:a:0 16k -ac:a:0 1 -c:a:1 mp2 -b:a:1 32k -ac:a:1 1 \
        -metadata:s:a:0 language=eng -metadata:s:a:1 language=eng \
        -program program_num=101:title=Radio:st=2 -program program_num=202:title=TV:st=0:st=1 \
        $MUX -f mpegts mpts.ts
}

subtitles() {
    # H.264 + AAC + DVB subtitles (PID 258, 'deu') from ffmpeg, then a teletext
    # PID (259) with subtitle pages 888 'eng' and 889 'fra' added by tsedit.
    # ffmpeg cannot turn text into bitmaps, so tsedit renders subs.srt into
    # EN 300 743 display sets and ffmpeg's dvbsub encoder re-encodes them.
    cat > "$tmp/subs.srt" <<'EOF'
1
00:00:01,000 --> 00:00:03,000
STROM DVB SUB 1

2
00:00:04,000 --> 00:00:06,500
STROM DVB SUB 2

3
00:00:08,000 --> 00:00:10,000
STROM DVB SUB 3
EOF
    python3 - "$tmp/subs.srt" "$tmp/dvbsub_src.ts" <<'EOF'
import sys
import tsedit as t
cues = t.parse_srt(open(sys.argv[1]).read())
pid, pes, version = 0x102, [], 0
for start, end, text in cues:
    show, clear = t.dvbsub_display_sets(text, round(start * 90000), round(end * 90000), version)
    pes += [show, clear]
    version = (version + 2) & 0xF
pmt = t.Pmt(1, pid, [], [t.EsInfo(0x06, pid, [t.subtitling_descriptor([("deu", 0x10, 1, 1)])])])
packets, _ = t.packetize_section(0, t.build_pat(1, [(1, 0x1000)]))
packets += t.packetize_section(0x1000, pmt.build())[0]
packets += t.packetize(pid, pes)[0]
t.write_ts(sys.argv[2], packets)
EOF
    # -itsoffset 1: ffmpeg shifts each input to start at 0, and the first cue
    # is at 1 s; this keeps the cue times of the .srt on the video timeline.
    ff $VIDEO $TONE -itsoffset 1 -i "$tmp/dvbsub_src.ts" -t 12 -map 0:v -map 1:a -map 2:s \
        $X264 $GOP2 $AAC -c:s dvbsub -metadata:s:s:0 language=deu \
        -metadata service_name=subtitles $MUX -f mpegts "$tmp/subs_av.ts"
    python3 - "$tmp/subs_av.ts" subtitles.ts <<'EOF'
import sys
import tsedit as t
packets = t.read_ts(sys.argv[1])
TTX = 0x103
video = t.pes_list(packets, 0x100)
first_pts = video[0][1].pts
points = t.pcr_points(packets)
last_pcr = points[-1][1]
insertions, cc, k = [], 0, 1
while True:
    pts = first_pts + k * 45000  # a teletext PES every 0.5 s
    # Sent 40 ms (system time) before its PTS: teletext decoders have a small
    # buffer and present soon after arrival (EN 300 472 §5); ffmpeg replaces a
    # teletext PTS more than ~140 ms after arrival by the arrival time.
    at = pts * 300 - 40 * 27000
    if at > last_pcr:
        break
    page, lang = (888, "ENG") if k % 2 else (889, "FRA")
    second = (k + 1) // 2
    units = [
        t.teletext_data_unit(t.teletext_page_header(page, "STROM %d" % page), 0x03, 1, 7),
        t.teletext_data_unit(t.teletext_row(page, 20, "STROM TELETEXT"), 0x03, 1, 8),
        t.teletext_data_unit(t.teletext_row(page, 22, "%s %02d" % (lang, second)), 0x03, 1, 9),
    ]
    new, cc = t.packetize(TTX, [t.teletext_pes(pts, units)], cc)
    insertions.append((t.index_at_pcr(points, len(packets), at), new))
    k += 1
packets = t.insert_packets(packets, insertions)
def edit(pmt):
    pmt.streams.append(t.EsInfo(0x06, TTX, [t.teletext_descriptor([("eng", 2, 888), ("fra", 2, 889)])]))
packets = t.rewrite_pmt(packets, 0x1000, edit)
t.write_ts(sys.argv[2], packets)
print("teletext PES inserted: %d" % len(insertions))
EOF
}

scte35() {
    # H.264 + AAC with IDRs forced at the splice points (4, 9 and 12 s after
    # the first picture), then a SCTE-35 PID (500) added by tsedit.
    ff $VIDEO $TONE -t 15 -map 0:v -map 1:a $X264 $GOP2 -force_key_frames 4,9,12 $AAC \
        -metadata service_name=scte35 $MUX -f mpegts "$tmp/scte_av.ts"
    python3 - "$tmp/scte_av.ts" scte35.ts <<'EOF'
import sys
import tsedit as t
packets = t.read_ts(sys.argv[1])
CUE = 500
first_pts = t.pes_list(packets, 0x100)[0][1].pts
points = t.pcr_points(packets)
last_pcr = points[-1][1]
S = 90000
LEAD = 2 * S  # cues are sent 2 s (system time) before their splice time
ADJ = (1 << 33) - 10 * S  # pts_adjustment of the return cue: -10 s mod 2^33
cues = [
    # (splice PTS, section)
    (first_pts + 4 * S, t.splice_info_section(
        t.splice_insert(1001, True, first_pts + 4 * S, duration=5 * S, auto_return=True, avail_num=1, avails_expected=1))),
    (first_pts + 9 * S, t.splice_info_section(
        t.splice_insert(1001, False, (first_pts + 9 * S - ADJ) % (1 << 33), avail_num=1, avails_expected=1),
        pts_adjustment=ADJ)),
    (first_pts + 12 * S, t.splice_info_section(
        t.time_signal(first_pts + 12 * S),
        t.segmentation_descriptor(2002, 0x30, duration=2 * S, upid_type=0x08, upid=bytes.fromhex("0000000000bc614e"),
                                  segment_num=1, segments_expected=1))),
]
sends = [(pts - LEAD, sec) for pts, sec in cues]
# splice_null heartbeats every 2 s of system time
hb = first_pts - S
while hb * 300 <= last_pcr:
    sends.append((hb, t.splice_info_section(t.splice_null())))
    hb += 2 * S
sends.sort(key=lambda s: s[0])
insertions, cc = [], 0
for when, sec in sends:
    if not points[0][1] <= when * 300 <= last_pcr:
        continue
    new, cc = t.packetize_section(CUE, sec, cc)
    insertions.append((t.index_at_pcr(points, len(packets), when * 300), new))
packets = t.insert_packets(packets, insertions)
def edit(pmt):
    pmt.program_info.append(t.registration_descriptor(b"CUEI"))
    # cue_identifier_descriptor (0x8A): cue_stream_type 0x01, all commands
    pmt.streams.append(t.EsInfo(0x86, CUE, [(0x8A, b"\x01")]))
packets = t.rewrite_pmt(packets, 0x1000, edit)
t.write_ts(sys.argv[2], packets)
print("first video PTS %d; splice PTS %s; pts_adjustment of the return cue %d"
      % (first_pts, [p for p, _ in cues], ADJ))
EOF
}

languages() {
    # Four audio languages, DVB style (-mpegts_flags system_b: AC-3 and E-AC-3
    # as stream_type 0x06 with descriptors 0x6A/0x7A).
    ff $VIDEO $TONE -f lavfi -i sine=frequency=550:sample_rate=48000 \
        -f lavfi -i sine=frequency=660:sample_rate=48000 -f lavfi -i sine=frequency=770:sample_rate=48000 \
        -t 6 -map 0:v -map 1:a -map 2:a -map 3:a -map 4:a $X264 $GOP2 \
        -c:a:0 aac -b:a:0 24k -ac:a:0 2 -c:a:1 ac3 -b:a:1 32k -ac:a:1 1 \
        -c:a:2 eac3 -b:a:2 32k -ac:a:2 1 -c:a:3 mp2 -b:a:3 32k -ac:a:3 1 \
        -metadata:s:a:0 language=eng -metadata:s:a:1 language=deu \
        -metadata:s:a:2 language=fra -metadata:s:a:3 language=spa \
        -metadata service_name=languages $MUX -mpegts_flags system_b -f mpegts languages.ts
}

check() {
    for f in open_gop hevc_cra long_gop split_pes latm mpts subtitles scte35 languages; do
        echo "== $f.ts: $(wc -c < $f.ts) bytes"
        ffprobe -v error -show_entries program=program_num:stream=index,codec_name,id,start_time,duration:stream_tags=language \
            -of compact=p=0 $f.ts | sort -u
        echo "decode: $(ffmpeg -nostdin -v error -i $f.ts -map 0:v? -map 0:a? -f null - 2>&1 | sort | uniq -c | tr '\n' ';')"
    done
    echo "== subtitles.ts, DVB subtitles: $(ffmpeg -nostdin -v error -i subtitles.ts -map 0:s:0 -c:s dvbsub -f mpegts - 2>&1 >/dev/null | tr '\n' ';')"
    for page in 888 889; do
        echo "== subtitles.ts, teletext page $page:"
        ffmpeg -nostdin -v error -txt_format text -txt_page $page -i subtitles.ts -map 0:s:1 -f srt "$tmp/$page.srt"
        head -n 8 "$tmp/$page.srt"
    done
}

if [ "${1:-}" != check ]; then
    open_gop
    hevc_cra
    long_gop
    split_pes
    latm
    mpts
    subtitles
    scte35
    languages
fi
check
