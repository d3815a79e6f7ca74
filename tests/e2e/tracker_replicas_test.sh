#!/usr/bin/env bash
# Two tracker replicas on one real Redis, one killed mid-download. Real
# processes on loopback with mutual TLS: a redis-server started here, two
# trackers sharing it, the embedded origin, eight agents following
# game/stable and given both trackers (half list A first, half B first),
# their downloads from peers capped so that the rollout takes several
# seconds. The release is registered and rolled out through A only: B knows
# of it through Redis. Once the swarm holds a fifth of what it needs, A gets
# SIGKILL. Checks: A died mid-download; from then on no agent goes 15 s
# without verifying a byte until it has the release; every agent installs
# it within 60 s, byte-identical to the input; the origin sent at most
# 1.25 x the release size.
set -uo pipefail
source "$(dirname "$0")/../testlib.sh"
source "$(dirname "$0")/e2elib.sh" "$@"

n=8
make_pki
make_input in 24
size=$(tree_size in)
"$publish" keygen --out=key >/dev/null 2>&1
"$publish" create --key=key --name=game --version=1 --origin=origin --piece_size=262144 in \
  >/dev/null 2>create.log || give_up "create: $(cat create.log)"

start_origin origin origin
start_redis redis
start_tracker trackerA 127.0.0.1:0 --store="$redis_url"
a=$taddr
start_tracker trackerB 127.0.0.1:0 --store="$redis_url"
b=$taddr
ok "trackers A ($a) and B ($b) share $redis_url"
register "$a" "$origin_url" game@1

agents=()
dests=()
for i in $(seq 1 $n); do
  if [ $((i % 2)) -eq 1 ]; then trackers="$a,$b"; else trackers="$b,$a"; fi
  start_agent "a$i" "$trackers" --follow="game/stable=$work/dest$i" --download_limit=3000000
  mkdir -p "dest$i"
  agents+=("a$i")
  dests+=("$work/dest$i")
done
ok "$n agents follow game/stable on both trackers"

rollout "$a" set game/stable game@1 --percent=100
for _ in $(seq 1 300); do
  [ "$(swarm_sum bytes_verified "${agents[@]}")" -ge $((size * n / 5)) ] && break
  sleep 0.05
done
stop trackerA KILL
mapfile -t at_kill < <(swarm_field bytes_verified "${agents[@]}")
done_at_kill=0
for v in "${at_kill[@]}"; do [ "$v" -eq "$size" ] && done_at_kill=$((done_at_kill + 1)); done
echo "tracker A killed; agents hold ${at_kill[*]} of $size bytes"
[ "$done_at_kill" -lt "$n" ] && ok "tracker A was killed mid-download" \
  || bad "every agent was done before the kill: the test did not exercise failover"

# Each agent's last progress, until all hold the release or one stalls.
start=$SECONDS
last=("${at_kill[@]}")
declare -a moved
for i in $(seq 0 $((n - 1))); do moved[$i]=$SECONDS; done
stalled=""
while :; do
  mapfile -t now < <(swarm_field bytes_verified "${agents[@]}")
  complete=0
  for i in $(seq 0 $((n - 1))); do
    v=${now[$i]:-0}
    if [ "$v" -eq "$size" ]; then complete=$((complete + 1)); continue; fi
    if [ "$v" -gt "${last[$i]}" ]; then last[$i]=$v; moved[$i]=$SECONDS; fi
    [ $((SECONDS - moved[i])) -ge 15 ] && stalled="$stalled a$((i + 1))"
  done
  [ "$complete" -eq "$n" ] || [ -n "$stalled" ] || [ $((SECONDS - start)) -ge 60 ] && break
  sleep 0.5
done
[ -z "$stalled" ] && ok "no agent stalled after the kill" \
  || bad "stalled for 15 s after the kill:$stalled"
wait_current 20 game@1 "${dests[@]}" \
  && ok "all $n agents installed game@1, $((SECONDS - start))s after the kill" \
  || give_up "the rollout did not complete with one tracker left"
for i in $(seq 1 $n); do
  same_tree in "dest$i/current" || bad "agent $i: installed files differ from the input"
done
ok "installed files are byte-identical to the input on every agent"

origin_bytes=$(swarm_sum bytes_from_origin "${agents[@]}")
echo "release $size bytes; from the origin $origin_bytes"
[ "$origin_bytes" -le $((size * 125 / 100)) ] && ok "the origin sent at most 1.25 x the release" \
  || bad "the origin sent $origin_bytes bytes, more than 1.25 x $size"
finish
