#!/usr/bin/env bash
# An agent killed with SIGKILL at random moments mid-download and restarted
# each time completes the release, keeps what it had verified, and pulls in
# all at most the release plus the pieces in flight at each kill. The seed's
# upload is capped so that the download lasts long enough to be killed.
set -uo pipefail
source "$(dirname "$0")/testlib.sh"
publish=$(realpath "$1"); tracker=$(realpath "$2"); agent=$(realpath "$3"); ctl=$(realpath "$4")
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

piece=262144
head -c $((24 * 1048576 + 999)) /dev/urandom > release.bin
size=$((24 * 1048576 + 999))
"$publish" keygen --out=key >/dev/null 2>&1
id=$("$publish" create --key=key --name=big --version=1 --origin=origin --piece_size=$piece release.bin 2>/dev/null | tail -n 1)
"$publish" serve --origin=origin --listen=127.0.0.1:0 --ready_file=origin.addr 2>origin.log &
pids+=($!)
"$tracker" --listen=127.0.0.1:0 --datacenter=dc1 --trust=key.pub --insecure --ready_file=tracker.json 2>tracker.log &
pids+=($!)
wait_file origin.addr && wait_file tracker.json || { bad "origin or tracker did not start"; exit 1; }
taddr=$(json_field tracker.json grpc)
"$publish" register --tracker="$taddr" --origin=origin --origin_url="http://$(cat origin.addr)/" \
  --insecure big@1 >/dev/null 2>&1 || { bad "register"; exit 1; }

start_agent() {  # start_agent NAME EXTRA...: starts an agent; its pid in $started
  rm -f "$1.json"
  "$agent" --tracker="$taddr" --listen=127.0.0.1:0 --data_dir="$1" --datacenter=dc1 --rack=r1 \
    --trust=key.pub --insecure --ready_file="$1.json" "${@:2}" >/dev/null 2>>"$1.log" &
  started=$!
  pids+=($started)
  wait_file "$1.json"
}
start_agent seed --upload_limit=6000000
"$ctl" --agent=seed/agent.sock fetch big@1 >/dev/null 2>&1 && ok "seed fetched the release" \
  || { bad "seed fetch"; exit 1; }

status_verified() {  # pieces the leech reports verified
  "$ctl" --agent=leech/agent.sock status --json 2>/dev/null \
    | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["releases"]; print(r[0]["pieces_verified"] if r else 0)'
}
kills=0
recorded=0
for round in 1 2 3; do
  start_agent leech
  leech=$started
  resumed=$(status_verified)
  if [ "${resumed:-0}" -ge "$recorded" ]; then ok "round $round: resumed with $resumed pieces, none lost"
  else bad "round $round: resumed with $resumed pieces, fewer than the $recorded recorded before the kill"; fi
  "$ctl" --agent=leech/agent.sock fetch big@1 >/dev/null 2>&1 &
  pids+=($!)
  sleep "0.$(( RANDOM % 6 + 3 ))"
  # Pieces verified now are recorded within the engine's commit interval (0.5 s).
  recorded=$(status_verified)
  sleep "1.$(( RANDOM % 5 ))"
  kill -9 "$leech"; wait "$leech" 2>/dev/null
  kills=$((kills + 1))
done

start_agent leech
timeout 120 "$ctl" --agent=leech/agent.sock fetch big@1 --json > final.json 2>final.err \
  && ok "completes after $kills kills" || bad "final fetch: $(cat final.err)"
cmp -s release.bin "leech/releases/$id/data/release.bin" && ok "content byte-identical" \
  || bad "content differs"
sent=$("$ctl" --agent=seed/agent.sock status --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["releases"][0]["bytes_sent"])')
origin=$(json_field final.json bytes_from_origin)
in_flight=$(( 16 * piece ))
limit=$(( size + kills * in_flight ))
echo "release $size bytes; the seed sent $sent, the origin $origin to the leech's last run; limit $limit"
[ $(( sent + origin )) -le "$limit" ] && ok "pulled at most the release plus the pieces in flight at each kill" \
  || bad "pulled $(( sent + origin )) bytes, more than $limit"
finish
