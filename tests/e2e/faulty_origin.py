#!/usr/bin/python3
"""An HTTP origin that misbehaves while told to, in front of a real one.

Forwards each GET (with its Range header) to --upstream. While the file
--fault_file exists, every request gets a fault instead, in turn:
  500          a short error page;
  429          with Retry-After: 1;
  short body   the upstream's status and headers, half of the body, then
               the connection closes.
Without the file, answers pass through unchanged. Once serving, writes
HOST:PORT to --ready_file. After each request, writes counts by outcome to
--stats_file as JSON: requests, passed, error_500, too_many, short_body,
and the wall-clock times of the first and last fault.

Standard library only; threads, one per connection. Stops on SIGTERM.
"""

import argparse
import http.client
import http.server
import json
import os
import threading
import time
import urllib.parse

FAULTS = ("error_500", "too_many", "short_body")


class Stats:
    """Counts by outcome, written to a file after each request. Thread-safe."""

    def __init__(self, path):
        self._path = path
        self._lock = threading.Lock()
        self._counts = {"requests": 0, "passed": 0, "first_fault": None, "last_fault": None}
        for fault in FAULTS:
            self._counts[fault] = 0

    def next_fault(self, faulty):
        """Counts a request; the fault it gets, or None to pass it through."""
        with self._lock:
            self._counts["requests"] += 1
            if not faulty:
                self._counts["passed"] += 1
                return None
            done = sum(self._counts[f] for f in FAULTS)
            fault = FAULTS[done % len(FAULTS)]
            self._counts[fault] += 1
            now = time.time()
            if self._counts["first_fault"] is None:
                self._counts["first_fault"] = now
            self._counts["last_fault"] = now
            return fault

    def save(self):
        with self._lock:
            text = json.dumps(self._counts)
        tmp = "%s.%d.tmp" % (self._path, threading.get_ident())
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self._path)


def make_handler(upstream, fault_file, stats):
    target = urllib.parse.urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            fault = stats.next_fault(os.path.exists(fault_file))
            try:
                if fault == "error_500":
                    self._answer(500, b"injected failure\n")
                elif fault == "too_many":
                    self._answer(429, b"slow down\n", [("Retry-After", "1")])
                else:
                    self._forward(short=(fault == "short_body"))
            finally:
                stats.save()

        def _answer(self, code, body, headers=()):
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, short):
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {}
            if self.headers.get("Range"):
                headers["Range"] = self.headers["Range"]
            path = target.path.rstrip("/") + self.path
            try:
                conn.request("GET", path, headers=headers)
                answer = conn.getresponse()
                body = answer.read()
            except OSError as e:
                self._answer(502, ("upstream: %s\n" % e).encode())
                return
            finally:
                conn.close()
            self.send_response(answer.status)
            for name in ("Content-Type", "Content-Range", "Accept-Ranges"):
                if answer.getheader(name):
                    self.send_header(name, answer.getheader(name))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if short and len(body) > 1:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="base URL of the real origin")
    parser.add_argument("--fault_file", required=True, help="faults while this file exists")
    parser.add_argument("--ready_file", required=True)
    parser.add_argument("--stats_file", required=True)
    args = parser.parse_args()

    stats = Stats(args.stats_file)
    stats.save()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), make_handler(args.upstream, args.fault_file, stats))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%s:%d" % (host, port))
    os.replace(tmp, args.ready_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
