#!/usr/bin/env bash
# DVR benchmarks (issue 12, "Performance"): start-up over a week of archive,
# 24-hour archive playlists, archive downloads against nginx, and the
# writer's CPU per channel.
#
# Usage: bench/dvr.sh [startup] [playlist] [download] [writer]   (all by default)
#
#   startup   A synthetic archive of DAYS (7) days × CHANNELS (20) channels of
#             SEG_SECS (2) s segments of SEG_BYTES (300) bytes is written with
#             the node's own writer (crates/strom-node/examples/dvr_synth.rs).
#             Then, REPEAT times per cache state, strom starts with CHANNELS
#             streams (`input INPUT; dvr ARCHIVE 8d;`) and the script polls,
#             from the moment it launched `strom run -c CONF`:
#               - /healthz (the process is up and serving),
#               - /chN/archive-FROM-3600.m3u8 of the OLDEST hour of the last
#                 channel until it answers 200,
#               - /api/v1/streams/chN/dvr/ranges until it answers 200,
#             and then asks every channel's ranges once (each reads all of its
#             hourly indexes). It reports the times since launch, the RSS
#             after start-up and after the ranges of every channel.
#             Cache states (STARTUP_MODES, default "warm cold"): warm = the
#             archive in the page cache (a process restart); cold = every
#             archive file evicted from the page cache first
#             (POSIX_FADV_DONTNEED per file: only this archive, nothing else
#             on the machine; directory and inode caches stay warm).
#             Goal (issue): under 1 s until archive URLs answer.
#   playlist  Latency of archive-FROM-86400.m3u8 (43,200 entries of 2 s) over
#             HTTP on a freshly started node on the same archive:
#               cold: the first request of a day no one asked for yet, one per
#                     channel (its 25 hourly indexes are read from disk/page
#                     cache, checked and parsed);
#               warm: PL_REQUESTS (200) requests of one day on one keep-alive
#                     connection (curl -w time_total per request).
#             With wrk present, also wrk -t1 -c1 and -t2 -c4 (--latency).
#             Goal (issue): p99 under 20 ms.
#   download  GET /dl1/archive-FROM-DL_SECONDS.ts (default one hour) of a
#             channel of realistic-size segments (DL_BYTES, 500 KB each: a
#             video track of 25 fps with 8× keyframes plus 128k AAC, the
#             channel dvr_synth writes from 20 kB up), from the page cache,
#             against nginx serving strom's own response saved to a file
#             (sendfile on). Same run, interleaved, REPEAT times each:
#             curl -o /dev/null -w '%{speed_download}', and wrk -t2 -c4 when
#             present. Placements (DL_MODES, default "pinned auto"): pinned =
#             both servers on CPU 0 (strom: one tokio worker; nginx
#             worker_processes 1), the client on CPU 1; auto = nothing pinned,
#             nginx worker_processes auto. Goal (issue): ratio ≥ 1.0.
#   writer    CPU of strom with W_CHANNELS (8) `builtin://demo` channels for
#             W_MEASURE (60) s after W_WARMUP (10) s, without `dvr`, then with
#             `dvr`, W_REPEAT (3) times alternating; utime+stime from
#             /proc/PID/stat. Prints CPU % of one core per channel with and
#             without, the writer's extra per channel, and per segment
#             written. W_PLACE: pinned (strom on CPU 0, default) or unpinned.
#             The writer's share is small against the clock tick (10 ms) and
#             the noise of a shared machine, so the same write path is also
#             timed in isolation: dvr_synth writes 15 minutes of one channel
#             with segments of the size the node recorded (Archive::write of
#             encode_segment's message, as the node's writer task does), and
#             its user+sys CPU per segment is printed.
#
# The machine may be shared: where a figure is CPU time, the CPU that
# processes outside this script's process group used meanwhile is printed
# as "noise" (% of one core, from /proc).
#
# Env: CHANNELS (20), DAYS (7), SEG_SECS (2), SEG_BYTES (300), REPEAT (5),
#      INPUT (builtin://demo), STARTUP_MODES ("warm cold"), PL_REQUESTS (200),
#      DL_SECONDS (3600), DL_BYTES (500000), DL_MODES ("pinned auto"),
#      WRK_SECS (10), W_CHANNELS (8), W_MEASURE (60), W_WARMUP (10),
#      W_REPEAT (3), W_PLACE (pinned), HTTP_PORT (28480), NGINX_PORT (28481),
#      WAIT (60: longest wait for one answer, s), FOREIGN_MAX (20) and
#      QUIET_WAIT (120): before each measured phase the script waits at most
#      QUIET_WAIT s for 5 s in which other processes use at most FOREIGN_MAX %
#      of one core,
#      ARCHIVE (reuse an archive dvr_synth wrote with the same CHANNELS and
#      prefix "ch"; it is not deleted), KEEP=1 (keep the temp dir),
#      STROM_BIN / SYNTH_BIN (skip the builds and use these binaries).
# Builds `cargo build --release -p strom` and `--example dvr_synth -p strom-node`
# into $CARGO_TARGET_DIR when set, else target/. Everything listens on
# 127.0.0.1; temp files go to a mktemp dir under /tmp, deleted on exit with
# every process started here (KEEP=1 keeps the files).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHANNELS=${CHANNELS:-20}
DAYS=${DAYS:-7}
SEG_SECS=${SEG_SECS:-2}
SEG_BYTES=${SEG_BYTES:-300}
REPEAT=${REPEAT:-5}
INPUT=${INPUT:-builtin://demo}
STARTUP_MODES=${STARTUP_MODES:-"warm cold"}
PL_REQUESTS=${PL_REQUESTS:-200}
DL_SECONDS=${DL_SECONDS:-3600}
DL_BYTES=${DL_BYTES:-500000}
DL_MODES=${DL_MODES:-"pinned auto"}
WRK_SECS=${WRK_SECS:-10}
W_CHANNELS=${W_CHANNELS:-8}
W_MEASURE=${W_MEASURE:-60}
W_WARMUP=${W_WARMUP:-10}
W_REPEAT=${W_REPEAT:-3}
W_PLACE=${W_PLACE:-pinned}
HTTP_PORT=${HTTP_PORT:-28480}
NGINX_PORT=${NGINX_PORT:-28481}
WAIT=${WAIT:-60}
FOREIGN_MAX=${FOREIGN_MAX:-20}
QUIET_WAIT=${QUIET_WAIT:-120}
HZ=$(getconf CLK_TCK)
BENCHES=${*:-"startup playlist download writer"}

. "$ROOT/bench/lib.sh"

for b in $BENCHES; do
    case $b in startup | playlist | download | writer) ;; *) die "unknown benchmark '$b' (startup, playlist, download, writer)" ;; esac
done
[[ $CHANNELS =~ ^[1-9][0-9]*$ && $REPEAT =~ ^[1-9][0-9]*$ ]] || die "CHANNELS and REPEAT must be positive numbers"

WORK=$(mktemp -d /tmp/bench-dvr.XXXXXX)

# --- tools ---------------------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }
MISSING=()
for t in curl nginx wrk ffprobe taskset python3; do have "$t" || MISSING+=("$t"); done
if ((${#MISSING[@]})); then
    log "missing tools: ${MISSING[*]}  (Debian: apt-get install curl nginx wrk ffmpeg util-linux python3)"
    have curl || die "curl is required by every benchmark here"
    have nginx || log "without nginx the download benchmark is skipped"
    have wrk || log "without wrk the wrk rows of playlist and download are skipped"
    have ffprobe || log "without ffprobe (ffmpeg) the downloaded TS is not checked"
    have taskset || log "without taskset nothing is pinned (pinned placements run unpinned)"
    have python3 || log "without python3 the cold start-up evicts the page cache with dd, file by file (slower)"
fi
ulimit -n 65536 2>/dev/null || true

# --- builds --------------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
build() { # build WHAT CARGO_ARGS...: cargo build, or keep the existing binary
    local what=$1
    shift
    log "cargo build --release $* (target dir $TARGET)"
    if ! (cd "$ROOT" && cargo build --release "$@" >>"$WORK/build.log" 2>&1); then
        tail -20 "$WORK/build.log" >&2
        log "build of $what failed; using an existing binary if there is one"
    fi
}
if [[ -n "${STROM_BIN:-}" ]]; then STROM=$STROM_BIN; else
    build strom -p strom
    STROM=$TARGET/release/strom
fi
[[ -x $STROM ]] || die "no strom binary at $STROM"
if [[ -n "${SYNTH_BIN:-}" ]]; then SYNTH=$SYNTH_BIN; else
    if [[ $BENCHES == *startup* || $BENCHES == *playlist* || $BENCHES == *download* ]]; then
        build dvr_synth -p strom-node --example dvr_synth
    fi
    SYNTH=$TARGET/release/examples/dvr_synth
fi
# A copy under another name: fixed for the whole run even if the target dir is
# rebuilt meanwhile, and out of reach of a `pkill strom` from elsewhere.
cp -p "$STROM" "$WORK/server-under-test"
REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')
log "strom $REV, binary $STROM from $(date -r "$STROM" '+%F %T'); work dir $WORK"
STROM=$WORK/server-under-test

# --- processes -------------------------------------------------------------------
PIDS=()
stop_all() { # TERM, then KILL what is still there after 5 s
    local p i
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        local any=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && any=1; done
        ((any)) || break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
on_exit() {
    stop_all
    if [[ "${KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$HTTP_PORT" "$NGINX_PORT"; do
    port_free "$p" || die "127.0.0.1:$p is already in use; set HTTP_PORT/NGINX_PORT"
done
PIN0=()
PIN1=()
if have taskset; then
    PIN0=(taskset -c 0)
    PIN1=(taskset -c 1)
fi

now_ns() { date +%s%N; }
ms_since() { echo $((($(now_ns) - $1) / 1000000)); }
rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# pct P: the P-th percentile (nearest rank) of the numbers on stdin.
pct() { sort -g | awk -v p="$1" '{ a[NR] = $1 } END { if (!NR) { print "-"; exit } i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print a[i] }'; }
# median: of the numbers on stdin (the mean of the middle two for an even count).
median() { sort -g | awk '{ a[NR] = $1 } END { if (!NR) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# start_strom CONF LOG [PIN...]: starts strom, sets STROM_PID and T_LAUNCH (ns).
start_strom() {
    local conf=$1 logf=$2
    shift 2
    T_LAUNCH=$(now_ns)
    RUST_LOG=${RUST_LOG:-info} "$@" "$STROM" run -c "$conf" >>"$logf" 2>&1 &
    STROM_PID=$!
    PIDS+=("$STROM_PID")
}
alive() { # alive LOG
    kill -0 "$STROM_PID" 2>/dev/null && return 0
    log "strom (pid $STROM_PID) is gone; its log ends with:"
    tail -5 "$1" >&2
    exit 1
}
# poll_200 URL: polls until URL answers 200 (every ~5 ms, at most WAIT s);
# prints the ms since T_LAUNCH.
poll_200() {
    local code deadline=$(($(now_ns) + WAIT * 1000000000))
    while :; do
        code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$1" 2>/dev/null || true)
        [[ $code == 200 ]] && break
        (($(now_ns) < deadline)) || { log "no 200 from $1 within ${WAIT}s (last: $code)"; return 1; }
        kill -0 "$STROM_PID" 2>/dev/null || { log "strom exited while polling $1"; return 1; }
        sleep 0.005
    done
    ms_since "$T_LAUNCH"
}
stop_strom() { stop_all; }

# Noise: CPU time of the whole machine (user, nice, system from /proc/stat;
# not irq/softirq, which the run's own loopback traffic fills) minus that of
# this script's process group (strom, nginx, curl, wrk; through the shell's
# cutime/cstime the clients that just exited).
PGRP=$(awk '{ s = substr($0, index($0, ") ") + 2); split(s, f, " "); print f[3] }' /proc/$$/stat)
foreign_snap() { # foreign_snap FILE: "machine_ticks group_ticks"
    {
        awk '$1 == "cpu" { print $2 + $3 + $4; exit }' /proc/stat
        awk -v pg="$PGRP" '{
            split(substr($0, index($0, ") ") + 2), f, " ")
            if (f[3] == pg) s += f[12] + f[13] + f[14] + f[15]
        } END { print s + 0 }' /proc/[0-9]*/stat 2>/dev/null
    } | paste -sd' ' >"$1"
}
foreign_pct() { # foreign_pct FILE SECONDS: % of one core the others used since the snapshot
    foreign_snap "$1.end"
    awk -v hz="$HZ" -v secs="$2" 'NR == 1 { m = $1; g = $2; next }
        { g = $2 - g; if (g < 0) g = 0; d = ($1 - m) - g; if (d < 0) d = 0; printf "%.1f\n", d / hz / secs * 100 }' "$1" "$1.end"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# wait_quiet: waits, at most QUIET_WAIT s, for 5 s in which the others use at
# most FOREIGN_MAX % of one core; measures anyway after that.
wait_quiet() {
    local t0 n
    t0=$(now_ns)
    while :; do
        foreign_snap "$WORK/quiet"
        sleep 5
        n=$(foreign_pct "$WORK/quiet" 5)
        awk -v n="$n" -v m="$FOREIGN_MAX" 'BEGIN { exit !(n <= m) }' && return 0
        if (($(ms_since "$t0") >= QUIET_WAIT * 1000)); then
            log "the machine is still busy (others used $n% of a core): measuring anyway"
            return 0
        fi
        log "waiting for a quiet machine (others used $n% of a core over 5 s)"
    done
}

# --- synthetic archives ------------------------------------------------------------
# oldest_from DIR NAME: Unix start of the oldest hour file of stream NAME.
oldest_from() {
    local day file
    day=$(find "$1/$2" -mindepth 1 -maxdepth 1 -type d -name '????-??-??' -printf '%f\n' | sort | head -1)
    [[ -n $day ]] || die "no archive of $2 under $1"
    file=$(find "$1/$2/$day" -name '*.wire' -printf '%f\n' | sort | head -1)
    date -u -d "$day ${file%%-*}:00:00" +%s
}
# synth ARGS...: runs dvr_synth, logs its command and timing line.
synth() {
    [[ -x $SYNTH ]] || die "no dvr_synth binary at $SYNTH"
    log "synthetic archive: dvr_synth $*"
    "$SYNTH" "$@" >"$WORK/synth.out" 2>"$WORK/synth.err" || { cat "$WORK/synth.err" >&2; die "dvr_synth failed"; }
    log "$(cat "$WORK/synth.err")"
    log "$(cat "$WORK/synth.out")"
}
ARCH=""
ensure_archive() {
    [[ -n $ARCH ]] && return 0
    if [[ -n "${ARCHIVE:-}" ]]; then
        ARCH=$ARCHIVE
        [[ -d $ARCH/ch$CHANNELS ]] || die "ARCHIVE=$ARCH has no ch$CHANNELS"
        log "reusing the archive $ARCH ($(du -sh "$ARCH" | cut -f1))"
        return 0
    fi
    ARCH=$WORK/archive
    # Segments: DAYS × 86400 / SEG_SECS per channel; each its message plus a 48-byte index entry.
    local need_mb avail_mb
    need_mb=$(awk -v c="$CHANNELS" -v d="$DAYS" -v s="$SEG_SECS" -v b="$SEG_BYTES" 'BEGIN { printf "%d", c * d * 86400 / s * (b + 48) / 1e6 + 1 }')
    avail_mb=$(df -Pm /tmp | awk 'NR == 2 { print $4 }')
    log "df -h /tmp: $(df -h /tmp | awk 'NR == 2 { print $2 " size, " $4 " free (" $5 " used)" }'); the archive needs ~${need_mb} MB"
    ((avail_mb > 2 * need_mb + 1024)) || die "not enough free space in /tmp for a ${need_mb} MB archive"
    synth "$ARCH" "$CHANNELS" "$DAYS" "$SEG_SECS" "$SEG_BYTES"
    log "archive on disk: $(du -sh "$ARCH" | cut -f1) in $(find "$ARCH" -type f | wc -l) files"
}

# evict DIR: drops DIR's files from the page cache (dirty pages written first).
evict() {
    sync -f "$1" 2>/dev/null || sync
    if have python3; then
        python3 - "$1" <<'EOF'
import os, sys
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        fd = os.open(os.path.join(d, f), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
EOF
    else
        find "$1" -type f -exec dd if={} iflag=nocache count=0 status=none \;
    fi
}
# cached_mb DIR: MB of DIR's files in the page cache (fincore), or "?".
cached_mb() {
    have fincore || { echo "?"; return; }
    find "$1" -type f -print0 | xargs -0 -r fincore -b -n -o RES 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s / 1e6 }'
}

streams_conf() { # streams_conf FILE ARCHIVE_ROOT|"" N PREFIX
    {
        echo "http 127.0.0.1:$HTTP_PORT;"
        local i
        for ((i = 1; i <= $3; i++)); do
            if [[ -n $2 ]]; then
                echo "stream $4$i { input $INPUT; dvr $2 8d; }"
            else
                echo "stream $4$i { input $INPUT; }"
            fi
        done
    } >"$1"
}

BASE=http://127.0.0.1:$HTTP_PORT

# --- 1. start-up -----------------------------------------------------------------
bench_startup() {
    ensure_archive
    local conf=$WORK/startup.conf last=ch$CHANNELS from
    streams_conf "$conf" "$ARCH" "$CHANNELS" ch
    from=$(oldest_from "$ARCH" "$last")
    local pl_url="$BASE/$last/archive-$from-3600.m3u8" rg_url="$BASE/api/v1/streams/$last/dvr/ranges"
    log "startup: strom run -c $conf   ($CHANNELS streams, input $INPUT, dvr $ARCH 8d)"
    log "startup: polling GET $pl_url, then GET $rg_url"
    local res=$WORK/startup.txt mode rep
    : >"$res"
    for mode in $STARTUP_MODES; do
        wait_quiet
        for ((rep = 1; rep <= REPEAT; rep++)); do
            if [[ $mode == cold ]]; then
                evict "$ARCH"
                log "startup cold #$rep: archive evicted from the page cache (cached now: $(cached_mb "$ARCH") MB)"
            fi
            local logf=$WORK/strom-startup.log t_h t_pl t_rg own n_ent rss1 t0 all_ms rss2 c
            start_strom "$conf" "$logf"
            t_h=$(poll_200 "$BASE/healthz") || die "startup: strom did not answer /healthz"
            t_pl=$(poll_200 "$pl_url") || die "startup: the archive playlist did not answer"
            t_rg=$(poll_200 "$rg_url") || die "startup: the ranges API did not answer"
            rss1=$(rss_mib "$STROM_PID")
            # Checks, after the timing: the playlist lists the whole hour, the ranges cover the week.
            n_ent=$(curl -s "$pl_url" | grep -c '^#EXTINF' || true)
            own=$(curl -s -o "$WORK/ranges.json" -w '%{time_total}' "$rg_url")
            # Every channel's ranges (every hourly index read once).
            t0=$(now_ns)
            for ((c = 1; c <= CHANNELS; c++)); do
                curl -sf -o /dev/null "$BASE/api/v1/streams/ch$c/dvr/ranges" || log "ranges of ch$c failed"
            done
            all_ms=$(ms_since "$t0")
            rss2=$(rss_mib "$STROM_PID")
            alive "$logf"
            log "startup $mode #$rep: healthz ${t_h} ms, oldest-hour playlist ${t_pl} ms ($n_ent entries), ranges ${t_rg} ms (again: $(awk -v s="$own" 'BEGIN { printf "%.1f", s * 1000 }') ms); all $CHANNELS ranges ${all_ms} ms; RSS ${rss1} -> ${rss2} MiB"
            echo "$mode $t_h $t_pl $t_rg $all_ms $rss1 $rss2 $n_ent" >>"$res"
            stop_strom
        done
    done
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); rs=r.get("ranges",[]); print("ranges of %s: %d range(s), first from=%s duration=%s s, depth=%s s, bytes=%s" % (r.get("stream"), len(rs), rs[0]["from"] if rs else "-", rs[0]["duration"] if rs else "-", r.get("depth_secs", r.get("depth")), r.get("bytes")))' "$WORK/ranges.json" >&2 2>/dev/null || head -c 300 "$WORK/ranges.json" >&2
    {
        echo
        echo "== startup: $CHANNELS channels × $DAYS days of ${SEG_SECS}s segments ($(du -sh "$ARCH" | cut -f1) on disk), input $INPUT; median of $REPEAT; ms since launching strom"
        printf '%-5s | %8s | %14s | %10s | %16s | %12s | %15s\n' cache healthz "archive 200" "ranges 200" "all ranges (ms)" "RSS start" "RSS all ranges"
        for mode in $STARTUP_MODES; do
            local m=() i
            for i in 2 3 4 5 6 7; do m+=("$(awk -v k="$mode" -v i="$i" '$1 == k { print $i }' "$res" | median)"); done
            printf '%-5s | %6s ms | %11s ms | %7s ms | %16s | %8s MiB | %11s MiB\n' "$mode" "${m[@]}"
            printf '      all runs (archive 200, ms): %s\n' "$(awk -v k="$mode" '$1 == k { printf "%s ", $3 }' "$res")"
        done
        echo "goal: archive URLs answer within 1000 ms of start"
    } | tee -a "$WORK/report.txt" >&2
}

# --- 2. 24-hour playlist latency ------------------------------------------------------
bench_playlist() {
    ensure_archive
    local conf=$WORK/playlist.conf logf=$WORK/strom-playlist.log from
    streams_conf "$conf" "$ARCH" "$CHANNELS" ch
    from=$(oldest_from "$ARCH" "ch$CHANNELS")
    local ndays=$((DAYS - 1)) # whole days after the oldest hour
    ((ndays >= 1)) || die "playlist: DAYS must be at least 2"
    start_strom "$conf" "$logf"
    poll_200 "$BASE/healthz" >/dev/null || die "playlist: strom did not start"
    log "playlist: strom run -c $conf"
    wait_quiet
    # Cold: one new day per channel, each channel touched once.
    local c d url cold=$WORK/pl-cold.txt
    : >"$cold"
    for ((c = 1; c <= CHANNELS; c++)); do
        d=$(((c - 1) % ndays))
        url="$BASE/ch$c/archive-$((from + d * 86400))-86400.m3u8"
        curl -s -o "$WORK/pl.m3u8" -w '%{time_total} %{http_code} %{size_download}\n' "$url" >>"$cold"
        [[ $c == 1 ]] && log "playlist cold: curl -w %{time_total} $url (and one fresh day per channel)"
    done
    local entries size
    entries=$(grep -c '^#EXTINF' "$WORK/pl.m3u8" || true)
    size=$(stat -c %s "$WORK/pl.m3u8")
    # Warm: one day of the last channel, asked already by the cold pass.
    url="$BASE/ch$CHANNELS/archive-$((from + ((CHANNELS - 1) % ndays) * 86400))-86400.m3u8"
    local cfg=$WORK/curl-warm.cfg i warm=$WORK/pl-warm.txt
    : >"$cfg"
    for ((i = 0; i < PL_REQUESTS + 5; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url" >>"$cfg"; done
    wait_quiet
    log "playlist warm: curl -K (${PL_REQUESTS} + 5 warm-up requests of $url on one connection) -w %{time_total}"
    foreign_snap "$WORK/foreign"
    local tw0
    tw0=$(now_ns)
    curl -s -K "$cfg" -w '%{time_total} %{http_code} %{size_download}\n' | tail -n +6 >"$warm"
    local noise
    noise=$(foreign_pct "$WORK/foreign" "$(awk -v n="$(ms_since "$tw0")" 'BEGIN { print (n < 1 ? 1 : n) / 1000 }')")
    alive "$logf"
    local bad
    bad=$(awk '$2 != 200' "$cold" "$warm" | wc -l)
    local wrk1="" wrk4=""
    if have wrk; then
        log "playlist: wrk -t1 -c1 -d${WRK_SECS}s --latency $url; wrk -t2 -c4 -d${WRK_SECS}s --latency $url"
        wrk -t1 -c1 -d"${WRK_SECS}s" --timeout 5s --latency "$url" >"$WORK/wrk-pl1.txt" 2>&1 || true
        wrk -t2 -c4 -d"${WRK_SECS}s" --timeout 5s --latency "$url" >"$WORK/wrk-pl4.txt" 2>&1 || true
        wrk1=$(wrk_summary "$WORK/wrk-pl1.txt")
        wrk4=$(wrk_summary "$WORK/wrk-pl4.txt")
    fi
    stop_strom
    ms() { awk '{ printf "%.2f\n", $1 * 1000 }' "$1"; }
    {
        echo
        echo "== playlist: archive-FROM-86400.m3u8, $entries entries, $size bytes; strom on 2 CPUs, curl alongside; non-200 answers: $bad"
        printf '%-28s | %5s | %8s %8s %8s %8s\n' what n p50 p90 p99 max
        printf '%-28s | %5s | %6s ms %6s ms %6s ms %6s ms\n' "cold (first of a day)" "$(wc -l <"$cold")" \
            "$(ms "$cold" | pct 50)" "$(ms "$cold" | pct 90)" "$(ms "$cold" | pct 99)" "$(ms "$cold" | pct 100)"
        printf '%-28s | %5s | %6s ms %6s ms %6s ms %6s ms   (noise %s%%)\n' "warm (keep-alive, serial)" "$(wc -l <"$warm")" \
            "$(ms "$warm" | pct 50)" "$(ms "$warm" | pct 90)" "$(ms "$warm" | pct 99)" "$(ms "$warm" | pct 100)" "$noise"
        echo "cold, per channel in order (ms; the first one also lists the channel's files): $(ms "$cold" | awk '{ printf "%.1f ", $1 }')"
        [[ -n $wrk1 ]] && echo "wrk -t1 -c1: $wrk1"
        [[ -n $wrk4 ]] && echo "wrk -t2 -c4: $wrk4"
        echo "goal: p99 under 20 ms"
    } | tee -a "$WORK/report.txt" >&2
}

# wrk_summary FILE: "req/s, transfer, p50, p99" from wrk --latency output.
wrk_summary() {
    awk '/Requests\/sec:/ { r = $2 } /Transfer\/sec:/ { t = $2 } /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
         /Non-2xx/ { bad = $NF }
         END { printf "%s req/s, %s/s%s%s", r, t, p50 != "" ? ", p50 " p50 ", p99 " p99 : "", bad ? ", non-2xx " bad : "" }' "$1"
}
# wrk_bytes FILE: Transfer/sec in bytes/s.
wrk_bytes() {
    awk '/Transfer\/sec:/ { v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
         if (u == "KB") v *= 1024; else if (u == "MB") v *= 1048576; else if (u == "GB") v *= 1073741824
         print v }' "$1"
}

# --- 3. download throughput vs nginx ------------------------------------------------------
nginx_conf() { # nginx_conf WORKERS WWW
    mkdir -p "$WORK/nginx/tmp"
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
$(nginx_temp_paths)
    types { video/mp2t ts; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $2;
    }
}
EOF
}

bench_download() {
    have nginx || { log "download: SKIPPED, nginx is not installed (apt-get install nginx)"; return 0; }
    local dl=$WORK/dl-archive www=$WORK/www
    local need_mb
    need_mb=$(awk -v s="$DL_SECONDS" -v g="$SEG_SECS" -v b="$DL_BYTES" 'BEGIN { printf "%d", s / g * b * 2.1 / 1e6 }')
    log "df -h /tmp: $(df -h /tmp | awk 'NR == 2 { print $4 " free" }'); download needs ~${need_mb} MB (archive + nginx copy)"
    (($(df -Pm /tmp | awk 'NR == 2 { print $4 }') > need_mb + 1024)) || die "not enough free space in /tmp"
    # An archive a little longer than DL_SECONDS so the range is whole.
    synth "$dl" 1 "$((DL_SECONDS + 3600 + 600))s" "$SEG_SECS" "$DL_BYTES" --prefix dl --threads 1
    local from
    from=$(oldest_from "$dl" dl1)
    local path="dl1/archive-$from-$DL_SECONDS.ts"
    local conf=$WORK/download.conf
    streams_conf "$conf" "$dl" 1 dl
    mkdir -p "$www/dl1"
    local res=$WORK/download.txt mode
    : >"$res"
    for mode in $DL_MODES; do
        local pin_srv=() pin_cli=() workers=auto
        if [[ $mode == pinned ]]; then
            pin_srv=("${PIN0[@]}")
            pin_cli=("${PIN1[@]}")
            workers=1
        fi
        start_strom "$conf" "$WORK/strom-download.log" "${pin_srv[@]}"
        local spid=$STROM_PID
        nginx_conf "$workers" "$www"
        "${pin_srv[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
        PIDS+=($!)
        poll_200 "$BASE/healthz" >/dev/null || die "download: strom did not start"
        if [[ ! -s $www/$path ]]; then
            log "download: saving strom's response: curl -o $www/$path $BASE/$path"
            curl -sf -o "$www/$path" "$BASE/$path" || die "download: strom's download failed"
            log "download: $(stat -c %s "$www/$path") bytes$(have ffprobe && printf ', ffprobe duration %s s' "$(ffprobe -v fatal -show_entries format=duration -of csv=p=0 "$www/$path")")"
        fi
        # nginx workers run as an unprivileged user; mktemp made WORK 0700.
        chmod a+rx "$WORK"
        chmod -R a+rX "$www"
        local sz
        sz=$(stat -c %s "$www/$path")
        local s_url="$BASE/$path" n_url="http://127.0.0.1:$NGINX_PORT/$path"
        poll_200 "$n_url" >/dev/null || die "download: nginx did not serve the file"
        log "download $mode: curl -o /dev/null -w %{speed_download} $s_url  vs  $n_url ($sz bytes), interleaved ×$REPEAT after one warm-up each"
        curl -s -o /dev/null "$s_url"
        curl -s -o /dev/null "$n_url"
        wait_quiet
        local rep srv u r cpu0 cpu1
        for ((rep = 1; rep <= REPEAT; rep++)); do
            for srv in strom nginx; do
                u=$s_url
                [[ $srv == nginx ]] && u=$n_url
                foreign_snap "$WORK/foreign"
                cpu0=$(cpu_ticks "$spid")
                local tt0
                tt0=$(now_ns)
                r=$("${pin_cli[@]}" curl -s -o /dev/null -w '%{speed_download} %{size_download} %{http_code}' "$u")
                cpu1=$(cpu_ticks "$spid")
                local secs noise
                secs=$(awk -v n="$(ms_since "$tt0")" 'BEGIN { print (n < 1 ? 1 : n) / 1000 }')
                noise=$(foreign_pct "$WORK/foreign" "$secs")
                [[ ${r##* } == 200 && $(echo "$r" | cut -d' ' -f2) == "$sz" ]] || log "download $srv: unexpected answer '$r' (want $sz bytes, 200)"
                echo "$mode curl $srv ${r%% *} $noise" >>"$res"
                log "download $mode $srv #$rep: $(awk -v b="${r%% *}" 'BEGIN { printf "%.0f MB/s", b / 1e6 }'), noise $noise%$([[ $srv == strom ]] && echo ", strom CPU $(((cpu1 - cpu0) * 1000 / HZ)) ms")"
            done
        done
        if have wrk; then
            for ((rep = 1; rep <= (REPEAT < 3 ? REPEAT : 3); rep++)); do
                for srv in strom nginx; do
                    u=$s_url
                    [[ $srv == nginx ]] && u=$n_url
                    "${pin_cli[@]}" wrk -t2 -c4 -d"${WRK_SECS}s" --timeout 30s "$u" >"$WORK/wrk-dl-$mode-$srv-$rep.txt" 2>&1 || true
                    echo "$mode wrk $srv $(wrk_bytes "$WORK/wrk-dl-$mode-$srv-$rep.txt") 0" >>"$res"
                    log "download $mode wrk -t2 -c4 -d${WRK_SECS}s $srv #$rep: $(wrk_summary "$WORK/wrk-dl-$mode-$srv-$rep.txt")"
                done
            done
        fi
        alive "$WORK/strom-download.log"
        stop_strom
        sleep 1
    done
    {
        echo
        echo "== download: $path, $(stat -c %s "$www/$path") bytes (${DL_SECONDS}s of ${SEG_SECS}s segments, ~$DL_BYTES B each); medians, MB/s = 10^6 B/s"
        echo "pinned: strom (1 tokio worker) and nginx (worker_processes 1) on CPU 0, client on CPU 1; auto: nothing pinned, nginx worker_processes auto"
        printf '%-7s %-14s | %10s %10s | %6s | %s\n' mode client "strom MB/s" "nginx MB/s" ratio "runs strom / nginx"
        for mode in $DL_MODES; do
            for cl in curl wrk; do
                awk -v m="$mode" -v c="$cl" '$1 == m && $2 == c' "$res" | grep -q . || continue
                local s n
                s=$(awk -v m="$mode" -v c="$cl" '$1 == m && $2 == c && $3 == "strom" { print $4 }' "$res" | median)
                n=$(awk -v m="$mode" -v c="$cl" '$1 == m && $2 == c && $3 == "nginx" { print $4 }' "$res" | median)
                printf '%-7s %-14s | %10.0f %10.0f | %6.2f | %s/ %s\n' "$mode" "$([[ $cl == wrk ]] && echo "wrk -t2 -c4" || echo "curl (1 conn)")" \
                    "$(awk -v v="$s" 'BEGIN { print v / 1e6 }')" "$(awk -v v="$n" 'BEGIN { print v / 1e6 }')" \
                    "$(awk -v a="$s" -v b="$n" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
                    "$(awk -v m="$mode" -v c="$cl" '$1 == m && $2 == c && $3 == "strom" { printf "%.0f ", $4 / 1e6 }' "$res")" \
                    "$(awk -v m="$mode" -v c="$cl" '$1 == m && $2 == c && $3 == "nginx" { printf "%.0f ", $4 / 1e6 }' "$res")"
            done
        done
        echo "worst noise during a curl run: $(awk '$2 == "curl" { if ($5 > m) m = $5 } END { print m + 0 }' "$res")% of a core; goal: ratio >= 1.0"
    } | tee -a "$WORK/report.txt" >&2
    rm -rf "$dl" "$www"
}

# --- 4. writer CPU ---------------------------------------------------------------------
metric_sum() { # metric_sum NAME
    curl -sf "$BASE/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}
bench_writer() {
    local pin=()
    [[ $W_PLACE == pinned ]] && pin=("${PIN0[@]}")
    local res=$WORK/writer.txt rep dvr
    : >"$res"
    for ((rep = 1; rep <= W_REPEAT; rep++)); do
        for dvr in off on; do
            local conf=$WORK/writer-$dvr.conf wroot=$WORK/writer-archive
            rm -rf "$wroot"
            if [[ $dvr == on ]]; then streams_conf "$conf" "$wroot" "$W_CHANNELS" w; else streams_conf "$conf" "" "$W_CHANNELS" w; fi
            local logf=$WORK/strom-writer-$dvr.log
            start_strom "$conf" "$logf" "${pin[@]}"
            poll_200 "$BASE/healthz" >/dev/null || die "writer: strom did not start"
            [[ $rep == 1 ]] && log "writer dvr=$dvr: ${pin[*]} strom run -c $conf ($W_CHANNELS × input $INPUT$([[ $dvr == on ]] && echo ", dvr $wroot 8d"))"
            sleep "$W_WARMUP"
            wait_quiet
            local w0 d0 t0 t1 st0 st1 w1 d1 noise
            w0=$(metric_sum strom_dvr_segments_written_total)
            d0=$(metric_sum strom_dvr_dropped_segments_total)
            foreign_snap "$WORK/foreign"
            st0=$(now_ns)
            t0=$(cpu_ticks "$STROM_PID")
            sleep "$W_MEASURE"
            t1=$(cpu_ticks "$STROM_PID")
            st1=$(now_ns)
            noise=$(foreign_pct "$WORK/foreign" "$W_MEASURE")
            w1=$(metric_sum strom_dvr_segments_written_total)
            d1=$(metric_sum strom_dvr_dropped_segments_total)
            alive "$logf"
            local alive_n bytes rss
            alive_n=$(curl -sf "$BASE/metrics" | awk '/^strom_stream_alive\{/ && $2 == 1 { c++ } END { print c + 0 }')
            bytes=$([[ -d $wroot ]] && du -sb "$wroot" | cut -f1 || echo 0)
            rss=$(rss_mib "$STROM_PID")
            awk -v d="$dvr" -v t="$((t1 - t0))" -v hz="$HZ" -v ns="$((st1 - st0))" -v n="$W_CHANNELS" -v w="$((w1 - w0))" -v dr="$((d1 - d0))" \
                -v noise="$noise" -v a="$alive_n" -v b="$bytes" -v rss="$rss" -v wt="$w1" 'BEGIN {
                secs = ns / 1e9; cpu = t / hz / secs * 100
                printf "%s %.3f %.4f %d %d %s %d %s %d %s %d\n", d, cpu, cpu / n, w, dr, noise, a, rss, b, secs, wt }' >>"$res"
            log "writer dvr=$dvr #$rep: $(tail -1 "$res" | awk '{ printf "CPU %.2f%% of a core (%.3f%%/channel), segments written %d, dropped %d, noise %s%%, alive %d, RSS %s MiB, archive %d B", $2, $3, $4, $5, $6, $7, $8, $9 }')"
            stop_strom
            rm -rf "$wroot"
            sleep 1
        done
    done
    {
        echo
        echo "== writer: $W_CHANNELS × $INPUT, ${W_MEASURE}s measured after ${W_WARMUP}s, ${W_PLACE}; median of $W_REPEAT; CPU = utime+stime of strom, % of one core"
        local off on offc onc w
        off=$(awk '$1 == "off" { print $2 }' "$res" | median)
        on=$(awk '$1 == "on" { print $2 }' "$res" | median)
        w=$(awk '$1 == "on" { print $4 }' "$res" | median)
        offc=$(awk -v v="$off" -v n="$W_CHANNELS" 'BEGIN { printf "%.3f", v / n }')
        onc=$(awk -v v="$on" -v n="$W_CHANNELS" 'BEGIN { printf "%.3f", v / n }')
        printf '%-8s | %10s | %12s | %s\n' dvr "CPU %" "% / channel" "runs (CPU %)"
        printf '%-8s | %9.2f%% | %11s%% | %s\n' off "$off" "$offc" "$(awk '$1 == "off" { printf "%s ", $2 }' "$res")"
        printf '%-8s | %9.2f%% | %11s%% | %s\n' on "$on" "$onc" "$(awk '$1 == "on" { printf "%s ", $2 }' "$res")"
        awk -v a="$off" -v b="$on" -v n="$W_CHANNELS" -v w="$w" -v m="$W_MEASURE" 'BEGIN {
            x = (b - a) / n
            printf "writer extra: %.3f%% of a core per channel (%+.0f%% over live ingest alone); %.2f ms CPU per segment written (%d segments in %d s)\n",
                x, (a > 0 ? (b - a) / a * 100 : 0), (w > 0 ? (b - a) / 100 * m * 1000 / w : 0), w, m }'
        echo "dropped segments (dvr on): $(awk '$1 == "on" { s += $5 } END { print s + 0 }' "$res"); worst noise: $(awk '{ if ($6 > m) m = $6 } END { print m + 0 }' "$res")% of a core; one clock tick over the window is $(awk -v n="$W_CHANNELS" -v m="$W_MEASURE" -v hz="$HZ" 'BEGIN { printf "%.4f", 100 / hz / m / n }')% per channel"
    } | tee -a "$WORK/report.txt" >&2
    # The same write path alone: segments of the size the node recorded.
    local seg_bytes
    seg_bytes=$(awk '$1 == "on" && $11 > 0 { b += $9 / $11 - 48; n++ } END { if (n) printf "%d", b / n }' "$res")
    if [[ -x $SYNTH && -n $seg_bytes ]]; then
        # Archive bytes per segment written, less the index entry (48) and headers.
        local end=$(($(date +%s) / 3600 * 3600 - 3600 + 900)) cpu
        local TIMEFORMAT='%U %S'
        log "writer alone: dvr_synth $WORK/writer-synth 1 1h $SEG_SECS $seg_bytes --end $end --threads 1 (15 min of one channel)"
        cpu=$({ time "$SYNTH" "$WORK/writer-synth" 1 1h "$SEG_SECS" "$seg_bytes" --end "$end" --threads 1 >"$WORK/wsynth.out" 2>"$WORK/wsynth.err"; } 2>&1) ||
            { cat "$WORK/wsynth.err" >&2; cpu=""; }
        local segs
        segs=$(tr ' ' '\n' <"$WORK/wsynth.out" | awk -F= '$1 == "segments_per_channel" { print $2 }')
        rm -rf "$WORK/writer-synth"
        if [[ -n $cpu && -n $segs ]]; then
            awk -v c="$cpu" -v n="$segs" -v b="$seg_bytes" -v s="$SEG_SECS" 'BEGIN {
                split(c, t, " "); ms = (t[1] + t[2]) * 1000 / n
                printf "writer alone (dvr_synth, Archive::write): %.3f ms CPU (user %.2f s + sys %.2f s) per %d-byte segment over %d segments = %.4f%% of a core per channel at one segment per %d s\n",
                    ms, t[1], t[2], b, n, ms / 1000 / s * 100, s }' | tee -a "$WORK/report.txt" >&2
        fi
    fi
}

for b in $BENCHES; do "bench_$b"; done
if [[ -n $ARCH && -z "${ARCHIVE:-}" && "${KEEP:-0}" != 1 ]]; then
    log "deleting the synthetic archive $ARCH"
    rm -rf "$ARCH"
fi
echo
echo "strom $REV; $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); $(date -u '+%F %T') UTC"
cat "$WORK/report.txt"
