#!/usr/bin/env bash
# shoal-publish as an operator runs it: keygen, trust with a threshold,
# create, co-sign, verify (intact and tampered), inspect --json, and serve
# with curl fetching a range. Every step's exit code and message is checked.
set -uo pipefail
publish=$(realpath "$1")
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
check() {  # check DESCRIPTION COMMAND...: COMMAND must succeed
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}
fails_with() {  # fails_with DESCRIPTION PATTERN COMMAND...: must exit non-zero, stderr matching
  local what=$1 pattern=$2; shift 2
  local err
  if err=$("$@" 2>&1 >/dev/null); then
    echo "FAIL $what (exit 0)"; failures=$((failures + 1))
  elif ! grep -qE "$pattern" <<<"$err"; then
    echo "FAIL $what (message: $err)"; failures=$((failures + 1))
  else
    echo "ok   $what"
  fi
}

cd "$work"
mkdir -p in/sub
head -c 300000 /dev/urandom > in/sub/data.bin
echo hello > in/hello.txt
key_a=$("$publish" keygen --out=a.key 2>/dev/null)
"$publish" keygen --out=b.key >/dev/null 2>&1
check "keygen prints a 64-digit key id" grep -qE '^[0-9a-f]{64}$' <<<"$key_a"
check "private key is mode 0600" test "$(stat -c %a a.key)" = 600
fails_with "keygen refuses to overwrite a key" "exist" "$publish" keygen --out=a.key
check "trust file with threshold 2" "$publish" trust --out=trust.json --threshold=2 a.key.pub b.key.pub

id=$("$publish" create --key=a.key --name=app --version=1.0 --origin=origin --piece_size=65536 in 2>/dev/null | tail -n 1)
check "create prints the release id last" grep -qE '^[0-9a-f]{64}$' <<<"$id"
manifest=origin/releases/$id.manifest
check "verify with the signer's .pub alone" "$publish" verify --origin=origin --trust=a.key.pub app@1.0
fails_with "verify below threshold" "1 of 2|threshold|required" \
  "$publish" verify --origin=origin --trust=trust.json app@1.0
check "co-sign with sign" "$publish" sign --key=b.key "$manifest"
check "verify at threshold after co-signing" "$publish" verify --origin=origin --trust=trust.json "$id"
"$publish" keygen --out=c.key >/dev/null 2>&1
fails_with "verify with a foreign key names the signer" "untrusted key.*${key_a:0:8}" \
  "$publish" verify --origin=origin --trust=c.key.pub app@1.0

json=$("$publish" inspect --json "$manifest")
check "inspect --json has the fields" /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["name"] == "app" and d["version"] == "1.0" and d["release_id"] == sys.argv[2]
assert d["piece_size"] == 65536 and len(d["signatures"]) == 2
assert d["created"].endswith("Z") and d["expires"] > d["created"]
files = {f["path"]: f for f in d["files"]}
assert set(files) == {"hello.txt", "sub/data.bin"}, files
assert files["sub/data.bin"]["size"] == 300000 and len(files["sub/data.bin"]["pieces_root"]) == 64
' "$json" "$id"

piece=$(find origin/pieces -type f -size 64k | head -n 1)
printf '\x00' | dd of="$piece" bs=1 seek=100 conv=notrunc 2>/dev/null
fails_with "verify names the damaged file and piece" "sub/data.bin piece [0-9]+" \
  "$publish" verify --origin=origin --trust=trust.json app@1.0
fails_with "unknown release" "no release app@9" \
  "$publish" verify --origin=origin --trust=trust.json app@9

"$publish" serve --origin=origin --listen=127.0.0.1:0 --ready_file=addr 2>serve.log &
server_pid=$!
for _ in $(seq 1 100); do [ -s addr ] && break; sleep 0.05; done
addr=$(cat addr)
check "serve answers the name pointer" test "$(curl -s "http://$addr/names/app/1.0")" = "$id"
range=$(curl -s -r 10-19 "http://$addr/releases/$id.manifest" | od -An -tx1 | tr -d ' \n')
want=$(dd if="$manifest" bs=1 skip=10 count=10 2>/dev/null | od -An -tx1 | tr -d ' \n')
check "serve returns the requested range" test "$range" = "$want"
check "serve refuses to escape the tree" test "$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "http://$addr/../addr")" != 200
kill "$server_pid"; wait "$server_pid" 2>/dev/null; server_pid=""

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
