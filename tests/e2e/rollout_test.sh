#!/usr/bin/env bash
# A rollout through a channel to eight agents, all real processes on loopback
# with mutual TLS: the embedded origin, one tracker, eight agents following
# game/stable, none holding anything. `shoalctl rollout set --percent=100`
# starts them all at once. Checks: every agent installs the release within
# 60 s, every installed file is byte-identical to the input, and the origin
# sent at most 1.25 x the release size in all (the agents' own counts of
# verified bytes from the origin, which the tracker's swarm view confirms).
set -uo pipefail
source "$(dirname "$0")/../testlib.sh"
source "$(dirname "$0")/e2elib.sh" "$@"

n=8
make_pki
make_input in 24
size=$(tree_size in)
"$publish" keygen --out=key >/dev/null 2>&1
"$publish" create --key=key --name=game --version=1 --origin=origin --piece_size=524288 in \
  >/dev/null 2>create.log || give_up "create: $(cat create.log)"

start_origin origin origin
start_tracker tracker 127.0.0.1:0
register "$taddr" "$origin_url" game@1
dests=()
for i in $(seq 1 $n); do
  start_agent "a$i" "$taddr" --follow="game/stable=$work/dest$i"
  mkdir -p "dest$i"
  dests+=("$work/dest$i")
done
ok "$n agents follow game/stable"

rollout "$taddr" set game/stable game@1 --percent=100
start=$SECONDS
wait_current 60 game@1 "${dests[@]}" && ok "all $n agents installed game@1 in $((SECONDS - start))s" \
  || give_up "rollout did not reach every agent"

for i in $(seq 1 $n); do
  same_tree in "dest$i/current" || bad "agent $i: installed files differ from the input"
done
ok "installed files are byte-identical to the input on every agent"

origin_bytes=0
peer_bytes=0
for i in $(seq 1 $n); do
  origin_bytes=$((origin_bytes + $(release_field "a$i" bytes_from_origin)))
  peer_bytes=$((peer_bytes + $(release_field "a$i" bytes_from_peers)))
done
echo "release $size bytes; from the origin $origin_bytes, from peers $peer_bytes"
[ $((origin_bytes + peer_bytes)) -eq $((size * n)) ] && ok "every verified byte is counted once" \
  || bad "origin + peer bytes $((origin_bytes + peer_bytes)), expected $((size * n))"
limit=$((size * 125 / 100))
[ "$origin_bytes" -le "$limit" ] && ok "the origin sent at most 1.25 x the release" \
  || bad "the origin sent $origin_bytes bytes, more than $limit"

# The tracker's view of the same swarm, from the agents' announces.
for _ in $(seq 1 100); do
  "$ctl" --tracker="$taddr" $(tls_flags publisher) swarm game@1 --json >swarm.json 2>swarm.err
  copies=$($py -c '
import json, sys
rows = [json.loads(l) for l in open("swarm.json") if l.strip()]
r = [x for x in rows if int(x["peers_seeding"]) == int(sys.argv[1])]
print(r[0]["origin_copies"] if r else "")' "$n" 2>/dev/null)
  [ -n "$copies" ] && break
  sleep 0.2
done
echo "tracker: origin copies $copies"
$py -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= 1.25 else 1)' "${copies:-99}" \
  && ok "the tracker counts at most 1.25 origin copies" \
  || bad "the tracker counts ${copies:-no} origin copies: $(cat swarm.json swarm.err)"
finish
