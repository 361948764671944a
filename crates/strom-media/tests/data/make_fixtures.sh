#!/bin/sh
# Regenerates the elementary-stream fixtures of tests/mux.rs. Each NAME.es is
# the concatenated packet data of one stream as ffmpeg demuxes it from MPEG-TS,
# NAME.csv the matching packets (pts,dts,size,flags) in decode order.
# Needs ffmpeg with libx265. Run from this directory.
set -eu
demo=../../../../assets/demo.ts
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# stream index, count, file: write NAME.csv from the first COUNT packets.
packets() {
    ffprobe -v error -select_streams "$1" -show_entries packet=pts,dts,size,flags \
        -of csv=p=0 "$3" | grep -v '^$' | sed 's/,$//' | head -n "$2" > "$4.csv"
}

# H.264 Main 1280x720 + AAC-LC 48 kHz stereo: the first 0.52 s of the demo.
ffmpeg -v error -y -i "$demo" -map 0:v -c copy -frames:v 13 -f h264 h264.es
packets v 13 "$demo" h264
ffmpeg -v error -y -i "$demo" -map 0:a -c copy -frames:a 26 -f adts aac.es
packets a 26 "$demo" aac

# H.265 without B-frames, AC-3, E-AC-3 and MP2 from lavfi sources.
ffmpeg -v error -y -f lavfi -i testsrc=s=160x120:r=25 -f lavfi -i sine=f=440:r=48000 -t 0.4 \
    -map 0:v -map 1:a -map 1:a -map 1:a -ac 2 \
    -c:v libx265 -preset ultrafast -x265-params keyint=5:bframes=0:log-level=error \
    -c:a:0 ac3 -b:a:0 96k -c:a:1 eac3 -b:a:1 96k -c:a:2 mp2 -b:a:2 64k -f mpegts "$tmp/other.ts"
i=0
for name in hevc ac3 eac3 mp2; do
    ffmpeg -v error -y -i "$tmp/other.ts" -map 0:$i -c copy -f $name $name.es
    packets $i 1000 "$tmp/other.ts" $name
    i=$((i + 1))
done
