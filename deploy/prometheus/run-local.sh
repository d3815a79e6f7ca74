#!/usr/bin/env bash
# Starts Debian's Prometheus (the `prometheus` package) on loopback, scraping
# local Shoal daemons with deploy/prometheus's configuration and alert rules,
# and leaves it running in the background. For demos and tests; a fleet keeps
# prometheus.yml and fills the targets files from its inventory instead.
#
#   run-local.sh DIR [--listen=HOST:PORT] [--scrape_interval=DURATION]
#                [--datacenter=NAME] [--tracker=HOST:PORT]...
#                [--agent=HOST:PORT]... [--origin=HOST:PORT]...
#
# The addresses are the daemons' --metrics_listen addresses (their ready
# files say which). DIR receives prometheus.yml, the rules, targets/*.yml,
# the TSDB (data/), prometheus.log and prometheus.pid. Once Prometheus is
# ready, prints its URL on stdout. Stop it with: kill "$(cat DIR/prometheus.pid)".
# Defaults: --listen=127.0.0.1:9090 --scrape_interval=15s --datacenter=dc1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1; shift
listen=127.0.0.1:9090
interval=15s
datacenter=dc1
trackers=(); agents=(); origins=()
for arg in "$@"; do
  case "$arg" in
    --listen=*) listen=${arg#*=} ;;
    --scrape_interval=*) interval=${arg#*=} ;;
    --datacenter=*) datacenter=${arg#*=} ;;
    --tracker=*) trackers+=("${arg#*=}") ;;
    --agent=*) agents+=("${arg#*=}") ;;
    --origin=*) origins+=("${arg#*=}") ;;
    *) echo "run-local.sh: unknown argument $arg" >&2; usage ;;
  esac
done
command -v prometheus >/dev/null || {
  echo "run-local.sh: no prometheus binary; ./deploy/install-deps.sh installs it" >&2; exit 1; }

# targets_file FILE LABELLED ADDR...: a file_sd targets file; LABELLED=1 adds
# the datacenter label.
targets_file() {
  local file=$1 labelled=$2; shift 2
  if [ $# -eq 0 ]; then echo "[]" > "$file"; return; fi
  {
    printf -- '- targets:\n'
    for a in "$@"; do printf '    - "%s"\n' "$a"; done
    if [ "$labelled" = 1 ]; then printf '  labels:\n    datacenter: "%s"\n' "$datacenter"; fi
  } > "$file"
}

mkdir -p "$dir/targets" "$dir/data"
sed -e "s/^\(  scrape_interval:\).*/\1 $interval/" \
    -e "s/^\(  evaluation_interval:\).*/\1 $interval/" \
    "$here/prometheus.yml" > "$dir/prometheus.yml"
cp "$here/shoal-alerts.yml" "$dir/shoal-alerts.yml"
targets_file "$dir/targets/trackers.yml" 1 ${trackers[@]+"${trackers[@]}"}
targets_file "$dir/targets/agents.yml" 1 ${agents[@]+"${agents[@]}"}
targets_file "$dir/targets/origins.yml" 0 ${origins[@]+"${origins[@]}"}

prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --web.listen-address="$listen" --storage.tsdb.retention.time=1d \
  > "$dir/prometheus.log" 2>&1 &
pid=$!
echo "$pid" > "$dir/prometheus.pid"
# Ready when its own log says so (another server may answer on a port
# that this one failed to bind).
for _ in $(seq 1 300); do
  kill -0 "$pid" 2>/dev/null || break
  if grep -q "Server is ready to receive web requests" "$dir/prometheus.log" &&
     curl -fs "http://$listen/-/ready" >/dev/null 2>&1; then
    echo "http://$listen/"
    exit 0
  fi
  sleep 0.1
done
echo "run-local.sh: prometheus did not become ready on $listen; its log:" >&2
tail -n 20 "$dir/prometheus.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
