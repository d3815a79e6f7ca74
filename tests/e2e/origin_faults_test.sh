#!/usr/bin/env bash
# The origin misbehaves, then disappears. Real processes on loopback with
# mutual TLS: the embedded origin behind faulty_origin.py (a proxy that,
# while told to, answers 500, 429 with Retry-After and bodies cut short, in
# turn), one tracker, agents.
#
# First three agents fetch the release while the origin only fails: the
# origin is their only source. After at least 4 s and a few faults of each
# kind the origin heals. Checks: every kind of fault was served; the agents
# backed off (at most 25 origin requests a second in all while it failed,
# where retrying at once would make hundreds); nothing was verified from a
# failing origin; all three complete (each fetch is bounded at 120 s, the
# failures included), with byte-identical files.
#
# Then the proxy and the origin are stopped for good and four new agents
# fetch the release. Checks: each completes within 60 s, every byte from
# peers and none from the origin, byte-identical.
set -uo pipefail
source "$(dirname "$0")/../testlib.sh"
source "$(dirname "$0")/e2elib.sh" "$@"
faulty=$e2e_here/faulty_origin.py

make_pki
make_input in 8
size=$(tree_size in)
"$publish" keygen --out=key >/dev/null 2>&1
"$publish" create --key=key --name=game --version=1 --origin=origin --piece_size=262144 in \
  >/dev/null 2>create.log || give_up "create: $(cat create.log)"

start_origin origin origin
touch faults.on
spawn proxy $py "$faulty" --upstream="$origin_url" --fault_file="$work/faults.on" \
  --ready_file=proxy.addr --stats_file=proxy.json
wait_file proxy.addr || give_up "the faulty origin did not start"
proxy_url="http://$(cat proxy.addr)/"
start_tracker tracker 127.0.0.1:0
register "$taddr" "$proxy_url" game@1
ok "origin $origin_url behind the faulty proxy $proxy_url, which fails every request"

# fetch_all SECONDS NAME...: each agent fetches the release; its shoalctl is
# process fetch-NAME. wait_fetches NAME...: waits for them; fails the ones
# that did not complete.
fetch_all() {
  local bound=$1 name
  shift
  for name in "$@"; do
    spawn "fetch-$name" timeout "$bound" "$ctl" --agent="$name/agent.sock" fetch game@1 --json
  done
}
wait_fetches() {
  local name
  for name in "$@"; do
    if wait "${pid_of[fetch-$name]}"; then ok "$name completed"
    else bad "$name did not complete: $(grep -v '^{' "fetch-$name.log" | tail -n 2)"; fi
    unset "pid_of[fetch-$name]"
  done
}
stat_of() { json_field "${stats:-proxy.json}" "$1"; }

first=(a1 a2 a3)
for a in "${first[@]}"; do start_agent "$a" "$taddr"; done
fetch_all 120 "${first[@]}"
start=$SECONDS
for _ in $(seq 1 300); do
  if [ $((SECONDS - start)) -ge 4 ] && [ "$(stat_of error_500)" -ge 3 ] \
    && [ "$(stat_of too_many)" -ge 3 ] && [ "$(stat_of short_body)" -ge 3 ]; then
    break
  fi
  sleep 0.1
done
verified_while_failing=$(swarm_sum bytes_verified "${first[@]}")
cp proxy.json failing.json
rm faults.on
stats=failing.json
failing_for=$($py -c 'import json; s = json.load(open("failing.json")); print("%.1f" % (s["last_fault"] - s["first_fault"]))')
faulted=$(( $(stat_of error_500) + $(stat_of too_many) + $(stat_of short_body) ))
echo "the origin failed for ${failing_for}s: $(cat failing.json)"
[ "$(stat_of error_500)" -gt 0 ] && [ "$(stat_of too_many)" -gt 0 ] && [ "$(stat_of short_body)" -gt 0 ] \
  && ok "the origin answered 500, 429 and short bodies" \
  || bad "not every fault was served: $(cat failing.json)"
$py -c 'import sys; sys.exit(0 if int(sys.argv[1]) <= 25 * max(float(sys.argv[2]), 1) else 1)' \
  "$faulted" "$failing_for" \
  && ok "the agents backed off: $faulted requests in ${failing_for}s of failures" \
  || bad "$faulted origin requests in ${failing_for}s of failures: no backoff"
[ "$verified_while_failing" -eq 0 ] && ok "nothing was verified while the only source failed" \
  || bad "$verified_while_failing bytes verified from an origin that only failed"

healed=$SECONDS
wait_fetches "${first[@]}"
echo "completed $((SECONDS - healed))s after the origin healed"
for a in "${first[@]}"; do
  same_tree in "$a/releases/"*/data || bad "$a: files differ from the input"
done
ok "the first agents hold byte-identical files"

stop proxy
stop origin
ok "the origin is gone"
late=(b1 b2 b3 b4)
for a in "${late[@]}"; do start_agent "$a" "$taddr"; done
fetch_all 60 "${late[@]}"
wait_fetches "${late[@]}"
for a in "${late[@]}"; do
  same_tree in "$a/releases/"*/data || bad "$a: files differ from the input"
  from_origin=$(release_field "$a" bytes_from_origin)
  from_peers=$(release_field "$a" bytes_from_peers)
  [ "$from_origin" -eq 0 ] && [ "$from_peers" -eq "$size" ] \
    || bad "$a: $from_peers bytes from peers, $from_origin from the origin; expected all $size from peers"
done
ok "with the origin gone, the late agents got every byte from peers, byte-identical"
finish
