"""A webhook receiver that never answers does not delay a deployment: the
planner (notify: in its config) hands events to its notifier's own thread
and goes on. The receiver, holding every request open, still sees signed
deliveries."""
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402

HOSTS = ["web-01", "web-02"]
KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")
SECRET = "s3cret"


class StuckReceiver:
    """Accepts connections, reads each request, never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.conns = []
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)  # held open: the POST never gets an answer
            conn.settimeout(2)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, body = data.split(b"\r\n\r\n", 1)
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append((head.decode(errors="replace"), body))
            except OSError:
                pass

    def close(self):
        self.stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    rx = StuckReceiver()
    try:
        d = procs.dir
        bs = procs.broker(partitions=2)
        cfg = os.path.join(d, "planner.yml")
        with open(cfg, "w") as f:
            f.write(f"notify:\n  - url: http://127.0.0.1:{rx.port}/hook\n    secret: {SECRET}\n")
        procs.planner(bs, "--config", cfg)
        for h in HOSTS:
            procs.worker(bs, h)
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1")
        spec = bundles.spec(os.path.join(d, "v1.yaml"), "shop", "web", HOSTS,
                            "file://" + os.path.join(d, "v1.tar.gz"), sha, concurrency=1)
        out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec, "--wait",
                              "--timeout", "60"], capture_output=True, text=True, timeout=90)
        t.check(out.returncode == 0, f"the deployment succeeded: {out.stderr[-500:]}")
        deploy_id = out.stdout.split()[0] if out.stdout else ""
        st = subprocess.run([KDEPLOY, "--brokers", bs, "status", deploy_id, "--json"],
                            capture_output=True, text=True, timeout=60)
        s = json.loads(st.stdout) if st.returncode == 0 else {}
        took = (s.get("finished_ms", 0) - s.get("accepted_ms", 0)) / 1000.0
        # Each POST waits up to 10 s for an answer that never comes, and is
        # tried again: a planner that waited for it would take minutes.
        t.check(0 < took < 8, f"the planner did not wait for the receiver: {took:.1f} s")
        deadline = time.time() + 10
        while not rx.requests and time.time() < deadline:
            time.sleep(0.1)
        t.check(len(rx.requests) >= 1, f"the receiver was called: {len(rx.requests)}")
        for head, body in rx.requests[:1]:
            sig = next((h.split(":", 1)[1].strip() for h in head.split("\r\n")
                        if h.lower().startswith("x-kdeploy-signature-256:")), "")
            want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            t.check(sig == want, f"the delivery is signed: {sig!r}")
            t.check(json.loads(body).get("deploy_id") == deploy_id,
                    f"it is about the deployment: {body[:200]!r}")
    finally:
        procs.stop_all_checked(t)
        rx.close()
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
