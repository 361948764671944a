#!/usr/bin/env bash
# Segment propagation latency origin -> edge on loopback.
#
# Starts an origin (the embedded demo channel) and a restreamer that pulls it
# over strom's segment protocol, both logging every finalised/received
# segment at debug level with microsecond timestamps. After DURATION seconds
# it matches segments by number and prints p50/p99/max of
# (time available on the edge - time finalised on the origin).
#
# Usage: bench/cluster_latency.sh [DURATION_SECONDS]   (default 120)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-120}
cargo build --release -q -p strom
BIN=target/release/strom
DIR=$(mktemp -d /tmp/strom-latency.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
cat > "$DIR/origin.conf" <<CONF
http 127.0.0.1:18181;
cluster_key bench;
stream demo { input builtin://demo; }
stream demo2 { input builtin://demo; segment_duration 1; }
CONF
cat > "$DIR/edge.conf" <<CONF
http 127.0.0.1:18182;
cluster_key bench;
source 127.0.0.1:18181 { }
CONF
RUST_LOG=strom_node::hub=debug "$BIN" run -c "$DIR/origin.conf" 2>"$DIR/origin.log" &
sleep 1
RUST_LOG=strom_node::hub=debug "$BIN" run -c "$DIR/edge.conf" 2>"$DIR/edge.log" &
echo "running origin and edge for ${DURATION}s (logs in $DIR)"
sleep "$DURATION"
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true
python3 - "$DIR/origin.log" "$DIR/edge.log" <<'PY'
import re, sys, datetime, statistics
pat = re.compile(r'^(\S+)Z .*segment available stream=(\S+) seq=(\d+)')
def load(path):
    out = {}
    for line in open(path, encoding='utf-8', errors='replace'):
        line = re.sub(r'\x1b\[[0-9;]*m', '', line)
        m = pat.search(line)
        if m:
            t = datetime.datetime.fromisoformat(m.group(1)).timestamp()
            out.setdefault((m.group(2), int(m.group(3))), t)
    return out
o, e = load(sys.argv[1]), load(sys.argv[2])
# The edge's first window arrives as a backlog at connect time: skip it.
common = sorted(k for k in o if k in e)
d = sorted((e[k] - o[k]) * 1000 for k in common[12:])
if len(d) < 10:
    sys.exit(f"too few matched segments: {len(d)}")
q = lambda p: d[min(len(d) - 1, int(round(p / 100 * (len(d) - 1))))]
print(f"segments matched: {len(d)}")
print(f"origin finalised -> edge available: p50 {q(50):.2f} ms  p99 {q(99):.2f} ms  max {d[-1]:.2f} ms  (mean {statistics.mean(d):.2f} ms)")
print("goal: p99 < 100 ms")
PY
