#!/usr/bin/env bash
# A small swarm of real processes on loopback: the embedded origin, one
# tracker, five agents. One agent fetches the release first (from the origin,
# under leases), then four fetch it at once from it and from each other.
# Every gRPC link runs mutual TLS with a fleet CA made here. Checks: every
# agent completes, every file is byte-identical to the input, and the origin
# sent at most 1.25 x the release size in all.
set -uo pipefail
source "$(dirname "$0")/testlib.sh"
publish=$(realpath "$1"); tracker=$(realpath "$2"); agent=$(realpath "$3"); ctl=$(realpath "$4")
start_work
make_fleet_ca
issue_cert tracker "IP:127.0.0.1"
issue_cert agent "IP:127.0.0.1,DNS:agent.fleet"
issue_cert publisher "DNS:publisher.fleet"

mkdir -p in/bin in/assets
head -c $((9 * 1048576 + 4321)) /dev/urandom > in/assets/pack.bin
head -c $((3 * 1048576)) /dev/urandom > in/bin/server
head -c 777 /dev/urandom > in/assets/small.cfg
: > in/assets/empty
"$publish" keygen --out=key >/dev/null 2>&1
id=$("$publish" create --key=key --name=game --version=1 --origin=origin --piece_size=1048576 in 2>/dev/null | tail -n 1)
size=$(( 9 * 1048576 + 4321 + 3 * 1048576 + 777 ))

"$publish" serve --origin=origin --listen=127.0.0.1:0 --ready_file=origin.addr 2>origin.log &
pids+=($!)
"$tracker" --listen=127.0.0.1:0 --datacenter=dc1 --trust=key.pub $(tls_flags tracker) \
  --admin_identities=publisher.fleet \
  --ready_file=tracker.json 2>tracker.log &
pids+=($!)
wait_file origin.addr && wait_file tracker.json || { bad "origin or tracker did not start"; exit 1; }
tracker_addr=$(json_field tracker.json grpc)
"$publish" register --tracker="$tracker_addr" --origin=origin \
  --origin_url="http://$(cat origin.addr)/" $(tls_flags publisher) game@1 >/dev/null 2>register.log \
  && ok "release registered" || { bad "register: $(cat register.log)"; exit 1; }

for i in 1 2 3 4 5; do
  rack=r$(( i % 2 + 1 ))
  "$agent" --tracker="$tracker_addr" --listen=127.0.0.1:0 --data_dir="a$i" --datacenter=dc1 \
    --rack="$rack" --trust=key.pub $(tls_flags agent) --durable=false --ready_file="a$i.json" \
    2>"a$i.log" &
  pids+=($!)
done
for i in 1 2 3 4 5; do wait_file "a$i.json" || { bad "agent $i did not start"; cat "a$i.log"; exit 1; }; done
ok "five agents started"

timeout 120 "$ctl" --agent="a1/agent.sock" fetch game@1 --json > a1.fetch 2>a1.ctl \
  && ok "first agent fetched the release" || { bad "first fetch: $(tail -3 a1.ctl)"; tail -20 a1.log; exit 1; }
fetchers=()
for i in 2 3 4 5; do
  timeout 120 "$ctl" --agent="a$i/agent.sock" fetch "$id" --json > "a$i.fetch" 2>"a$i.ctl" &
  fetchers+=($!)
done
for i in 2 3 4 5; do
  if wait "${fetchers[$((i - 2))]}"; then ok "agent $i completed"; else bad "agent $i: $(tail -2 a$i.ctl)"; tail -20 "a$i.log"; fi
done

for i in 1 2 3 4 5; do
  same=1
  for f in assets/pack.bin bin/server assets/small.cfg assets/empty; do
    cmp -s "in/$f" "a$i/releases/$id/data/$f" || same=0
  done
  [ $same -eq 1 ] && ok "agent $i holds byte-identical files" || bad "agent $i content differs"
done

origin_bytes=0
peer_bytes=0
for i in 1 2 3 4 5; do
  o=$(/usr/bin/python3 -c "import json; print(json.load(open('a$i.fetch'))['bytes_from_origin'])" 2>/dev/null || echo 0)
  p=$(/usr/bin/python3 -c "import json; print(json.load(open('a$i.fetch'))['bytes_from_peers'])" 2>/dev/null || echo 0)
  origin_bytes=$((origin_bytes + o)); peer_bytes=$((peer_bytes + p))
done
echo "release $size bytes; from origin $origin_bytes, from peers $peer_bytes"
limit=$(( size * 125 / 100 ))
[ "$origin_bytes" -le "$limit" ] && ok "origin sent at most 1.25 x the release" \
  || bad "origin sent $origin_bytes bytes, more than $limit"
[ "$peer_bytes" -ge $(( size * 3 )) ] && ok "the other agents got most bytes from peers" \
  || bad "only $peer_bytes bytes came from peers"

finish
