#!/usr/bin/env bash
# Checks the swarm simulator against real processes at a scale one machine
# can run: one seed and N agents (separate shoal-agent processes on
# loopback, one tracker, the embedded origin), every agent's upload capped
# with --upload_limit, fetching the same release at once; then the
# simulator with the same N, caps and sizes. Prints both completion times
# and their difference. Goal: within 15 %.
#
#   bench/sim/validate.sh
#
# Settings (environment): VALIDATE_AGENTS (6), VALIDATE_SIZE_MIB (256),
# VALIDATE_PIECE (4194304), VALIDATE_UPLOAD (20000000 bytes/s),
# VALIDATE_RUNS (3; the real swarm's medians are compared).
set -euo pipefail
cd "$(dirname "$0")/../.."
agents=${VALIDATE_AGENTS:-6}
size_mib=${VALIDATE_SIZE_MIB:-256}
piece=${VALIDATE_PIECE:-4194304}
upload=${VALIDATE_UPLOAD:-20000000}
runs=${VALIDATE_RUNS:-3}

bazel build -c opt //publisher:shoal-publish //tracker:shoal-tracker \
  //agent:shoal-agent //agent:shoalctl //bench/sim:swarm_sim >&2
opt_bin=$(bazel info -c opt bazel-bin 2>/dev/null)
bin=$(mktemp -d -t shoal-validate-bin.XXXXXX)
for b in publisher/shoal-publish tracker/shoal-tracker agent/shoal-agent \
  agent/shoalctl bench/sim/swarm_sim; do
  cp "$opt_bin/$b" "$bin/"
done
source tests/testlib.sh
start_work
trap 'stop_work; rm -rf "$bin"' EXIT

"$bin/shoal-publish" keygen --out=key >/dev/null 2>&1
head -c $((size_mib * 1048576)) /dev/urandom > release.bin
id=$("$bin/shoal-publish" create --key=key --name=validate --version=1 \
  --origin=origin --piece_size="$piece" release.bin 2>/dev/null | tail -n 1)
"$bin/shoal-publish" serve --origin=origin --listen=127.0.0.1:0 \
  --ready_file=origin.addr 2>origin.log &
pids+=($!)
wait_file origin.addr || { echo "origin did not start" >&2; exit 1; }

# One real swarm; prints the seconds each of the N agents took, one a line.
run_swarm() {
  local run=$1 list=()
  rm -rf seed a* tracker.json ./*.json
  "$bin/shoal-tracker" --listen=127.0.0.1:0 --datacenter=dc1 --trust=key.pub \
    --insecure --ready_file=tracker.json 2>"tracker$run.log" &
  local tracker_pid=$!
  pids+=($tracker_pid)
  wait_file tracker.json
  local taddr; taddr=$(json_field tracker.json grpc)
  "$bin/shoal-publish" register --tracker="$taddr" --origin=origin \
    --origin_url="http://$(cat origin.addr)/" --insecure validate@1 \
    >/dev/null 2>&1
  local names=(seed)
  for i in $(seq 1 "$agents"); do names+=("a$i"); done
  local agent_pids=()
  for n in "${names[@]}"; do
    "$bin/shoal-agent" --tracker="$taddr" --listen=127.0.0.1:0 --data_dir="$n" \
      --datacenter=dc1 --rack=r1 --trust=key.pub --insecure --durable=false \
      --upload_limit="$upload" --ready_file="$n.json" 2>"$n.$run.log" &
    agent_pids+=($!)
    pids+=($!)
  done
  for n in "${names[@]}"; do wait_file "$n.json"; done
  # The seed takes the release from the origin first.
  "$bin/shoalctl" --agent=seed/agent.sock fetch "$id" >/dev/null 2>&1
  sleep 1  # lets the seed's announce (at most one a second) go out
  local fetchers=()
  for i in $(seq 1 "$agents"); do
    ( t0=$(date +%s.%N)
      "$bin/shoalctl" --agent="a$i/agent.sock" fetch "$id" --json >"a$i.fetch" 2>&1
      t1=$(date +%s.%N)
      echo "$t1 - $t0" | bc -l > "a$i.secs" ) &
    fetchers+=($!)
  done
  for f in "${fetchers[@]}"; do wait "$f"; done
  for i in $(seq 1 "$agents"); do
    local origin; origin=$(json_field "a$i.fetch" bytes_from_origin)
    [ "$origin" = "0" ] || echo "note: agent $i took $origin bytes from the origin" >&2
    cat "a$i.secs"
  done
  kill "${agent_pids[@]}" "$tracker_pid" 2>/dev/null || true
  wait "${agent_pids[@]}" "$tracker_pid" 2>/dev/null || true
}

: > real.txt
for r in $(seq 1 "$runs"); do
  run_swarm "$r" | sort -n | tr '\n' ' ' >> real.txt
  echo >> real.txt
  echo "real run $r: $(tail -n 1 real.txt)" >&2
done

"$bin/swarm_sim" --agents="$agents" --seeds=1 --datacenters=1 --racks=1 \
  --release_size="$((size_mib * 1048576))" --piece_size="$piece" \
  --upload_limit="$upload" --nic=100Gb/s --latency=50us --json --progress=false \
  > sim.json

/usr/bin/python3 - real.txt sim.json "$size_mib" "$upload" "$agents" <<'PY'
import json, statistics, sys
real_runs = [[float(x) for x in line.split()] for line in open(sys.argv[1]) if line.strip()]
sim = json.load(open(sys.argv[2]))
size_mib, upload, n = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
bound = sim["fluid_bound_s"]
real_p50 = statistics.median(statistics.median(r) for r in real_runs)
real_max = statistics.median(max(r) for r in real_runs)
sim_p50, sim_max = sim["completion_s"]["p50"], sim["completion_s"]["max"]
print(f"1 seed + {n} agents, {size_mib} MiB, every upload capped at {upload / 1e6:g} MB/s; "
      f"fluid bound T* = {bound:.2f} s")
print("| | median agent s | last agent s | last / T* |")
print("|---|---|---|---|")
for r, run in enumerate(real_runs, 1):
    print(f"| real run {r} | {statistics.median(run):.2f} | {max(run):.2f} | {max(run) / bound:.2f} |")
print(f"| real (median of runs) | {real_p50:.2f} | {real_max:.2f} | {real_max / bound:.2f} |")
print(f"| simulator | {sim_p50:.2f} | {sim_max:.2f} | {sim_max / bound:.2f} |")
diff_p50 = (sim_p50 - real_p50) / real_p50 * 100
diff_max = (sim_max - real_max) / real_max * 100
ok = abs(diff_p50) <= 15 and abs(diff_max) <= 15
print(f"\nsimulator vs real: median {diff_p50:+.1f} %, last {diff_max:+.1f} % "
      f"(goal within 15 %: {'met' if ok else 'MISSED'})")
PY
