#!/usr/bin/env bash
# promtool checks of deploy/prometheus: the scrape configuration with its
# targets files, the alert rules, and the rules' unit tests
# (tests/prometheus/shoal-alerts_test.yml). Fails when promtool is missing:
# deploy/install-deps.sh installs it with Debian's prometheus package.
set -uo pipefail
source "$(dirname "$0")/testlib.sh"
config=$(realpath "$1"); rules=$(realpath "$2"); rule_tests=$(realpath "$3"); shift 3
command -v promtool >/dev/null \
  || { bad "no promtool: ./deploy/install-deps.sh installs Debian's prometheus"; finish; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The files as prometheus.yml refers to them: the rules beside it, the
# targets files under targets/.
mkdir -p "$work/targets"
cp "$config" "$rules" "$rule_tests" "$work/"
for t in "$@"; do cp "$(realpath "$t")" "$work/targets/"; done
cd "$work"

promtool check config prometheus.yml >out 2>&1 && ok "promtool check config" \
  || { bad "promtool check config:"; cat out; }
promtool check rules shoal-alerts.yml >out 2>&1 && ok "promtool check rules" \
  || { bad "promtool check rules:"; cat out; }
promtool test rules "$(basename "$rule_tests")" >out 2>&1 && ok "promtool test rules" \
  || { bad "promtool test rules:"; cat out; }
# The test must see the shipped alerts: one that is never exercised would
# pass unnoticed.
for alert in $(sed -n 's/^ *- alert: *//p' shoal-alerts.yml); do
  grep -q "alertname: $alert\$" "$(basename "$rule_tests")" && ok "alert $alert has a unit test" \
    || bad "alert $alert has no unit test in $(basename "$rule_tests")"
done
finish
