#!/usr/bin/env bash
# Swarm health in a real Prometheus. On loopback: the embedded origin, one
# tracker, a seed and three agents, every one with a metrics listener;
# Debian's Prometheus scrapes them every second (started by
# deploy/prometheus/run-local.sh with the shipped configuration and alert
# rules). The seed fetches the release from the origin, then the three
# agents fetch and install it at once. Checks:
#   - every daemon answers /healthz and /readyz;
#   - the agents' verified bytes in Prometheus, from peers plus from the
#     origin, equal the release size times the agents that completed, and
#     match each source's total in the agents' own status (shoalctl status
#     --json); the trackers' swarm gauges agree;
#   - every query of every Grafana dashboard panel returns data, with the
#     variables at "All" and at this swarm's datacenter and release;
#   - every alert rule is loaded, evaluates without error and is quiet on
#     this healthy swarm; a stopped agent shows up as a down target;
#   - an agent whose tracker stopped says so on /readyz.
set -uo pipefail
source "$(dirname "$0")/testlib.sh"
publish=$(realpath "$1"); tracker=$(realpath "$2"); agent=$(realpath "$3"); ctl=$(realpath "$4")
run_local=$(realpath "$5"); dashboard=$(realpath "$6"); rules=$(realpath "$7")
queries=$(realpath "$(dirname "$0")/prometheus_queries.py")
py=/usr/bin/python3
work=$(mktemp -d)
pids=()
prom_pid=""
cleanup() {
  for p in $prom_pid "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  # Prometheus is not this shell's child (run-local.sh started it): wait
  # for it by polling, at most 10 s.
  for _ in $(seq 1 100); do [ -n "$prom_pid" ] && kill -0 "$prom_pid" 2>/dev/null || break; sleep 0.1; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

command -v prometheus >/dev/null && command -v promtool >/dev/null \
  || { bad "no prometheus binary: ./deploy/install-deps.sh installs Debian's prometheus"; finish; exit 1; }

# http_status URL: the HTTP status code of a GET (000 when nothing answers).
http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1"; }
# wait_ready ADDR: waits (at most 20 s) until http://ADDR/readyz says 200.
wait_ready() {
  for _ in $(seq 1 200); do [ "$(http_status "http://$1/readyz")" = 200 ] && return 0; sleep 0.1; done
  return 1
}
# free_port: a loopback port nothing listens on right now.
free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
q() { "$py" "$queries" "$@"; }

mkdir -p in/bin in/share
head -c $((6 * 1048576 + 4321)) /dev/urandom > in/share/pack.bin
head -c $((2 * 1048576)) /dev/urandom > in/bin/server
printf 'port = 7000\n' > in/share/app.cfg
size=$(( 6 * 1048576 + 4321 + 2 * 1048576 + 12 ))
"$publish" keygen --out=key >/dev/null 2>&1
"$publish" create --key=key --name=game --version=1 --origin=origin --piece_size=1048576 in \
  >/dev/null 2>create.log || { bad "create: $(cat create.log)"; exit 1; }

"$publish" serve --origin=origin --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --ready_file=origin.ready 2>origin.log &
pids+=($!)
# Announces every 2 s, so that the agents notice a stopped tracker quickly.
"$tracker" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --datacenter=dc1 --trust=key.pub \
  --insecure --announce_interval=2s --ready_file=tracker.json 2>tracker.log &
pids+=($!)
tracker_pid=$!
wait_file origin.ready && wait_file tracker.json || { bad "origin or tracker did not start"; exit 1; }
origin_addr=$(sed -n 1p origin.ready)
origin_metrics=$(sed -n 2p origin.ready)
tracker_addr=$(json_field tracker.json grpc)
tracker_metrics=$(json_field tracker.json metrics)
[ -n "$origin_metrics" ] && ok "the origin's ready file names its metrics address" \
  || bad "no metrics address in origin.ready: $(cat origin.ready)"
"$publish" register --tracker="$tracker_addr" --origin=origin --origin_url="http://$origin_addr/" \
  --insecure game@1 >/dev/null 2>register.log || { bad "register: $(cat register.log)"; exit 1; }

agents=(seed a1 a2 a3)
for a in "${agents[@]}"; do
  "$agent" --tracker="$tracker_addr" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$a" --datacenter=dc1 --rack=r1 --trust=key.pub --insecure --durable=false \
    --disk_quota=$((1 << 30)) --ready_file="$a.json" 2>"$a.log" &
  pids+=($!)
  eval "pid_$a=$!"
done
agent_metrics=()
for a in "${agents[@]}"; do
  wait_file "$a.json" || { bad "agent $a did not start"; tail -5 "$a.log"; exit 1; }
  agent_metrics+=("$(json_field "$a.json" metrics)")
done
ok "origin, tracker and ${#agents[@]} agents started"

for addr in "$origin_metrics" "$tracker_metrics" "${agent_metrics[@]}"; do
  if [ "$(http_status "http://$addr/healthz")" = 200 ] && wait_ready "$addr"; then
    ok "$addr answers /healthz and /readyz"
  else
    bad "$addr: /healthz $(http_status "http://$addr/healthz"), /readyz $(curl -s "http://$addr/readyz")"
  fi
done

# Prometheus, before any transfer, so that the series show it happen.
start=$(date +%s)
prom_url=""
for attempt in 1 2 3; do  # a free port can be taken before Prometheus binds it
  port=$(free_port)
  rm -rf prom
  targets=(--tracker="$tracker_metrics" --origin="$origin_metrics")
  for m in "${agent_metrics[@]}"; do targets+=(--agent="$m"); done
  if prom_url=$("$run_local" prom --listen="127.0.0.1:$port" --scrape_interval=1s \
      --datacenter=dc1 "${targets[@]}" 2>run-local.log); then
    prom_pid=$(cat prom/prometheus.pid)
    break
  fi
  prom_url=""
done
[ -n "$prom_url" ] && ok "prometheus serving at $prom_url" \
  || { bad "prometheus did not start: $(tail -5 run-local.log)"; exit 1; }
targets=$(( 2 + ${#agents[@]} ))
q wait "$prom_url" 'count(up{job=~"shoal-.*"} == 1)' "$targets" 30 >/dev/null \
  && ok "prometheus scrapes all $targets targets" \
  || { bad "not all targets up: $(q value "$prom_url" 'count(up == 1)')"; tail -5 prom/prometheus.log; exit 1; }

timeout 120 "$ctl" --agent=seed/agent.sock fetch game@1 --json >seed.fetch 2>seed.ctl \
  && ok "the seed fetched the release" || { bad "seed fetch: $(tail -3 seed.ctl)"; exit 1; }
fetchers=()
for a in a1 a2 a3; do
  timeout 120 "$ctl" --agent="$a/agent.sock" fetch game@1 --dest="$work/install-$a" --json \
    >"$a.fetch" 2>"$a.ctl" &
  fetchers+=($!)
done
i=0
for a in a1 a2 a3; do
  wait "${fetchers[$i]}" && ok "agent $a fetched and installed the release" \
    || bad "agent $a: $(tail -2 "$a.ctl")"
  i=$((i + 1))
done

# The agents' own account: releases they completed, bytes by source.
completed=0; from_peers=0; from_origin=0
for a in "${agents[@]}"; do
  "$ctl" --agent="$a/agent.sock" status --json >"$a.status" 2>/dev/null || { bad "status of $a"; continue; }
  read -r done p o < <("$py" -c '
import json, sys
s = [r for r in json.load(open(sys.argv[1]))["releases"] if r["name"] == "game"]
r = s[0] if s else {}
done = r.get("state") == "RELEASE_STATE_SEEDING" and int(r.get("bytes_verified", 0)) == int(sys.argv[2])
print(int(done), int(r.get("bytes_from_peers", 0)), int(r.get("bytes_from_origin", 0)))' "$a.status" "$size")
  completed=$((completed + done)); from_peers=$((from_peers + p)); from_origin=$((from_origin + o))
done
echo "release $size bytes; $completed agents completed; status: $from_peers from peers, $from_origin from the origin"
[ "$completed" -eq "${#agents[@]}" ] && ok "every agent completed" || bad "$completed of ${#agents[@]} agents completed"
[ "$from_origin" -ge "$size" ] && [ "$from_peers" -ge "$size" ] \
  && ok "bytes came from the origin and from peers" || bad "origin $from_origin, peers $from_peers"

want=$(( size * completed ))
got=$(q wait "$prom_url" 'sum(shoal_agent_verified_bytes_total{job="shoal-agent"})' "$want" 30)
[ $? -eq 0 ] && ok "verified bytes in prometheus ($got) = $size x $completed completed agents" \
  || bad "verified bytes in prometheus: $got, want $want"
[ $((from_peers + from_origin)) -eq "$want" ] && ok "the agents' status sums to the same" \
  || bad "status: $from_peers + $from_origin != $want"
got=$(q wait "$prom_url" 'sum(shoal_agent_verified_bytes_total{source="origin"})' "$from_origin" 5)
[ $? -eq 0 ] && ok "verified bytes from the origin match the status ($got)" \
  || bad "from the origin: prometheus $got, status $from_origin"
got=$(q wait "$prom_url" 'sum(shoal_agent_verified_bytes_total{source="peer"})' "$from_peers" 5)
[ $? -eq 0 ] && ok "verified bytes from peers match the status ($got)" \
  || bad "from peers: prometheus $got, status $from_peers"
# The tracker refreshes its swarm gauges every 10 s.
got=$(q wait "$prom_url" 'shoal_tracker_peers{release="game@1",datacenter="dc1",state="seeding"}' \
  "${#agents[@]}" 40)
[ $? -eq 0 ] && ok "the tracker counts ${#agents[@]} seeding agents" || bad "tracker seeding peers: $got"
got=$(q wait "$prom_url" 'shoal_tracker_swarm_bytes{release="game@1",source="origin"}' "$from_origin" 30)
[ $? -eq 0 ] && ok "the tracker's swarm origin bytes match the agents ($got)" \
  || bad "tracker swarm origin bytes: $got, agents $from_origin"
got=$(q value "$prom_url" 'shoal_tracker_release_size_bytes{release="game@1"}')
[ "$got" = "$size.0" ] && ok "the tracker knows the release size" || bad "release size gauge: $got"
sent=$(q value "$prom_url" 'sum(shoal_origin_sent_bytes_total)')
"$py" -c "import sys; sys.exit(0 if float('$sent') >= $from_origin else 1)" 2>/dev/null \
  && ok "the origin sent at least the pieces agents verified from it ($sent bytes)" \
  || bad "origin sent $sent bytes, agents verified $from_origin from it"
got=$(q value "$prom_url" 'sum(shoal_origin_requests_total{code="206"})')
[ "$got" != none ] && ok "origin requests are counted by status ($got ranges)" || bad "no 206 responses counted"
got=$(q value "$prom_url" 'count(shoal_agent_last_announce_timestamp_seconds > 0)')
[ "$got" = "${#agents[@]}.0" ] && ok "every agent records its last announce" || bad "announce timestamps: $got"

if q dashboard "$prom_url" "$dashboard" "$start" 1 >dashboard-all.out 2>&1; then
  ok "every dashboard query returns data with All selected ($(tail -1 dashboard-all.out))"
else
  bad "dashboard queries, All selected:"; grep -v '^ok' dashboard-all.out
fi
if q dashboard "$prom_url" "$dashboard" "$start" 1 datacenter=dc1 release=game@1 \
    >dashboard-one.out 2>&1; then
  ok "every dashboard query returns data for dc1 and game@1 ($(tail -1 dashboard-one.out))"
else
  bad "dashboard queries, dc1 and game@1:"; grep -v '^ok' dashboard-one.out
fi
sed 's/^/    /' dashboard-one.out  # what each panel shows, for the log
if q rules "$prom_url" "$rules" >rules.out 2>&1; then
  ok "all $(grep -c '^ok' rules.out) alert rules evaluate without error and are quiet"
else
  bad "alert rules:"; grep -v '^ok' rules.out
fi

kill "$pid_a3"; wait "$pid_a3" 2>/dev/null
q wait "$prom_url" 'count(up{job="shoal-agent"} == 0)' 1 15 >/dev/null \
  && ok "a stopped agent shows as a down target (ShoalTargetDown's condition)" \
  || bad "a stopped agent is not seen as down"

kill "$tracker_pid"; wait "$tracker_pid" 2>/dev/null
seed_metrics=${agent_metrics[0]}
for _ in $(seq 1 200); do [ "$(http_status "http://$seed_metrics/readyz")" = 503 ] && break; sleep 0.1; done
body=$(curl -s "http://$seed_metrics/readyz")
[ "$(http_status "http://$seed_metrics/readyz")" = 503 ] && [[ "$body" == *tracker* ]] \
  && ok "an agent whose tracker stopped is not ready: $body" \
  || bad "agent /readyz with the tracker stopped: $body"

echo "took ${SECONDS}s"
finish
