# Shared helpers for the shell tests on real processes. Source it; it
# defines nothing that runs by itself.

failures=0
pids=()
ok() { echo "ok   $1 (${SECONDS}s)"; }
bad() { echo "FAIL $1"; failures=$((failures + 1)); }

# wait_file FILE: waits (at most 10 s) until FILE exists and is not empty.
wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }

# json_field FILE KEY: prints one top-level field of a JSON file.
json_field() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# make_fleet_ca: a fleet CA (ca.pem, ca.key) in the current directory.
make_fleet_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=fleet-ca -keyout ca.key -out ca.pem 2>/dev/null
}

# issue_cert NAME SAN: NAME.pem and NAME.key signed by the fleet CA, for both
# server and client use; SAN like "IP:127.0.0.1,DNS:agent.fleet".
issue_cert() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}

# tls_flags NAME: the --tls_* flags for a certificate made by issue_cert.
tls_flags() { echo "--tls_cert=$1.pem --tls_key=$1.key --tls_ca=ca.pem"; }

# start_work: makes a temporary directory, cd's into it ($work), and on exit
# stops every process whose pid the test added to `pids` (SIGTERM, then
# waits for it) and deletes the directory.
start_work() {
  work=$(mktemp -d)
  trap stop_work EXIT
  cd "$work" || exit 1
}
stop_work() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$work"
}

# finish: the closing line and exit code.
finish() { echo "$failures failure(s)"; [ "$failures" -eq 0 ]; }
