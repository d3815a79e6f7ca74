#!/usr/bin/env bash
# End-to-end: an agent killed with SIGKILL at random moments of its download,
# and restarted each time, completes the release, and what it pulled in all
# stays within the release size plus what was in flight at each kill. Before
# the kills, one graceful stop (SIGTERM) at a random moment, with a shoalctl
# fetch attached: the agent exits at once and keeps all it verified.
#
# Three seeds hold the release; the origin is then stopped, so every byte the
# leech gets comes from a seed and the seeds' own counters (bytes_sent, taken
# when a piece is read for a peer) measure what it pulled, restarts included.
# The kill moments are random points of progress (a piece count, then a random
# fraction of a second more); SHOAL_E2E_SEED=N replays their choice
# (bazel test --test_env=SHOAL_E2E_SEED=N).
#
# "In flight at a kill" is what was asked for but not yet recorded in the
# journal: at most SchedulerConfig::max_in_flight (8) requests, plus the
# pieces verified since the last journal commit (every 0.5 s), measured here
# as pieces verified just before the kill that the restarted agent lacks.
set -uo pipefail
source "$(dirname "$0")/../testlib.sh"
source "$(dirname "$0")/e2elib.sh" "$@"

seed=${SHOAL_E2E_SEED:-$(( $(date +%s%N) % 32768 ))}
RANDOM=$seed
echo "random seed $seed (replay: bazel test --test_env=SHOAL_E2E_SEED=$seed ...)"
deadline=$(( SECONDS + 90 ))

piece=262144
max_in_flight=8
size=$(( 32 * 1048576 + 12345 ))
head -c "$size" /dev/urandom > release.bin
make_pki
"$publish" keygen --out=key >/dev/null 2>&1
id=$("$publish" create --key=key --name=big --version=1 --origin=origin --piece_size=$piece \
  release.bin 2>create.log | tail -n 1)
total=$(( (size + piece - 1) / piece ))
start_origin origin origin
start_tracker tracker 127.0.0.1:0
register "$taddr" "$origin_url" big@1

for s in seed1 seed2 seed3; do start_agent "$s" "$taddr"; done
timeout 30 "$ctl" --agent=seed1/agent.sock fetch big@1 >/dev/null 2>seed1.ctl.log \
  || give_up "seed1 fetch: $(tail -2 seed1.ctl.log)"
timeout 30 "$ctl" --agent=seed2/agent.sock fetch big@1 >/dev/null 2>seed2.ctl.log &
f2=$!
timeout 30 "$ctl" --agent=seed3/agent.sock fetch big@1 >/dev/null 2>seed3.ctl.log && wait "$f2" \
  || give_up "seed2/seed3 fetch: $(tail -2 seed2.ctl.log seed3.ctl.log)"
stop origin
ok "three seeds hold the release; the origin is stopped"
sent_before=0
for s in seed1 seed2 seed3; do sent_before=$(( sent_before + $(release_field "$s" bytes_sent) )); done

# Kill points: distinct piece counts between 5 % and 80 % of the release.
# (RANDOM only in this shell: a subshell reseeds it.)
kills=6
points=()
while [ ${#points[@]} -lt $kills ]; do
  p=$(( total / 20 + RANDOM % (total * 3 / 4) ))
  [[ " ${points[*]} " == *" $p "* ]] || points+=("$p")
done
points=$(printf '%s\n' "${points[@]}" | sort -n | tr '\n' ' ')
echo "release $size bytes in $total pieces of $piece; kill points (verified pieces): $points"

limit_rate=8000000
# The journal is committed every 0.5 s: a kill may lose what was verified
# since. Allow 2 s of download at --download_limit, for a loaded machine.
per_kill=$(( 2 * limit_rate / piece ))
lost_total=0
# restart_leech: starts the leech again; $resumed is then the pieces it found
# in its journal (its log says so before it serves, while its status may
# already count pieces verified since).
restart_leech() {
  local lines
  lines=$(cat leech.log 2>/dev/null | wc -l)
  start_agent leech "$taddr" --download_limit=$limit_rate
  resumed=$(tail -n +$((lines + 1)) leech.log \
    | sed -n 's/.*resuming big@1: \([0-9]*\) of .*/\1/p' | grep . || echo 0)
}
note_restart() {  # note_restart K: after restart K, counts the pieces to fetch again
  local lost=$(( at_kill > resumed ? at_kill - resumed : 0 ))
  lost_total=$(( lost_total + lost ))
  [ "$lost" -le "$per_kill" ] \
    && ok "restart $1: $resumed recorded of $at_kill verified at the kill ($lost to fetch again)" \
    || bad "restart $1: $resumed recorded of $at_kill verified at the kill, more than $per_kill lost"
}
# First a graceful stop (SIGTERM) early in the download, at a random moment,
# with a shoalctl fetch attached: the agent exits within 2 s (the download
# has seconds to go) and records everything it verified.
start_agent leech "$taddr" --download_limit=$limit_rate
spawn fetch-term timeout 60 "$ctl" --agent=leech/agent.sock fetch big@1
pause=$(( 20 + RANDOM % 50 ))
sleep "$(printf '0.%02d' "$pause")"
at_kill=$(release_field leech pieces_verified)
term_pid=${pid_of[leech]}
kill -TERM "$term_pid"
for _ in $(seq 1 20); do kill -0 "$term_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$term_pid" 2>/dev/null; then
  bad "the leech did not exit within 2 s of SIGTERM with a fetch attached"
else
  ok "SIGTERM at $at_kill of $total pieces: the leech exited within 2 s, a fetch attached"
fi
stop leech KILL 2>/dev/null
stop fetch-term

# Then the SIGKILLs.
k=0
for point in $points; do
  k=$((k + 1))
  restart_leech
  if [ "$k" -gt 1 ]; then
    note_restart $((k - 1))
  elif [ "$resumed" -ge "$at_kill" ] && [ "$resumed" -lt "$total" ]; then
    ok "after the graceful stop it resumed with $resumed pieces, all it had verified ($at_kill)"
  else
    bad "after the graceful stop it resumed with $resumed of $total pieces ($at_kill verified at SIGTERM)"
  fi
  spawn "fetch$k" timeout 60 "$ctl" --agent=leech/agent.sock fetch big@1
  now=$resumed
  while [ "$now" -lt "$point" ] && [ "$now" -lt "$total" ] && [ $SECONDS -lt $deadline ]; do
    sleep 0.05
    now=$(release_field leech pieces_verified)
  done
  # A random moment within the next quarter second, then kill at once.
  pause=$(( RANDOM % 25 ))
  sleep "$(printf '0.%02d' "$pause")"
  at_kill=$(release_field leech pieces_verified)
  stop leech KILL 2>/dev/null  # no "Killed" job notice
  stop "fetch$k"
  if [ "$at_kill" -ge "$total" ]; then bad "kill $k came after the download had finished"; fi
  echo "kill $k at $at_kill of $total pieces (point $point)"
done

restart_leech
note_restart "$k"

timeout 60 "$ctl" --agent=leech/agent.sock fetch big@1 --json >final.json 2>final.ctl.log \
  && ok "completes after $kills SIGKILLs and a SIGTERM" || bad "final fetch: $(tail -2 final.ctl.log)"
cmp -s release.bin "leech/releases/$id/data/release.bin" && ok "content byte-identical" \
  || bad "content differs"
[ "$(json_field final.json bytes_from_origin 2>/dev/null)" = "0" ] \
  && ok "nothing came from the (stopped) origin" || bad "bytes from the origin: $(cat final.json)"

# Pieces verified in the few milliseconds between the last status and the kill
# are not seen by the status: one more piece per kill covers them.
sent=0
for s in seed1 seed2 seed3; do sent=$(( sent + $(release_field "$s" bytes_sent) )); done
pulled=$(( sent - sent_before ))
limit=$(( size + ((kills + 1) * (max_in_flight + 1) + lost_total) * piece ))
echo "the leech pulled $pulled bytes; release $size; $kills kills and a stop x $max_in_flight in flight" \
  "+ $lost_total unrecorded pieces fetched again; limit $limit"
[ "$pulled" -ge "$size" ] && [ "$pulled" -le "$limit" ] \
  && ok "pulled at most the release plus the pieces in flight at each kill" \
  || bad "pulled $pulled bytes, outside [$size, $limit]"
finish
