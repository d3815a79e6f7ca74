#!/usr/bin/env bash
# Honest agents in a swarm with hostile peers, all real processes on loopback
# with mutual TLS: the embedded origin, one tracker, one hostile peer per mode
# (//agent:hostile_peer), each announcing every piece. First, an honest agent
# in rack r2 fetches the release while the hostile peers are the only
# holders the tracker knows: it must get it all from the origin. Then three
# honest agents in rack r1, the hostile peers' rack, fetch it at once: the
# hostile peers are the nearest holders, so they are asked first. Checks:
# every honest agent completes with byte-identical files, saw proof failures,
# banned peers, and banned hostile peers only; the first one took no byte from
# a peer; every hostile peer was asked for pieces and exits on SIGTERM; and a
# late agent that can get the release only from the three verifies all they
# serve without a single proof failure.
set -uo pipefail
source "$(dirname "$0")/../testlib.sh"
publish=$(realpath "$1"); tracker=$(realpath "$2"); agent=$(realpath "$3")
ctl=$(realpath "$4"); hostile=$(realpath "$5")
start_work

modes=(flip wrong_piece bogus_proof lie stall oversize)
bad_bytes_modes=(flip wrong_piece bogus_proof)
honest=(h1 h2 h3)
files=(data/pack.bin bin/tool small.cfg empty)

# forget PID: drops a reaped process from the ones cleanup stops.
forget() {
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
  pids=("${keep[@]}")
}
# show_logs: the end of every process log, for a failure.
show_logs() {
  local f
  for f in *.log; do echo "----- $f"; tail -n 30 "$f"; done
}
give_up() { bad "$1"; show_logs; finish; exit 1; }
# start_agent NAME RACK: an agent in dc1, its pid in $started; waits until
# it serves.
start_agent() {
  "$agent" --tracker="$tracker_addr" --listen=127.0.0.1:0 --data_dir="$1" --datacenter=dc1 \
    --rack="$2" --trust=key.pub $(tls_flags agent) --durable=false --ready_file="$1.json" \
    2>"$1.log" &
  started=$!
  pids+=($started)
  wait_file "$1.json" || give_up "agent $1 did not start"
}
# fetch_all NAME...: the agents fetch the release at once; fails the ones
# that do not complete within 60 s.
fetch_all() {
  local fetchers=() name i
  for name in "$@"; do
    timeout 60 "$ctl" --agent="$name/agent.sock" fetch "$id" --json >"$name.fetch" 2>"$name.ctl" &
    fetchers+=($!)
    pids+=($!)
  done
  i=0
  for name in "$@"; do
    if wait "${fetchers[$i]}"; then ok "$name completed"; else bad "$name: $(tail -2 "$name.ctl")"; fi
    forget "${fetchers[$i]}"
    i=$((i + 1))
  done
}
# same_files NAME: true when the agent's copy of every file is the input.
same_files() {
  local f
  for f in "${files[@]}"; do cmp -s "in/$f" "$1/releases/$id/data/$f" || return 1; done
}
# counters NAME: "PROOF_FAILURES BANNED" from the agent's status line.
counters() {
  "$ctl" --agent="$1/agent.sock" status 2>/dev/null | grep "game@1" \
    | sed -n 's/.* \([0-9][0-9]*\) proof failures, \([0-9][0-9]*\) banned.*/\1 \2/p'
}

make_fleet_ca
issue_cert tracker "IP:127.0.0.1"
issue_cert agent "IP:127.0.0.1,DNS:agent.fleet"
issue_cert publisher "DNS:publisher.fleet"

# 256 KiB pieces: 21 + 4 + 1 pieces, so that there are many requests to
# spread over the peers; full pieces of one file give wrong_piece its
# substitutes, and the one-piece file gives bogus_proof an empty proof.
mkdir -p in/data in/bin
head -c $((5 * 1048576 + 12345)) /dev/urandom > in/data/pack.bin
head -c $((1 * 1048576)) /dev/urandom > in/bin/tool
head -c 777 /dev/urandom > in/small.cfg
: > in/empty
size=$((5 * 1048576 + 12345 + 1048576 + 777))
"$publish" keygen --out=key >/dev/null 2>&1
id=$("$publish" create --key=key --name=game --version=1 --origin=origin --piece_size=262144 in \
  2>/dev/null | tail -n 1)

"$publish" serve --origin=origin --listen=127.0.0.1:0 --ready_file=origin.addr 2>origin.log &
pids+=($!)
"$tracker" --listen=127.0.0.1:0 --datacenter=dc1 --trust=key.pub $(tls_flags tracker) \
  --admin_identities=publisher.fleet --ready_file=tracker.json 2>tracker.log &
pids+=($!)
wait_file origin.addr && wait_file tracker.json || give_up "origin or tracker did not start"
tracker_addr=$(json_field tracker.json grpc)
"$publish" register --tracker="$tracker_addr" --origin=origin \
  --origin_url="http://$(cat origin.addr)/" $(tls_flags publisher) game@1 >/dev/null 2>register.log \
  || give_up "register: $(cat register.log)"

hostile_pid=()
for m in "${modes[@]}"; do
  "$hostile" --origin=origin --release="$id" --mode="$m" --tracker="$tracker_addr" \
    --datacenter=dc1 --rack=r1 $(tls_flags agent) --ready_file="hostile_$m.json" \
    --stats_file="hostile_$m.stats" --hold_limit=60s --lifetime=5m 2>"hostile_$m.log" &
  hostile_pid+=($!)
  pids+=($!)
done
hostile_ids=""
for m in "${modes[@]}"; do
  wait_file "hostile_$m.json" || give_up "hostile peer $m did not start"
  hostile_ids="$hostile_ids $(json_field "hostile_$m.json" peer_id)"
done
ok "${#modes[@]} hostile peers announced themselves as seeds"

# check_survivor NAME: the agent's files are the input, and it rejected bad
# pieces and banned their senders, hostile peers only.
check_survivor() {
  local p strangers=0
  same_files "$1" && ok "$1 holds byte-identical files" || bad "$1 content differs"
  read -r failures_seen banned <<<"$(counters "$1")"
  echo "$1: ${failures_seen:-?} proof failures, ${banned:-?} banned"
  [ "${failures_seen:-0}" -gt 0 ] && [ "${banned:-0}" -gt 0 ] \
    && ok "$1 rejected bad pieces and banned their senders" \
    || bad "$1 reports ${failures_seen:-no} proof failures and ${banned:-no} bans"
  for p in $(grep -o 'banned peer [0-9a-f]*' "$1.log" | awk '{print $3}' | sort -u); do
    case " $hostile_ids " in *" $p "*) ;; *) strangers=$((strangers + 1)); echo "$1 banned $p";; esac
  done
  [ "$strangers" -eq 0 ] && ok "$1 banned hostile peers only" || bad "$1 banned $strangers honest peers"
}

# No honest holder yet: the tracker grants origin leases only once the agent
# reports that the holders it tried failed.
start_agent first r2
first_pid=$started
fetch_all first
check_survivor first
first_from_peers=$(json_field first.fetch bytes_from_peers 2>/dev/null || echo -1)
[ "$first_from_peers" -eq 0 ] && ok "first agent took every byte from the origin, none from a peer" \
  || bad "first agent took $first_from_peers bytes from peers, and only hostile ones hold the release"

for h in "${honest[@]}"; do start_agent "$h" r1; done
fetch_all "${honest[@]}"
for h in "${honest[@]}"; do check_survivor "$h"; done

for m in "${modes[@]}"; do
  requests=$(json_field "hostile_$m.stats" requests 2>/dev/null || echo 0)
  echo "hostile $m: $(cat "hostile_$m.stats" 2>/dev/null)"
  [ "${requests:-0}" -gt 0 ] && ok "hostile $m was asked for $requests pieces" \
    || bad "hostile $m was never asked for a piece: the test did not exercise it"
done
for m in "${bad_bytes_modes[@]}"; do
  peer_id=$(json_field "hostile_$m.json" peer_id)
  banners=$(grep -l "banned peer $peer_id" first.log "${honest[@]/%/.log}" | wc -l)
  [ "$banners" -gt 0 ] && ok "hostile $m was banned by $banners honest agents" \
    || bad "no honest agent banned hostile $m"
done

i=0
for m in "${modes[@]}"; do
  p=${hostile_pid[$i]}
  kill -TERM "$p"
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    bad "hostile $m still running 5 s after SIGTERM"; kill -9 "$p"; wait "$p" 2>/dev/null
  elif wait "$p"; then ok "hostile $m exited cleanly on SIGTERM"
  else bad "hostile $m exited with status $? on SIGTERM"; fi
  forget "$p"
  i=$((i + 1))
done

# What the honest agents serve: with the first agent and the hostile peers
# gone, a late agent gets every piece from the three and checks each proof.
kill -TERM "$first_pid"; wait "$first_pid" 2>/dev/null; forget "$first_pid"
start_agent late r1
fetch_all late
same_files late && ok "late agent holds byte-identical files" || bad "late agent content differs"
read -r failures_seen banned <<<"$(counters late)"
[ "${failures_seen:-1}" -eq 0 ] && [ "${banned:-1}" -eq 0 ] \
  && ok "the honest agents served only pieces that proved good" \
  || bad "late agent: ${failures_seen:-?} proof failures, ${banned:-?} banned from honest agents"
from_peers=$(json_field late.fetch bytes_from_peers 2>/dev/null || echo 0)
[ "$from_peers" -eq "$size" ] && ok "late agent got all $size bytes from the honest agents" \
  || bad "late agent got $from_peers of $size bytes from peers"

[ "$failures" -eq 0 ] || show_logs
finish
