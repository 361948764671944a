#!/usr/bin/env bash
# HLS delivery: strom vs nginx serving the same channel, measured with wrk.
#
# Starts, in one run, a release strom (stream `demo`: builtin://demo, the
# embedded assets/demo.ts looped in real time) and nginx (Debian package, own
# temp prefix/config, sendfile on, access_log off) serving static HLS that
# ffmpeg segmented from the same assets/demo.ts (-hls_time 2 -hls_list_size 6).
# For each concurrency (100, 1000) it measures requests/s and Gbit/s of
#   (a) one segment  (strom: the newest segment of mono.m3u8, re-picked before
#                     every wrk run because the live window slides; nginx: the
#                     ffmpeg segment closest in size to strom's),
#   (b) the playlist (strom: /demo/mono.m3u8; nginx: /demo/mono.m3u8 file),
# REPEAT times each (strom and nginx interleaved) and prints the medians with
# the strom/nginx ratio, and the server's CPU time per request (strom's
# process; nginx's workers), which compares the servers even when wrk is
# the bottleneck (pinned wrk saturates its core at ~13k segments/s here).
#
# Modes (MODES, default "pinned auto"):
#   pinned: server processes on CPU 0 (taskset), wrk -t2 on CPU 1.
#           nginx worker_processes 1; strom's tokio runtime sees one CPU, so one worker.
#   auto:   nothing pinned; nginx worker_processes auto (= 2 here); strom uses
#           both CPUs; wrk -t2 shares the same 2 CPUs with the server.
#
# Gbit/s = wrk "Transfer/sec" (1024-based units, converted to bytes) × 8 / 1e9.
#
# The machine may be shared (other builds and tests): during every wrk run the
# CPU used by processes other than strom/nginx/wrk is measured from /proc, and
# a run where it exceeded FOREIGN_MAX % of one core is repeated (at most
# RETRIES times). The table's "noise" column is the worst such figure among
# the runs kept.
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
#
# Env: DURATION (s, default 10), REPEAT (3), CONNS ("100 1000"), MODES ("pinned auto"),
#      STROM_PORT (18080), NGINX_PORT (18081), OUT (dir for raw wrk output; default a temp dir),
#      STROM_BIN (skip the cargo build and use this binary), FOREIGN_MAX (10), RETRIES (3).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
REPEAT=${REPEAT:-3}
CONNS=${CONNS:-"100 1000"}
MODES=${MODES:-"pinned auto"}
STROM_PORT=${STROM_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
FOREIGN_MAX=${FOREIGN_MAX:-10}
RETRIES=${RETRIES:-3}
WORK=$(mktemp -d /tmp/bench-hls.XXXXXX)
OUT=${OUT:-$WORK/raw}
mkdir -p "$OUT"

. "$ROOT/bench/lib.sh"

# --- tools -------------------------------------------------------------------
need ffmpeg ffmpeg
need nginx nginx
need wrk wrk
need taskset util-linux
need curl curl
NGINX=$(command -v nginx)

# 1000 connections per side plus wrk: raise the descriptor limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- strom build ---------------------------------------------------------------
strom_under_test

# --- process management ----------------------------------------------------------
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap 'cleanup; rm -rf "$WORK/www" "$WORK/server-under-test"; log "raw output and logs: $OUT $WORK"' EXIT
trap 'exit 130' INT TERM

wait_http() { # wait_http URL SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    log "timeout waiting for $1"
    return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$STROM_PORT" "$NGINX_PORT"; do
    port_free "$p" || { log "127.0.0.1:$p is already in use; set STROM_PORT/NGINX_PORT"; exit 1; }
done

# --- nginx content: ffmpeg-segmented demo.ts ------------------------------------------
WWW=$WORK/www
mkdir -p "$WWW/demo" "$WORK/nginx/tmp"
log "segmenting assets/demo.ts for nginx"
# Three loops (30 s) so that the 6-entry playlist is full and looks live (no ENDLIST).
ffmpeg -nostdin -loglevel error -stream_loop 2 -i "$ROOT/assets/demo.ts" -c copy -f hls \
    -hls_time 2 -hls_list_size 6 -hls_flags omit_endlist \
    -hls_segment_filename "$WWW/demo/seg%03d.ts" "$WWW/demo/mono.m3u8"
chmod -R a+rX "$WORK"

nginx_conf() { # nginx_conf WORKERS
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $1;
worker_rlimit_nofile 65536;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
$(nginx_temp_paths)
    types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WWW;
    }
}
EOF
}

cat >"$WORK/server.conf" <<EOF
http 127.0.0.1:$STROM_PORT;
stream demo { input builtin://demo; }
EOF

# --- noise from other processes -----------------------------------------------------
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
foreign_pct() { # foreign_pct FILE SECONDS: % of one core used by them since the snapshot
    foreign_snap "$1.end"
    awk -v hz="$(getconf CLK_TCK)" -v secs="$2" 'NR == FNR { t0[$1] = $2; next }
        { d = ($1 in t0) ? $2 - t0[$1] : $2; if (d > 0) s += d } END { printf "%.1f\n", s / hz / secs * 100 }' "$1" "$1.end"
}

# --- wrk ---------------------------------------------------------------------------
WRK_PIN=()
# run_wrk CONNS URL FILE -> prints "req_per_s bytes_per_s p99_ms non2xx errors"
run_wrk() {
    "${WRK_PIN[@]}" wrk -t2 -c"$1" -d"${DURATION}s" --timeout 5s --latency "$2" >"$3" 2>&1 || true
    awk '
        function bytes(s,   v, u) {
            v = s + 0; u = s; sub(/^[0-9.]+/, "", u)
            if (u == "KB") v *= 1024; else if (u == "MB") v *= 1048576
            else if (u == "GB") v *= 1073741824; else if (u == "TB") v *= 1099511627776
            return v
        }
        function ms(s,   v) { v = s + 0; if (s ~ /us$/) v /= 1000; else if (s ~ /[0-9]s$/) v *= 1000; else if (s ~ /m$/) v *= 60000; return v }
        /Requests\/sec:/ { rps = $2 }
        /Transfer\/sec:/ { bps = bytes($2) }
        /^ +99%/ { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
        END { printf "%s %s %s %d %d\n", rps + 0, bps + 0, p99 + 0, bad, err }' "$3"
}

# url_of SERVER RESOURCE: strom's segment is the newest one of mono.m3u8 at call time.
url_of() {
    case "$1 $2" in
    "strom segment") echo "http://127.0.0.1:$STROM_PORT/demo/$(strom_newest_segment)" ;;
    "strom playlist") echo "http://127.0.0.1:$STROM_PORT/demo/mono.m3u8" ;;
    "nginx segment") echo "http://127.0.0.1:$NGINX_PORT/demo/$NSEG" ;;
    "nginx playlist") echo "http://127.0.0.1:$NGINX_PORT/demo/mono.m3u8" ;;
    esac
}

# server_ticks SERVER: CPU ticks (user + system) used so far by strom, or by
# nginx's worker processes.
server_ticks() {
    local pids
    if [[ $1 == strom ]]; then pids=$STROM_PID; else pids=$(pgrep -P "$NGINX_PID" | tr '\n' ' '); fi
    # shellcheck disable=SC2086
    for p in $pids; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{ s = substr($0, index($0, ") ") + 2); split(s, f, " "); t += f[12] + f[13] } END { print t + 0 }'
}

# measure CONNS SERVER RESOURCE FILE -> run_wrk's fields, the foreign CPU %
# and the server's CPU per request (µs); a run disturbed by other processes
# is repeated.
measure() {
    local try r f url t0 t1 us
    for ((try = 0; try <= RETRIES; try++)); do
        url=$(url_of "$2" "$3")
        echo "$url" >"$4.url"
        foreign_snap "$WORK/foreign"
        t0=$(server_ticks "$2")
        r=$(run_wrk "$1" "$url" "$4")
        t1=$(server_ticks "$2")
        us=$(echo "$r" | awk -v d="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v secs="$DURATION" '{ printf "%.1f", ($1 > 0) ? d / hz * 1e6 / ($1 * secs) : 0 }')
        f=$(foreign_pct "$WORK/foreign" "$DURATION")
        if awk -v f="$f" -v m="$FOREIGN_MAX" 'BEGIN { exit !(f <= m) }'; then break; fi
        if ((try < RETRIES)); then
            log "other processes used $f% of a core during this run: repeating it"
            sleep "${RETRY_WAIT:-20}"
        else
            log "other processes used $f% of a core during this run: kept (retries exhausted)"
        fi
    done
    echo "$r $f $us"
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

strom_newest_segment() {
    curl -sf "http://127.0.0.1:$STROM_PORT/demo/mono.m3u8" | grep -v '^#' | tail -1
}

size_of() { curl -sf -o /dev/null -w '%{size_download}' "$1"; }

SUMMARY=$WORK/summary.txt
: >"$SUMMARY"

run_mode() {
    local mode=$1 workers pin_srv=()
    if [[ $mode == pinned ]]; then
        workers=1
        pin_srv=(taskset -c 0)
        WRK_PIN=(taskset -c 1)
    else
        workers=auto
        WRK_PIN=()
    fi
    log "mode $mode: starting strom and nginx (worker_processes $workers)"
    nginx_conf "$workers"
    "${pin_srv[@]}" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    NGINX_PID=$!
    RUST_LOG=${RUST_LOG:-info} "${pin_srv[@]}" "$STROM" run -c "$WORK/server.conf" >>"$WORK/strom-$mode.log" 2>&1 &
    PIDS+=($!)
    local strom_pid=$!
    STROM_PID=$strom_pid
    sleep 0.5
    kill -0 "$strom_pid" 2>/dev/null || { log "strom did not start:"; cat "$WORK/strom-$mode.log" >&2; exit 1; }
    wait_http "http://127.0.0.1:$NGINX_PORT/demo/mono.m3u8" 10
    wait_http "http://127.0.0.1:$STROM_PORT/demo/mono.m3u8" 30
    # Let the live window fill (6 segments of 2 s) so the playlist has its full size.
    sleep "${FILL_WAIT:-12}"

    # The nginx segment closest in size to strom's newest segment.
    local sseg ssize best=-1 f sz d
    sseg=$(strom_newest_segment)
    ssize=$(size_of "http://127.0.0.1:$STROM_PORT/demo/$sseg")
    for f in "$WWW"/demo/seg*.ts; do
        sz=$(stat -c %s "$f")
        d=$((sz > ssize ? sz - ssize : ssize - sz))
        if ((best < 0 || d < best)); then best=$d; NSEG=$(basename "$f"); fi
    done
    local nsize splsize nplsize
    nsize=$(stat -c %s "$WWW/demo/$NSEG")
    splsize=$(size_of "http://127.0.0.1:$STROM_PORT/demo/mono.m3u8")
    nplsize=$(stat -c %s "$WWW/demo/mono.m3u8")
    log "segment sizes: strom ~$ssize B (newest, re-picked per run), nginx $NSEG $nsize B; playlists: strom $splsize B, nginx $nplsize B"

    # Warm-up, not measured.
    DURATION=2 run_wrk 100 "http://127.0.0.1:$STROM_PORT/demo/$sseg" "$OUT/warm-strom.txt" >/dev/null
    DURATION=2 run_wrk 100 "http://127.0.0.1:$NGINX_PORT/demo/$NSEG" "$OUT/warm-nginx.txt" >/dev/null

    local c res rep srv r file
    local cpu0 cpu1
    cpu0=$(awk '{ print $14 + $15 }' "/proc/$strom_pid/stat")
    for c in $CONNS; do
        for res in segment playlist; do
            for ((rep = 1; rep <= REPEAT; rep++)); do
                for srv in strom nginx; do
                    file="$OUT/$mode-$srv-$res-c$c-$rep.txt"
                    r=$(measure "$c" "$srv" "$res" "$file")
                    if ! kill -0 "$strom_pid" 2>/dev/null; then
                        log "strom (pid $strom_pid) is gone; its log ends with:"
                        tail -5 "$WORK/strom-$mode.log" >&2
                        exit 1
                    fi
                    log "$mode c=$c $res $srv #$rep: $r  ($(head -1 "$file.url"))"
                    echo "$mode $c $res $srv $r" >>"$SUMMARY"
                done
            done
        done
    done
    cpu1=$(awk '{ print $14 + $15 }' "/proc/$strom_pid/stat")
    log "strom RSS after mode $mode: $(awk '/VmRSS/ { print $2, $3 }' "/proc/$strom_pid/status"), CPU $(((cpu1 - cpu0) / $(getconf CLK_TCK))) s"
    cleanup
    sleep 1
}

for m in $MODES; do run_mode "$m"; done

# --- report ---------------------------------------------------------------------------
# summary.txt fields: mode conns resource server req/s bytes/s p99ms non2xx sockerr foreign% cpu_us_per_req
echo
echo "HLS delivery, strom vs nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'); wrk -t2 -d${DURATION}s, median of $REPEAT; $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); $(date -u +%F)"
echo "pinned: strom and nginx on CPU 0, wrk on CPU 1, nginx worker_processes 1, strom 1 tokio worker.  auto: nothing pinned, nginx worker_processes auto (2), strom 2 workers, wrk shares the CPUs."
echo "spread = (max-min)/median of req/s over the runs; noise = worst CPU% of one core used by other processes during a kept run."
echo "CPU/req = the server's CPU time (user + system; nginx: its workers) per request served, µs: the fair figure when wrk, not the server, is the bottleneck."
printf '%-6s %5s %-8s | %11s %11s %5s | %10s %10s %5s | %9s %9s | %15s %5s | %13s | %5s | %s\n' \
    mode conns what "strom req/s" "nginx req/s" ratio "strom Gb/s" "nginx Gb/s" ratio "strom p99" "nginx p99" "CPU/req s / n" ratio "spread s/n" noise "non-2xx/sock-err"
for m in $MODES; do
    for c in $CONNS; do
        for res in segment playlist; do
            awk -v m="$m" -v c="$c" -v r="$res" '
                function med(a, n,   i, j, t) {
                    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
                    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
                }
                $1 == m && $2 == c && $3 == r {
                    k = $4; n[k]++
                    rps[k, n[k]] = $5; bps[k, n[k]] = $6; p99[k, n[k]] = $7; us[k, n[k]] = $11
                    bad[k] += $8; err[k] += $9; if ($10 > noise) noise = $10
                    if (!(k in lo) || $5 < lo[k]) lo[k] = $5
                    if (!(k in hi) || $5 > hi[k]) hi[k] = $5
                }
                END {
                    for (s = 0; s < 2; s++) {
                        k = s ? "nginx" : "strom"
                        delete x; for (i = 1; i <= n[k]; i++) x[i] = rps[k, i]; R[k] = med(x, n[k])
                        delete x; for (i = 1; i <= n[k]; i++) x[i] = bps[k, i]; B[k] = med(x, n[k])
                        delete x; for (i = 1; i <= n[k]; i++) x[i] = p99[k, i]; P[k] = med(x, n[k])
                        delete x; for (i = 1; i <= n[k]; i++) x[i] = us[k, i]; U[k] = med(x, n[k])
                        S[k] = R[k] > 0 ? (hi[k] - lo[k]) / R[k] * 100 : 0
                    }
                    printf "%-6s %5s %-8s | %11.0f %11.0f %5.2f | %10.2f %10.2f %5.2f | %7.1fms %7.1fms | %6.1f / %6.1f %5.2f | %5.0f%%/%5.0f%% | %4.0f%% | strom %d/%d, nginx %d/%d\n",
                        m, c, r, R["strom"], R["nginx"], R["nginx"] ? R["strom"] / R["nginx"] : 0,
                        B["strom"] * 8 / 1e9, B["nginx"] * 8 / 1e9, B["nginx"] ? B["strom"] / B["nginx"] : 0,
                        P["strom"], P["nginx"], U["strom"], U["nginx"], U["nginx"] ? U["strom"] / U["nginx"] : 0,
                        S["strom"], S["nginx"], noise, bad["strom"], err["strom"], bad["nginx"], err["nginx"]
                }' "$SUMMARY"
        done
    done
done
