# Shared helpers for the end-to-end tests on real processes. Source it after
# tests/testlib.sh, with the binaries as the test's first four arguments:
#
#   source "$(dirname "$0")/../testlib.sh"
#   source "$(dirname "$0")/e2elib.sh" "$@"
#
# It makes a work directory and enters it, stops every process started
# through `spawn` when the test ends (by PID, also on SIGTERM from Bazel's
# timeout), and prints the end of every process log when a check failed.
# Every wait is bounded.

publish=$(realpath "$1"); tracker=$(realpath "$2"); agent=$(realpath "$3"); ctl=$(realpath "$4")
py=/usr/bin/python3
work=$(mktemp -d -t shoal-e2e.XXXXXX)
declare -A pid_of  # process name -> pid, for every process still running
e2e_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# show_logs: the end of every process log, for a failure.
show_logs() {
  local f
  for f in "$work"/*.log; do
    [ -e "$f" ] || continue
    echo "----- $(basename "$f")"
    tail -n "${LOG_LINES:-40}" "$f"
  done
}
e2e_cleanup() {
  local name
  [ "$failures" -eq 0 ] || show_logs
  for name in "${!pid_of[@]}"; do kill -TERM "${pid_of[$name]}" 2>/dev/null; done
  for _ in $(seq 1 50); do
    local alive=0
    for name in "${!pid_of[@]}"; do kill -0 "${pid_of[$name]}" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for name in "${!pid_of[@]}"; do
    kill -KILL "${pid_of[$name]}" 2>/dev/null
    wait "${pid_of[$name]}" 2>/dev/null
  done
  cd / && rm -rf "$work"
}
trap e2e_cleanup EXIT
trap 'bad "stopped by a signal (time bound?)"; exit 1' TERM INT
cd "$work"

# give_up MESSAGE: a failure after which the test cannot go on.
give_up() { bad "$1"; finish; exit 1; }

# spawn NAME CMD...: runs CMD in the background, stderr (and stdout) into
# NAME.log; its pid in pid_of[NAME].
spawn() {
  local name=$1
  shift
  "$@" >>"$name.log" 2>&1 &
  pid_of[$name]=$!
}
# stop NAME [SIGNAL]: sends SIGNAL (default TERM) to the process and reaps it
# (SIGKILL after 10 s).
stop() {
  local p=${pid_of[$1]:-} sig=${2:-TERM}
  [ -n "$p" ] || return 0
  if [ "$sig" != KILL ]; then
    kill "-$sig" "$p" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  fi
  # Reaped here, with stderr closed, bash does not report "Killed".
  { kill -KILL "$p"; wait "$p"; } 2>/dev/null
  unset "pid_of[$1]"
}

# free_port: a loopback TCP port nobody listens on right now.
free_port() {
  $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# make_pki: a fleet CA and certificates for the tracker (server on
# 127.0.0.1), the agents and the publisher (the trackers' admin identity).
make_pki() {
  make_fleet_ca
  issue_cert tracker "IP:127.0.0.1"
  issue_cert agent "IP:127.0.0.1,DNS:agent.fleet"
  issue_cert publisher "DNS:publisher.fleet"
}

# make_input DIR MIB: a sample release of about MIB MiB in DIR: a large
# file, a smaller executable, a small odd-sized file and an empty one.
make_input() {
  local dir=$1 mib=$2
  mkdir -p "$dir/bin" "$dir/assets"
  head -c $(( mib * 1048576 * 3 / 4 + 4321 )) /dev/urandom > "$dir/assets/pack.bin"
  head -c $(( mib * 1048576 / 4 )) /dev/urandom > "$dir/bin/server"
  chmod 0755 "$dir/bin/server"
  head -c 777 /dev/urandom > "$dir/assets/small.cfg"
  : > "$dir/assets/empty"
}
# tree_size DIR: bytes in the regular files under DIR.
tree_size() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
# same_tree INPUT COPY: true when every file of INPUT is in COPY, identical.
same_tree() {
  local f
  while IFS= read -r f; do
    cmp -s "$1/$f" "$2/$f" || { echo "differs: $2/$f"; return 1; }
  done < <(cd "$1" && find . -type f)
}

# start_origin NAME DIR: `shoal-publish serve` of DIR; waits until it
# serves. Its base URL in $origin_url.
start_origin() {
  rm -f "$1.addr"
  spawn "$1" "$publish" serve --origin="$2" --listen=127.0.0.1:0 --ready_file="$1.addr"
  wait_file "$1.addr" || give_up "origin $1 did not start"
  origin_url="http://$(cat "$1.addr")/"
}
# start_tracker NAME LISTEN FLAGS...: a tracker of dc1 with mutual TLS
# (publisher.fleet is admin); waits until it serves. Its address in $taddr.
start_tracker() {
  local name=$1 listen=$2
  shift 2
  rm -f "$name.json"
  spawn "$name" "$tracker" --listen="$listen" --datacenter=dc1 --trust=key.pub \
    $(tls_flags tracker) --admin_identities=publisher.fleet --ready_file="$name.json" "$@"
  wait_file "$name.json" || give_up "tracker $name did not start"
  taddr=$(json_field "$name.json" grpc)
}
# register TRACKERS ORIGIN_URL RELEASE: registers a release of ./origin.
register() {
  "$publish" register --tracker="$1" --origin=origin --origin_url="$2" $(tls_flags publisher) \
    "$3" >register.out 2>&1 || give_up "register $3 with $1: $(cat register.out)"
}
# rollout TRACKERS ARGS...: `shoalctl rollout ARGS` as the publisher.
rollout() {
  local t=$1
  shift
  "$ctl" --tracker="$t" $(tls_flags publisher) rollout "$@" >rollout.out 2>&1 \
    || give_up "rollout $*: $(cat rollout.out)"
}
# start_redis NAME: a throwaway redis-server on a free loopback port, no
# persistence, in its own directory; waits until it answers. Its URL in
# $redis_url.
start_redis() {
  local port
  port=$(free_port)
  mkdir -p "$1.dir"
  spawn "$1" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work/$1.dir"
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] || give_up "redis-server did not start"
  redis_url="redis://127.0.0.1:$port"
}
# start_agent NAME TRACKERS FLAGS...: an agent of dc1 in data dir NAME,
# with mutual TLS; waits until it serves. Its control socket is
# NAME/agent.sock.
start_agent() {
  local name=$1 trackers=$2
  shift 2
  rm -f "$name.json"
  spawn "$name" "$agent" --tracker="$trackers" --listen=127.0.0.1:0 --data_dir="$name" \
    --datacenter=dc1 --rack=r1 --trust=key.pub $(tls_flags agent) --durable=false \
    --ready_file="$name.json" "$@"
  wait_file "$name.json" || give_up "agent $name did not start"
}

# status_of NAME: the agent's `shoalctl status --json`.
status_of() { "$ctl" --agent="$1/agent.sock" status --json 2>/dev/null; }
# release_field NAME FIELD: FIELD of the agent's first release (0 if none).
release_field() {
  status_of "$1" | $py -c '
import json, sys
try:
    r = json.load(sys.stdin).get("releases") or [{}]
    print(int(r[0].get(sys.argv[1], 0)))
except ValueError:
    print(0)' "$2"
}
# swarm_field FIELD NAME...: FIELD of the first release in each agent's
# status, one line per agent (0 when it has none); one process for all, so
# that it can be polled quickly. swarm_sum: their sum.
swarm_field() {
  $py - "$ctl" "$@" <<'PY'
import json, subprocess, sys
ctl, field, names = sys.argv[1], sys.argv[2], sys.argv[3:]
for name in names:
    out = subprocess.run([ctl, "--agent=%s/agent.sock" % name, "status", "--json"],
                         capture_output=True, text=True).stdout
    try:
        releases = json.loads(out).get("releases") or []
    except ValueError:
        releases = []
    print(int(releases[0].get(field, 0)) if releases else 0)
PY
}
swarm_sum() { swarm_field "$@" | awk '{s += $1} END {print s + 0}'; }
# wait_current SECONDS TARGET DEST...: waits until every DEST/current names
# TARGET; false (naming the ones that do not) when SECONDS pass.
wait_current() {
  local bound=$1 target=$2 d missing
  shift 2
  local end=$((SECONDS + bound))
  while :; do
    missing=()
    for d in "$@"; do [ "$(readlink "$d/current" 2>/dev/null)" = "$target" ] || missing+=("$d"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ $SECONDS -ge $end ] && { echo "not installed after ${bound}s: ${missing[*]}"; return 1; }
    sleep 0.2
  done
}
