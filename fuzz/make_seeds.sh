#!/usr/bin/env bash
# Regenerates the checked-in seed corpora under fuzz/corpus/<target>/ from the
# repository's own material. The seeds are committed: run this only to
# refresh them (the /metrics page is a live snapshot, so it changes run to
# run; everything else is byte-for-byte reproducible with the same ffmpeg).
#
# Needs ffmpeg (with libx265, ac3, mp2), python3, curl, a nightly-free
# `cargo` for the wire/looper example and a built `strom` binary
# (STROM_BIN, default target/debug/strom under the repo or CARGO_TARGET_DIR).
#
# Usage: fuzz/make_seeds.sh            (from the repo root or fuzz/)
set -euo pipefail

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$fuzz_dir")
corpus="$fuzz_dir/corpus"
demo="$root/assets/demo.ts"
tmp=$(mktemp -d)
node_pid=
cleanup() {
    if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# The first two bytes of a ts_demux input pick its chunk sizes.
ts_seed() { # NAME SEED_HEX FILE
    mkdir -p "$corpus/ts_demux"
    { printf "\\x${2:0:2}\\x${2:2:2}"; cat "$3"; } >"$corpus/ts_demux/$1"
}

# --- ts_demux: pieces of the demo, a PTS wrap, other codecs -----------------
python3 - "$demo" "$tmp" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
n = len(d) // 188
pk = [d[i*188:(i+1)*188] for i in range(n)]
pid = lambda p: ((p[1] & 0x1f) << 8) | p[2]
def w(name, ps): open(f"{sys.argv[2]}/{name}", 'wb').write(b''.join(ps))
w('head.ts', pk[:400])               # PAT/PMT then ~0.5 s of audio/video
w('mid.ts', pk[3000:3300])           # joins mid-stream: no PAT/PMT at first
w('psi.ts', [p for p in pk[:200] if pid(p) in (0, 0x11, 0x1000)])  # PSI only
PY
ts_seed demo-head 0000 "$tmp/head.ts"
ts_seed demo-mid 0500 "$tmp/mid.ts"
ts_seed psi-only 0300 "$tmp/psi.ts"
# PTS/DTS wrap 2^33 about 0.3 s in (ffmpeg's mpegts muxer starts 1.4 s + the
# demo's 1.12 s start - 0.3 s past the offset).
offset=$(python3 -c "print(2**33/90000 - 0.3 - 100920/90000 - 0.3)")
ffmpeg -hide_banner -loglevel error -y -i "$demo" -t 0.8 -c copy \
    -fflags +bitexact -flags +bitexact -output_ts_offset "$offset" "$tmp/wrap.ts"
ts_seed pts-wrap 0100 "$tmp/wrap.ts"
# H.265 + AC-3 + MPEG audio, 160x90, 0.5 s.
ffmpeg -hide_banner -loglevel error -y -threads 1 -i "$demo" -t 0.5 \
    -map 0:v -map 0:a -map 0:a -vf scale=160:90 \
    -c:v libx265 -preset ultrafast -x265-params pools=none:frame-threads=1:log-level=none \
    -c:a:0 ac3 -b:a:0 64k -c:a:1 mp2 -b:a:1 64k \
    -fflags +bitexact -flags +bitexact "$tmp/hevc.ts"
ts_seed hevc-ac3-mp2 0200 "$tmp/hevc.ts"

# --- config_parse: the example configs ---------------------------------------
mkdir -p "$corpus/config_parse"
for f in "$root"/examples/*/*.conf; do
    cp "$f" "$corpus/config_parse/$(basename "$(dirname "$f")")-$(basename "$f")"
done

# --- wire_decode and looper: the demo's frames, via the make_seeds example ---
(cd "$fuzz_dir" && cargo run -q --example make_seeds -- "$demo" "$corpus")

# --- promtext: a real /metrics page -------------------------------------------
strom=${STROM_BIN:-}
if [ -z "$strom" ]; then
    for c in "${CARGO_TARGET_DIR:-$root/target}/debug/strom" "$root/target/debug/strom"; do
        if [ -x "$c" ]; then strom=$c; break; fi
    done
fi
if [ -z "$strom" ]; then
    echo "no strom binary: build it with cargo build -p strom or set STROM_BIN" >&2
    exit 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'http 127.0.0.1:%s;\nstream demo { input builtin://demo; }\n' "$port" >"$tmp/node.conf"
"$strom" run -c "$tmp/node.conf" >"$tmp/node.log" 2>&1 &
node_pid=$!
sleep 5
# A viewer, so the HLS and session series are there too.
curl -fsS "http://127.0.0.1:$port/demo/index.m3u8?token=seed" >/dev/null || true
seg=$(curl -fsS "http://127.0.0.1:$port/demo/mono.m3u8?token=seed" | grep -m1 '\.ts' || true)
[ -n "$seg" ] && curl -fsS "http://127.0.0.1:$port/demo/${seg%%\?*}?token=seed" >/dev/null || true
mkdir -p "$corpus/promtext"
curl -fsS "http://127.0.0.1:$port/metrics" >"$corpus/promtext/node-metrics"
kill "$node_pid"
wait "$node_pid" 2>/dev/null || true
node_pid=

# --- play_request: PATH NUL QUERY NUL RANGE ----------------------------------
mkdir -p "$corpus/play_request"
pr() { printf '%s\0%s\0%s' "$2" "$3" "$4" >"$corpus/play_request/$1"; }
pr master '/demo/index.m3u8' 'token=abc123' ''
pr media '/demo/mono.m3u8' '' ''
pr segment-range '/live/sport/hd/42.ts' 'token=x&strom_hop=1' 'bytes=0-187'
pr mpegts-suffix '/demo/mpegts' 'token=t' 'bytes=-188'
pr segment-open-range '/demo/18446744073709551615.ts' '' 'bytes=1000-'
pr publish '/a.b_c-d/publish' '' 'bytes=5-4'
pr reserved '/api/index.m3u8' '' 'bytes=0-1,5-6'
printf '/demo/video.m3u8' >"$corpus/play_request/no-query"

# --- cluster_list: node-to-node stream lists (hand-written) -------------------
mkdir -p "$corpus/cluster_list"
cat >"$corpus/cluster_list/origin" <<'JSON'
{"streams":[{"name":"demo","mode":"static","codecs":["avc1.64001f","mp4a.40.2"],"last_seq":1042,"alive":true},{"name":"sport/hd","mode":"ondemand","codecs":[],"last_seq":null,"alive":false}],"load":{"clients":12,"max_clients":1000,"output_bitrate":15480000,"max_bitrate":null}}
JSON
cat >"$corpus/cluster_list/minimal" <<'JSON'
{"streams":[{"name":"a","mode":"static"}]}
JSON
cat >"$corpus/cluster_list/bad-names" <<'JSON'
{"streams":[{"name":"../etc","mode":"static"},{"name":"api/x","mode":"ondemand"},{"name":"evil\nINFO forged","mode":"static"},{"name":"","mode":"static"},{"name":"caf\u00e9","mode":"static","future_field":1}],"load":{"clients":18446744073709551615,"max_clients":0}}
JSON
cat >"$corpus/cluster_list/empty" <<'JSON'
{"streams":[],"load":null}
JSON

# --- dvr_index: archive index and data files (real writer bytes) -------------
mkdir -p "$corpus/dvr_index"
(cd "$root" && cargo run -q -p strom-media --example dvr_seeds -- "$demo" "$corpus/dvr_index")

# --- dvr_request: archive URLs (hand-written) ---------------------------------
mkdir -p "$corpus/dvr_request"
i=0
for s in archive-1700000000-3600.m3u8 index-1700000000-now.m3u8 archive-1700000000-30.ts \
    timeshift_abs-1700000000.ts timeshift_rel_mono-20.m3u8 rewind-7200.m3u8 mono-1700000000-60.m3u8 \
    ch/archive/1700000000/3600/mpegts archive-99999999999999999999-0.m3u8 video-1-now.m3u8; do
    i=$((i + 1))
    printf '%s' "$s" >"$corpus/dvr_request/seed$i"
done

# --- dvr_cluster: a peer's DVR read queries and file listings ------------------
mkdir -p "$corpus/dvr_cluster"
printf '\000hour=498900&first_seq=1796042874&kind=data&offset=0&len=1480212' >"$corpus/dvr_cluster/read-data"
printf '\000hour=498900&first_seq=1&kind=index&offset=16&len=48' >"$corpus/dvr_cluster/read-index"
printf '\000hour=1&hour=2&first_seq=1&kind=data&offset=0&len=1' >"$corpus/dvr_cluster/read-dup"
printf '\001{"files":[{"hour":498900,"first_seq":1796042874,"kind":"data","bytes":1480212},{"hour":498900,"first_seq":1796042874,"kind":"index","bytes":256}],"truncated":false}' >"$corpus/dvr_cluster/list"
printf '\001{"files":[{"hour":-1,"first_seq":0,"kind":"x","bytes":99999999999999}]}' >"$corpus/dvr_cluster/list-bad"

# --- rtmp_chunk, amf0: RTMP sessions and AMF values (written by a test) -------
(cd "$root" && cargo test -q -p strom-media --lib write_fuzz_seeds -- --ignored)

# --- flv_tag: tag sequences from the FLV fixtures -----------------------------
(cd "$root/crates/strom-media/tests/fixtures/flv" && python3 fuzz_seeds.py)

# --- srt_streamid: SRT streamids (hand-written) -------------------------------
mkdir -p "$corpus/srt_streamid"
printf '#!::r=news,m=publish' >"$corpus/srt_streamid/access_control"
printf 'studio?password=s3cret&token=abc' >"$corpus/srt_streamid/plain_query"
printf '#!::u=admin,r=live/cam?token=x,m=publish,s=123,t=stream,x=y' >"$corpus/srt_streamid/all_keys"
printf '#!::m=request,r=a' >"$corpus/srt_streamid/request"
printf 'news' >"$corpus/srt_streamid/plain"

# --- balancer_readings: foreign servers' answers (hand-written) --------------
# The first byte picks the reader (see the target); qqmarkqq is the marker no
# error message may quote.
b="$corpus/balancer_readings"
mkdir -p "$b"
printf '\x00# TYPE clients gauge\nclients{instance="s1"} 12\nclients{instance="qqmarkqq"} 3\n' >"$b/prom_sum"
printf '\x01clients{instance="s1",job="x"} 7\nclients{instance="s2"} 9\n' >"$b/prom_label"
printf '\x02{"stats":{"total_clients":42,"qqmarkqq":1}}' >"$b/json_flussonic"
printf '\x02{"stats":{"total_clients":"qqmarkqq"}}' >"$b/json_bad"
printf '\x03<?xml version="1.0"?><WowzaStreamingEngine><ConnectionsCurrent>17</ConnectionsCurrent><VHost><Name>_defaultVHost_</Name><ConnectionsCurrent>17</ConnectionsCurrent></VHost></WowzaStreamingEngine>' >"$b/xml_wowza"
printf '\x03<a><ConnectionsCurrent>qqmarkqq</ConnectionsCurrent></a>' >"$b/xml_bad"
printf '\x04<Server><VHost><Application><Name>live</Name></Application></VHost></Server>' >"$b/xml_path"
printf '\x05{"streams":[{"name":"demo","status":"running"},{"name":"qqmarkqq/../x","status":"running"}]}' >"$b/strom_list"
printf '\x06{"streams":[{"name":"tv1","stats":{"alive":true}},{"name":"tv2","stats":{"alive":false}}],"next":"cursor1"}' >"$b/flussonic_list"
printf '\x07{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"s1"},"value":[1700000000,"12"]}]}}' >"$b/prom_query"
printf '\x07{"status":"error","error":"qqmarkqq"}' >"$b/prom_query_err"

du -sh "$corpus"/*

# --- balancer_http1: request heads as viewers and middleware send them -------
b="$corpus/balancer_http1"
mkdir -p "$b"
printf 'GET /ch/index.m3u8?token=abc HTTP/1.1\r\nHost: b\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n' >"$b/redirect"
printf 'GET /a/1 HTTP/1.1\r\n\r\nHEAD /b/2 HTTP/1.1\r\nConnection: close\r\n\r\n' >"$b/pipelined"
printf 'POST /api/v1/servers HTTP/1.1\r\nContent-Length: 17\r\nExpect: 100-continue\r\n\r\n{"draining":true}' >"$b/body"
printf 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n' >"$b/chunked"
printf 'GET /ch/i.m3u8 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' >"$b/http10"

# --- balancer_admin: admin API bodies (first byte: add, modify, modify, remove)
b="$corpus/balancer_admin"
mkdir -p "$b"
printf '\x00{"name":"s9","url":"http://10.0.0.9","max_clients":5,"kind":"flussonic","networks":["10.2.0.0/16"]}' >"$b/add"
printf '\x01{"max_clients":7,"monitoring":true,"draining":null}' >"$b/modify"
printf '\x02{"networks":["10.0.0.0/33"],"countries":["DE"]}' >"$b/modify_bad"
printf '\x03s2' >"$b/remove_needed"
