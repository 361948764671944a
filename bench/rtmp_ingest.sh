#!/usr/bin/env bash
# CPU per published channel: N RTMP (and SRT) publishers of ~3 Mbit/s into
# strom, against nginx-rtmp in the same run.
#
# Makes a 1280x720 25 fps H.264 (2.8 Mbit/s, maxrate 3M) + AAC 128k FLV with
# ffmpeg once, and a TS of the same streams by `-c copy`. The clip outlasts a
# run (60 s with the defaults), so no publisher loops during a window: at the
# loop point of a TS input, ffmpeg 5.1's -stream_loop drops the first keyframe
# of the new pass, which makes one 4 s segment. Then, for each placement and
# each N, it runs these servers one after the other, each with N copy-mode
# ffmpeg publishers started STAGGER (100 ms) apart on CPU 1 and the same
# WARMUP/MEASURE windows:
#   nginx-rtmp      relay only: `application live { live on; }`
#   nginx-rtmp+hls  the same plus `hls on; hls_fragment 2s;` (TS fragments and
#                   playlists written to HLS_DIR, tmpfs by default)
#   strom-rtmp      `rtmp ADDR;` and N `stream chI { input publish://; }`
#   strom-srt       `srt ADDR;` and the same streams, if this build has SRT
# with the publishers
#   ffmpeg -re -stream_loop -1 -i in.flv -c copy -f flv rtmp://127.0.0.1:P/live/chI
#   ffmpeg -re -stream_loop -1 -i in.ts -c copy -f mpegts "srt://127.0.0.1:P?streamid=#!::r=chI,m=publish"
# nginx-rtmp runs as one process (`daemon off; master_process off;`), so its
# CPU is that process's. strom segments every stream and keeps its HLS ready
# (in memory); nginx-rtmp relay-only does neither, so nginx-rtmp+hls is the
# fair reference.
#
# For each run it reads utime+stime from /proc/PID/stat over MEASURE s after
# WARMUP s, for the server and (separately) for the publishers, and the
# publishers' bytes sent (ffmpeg -progress total_size). Health, over the window:
#   every server: publishers still running at the end; Mbit/s they sent;
#   strom: strom_stream_alive of all N, strom_stream_segments_total growth,
#     strom_rtmp_errors_total (RTMP) or strom_stream_ts_errors_total (SRT)
#     growth, strom_stream_dropped_frames_total (+ SRT too-late-dropped
#     packets) growth, WARN/ERROR lines in its log;
#   nginx-rtmp+hls: growth of the playlists' last media sequence numbers;
#   nginx-rtmp: [error]/[crit]/[alert] lines in its error log.
# "noise" is the CPU (% of one core) that the rest of the machine used during
# the window (/proc/stat user+system minus this script's processes); a window with more than FOREIGN_MAX (default 15) is
# measured again, at most RETRIES (1) times. With REPEAT > 1 the whole
# sequence runs again and the summary gives medians.
#
# Placements (PLACES, default "pinned unpinned"):
#   pinned:   the server on CPU 0 (strom's tokio runtime then has one worker),
#             publishers on CPU 1;
#   unpinned: the server free on both CPUs, publishers on CPU 1.
#
# Env: NS ("10 40"), WARMUP (10), MEASURE (20), PLACES, SERVERS ("nginx
#      nginx-hls strom-rtmp strom-srt"), REPEAT (1), FOREIGN_MAX, RETRIES, STAGGER,
#      HTTP_PORT (18390), RTMP_PORT (18391, strom), NGINX_PORT (18392),
#      SRT_PORT (18393, UDP), HLS_DIR (/dev/shm), STROM_BIN (skip the build;
#      else `cargo build --release -p strom` into $CARGO_TARGET_DIR or
#      target/), KEEP=1 keeps the temp dir.
# Takes ~9 min with the defaults on a quiet machine (16 runs of ~32 s, plus
# encoding; the build is extra); each window measured again adds 20 s.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=${NS:-"10 40"}
WARMUP=${WARMUP:-10}
MEASURE=${MEASURE:-20}
PLACES=${PLACES:-"pinned unpinned"}
SERVERS=${SERVERS:-"nginx nginx-hls strom-rtmp strom-srt"}
REPEAT=${REPEAT:-1}
FOREIGN_MAX=${FOREIGN_MAX:-15}
RETRIES=${RETRIES:-1}
STAGGER=${STAGGER:-0.1}
HTTP_PORT=${HTTP_PORT:-18390}
RTMP_PORT=${RTMP_PORT:-18391}
NGINX_PORT=${NGINX_PORT:-18392}
SRT_PORT=${SRT_PORT:-18393}
REF_PCT=0.37 # nginx-rtmp measured before: % of one core per 3 Mbit/s channel
GOAL=0.5     # the issue's goal: strom per channel <= 0.5x nginx-rtmp
WORK=$(mktemp -d /tmp/bench-rtmp.XXXXXX)
HZ=$(getconf CLK_TCK)
NGX_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so

. "$ROOT/bench/lib.sh"

need ffmpeg ffmpeg
need ffprobe ffmpeg
need taskset util-linux
need curl curl
need nginx nginx
if [[ ! -f $NGX_MODULE ]]; then
    log "installing libnginx-mod-rtmp"
    apt-get install -y libnginx-mod-rtmp >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y libnginx-mod-rtmp >/dev/null; }
fi

ulimit -n 65536 2>/dev/null || true

HLS_DIR=${HLS_DIR:-/dev/shm}
[[ -d $HLS_DIR && -w $HLS_DIR ]] || HLS_DIR=$WORK
HLS_DIR=$(mktemp -d "$HLS_DIR/bench-rtmp-hls.XXXXXX")

strom_under_test
# nginx runs as a copy too, so that a `killall nginx` from elsewhere does not
# stop the reference server under test.
cp "$(command -v nginx)" "$WORK/reference-server"
NGINX=$WORK/reference-server
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*version: //')
FFMPEG_VERSION=$(ffmpeg -version | awk 'NR == 1 { print $3 }')

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
on_exit() {
    cleanup
    rm -rf "$HLS_DIR"
    if [[ "${KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- input files -------------------------------------------------------------
FLV=$WORK/in.flv
TS=$WORK/in.ts
# Seconds from the first publisher's start to the end of the last window.
CLIP=$(awk -v ns="$NS" -v st="$STAGGER" -v w="$WARMUP" -v m="$MEASURE" -v r="$RETRIES" 'BEGIN {
    k = split(ns, a, " "); n = 0; for (i = 1; i <= k; i++) if (a[i] + 0 > n) n = a[i] + 0
    c = n * st + w + m * (r + 1) + 5; c = 2 * int((c + 1) / 2 + 0.5); print (c < 30 ? 30 : c) }')
log "encoding the $CLIP s ~3 Mbit/s 720p test FLV (and a TS copy of it)"
ffmpeg -nostdin -loglevel error \
    -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine=frequency=1000:sample_rate=48000 -t "$CLIP" \
    -c:v libx264 -preset veryfast -b:v 2800k -maxrate 3M -bufsize 3M -g 50 -keyint_min 50 -sc_threshold 0 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "$FLV"
ffmpeg -nostdin -loglevel error -i "$FLV" -c copy -f mpegts "$TS"
kbps() { ffprobe -v error -show_entries format=bit_rate -of csv=p=0 "$1" | awk '{ printf "%.0f", $1 / 1000 }'; }
FLV_KBPS=$(kbps "$FLV")
TS_KBPS=$(kbps "$TS")
log "input: FLV $(stat -c %s "$FLV") bytes, $FLV_KBPS kbit/s; TS $TS_KBPS kbit/s"

# Noise: the machine's user+nice+system time (/proc/stat) during the window
# minus what the server, the publishers and this script (with the helpers it
# reaped) used. Per-process snapshots of the others would miss short-lived
# processes, and their parents' cutime would book a whole compile at its reap.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 }' /proc/stat; }
self_ticks() { awk '{ s = substr($0, index($0, ") ") + 2); split(s, f, " "); print f[12] + f[13] + f[14] + f[15] }' /proc/$$/stat; }
tcp_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
udp_bound() { # udp_bound PORT: a UDP socket is bound to PORT
    awk -v p="$(printf '%04X' "$1")" 'NR > 1 { split($2, a, ":"); if (a[2] == p) f = 1 } END { exit !f }' /proc/net/udp /proc/net/udp6 2>/dev/null
}
for p in "$HTTP_PORT" "$RTMP_PORT" "$NGINX_PORT"; do
    tcp_free "$p" || { log "127.0.0.1:$p is in use; set HTTP_PORT/RTMP_PORT/NGINX_PORT"; exit 1; }
done
if udp_bound "$SRT_PORT"; then log "UDP port $SRT_PORT is in use; set SRT_PORT"; exit 1; fi

# cat, not awk on the files: mawk stops at the first missing file (a publisher
# that exited), and under `set -e` that would end the script.
ticks() { { cat "$@" 2>/dev/null || true; } | awk '{ s += $14 + $15 } END { print s + 0 }'; }
metrics() { curl -sf -m 5 "http://127.0.0.1:$HTTP_PORT/metrics" >"$WORK/metrics" || : >"$WORK/metrics"; }
msum() { # msum NAME [LABEL-FILTER]: sum of the samples of NAME in the last metrics() scrape
    awk -v n="$1" -v f="${2:-}" '($1 == n || index($1, n "{") == 1) && index($1, f) { s += $2 } END { print s + 0 }' "$WORK/metrics"
}
alive_count() { awk '/^strom_stream_alive\{/ && $2 == 1 { c++ } END { print c + 0 }' "$WORK/metrics"; }
sent_bytes() { # sum over the publishers' progress files of the last total_size
    local f s=0 v
    for f in "$@"; do
        v=$(awk -F= '$1 == "total_size" && $2 ~ /^[0-9]+$/ { v = $2 } END { print v + 0 }' "$f" 2>/dev/null || echo 0)
        s=$((s + v))
    done
    echo "$s"
}
hls_seq() { # sum over nginx-rtmp's playlists of the last media sequence number
    local f=("$HLS_DIR"/*.m3u8)
    [[ -e ${f[0]} ]] || { echo 0; return; }
    awk -F: '/^#EXT-X-MEDIA-SEQUENCE/ { s += $2 } /^#EXTINF/ { s++ } END { print s + 0 }' "${f[@]}" 2>/dev/null || echo 0
}
ngx_errors() { grep -c -E '\[(error|crit|alert|emerg)\]' "$WORK/ng/error.log" 2>/dev/null || true; }

RESULTS=$WORK/results.txt
: >"$RESULTS"
SRT_MISSING=0

start_nginx() { # start_nginx HLS(0|1) PIN...
    local hls=$1
    shift
    rm -rf "$WORK/ng" "${HLS_DIR:?}"/*
    mkdir -p "$WORK/ng"
    {
        echo "load_module $NGX_MODULE;"
        echo "daemon off; master_process off; worker_processes 1;"
        echo "error_log $WORK/ng/error.log error; pid $WORK/ng/nginx.pid;"
        echo "events { worker_connections 4096; }"
        echo "rtmp { server { listen 127.0.0.1:$NGINX_PORT; chunk_size 4096;"
        echo "  application live { live on;"
        ((hls)) && echo "    hls on; hls_path $HLS_DIR; hls_fragment 2s;"
        echo "  } } }"
    } >"$WORK/ng/nginx.conf"
    "$@" "$NGINX" -p "$WORK/ng" -c "$WORK/ng/nginx.conf" >"$WORK/ng/stdout.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    local i
    for ((i = 0; i < 50; i++)); do
        tcp_free "$NGINX_PORT" || return 0
        sleep 0.1
    done
    log "nginx-rtmp did not listen on $NGINX_PORT:"
    cat "$WORK/ng/stdout.log" "$WORK/ng/error.log" >&2 2>/dev/null || true
    exit 1
}

start_strom() { # start_strom rtmp|srt N LOG PIN...
    local proto=$1 n=$2 slog=$3 i
    shift 3
    {
        echo "http 127.0.0.1:$HTTP_PORT;"
        if [[ $proto == rtmp ]]; then echo "rtmp 127.0.0.1:$RTMP_PORT;"; else echo "srt 127.0.0.1:$SRT_PORT;"; fi
        for ((i = 1; i <= n; i++)); do echo "stream ch$i { input publish://; }"; done
    } >"$WORK/server.conf"
    RUST_LOG=${RUST_LOG:-info} "$@" "$STROM" run -c "$WORK/server.conf" >"$slog" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for ((i = 0; i < 50; i++)); do
        curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/healthz" && break
        sleep 0.1
    done
    if [[ $proto == rtmp ]]; then
        for ((i = 0; i < 30; i++)); do
            tcp_free "$RTMP_PORT" || return 0
            sleep 0.1
        done
        log "strom did not listen for RTMP on $RTMP_PORT:"
    else
        for ((i = 0; i < 30; i++)); do
            udp_bound "$SRT_PORT" && return 0
            sleep 0.1
        done
        log "strom did not bind SRT on UDP $SRT_PORT (no SRT listener in this build?):"
    fi
    tail -5 "$slog" >&2
    return 1
}

run_one() { # run_one REP PLACE N SERVER
    local rep=$1 place=$2 n=$3 server=$4 i pin=() slog="$WORK/strom-$4-$3-$2-$1.log"
    [[ $place == pinned ]] && pin=(taskset -c 0)
    log "rep $rep, $place, N=$n: $server with $n publishers"
    case $server in
        nginx) start_nginx 0 "${pin[@]}" ;;
        nginx-hls) start_nginx 1 "${pin[@]}" ;;
        strom-rtmp) start_strom rtmp "$n" "$slog" "${pin[@]}" || exit 1 ;;
        strom-srt)
            if ! start_strom srt "$n" "$slog" "${pin[@]}"; then
                SRT_MISSING=1
                cleanup
                return 0
            fi
            ;;
    esac
    local server_pid=$SERVER_PID senders=() progress=() sender_pids=() url
    for ((i = 1; i <= n; i++)); do
        rm -f "$WORK/progress-$i"
        case $server in
            nginx*) url=(-f flv "rtmp://127.0.0.1:$NGINX_PORT/live/ch$i") ;;
            strom-rtmp) url=(-f flv "rtmp://127.0.0.1:$RTMP_PORT/live/ch$i") ;;
            strom-srt) url=(-f mpegts "srt://127.0.0.1:$SRT_PORT?streamid=#!::r=ch$i,m=publish") ;;
        esac
        local input=$FLV
        [[ $server == strom-srt ]] && input=$TS
        taskset -c 1 ffmpeg -nostdin -loglevel error -progress "$WORK/progress-$i" -stats_period 1 \
            -re -stream_loop -1 -i "$input" -c copy "${url[@]}" >>"$WORK/senders-$server.log" 2>&1 &
        PIDS+=($!)
        sender_pids+=($!)
        senders+=("/proc/$!/stat")
        progress+=("$WORK/progress-$i")
        sleep "$STAGGER"
    done
    sleep "$WARMUP"

    local t0 s0 st0 t1 s1 st1 b0 b1 q0 q1 m0 m1 o0 o1 noise try
    local alive0=0 seg0=0 err0=0 drop0=0 seg1=0 err1=0 drop1=0 alive1=0
    local errm=strom_rtmp_errors_total
    [[ $server == strom-srt ]] && errm=strom_stream_ts_errors_total
    for ((try = 0; try <= RETRIES; try++)); do
        if [[ $server == strom-* ]]; then
            metrics
            alive0=$(alive_count)
            seg0=$(msum strom_stream_segments_total)
            err0=$(msum "$errm")
            drop0=$(($(msum strom_stream_dropped_frames_total) + $(msum strom_stream_srt_packets_total 'kind="dropped"')))
        fi
        q0=$(hls_seq)
        [[ $server == nginx* ]] && err0=$(ngx_errors)
        b0=$(sent_bytes "${progress[@]}")
        m0=$(busy_ticks)
        o0=$(self_ticks)
        st0=$(date +%s.%N)
        t0=$(ticks "/proc/$server_pid/stat")
        s0=$(ticks "${senders[@]}")
        sleep "$MEASURE"
        t1=$(ticks "/proc/$server_pid/stat")
        s1=$(ticks "${senders[@]}")
        st1=$(date +%s.%N)
        m1=$(busy_ticks)
        o1=$(self_ticks)
        noise=$(awk -v d="$((m1 - m0 - (t1 - t0) - (s1 - s0) - (o1 - o0)))" -v hz="$HZ" -v secs="$MEASURE" \
            'BEGIN { if (d < 0) d = 0; printf "%.1f\n", d / hz / secs * 100 }')
        if ! kill -0 "$server_pid" 2>/dev/null; then
            log "$server (pid $server_pid) is gone"
            tail -5 "$slog" "$WORK/ng/error.log" >&2 2>/dev/null || true
            exit 1
        fi
        awk -v f="$noise" -v m="$FOREIGN_MAX" 'BEGIN { exit !(f <= m) }' && break
        log "other processes used $noise% of a core during the window$( ((try < RETRIES)) && echo ': measuring again')"
    done
    # Progress files are written every second: the bytes between the blocks
    # nearest the window's ends give the rate within ~1/MEASURE.
    b1=$(sent_bytes "${progress[@]}")
    q1=$(hls_seq)
    local ok=0 p
    for p in "${sender_pids[@]}"; do kill -0 "$p" 2>/dev/null && ok=$((ok + 1)); done
    local alive=- segs=- warns=0
    case $server in
        strom-*)
            metrics
            alive1=$(alive_count)
            seg1=$(msum strom_stream_segments_total)
            err1=$(msum "$errm")
            drop1=$(($(msum strom_stream_dropped_frames_total) + $(msum strom_stream_srt_packets_total 'kind="dropped"')))
            alive="$((alive0 < alive1 ? alive0 : alive1))/$n"
            segs=$((seg1 - seg0))
            warns=$(grep -c -E 'WARN|ERROR' "$slog" || true)
            grep -E 'WARN|ERROR' "$slog" | head -3 >&2 || true
            ;;
        nginx*)
            [[ $server == nginx-hls ]] && segs=$((q1 - q0))
            err1=$(ngx_errors)
            warns=$err1
            ;;
    esac
    local rss
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$server_pid/status")
    awk -v r="$rep" -v p="$place" -v n="$n" -v sv="$server" -v t="$((t1 - t0))" -v s="$((s1 - s0))" -v hz="$HZ" \
        -v st0="$st0" -v st1="$st1" -v rss="$rss" -v ok="$ok" -v b="$((b1 - b0))" -v alive="$alive" -v segs="$segs" \
        -v e="$((err1 - err0))" -v d="$((drop1 - drop0))" -v w="$warns" -v noise="$noise" 'BEGIN {
        secs = st1 - st0
        cpu = t / hz / secs * 100; scpu = s / hz / secs * 100
        printf "%d %s %d %s %.3f %.4f %.1f %.1f %d/%d %.2f %s %s %d %d %d %.1f\n",
            r, p, n, sv, cpu, cpu / n, rss / 1024, scpu, ok, n, b * 8 / secs / 1e6 / n, alive, segs, e, d, w, noise }' >>"$RESULTS"
    log "  $(tail -1 "$RESULTS")"
    cleanup
    sleep 1
}

START=$(date +%s)
for ((rep = 1; rep <= REPEAT; rep++)); do
    for place in $PLACES; do
        for n in $NS; do
            for server in $SERVERS; do
                [[ $server == strom-srt && $SRT_MISSING == 1 ]] && continue
                run_one "$rep" "$place" "$n" "$server"
            done
        done
    done
done
log "done in $(($(date +%s) - START)) s"

# --- summary -----------------------------------------------------------------
# Median CPU over the repeats of each (placement, N, server); the other
# columns come from the run whose CPU is that median (the upper one for an
# even count), noise is the largest of the repeats.
SUMMARY=$WORK/summary.txt
sort -k2,2 -k3,3n -k4,4 -k5,5g "$RESULTS" | awk '
    function flush() { if (c) { m = int(c / 2) + 1; print row[m], nmax } }
    { key = $2 " " $3 " " $4
      if (key != last) { flush(); c = 0; nmax = 0; last = key }
      row[++c] = $0; if ($16 > nmax) nmax = $16 }
    END { flush() }' >"$SUMMARY"

echo
echo "RTMP/SRT ingest CPU; input ${FLV_KBPS} kbit/s FLV (TS ${TS_KBPS} kbit/s) 720p25 H.264+AAC per channel; ${WARMUP}s warm-up, ${MEASURE}s measured, REPEAT=$REPEAT (medians)"
echo "$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); nginx $NGINX_VERSION with ngx_rtmp_module, ffmpeg $FFMPEG_VERSION"
echo "nginx = nginx-rtmp relaying only (no HLS); nginx-hls = nginx-rtmp with hls on, 2 s fragments written to $(dirname "$HLS_DIR") ($(stat -f -c %T "$HLS_DIR"));"
echo "strom segments every stream and keeps HLS ready in memory, so nginx-hls is the fair reference. One process each: CPU is % of one core."
echo "pinned: server on CPU 0, publishers on CPU 1; unpinned: server free, publishers on CPU 1. Goal: strom per channel <= ${GOAL}x nginx-rtmp (measured before: ${REF_PCT}% per channel)."
[[ $SRT_MISSING == 1 ]] && echo "strom-srt: not run, this build has no SRT listener (nothing bound on UDP $SRT_PORT)."
printf '%-9s %3s %-10s | %8s %9s | %9s %9s | %7s | %8s %8s %7s | %6s %6s %5s %5s %5s | %5s\n' \
    place N server "CPU%" "%/chan" "vs nginx" "vs +hls" "RSS MiB" "pub CPU%" "Mb/s/ch" "pubs ok" alive "segs+" "err+" "drop+" warns noise
awk '
    { k = $2 " " $3; if ($4 == "nginx") ng[k] = $6; if ($4 == "nginx-hls") nh[k] = $6; line[NR] = $0 }
    END {
        for (i = 1; i <= NR; i++) {
            split(line[i], f, " "); k = f[2] " " f[3]
            r1 = (k in ng && ng[k] > 0) ? sprintf("%.2fx", f[6] / ng[k]) : "-"
            r2 = (k in nh && nh[k] > 0) ? sprintf("%.2fx", f[6] / nh[k]) : "-"
            printf "%-9s %3d %-10s | %7.2f%% %8.3f%% | %9s %9s | %7.1f | %7.1f%% %8.2f %7s | %6s %6s %5d %5d %5d | %4.0f%%\n",
                f[2], f[3], f[4], f[5], f[6], r1, r2, f[7], f[8], f[10], f[9], f[11], f[12], f[13], f[14], f[15], f[17]
        }
    }' "$SUMMARY"
echo "segs+: segments made in the window (N x MEASURE / 2 expected); err+: strom_rtmp_errors_total (RTMP), strom_stream_ts_errors_total (SRT),"
echo "nginx error-log lines; drop+: strom_stream_dropped_frames_total + SRT too-late-dropped packets; warns: WARN/ERROR log lines in the run;"
echo "noise: CPU the rest of the machine used in the window (% of one core; the largest over the repeats)."
awk '{ split($9, ok, "/"); bad = ok[1] != ok[2] || ($11 != "-" && $11 != $3 "/" $3) || $13 > 0 || $14 > 0 }
    bad { if (!hdr++) print "UNHEALTHY runs (rep place N server CPU% %/chan RSS pubCPU% pubs_ok Mb/s/ch alive segs+ err+ drop+ warns noise):"; print "  " $0 }' "$RESULTS"
if ((REPEAT > 1)); then
    echo
    echo "all runs: rep place N server CPU% %/chan RSS pubCPU% pubs_ok Mb/s/ch alive segs+ err+ drop+ warns noise"
    cat "$RESULTS"
fi
