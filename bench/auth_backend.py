#!/usr/bin/env python3
"""Scripted play-authorization backend for bench/auth_wrk.sh (stdlib only).

Allows every request: `GET /auth?...` answers 200 with `X-AuthDuration: 3600`
(the decision is cached for an hour) and an empty body. Every call is counted
by its `request_type` query value (`new_session`, `update_session`, or `other`
when absent) and appended to the log file, if one is given, as a line
`UNIX_SECONDS QUERY_STRING`.

`GET /count` reports the calls so far as one line:
`total N new_session A update_session B other C`.
Anything else is a 404. Listens on 127.0.0.1 only.

Usage: auth_backend.py PORT [LOG_FILE]
"""

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
COUNTS = {"new_session": 0, "update_session": 0, "other": 0}
LOG_PATH = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/auth":
            kind = parse_qs(url.query).get("request_type", ["other"])[0]
            if kind not in COUNTS:
                kind = "other"
            with LOCK:
                COUNTS[kind] += 1
                if LOG_PATH:
                    with open(LOG_PATH, "a", encoding="utf-8") as log:
                        log.write("%.3f %s\n" % (time.time(), url.query))
            self._reply(200, headers=[("X-AuthDuration", "3600")])
        elif url.path == "/count":
            with LOCK:
                total = sum(COUNTS.values())
                line = "total %d new_session %d update_session %d other %d\n" % (
                    total,
                    COUNTS["new_session"],
                    COUNTS["update_session"],
                    COUNTS["other"],
                )
            self._reply(200, line.encode(), [("Content-Type", "text/plain")])
        else:
            self._reply(404)

    def log_message(self, format, *args):  # noqa: A002 (http.server's name)
        pass


def main():
    global LOG_PATH
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: auth_backend.py PORT [LOG_FILE]")
    port = int(sys.argv[1])
    if len(sys.argv) == 3:
        LOG_PATH = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
