#!/usr/bin/env bash
# shoalctl against real agents, all real processes on loopback with mutual
# TLS: the embedded origin, one tracker, agents. Covers fetch (--json, --dest,
# --timeout), status, status --json, list, pin, unpin, remove, --help, the
# errors a person acts on (unknown release, untrusted key, no agent at the
# socket), and the progress output: a line rewritten with "\r" when stderr is
# a terminal (a pty), plain lines without "\r" in a pipe.
set -uo pipefail
source "$(dirname "$0")/testlib.sh"
publish=$(realpath "$1"); tracker=$(realpath "$2"); agent=$(realpath "$3"); ctl=$(realpath "$4")
py=/usr/bin/python3
start_work

# forget PID: drops a reaped process from the ones cleanup stops.
forget() {
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
  pids=("${keep[@]}")
}
# start_agent NAME EXTRA...: an agent with data directory NAME and control
# socket NAME/agent.sock; its pid in $started.
start_agent() {
  rm -f "$1.json"
  "$agent" --tracker="$tracker_addr" --listen=127.0.0.1:0 --data_dir="$1" --datacenter=dc1 \
    --rack=r1 --trust=key.pub $(tls_flags agent) --durable=false --ready_file="$1.json" "${@:2}" \
    2>>"$1.log" &
  started=$!
  pids+=($started)
  wait_file "$1.json" || { bad "agent $1 did not start"; tail -20 "$1.log"; exit 1; }
}
# expect_in FILE TEXT WHAT: checks that FILE holds TEXT.
expect_in() {
  if grep -qF -- "$2" "$1"; then ok "$3"; else bad "$3: no \"$2\" in $1:"; head -c 2000 "$1"; echo; fi
}
# json_expr FILE EXPR: a Python expression over the JSON in FILE, as `j`.
json_expr() { "$py" -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

make_fleet_ca
issue_cert tracker "IP:127.0.0.1"
issue_cert agent "IP:127.0.0.1,DNS:agent.fleet"
issue_cert publisher "DNS:publisher.fleet"

mkdir -p in/bin in/share
head -c $((5 * 1048576 + 1234)) /dev/urandom > in/share/pack.bin
head -c $((1048576 + 77)) /dev/urandom > in/bin/server
printf 'port = 7000\n' > in/share/app.cfg
chmod 0755 in/bin/server
chmod 0644 in/share/pack.bin in/share/app.cfg
files=(share/pack.bin bin/server share/app.cfg)
size=$(( 5 * 1048576 + 1234 + 1048576 + 77 + 12 ))
"$publish" keygen --out=key >/dev/null 2>&1
"$publish" keygen --out=other >/dev/null 2>&1
id=$("$publish" create --key=key --name=game --version=1 --origin=origin --piece_size=262144 in 2>/dev/null | tail -n 1)
head -c 3000000 /dev/urandom > stuck.bin
stuck_id=$("$publish" create --key=key --name=stuck --version=1 --origin=origin stuck.bin 2>/dev/null | tail -n 1)
[ ${#id} -eq 64 ] && [ ${#stuck_id} -eq 64 ] || { bad "publish"; exit 1; }

"$publish" serve --origin=origin --listen=127.0.0.1:0 --ready_file=origin.addr 2>origin.log &
pids+=($!)
"$tracker" --listen=127.0.0.1:0 --datacenter=dc1 --trust=key.pub $(tls_flags tracker) \
  --admin_identities=publisher.fleet --ready_file=tracker.json 2>tracker.log &
pids+=($!)
wait_file origin.addr && wait_file tracker.json || { bad "origin or tracker did not start"; exit 1; }
tracker_addr=$(json_field tracker.json grpc)
origin_url="http://$(cat origin.addr)/"
"$publish" register --tracker="$tracker_addr" --origin=origin --origin_url="$origin_url" \
  $(tls_flags publisher) game@1 >/dev/null 2>register.log || { bad "register: $(cat register.log)"; exit 1; }
# stuck@1 can never complete: its origin URL names a tree that does not
# exist (every object is a 404), and no agent holds it.
"$publish" register --tracker="$tracker_addr" --origin=origin --origin_url="${origin_url}nothing-here/" \
  $(tls_flags publisher) stuck@1 >/dev/null 2>>register.log || { bad "register stuck: $(cat register.log)"; exit 1; }
ok "releases registered"

start_agent a1
a1=$started
start_agent a2 --download_limit=3000000
a2=$started

# --- --help for every command, and usage errors. ---
for c in fetch status list remove pin unpin; do
  if "$ctl" "$c" --help > help.out 2>&1 && grep -q "^usage: shoalctl \[--agent=SOCKET\] $c" help.out; then
    ok "$c --help"
  else bad "$c --help: $(head -3 help.out)"; fi
done
expect_in <("$ctl" fetch --help) "--dest=DIR" "fetch --help explains --dest"
"$ctl" --agent=a1/agent.sock status extra >usage.out 2>&1; rc=$?
[ $rc -eq 2 ] && ok "a stray operand is a usage error (2)" || bad "status extra exited $rc"
"$ctl" --agent=a1/agent.sock list --dest=x >usage.out 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q -- "--dest is for fetch" usage.out && ok "--dest outside fetch is a usage error" \
  || bad "list --dest exited $rc: $(cat usage.out)"

# --- The agent is not running. ---
timeout 20 "$ctl" --agent="$work/nobody.sock" status >nobody.out 2>&1; rc=$?
[ $rc -ne 0 ] && ok "no agent: non-zero exit ($rc)" || bad "no agent: exit 0"
expect_in nobody.out "agent not running at $work/nobody.sock" "no agent: says so, with the path"
SHOAL_AGENT="$work/nobody.sock" timeout 20 "$ctl" fetch game@1 >nobody.out 2>&1
expect_in nobody.out "agent not running at $work/nobody.sock" "\$SHOAL_AGENT names the socket"

# --- fetch --json, progress in a file (not a terminal). ---
start=$SECONDS
timeout 120 "$ctl" --agent=a1/agent.sock fetch game@1 --json > f1.json 2> f1.err \
  && ok "fetch game@1 --json" || { bad "fetch: $(tail -3 f1.err)"; tail -20 a1.log; exit 1; }
[ "$(json_expr f1.json 'j["release_id"]')" = "$id" ] && ok "json: release_id" || bad "json release_id: $(cat f1.json)"
[ "$(json_expr f1.json 'j["name"] + "@" + j["version"]')" = "game@1" ] && ok "json: name and version" \
  || bad "json name/version: $(cat f1.json)"
[ "$(json_expr f1.json 'j["size"]')" = "$size" ] && ok "json: size is $size" || bad "json size: $(cat f1.json)"
[ "$(json_expr f1.json 'j["bytes_from_peers"] + j["bytes_from_origin"]')" = "$size" ] \
  && ok "json: bytes from peers + origin = size" || bad "json bytes: $(cat f1.json)"
[ "$(json_expr f1.json '0 <= j["seconds"] <= '$((SECONDS - start + 1)))" = "True" ] \
  && ok "json: seconds" || bad "json seconds: $(cat f1.json)"
[ "$(wc -l < f1.json)" -eq 1 ] && ok "json: one line on stdout" || bad "stdout: $(cat f1.json)"
if grep -q $'\r' f1.err; then bad "progress in a file has \\r"; else ok "progress in a file: no \\r"; fi
grep -Eq '^game@1 +[0-9]+\.[0-9]%  .* MiB/' f1.err && ok "progress in a file: plain lines with a percent" \
  || bad "plain progress lines: $(head -3 f1.err)"
expect_in f1.err "game@1 complete and verified" "fetch says complete and verified"
for f in "${files[@]}"; do cmp -s "in/$f" "a1/releases/$id/data/$f" || bad "a1 store: $f differs"; done

# --- fetch --dest (relative: shoalctl makes it absolute). ---
timeout 120 "$ctl" --agent=a1/agent.sock fetch game@1 --dest=dest > dest.out 2> dest.err \
  && ok "fetch --dest=dest" || bad "fetch --dest: $(tail -3 dest.err)"
[ "$(readlink dest/current)" = "game@1" ] && ok "dest/current -> game@1" || bad "dest/current: $(ls -la dest)"
same=1
for f in "${files[@]}"; do
  cmp -s "in/$f" "dest/current/$f" || { same=0; echo "content differs: $f"; }
  [ "$(stat -c %a "in/$f")" = "$(stat -c %a "dest/current/$f")" ] \
    || { same=0; echo "mode differs: $f $(stat -c %a "in/$f") $(stat -c %a "dest/current/$f")"; }
done
[ $same -eq 1 ] && ok "installed files byte-identical, modes kept" || bad "installed files differ"
expect_in dest.err "installed: $work/dest/current -> $work/dest/game@1" "fetch --dest says where"

# --- status, status --json, list. ---
timeout 20 "$ctl" --agent=a1/agent.sock status > status.out 2>&1 || bad "status: $(cat status.out)"
expect_in status.out "  SEEDING  game@1 100.0% 27/27 pieces" "status: the release, seeding"
expect_in status.out "0 proof failures, 0 banned" "status: proof failures and bans"
expect_in status.out "disk: " "status: disk line"
expect_in status.out "    installed: $work/dest/game@1 ($work/dest/current)" "status: the install"
timeout 20 "$ctl" --agent=a1/agent.sock status --json > status.json 2>status.err || bad "status --json: $(cat status.err)"
[ "$(json_expr status.json '[r["release_id"] for r in j["releases"]] == ["'$id'"]')" = "True" ] \
  && ok "status --json: the release" || bad "status --json: $(cat status.json)"
[ "$(json_expr status.json 'j["releases"][0]["state"]')" = "RELEASE_STATE_SEEDING" ] \
  && ok "status --json: state" || bad "status --json state"
[ "$(json_expr status.json 'j["releases"][0]["installs"][0]["dir"]')" = "$work/dest" ] \
  && ok "status --json: installs" || bad "status --json installs: $(cat status.json)"
[ "$(json_expr status.json '"disk_quota" in j and "channels" in j and j["releases"][0]["pinned"] is False')" = "True" ] \
  && ok "status --json: disk_quota, channels, pinned" || bad "status --json fields: $(cat status.json)"
timeout 20 "$ctl" --agent=a1/agent.sock list > list.out 2>&1 || bad "list: $(cat list.out)"
grep -Eq "^game@1 +${id:0:12} +seeding +100\.0% +6\.00 MiB +- +$work/dest\$" list.out \
  && ok "list: name, id, state, percent, size, pin, current dir" || bad "list: $(cat list.out)"

# --- pin, unpin. ---
timeout 20 "$ctl" --agent=a1/agent.sock pin game@1 > pin.out 2>&1 && expect_in pin.out "pinned game@1 (${id:0:12})" "pin" \
  || bad "pin: $(cat pin.out)"
timeout 20 "$ctl" --agent=a1/agent.sock status --json > status.json 2>&1
[ "$(json_expr status.json 'j["releases"][0]["pinned"]')" = "True" ] && ok "status --json: pinned" || bad "not pinned"
timeout 20 "$ctl" --agent=a1/agent.sock status > status.out 2>&1
expect_in status.out "    pinned: never evicted" "status: pinned"
timeout 20 "$ctl" --agent=a1/agent.sock list > list.out 2>&1
grep -Eq "^game@1 .* pinned +$work/dest\$" list.out && ok "list: pinned" || bad "list after pin: $(cat list.out)"
timeout 20 "$ctl" --agent=a1/agent.sock unpin "$id" > pin.out 2>&1 && expect_in pin.out "unpinned game@1" "unpin by id" \
  || bad "unpin: $(cat pin.out)"
timeout 20 "$ctl" --agent=a1/agent.sock status --json > status.json 2>&1
[ "$(json_expr status.json 'j["releases"][0]["pinned"]')" = "False" ] && ok "status --json: unpinned" || bad "still pinned"

# --- Progress on a terminal: stderr on a pty, stdout (the JSON) a pipe. ---
cat > pty_run.py <<'EOF'
import fcntl, os, pty, struct, subprocess, sys, termios
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=open(sys.argv[1], "wb"), stderr=slave)
os.close(slave)
out = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: every writer closed the pty
        break
    if not chunk:
        break
    out += chunk
sys.stderr.buffer.write(out)
sys.exit(p.wait())
EOF
timeout 120 "$py" pty_run.py pty.json "$ctl" --agent=a2/agent.sock fetch game@1 --json 2> pty.err \
  && ok "fetch with stderr on a pty" || bad "pty fetch: $(tail -c 500 pty.err)"
"$py" - pty.err <<'EOF' && ok "pty: progress rewritten with \\r, with a percent, cleared to end of line" || bad "pty progress: $(od -c pty.err | head -20)"
import re, sys
text = open(sys.argv[1], "rb").read().decode()
lines = re.findall(r"\rgame@1 +(\d+\.\d)%[^\r\n]*\x1b\[K", text)
sys.exit(0 if len(lines) >= 2 and lines[-1] == "100.0" else 1)
EOF
[ "$(json_expr pty.json 'j["bytes_from_peers"] + j["bytes_from_origin"]')" = "$size" ] \
  && ok "pty: JSON on stdout unaffected" || bad "pty json: $(cat pty.json)"
for f in "${files[@]}"; do cmp -s "in/$f" "a2/releases/$id/data/$f" || bad "a2 store: $f differs"; done

# --- Plain lines in a pipe. ---
timeout 60 "$ctl" --agent=a2/agent.sock fetch game@1 2>&1 | cat > pipe.out
if grep -q $'\r' pipe.out || grep -q $'\033' pipe.out; then bad "pipe: control characters: $(od -c pipe.out | head)"
else ok "pipe: no \\r, no escapes"; fi
grep -Eq '^game@1  100\.0%' pipe.out && ok "pipe: plain progress line" || bad "pipe: $(cat pipe.out)"

# --- remove. ---
timeout 60 "$ctl" --agent=a2/agent.sock remove game@1 > rm.out 2>&1 && expect_in rm.out "removed game@1 (${id:0:12})" "remove" \
  || bad "remove: $(cat rm.out)"
timeout 20 "$ctl" --agent=a2/agent.sock list > list.out 2>&1
if grep -q "^game@1" list.out; then bad "list still shows game@1: $(cat list.out)"; else ok "list no longer shows it"; fi
[ ! -e "a2/releases/$id" ] && ok "the store is gone" || bad "a2/releases/$id still there"
timeout 20 "$ctl" --agent=a2/agent.sock remove game@1 > rm.out 2>&1; rc=$?
[ $rc -eq 1 ] && expect_in rm.out "cannot remove game@1: " "remove of a release not held fails with the reason" \
  || bad "second remove exited $rc"

# --- Errors a person can act on. ---
timeout 30 "$ctl" --agent=a1/agent.sock fetch nosuch@9 > unknown.out 2>&1; rc=$?
[ $rc -ne 0 ] && ok "unknown release: non-zero exit ($rc)" || bad "unknown release: exit 0"
expect_in unknown.out "shoalctl: cannot fetch nosuch@9: " "unknown release: names what failed"
expect_in unknown.out "release nosuch@9 is not registered with this tracker" \
  "unknown release: says it is not on the tracker"
start_agent a3 --trust=other.pub
timeout 30 "$ctl" --agent=a3/agent.sock fetch game@1 > untrusted.out 2>&1; rc=$?
[ $rc -ne 0 ] && ok "untrusted manifest: non-zero exit ($rc)" || bad "untrusted manifest: exit 0"
expect_in untrusted.out "manifest signed by an untrusted key" "untrusted manifest: names the key"

# --- --timeout on a release that cannot complete. ---
start=$SECONDS
timeout 60 "$ctl" --agent=a1/agent.sock fetch stuck@1 --timeout=3s > stuck.out 2> stuck.err; rc=$?
elapsed=$((SECONDS - start))
[ $rc -ne 0 ] && ok "--timeout: non-zero exit ($rc)" || bad "--timeout: exit 0"
[ $elapsed -le 20 ] && ok "--timeout: gave up after ${elapsed}s" || bad "--timeout: took ${elapsed}s"
expect_in stuck.err "stuck@1 not complete after --timeout=3s: 0.0% verified" "--timeout: says why"
[ ! -s stuck.out ] && ok "--timeout: nothing on stdout" || bad "--timeout stdout: $(cat stuck.out)"

# --- An agent that went away leaves a socket nobody answers on. ---
kill "$a2"; wait "$a2" 2>/dev/null; forget "$a2"
timeout 20 "$ctl" --agent=a2/agent.sock list > gone.out 2>&1; rc=$?
[ $rc -ne 0 ] && expect_in gone.out "agent not running at a2/agent.sock" "stopped agent: not running" \
  || bad "stopped agent: exit $rc"

# --- After a restart of the agent. ---
kill "$a1"; wait "$a1" 2>/dev/null; forget "$a1"
start_agent a1
timeout 60 "$ctl" --agent=a1/agent.sock fetch game@1 --json > f2.json 2> f2.err \
  && ok "fetch of a held release after a restart" || bad "fetch after restart: $(tail -3 f2.err)"
[ "$(json_expr f2.json 'j["size"]')" = "$size" ] && ok "json after a restart: size" \
  || bad "json after restart: $(cat f2.json)"
# The counts by source include earlier runs of the agent.
[ "$(json_expr f2.json 'j["bytes_from_peers"] + j["bytes_from_origin"]')" = "$size" ] \
  && ok "json after a restart: bytes from peers + origin = size" \
  || bad "after a restart the counts are $(json_expr f2.json 'j["bytes_from_peers"], j["bytes_from_origin"]'), not summing to $size"

finish
