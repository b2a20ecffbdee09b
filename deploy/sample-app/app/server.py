#!/usr/bin/env python3
"""The sample application kdeploy deploys in its demo: a tiny HTTP service
answering "<app> <version> on <host>" on / and "ok" on /health."""
import argparse
import http.server
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host-name", default=os.uname().nodename)
    args = ap.parse_args()
    with open(os.path.join(HERE, "VERSION")) as f:
        version = f.read().strip()
    body = f"shop {version} on {args.host_name}\n".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            payload = b"ok\n" if self.path == "/health" else body
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, fmt, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
