#!/usr/bin/env bash
# Manifests an agent must refuse: tampered, signed by an unknown key,
# expired, and a replayed older signing of a release it already trusts.
#
# Trackers verify manifests when they are registered, so a bad one cannot
# reach an agent through a tracker that trusts what the agent trusts. These
# tests put it where nothing else checks it:
#
# 1. The agent's own checks, through its origin fallback: an agent with no
#    tracker and --origin pointing at an origin tree doctored after
#    publishing (`shoal-publish serve` of it). `shoalctl fetch --dest` of
#    each bad manifest must exit 1 with the reason on stderr (bad
#    signature, untrusted key with its id, expired, replayed with both
#    sequences, also once the trusted release was removed from the store);
#    the agent must hold nothing of it, nothing may appear in
#    the destination, and DEST/current must still name the good release
#    installed first.
# 2. A channel, with a tracker that trusts a second publisher key the agent
#    does not (release signed by it), and a release whose manifest expired
#    between `rollout set` and the agent hearing of it: `shoalctl status`
#    must show the reason under each channel, and nothing is installed.
set -uo pipefail
source "$(dirname "$0")/../testlib.sh"
source "$(dirname "$0")/e2elib.sh" "$@"

make_pki
"$publish" keygen --out=key >/dev/null 2>&1
rogue_id=$("$publish" keygen --out=rogue 2>/dev/null)
rogue_short=${rogue_id:0:8}
mkdir -p in
head -c 300000 /dev/urandom > in/payload.bin
echo "release notes" > in/notes.txt

create() {  # create KEY NAME ORIGIN FLAGS...: publishes ./in; prints the release id
  "$publish" create --key="$1" --name="$2" --version=1 --origin="$3" --piece_size=65536 "${@:4}" \
    in 2>>create.log | tail -n 1
}
# The good release, signed twice: the older signing (sequence 1000) is the
# one a replay brings back.
old_id=$(create key good origin --sequence=1000)
good_id=$(create key good origin --sequence=2000)
tampered_id=$(create key tampered origin)
create rogue rogue origin >/dev/null
expired_id=$(create key expired origin --expires_in=2s)
expired_at=$((SECONDS + 2))
[ -n "$old_id" ] && [ -n "$good_id" ] && [ -n "$tampered_id" ] && [ -n "$expired_id" ] \
  || give_up "create: $(cat create.log)"
# Tampering: one path in the signed body changed, same length, signatures kept.
$py - "origin/releases/$tampered_id.manifest" <<'PY'
import sys
path = sys.argv[1]
data = open(path, "rb").read()
assert data.count(b"payload.bin") == 1
open(path, "wb").write(data.replace(b"payload.bin", b"payload.exe"))
PY

start_origin origin origin
spawn solo "$agent" --origin="$origin_url" --listen=127.0.0.1:0 --data_dir=solo \
  --datacenter=dc1 --rack=r1 --trust=key.pub --insecure --durable=false --ready_file=solo.json
wait_file solo.json || give_up "the agent did not start"
mkdir dest
timeout 30 "$ctl" --agent=solo/agent.sock fetch good@1 --dest="$work/dest" >good.out 2>good.err \
  && [ "$(readlink dest/current)" = good@1 ] && same_tree in dest/current \
  && ok "good@1 (sequence 2000) fetched from the origin and installed" \
  || give_up "good@1: $(cat good.err)"

# refused NAME@1 EXPECTED_REGEX WHAT: the fetch fails with the reason, and
# leaves no trace in the agent or the destination.
refused() {
  local release=$1 reason=$2 what=$3 stem=${1%@*} rc
  timeout 30 "$ctl" --agent=solo/agent.sock fetch "$release" --dest="$work/dest" \
    >"$stem.out" 2>"$stem.err"
  rc=$?
  echo "$what: $(tail -n 1 "$stem.err")"
  [ $rc -eq 1 ] && grep -Eq "$reason" "$stem.err" \
    && ok "$what: refused, the reason shown" \
    || bad "$what: exit $rc, expected 1 with /$reason/: $(cat "$stem.err")"
  [ "$(readlink dest/current)" = good@1 ] && [ "$(ls -A dest | tr '\n' ' ')" = "current good@1 " ] \
    && grep -q "$good_id" dest/good@1/.shoal-release \
    && ok "$what: nothing installed, current still good@1 (sequence 2000)" \
    || bad "$what: the destination changed: $(ls -la dest)"
  "$ctl" --agent=solo/agent.sock list >list.out 2>&1
  grep -q "^$stem@" list.out && bad "$what: the agent holds it: $(cat list.out)"
}

refused tampered@1 "bad signature by key" "tampered manifest"
refused rogue@1 "untrusted key $rogue_short" "manifest signed by an unknown key"
while [ $SECONDS -le $expired_at ]; do sleep 0.2; done
refused expired@1 "expired at" "expired manifest"
# The origin now serves the older signing. The agent no longer holds good@1
# either: its record of the sequence it trusted outlives the release.
echo "$old_id" > origin/names/good/1
timeout 30 "$ctl" --agent=solo/agent.sock remove good@1 >/dev/null 2>&1 \
  || bad "cannot remove good@1 from the store"
refused good@1 "replayed manifest: good@1 sequence 1000 is older than the trusted sequence 2000" \
  "replayed older signing (by name)"
refused "$old_id" "replayed manifest" "replayed older signing (by release id)"
cmp -s in/payload.bin dest/current/payload.bin || bad "the installed good@1 changed"
ls solo/releases/ 2>/dev/null | grep -qE "$tampered_id|$expired_id|$old_id" \
  && bad "a refused release left data in the store: $(ls solo/releases)"
stop solo

# 2. Through channels: the tracker trusts both publisher keys.
"$publish" trust --out=both.json key.pub rogue.pub >/dev/null 2>&1 || give_up "trust file"
start_tracker tracker 127.0.0.1:0 --trust=both.json
register "$taddr" "$origin_url" rogue@1
create key late origin --expires_in=6s >/dev/null
late_expires=$((SECONDS + 6))
register "$taddr" "$origin_url" late@1
rollout "$taddr" set rogue/stable rogue@1 --percent=100
rollout "$taddr" set late/stable late@1 --percent=100
ok "the tracker (trusting both keys) accepted rogue@1 and late@1 and rolled them out"
while [ $SECONDS -le $late_expires ]; do sleep 0.2; done
mkdir -p rdest ldest
start_agent follower "$taddr" --follow="rogue/stable=$work/rdest,late/stable=$work/ldest"

# channel_error CHANNEL: the error the agent's status shows under it.
channel_error() {
  status_of follower | $py -c '
import json, sys
for c in json.load(sys.stdin).get("channels") or []:
    if c.get("channel") == sys.argv[1]:
        print(c.get("error", ""))' "$1"
}
for channel in rogue/stable late/stable; do
  case $channel in
    rogue/*) reason="untrusted key $rogue_short" ;;
    late/*) reason="expired at" ;;
  esac
  seen=""
  for _ in $(seq 1 100); do
    seen=$(channel_error "$channel")
    [ -n "$seen" ] && break
    sleep 0.1
  done
  echo "$channel: $seen"
  echo "$seen" | grep -q "$reason" && ok "$channel: refused, the reason shown in status" \
    || bad "$channel: status shows \"$seen\", expected /$reason/"
done
"$ctl" --agent=follower/agent.sock status >status.out 2>&1
echo "--- shoalctl status"
cat status.out
[ -z "$(ls -A rdest)" ] && [ -z "$(ls -A ldest)" ] && ok "nothing installed from either channel" \
  || bad "installed despite the refusal: $(ls -la rdest ldest)"
[ "$(status_of follower | $py -c 'import json, sys; print(len(json.load(sys.stdin)["releases"]))')" = 0 ] \
  && ok "the agent holds nothing of either" \
  || bad "the agent holds a refused release: $(cat status.out)"
finish
