#!/usr/bin/env bash
# shoal-tracker and `shoal-publish register` as real processes: a tracker on
# mutual TLS with a fleet CA made here by openssl, a publisher registering a
# release as an admin identity, a non-admin refused, an untrusted manifest
# refused, metrics and health served, a clean stop on SIGTERM.
set -uo pipefail
source "$(dirname "$0")/testlib.sh"
publish=$(realpath "$1")
tracker=$(realpath "$2")
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# A fleet CA and three certificates: the tracker (IP SAN 127.0.0.1), a
# publisher (an admin identity) and an agent (not one).
make_fleet_ca
issue_cert tracker "IP:127.0.0.1,DNS:localhost"
issue_cert publisher "DNS:publisher.fleet"
issue_cert agent "DNS:agent-7.fleet"

"$publish" keygen --out=release.key >/dev/null 2>&1
"$publish" keygen --out=stranger.key >/dev/null 2>&1
mkdir in && head -c 200000 /dev/urandom > in/app.bin
"$publish" create --key=release.key --name=app --version=1 --origin=origin in >/dev/null 2>&1
"$publish" create --key=stranger.key --name=app --version=2 --origin=origin in >/dev/null 2>&1

"$tracker" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --datacenter=dc1 \
  --trust=release.key.pub --tls_cert=tracker.pem --tls_key=tracker.key --tls_ca=ca.pem \
  --admin_identities=publisher.fleet --ready_file=ready.json 2>tracker.log &
pids+=($!)
tracker_pid=$!
if wait_file ready.json; then ok "tracker writes its ready file"; else bad "tracker ready file"; cat tracker.log; exit 1; fi
grpc=$(json_field ready.json grpc)
metrics=$(json_field ready.json metrics)
grep -q "$grpc" tracker.log && ok "tracker logs the bound address" || bad "bound address in log"

out=$("$publish" register --tracker="$grpc" --origin=origin --origin_url=http://127.0.0.1:1/ $(tls_flags publisher) app@1 2>&1)
grep -q "registered" <<<"$out" && ! grep -q "already" <<<"$out" && ok "admin registers a release" || bad "admin register: $out"
out=$("$publish" register --tracker="$grpc" --origin=origin --origin_url=http://127.0.0.1:1/ $(tls_flags publisher) app@1 2>&1)
grep -q "already registered" <<<"$out" && ok "registering again is idempotent" || bad "re-register: $out"
if out=$("$publish" register --tracker="$grpc" --origin=origin --origin_url=http://127.0.0.1:1/ $(tls_flags agent) app@1 2>&1); then
  bad "agent certificate registered a release"
else
  grep -q "PERMISSION_DENIED.*agent-7.fleet" <<<"$out" && ok "non-admin identity refused" || bad "non-admin: $out"
fi
if out=$("$publish" register --tracker="$grpc" --origin=origin --origin_url=http://127.0.0.1:1/ $(tls_flags publisher) app@2 2>&1); then
  bad "untrusted manifest registered"
else
  grep -q "UNAUTHENTICATED.*untrusted key" <<<"$out" && ok "manifest from an untrusted key refused" || bad "untrusted: $out"
fi
if out=$("$publish" register --tracker="$grpc" --origin=origin --origin_url=http://127.0.0.1:1/ --insecure app@1 2>&1); then
  bad "plaintext client registered with a TLS tracker"
else
  ok "plaintext client cannot talk to a TLS tracker"
fi
[ "$(curl -s "http://$metrics/healthz")" = "ok" ] && ok "healthz" || bad "healthz"
curl -s "http://$metrics/metrics" | grep -q 'shoal_tracker_rpcs_total{code="PERMISSION_DENIED",method="RegisterRelease"} 1' \
  && ok "metrics count the refused call" || bad "metrics: $(curl -s "http://$metrics/metrics" | grep rpcs_total)"

kill -TERM "$tracker_pid"
for _ in $(seq 1 100); do kill -0 "$tracker_pid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$tracker_pid" 2>/dev/null; then bad "tracker still running 5 s after SIGTERM"; else
  wait "$tracker_pid"; rc=$?; [ "$rc" -eq 0 ] && ok "tracker stops cleanly on SIGTERM" || bad "exit code $rc"
fi

if "$tracker" --listen=0.0.0.0:0 --datacenter=dc1 --trust=release.key.pub --insecure 2>err.log; then
  bad "insecure tracker on 0.0.0.0 started"
else
  grep -qi "loopback" err.log && ok "insecure refused off loopback" || bad "insecure message: $(cat err.log)"
fi
finish
