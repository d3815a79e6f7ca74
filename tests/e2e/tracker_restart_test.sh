#!/usr/bin/env bash
# The tracker dies mid-rollout and comes back empty. Real processes on
# loopback with mutual TLS: the embedded origin, one tracker (memory store)
# on a fixed port picked here, eight agents following game/stable, their
# downloads from peers capped so that the rollout takes several seconds.
# Once the swarm holds a fifth of what it needs, the tracker gets SIGKILL.
# It is restarted on the same port with nothing in it; the publisher
# registers the release again and the operator sets the rollout again.
# Checks: the swarm was mid-rollout at the kill, the agents kept exchanging
# pieces with the peers they knew while it was down, every agent installs
# the release within 60 s, the files are byte-identical to the input, and
# the origin sent at most 1.25 x the release size.
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
port=$(free_port)
start_tracker tracker "127.0.0.1:$port"
register "$taddr" "$origin_url" game@1
dests=()
for i in $(seq 1 $n); do
  start_agent "a$i" "$taddr" --follow="game/stable=$work/dest$i" --download_limit=3000000
  mkdir -p "dest$i"
  dests+=("$work/dest$i")
done
ok "$n agents follow game/stable on the tracker at $taddr"

agents=()
for i in $(seq 1 $n); do agents+=("a$i"); done
verified_sum() { swarm_sum bytes_verified "${agents[@]}"; }
# complete_count: agents that installed the release.
complete_count() {
  local i c=0
  for i in $(seq 1 $n); do [ "$(readlink "dest$i/current" 2>/dev/null)" = game@1 ] && c=$((c + 1)); done
  echo $c
}

rollout "$taddr" set game/stable game@1 --percent=100
for _ in $(seq 1 300); do
  [ "$(verified_sum)" -ge $((size * n / 5)) ] && break
  sleep 0.05
done
before=$(verified_sum)
stop tracker KILL
done_at_kill=$(complete_count)
echo "tracker killed with $before of $((size * n)) bytes verified, $done_at_kill agents installed"
[ "$before" -gt 0 ] && [ "$done_at_kill" -lt "$n" ] && ok "the tracker was killed mid-rollout" \
  || bad "the kill came before the rollout started or after it ended"

sleep 2
during=$(verified_sum)
echo "with the tracker down for 2 s: $((during - before)) more bytes verified"
[ "$during" -gt "$before" ] && ok "the agents kept exchanging pieces while the tracker was down" \
  || bad "nothing arrived while the tracker was down"

start_tracker tracker "127.0.0.1:$port"
[ "$taddr" = "127.0.0.1:$port" ] || bad "the tracker came back on $taddr, not 127.0.0.1:$port"
register "$taddr" "$origin_url" game@1
rollout "$taddr" set game/stable game@1 --percent=100
ok "tracker restarted empty; release registered and rollout set again"

start=$SECONDS
wait_current 60 game@1 "${dests[@]}" \
  && ok "all $n agents installed game@1, $((SECONDS - start))s after the restart" \
  || give_up "the rollout did not complete after the tracker restart"
for i in $(seq 1 $n); do
  same_tree in "dest$i/current" || bad "agent $i: installed files differ from the input"
done
ok "installed files are byte-identical to the input on every agent"

origin_bytes=0
for i in $(seq 1 $n); do origin_bytes=$((origin_bytes + $(release_field "a$i" bytes_from_origin))); done
echo "release $size bytes; from the origin $origin_bytes"
[ "$origin_bytes" -le $((size * 125 / 100)) ] && ok "the origin sent at most 1.25 x the release" \
  || bad "the origin sent $origin_bytes bytes, more than 1.25 x $size"
finish
