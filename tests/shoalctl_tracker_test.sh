#!/usr/bin/env bash
# shoalctl's tracker commands against real processes on loopback: two
# trackers (datacenters dc1 and dc2) on mutual TLS with a fleet CA made here,
# two releases published and registered on both, the embedded origin, and two
# agents in dc1 that fetch one release. Checks: a rollout set, paused,
# resumed and shown on both trackers at once; clear failures for an unknown
# release, a non-admin identity, a tracker that is down (the other is still
# updated); the swarm table and its JSON lines with real numbers; --help of
# every command.
set -uo pipefail
source "$(dirname "$0")/testlib.sh"
publish=$(realpath "$1"); tracker=$(realpath "$2"); agent=$(realpath "$3"); ctl=$(realpath "$4")
start_work

# jsonl_check FILE EXPR: EXPR (Python, over `rows`, the JSON lines of FILE)
# holds.
jsonl_check() {
  /usr/bin/python3 -c 'import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)' "$1" "$2"
}

make_fleet_ca
issue_cert tracker "IP:127.0.0.1"
issue_cert publisher "DNS:publisher.fleet"
issue_cert ops "DNS:ops.fleet"
issue_cert agent "IP:127.0.0.1,DNS:agent.fleet"

"$publish" keygen --out=key >/dev/null 2>&1
mkdir in1 in2
head -c $((3 * 1048576 + 1234)) /dev/urandom > in1/app.bin
head -c 5000 /dev/urandom > in2/app.bin
size=$((3 * 1048576 + 1234))
id1=$("$publish" create --key=key --name=app --version=1 --origin=origin --piece_size=1048576 in1 2>/dev/null | tail -n 1)
id2=$("$publish" create --key=key --name=app --version=2 --origin=origin in2 2>/dev/null | tail -n 1)

"$publish" serve --origin=origin --listen=127.0.0.1:0 --ready_file=origin.addr 2>origin.log &
pids+=($!)
# start_tracker NAME DATACENTER: a tracker whose admins are the publisher and ops.
start_tracker() {
  "$tracker" --listen=127.0.0.1:0 --datacenter="$2" --trust=key.pub $(tls_flags tracker) \
    --admin_identities=publisher.fleet,ops.fleet --ready_file="$1.json" 2>"$1.log" &
  pids+=($!)
}
start_tracker t1 dc1
start_tracker t2 dc2
start_tracker t3 dc3
t3_pid=$!
for f in origin.addr t1.json t2.json t3.json; do
  wait_file "$f" || { bad "$f not written"; cat ./*.log; exit 1; }
done
t1=$(json_field t1.json grpc); t2=$(json_field t2.json grpc); dead=$(json_field t3.json grpc)
for t in "$t1" "$t2"; do
  for r in app@1 app@2; do
    "$publish" register --tracker="$t" --origin=origin --origin_url="http://$(cat origin.addr)/" \
      $(tls_flags publisher) "$r" >/dev/null 2>register.log || { bad "register $r on $t: $(cat register.log)"; exit 1; }
  done
done
ok "two trackers up, app@1 and app@2 registered on both"
# The third tracker stops: its address is one nobody answers at.
kill -TERM "$t3_pid"
for _ in $(seq 1 100); do kill -0 "$t3_pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$t3_pid" 2>/dev/null && { bad "tracker 3 still running"; exit 1; }

# ops ARGS...: shoalctl as ops, an admin identity, bounded.
ops() { timeout 30 "$ctl" $(tls_flags ops) "$@"; }

# --- rollout set / show on two trackers at once ---
if ops --tracker="$t1,$t2" rollout set app/stable app@1 --percent=10 >set.out 2>set.err; then
  [ "$(grep -cE "app/stable +app@1 +[0-9a-f]{8} +10% +rolling " set.out)" -eq 2 ] \
    && ok "rollout set on two trackers prints both rollouts" || bad "set output: $(cat set.out)"
else
  bad "rollout set on two trackers: $(cat set.err)"
fi
ops --tracker="$t1,$t2" rollout show app/stable >show.out 2>show.err \
  && grep -qE "^$t1 +app/stable +app@1 " show.out && grep -qE "^$t2 +app/stable +app@1 " show.out \
  && ok "rollout show lists each tracker's rollout" || bad "show: $(cat show.out show.err)"
ops --tracker="$t1,$t2" rollout show app/stable --json >show.json 2>show.err \
  && jsonl_check show.json "len(rows) == 2 and {r['tracker'] for r in rows} == {'$t1', '$t2'} and all(
      r['release'] == 'app@1' and r['release_id'] == '$id1' and r['percent'] == 10
      and not r['paused'] and r['generation'] == 1 for r in rows)" \
  && ok "both trackers point app/stable at app@1 for 10 %" || bad "show json: $(cat show.json show.err)"

# --- pause and resume keep release and percent ---
ops --tracker="$t1,$t2" rollout pause app/stable >pause.out 2>pause.err \
  && ops --tracker="$t1,$t2" rollout show app/stable --json >show.json 2>show.err \
  && jsonl_check show.json "len(rows) == 2 and all(r['paused'] and r['percent'] == 10
      and r['release'] == 'app@1' and r['generation'] == 2 for r in rows)" \
  && grep -q "paused" pause.out \
  && ok "rollout pause pauses both, keeping release and percent" || bad "pause: $(cat pause.out pause.err show.json)"
ops --tracker="$t1,$t2" rollout resume app/stable >resume.out 2>resume.err \
  && ops --tracker="$t1,$t2" rollout show app/stable --json >show.json 2>show.err \
  && jsonl_check show.json "len(rows) == 2 and all(not r['paused'] and r['percent'] == 10
      and r['release'] == 'app@1' and r['generation'] == 3 for r in rows)" \
  && ok "rollout resume lets both go on at 10 %" || bad "resume: $(cat resume.out resume.err show.json)"

# --- failures a person can act on ---
if ops --tracker="$t1,$t2" rollout set app/stable app@9 --percent=10 >unknown.out 2>unknown.err; then
  bad "rollout set of an unknown release succeeded"
else
  grep -q "release app@9 not found on tracker $t1" unknown.err \
    && grep -q "release app@9 not found on tracker $t2" unknown.err \
    && ok "unknown release: named as not found on each tracker" || bad "unknown: $(cat unknown.err)"
fi
if timeout 30 "$ctl" $(tls_flags agent) --tracker="$t1" rollout pause app/stable >agent.out 2>agent.err; then
  bad "a non-admin identity paused the channel"
else
  grep -q "tracker $t1 refused: caller \"agent.fleet\" may not change tracker state; add its certificate identity to --admin_identities" agent.err \
    && ok "non-admin identity refused with the identity and the fix" || bad "non-admin: $(cat agent.err)"
fi
ops --tracker="$t1" rollout show app/stable --json >show.json 2>&1 \
  && jsonl_check show.json "rows[0]['generation'] == 3 and not rows[0]['paused']" \
  && ok "refused changes changed nothing" || bad "after refusals: $(cat show.json)"

ops --tracker="$t1,$dead" rollout set app/stable app@2 --percent=50 >down.out 2>down.err
rc=$?
[ "$rc" -eq 1 ] && grep -q "tracker not reachable at $dead" down.err \
  && grep -q "rollout set failed on 1 of 2 tracker(s): $dead\$" down.err \
  && grep -qE "^$t1 +app/stable +app@2 +[0-9a-f]{8} +50% " down.out \
  && ok "one tracker down: exit 1 naming it, the other updated" || bad "down (exit $rc): $(cat down.out down.err)"
ops --tracker="$t1,$t2" rollout show app/stable --json >show.json 2>show.err \
  && jsonl_check show.json "[(r['release'], r['percent']) for r in rows] == [('app@2', 50), ('app@1', 10)]" \
  && ok "the live tracker holds app@2 at 50 %, the untouched one app@1 at 10 %" || bad "after down: $(cat show.json show.err)"
if timeout 30 "$ctl" --insecure --tracker="$t1" rollout show app/stable >plain.out 2>plain.err; then
  bad "plaintext shoalctl talked to a TLS tracker"
else
  grep -q "tracker not reachable at $t1" plain.err && ok "plaintext client: tracker not reachable" \
    || bad "plaintext: $(cat plain.err)"
fi
timeout 30 "$ctl" --tracker="$t1" rollout show app/stable >notls.out 2>notls.err
[ $? -eq 2 ] && grep -q -- "--tls_cert" notls.err && ok "no TLS flags: usage error naming them" \
  || bad "no tls flags: $(cat notls.err)"
ops --tracker="$t1" rollout set app/stable app@1 >nopct.out 2>nopct.err
[ $? -eq 2 ] && grep -q -- "--percent" nopct.err && ok "rollout set without --percent: usage error" \
  || bad "no percent: $(cat nopct.err)"

# --- swarm: two agents in dc1 fetch app@1 ---
for i in 1 2; do
  "$agent" --tracker="$t1" --listen=127.0.0.1:0 --data_dir="a$i" --datacenter=dc1 --rack=r1 \
    --trust=key.pub $(tls_flags agent) --durable=false --ready_file="a$i.json" 2>"a$i.log" &
  pids+=($!)
done
for i in 1 2; do wait_file "a$i.json" || { bad "agent $i did not start"; cat "a$i.log"; exit 1; }; done
for i in 1 2; do
  timeout 120 "$ctl" --agent="a$i/agent.sock" fetch app@1 >/dev/null 2>"a$i.ctl" \
    || { bad "agent $i fetch: $(tail -2 "a$i.ctl")"; tail -20 "a$i.log"; exit 1; }
done
ok "two agents fetched app@1"
# The tracker hears of a completed release at once; allow a few seconds.
for _ in $(seq 1 100); do
  ops --tracker="$t1" swarm app@1 --json >swarm.json 2>swarm.err \
    && jsonl_check swarm.json "rows[0]['peers_seeding'] == 2" && break
  sleep 0.1
done
jsonl_check swarm.json "len(rows) == 1 and rows[0]['datacenter'] == 'dc1' and rows[0]['release_id'] == '$id1'
    and rows[0]['peers'] == 2 and rows[0]['peers_seeding'] == 2 and rows[0]['peers_downloading'] == 0
    and rows[0]['completion_histogram'][10] == 2 and rows[0]['total_pieces'] == 4
    and rows[0]['total_size'] == $size and rows[0]['bytes_from_origin'] >= $size
    and rows[0]['bytes_from_origin'] + rows[0]['bytes_from_peers'] >= 2 * $size
    and 1.0 <= rows[0]['origin_copies'] <= 1.25" \
  && ok "swarm --json: 2 complete agents in dc1, origin copies $(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["origin_copies"])' swarm.json)" \
  || bad "swarm json: $(cat swarm.json swarm.err)"
ops --tracker="$t1,$t2" swarm >table.out 2>table.err \
  && grep -q "^datacenter dc1\$" table.out \
  && awk -v t="$t1" '$1 == t && $2 == "app@1" && $4 == 2 && $5 == 2 && $6 == 0 && $8 == "100%" { found = 1 } END { exit !found }' table.out \
  && ! grep -q "dc2" table.out \
  && ok "swarm table: dc1 has app@1 with 2 peers, 2 complete; dc2 has no swarm" || bad "table: $(cat table.out table.err)"
cat table.out
ops --tracker="$t1,$t2" swarm app@1 >named.out 2>named.err \
  && grep -q "^datacenter dc2\$" named.out \
  && awk -v t="$t2" '$1 == t && $2 == "app@1" && $4 == 0 && $8 == "-" { found = 1 } END { exit !found }' named.out \
  && ok "swarm NAME@VERSION shows dc2's empty swarm too" || bad "named: $(cat named.out named.err)"
ops --tracker="$t1,$dead" swarm >swdown.out 2>swdown.err
rc=$?
[ "$rc" -eq 1 ] && grep -q "tracker not reachable at $dead" swdown.err && grep -q "^datacenter dc1\$" swdown.out \
  && ok "swarm with one tracker down: the other's table, exit 1 naming the dead one" || bad "swarm down (exit $rc): $(cat swdown.out swdown.err)"
if ops --tracker="$t1" swarm app@9 >sw9.out 2>sw9.err; then bad "swarm of an unknown release succeeded"; else
  grep -q "release app@9 not found on tracker $t1" sw9.err && ok "swarm of an unknown release: not found" || bad "swarm app@9: $(cat sw9.err)"
fi

# --- --help of every command ---
for cmd in "rollout" "rollout set" "rollout pause" "rollout resume" "rollout show" "swarm"; do
  # shellcheck disable=SC2086
  if timeout 10 "$ctl" $cmd --help >help.out 2>help.err; then
    head -n 1 help.out | grep -q "shoalctl --tracker=ADDRS $cmd" && grep -q -- "--tls_cert" help.out \
      && ok "$cmd --help" || bad "$cmd --help: $(head -3 help.out)"
  else
    bad "$cmd --help failed: $(cat help.err)"
  fi
done
timeout 10 "$ctl" --help >help.out 2>&1
grep -q "rollout set CHANNEL" help.out && grep -q "swarm \[NAME@VERSION|ID\]" help.out \
  && ok "shoalctl --help lists the tracker commands" || bad "shoalctl --help: $(head -12 help.out)"

finish
