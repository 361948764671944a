#!/usr/bin/env bash
# HTTP-TS fan-out: CPU per 1,000 viewers of one ~3.4 Mbit/s channel, strom vs nginx.
#
# Makes a 30 s 1280x720 25 fps H.264 (3.1 Mbit/s, maxrate 3.3M) + AAC TS with
# ffmpeg once (~3.4 Mbit/s with TS overhead), and a 90 s copy of it (three
# loops, -c copy) for nginx. Then, in one run:
#   strom: `stream tv { input file://CLIP; }` (the clip looped forever, paced
#          by its own timestamps), viewers on /tv/mpegts;
#   nginx: (Debian package, own temp prefix and config, sendfile on,
#          access_log off) serving the 90 s file with `limit_rate` set to the
#          file's byte rate, viewers on /tv/long.ts.
# For each N (1000, 5000) and each repetition, strom and nginx interleaved,
# bench/ts_viewers.c (one epoll thread; body bytes discarded in the kernel
# with MSG_TRUNC) opens N connections (RATE per second, from 127.0.1.x source
# addresses, PER_ADDR each) and reads whatever arrives. After WARMUP s it
# measures over MEASURE s:
#   - the server's CPU, utime+stime from /proc/PID/stat (strom: its process;
#     nginx: master and every worker), as % of one core and per 1,000 viewers;
#   - per viewer delivered kbit/s (median and minimum over viewers open for
#     the whole window; a starving client or server shows here), the total
#     Gbit/s, viewers closed during the window;
#   - strom's HTTP-TS viewers skipped to a keyframe and dropped for lag
#     (strom_stream_slow_viewers_total) and send timeouts during the run;
#   - strom's zero-copy share: bytes it sent with sendfile
#     (strom_zero_copy_sent_bytes_total) over the bytes the viewers got;
#   - the client's CPU, the ksoftirqd threads' CPU (loopback receive work the
#     kernel deferred: charged to no server), and the machine's noise (CPU of
#     processes other than the ones under test). A window with more than
#     FOREIGN_MAX % of one core of noise is measured again (RETRIES times).
# Before the viewers, strom's CPU with no viewer (ingest only) is measured
# over IDLE s, once per placement.
# The table gives medians over REPS; "ratio" is strom's %/1000 over nginx's.
# A client at >= 90 % of a core is flagged (`client-bound`): then the
# delivered rate, not the server, is the limit. A server at >= 90 % of the
# cores it may use is flagged `server-bound`: its CPU figure is capped and
# its viewers get less than the stream's rate (see kbit/s and skip).
#
# Placements (PLACES, default "pinned unpinned"):
#   pinned:   server on CPU 0 (nginx worker_processes 1; strom's tokio runtime
#             sees one CPU, so one worker), client on CPU 1;
#   unpinned: nothing pinned; nginx worker_processes auto (2), strom 2 workers.
#
# strom's max_connections is MAX_CONNECTIONS (default: the largest N plus
# 1,000): zero-copy bodies get the descriptors the limit leaves beside it
# (minus a reserve of 512), so a max_connections at the descriptor limit
# would send every byte from the heap (strom logs it; the zc column shows it).
#
# Env: NS ("1000 5000"), REPS (3), WARMUP (10), MEASURE (20), IDLE (10),
#      PLACES, RATE (1000 connections/s), PER_ADDR (200), HTTP_PORT (18110),
#      NGINX_PORT (18111), FOREIGN_MAX (15), RETRIES (1), MAX_CONNECTIONS,
#      STROM_BIN (skip the cargo build), KEEP=1 keeps the temp dir (logs,
#      snapshots). Other variables reach strom's environment unchanged.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=${NS:-"1000 5000"}
REPS=${REPS:-3}
WARMUP=${WARMUP:-10}
MEASURE=${MEASURE:-20}
IDLE=${IDLE:-10}
PLACES=${PLACES:-"pinned unpinned"}
RATE=${RATE:-1000}
PER_ADDR=${PER_ADDR:-200}
HTTP_PORT=${HTTP_PORT:-18110}
NGINX_PORT=${NGINX_PORT:-18111}
FOREIGN_MAX=${FOREIGN_MAX:-15}
RETRIES=${RETRIES:-1}
MAX_N=$(printf '%s\n' $NS | sort -n | tail -1)
MAX_CONNECTIONS=${MAX_CONNECTIONS:-$((MAX_N + 1000))}
WORK=$(mktemp -d /tmp/bench-fanout.XXXXXX)
HZ=$(getconf CLK_TCK)

. "$ROOT/bench/lib.sh"

need ffmpeg ffmpeg
need ffprobe ffmpeg
need nginx nginx
need taskset util-linux
need curl curl
need cc gcc
NGINX=$(command -v nginx)

# N viewers plus the server's own descriptors; the hard limit may be low.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
for n in $NS; do
    if ((n + 256 > $(ulimit -n))); then
        die "N=$n needs more descriptors than ulimit -n ($(ulimit -n)) allows"
    fi
done

strom_under_test
cc -O2 -Wall -o "$WORK/ts_viewers" "$ROOT/bench/ts_viewers.c"

PIDS=()
CLIENT=
cleanup() {
    local p
    [[ -n "$CLIENT" ]] && kill "$CLIENT" 2>/dev/null && wait "$CLIENT" 2>/dev/null
    CLIENT=
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

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$HTTP_PORT" "$NGINX_PORT"; do
    port_free "$p" || { log "127.0.0.1:$p is already in use; set HTTP_PORT/NGINX_PORT"; exit 1; }
done

# --- media ---------------------------------------------------------------------
WWW=$WORK/www
mkdir -p "$WWW/tv" "$WORK/nginx/tmp"
CLIP=$WORK/clip.ts
log "encoding the 30 s ~3.4 Mbit/s 720p test TS"
ffmpeg -nostdin -loglevel error \
    -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine=frequency=1000:sample_rate=48000 -t 30 \
    -c:v libx264 -preset veryfast -b:v 3100k -maxrate 3300k -bufsize 3300k -g 50 -keyint_min 50 -sc_threshold 0 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -ar 48000 -ac 2 -f mpegts "$CLIP"
ffmpeg -nostdin -loglevel error -stream_loop 2 -i "$CLIP" -c copy -f mpegts "$WWW/tv/long.ts"
chmod -R a+rX "$WORK"
SRC_BPS=$(ffprobe -v error -show_entries format=bit_rate -of csv=p=0 "$CLIP")
LONG_BPS=$(ffprobe -v error -show_entries format=bit_rate -of csv=p=0 "$WWW/tv/long.ts")
LIMIT=$((LONG_BPS / 8))
log "clip $(stat -c %s "$CLIP") B at $((SRC_BPS / 1000)) kbit/s; nginx file $(stat -c %s "$WWW/tv/long.ts") B at $((LONG_BPS / 1000)) kbit/s, limit_rate $LIMIT B/s"

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
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    types { video/mp2t ts; }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        root $WWW;
        location /tv/ { limit_rate $LIMIT; }
    }
}
EOF
}

cat >"$WORK/server.conf" <<EOF
http 127.0.0.1:$HTTP_PORT;
max_connections $MAX_CONNECTIONS;
stream tv { input file://$CLIP; }
EOF

# --- accounting ------------------------------------------------------------------
# Processes of this script's process group (strom, nginx, the client, our
# subshells) are under test; ksoftirqd is reported on its own; everything
# else is noise. Children's times that their parents reaped (cutime/cstime)
# count too, so short-lived compiler or test processes of others are seen.
PGRP=$(awk '{ s = substr($0, index($0, ") ") + 2); split(s, f, " "); print f[3] }' /proc/$$/stat)
foreign_snap() { # foreign_snap FILE: "pid ticks" of every process not under test
    # cat, not awk, reads /proc: mawk stops at a process that vanished.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pg="$PGRP" '{
        a = index($0, "("); b = index($0, ") "); comm = substr($0, a + 1, b - a - 1)
        split(substr($0, b + 2), f, " ")
        if (f[3] == pg || comm ~ /^ksoftirqd\/[0-9]+$/) next
        print $1, f[12] + f[13] + f[14] + f[15]
    }' >"$1"
}
foreign_pct() { # foreign_pct FILE SECONDS
    foreign_snap "$1.end"
    awk -v hz="$HZ" -v secs="$2" 'NR == FNR { t0[$1] = $2; next }
        { d = ($1 in t0) ? $2 - t0[$1] : $2; if (d > 0) s += d } END { printf "%.1f\n", s / hz / secs * 100 }' "$1" "$1.end"
}
ticks() { # ticks PID...: utime+stime summed
    local p s=0 t
    for p in "$@"; do
        t=$(awk '{ s = substr($0, index($0, ") ") + 2); split(s, f, " "); print f[12] + f[13] }' "/proc/$p/stat" 2>/dev/null || echo 0)
        s=$((s + t))
    done
    echo "$s"
}
softirq_ticks() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{ a = index($0, "("); b = index($0, ") "); comm = substr($0, a + 1, b - a - 1)
        if (comm ~ /^ksoftirqd\/[0-9]+$/) { split(substr($0, b + 2), f, " "); s += f[12] + f[13] } }
        END { print s + 0 }'
}
metric() { # metric EXACT_SERIES: its value in strom's /metrics (0 if absent)
    curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { printf "%.0f\n", v }'
}
now() { date +%s.%N; }

RESULTS=$WORK/results.txt
IDLES=$WORK/idle.txt
: >"$RESULTS"
: >"$IDLES"

# run_one PLACE N SERVER REP SERVER_PIDS...: one client run, one result line.
run_one() {
    local place=$1 n=$2 srv=$3 rep=$4
    shift 4
    local spids=("$@") url pin=() cdir=$WORK/client-$place-$n-$srv-$rep
    mkdir -p "$cdir"
    local port
    if [[ $srv == strom ]]; then url=/tv/mpegts; port=$HTTP_PORT; else url=/tv/long.ts; port=$NGINX_PORT; fi
    [[ $place == pinned ]] && pin=(taskset -c 1)
    "${pin[@]}" "$WORK/ts_viewers" 127.0.0.1 "$port" "$url" "$n" "$RATE" "$PER_ADDR" "$cdir" 2>"$cdir/stderr" &
    CLIENT=$!
    # All connected (bounded: the connect phase plus 20 s).
    local i est=0 limit=$(((n / RATE + 20) * 10))
    for ((i = 0; i < limit; i++)); do
        sleep 0.1
        [[ -f $cdir/status ]] || continue
        read -r _ _ _ est _ _ _ <"$cdir/status"
        ((est >= n)) && break
    done
    ((est >= n)) || log "$srv N=$n: only $est of $n connections established"
    sleep "$WARMUP"
    local try noise st0 st1 c0 c1 k0 k1 q0 q1 sk0 dr0 to0 z0 z1 snaps=0
    sk0=$(metric 'strom_stream_slow_viewers_total{stream="tv",kind="skipped"}')
    dr0=$(metric 'strom_stream_slow_viewers_total{stream="tv",kind="dropped"}')
    to0=$(metric 'strom_http_errors_total{kind="send_timeout"}')
    for ((try = 0; try <= RETRIES; try++)); do
        foreign_snap "$WORK/foreign"
        z0=$(metric strom_zero_copy_sent_bytes_total)
        kill -USR1 "$CLIENT"
        st0=$(now)
        c0=$(ticks "${spids[@]}")
        k0=$(ticks "$CLIENT")
        q0=$(softirq_ticks)
        sleep "$MEASURE"
        c1=$(ticks "${spids[@]}")
        k1=$(ticks "$CLIENT")
        q1=$(softirq_ticks)
        st1=$(now)
        kill -USR1 "$CLIENT"
        z1=$(metric strom_zero_copy_sent_bytes_total)
        noise=$(foreign_pct "$WORK/foreign" "$MEASURE")
        snaps=$((snaps + 2))
        for ((i = 0; i < 50; i++)); do [[ -f $cdir/snap.$((snaps - 1)) ]] && break; sleep 0.1; done
        awk -v f="$noise" -v m="$FOREIGN_MAX" 'BEGIN { exit !(f <= m) }' && break
        log "other processes used $noise% of a core during the window$( ((try < RETRIES)) && echo ': measuring again')"
    done
    local sk1 dr1 to1
    sk1=$(metric 'strom_stream_slow_viewers_total{stream="tv",kind="skipped"}')
    dr1=$(metric 'strom_stream_slow_viewers_total{stream="tv",kind="dropped"}')
    to1=$(metric 'strom_http_errors_total{kind="send_timeout"}')
    kill "$CLIENT" 2>/dev/null || true
    wait "$CLIENT" 2>/dev/null || true
    CLIENT=
    # Per viewer kbit/s over the window, for viewers open at both snapshots.
    local a=$cdir/snap.$((snaps - 2)) b=$cdir/snap.$((snaps - 1))
    awk 'FNR == 1 { if (NR == 1) t0 = $2; else t1 = $2; next }
        NR == FNR { b0[FNR] = $1; x0[FNR] = $2; next }
        !x0[FNR] && !$2 { printf "%.1f\n", ($1 - b0[FNR]) * 8 / (t1 - t0) / 1000 }' "$a" "$b" | sort -g >"$cdir/kbps"
    local open med lo total closed ok bad zc
    open=$(wc -l <"$cdir/kbps")
    med=$(awk '{ a[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }' "$cdir/kbps")
    lo=$(head -1 "$cdir/kbps")
    total=$(awk '{ s += $1 } END { printf "%.3f\n", s / 1e6 }' "$cdir/kbps")
    # Zero-copy share: sendfile bytes over the bytes every viewer got in the window.
    zc=$(awk -v z="$((z1 - z0))" 'FNR == 1 { if (NR == 1) t0 = $2; else t1 = $2; next }
        NR == FNR { b0[FNR] = $1; next } { got += $1 - b0[FNR] }
        END { printf "%.1f\n", (got > 0) ? z / got * 100 : 0 }' "$cdir/snap.$((snaps - 2))" "$cdir/snap.$((snaps - 1))")
    [[ $srv == nginx ]] && zc=-1
    read -r _ _ _ _ ok bad closed <"$b"
    local closed0
    read -r _ _ _ _ _ _ closed0 <"$a"
    awk -v p="$place" -v n="$n" -v s="$srv" -v r="$rep" -v c="$((c1 - c0))" -v k="$((k1 - k0))" -v q="$((q1 - q0))" \
        -v hz="$HZ" -v st0="$st0" -v st1="$st1" -v open="$open" -v med="${med:-0}" -v lo="${lo:-0}" -v tot="$total" \
        -v cl="$((closed - closed0))" -v ok="$ok" -v bad="$bad" -v sk="$(awk -v a="$sk0" -v b="$sk1" 'BEGIN { print b - a }')" \
        -v dr="$(awk -v a="$dr0" -v b="$dr1" 'BEGIN { print b - a }')" -v to="$(awk -v a="$to0" -v b="$to1" 'BEGIN { print b - a }')" \
        -v noise="$noise" -v zc="$zc" 'BEGIN {
        secs = st1 - st0; cpu = c / hz / secs * 100
        per = open > 0 ? cpu / (open / 1000) : 0
        printf "%s %d %s %d %.2f %.3f %d %.1f %.1f %.3f %d %d %d %d %d %d %.1f %.1f %.1f %.1f\n", p, n, s, r, cpu, per, open, med, lo, tot,
            cl, ok, bad, sk, dr, to, k / hz / secs * 100, q / hz / secs * 100, noise, zc }' >>"$RESULTS"
    log "$place N=$n $srv #$rep: $(tail -1 "$RESULTS")"
    # Let the server close the last connections before the next run.
    sleep 2
}

run_place() { # run_place PLACE
    local place=$1 workers pin=()
    if [[ $place == pinned ]]; then
        workers=1
        pin=(taskset -c 0)
    else
        workers=auto
    fi
    log "$place: starting strom (max_connections $MAX_CONNECTIONS) and nginx (worker_processes $workers)"
    nginx_conf "$workers"
    "${pin[@]}" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>>"$WORK/nginx/stderr" &
    PIDS+=($!)
    local nginx_pid=$!
    RUST_LOG=${RUST_LOG:-info} "${pin[@]}" "$STROM" run -c "$WORK/server.conf" >>"$WORK/strom-$place.log" 2>&1 &
    PIDS+=($!)
    local strom_pid=$!
    local i
    for ((i = 0; i < 300; i++)); do
        curl -sfI -o /dev/null "http://127.0.0.1:$HTTP_PORT/tv/mpegts" && break
        sleep 0.1
    done
    curl -sfI -o /dev/null "http://127.0.0.1:$HTTP_PORT/tv/mpegts" || { log "strom's stream did not start:"; tail -5 "$WORK/strom-$place.log" >&2; exit 1; }
    curl -sfI -o /dev/null "http://127.0.0.1:$NGINX_PORT/tv/long.ts" || { log "nginx does not serve:"; cat "$WORK/nginx/error.log" >&2; exit 1; }
    grep -h "zero-copy\|file descriptor limit" "$WORK/strom-$place.log" | sed 's/^[^ ]* *//' | while read -r l; do log "strom: $l"; done
    local nginx_all
    mapfile -t nginx_all < <(echo "$nginx_pid"; pgrep -P "$nginx_pid")
    log "nginx processes: ${nginx_all[*]}"
    # Ingest only: strom with no viewer.
    sleep 3
    local c0 c1 st0 st1
    st0=$(now)
    c0=$(ticks "$strom_pid")
    sleep "$IDLE"
    c1=$(ticks "$strom_pid")
    st1=$(now)
    awk -v p="$place" -v c="$((c1 - c0))" -v hz="$HZ" -v st0="$st0" -v st1="$st1" \
        'BEGIN { printf "%s %.2f\n", p, c / hz / (st1 - st0) * 100 }' >>"$IDLES"
    log "$place: strom with no viewer (ingest only): $(tail -1 "$IDLES" | cut -d' ' -f2)% of a core"

    local n rep
    for n in $NS; do
        for ((rep = 1; rep <= REPS; rep++)); do
            run_one "$place" "$n" strom "$rep" "$strom_pid"
            run_one "$place" "$n" nginx "$rep" "${nginx_all[@]}"
            for p in "$strom_pid" "$nginx_pid"; do
                kill -0 "$p" 2>/dev/null || { log "a server (pid $p) is gone"; tail -5 "$WORK/strom-$place.log" >&2; exit 1; }
            done
        done
    done
    log "$place: strom RSS at the end $(awk '/^VmRSS/ { print $2, $3 }' "/proc/$strom_pid/status")"
    cleanup
    sleep 1
}

for place in $PLACES; do run_place "$place"; done

# --- report ----------------------------------------------------------------------
# results.txt: place N server rep cpu% per1000 open med_kbps min_kbps total_gbps
#              closed ok non_ok skipped dropped send_timeouts client% softirq% noise% zc%
#              (zc% -1: not strom)
echo
echo "HTTP-TS fan-out, strom vs nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') (limit_rate $LIMIT B/s, sendfile); one $((SRC_BPS / 1000)) kbit/s 720p25 H.264+AAC channel; ${WARMUP}s warm-up, ${MEASURE}s measured, median of $REPS; $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); $(date -u +%F)"
echo "pinned: server on CPU 0 (nginx 1 worker, strom 1 tokio worker), client on CPU 1. unpinned: nothing pinned (nginx and strom 2 workers each)."
echo "CPU% = % of one core; /1000 = per 1,000 open viewers; kbit/s per viewer over the window (median, min); skip/drop = strom viewers skipped or dropped for lag; zc = share of strom's bytes sent with sendfile; softirq = ksoftirqd threads."
while read -r place pct; do echo "strom with no viewer ($place): $pct% of a core (ingest and muxing)"; done <"$IDLES"
printf '%-9s %5s %-6s | %8s %7s %6s | %8s %8s %7s | %5s %6s %5s %5s %5s %4s | %8s %7s %6s %s\n' \
    place N server "CPU%" "/1000" ratio "med kb/s" "min kb/s" "Gbit/s" open closed skip drop sndto zc "client%" softirq noise flags
for place in $PLACES; do
    for n in $NS; do
        for srv in strom nginx; do
            awk -v p="$place" -v n="$n" -v s="$srv" '
                function med(a, k,   i, j, t) {
                    for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
                    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
                }
                $1 == p && $2 == n { x = $3; c[x]++; k = c[x]
                    cpu[x, k] = $5; per[x, k] = $6; open[x, k] = $7; md[x, k] = $8; lo[x, k] = $9; tot[x, k] = $10
                    cl[x] += $11; sk[x] += $14; dr[x] += $15; to[x] += $16; cli[x, k] = $17; sq[x, k] = $18; zc[x, k] = $20
                    if ($19 > noise[x]) noise[x] = $19 }
                function m(name, x,   i, v) { delete v; for (i = 1; i <= c[x]; i++) v[i] = V[name, x, i]; return med(v, c[x]) }
                END {
                    for (x in c) for (i = 1; i <= c[x]; i++) {
                        V["cpu", x, i] = cpu[x, i]; V["per", x, i] = per[x, i]; V["open", x, i] = open[x, i]
                        V["md", x, i] = md[x, i]; V["lo", x, i] = lo[x, i]; V["tot", x, i] = tot[x, i]
                        V["cli", x, i] = cli[x, i]; V["sq", x, i] = sq[x, i]; V["zc", x, i] = zc[x, i]
                    }
                    if (!(s in c)) exit
                    ratio = ("nginx" in c && s == "strom") ? sprintf("%6.2f", m("per", "strom") / m("per", "nginx")) : "      "
                    flags = m("cli", s) >= 90 ? "client-bound" : ""
                    # A server at the limit of its cores: its CPU is capped, viewers starve.
                    if (m("cpu", s) >= (p == "pinned" ? 90 : 180)) flags = flags " server-bound"
                    z = m("zc", s); zs = z < 0 ? "   -" : sprintf("%3.0f%%", z)
                    printf "%-9s %5d %-6s | %7.2f%% %6.2f%% %s | %8.0f %8.0f %7.2f | %5d %6d %5d %5d %5d %s | %7.1f%% %6.1f%% %5.1f%% %s\n",
                        p, n, s, m("cpu", s), m("per", s), ratio, m("md", s), m("lo", s), m("tot", s), m("open", s),
                        cl[s], sk[s], dr[s], to[s], zs, m("cli", s), m("sq", s), noise[s], flags
                }' "$RESULTS"
        done
    done
done
