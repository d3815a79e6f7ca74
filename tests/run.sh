#!/usr/bin/env bash
# Installs what the tests need, builds everything and runs every test: the
# whole suite on OpenSSL, then the integrity library again on BoringSSL.
set -uo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh || exit 1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
bazel test //... 2>&1 | tee -a "$log" || status=1
bazel test --config=boringssl //common:integrity_tests 2>&1 | tee -a "$log" || status=1

passed=$(grep -cE '^//\S+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -cE '^//\S+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "${passed} passed, ${failed} failed"
exit "$status"
