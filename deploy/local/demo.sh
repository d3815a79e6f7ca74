#!/usr/bin/env bash
# The local demo on the embedded defaults: makes a publisher key, publishes a
# generated sample release into an origin tree, verifies it, and serves the
# origin over HTTP on loopback until Ctrl-C.
#
# Environment:
#   SHOAL_DEMO_DIR       working directory (default: a new temporary one)
#   SHOAL_DEMO_SIZE_MB   sample release size in MiB (default 512)
#   SHOAL_PIECE_SIZE     piece size in bytes (default 4194304)
#   SHOAL_DEMO_LISTEN    origin address (default 127.0.0.1:0, a free port)
#   SHOAL_DEMO_SERVE     set to 0 to stop after verifying instead of serving
set -euo pipefail
cd "$(dirname "$0")/../.."
./deploy/install-deps.sh

size_mb=${SHOAL_DEMO_SIZE_MB:-512}
piece_size=${SHOAL_PIECE_SIZE:-4194304}
listen=${SHOAL_DEMO_LISTEN:-127.0.0.1:0}
dir=${SHOAL_DEMO_DIR:-$(mktemp -d -t shoal-demo.XXXXXX)}
mkdir -p "$dir"

echo "== building shoal-publish" >&2
bazel build -c opt //publisher:shoal-publish >&2
bin="$dir/shoal-publish"
cp -f "$(bazel info -c opt bazel-bin 2>/dev/null)/publisher/shoal-publish" "$bin"

echo "== generating a ${size_mb} MiB sample release in $dir/input" >&2
rm -rf "$dir/input"
mkdir -p "$dir/input/bin" "$dir/input/assets/textures"
big=$(( size_mb * 3 / 4 ))
rest=$(( size_mb - big ))
head -c $(( big * 1048576 )) /dev/urandom > "$dir/input/assets/textures/pack.bin"
head -c $(( rest * 1048576 )) /dev/urandom > "$dir/input/bin/game-server"
chmod 0755 "$dir/input/bin/game-server"
head -c 12345 /dev/urandom > "$dir/input/assets/config.bin"
printf 'sample release made by the Shoal demo\n' > "$dir/input/README.txt"
: > "$dir/input/assets/EMPTY"

if [ ! -f "$dir/publisher.key" ]; then
  echo "== making a publisher key" >&2
  "$bin" keygen --out="$dir/publisher.key" >/dev/null
fi
"$bin" trust --out="$dir/trust.json" "$dir/publisher.key.pub"

echo "== publishing game-server@demo-$$ into $dir/origin" >&2
id=$("$bin" create --key="$dir/publisher.key" --name=game-server \
  --version="demo-$$" --origin="$dir/origin" --piece_size="$piece_size" \
  "$dir/input" | tail -n 1)

echo "== verifying every piece against the signed manifest" >&2
"$bin" verify --origin="$dir/origin" --trust="$dir/trust.json" "$id"
"$bin" inspect --trust="$dir/trust.json" "$dir/origin/releases/$id.manifest"

if [ "${SHOAL_DEMO_SERVE:-1}" = "0" ]; then
  exit 0
fi
echo "== serving $dir/origin over HTTP (Ctrl-C stops it)" >&2
ready="$dir/origin.addr"
rm -f "$ready"
"$bin" serve --origin="$dir/origin" --listen="$listen" --ready_file="$ready" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do [ -s "$ready" ] && break; sleep 0.1; done
[ -s "$ready" ] || { echo "origin did not start" >&2; exit 1; }
addr=$(cat "$ready")
echo "origin: http://$addr/  try:" >&2
echo "  curl -s http://$addr/names/game-server/demo-$$" >&2
echo "  curl -sI http://$addr/releases/$id.manifest" >&2
wait "$pid"
