#!/usr/bin/env bash
# ffmpeg's `-c copy` MPEG-TS remux throughput on this machine, the reference
# for `cargo bench -p strom-media --bench pipeline` (bytes of input TS per second).
#
# Makes a 60 s 720p TS by looping the 10 s assets/demo.ts 6× (-stream_loop 5 -c copy),
# then runs `ffmpeg -benchmark -i FILE -map 0 -c copy -f mpegts /dev/null` RUNS
# times and prints medians of two figures, in MB/s (10^6 bytes of input per second):
#   wall:  the whole process, start-up, probing and exit included (what a
#          shell user sees; for a ~10 MB file start-up is most of it);
#   loop:  ffmpeg's own -benchmark `rtime`, the remux loop only, which is what
#          the criterion bench (no process start) should be compared with.
#
# The 60 s file is only ~9.6 MB (demo.ts is ~1.3 Mbit/s), so `loop` is a
# 13-20 ms figure printed with 1 ms resolution; LOOPS=60 (10 min, ~96 MB)
# gives a steadier loop figure.
#
# Env: RUNS (5), LOOPS (6: the number of copies of demo.ts).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
LOOPS=${LOOPS:-6}
WORK=$(mktemp -d /tmp/strom-bench-remux.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if ! command -v ffmpeg >/dev/null 2>&1; then
    apt-get install -y ffmpeg >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y ffmpeg >/dev/null; }
fi

SRC=$WORK/demo-x$LOOPS.ts
ffmpeg -nostdin -loglevel error -stream_loop "$((LOOPS - 1))" -i "$ROOT/assets/demo.ts" -map 0 -c copy -f mpegts "$SRC"
BYTES=$(stat -c %s "$SRC")
DUR=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$SRC")
# Warm the page cache.
cat "$SRC" >/dev/null

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mbs() { awk -v n="$BYTES" -v t="$1" 'BEGIN { printf "%.1f", n / t / 1e6 }'; }

WALL=()
LOOP=()
for ((i = 1; i <= RUNS; i++)); do
    t0=$(date +%s.%N)
    out=$(ffmpeg -nostdin -benchmark -loglevel info -i "$SRC" -map 0 -c copy -f mpegts -y /dev/null 2>&1)
    t1=$(date +%s.%N)
    w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    l=$(printf '%s\n' "$out" | sed -n 's/.*rtime=\([0-9.]*\)s.*/\1/p' | tail -1)
    WALL+=("$w")
    LOOP+=("$l")
    echo "run $i: wall ${w}s ($(mbs "$w") MB/s), loop ${l}s ($(mbs "$l") MB/s)" >&2
done
MW=$(printf '%s\n' "${WALL[@]}" | median)
ML=$(printf '%s\n' "${LOOP[@]}" | median)
echo "ffmpeg $(ffmpeg -version | awk 'NR == 1 { print $3 }') -c copy remux of a $(printf '%.1f' "$DUR") s 720p TS ($BYTES bytes), median of $RUNS, $(nproc) CPUs:"
echo "  wall (whole process): ${MW}s = $(mbs "$MW") MB/s"
echo "  loop (-benchmark rtime): ${ML}s = $(mbs "$ML") MB/s"
