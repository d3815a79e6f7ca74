#!/usr/bin/env bash
# Publisher throughput beside one `openssl dgst -sha256` pass over the same
# file, in the same run. Goal: `create` (hashing on all cores, writing the
# origin tree) at least as fast as one single-core SHA-256 pass.
#
#   bench/publish_bench.sh [SIZE_MIB]   (default 1024)
#
# Prints a table of min and median seconds and GB/s, and the ratio
# create/openssl on medians. Uses hyperfine (Debian package).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${BENCH_RUNS:-5}

bazel build -c opt //publisher:shoal-publish >&2
work=$(mktemp -d -t shoal-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bin="$work/shoal-publish"
cp "$(bazel info -c opt bazel-bin 2>/dev/null)/publisher/shoal-publish" "$bin"
"$bin" keygen --out="$work/key" >/dev/null
head -c $(( size_mib * 1048576 )) /dev/urandom > "$work/release.bin"
cat "$work/release.bin" > /dev/null   # into the page cache for both

hyperfine --style basic --runs "$runs" --warmup 1 \
  --export-json "$work/result.json" \
  --prepare "rm -rf '$work/origin'" \
  -n "openssl dgst -sha256" "openssl dgst -sha256 '$work/release.bin'" \
  -n "shoal-publish create" \
  "'$bin' create --key='$work/key' --name=bench --version=1 --origin='$work/origin' '$work/release.bin'" \
  >&2

/usr/bin/python3 - "$work/result.json" "$size_mib" <<'PY'
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
size = int(sys.argv[2]) * 1048576
print("| command | runs | min s | median s | median GB/s |")
print("|---|---|---|---|---|")
med = {}
for r in res:
    m = statistics.median(r["times"])
    med[r["command"]] = m
    print("| %s | %d | %.3f | %.3f | %.2f |" % (r["command"], len(r["times"]), min(r["times"]), m, size / m / 1e9))
ratio = med["shoal-publish create"] / med["openssl dgst -sha256"]
print("\ncreate / openssl (median seconds): %.2f  (goal: <= 1.00)" % ratio)
PY
