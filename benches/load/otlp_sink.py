#!/usr/bin/env python3
"""A minimal OTLP/HTTP collector for the load runs: answers every POST with 200
(an empty ExportTraceServiceResponse), keeps connections alive, counts requests
and bytes. Usage: otlp_sink.py PORT; prints its counts on SIGTERM."""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        counts["requests"] += 1
        counts["bytes"] += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def stop(*_):
    print(f"otlp sink: {counts['requests']} exports, {counts['bytes']} bytes", file=sys.stderr)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
