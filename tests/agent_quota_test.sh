#!/usr/bin/env bash
# --disk_quota on a real agent: room is made by evicting the least recently
# used release that is complete, unpinned and not installed as current;
# when nothing may go, the fetch fails with a clear error and nothing held is
# harmed; a release larger than the quota is refused at once.
set -uo pipefail
source "$(dirname "$0")/testlib.sh"
publish=$(realpath "$1"); tracker=$(realpath "$2"); agent=$(realpath "$3"); ctl=$(realpath "$4")
start_work
dump_logs() { for f in tracker.log agent.log; do echo "--- $f"; tail -20 "$f"; done; }

"$publish" keygen --out=key >/dev/null 2>&1
mib=1048576
for r in 1 2 3 4; do
  mkdir -p "in$r"; head -c $mib /dev/urandom > "in$r/blob"
  "$publish" create --key=key --name=r$r --version=1 --origin=origin --piece_size=262144 "in$r" \
    2>/dev/null | tail -n 1 > "id$r"
done
mkdir -p in5; head -c $((4 * mib)) /dev/urandom > in5/blob
"$publish" create --key=key --name=big --version=1 --origin=origin --piece_size=262144 in5 >/dev/null 2>&1
"$publish" serve --origin=origin --listen=127.0.0.1:0 --ready_file=origin.addr 2>origin.log &
pids+=($!)
"$tracker" --listen=127.0.0.1:0 --datacenter=dc1 --trust=key.pub --insecure --ready_file=tracker.json \
  2>tracker.log &
pids+=($!)
wait_file origin.addr && wait_file tracker.json || { bad "origin or tracker did not start"; exit 1; }
taddr=$(json_field tracker.json grpc)
for r in r1 r2 r3 r4 big; do
  "$publish" register --tracker="$taddr" --origin=origin --origin_url="http://$(cat origin.addr)/" \
    --insecure "$r@1" >/dev/null 2>register.log || { bad "register $r: $(cat register.log)"; exit 1; }
done
# Room for three of the 1 MiB releases (each takes a little more than 1 MiB
# with its manifest, proofs and journal), not four.
"$agent" --tracker="$taddr" --listen=127.0.0.1:0 --data_dir=agent --datacenter=dc1 --rack=r1 \
  --trust=key.pub --insecure --durable=false --disk_quota=$((7 * mib / 2)) \
  --ready_file=agent.json 2>agent.log &
pids+=($!)
wait_file agent.json || { bad "agent did not start"; dump_logs; exit 1; }
sock=agent/agent.sock

fetch() { timeout 60 "$ctl" --agent=$sock fetch "$@" >fetch.out 2>fetch.err; }
held() { "$ctl" --agent=$sock status --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
print(" ".join(sorted(r["name"] for r in s.get("releases", []))))'; }

for r in r1 r2 r3; do fetch $r@1 || { bad "fetch $r: $(cat fetch.err)"; dump_logs; exit 1; }; sleep 0.05; done
fetch r1@1 || bad "fetch r1 again"   # r1 is now the most recently used
[ "$(held)" = "r1 r2 r3" ] && ok "three releases fit" || bad "held: $(held)"
fetch r4@1 && ok "r4 fetched under the quota" || bad "fetch r4: $(cat fetch.err)"
[ "$(held)" = "r1 r3 r4" ] && ok "the least recently used release (r2) was evicted" \
  || bad "after r4, held: $(held) (expected r1 r3 r4)"

"$ctl" --agent=$sock pin r1@1 >/dev/null 2>&1 && ok "r1 pinned" || bad "pin r1"
mkdir -p dest
fetch r3@1 --dest="$work/dest" && [ "$(readlink dest/current)" = r3@1 ] \
  && ok "r3 installed as current" || bad "install r3: $(cat fetch.err)"
sleep 0.05
fetch r2@1 && ok "r2 fetched again" || bad "fetch r2 again: $(cat fetch.err)"
[ "$(held)" = "r1 r2 r3" ] && ok "r4 evicted: r1 pinned and r3 current stayed although older" \
  || bad "after r2, held: $(held) (expected r1 r2 r3)"

"$ctl" --agent=$sock pin r2@1 >/dev/null 2>&1 || bad "pin r2"
if fetch r4@1; then
  bad "r4 fetched although nothing could be evicted"
else
  grep -q "no room for r4@1" fetch.err && grep -q "pinned" fetch.err && grep -q "current in" fetch.err \
    && ok "no room: the error says what holds the space ($(head -c 200 fetch.err))" \
    || bad "unclear error: $(cat fetch.err)"
fi
[ "$(held)" = "r1 r2 r3" ] && ok "a refused fetch harmed nothing" || bad "held after refusal: $(held)"
for r in 1 2 3; do
  cmp -s "in$r/blob" "agent/releases/$(cat id$r)/data/blob" || bad "r$r's data changed"
done

if fetch big@1; then
  bad "a release larger than the quota was fetched"
else
  grep -q "needs $((4 * mib)) bytes" fetch.err && ok "larger than the quota: refused ($(head -c 120 fetch.err))" \
    || bad "unclear error for big@1: $(cat fetch.err)"
fi
finish
