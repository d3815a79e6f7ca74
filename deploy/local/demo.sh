#!/usr/bin/env bash
# The local swarm demo. On this machine, over loopback with mutual TLS: makes
# a fleet CA with certificates and a publisher key, starts the embedded origin
# (`shoal-publish serve`), one tracker and N agents following the channel
# game-server/stable, publishes a generated sample release, rolls it out to
# every agent (`shoalctl rollout set --percent=100`), shows the swarm's
# progress once a second, and ends with a summary: the time until every agent
# had installed the release, bytes from the origin and from peers, the origin
# offload, proof failures and where each agent's metrics are. The byte counts
# of the agents' status are checked against their own /metrics.
#
#   deploy/local/demo.sh [--agents=N] [--size_mb=MIB] [--piece_size=BYTES]
#                        [--dir=DIR] [--keep_running] [--prometheus]
#
# or in the environment:
#   SHOAL_DEMO_AGENTS        agents (default 8)
#   SHOAL_DEMO_SIZE_MB       sample release size in MiB (default 512)
#   SHOAL_PIECE_SIZE         piece size in bytes, a power of two (default 4194304)
#   SHOAL_DEMO_DIR           working directory (default: a new temporary one,
#                            deleted at the end; its logs are kept on failure)
#   SHOAL_DEMO_KEEP_RUNNING  1: leave the swarm running after the summary
#                            until Ctrl-C, to look at metrics and status
#   SHOAL_DEMO_PROMETHEUS    1: also start Debian's Prometheus scraping every
#                            daemon (deploy/prometheus/run-local.sh, with
#                            the alert rules) and print its URL; best with
#                            --keep_running
#
# Every process the demo starts is stopped, by PID, at the end or on Ctrl-C.
# Exit status 0 when every agent installed the release with no proof failure
# and the counts agree; 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

agents=${SHOAL_DEMO_AGENTS:-8}
size_mb=${SHOAL_DEMO_SIZE_MB:-512}
piece_size=${SHOAL_PIECE_SIZE:-4194304}
dir=${SHOAL_DEMO_DIR:-}
keep_running=${SHOAL_DEMO_KEEP_RUNNING:-0}
prometheus=${SHOAL_DEMO_PROMETHEUS:-0}
usage() { sed -n '12,13p' "$0" | sed 's/^#   //' >&2; exit 2; }  # the synopsis
for arg in "$@"; do
  case $arg in
    --agents=*) agents=${arg#*=} ;;
    --size_mb=*) size_mb=${arg#*=} ;;
    --piece_size=*) piece_size=${arg#*=} ;;
    --dir=*) dir=${arg#*=} ;;
    --keep_running) keep_running=1 ;;
    --prometheus) prometheus=1 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $arg" >&2; usage ;;
  esac
done
[[ $agents =~ ^[0-9]+$ ]] && [ "$agents" -ge 1 ] && [ "$agents" -le 64 ] \
  || { echo "demo.sh: --agents must be 1..64" >&2; exit 2; }
[[ $size_mb =~ ^[0-9]+$ ]] && [ "$size_mb" -ge 1 ] \
  || { echo "demo.sh: --size_mb must be a positive number of MiB" >&2; exit 2; }
[[ $piece_size =~ ^[0-9]+$ ]] || { echo "demo.sh: --piece_size must be a number of bytes" >&2; exit 2; }

./deploy/install-deps.sh
py=/usr/bin/python3
step() { echo "== $*" >&2; }

made_dir=0
if [ -z "$dir" ]; then
  dir=$(mktemp -d -t shoal-demo.XXXXXX)
  made_dir=1
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# The store and an installed copy per agent, the input and the origin.
need_kb=$(( (2 * agents + 2) * size_mb * 1024 + 1048576 ))
free_kb=$(df -Pk "$dir" | awk 'NR == 2 {print $4}')
if [ "$free_kb" -lt "$need_kb" ]; then
  echo "demo.sh: $dir has $((free_kb / 1024)) MiB free; $agents agents and a ${size_mb} MiB release" \
    "need about $((need_kb / 1024)) MiB (try --size_mb or --agents lower, or --dir elsewhere)" >&2
  exit 1
fi

# Processes by PID, stopped in reverse order of start.
pids=()
names=()
declare -A pid_of
outcome=1
cleanup() {
  local i p
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for ((i = 0; i < ${#pids[@]}; i++)); do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "${names[$i]} did not stop on SIGTERM within 10 s: killed" >&2
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
    wait "${pids[$i]}" 2>/dev/null || true
  done
  [ ${#pids[@]} -eq 0 ] || echo "stopped ${#pids[@]} processes" >&2
  if [ "$made_dir" -eq 1 ]; then
    if [ "$outcome" -eq 0 ] || ! compgen -G "$dir/*.log" >/dev/null; then
      rm -rf "$dir"
    else
      rm -rf "$dir"/agent-*/ "$dir"/dest-* "$dir/input" "$dir/origin"
      echo "logs kept in $dir" >&2
    fi
  fi
}
trap cleanup EXIT
# Ctrl-C: exit 130, or 0 when the demo had already succeeded (--keep_running).
trap 'echo; if [ "$outcome" -eq 0 ]; then exit 0; fi; echo "interrupted" >&2; exit 130' INT TERM
# spawn NAME CMD...: runs CMD in the background, output into NAME.log.
spawn() {
  local name=$1
  shift
  "$@" >>"$dir/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
  pid_of[$name]=$!
}
# wait_ready NAME FILE: waits (at most 30 s) until the process wrote FILE.
wait_ready() {
  for _ in $(seq 1 300); do
    [ -s "$2" ] && return 0
    kill -0 "${pid_of[$1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "demo.sh: $1 did not start; the end of $dir/$1.log:" >&2
  tail -n 20 "$dir/$1.log" >&2
  exit 1
}
json_field() { $py -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

step "building shoal-publish, shoal-tracker, shoal-agent and shoalctl (bazel build -c opt)"
bazel build -c opt //publisher:shoal-publish //tracker:shoal-tracker //agent:shoal-agent \
  //agent:shoalctl >&2
bazel_bin=$(bazel info -c opt bazel-bin 2>/dev/null)
mkdir -p "$dir/bin"
for b in publisher/shoal-publish tracker/shoal-tracker agent/shoal-agent agent/shoalctl; do
  cp -f "$bazel_bin/$b" "$dir/bin/"
done
publish=$dir/bin/shoal-publish
tracker=$dir/bin/shoal-tracker
agent=$dir/bin/shoal-agent
ctl=$dir/bin/shoalctl
cd "$dir"

step "making a fleet CA, certificates for the tracker, $agents agents and the publisher"
mkdir -p pki
issue() {  # issue NAME SAN: pki/NAME.pem and pki/NAME.key, signed by the fleet CA
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "pki/$1.key" -out "pki/$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "pki/$1.ext"
  openssl x509 -req -in "pki/$1.csr" -CA pki/ca.pem -CAkey pki/ca.key -CAcreateserial \
    -days 2 -extfile "pki/$1.ext" -out "pki/$1.pem" 2>/dev/null
}
tls() { echo "--tls_cert=pki/$1.pem --tls_key=pki/$1.key --tls_ca=pki/ca.pem"; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=shoal-demo-fleet-ca -keyout pki/ca.key -out pki/ca.pem 2>/dev/null
issue tracker "IP:127.0.0.1,DNS:tracker.fleet"
issue publisher "DNS:publisher.fleet"
for i in $(seq 1 "$agents"); do issue "agent-$i" "IP:127.0.0.1,DNS:agent-$i.fleet"; done

step "making a publisher key"
"$publish" keygen --out=publisher.key >/dev/null
"$publish" trust --out=trust.json publisher.key.pub >/dev/null

version="demo-$(date +%Y%m%d-%H%M%S)"
release="game-server@$version"
step "generating a ${size_mb} MiB sample release in $dir/input"
mkdir -p input/bin input/assets/textures
mib=1048576
textures=$(( size_mb * mib * 3 / 4 ))
head -c $(( textures / 2 )) /dev/urandom > input/assets/textures/pack-1.bin
head -c $(( textures - textures / 2 )) /dev/urandom > input/assets/textures/pack-2.bin
head -c $(( size_mb * mib - textures - 12345 - 38 > 0 ? size_mb * mib - textures - 12345 - 38 : 0 )) \
  /dev/urandom > input/bin/game-server
chmod 0755 input/bin/game-server
head -c 12345 /dev/urandom > input/assets/config.bin
printf 'sample release made by the Shoal demo\n' > input/README.txt
: > input/assets/EMPTY

step "publishing $release into $dir/origin"
id=$("$publish" create --key=publisher.key --name=game-server --version="$version" \
  --origin=origin --piece_size="$piece_size" input | tail -n 1)
size=$(find input -type f -printf '%s\n' | awk '{s += $1} END {print s}')
files=$(find input -type f | wc -l)

step "starting the origin, the tracker and $agents agents"
origin_flags=()
publish_help=$("$publish" --helpfull 2>&1 || true)
case $publish_help in
  *--metrics_listen*) origin_flags=(--metrics_listen=127.0.0.1:0) ;;  # the origin counts too
esac
spawn origin "$publish" serve --origin=origin --listen=127.0.0.1:0 --ready_file=origin.ready \
  "${origin_flags[@]}"
wait_ready origin origin.ready
origin_addr=$(head -n 1 origin.ready)
origin_metrics=$(sed -n 2p origin.ready)
spawn tracker "$tracker" --listen=127.0.0.1:0 --datacenter=demo --trust=trust.json \
  $(tls tracker) --admin_identities=publisher.fleet --metrics_listen=127.0.0.1:0 \
  --ready_file=tracker.json
wait_ready tracker tracker.json
taddr=$(json_field tracker.json grpc)
for i in $(seq 1 "$agents"); do
  mkdir -p "dest-$i"
  spawn "agent-$i" "$agent" --tracker="$taddr" --listen=127.0.0.1:0 --data_dir="agent-$i" \
    --datacenter=demo --rack="rack-$(( (i - 1) % 2 + 1 ))" --trust=trust.json $(tls "agent-$i") \
    --follow="game-server/stable=$dir/dest-$i" --metrics_listen=127.0.0.1:0 \
    --ready_file="agent-$i.json"
done
for i in $(seq 1 "$agents"); do wait_ready "agent-$i" "agent-$i.json"; done
echo "origin http://$origin_addr/, tracker $taddr, $agents agents in datacenter demo" >&2

if [ "$prometheus" = 1 ]; then
  if ! command -v prometheus >/dev/null; then
    echo "demo.sh: --prometheus needs Debian's prometheus package (deploy/install-deps.sh)" >&2
  else
    step "starting Prometheus on the swarm's metrics"
    prom_port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    prom_args=(--listen="127.0.0.1:$prom_port" --scrape_interval=1s --datacenter=demo
               --tracker="$(json_field tracker.json metrics)")
    [ -n "$origin_metrics" ] && prom_args+=(--origin="$origin_metrics")
    for i in $(seq 1 "$agents"); do prom_args+=(--agent="$(json_field "agent-$i.json" metrics)"); done
    if prom_url=$("$repo/deploy/prometheus/run-local.sh" "$dir/prometheus" "${prom_args[@]}" 2>>"$dir/prometheus.log"); then
      pids+=("$(cat "$dir/prometheus/prometheus.pid")"); names+=(prometheus)
      echo "Prometheus: $prom_url (rules from deploy/prometheus; dashboard in deploy/grafana)" >&2
    else
      echo "demo.sh: Prometheus did not start; see $dir/prometheus.log" >&2
    fi
  fi
fi

step "registering $release with the tracker"
"$publish" register --tracker="$taddr" --origin=origin --origin_url="http://$origin_addr/" \
  $(tls publisher) "$release" >&2

step "rolling $release out to game-server/stable at 100%"
start_ms=$(date +%s%3N)
"$ctl" --tracker="$taddr" $(tls publisher) rollout set game-server/stable "$release" \
  --percent=100 >&2

# Live progress, then the summary, from every agent's `shoalctl status --json`
# and /metrics.
monitor_ok=1
$py - "$ctl" "$id" "$size" "$agents" "$start_ms" "$dir" "$files" "$piece_size" "$origin_metrics" \
  <<'PY' || monitor_ok=0
import json, os, re, signal, subprocess, sys, time, urllib.request

ctl, release_id, size, n, start_ms, workdir, files, piece, origin_metrics = sys.argv[1:10]
size, n, start_ms, files, piece = int(size), int(n), int(start_ms), int(files), int(piece)
TIME_BOUND = 30 * 60


def human(b):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(b) < 1024 or unit == "TiB":
            return "%.0f %s" % (b, unit) if unit == "B" else "%.2f %s" % (b, unit)
        b /= 1024.0


def statuses():
    """Every agent's `shoalctl status --json`, asked all at once."""
    calls = [subprocess.Popen([ctl, "--agent=%s/agent-%d/agent.sock" % (workdir, i), "status",
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True) for i in range(1, n + 1)]
    result = []
    for call in calls:
        out = call.communicate()[0]
        try:
            result.append(json.loads(out))
        except ValueError:
            result.append({})
    return result


def release_of(s):
    for r in s.get("releases") or []:
        if r.get("release_id") == release_id:
            return r
    return {}


def installed(s):
    return any(c.get("installed_release_id") == release_id for c in s.get("channels") or [])


def channel_error(s):
    return "; ".join(c["error"] for c in s.get("channels") or [] if c.get("error"))


def scrape(url):
    sums = {"origin": 0.0, "peer": 0.0, "proof_failures": 0.0}
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("shoal_agent_verified_bytes_total{"):
            labels, value = line.rsplit(" ", 1)
            m = re.search(r'source="([^"]+)"', labels)
            if m:
                sums[m.group(1)] = sums.get(m.group(1), 0.0) + float(value)
        elif line.startswith("shoal_agent_proof_failures_total"):
            sums["proof_failures"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("shoal_origin_sent_bytes_total"):
            sums["origin_sent"] = sums.get("origin_sent", 0.0) + float(line.rsplit(" ", 1)[1])
    return sums


def progress():
    last_t, last_v = time.time(), 0
    while True:
        time.sleep(max(0.0, last_t + 1 - time.time()))
        states = statuses()
        rels = [release_of(s) for s in states]
        now = time.time()
        verified = sum(int(r.get("bytes_verified", 0)) for r in rels)
        origin = sum(int(r.get("bytes_from_origin", 0)) for r in rels)
        peers = sum(int(r.get("bytes_from_peers", 0)) for r in rels)
        failures = sum(int(r.get("proof_failures", 0)) for r in rels)
        done = sum(1 for s in states if installed(s))
        rate = (verified - last_v) / max(now - last_t, 1e-3)
        last_t, last_v = now, verified
        print("%6.1fs  installed %d/%d  verified %s of %s (%3.0f%%)  %s/s  from origin %s, "
              "from peers %s  proof failures %d" % (
                  now - start_ms / 1000.0, done, n, human(verified), human(size * n),
                  100.0 * verified / (size * n), human(rate), human(origin), human(peers),
                  failures), flush=True)
        errors = [(i + 1, channel_error(s)) for i, s in enumerate(states) if channel_error(s)]
        for i, e in errors:
            print("agent-%d: %s" % (i, e), flush=True)
        if done == n:
            return states
        if now - start_ms / 1000.0 > TIME_BOUND:
            print("not every agent installed the release within %d s" % TIME_BOUND)
            return None


def summary(states):
    ok = True
    rels = [release_of(s) for s in states]
    origin = sum(int(r["bytes_from_origin"]) for r in rels)
    peers = sum(int(r["bytes_from_peers"]) for r in rels)
    failures = sum(int(r["proof_failures"]) for r in rels)
    install_ms = []
    for r in rels:
        times = [int(x["installed_unix_ms"]) for x in r.get("installs") or [] if x.get("current")]
        install_ms.append(max(times) if times else 0)
    ready = [json.load(open("%s/agent-%d.json" % (workdir, i))) for i in range(1, n + 1)]
    scraped = [scrape("http://%s/metrics" % r["metrics"]) for r in ready]
    m_origin = sum(s["origin"] for s in scraped)
    m_peers = sum(s["peer"] for s in scraped)
    m_failures = sum(s["proof_failures"] for s in scraped)

    print()
    print("== summary")
    print("release          %s@%s, %s in %d files, %s pieces" % (
        rels[0]["name"], rels[0]["version"], human(size), files, human(piece)))
    print("                 id %s" % release_id)
    print("agents           %d, each following game-server/stable over mutual TLS" % n)
    print("all installed    %.1f s after `shoalctl rollout set` (first %.1f s, median %.1f s)" % (
        (max(install_ms) - start_ms) / 1000.0, (min(install_ms) - start_ms) / 1000.0,
        (sorted(install_ms)[n // 2] - start_ms) / 1000.0))
    print("from the origin  %s (%.2f copies of the release)" % (human(origin), origin / size))
    print("from peers       %s" % human(peers))
    print("origin offload   %.1f%% of the %s the agents verified came from peers" % (
        100.0 * peers / max(origin + peers, 1), human(origin + peers)))
    print("proof failures   %d" % failures)
    agree = (int(m_origin), int(m_peers)) == (origin, peers)
    print("counts checked   %s: status says origin %d + peers %d bytes, the agents' /metrics "
          "(shoal_agent_verified_bytes_total) origin %d + peers %d" % (
              "they agree" if agree else "FAIL, they disagree", origin, peers, m_origin, m_peers))
    ok = ok and agree
    if origin_metrics:
        try:
            o = scrape("http://%s/metrics" % origin_metrics).get("origin_sent", 0)
            print("                 the origin's own count (shoal_origin_sent_bytes_total): %d "
                  "bytes, every response body" % o)
        except OSError as e:
            print("                 the origin's /metrics did not answer: %s" % e)
    if origin + peers != n * size:
        print("FAIL: %d bytes verified in all, expected %d agents x %d" % (origin + peers, n, size))
        ok = False
    if failures or m_failures:
        print("FAIL: %d proof failures (metrics: %d); there must be none" % (failures, m_failures))
        ok = False
    print()
    if origin_metrics:
        print("origin metrics   http://%s/metrics" % origin_metrics)
    print("tracker metrics  http://%s/metrics" % json.load(open("%s/tracker.json" % workdir))["metrics"])
    print("agent      rack     installed  from origin   from peers    metrics")
    for i, (s, r, t, rd) in enumerate(zip(states, rels, install_ms, ready), 1):
        print("agent-%-4d %-8s %8.1fs  %-12s  %-12s  http://%s/metrics" % (
            i, s.get("rack", ""), (t - start_ms) / 1000.0, human(int(r["bytes_from_origin"])),
            human(int(r["bytes_from_peers"])), rd["metrics"]))
    return ok


try:
    final = progress()
    sys.exit(0 if final is not None and summary(final) else 1)
except KeyboardInterrupt:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
PY

if [ "$monitor_ok" -eq 1 ]; then
  step "checking every agent's installed files against the input"
  same=1
  for i in $(seq 1 "$agents"); do
    while IFS= read -r f; do
      cmp -s "input/$f" "dest-$i/current/$f" || { echo "agent-$i: $f differs" >&2; same=0; }
    done < <(cd input && find . -type f)
  done
  [ "$same" -eq 1 ] && outcome=0 && echo "all $agents copies are byte-identical to the input" >&2
fi
if [ "$outcome" -eq 0 ] && [ "$keep_running" = 1 ]; then
  echo "the swarm keeps running until Ctrl-C; try:" >&2
  echo "  $ctl --agent=$dir/agent-1/agent.sock status" >&2
  echo "  $ctl --tracker=$taddr $(tls publisher | sed "s|pki/|$dir/pki/|g") swarm" >&2
  while :; do sleep 1; done
fi
exit "$outcome"
