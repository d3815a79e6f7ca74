#!/usr/bin/env bash
# End-to-end: three datacenters as network namespaces. A "core" namespace
# holds a bridge and the origin (10.77.0.1); datacenter N is a namespace
# with one address (10.77.0.1N) on a veth into that bridge, capped at
# 100 Mbit/s each way with tc tbf (this kernel has no netem: no latency). In
# each datacenter run its own tracker and three agents (racks r1..r3) whose
# --tracker is that tracker; traffic within a datacenter stays inside its
# namespace, traffic between datacenters and to the origin crosses the capped
# links. Mutual TLS throughout, certificates naming the namespace addresses.
# All nine agents fetch the release at once. Checks: every agent completes
# with byte-identical files; each datacenter pulls about one copy from the
# origin (its agents' verified origin bytes at most 1.25 x the release, and
# the bytes its link carried into it at most that plus packet overhead); no
# agent verified a byte from another datacenter's agents
# (shoal_agent_verified_bytes_total{source="peer",locality="remote"} is 0)
# while each datacenter did get most of the release from its own peers.
# Skipped, visibly, where network namespaces cannot be made (not root).
set -uo pipefail
source "$(dirname "$0")/../testlib.sh"
source "$(dirname "$0")/e2elib.sh" "$@"

dcs=3
per_dc=3
prefix=shoal-e2e-$$
core=$prefix-core
namespaces=()
net_cleanup() {
  local name ns
  for name in "${!pid_of[@]}"; do stop "$name" KILL 2>/dev/null; done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null; done
  e2e_cleanup
}
trap net_cleanup EXIT

if ! ip netns add "$core" 2>netns.err; then
  echo "SKIPPED: cannot create network namespaces here ($(cat netns.err)); run as root (CI does)"
  exit 0
fi
namespaces+=("$core")
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
dc_ns() { echo "$prefix-dc$1"; }
dc_ip() { echo "10.77.0.$((10 + $1))"; }

# The network: bridge and origin address in the core, one capped link per
# datacenter.
ip -n "$core" link set lo up
ip -n "$core" link add br0 type bridge || give_up "cannot create a bridge"
ip -n "$core" addr add 10.77.0.1/24 dev br0
ip -n "$core" link set br0 up
for d in $(seq 1 $dcs); do
  ns=$(dc_ns "$d")
  ip netns add "$ns" || give_up "cannot create namespace $ns"
  namespaces+=("$ns")
  ip link add name eth0 netns "$ns" type veth peer name "dc$d" netns "$core" \
    || give_up "cannot create the veth of dc$d"
  ip -n "$core" link set "dc$d" master br0
  ip -n "$core" link set "dc$d" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$(dc_ip "$d")/24" dev eth0
  ip -n "$ns" link set eth0 up
  for side in "$core dc$d" "$ns eth0"; do
    read -r side_ns side_dev <<<"$side"
    tc -n "$side_ns" qdisc add dev "$side_dev" root tbf rate 100mbit burst 128kb latency 200ms \
      || give_up "cannot cap the link of dc$d with tc tbf"
  done
done
ok "$dcs datacenters as namespaces, 100 Mbit/s links into a bridge"

sans=IP:10.77.0.1
for d in $(seq 1 $dcs); do sans="$sans,IP:$(dc_ip "$d")"; done
make_fleet_ca
issue_cert tracker "$sans"
issue_cert agent "$sans,DNS:agent.fleet"
issue_cert publisher "DNS:publisher.fleet"

piece=1048576
make_input in 16
size=$(tree_size in)
"$publish" keygen --out=key >/dev/null 2>&1
id=$("$publish" create --key=key --name=game --version=1 --origin=origin --piece_size=$piece in \
  2>create.log | tail -n 1)

spawn origin in_ns "$core" "$publish" serve --origin=origin --listen=10.77.0.1:0 \
  --ready_file=origin.addr
wait_file origin.addr || give_up "origin did not start"
trackers=()
for d in $(seq 1 $dcs); do
  spawn "tracker$d" in_ns "$(dc_ns "$d")" "$tracker" --listen="$(dc_ip "$d"):0" \
    --datacenter="dc$d" --trust=key.pub $(tls_flags tracker) \
    --admin_identities=publisher.fleet --ready_file="tracker$d.json"
  wait_file "tracker$d.json" || give_up "tracker of dc$d did not start"
  trackers+=("$(json_field "tracker$d.json" grpc)")
done
all_trackers=$(IFS=,; echo "${trackers[*]}")
in_ns "$core" "$publish" register --tracker="$all_trackers" --origin=origin \
  --origin_url="http://$(cat origin.addr)/" $(tls_flags publisher) game@1 >register.out 2>&1 \
  || give_up "register: $(cat register.out)"
ok "origin and one tracker per datacenter; release registered with each ($all_trackers)"

agents=()
for d in $(seq 1 $dcs); do
  for r in $(seq 1 $per_dc); do
    a=dc$d-a$r
    agents+=("$a")
    spawn "$a" in_ns "$(dc_ns "$d")" "$agent" --tracker="${trackers[$((d - 1))]}" \
      --listen="$(dc_ip "$d"):0" --metrics_listen="$(dc_ip "$d"):0" --data_dir="$a" \
      --datacenter="dc$d" --rack="r$r" --trust=key.pub $(tls_flags agent) --durable=false \
      --ready_file="$a.json"
  done
done
for a in "${agents[@]}"; do wait_file "$a.json" || give_up "agent $a did not start"; done
ok "${#agents[@]} agents started, $per_dc per datacenter"

link_bytes() {  # link_bytes D: bytes the core sent into datacenter D
  in_ns "$core" cat "/sys/class/net/dc$1/statistics/tx_bytes"
}
declare -A before
for d in $(seq 1 $dcs); do before[$d]=$(link_bytes "$d"); done
for a in "${agents[@]}"; do
  spawn "fetch-$a" timeout 60 "$ctl" --agent="$a/agent.sock" fetch game@1 --json
done
for a in "${agents[@]}"; do
  wait "${pid_of[fetch-$a]}" && ok "$a completed" || bad "$a: $(tail -n 2 "fetch-$a.log")"
  unset "pid_of[fetch-$a]"
  same_tree in "$a/releases/$id/data" >/dev/null && ok "$a holds byte-identical files" \
    || bad "$a content differs"
done

# verified_by AGENT DC: the agent's verified bytes by locality, from its
# /metrics, as "v_origin=N v_rack=N v_datacenter=N v_remote=N".
verified_by() {
  in_ns "$(dc_ns "$2")" $py - "$(json_field "$1.json" metrics)" <<'EOF'
import re, sys, urllib.request
text = urllib.request.urlopen("http://%s/metrics" % sys.argv[1], timeout=5).read().decode()
got = {"origin": 0, "rack": 0, "datacenter": 0, "remote": 0}
for line in text.splitlines():
    if not line.startswith("shoal_agent_verified_bytes_total{"):
        continue
    labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
    got[labels["locality"]] += int(float(line.rsplit(" ", 1)[1]))
print(" ".join("v_%s=%d" % kv for kv in got.items()))
EOF
}
limit=$(( size * 125 / 100 ))
for d in $(seq 1 $dcs); do
  origin=0; local_peers=0; remote=0
  for r in $(seq 1 $per_dc); do
    a=dc$d-a$r
    counts=$(verified_by "$a" "$d") || { bad "cannot read the metrics of $a"; continue; }
    echo "$a verified bytes: $counts"
    eval "$counts"
    origin=$((origin + v_origin)); local_peers=$((local_peers + v_rack + v_datacenter))
    remote=$((remote + v_remote))
  done
  carried=$(( $(link_bytes "$d") - before[$d] ))
  echo "dc$d: from the origin $origin, from its own peers $local_peers, from other datacenters" \
    "$remote; its link carried $carried bytes in; release $size"
  [ "$origin" -le "$limit" ] && ok "dc$d pulled at most 1.25 x the release from the origin" \
    || bad "dc$d pulled $origin bytes from the origin, more than $limit"
  # Packet headers and TLS add a few percent to what the link carries.
  [ "$carried" -le $(( limit * 105 / 100 )) ] \
    && ok "dc$d's link carried about one copy in" \
    || bad "dc$d's link carried $carried bytes in, more than 1.25 x the release and overhead"
  [ "$remote" -eq 0 ] && ok "dc$d pulled nothing from another datacenter's agents" \
    || bad "dc$d verified $remote bytes from other datacenters' agents"
  [ "$local_peers" -ge "$size" ] && ok "dc$d got most of the release from its own peers" \
    || bad "dc$d got only $local_peers bytes from its own peers"
done
finish
