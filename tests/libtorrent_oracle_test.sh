#!/usr/bin/env bash
# Runs the libtorrent cross-check with Debian's Python, which sees
# python3-libtorrent (a python3 earlier on PATH may not).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/libtorrent_oracle_test.py" "$1"
