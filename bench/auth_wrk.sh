#!/usr/bin/env bash
# Cost of play authorization with cached decisions: HLS requests/s of a node
# with `on_play` against the same node without it, measured in one run.
#
# Starts on 127.0.0.1 two release strom nodes with the same streams, both
# `input builtin://demo` (the embedded assets/demo.ts looped in real time):
#   ch   the default window (6 segments): its media playlist is measured;
#   seg  a window of SEGMENT_COUNT segments (computed from the run length),
#        so the one segment measured stays listed for the whole segment phase.
# The "auth" node has `on_play http://127.0.0.1:BACKEND_PORT/auth;` in both
# streams; the backend (bench/auth_backend.py) allows everything with
# `X-AuthDuration: 3600` and counts its calls. The "no-auth" node has no
# on_play.
#
# Two phases, each after its own warm-up on both nodes alike: GET
# STREAM/index.m3u8?token=t, then STREAM/mono.m3u8?token=t. On the auth node
# this opens the session of (STREAM, t, 127.0.0.1), one backend call; its
# child URIs then carry `token=t&sid=...`.
#   segment:  stream seg. The segment measured is the newest one of the auth
#             node's playlist; on the no-auth node it is the one of its newest
#             5 with the closest size (the same position in the demo loop).
#   playlist: ch/mono.m3u8?token=t on both.
# Each phase runs wrk -t2 -c100 -dDUR REPEAT times per node, nodes
# interleaved (no-auth, auth, no-auth, auth, ...). Every wrk connection comes
# from 127.0.0.1 with token t, so on the auth node all of them belong to the
# warm-up's session: every request takes the cached path, and none should
# call the backend. (With DUR above ~25 s the session may idle out between
# two auth runs, session_timeout being 30 s, and be re-opened: a few calls.)
#
# Prints per URL the median req/s of each node, every run, the ratio
# auth/no-auth, and PASS (ratio >= 0.90: the cached path costs at most 10% of
# throughput) or FAIL. A run with more than 1% non-2xx responses, or none at
# all, is invalid: it is listed with a '!' and left out of the median, and the
# verdict of its URL is INVALID. The backend's calls are printed per warm-up
# and per phase's runs. Exits 0 whatever the verdict (a measurement, not a
# test); non-zero only when the setup fails.
#
# Authorization counts as active when the auth node's segment URI carries a
# sid, the backend was called, and the same segment without its sid is
# refused (403); otherwise the report says that it is NOT active and the two
# nodes are the same. A binary that does not implement on_play yet (it
# refuses to start with it unless --allow-unimplemented) is run with that flag.
#
# Modes (MODE): pinned (default): both nodes on CPU 0 (each with one tokio
# worker), wrk on CPU 1. auto: nothing pinned, wrk shares the CPUs.
# The machine may be shared: the CPU that processes outside this script's
# process group used during every run is measured (/proc/stat minus the
# group's own time), and a run where it exceeded FOREIGN_MAX % of one core is
# repeated, at most RETRIES times per phase (the segment window is sized for
# those repeats). Before each phase the script waits, at most QUIET_WAIT s,
# for 5 s in which the others stay below FOREIGN_MAX.
#
# Ports are below the ephemeral range (32768-60999 on Linux), so no client
# socket of another program can be holding one when the nodes start.
#
# Usage: bench/auth_wrk.sh [SECONDS_PER_RUN]   (default 10)
# Env: DURATION (same as the argument), REPEAT (3), MODE (pinned|auto),
#      CONNS (100), NOAUTH_PORT (18380), AUTH_PORT (18381), BACKEND_PORT (18382),
#      FOREIGN_MAX (10), RETRIES (2), RETRY_WAIT (10 s), QUIET_WAIT (300 s),
#      SEGMENT_COUNT (computed),
#      STROM_BIN (skip the build and use this binary), OUT (dir for raw output).
# The build is `cargo build --release -p strom` into $CARGO_TARGET_DIR when set,
# else target/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${1:-${DURATION:-10}}
REPEAT=${REPEAT:-3}
MODE=${MODE:-pinned}
CONNS=${CONNS:-100}
NOAUTH_PORT=${NOAUTH_PORT:-18380}
AUTH_PORT=${AUTH_PORT:-18381}
BACKEND_PORT=${BACKEND_PORT:-18382}
FOREIGN_MAX=${FOREIGN_MAX:-10}
RETRIES=${RETRIES:-2}
RETRY_WAIT=${RETRY_WAIT:-10}
QUIET_WAIT=${QUIET_WAIT:-300}
TOKEN=t
WORK=$(mktemp -d /tmp/bench-auth.XXXXXX)
OUT=${OUT:-$WORK/raw}
mkdir -p "$OUT"

. "$ROOT/bench/lib.sh"

[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "run length must be whole seconds, got '$DURATION'"
[[ $MODE == pinned || $MODE == auto ]] || die "MODE must be pinned or auto, got '$MODE'"

# --- tools -------------------------------------------------------------------
need wrk wrk
need curl curl
need taskset util-linux
need python3 python3
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- strom build ---------------------------------------------------------------
strom_under_test

UNIMPLEMENTED=()
if "$STROM" run --help 2>/dev/null | grep -q -- '--allow-unimplemented'; then
    UNIMPLEMENTED=(--allow-unimplemented)
    log "this strom does not implement on_play yet: the auth node runs with --allow-unimplemented (NO authorization)"
fi

# The measured segment must stay listed from the warm-up to the end of the
# segment phase: 2·REPEAT runs plus the repeats allowed, with slack; 2 s segments.
PHASE_SECS=$((2 * REPEAT * (DURATION + 1) + RETRIES * (DURATION + 1 + RETRY_WAIT) + 20))
SEGMENT_COUNT=${SEGMENT_COUNT:-$(((PHASE_SECS + 1) / 2))}
if ((SEGMENT_COUNT > 100)); then
    log "a segment phase of ~${PHASE_SECS}s needs more than segment_count 100 (its maximum); the segment may leave the window"
    SEGMENT_COUNT=100
fi
((SEGMENT_COUNT >= 6)) || SEGMENT_COUNT=6

# --- process management ----------------------------------------------------------
PIDS=()
cleanup() { # TERM, then KILL whatever is still there after 5 s (a stuck node)
    local p i
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && break; done
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap 'cleanup; rm -f "$WORK/server-under-test"; log "raw output and logs: $OUT $WORK"' EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$NOAUTH_PORT" "$AUTH_PORT" "$BACKEND_PORT"; do
    port_free "$p" || die "127.0.0.1:$p is already in use; set NOAUTH_PORT/AUTH_PORT/BACKEND_PORT"
done

PIN_SRV=()
WRK_PIN=()
if [[ $MODE == pinned ]]; then
    PIN_SRV=(taskset -c 0)
    WRK_PIN=(taskset -c 1)
fi

node_conf() { # node_conf PORT ON_PLAY_LINE
    cat <<EOF
http 127.0.0.1:$1;
stream ch { input builtin://demo; $2 }
stream seg { input builtin://demo; segment_count $SEGMENT_COUNT; $2 }
EOF
}
node_conf "$NOAUTH_PORT" "" >"$WORK/noauth.conf"
node_conf "$AUTH_PORT" "on_play http://127.0.0.1:$BACKEND_PORT/auth;" >"$WORK/auth.conf"

python3 "$ROOT/bench/auth_backend.py" "$BACKEND_PORT" "$WORK/backend-calls.log" 2>"$WORK/backend.log" &
PIDS+=($!)
BACKEND_PID=$!
RUST_LOG=${RUST_LOG:-info} "${PIN_SRV[@]}" "$STROM" run -c "$WORK/noauth.conf" >"$WORK/noauth.log" 2>&1 &
PIDS+=($!)
NOAUTH_PID=$!
RUST_LOG=${RUST_LOG:-info} "${PIN_SRV[@]}" "$STROM" run -c "$WORK/auth.conf" "${UNIMPLEMENTED[@]}" >"$WORK/auth.log" 2>&1 &
PIDS+=($!)
AUTH_PID=$!

alive() { # alive PID NAME LOG
    kill -0 "$1" 2>/dev/null && return 0
    log "$2 (pid $1) is gone; its log ends with:"
    tail -5 "$3" >&2
    exit 1
}

# window_len PORT STREAM: segments listed now, from the API (no playlist
# request, so no session and no backend call).
window_len() {
    curl -sf -m 5 "http://127.0.0.1:$1/api/v1/streams/$2" 2>/dev/null |
        sed -n 's/.*"first_seq":\([0-9]*\),"last_seq":\([0-9]*\).*/\1 \2/p' |
        awk '{ print $2 - $1 + 1 }'
}

backend_count() { curl -sf -m 5 "http://127.0.0.1:$BACKEND_PORT/count" || echo "backend unreachable"; }

log "mode $MODE: starting the backend and two nodes (seg window: $SEGMENT_COUNT segments)"
for ((i = 0; ; i++)); do
    sleep 0.5
    alive "$BACKEND_PID" backend "$WORK/backend.log"
    alive "$NOAUTH_PID" "no-auth node" "$WORK/noauth.log"
    alive "$AUTH_PID" "auth node" "$WORK/auth.log"
    ready=1
    for port in "$NOAUTH_PORT" "$AUTH_PORT"; do
        for s in ch seg; do
            n=$(window_len "$port" "$s")
            ((${n:-0} >= 6)) || ready=0
        done
    done
    curl -sf -m 5 -o /dev/null "http://127.0.0.1:$BACKEND_PORT/count" || ready=0
    ((ready)) && break
    ((i < 120)) || die "the nodes did not list 6 segments per stream within 60 s"
done

# --- noise from other processes -----------------------------------------------------
# CPU time of the whole machine (user, nice, system from /proc/stat; not
# irq/softirq, which loopback traffic of the run itself fills) minus that of
# this script's process group (nodes, backend, wrk, and through the shell's
# cutime/cstime the wrk that just exited).
PGRP=$(awk '{ s = substr($0, index($0, ") ") + 2); split(s, f, " "); print f[3] }' /proc/$$/stat)
cpu_snap() { # cpu_snap FILE: "machine_ticks group_ticks"
    {
        awk '$1 == "cpu" { print $2 + $3 + $4; exit }' /proc/stat
        awk -v pg="$PGRP" '{
            split(substr($0, index($0, ") ") + 2), f, " ")
            if (f[3] == pg) s += f[12] + f[13] + f[14] + f[15]
        } END { print s + 0 }' /proc/[0-9]*/stat 2>/dev/null
    } | paste -sd' ' >"$1"
}
foreign_pct() { # foreign_pct FILE SECONDS: % of one core used by others since the snapshot
    cpu_snap "$1.end"
    awk -v hz="$(getconf CLK_TCK)" -v secs="$2" 'NR == 1 { m = $1; g = $2; next }
        { d = ($1 - m) - ($2 - g); if (d < 0) d = 0; printf "%.1f\n", d / hz / secs * 100 }' "$1" "$1.end"
}

# --- wrk -----------------------------------------------------------------------------
# parse_wrk FILE -> "req_per_s requests non2xx sock_errors p99_ms"
parse_wrk() {
    awk '
        function ms(s,   v) { v = s + 0; if (s ~ /us$/) v /= 1000; else if (s ~ /[0-9]s$/) v *= 1000; else if (s ~ /m$/) v *= 60000; return v }
        / requests in / { n = $1 }
        /Requests\/sec:/ { rps = $2 }
        /^ +99%/ { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
        END { printf "%s %d %d %d %s\n", rps + 0, n, bad, err, p99 + 0 }' "$1"
}

SUMMARY=$WORK/summary.txt
: >"$SUMMARY"
RETRIES_LEFT=0

# run_one WHAT NODE REP URL: one wrk run, repeated while other processes
# disturbed it and the phase has repeats left; appends to $SUMMARY
# "what node rep req/s requests non2xx sockerr p99 noise valid status_before status_after".
run_one() {
    local what=$1 node=$2 rep=$3 url=$4 file r f valid before after
    file=$OUT/$what-$node-$rep.txt
    while :; do
        before=$(status_of "$url")
        cpu_snap "$WORK/foreign"
        "${WRK_PIN[@]}" wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency "$url" >"$file" 2>&1 || true
        f=$(foreign_pct "$WORK/foreign" "$DURATION")
        after=$(status_of "$url")
        alive "$NOAUTH_PID" "no-auth node" "$WORK/noauth.log"
        alive "$AUTH_PID" "auth node" "$WORK/auth.log"
        r=$(parse_wrk "$file")
        if awk -v f="$f" -v m="$FOREIGN_MAX" 'BEGIN { exit !(f > m) }' && ((RETRIES_LEFT > 0)); then
            RETRIES_LEFT=$((RETRIES_LEFT - 1))
            log "$what $node #$rep: other processes used $f% of a core: repeating it in ${RETRY_WAIT}s"
            sleep "$RETRY_WAIT"
            continue
        fi
        break
    done
    # Valid: some requests, and non-2xx at most 1% of them.
    valid=$(echo "$r" | awk '{ print ($2 > 0 && $3 * 100 <= $2) ? 1 : 0 }')
    log "$what $node #$rep: $(echo "$r" | awk '{ printf "%.0f req/s, %d requests, %d non-2xx, %d socket errors, p99 %.2f ms", $1, $2, $3, $4, $5 }'), noise $f%, status before/after $before/$after$( ((valid)) || echo ', INVALID')"
    echo "$what $node $rep $r $f $valid $before $after" >>"$SUMMARY"
}

# quiet_wait: before a phase, wait (at most QUIET_WAIT s) for 5 s in which
# other processes use at most FOREIGN_MAX % of a core.
quiet_wait() {
    local start=$SECONDS f
    while :; do
        cpu_snap "$WORK/quiet"
        sleep 5
        f=$(foreign_pct "$WORK/quiet" 5)
        awk -v f="$f" -v m="$FOREIGN_MAX" 'BEGIN { exit !(f <= m) }' && return 0
        if ((SECONDS - start >= QUIET_WAIT)); then
            log "other processes still use $f% of a core after ${QUIET_WAIT}s: measuring anyway"
            return 0
        fi
        log "other processes use $f% of a core: waiting for a quieter moment"
    done
}

# phase WHAT NOAUTH_URL AUTH_URL
phase() {
    local rep
    RETRIES_LEFT=$RETRIES
    for ((rep = 1; rep <= REPEAT; rep++)); do
        run_one "$1" noauth "$rep" "$2"
        run_one "$1" auth "$rep" "$3"
    done
}

# --- requests outside wrk ----------------------------------------------------------------
status_of() { curl -s -m 10 -o /dev/null -w '%{http_code}' "$1" || true; }
fetch() { # fetch URL FILE -> HTTP status; body in FILE
    curl -s -m 10 -o "$2" -w '%{http_code}' "$1" || true
}
BASE_NOAUTH=http://127.0.0.1:$NOAUTH_PORT
BASE_AUTH=http://127.0.0.1:$AUTH_PORT
# warm_up STREAM: what a player does first, on both nodes: the master
# playlist, then the media playlist (into $WORK/warm-NODE-STREAM.m3u8). On the
# auth node this opens the session of (STREAM, token, 127.0.0.1): one backend call.
warm_up() {
    local node base path st
    for node in noauth auth; do
        base=BASE_${node^^}
        for path in index.m3u8 mono.m3u8; do
            st=$(fetch "${!base}/$1/$path?token=$TOKEN" "$WORK/warm-$node-$1-$path")
            [[ $st == 200 ]] || die "warm-up: $node $1/$path?token=$TOKEN answered $st"
        done
    done
}
calls() { backend_count | awk '{ print $2 + 0 }'; }

# --- segment phase ------------------------------------------------------------------------
quiet_wait
warm_up seg
# The auth node's newest segment, and the one of the same size on the no-auth node.
AUTH_SEG_URI=$(grep -v '^#' "$WORK/warm-auth-seg-mono.m3u8" | grep . | tail -1) || die "warm-up: the auth node's seg playlist lists no segment"
AUTH_SEG_URL=$BASE_AUTH/seg/$AUTH_SEG_URI
AUTH_SEG_SIZE=$(curl -sf -m 10 -o /dev/null -w '%{size_download}' "$AUTH_SEG_URL") || die "warm-up: $AUTH_SEG_URL failed"
best=-1
while read -r uri; do
    sz=$(curl -sf -m 10 -o /dev/null -w '%{size_download}' "$BASE_NOAUTH/seg/$uri") || continue
    d=$((sz > AUTH_SEG_SIZE ? sz - AUTH_SEG_SIZE : AUTH_SEG_SIZE - sz))
    if ((best < 0 || d < best)); then best=$d; NOAUTH_SEG_URI=$uri; NOAUTH_SEG_SIZE=$sz; fi
done < <(grep -v '^#' "$WORK/warm-noauth-seg-mono.m3u8" | grep . | tail -5 | tac)
((best >= 0)) || die "warm-up: no segment of the no-auth node could be fetched"
NOAUTH_SEG_URL=$BASE_NOAUTH/seg/$NOAUTH_SEG_URI
# Authorization is in force when the segment URI carries a sid, the backend
# was asked, and the same segment without its sid is refused.
if [[ $AUTH_SEG_URI == *"sid="* ]]; then SID=yes; else SID=no; fi
NOSID_STATUS=$(status_of "$BASE_AUTH/seg/${AUTH_SEG_URI%%\?*}?token=$TOKEN")
SEG_WARM=$(backend_count)
if [[ ${#UNIMPLEMENTED[@]} -eq 0 && $SID == yes && $SEG_WARM != "total 0 "* && $NOSID_STATUS == 403 ]]; then
    AUTH_ACTIVE=yes
else
    AUTH_ACTIVE=no
    log "authorization is NOT active on the auth node (segment URI with sid: $SID; the segment without sid: $NOSID_STATUS; backend: $SEG_WARM): both nodes are the same"
fi
log "the auth node answers the segment without its sid with $NOSID_STATUS"
log "segments: no-auth $NOAUTH_SEG_URL ($NOAUTH_SEG_SIZE B), auth $AUTH_SEG_URL ($AUTH_SEG_SIZE B)"
log "backend after the seg warm-up: $SEG_WARM"
C0=$(calls)
phase segment "$NOAUTH_SEG_URL" "$AUTH_SEG_URL"
C1=$(calls)

# --- playlist phase -------------------------------------------------------------------------
# Its own warm-up right before it: the ch session is fresh (not idled out
# during the segment phase), as for a player that keeps polling.
quiet_wait
warm_up ch
PL_PATH="ch/mono.m3u8?token=$TOKEN"
NOAUTH_PL_SIZE=$(stat -c %s "$WORK/warm-noauth-ch-mono.m3u8")
AUTH_PL_SIZE=$(stat -c %s "$WORK/warm-auth-ch-mono.m3u8")
log "playlists ($PL_PATH): no-auth $NOAUTH_PL_SIZE B, auth $AUTH_PL_SIZE B"
log "backend after the ch warm-up: $(backend_count)"
C2=$(calls)
phase playlist "$BASE_NOAUTH/$PL_PATH" "$BASE_AUTH/$PL_PATH"
C3=$(calls)
END_COUNT=$(backend_count)

# --- report ---------------------------------------------------------------------------
echo
echo "HLS with authorization (cached decisions) vs without; wrk -t2 -c$CONNS -d${DURATION}s, median of $REPEAT, nodes interleaved; mode $MODE; $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); $(date -u +%F)"
echo "strom $REV (binary from $(date -r "$WORK/server-under-test" '+%F %T')); authorization active on the auth node: $AUTH_ACTIVE (its segment without sid: $NOSID_STATUS)"
echo "segment: no-auth $NOAUTH_SEG_URI ($NOAUTH_SEG_SIZE B), auth $AUTH_SEG_URI ($AUTH_SEG_SIZE B)"
echo "playlist: $PL_PATH, no-auth $NOAUTH_PL_SIZE B, auth $AUTH_PL_SIZE B"
echo "runs marked ! are invalid (non-2xx > 1% or no requests) and left out of the median; noise = worst CPU % of one core used by other processes in a run; (noisy): above FOREIGN_MAX=$FOREIGN_MAX%, measure again"
printf '%-8s | %13s %13s %6s | %-26s | %-26s | %15s | %13s | %5s | %s\n' \
    what "no-auth req/s" "auth req/s" ratio "runs no-auth" "runs auth" "p99 no-auth/auth" "non-2xx n/a" noise verdict
for what in segment playlist; do
    awk -v w="$what" -v max="$FOREIGN_MAX" '
        function med(a, n,   i, j, t) {
            for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return n == 0 ? 0 : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
        }
        $1 == w {
            k = $2
            runs[k] = runs[k] sprintf("%s%.0f%s", runs[k] == "" ? "" : " ", $4, $10 ? "" : "!")
            bad[k] += $6
            if ($9 > noise) noise = $9
            if ($10) { n[k]++; rps[k, n[k]] = $4; p99[k, n[k]] = $8 } else invalid = 1
        }
        END {
            for (s = 0; s < 2; s++) {
                k = s ? "auth" : "noauth"
                delete x; for (i = 1; i <= n[k]; i++) x[i] = rps[k, i]; R[k] = med(x, n[k])
                delete x; for (i = 1; i <= n[k]; i++) x[i] = p99[k, i]; P[k] = med(x, n[k])
            }
            ratio = R["noauth"] > 0 ? R["auth"] / R["noauth"] : 0
            verdict = invalid || !n["auth"] || !n["noauth"] ? "INVALID" : (ratio >= 0.90 ? "PASS" : "FAIL")
            if (noise > max) verdict = verdict " (noisy)"
            printf "%-8s | %13.0f %13.0f %6.3f | %-26s | %-26s | %6.2f/%6.2f ms | %6d/%6d | %4.0f%% | %s\n",
                w, R["noauth"], R["auth"], ratio, runs["noauth"], runs["auth"], P["noauth"], P["auth"], bad["noauth"], bad["auth"], noise, verdict
        }' "$SUMMARY"
done
echo "goal: auth/no-auth >= 0.90 for both (the cached path costs at most 10% of throughput)"
echo "backend calls: seg warm-up $((C0)), during the segment runs $((C1 - C0)), ch warm-up $((C2 - C1)), during the playlist runs $((C3 - C2)); in all: $END_COUNT"
echo "(expected: 1 per warm-up on the auth node, 0 during the runs)"
if [[ $AUTH_ACTIVE == no ]]; then
    echo "NOTE: authorization was not active on the auth node, so this compares two identical nodes."
fi
exit 0
