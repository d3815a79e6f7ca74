#!/usr/bin/env bash
# Data-plane benchmark: one agent pulls a release from one seeding agent over
# loopback, with and without TLS, beside `openssl dgst -sha256` over the same
# bytes in the same run (the one-core verification limit).
#
#   bench/data_plane_bench.sh [SIZE_MIB]   (default 1024; BENCH_RUNS=3)
#
# Prints, per mode, min and median GB/s of the whole `shoalctl fetch` (start-up
# and status polling included), the median rate of the transfer alone (from
# the agent's log: engine start to completion), CPU seconds per GB (both
# agents, user+system, from /proc), and the ratios to the median openssl rate.
# Goal: without TLS, at least 0.5.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${BENCH_RUNS:-3}
bazel build -c opt //publisher:shoal-publish //tracker:shoal-tracker //agent:shoal-agent //agent:shoalctl >&2
opt_bin=$(bazel info -c opt bazel-bin 2>/dev/null)
bin=$(mktemp -d -t shoal-dp-bin.XXXXXX)
work=$(mktemp -d -t shoal-dp.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work" "$bin"
}
trap cleanup EXIT
for b in publisher/shoal-publish tracker/shoal-tracker agent/shoal-agent agent/shoalctl; do cp "$opt_bin/$b" "$bin/"; done
source tests/testlib.sh
cd "$work"
make_fleet_ca
issue_cert node "IP:127.0.0.1"
"$bin/shoal-publish" keygen --out=key >/dev/null 2>&1
head -c $(( size_mib * 1048576 )) /dev/urandom > release.bin
id=$("$bin/shoal-publish" create --key=key --name=bench --version=1 --origin=origin release.bin 2>/dev/null | tail -n 1)
cat release.bin > /dev/null

cpu_seconds() {  # cpu_seconds PID: user+system seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

start_node() {  # start_node NAME TLS_FLAGS EXTRA...: starts an agent, prints its pid
  local name=$1 tls=$2; shift 2
  "$bin/shoal-agent" --listen=127.0.0.1:0 --data_dir="$name" --datacenter=dc1 --rack=r1 \
    --trust=key.pub $tls --durable=false --ready_file="$name.json" "$@" >/dev/null 2>"$name.log" &
  echo $!
}

run_mode() {  # run_mode MODE TLS_FLAGS: one pull; prints "seconds cpu"
  local mode=$1 tls=$2
  rm -rf seed leech seed.json leech.json tracker.json
  "$bin/shoal-tracker" --listen=127.0.0.1:0 --datacenter=dc1 --trust=key.pub $tls \
    --admin_identities=node --ready_file=tracker.json 2>tracker.log &
  local tpid=$!; pids+=($tpid)
  wait_file tracker.json
  local taddr; taddr=$(json_field tracker.json grpc)
  "$bin/shoal-publish" register --tracker="$taddr" --origin=origin \
    --origin_url="http://$(cat origin.addr)/" $tls bench@1 >/dev/null 2>&1
  local spid; spid=$(start_node seed "$tls" --tracker="$taddr"); pids+=($spid)
  local lpid; lpid=$(start_node leech "$tls" --tracker="$taddr"); pids+=($lpid)
  wait_file seed.json; wait_file leech.json
  "$bin/shoalctl" --agent=seed/agent.sock fetch "$id" >/dev/null 2>&1
  local c0; c0=$(echo "$(cpu_seconds $spid) + $(cpu_seconds $lpid)" | bc -l)
  local t0; t0=$(date +%s.%N)
  "$bin/shoalctl" --agent=leech/agent.sock fetch "$id" --json > pull.json 2>/dev/null
  local t1; t1=$(date +%s.%N)
  local c1; c1=$(echo "$(cpu_seconds $spid) + $(cpu_seconds $lpid)" | bc -l)
  local origin; origin=$(json_field pull.json bytes_from_origin)
  # The transfer alone: from the engine's start to its completion (log times).
  local transfer; transfer=$(/usr/bin/python3 - leech.log <<'PY'
import re, sys
times = {}
for line in open(sys.argv[1]):
    m = re.match(r"I\d+ (\d\d):(\d\d):(\d\d\.\d+) .*\] bench@1: (downloading|complete)", line)
    if m:
        times[m.group(4)] = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
print("%.6f" % (times["complete"] - times["downloading"]))
PY
)
  [ "$origin" = "0" ] || echo "warning: the leech took $origin bytes from the origin" >&2
  kill $spid $lpid $tpid; wait $spid $lpid $tpid 2>/dev/null || true
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$c1 - $c0" | bc -l) $transfer"
}

"$bin/shoal-publish" serve --origin=origin --listen=127.0.0.1:0 --ready_file=origin.addr 2>origin.log &
pids+=($!)
wait_file origin.addr
results=results.txt
: > $results
for r in $(seq 1 "$runs"); do
  t0=$(date +%s.%N); openssl dgst -sha256 release.bin >/dev/null; t1=$(date +%s.%N)
  echo "openssl $(echo "$t1 - $t0" | bc -l) 0 $(echo "$t1 - $t0" | bc -l)" >> $results
  echo "plain $(run_mode plain --insecure)" >> $results
  echo "tls $(run_mode tls "$(tls_flags node)")" >> $results
  echo "run $r done" >&2
done
/usr/bin/python3 - "$results" "$size_mib" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
size = int(sys.argv[2]) * 1048576
print("| mode | runs | min GB/s | median GB/s | median transfer-only GB/s | median CPU s/GB (both agents) |")
print("|---|---|---|---|---|---|")
med = {}
for mode in ["openssl", "plain", "tls"]:
    secs = [float(r[1]) for r in rows if r[0] == mode]
    cpu = [float(r[2]) for r in rows if r[0] == mode]
    transfer = [float(r[3]) for r in rows if r[0] == mode]
    rates = [size / s / 1e9 for s in secs]
    med[mode] = statistics.median(rates)
    med[mode + "_t"] = statistics.median([size / t / 1e9 for t in transfer])
    cpu_text = "-" if mode == "openssl" else "%.2f" % (statistics.median(cpu) / (size / 1e9))
    label = {"openssl": "openssl dgst -sha256 (one core)", "plain": "agent pull, plaintext", "tls": "agent pull, mutual TLS"}[mode]
    print("| %s | %d | %.2f | %.2f | %.2f | %s |" % (label, len(secs), min(rates), med[mode], med[mode + "_t"], cpu_text))
print("\nwhole fetch: plaintext / openssl %.2f (goal >= 0.50), TLS / openssl %.2f" % (med["plain"] / med["openssl"], med["tls"] / med["openssl"]))
print("transfer only: plaintext / openssl %.2f, TLS / openssl %.2f" % (med["plain_t"] / med["openssl"], med["tls_t"] / med["openssl"]))
PY
