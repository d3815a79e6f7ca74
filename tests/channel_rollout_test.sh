#!/usr/bin/env bash
# Channels end to end, on real processes over loopback with mutual TLS: six
# agents follow game/stable into their own directories. The rollout goes
# 10 -> 50 -> 100 percent: the set of agents with the release installed only
# grows and is exactly the agents whose stable bucket (common/rollout.h) is
# below the percentage. Then a paused rollout of version 2 starts nothing, a
# resume installs it everywhere (version 1 stays for rollback), and pointing
# the channel back at version 1 rolls every agent back.
set -uo pipefail
source "$(dirname "$0")/testlib.sh"
publish=$(realpath "$1"); tracker=$(realpath "$2"); agent=$(realpath "$3"); ctl=$(realpath "$4")
start_work
channel=game/stable
n=6
dump_logs() { for f in tracker.log a*.log; do echo "--- $f"; tail -15 "$f"; done; }

make_fleet_ca
issue_cert tracker "IP:127.0.0.1"
issue_cert agent "IP:127.0.0.1"
issue_cert publisher "DNS:publisher.fleet"
"$publish" keygen --out=key >/dev/null 2>&1
for v in 1 2; do
  mkdir -p "in$v/bin"
  head -c $((2 * 1048576 + v * 1000)) /dev/urandom > "in$v/bin/server"
  chmod 0755 "in$v/bin/server"
  echo "version $v" > "in$v/notes.txt"
  "$publish" create --key=key --name=game --version=$v --origin=origin --piece_size=262144 "in$v" \
    2>/dev/null | tail -n 1 > "id$v" || { bad "create game@$v"; exit 1; }
done

id1=$(cat id1); id2=$(cat id2)
"$publish" serve --origin=origin --listen=127.0.0.1:0 --ready_file=origin.addr 2>origin.log &
pids+=($!)
"$tracker" --listen=127.0.0.1:0 --datacenter=dc1 --trust=key.pub $(tls_flags tracker) \
  --admin_identities=publisher.fleet --ready_file=tracker.json 2>tracker.log &
pids+=($!)
wait_file origin.addr && wait_file tracker.json || { bad "origin or tracker did not start"; exit 1; }
taddr=$(json_field tracker.json grpc)
for v in 1 2; do
  "$publish" register --tracker="$taddr" --origin=origin --origin_url="http://$(cat origin.addr)/" \
    $(tls_flags publisher) game@$v >/dev/null 2>register.log || { bad "register: $(cat register.log)"; exit 1; }
done
rollout() { "$ctl" --tracker="$taddr" $(tls_flags publisher) rollout "$@" >rollout.out 2>&1 \
  || { bad "rollout $*: $(cat rollout.out)"; dump_logs; exit 1; }; }

# Peer ids chosen so that buckets spread over the percentages: two agents
# below 10, two in [10, 50), two at 50 or more.
/usr/bin/python3 - "$channel" > peers.txt <<'PY'
import hashlib, sys
channel = sys.argv[1]
want = [(0, 10), (0, 10), (10, 50), (10, 50), (50, 100), (50, 100)]
out, i = [], 0
while want:
    pid = hashlib.md5(str(i).encode()).hexdigest()
    i += 1
    b = int.from_bytes(hashlib.sha256((channel + "/" + pid).encode()).digest()[:8], "big") % 100
    for k, (lo, hi) in enumerate(want):
        if lo <= b < hi:
            out.append("%s %d" % (pid, b)); del want[k]; break
print("\n".join(out))
PY
declare -A agent_pid
start_agent() {
  rm -f "a$1.json"
  "$agent" --tracker="$taddr" --listen=127.0.0.1:0 --data_dir="a$1" --datacenter=dc1 --rack=r1 \
    --trust=key.pub $(tls_flags agent) --durable=false --follow="$channel=$work/dest$1" \
    --ready_file="a$1.json" 2>>"a$1.log" &
  agent_pid[$1]=$!
  pids+=($!)
}
for i in $(seq 1 $n); do
  mkdir -p "a$i"
  sed -n "${i}p" peers.txt | cut -d' ' -f1 > "a$i/peer_id"
  start_agent "$i"
done
for i in $(seq 1 $n); do wait_file "a$i.json" || { bad "agent $i did not start"; dump_logs; exit 1; }; done
ok "$n agents follow $channel"

bucket() { sed -n "${1}p" peers.txt | cut -d' ' -f2; }
current() { readlink "dest$1/current" 2>/dev/null; }
# Waits until agent $1's status shows the channel at release id $2, percent
# $3, paused $4 (true|false): it has seen that change. At most 60 s.
seen() {
  for _ in $(seq 1 600); do
    "$ctl" --agent="a$1/agent.sock" status --json > "st$1.json" 2>/dev/null
    if /usr/bin/python3 - "st$1.json" "$2" "$3" "$4" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
chs = s.get("channels") or [{}]
ch = chs[0]
get = lambda a, b, d: ch.get(a, ch.get(b, d))
ok = (get("release_id", "releaseId", "") == sys.argv[2]
      and int(get("percent", "percent", 0)) == int(sys.argv[3])
      and bool(get("paused", "paused", False)) == (sys.argv[4] == "true"))
sys.exit(0 if ok else 1)
PY
    then return 0; fi
    sleep 0.1
  done
  echo "agent $1's last status: $(head -c 1500 "st$1.json")"
  return 1
}
wait_current() {  # wait_current AGENT TARGET: DIR/current names TARGET within 60 s
  for _ in $(seq 1 600); do [ "$(current "$1")" = "$2" ] && return 0; sleep 0.1; done; return 1
}

check_percent() {  # check_percent P: exactly the agents with bucket < P have game@1
  local p=$1; rollout set "$channel" game@1 --percent="$p"
  for i in $(seq 1 $n); do
    if [ "$(bucket $i)" -lt "$p" ]; then
      wait_current "$i" game@1 || { bad "agent $i (bucket $(bucket $i)) did not install at $p%"; dump_logs; }
    fi
  done
  # The others have seen the same change and stayed out.
  local installed=()
  for i in $(seq 1 $n); do
    seen "$i" "$id1" "$p" false || bad "agent $i never saw the rollout at $p%"
    [ -n "$(current "$i")" ] && installed+=("$i")
  done
  local expected=()
  for i in $(seq 1 $n); do [ "$(bucket $i)" -lt "$p" ] && expected+=("$i"); done
  [ "${installed[*]}" = "${expected[*]}" ] \
    && ok "at $p%: installed on agents (${installed[*]}), exactly those with bucket < $p" \
    || bad "at $p%: installed on (${installed[*]}), expected (${expected[*]})"
}
check_percent 10
check_percent 50
check_percent 100
for i in $(seq 1 $n); do
  cmp -s in1/bin/server "dest$i/current/bin/server" && cmp -s in1/notes.txt "dest$i/current/notes.txt" \
    || bad "agent $i: installed files differ from the input"
  [ "$(stat -c %a "dest$i/current/bin/server")" = 755 ] || bad "agent $i: bin/server mode is not 755"
done
ok "installed files are byte-identical, modes from the manifest"

rollout set "$channel" game@2 --percent=100 --paused
for i in $(seq 1 $n); do seen "$i" "$id2" 100 true || bad "agent $i never saw the paused rollout"; done
sleep 1
stayed=1
for i in $(seq 1 $n); do [ "$(current "$i")" = game@1 ] || stayed=0; done
[ $stayed -eq 1 ] && ok "paused rollout of game@2 started nothing" || bad "a paused rollout was installed"

rollout resume "$channel"
# One agent is killed as the rollout resumes and started again: it picks the
# channel back up from the tracker and its releases from its data dir.
kill -9 "${agent_pid[1]}"; wait "${agent_pid[1]}" 2>/dev/null
start_agent 1
wait_file a1.json || bad "agent 1 did not restart"
for i in $(seq 1 $n); do
  wait_current "$i" game@2 || bad "agent $i did not install game@2 after resume"
done
for i in $(seq 1 $n); do
  cmp -s in2/bin/server "dest$i/current/bin/server" || bad "agent $i: game@2 differs"
  [ -d "dest$i/game@1" ] || bad "agent $i: game@1 is gone (no rollback possible)"
done
ok "resume installed game@2 everywhere (agent 1 killed and restarted meanwhile); game@1 kept for rollback"

rollout set "$channel" game@1 --percent=100
for i in $(seq 1 $n); do
  wait_current "$i" game@1 || bad "agent $i did not roll back"
done
ok "rollback to game@1 on every agent"
finish
