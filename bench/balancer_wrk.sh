#!/usr/bin/env bash
# Balancer decisions per second: three strom nodes plus the balancer on
# loopback, wrk at 100 connections on the routing API and on the redirect
# path. Prints the median of 3 runs of requests/s and p99 latency.
#
# Usage: bench/balancer_wrk.sh [SECONDS_PER_RUN]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p strom
BIN=target/release/strom
DIR=$(mktemp -d /tmp/strom-balbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
: > "$DIR/balancer.conf"
echo "http 127.0.0.1:18300;" >> "$DIR/balancer.conf"
for n in 1 2 3; do
  printf 'http 127.0.0.1:1830%d;\nstream ch { input builtin://demo; }\n' "$n" > "$DIR/n$n.conf"
  "$BIN" run -c "$DIR/n$n.conf" 2>"$DIR/n$n.log" &
  echo "server s$n { url http://127.0.0.1:1830$n; max_clients 100000000; }" >> "$DIR/balancer.conf"
done
"$BIN" balancer -c "$DIR/balancer.conf" 2>"$DIR/balancer.log" &
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:18300/api/v1/route?stream=ch&ip=10.0.0.1" >/dev/null 2>&1 && break
  sleep 0.2
done
run() { # URL -> "reqs p99ms"
  wrk -t2 -c100 -d"${DUR}s" --latency "$1" 2>/dev/null | awk '
    /Requests\/sec/ {r=$2}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub("us","",v); v=v/1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v=v*1000}; p=v}
    END {printf "%d %.2f\n", r, p}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for name in route redirect; do
  if [ $name = route ]; then URL="http://127.0.0.1:18300/api/v1/route?stream=ch&ip=10.0.0.1"; else URL="http://127.0.0.1:18300/ch/index.m3u8?token=t"; fi
  R=(); P=()
  for i in 1 2 3; do read -r r p < <(run "$URL"); R+=("$r"); P+=("$p"); done
  printf '%-9s decisions/s median %s (runs: %s)   p99 median %s ms (runs: %s)\n' "$name" \
    "$(printf '%s\n' "${R[@]}" | median)" "${R[*]}" "$(printf '%s\n' "${P[@]}" | median)" "${P[*]}"
done
echo "goal: >= 50000 decisions/s with p99 < 5 ms (wrk and the balancer share 2 cores)"
