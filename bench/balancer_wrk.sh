#!/usr/bin/env bash
# Balancer decisions per second against nginx's bare redirects, measured
# with wrk in one run.
#
# Starts three strom nodes (no streams: the balancer's `channel` block names
# them, so they only answer its polls) and the balancer in front of them, and
# nginx (Debian package, own temp prefix/config, access_log off) answering
# every request with `return 302 http://127.0.0.1:NODE$request_uri;`. Then,
# REPEAT times, interleaved:
#   redirect: wrk on the balancer's playback path (/ch/index.m3u8?token=t):
#             one routing decision and a 302 to the chosen node per request;
#   nginx:    wrk on nginx's 302, the same path;
#   route:    wrk on the balancer's JSON routing API (strom only).
# and prints the medians: requests/s with the strom/nginx ratio, p99 latency
# with its ratio, and each server's CPU time per request (strom's balancer
# process; nginx's workers), the fair figure when wrk is the bottleneck.
#
# Modes (MODES, default "pinned auto"):
#   pinned: servers on CPU 0 (taskset), wrk -t1 on CPU 1; nginx
#           worker_processes 1; strom's runtime sees one CPU, so one worker.
#   auto:   nothing pinned; nginx worker_processes auto; strom uses every
#           CPU; wrk -t2 shares them with the server.
#
# The machine may be shared: during every wrk run the CPU used by processes
# other than those of this script is measured from /proc, and a run where it
# exceeded FOREIGN_MAX % of one core is repeated (at most RETRIES times).
# The "noise" column is the worst such figure among the runs kept.
# Everything listens on 127.0.0.1 only; every process started here is
# stopped on exit.
#
# Env: DURATION (s, default 10), REPEAT (3), CONNS (100), MODES ("pinned auto"),
#      PORT (18300; the nodes use PORT+1..PORT+3, nginx PORT+10),
#      STROM_BIN (skip the cargo build and use this binary), FOREIGN_MAX (10),
#      RETRIES (3), OUT (dir for raw wrk output; default a temp dir).
# Usage: bench/balancer_wrk.sh [SECONDS_PER_RUN]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${1:-${DURATION:-10}}
REPEAT=${REPEAT:-3}
CONNS=${CONNS:-100}
MODES=${MODES:-"pinned auto"}
PORT=${PORT:-18300}
NGINX_PORT=$((PORT + 10))
FOREIGN_MAX=${FOREIGN_MAX:-10}
RETRIES=${RETRIES:-3}
WORK=$(mktemp -d /tmp/bench-balancer.XXXXXX)
OUT=${OUT:-$WORK/raw}
mkdir -p "$OUT"

. "$ROOT/bench/lib.sh"

# --- tools -------------------------------------------------------------------
need nginx nginx
need wrk wrk
need taskset util-linux
need curl curl
NGINX=$(command -v nginx)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- strom build -----------------------------------------------------------------
strom_under_test

# --- process management ----------------------------------------------------------
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap 'cleanup; rm -f "$WORK/server-under-test"; log "raw output and logs: $OUT $WORK"' EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)) "$NGINX_PORT"; do
    port_free "$p" || { log "127.0.0.1:$p is already in use; set PORT"; exit 1; }
done

# --- configs ---------------------------------------------------------------------
{
    echo "http 127.0.0.1:$PORT;"
    for n in 1 2 3; do
        echo "server s$n { url http://127.0.0.1:$((PORT + n)); max_clients 100000000; }"
    done
    echo "channel ch { servers s1 s2 s3; }"
} >"$WORK/balancer.conf"
for n in 1 2 3; do
    echo "http 127.0.0.1:$((PORT + n));" >"$WORK/node$n.conf"
done
mkdir -p "$WORK/nginx/tmp"
nginx_conf() { # nginx_conf WORKERS
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $1;
worker_rlimit_nofile 65536;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_timeout 65;
    keepalive_requests 1000000;
$(nginx_temp_paths)
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { return 302 http://127.0.0.1:$((PORT + 1))\$request_uri; }
    }
}
EOF
}

# --- noise from other processes -----------------------------------------------------
# Processes of this script's process group are under test; everything else is
# noise, children reaped by their parents included.
PGRP=$(awk '{ s = substr($0, index($0, ") ") + 2); split(s, f, " "); print f[3] }' /proc/$$/stat)
foreign_snap() { # foreign_snap FILE
    awk -v pg="$PGRP" '{
        a = index($0, "("); b = index($0, ") "); comm = substr($0, a + 1, b - a - 1)
        split(substr($0, b + 2), f, " ")
        if (f[3] == pg || comm ~ /^ksoftirqd\/[0-9]+$/) next
        print $1, f[12] + f[13] + f[14] + f[15]
    }' /proc/[0-9]*/stat 2>/dev/null >"$1"
}
foreign_pct() { # foreign_pct FILE SECONDS
    foreign_snap "$1.end"
    awk -v hz="$(getconf CLK_TCK)" -v secs="$2" 'NR == FNR { t0[$1] = $2; next }
        { d = ($1 in t0) ? $2 - t0[$1] : $2; if (d > 0) s += d } END { printf "%.1f\n", s / hz / secs * 100 }' "$1" "$1.end"
}

# --- wrk -------------------------------------------------------------------------
WRK=()
# run_wrk URL FILE -> "req_per_s p99_ms non2xx_3xx sock_errors"
run_wrk() {
    "${WRK[@]}" -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency "$1" >"$2" 2>&1 || true
    awk '
        function ms(s,   v) { v = s + 0; if (s ~ /us$/) v /= 1000; else if (s ~ /[0-9]s$/) v *= 1000; else if (s ~ /m$/) v *= 60000; return v }
        /Requests\/sec:/ { rps = $2 }
        /^ +99%/ { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
        END { printf "%s %s %d %d\n", rps + 0, p99 + 0, bad, err }' "$2"
}

# server_ticks WHAT: CPU ticks used so far by the balancer, or nginx's workers.
server_ticks() {
    local pids
    if [[ $1 == nginx ]]; then pids=$(pgrep -P "$NGINX_PID" | tr '\n' ' '); else pids=$BALANCER_PID; fi
    # shellcheck disable=SC2086
    for p in $pids; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{ s = substr($0, index($0, ") ") + 2); split(s, f, " "); t += f[12] + f[13] } END { print t + 0 }'
}

url_of() {
    case $1 in
    redirect) echo "http://127.0.0.1:$PORT/ch/index.m3u8?token=t" ;;
    route) echo "http://127.0.0.1:$PORT/api/v1/route?stream=ch&ip=10.0.0.1" ;;
    nginx) echo "http://127.0.0.1:$NGINX_PORT/ch/index.m3u8?token=t" ;;
    esac
}

# measure WHAT FILE -> run_wrk's fields, foreign CPU %, server CPU µs per request
measure() {
    local try r f t0 t1 us who
    who=$1
    [[ $who == route ]] && who=redirect
    for ((try = 0; try <= RETRIES; try++)); do
        foreign_snap "$WORK/foreign"
        t0=$(server_ticks "$who")
        r=$(run_wrk "$(url_of "$1")" "$2")
        t1=$(server_ticks "$who")
        us=$(echo "$r" | awk -v d="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v secs="$DURATION" '{ printf "%.2f", ($1 > 0) ? d / hz * 1e6 / ($1 * secs) : 0 }')
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

SUMMARY=$WORK/summary.txt
: >"$SUMMARY"

run_mode() {
    local mode=$1 workers pin=()
    if [[ $mode == pinned ]]; then
        workers=1
        pin=(taskset -c 0)
        WRK=(taskset -c 1 wrk -t1)
    else
        workers=auto
        WRK=(wrk -t2)
    fi
    log "mode $mode: starting three nodes, the balancer and nginx (worker_processes $workers)"
    nginx_conf "$workers"
    "${pin[@]}" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    NGINX_PID=$!
    for n in 1 2 3; do
        "${pin[@]}" "$STROM" run -c "$WORK/node$n.conf" >>"$WORK/node$n-$mode.log" 2>&1 &
        PIDS+=($!)
    done
    "${pin[@]}" "$STROM" balancer -c "$WORK/balancer.conf" >>"$WORK/balancer-$mode.log" 2>&1 &
    PIDS+=($!)
    BALANCER_PID=$!
    local i
    for ((i = 0; i < 150; i++)); do
        curl -sf -o /dev/null "$(url_of route)" && break
        sleep 0.2
    done
    curl -sf -o /dev/null "$(url_of route)" || { log "the balancer routes nothing:"; tail -5 "$WORK/balancer-$mode.log" >&2; exit 1; }
    curl -s -o /dev/null -w '%{http_code}' "$(url_of nginx)" | grep -q 302 || { log "nginx does not redirect"; exit 1; }

    # Warm-up, not measured.
    DURATION=2 run_wrk "$(url_of redirect)" "$OUT/warm-strom.txt" >/dev/null
    DURATION=2 run_wrk "$(url_of nginx)" "$OUT/warm-nginx.txt" >/dev/null

    local rep what r file
    for ((rep = 1; rep <= REPEAT; rep++)); do
        for what in redirect nginx route; do
            file="$OUT/$mode-$what-$rep.txt"
            r=$(measure "$what" "$file")
            kill -0 "$BALANCER_PID" 2>/dev/null || { log "the balancer is gone:"; tail -5 "$WORK/balancer-$mode.log" >&2; exit 1; }
            log "$mode $what #$rep: $r"
            echo "$mode $what $r" >>"$SUMMARY"
        done
    done
    cleanup
    sleep 1
}

for m in $MODES; do run_mode "$m"; done

# --- report ---------------------------------------------------------------------------
# summary.txt fields: mode what req/s p99ms non2xx3xx sockerr foreign% cpu_us_per_req
echo
echo "Balancer redirects vs nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') return 302; wrk -c$CONNS -d${DURATION}s, median of $REPEAT; $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); $(date -u +%F)"
echo "pinned: balancer, nodes and nginx on CPU 0 (nginx 1 worker, strom 1 runtime worker), wrk -t1 on CPU 1.  auto: nothing pinned, nginx worker_processes auto, wrk -t2."
echo "redirect = strom's playback path (a routing decision + 302); nginx = a bare 302; route = strom's JSON routing API."
echo "CPU/req = the server's CPU time (user + system; nginx: its workers) per request, µs. noise = worst CPU% of one core used by other processes during a kept run."
printf '%-6s | %11s %11s %5s | %9s %9s %5s | %15s %5s | %11s %9s | %5s | %s\n' \
    mode "strom req/s" "nginx req/s" ratio "strom p99" "nginx p99" ratio "CPU/req s / n" ratio "route req/s" "route p99" noise "errors s/n/route"
for m in $MODES; do
    awk -v m="$m" '
        function med(a, n,   i, j, t) {
            for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $1 == m {
            k = $2; n[k]++
            rps[k, n[k]] = $3; p99[k, n[k]] = $4; us[k, n[k]] = $8
            # A redirect is a 3xx: wrk counts it as fine. Only socket errors count.
            err[k] += $6; if ($7 > noise) noise = $7
        }
        END {
            split("redirect nginx route", ks, " ")
            for (i in ks) {
                k = ks[i]
                delete x; for (j = 1; j <= n[k]; j++) x[j] = rps[k, j]; R[k] = med(x, n[k])
                delete x; for (j = 1; j <= n[k]; j++) x[j] = p99[k, j]; P[k] = med(x, n[k])
                delete x; for (j = 1; j <= n[k]; j++) x[j] = us[k, j]; U[k] = med(x, n[k])
            }
            printf "%-6s | %11.0f %11.0f %5.2f | %7.2fms %7.2fms %5.2f | %6.2f / %6.2f %5.2f | %11.0f %7.2fms | %4.0f%% | %d/%d/%d\n",
                m, R["redirect"], R["nginx"], R["nginx"] ? R["redirect"] / R["nginx"] : 0,
                P["redirect"], P["nginx"], P["nginx"] ? P["redirect"] / P["nginx"] : 0,
                U["redirect"], U["nginx"], U["nginx"] ? U["redirect"] / U["nginx"] : 0,
                R["route"], P["route"], noise, err["redirect"], err["nginx"], err["route"]
        }' "$SUMMARY"
done
echo "goal: strom redirects/s >= 1.0x nginx's bare 302s, p99 <= 1.5x"
