#!/usr/bin/env bash
# End-to-end: one agent's disk fills up at the start of a download. Its data
# directory is a small tmpfs mounted here, with a ballast file that leaves
# room for about three of the sixteen pieces; three other agents are on the
# ordinary disk. All four fetch at once. Checks: the full agent reports
# FAILED with the disk-full reason (status and shoalctl fetch), the three
# others complete with byte-identical files meanwhile, and once the ballast
# is removed the full agent completes by itself (it tries the store again
# every few seconds once there is room), with byte-identical files.
#
# The full agent may hold origin leases when its disk fills: it stops asking
# for (and renewing) leases while it cannot store, so the others get those
# pieces once the leases lapse: --lease_ttl=10s here, and the others must
# finish within 30 s. Needs root for the mount: skipped, visibly, without.
set -uo pipefail
source "$(dirname "$0")/../testlib.sh"
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIPPED: mounting a tmpfs needs root; run as root (CI does) to test a full disk"
  exit 0
fi
source "$(dirname "$0")/e2elib.sh" "$@"

# The processes go first (the full agent keeps files open on the tmpfs),
# then the mount, then the rest of e2elib's cleanup.
mounted=
disk_cleanup() {
  local name
  for name in "${!pid_of[@]}"; do stop "$name" KILL 2>/dev/null; done
  if [ -n "$mounted" ]; then umount "$mounted" 2>/dev/null || umount -l "$mounted"; fi
  e2e_cleanup
}
trap disk_cleanup EXIT

piece=1048576
mib=16
make_pki
head -c $(( mib * piece - 4321 )) /dev/urandom > release.bin
"$publish" keygen --out=key >/dev/null 2>&1
id=$("$publish" create --key=key --name=big --version=1 --origin=origin --piece_size=$piece \
  release.bin 2>create.log | tail -n 1)
start_origin origin origin
start_tracker tracker 127.0.0.1:0 --lease_ttl=10s
register "$taddr" "$origin_url" big@1

# 24 MiB, of which the ballast takes 21: room for about 3 of the 16 pieces.
mkdir full
mount -t tmpfs -o size=24m shoal-e2e-full full || give_up "cannot mount a tmpfs on $work/full"
mounted=$work/full
for a in a1 a2 a3 full; do start_agent "$a" "$taddr"; done
head -c $(( 21 * 1048576 )) /dev/zero > full/ballast
ok "agents started; $(df -h --output=avail full | tail -n 1 | tr -d ' ') left on the small tmpfs"

for a in a1 a2 a3; do
  spawn "fetch-$a" timeout 30 "$ctl" --agent="$a/agent.sock" fetch big@1 --json
done
spawn fetch-full timeout 75 "$ctl" --agent=full/agent.sock fetch big@1 --json

# The full agent: FAILED, with the disk-full reason naming its store.
state_and_error() {
  status_of full | $py -c '
import json, sys
r = json.load(sys.stdin).get("releases") or [{}]
print(r[0].get("state", ""), r[0].get("error", ""))'
}
for _ in $(seq 1 200); do
  seen=$(state_and_error)
  case "$seen" in RELEASE_STATE_FAILED*) break ;; esac
  sleep 0.1
done
echo "full agent: $seen"
case "$seen" in
  "RELEASE_STATE_FAILED "*"No space left on device"*)
    case "$seen" in
      *"$work/full/"*|*"full/releases/"*) ok "the full agent reports FAILED: no space left, naming its store" ;;
      *) bad "the full agent's error does not name where it writes: $seen" ;;
    esac ;;
  *) bad "the full agent does not report a full disk: $seen" ;;
esac

for a in a1 a2 a3; do
  wait "${pid_of[fetch-$a]}" && ok "$a completed within 30 s while the other agent's disk was full" \
    || bad "$a did not complete: $(tail -n 2 "fetch-$a.log")"
  unset "pid_of[fetch-$a]"
  cmp -s release.bin "$a/releases/$id/data/release.bin" && ok "$a holds byte-identical files" \
    || bad "$a content differs"
done
case "$(state_and_error)" in
  RELEASE_STATE_FAILED*) ok "the full agent is still FAILED once the others are done" ;;
  *) bad "the full agent left FAILED with its disk still full: $(state_and_error)" ;;
esac
for _ in $(seq 1 100); do
  grep -q "failed on the agent: .*No space left on device" fetch-full.log && break
  sleep 0.1
done
grep -q "failed on the agent: .*No space left on device" fetch-full.log \
  && ok "shoalctl fetch on the full agent says why and keeps asking" \
  || bad "shoalctl fetch on the full agent does not say the disk is full: $(tail -n 3 fetch-full.log)"

rm full/ballast
ok "ballast removed: $(df -h --output=avail full | tail -n 1 | tr -d ' ') left"
for _ in $(seq 1 300); do
  [ "$(release_field full pieces_verified)" -eq "$mib" ] && break
  sleep 0.1
done
seen=$(state_and_error)
[ "$seen" = "RELEASE_STATE_SEEDING " ] && ok "the full agent completes once room is made" \
  || bad "the full agent did not complete within 30 s of room being made: $seen"
cmp -s release.bin "full/releases/$id/data/release.bin" && ok "its files are byte-identical" \
  || bad "its content differs"
wait "${pid_of[fetch-full]}" && ok "its shoalctl fetch ends with success" \
  || bad "its shoalctl fetch failed: $(tail -n 2 fetch-full.log)"
unset "pid_of[fetch-full]"
finish
