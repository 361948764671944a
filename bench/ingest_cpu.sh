#!/usr/bin/env bash
# CPU per ingested channel: N MPEG-TS/UDP channels of ~3 Mbit/s into one strom.
#
# Makes a 30 s 1280x720 25 fps H.264 (2.8 Mbit/s, maxrate 3M) + AAC TS with
# ffmpeg once (~3.06 Mbit/s with TS overhead), then for each N (10, 40) starts
# strom with N `udp://127.0.0.1:PORT` streams and N ffmpeg senders
#   ffmpeg -re -stream_loop -1 -i FILE -c copy -f mpegts udp://127.0.0.1:PORT?pkt_size=1316
# (copy mode, starts staggered by 50 ms). After WARMUP s it measures, over
# MEASURE s, strom's utime+stime from /proc/PID/stat and the senders' CPU
# separately, and prints N, strom's CPU% of one core, % per channel, the ratio
# to nginx-rtmp's 0.4% per 3.3 Mbit/s channel, strom's RSS and the health of
# ingest: streams alive (strom_stream_alive), growth of
# strom_stream_ts_errors_total and of dropped frames during the window, and
# kernel UDP receive-buffer drops. "vs 0.4%" divides strom's % per channel by
# 0.4; "per Mbit/s" compares per input Mbit/s (ours ~3.06, the reference's 3.3).
# "noise" is the CPU (% of one core) that processes other than strom and its
# senders used during the window (the machine may be shared); a window with
# more than FOREIGN_MAX (default 15) is measured again, at most RETRIES (2) times.
#
# Placements (PLACES, default "pinned unpinned"):
#   pinned:   strom on CPU 0 (its tokio runtime then has one worker), senders on CPU 1;
#   unpinned: strom free on both CPUs (two workers), senders on CPU 1.
#
# Memory per channel (RSS_MINUTES > 0, default 10): the run goes on after the
# CPU window until RSS_MINUTES after the senders started, and strom's memory
# is sampled at the end of every minute: VmRSS, its parts RssAnon and
# RssShmem (/proc/PID/status), and the gauge strom_memfd_bytes when /metrics
# has it (sealed memfds of zero-copy bodies: shmem pages that sendfile reads;
# "-" when the metric is absent). Once per placement an idle strom (no
# streams) is started and its RSS read after IDLE_WAIT (5) s. Reported:
# RSS per channel at minute RSS_AT (5) = (RSS - idle RSS) / N, the same for
# RssAnon and for the memfd bytes, RSS at minutes 2, RSS_AT and the last, and
# flatness = RSS at the last minute / RSS at minute 2 (goal: within 0.95-1.05).
# The figure is for watched channels: from the end of the CPU window (so the
# CPU figures stay those of ingest alone) an HLS viewer loop fetches, every
# VIEW_EVERY (2) s, each channel's mono.m3u8 and then the newest segment it
# lists (two curl processes per round, one connection each, all channels in
# turn); VIEWERS=0 turns it off. "fetch ok" counts 200 answers / requests.
# MALLOC_* and other environment variables reach strom unchanged, so
# allocator settings can be compared: strom uses jemalloc by default
# (_RJEM_MALLOC_CONF=dirty_decay_ms:1000 tunes it); a binary built with
# `cargo build --release -p strom --no-default-features` uses glibc's
# malloc (MALLOC_MMAP_THRESHOLD_=131072, MALLOC_ARENA_MAX=2).
#
# Env: NS ("10 40"), WARMUP (10), MEASURE (30), PLACES, BASE_PORT (19001),
#      HTTP_PORT (18090), STROM_BIN (skip cargo build), KEEP=1 keeps the temp dir,
#      RSS_MINUTES (10; 0: CPU only, as before), RSS_AT (5), VIEWERS (1),
#      VIEW_EVERY (2), IDLE_WAIT (5).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=${NS:-"10 40"}
WARMUP=${WARMUP:-10}
MEASURE=${MEASURE:-30}
PLACES=${PLACES:-"pinned unpinned"}
BASE_PORT=${BASE_PORT:-19001}
HTTP_PORT=${HTTP_PORT:-18090}
RSS_MINUTES=${RSS_MINUTES:-10}
RSS_AT=${RSS_AT:-5}
VIEWERS=${VIEWERS:-1}
VIEW_EVERY=${VIEW_EVERY:-2}
IDLE_WAIT=${IDLE_WAIT:-5}
((RSS_AT > RSS_MINUTES)) && RSS_AT=$RSS_MINUTES
REF_PCT=0.4 # nginx-rtmp, % of one core per 3.3 Mbit/s channel
WORK=$(mktemp -d /tmp/bench-ingest.XXXXXX)
HZ=$(getconf CLK_TCK)

. "$ROOT/bench/lib.sh"

need ffmpeg ffmpeg
need ffprobe ffmpeg
need taskset util-linux
need curl curl

ulimit -n 65536 2>/dev/null || true

strom_under_test

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
on_exit() {
    cleanup
    if [[ "${KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- input file --------------------------------------------------------------
SRC=$WORK/in.ts
log "encoding the 30 s ~3 Mbit/s 720p test TS"
ffmpeg -nostdin -loglevel error \
    -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine=frequency=1000:sample_rate=48000 -t 30 \
    -c:v libx264 -preset veryfast -b:v 2800k -maxrate 3M -bufsize 3M -g 50 -keyint_min 50 -sc_threshold 0 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -ar 48000 -ac 2 -f mpegts "$SRC"
SRC_KBPS=$(ffprobe -v error -show_entries format=bit_rate -of csv=p=0 "$SRC" | awk '{ printf "%.0f", $1 / 1000 }')
log "input: $(stat -c %s "$SRC") bytes, $SRC_KBPS kbit/s"

# Processes of this script's process group (strom, nginx, wrk, ffmpeg, our
# subshells) are under test; everything else is noise. Children's times that
# their parents reaped (cutime/cstime) count too, so short-lived compiler or
# test processes of other sessions are not missed.
PGRP=$(awk '{ s = substr($0, index($0, ") ") + 2); split(s, f, " "); print f[3] }' /proc/$$/stat)
foreign_snap() { # foreign_snap FILE: "pid ticks" of every process not under test
    awk -v pg="$PGRP" '{
        a = index($0, "("); b = index($0, ") "); comm = substr($0, a + 1, b - a - 1)
        split(substr($0, b + 2), f, " ")
        if (f[3] == pg || comm ~ /^ksoftirqd\/[0-9]+$/) next
        print $1, f[12] + f[13] + f[14] + f[15]
    }' /proc/[0-9]*/stat 2>/dev/null >"$1"
}
foreign_pct() { # foreign_pct FILE SECONDS
    foreign_snap "$1.end"
    awk -v hz="$HZ" -v secs="$2" 'NR == FNR { t0[$1] = $2; next }
        { d = ($1 in t0) ? $2 - t0[$1] : $2; if (d > 0) s += d } END { printf "%.1f\n", s / hz / secs * 100 }' "$1" "$1.end"
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_free "$HTTP_PORT" || { log "127.0.0.1:$HTTP_PORT is in use; set HTTP_PORT"; exit 1; }

ticks() { awk '{ s += $14 + $15 } END { print s + 0 }' "$@" 2>/dev/null; }
metric_sum() { # metric_sum NAME: sum of all samples of NAME in /metrics
    curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}
alive_count() {
    curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | awk '/^strom_stream_alive\{/ && $2 == 1 { c++ } END { print c + 0 }'
}
udp_rcvbuf_errors() { awk '/^Udp:/ { if (!h) { h = 1; for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") k = i } else print $k }' /proc/net/snmp; }

RESULTS=$WORK/results.txt
: >"$RESULTS"
MEMRESULTS=$WORK/memory.txt
: >"$MEMRESULTS"

mem_sample() { # mem_sample PID: "VmRSS RssAnon RssShmem memfd" (KiB, KiB, KiB, bytes or -)
    local memfd
    memfd=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" |
        awk '$1 == "strom_memfd_bytes" || index($1, "strom_memfd_bytes{") == 1 { s += $2; f = 1 } END { print f ? s : "-" }')
    awk -v m="${memfd:--}" '/^VmRSS/ { r = $2 } /^RssAnon/ { a = $2 } /^RssShmem/ { h = $2 } END { print r, a, h, m }' "/proc/$1/status"
}

# mem_sampler PID START OUT: at START + 60 s * m for m = 1..RSS_MINUTES, appends "m sample" to OUT.
mem_sampler() {
    local m
    for ((m = 1; m <= RSS_MINUTES; m++)); do
        sleep "$(awk -v t="$(($2 + 60 * m))" -v now="$(date +%s.%N)" 'BEGIN { d = t - now; print (d > 0 ? d : 0) }')"
        kill -0 "$1" 2>/dev/null || return 0
        echo "$m $(mem_sample "$1")" >>"$3"
    done
}

# viewers N OUT: the HLS viewer loop (see the header); appends "ok requests" per round to OUT.
viewers() {
    local n=$1 out=$2 i seg ok total args segs
    mkdir -p "$WORK/pl"
    while :; do
        args=()
        for ((i = 1; i <= n; i++)); do
            rm -f "$WORK/pl/$i"
            args+=(-o "$WORK/pl/$i" "http://127.0.0.1:$HTTP_PORT/ch$i/mono.m3u8")
        done
        ok=$(curl -s -w '%{http_code}\n' "${args[@]}" | grep -c '^200$' || true)
        total=$n
        segs=()
        for ((i = 1; i <= n; i++)); do
            seg=$(awk '!/^#/ && NF { l = $0 } END { print l }' "$WORK/pl/$i" 2>/dev/null)
            [[ -n $seg ]] && segs+=(-o /dev/null "http://127.0.0.1:$HTTP_PORT/ch$i/$seg")
        done
        if ((${#segs[@]})); then
            ok=$((ok + $(curl -s -w '%{http_code}\n' "${segs[@]}" | grep -c '^200$' || true)))
            total=$((total + ${#segs[@]} / 3))
        fi
        echo "$ok $total" >>"$out"
        sleep "$VIEW_EVERY"
    done
}

declare -A IDLE_KB
idle_rss() { # idle_rss PLACE: "VmRSS RssAnon" (KiB) of a strom with no streams, IDLE_WAIT s after start
    local place=$1 pin=() pid kb
    [[ -n ${IDLE_KB[$place]:-} ]] && return 0
    [[ $place == pinned ]] && pin=(taskset -c 0)
    echo "http 127.0.0.1:$HTTP_PORT;" >"$WORK/idle.conf"
    RUST_LOG=${RUST_LOG:-info} "${pin[@]}" "$STROM" run -c "$WORK/idle.conf" >"$WORK/strom-idle-$place.log" 2>&1 &
    pid=$!
    PIDS+=($pid)
    sleep "$IDLE_WAIT"
    kb=$(awk '/^VmRSS/ { r = $2 } /^RssAnon/ { a = $2 } END { print r, a }' "/proc/$pid/status")
    IDLE_KB[$place]=$kb
    log "idle strom ($place): RSS ${kb%% *} KiB, RssAnon ${kb##* } KiB"
    cleanup
    sleep 1
}

run_one() { # run_one N PLACE
    local n=$1 place=$2 i pin_strom=()
    [[ $place == pinned ]] && pin_strom=(taskset -c 0)
    ((RSS_MINUTES > 0)) && idle_rss "$place"
    {
        echo "http 127.0.0.1:$HTTP_PORT;"
        for ((i = 1; i <= n; i++)); do
            echo "stream ch$i { input udp://127.0.0.1:$((BASE_PORT + i - 1)); }"
        done
    } >"$WORK/server.conf"
    log "N=$n $place: starting strom and $n ffmpeg senders"
    RUST_LOG=${RUST_LOG:-info} "${pin_strom[@]}" "$STROM" run -c "$WORK/server.conf" >"$WORK/strom-$n-$place.log" 2>&1 &
    PIDS+=($!)
    local strom_pid=$!
    for ((i = 0; i < 50; i++)); do
        curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/healthz" && break
        sleep 0.1
    done
    local senders=() t_start
    t_start=$(date +%s)
    local memlog=$WORK/mem-$n-$place.txt viewlog=$WORK/view-$n-$place.txt sampler=
    : >"$memlog"
    : >"$viewlog"
    if ((RSS_MINUTES > 0)); then
        mem_sampler "$strom_pid" "$t_start" "$memlog" &
        sampler=$!
        PIDS+=($sampler)
    fi
    for ((i = 1; i <= n; i++)); do
        taskset -c 1 ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i "$SRC" -c copy -f mpegts \
            "udp://127.0.0.1:$((BASE_PORT + i - 1))?pkt_size=1316" >>"$WORK/senders.log" 2>&1 &
        PIDS+=($!)
        senders+=("/proc/$!/stat")
        sleep 0.05
    done
    sleep "$WARMUP"

    local alive0 err0 drop0 udp0 t0 s0 st0 t1 s1 st1 noise try
    for ((try = 0; try <= ${RETRIES:-2}; try++)); do
        alive0=$(alive_count)
        err0=$(metric_sum strom_stream_ts_errors_total)
        drop0=$(metric_sum strom_stream_dropped_frames_total)
        udp0=$(udp_rcvbuf_errors)
        foreign_snap "$WORK/foreign"
        st0=$(date +%s.%N)
        t0=$(ticks "/proc/$strom_pid/stat")
        s0=$(ticks "${senders[@]}")
        sleep "$MEASURE"
        t1=$(ticks "/proc/$strom_pid/stat")
        s1=$(ticks "${senders[@]}")
        st1=$(date +%s.%N)
        noise=$(foreign_pct "$WORK/foreign" "$MEASURE")
        if ! kill -0 "$strom_pid" 2>/dev/null; then
            log "strom (pid $strom_pid) is gone; its log ends with:"
            tail -5 "$WORK/strom-$n-$place.log" >&2
            exit 1
        fi
        awk -v f="$noise" -v m="${FOREIGN_MAX:-15}" 'BEGIN { exit !(f <= m) }' && break
        log "other processes used $noise% of a core during the window$( ((try < ${RETRIES:-2})) && echo ': measuring again')"
    done
    local alive1 err1 drop1 udp1 rss inbps
    alive1=$(alive_count)
    err1=$(metric_sum strom_stream_ts_errors_total)
    drop1=$(metric_sum strom_stream_dropped_frames_total)
    udp1=$(udp_rcvbuf_errors)
    inbps=$(metric_sum strom_stream_input_bitrate)
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$strom_pid/status")
    local threads
    threads=$(awk '/^Threads/ { print $2 }' "/proc/$strom_pid/status")
    local warns
    warns=$(grep -c -E 'WARN|ERROR' "$WORK/strom-$n-$place.log" || true)
    grep -E 'WARN|ERROR' "$WORK/strom-$n-$place.log" | head -5 >&2 || true
    awk -v n="$n" -v p="$place" -v t="$((t1 - t0))" -v noise="$noise" -v kbps="$SRC_KBPS" -v s="$((s1 - s0))" -v hz="$HZ" -v st0="$st0" -v st1="$st1" \
        -v rss="$rss" -v a0="$alive0" -v a1="$alive1" -v e="$((err1 - err0))" -v d="$((drop1 - drop0))" \
        -v u="$((udp1 - udp0))" -v bps="$inbps" -v ref="$REF_PCT" -v w="$warns" -v th="$threads" 'BEGIN {
        secs = st1 - st0
        cpu = t / hz / secs * 100; per = cpu / n; scpu = s / hz / secs * 100
        printf "%s %d %.2f %.3f %.2f %.1f %.1f %d/%d %d %d %d %.1f %d %d %.1f %.2f\n",
            p, n, cpu, per, per / ref, rss / 1024, scpu, (a0 < a1 ? a0 : a1), n, e, d, u, bps / 1e6, w, th, noise,
            (per / (kbps / 1000)) / (ref / 3.3) }' >>"$RESULTS"
    log "N=$n $place: $(tail -1 "$RESULTS")"
    if ((RSS_MINUTES > 0)); then
        if ((VIEWERS > 0)); then
            viewers "$n" "$viewlog" &
            PIDS+=($!)
        fi
        log "N=$n $place: memory until minute $RSS_MINUTES"
        wait "$sampler" || true
        if ! kill -0 "$strom_pid" 2>/dev/null; then
            log "strom (pid $strom_pid) is gone; its log ends with:"
            tail -5 "$WORK/strom-$n-$place.log" >&2
            exit 1
        fi
        local idle=${IDLE_KB[$place]}
        awk -v n="$n" -v p="$place" -v idle="${idle%% *}" -v idle_a="${idle##* }" -v at="$RSS_AT" -v last="$RSS_MINUTES" \
            -v view="$(awk '{ o += $1; t += $2 } END { printf "%d/%d", o, t }' "$viewlog")" '
            { r[$1] = $2; a[$1] = $3; h[$1] = $4; m[$1] = $5; list = list (list ? "," : "") sprintf("%.0f", $2 / 1024) }
            END {
                two = (2 in r) ? 2 : last
                per = (r[at] - idle) / n / 1024
                mf = (m[at] == "-" || m[at] == "") ? "-" : sprintf("%.2f", m[at] / n / 1048576)
                printf "%s %d %.1f %.1f %.1f %.1f %.2f %.2f %s %.3f %s %s %s\n", p, n, idle / 1024, r[two] / 1024, r[at] / 1024, r[last] / 1024,
                    per, (a[at] - idle_a) / n / 1024, mf, (r[two] > 0 ? r[last] / r[two] : 0), (h[at] / 1024 > 0 ? sprintf("%.1f", h[at] / 1024) : "0"), view, list
            }' "$memlog" >>"$MEMRESULTS"
        log "N=$n $place memory: $(tail -1 "$MEMRESULTS")"
    fi
    cleanup
    sleep 1
}

for place in $PLACES; do
    for n in $NS; do run_one "$n" "$place"; done
done

echo
echo "UDP ingest CPU, strom; input ${SRC_KBPS} kbit/s 720p25 H.264+AAC per channel; ${WARMUP}s warm-up, ${MEASURE}s measured; $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
echo "reference: nginx-rtmp 0.4% of one core per 3.3 Mbit/s channel. pinned: strom on CPU 0, senders on CPU 1; unpinned: strom free, senders on CPU 1."
printf '%-9s %4s | %10s %10s %8s %10s | %8s | %12s | %6s %8s %7s %8s %8s %5s %7s | %5s\n' \
    place N "strom CPU%" "%/channel" "vs 0.4%" "per Mbit/s" "RSS MiB" "senders CPU%" alive "ts_err+" "drops+" "udp_drop" "in Mb/s" warns threads noise
awk '{ printf "%-9s %4d | %9.2f%% %9.3f%% %7.2fx %9.2fx | %8.1f | %11.1f%% | %6s %8d %7d %8d %8.1f %5d %7d | %4.0f%%\n", $1, $2, $3, $4, $5, $16, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 }' "$RESULTS"
if ((RSS_MINUTES > 0)); then
    echo
    echo "Memory per channel: RSS sampled at the end of each minute since the senders started; per channel = (value at minute $RSS_AT - idle RSS) / N."
    echo "anon/ch is RssAnon, memfd/ch the gauge strom_memfd_bytes (- when absent); shmem is RssShmem in total. flat = RSS at minute $RSS_MINUTES / RSS at minute 2 (goal 0.95-1.05)."
    echo "Viewers: $( ((VIEWERS > 0)) && echo "each channel's mono.m3u8 and newest segment every ${VIEW_EVERY}s from the end of the CPU window" || echo none)."
    printf '%-9s %4s | %8s | %8s %8s %8s | %9s %9s %9s | %6s | %9s | %11s | %s\n' \
        place N "idle MiB" "RSS@2" "RSS@$RSS_AT" "RSS@$RSS_MINUTES" "RSS/ch" "anon/ch" "memfd/ch" flat "shmem MiB" "fetch ok" "RSS MiB by minute"
    awk '{ printf "%-9s %4d | %8.1f | %8.1f %8.1f %8.1f | %9.2f %9.2f %9s | %6.3f | %9s | %11s | %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }' "$MEMRESULTS"
fi
