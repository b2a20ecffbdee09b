"""Shared pieces of the load-balancer end-to-end tests: a real HAProxy with
its admin socket, the sample application's bundles, worker processes that
each run the app on their own port, and a client sending requests through
HAProxy for the whole run."""
import hashlib
import io
import os
import socket
import subprocess
import tarfile
import threading
import time
import http.client

import kdtest

SAMPLE = os.path.join(os.environ.get("KD_SOURCE_DIR", "."), "deploy", "sample-app")
HAPROXY = "/usr/sbin/haproxy"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


BROKEN_CHECK = '#!/bin/sh\necho "this release fails its health check" >&2\nexit 1\n'


def sample_bundle(path, version, broken=False):
    """The sample app at a version, as a tar.gz; returns its sha256. A broken
    one fails ValidateService."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for root, _, files in os.walk(SAMPLE):
            for name in files:
                full = os.path.join(root, name)
                arc = os.path.relpath(full, SAMPLE)
                replaced = {os.path.join("app", "VERSION"): version + "\n"}
                if broken:
                    replaced[os.path.join("scripts", "check.sh")] = BROKEN_CHECK
                if arc in replaced:
                    data = replaced[arc].encode()
                    info = tarfile.TarInfo(arc)
                    info.size = len(data)
                    info.mode = 0o755 if arc.endswith(".sh") else 0o644
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.add(full, arcname=arc)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def haproxy_config(d, frontends, backends, check_inter="500ms"):
    """frontends: {name: (port, backend rule)}; backends: {name: [(server, port)]}."""
    lines = [
        "global",
        f"  stats socket {d}/admin.sock level admin",
        "  maxconn 512",
        "defaults",
        "  mode http",
        "  timeout connect 1s",
        "  timeout client 10s",
        "  timeout server 10s",
        "  retries 0",
    ]
    for name, (port, rule) in frontends.items():
        lines += [f"frontend {name}", f"  bind 127.0.0.1:{port}", f"  {rule}"]
    for name, servers in backends.items():
        lines += [f"backend {name}", "  balance roundrobin", "  option httpchk GET /health"]
        lines += [f"  server {s} 127.0.0.1:{p} check inter {check_inter} fall 1 rise 1"
                  for s, p in servers]
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start_haproxy(procs, d, cfg):
    procs.start([HAPROXY, "-f", cfg, "-db"], "haproxy", own=False)
    sock = os.path.join(d, "admin.sock")
    deadline = time.time() + 10
    while time.time() < deadline and not os.path.exists(sock):
        time.sleep(0.05)
    return sock


def start_worker(procs, bs, d, host, port):
    prefix = os.path.join(d, host, "prefix")
    os.makedirs(prefix, exist_ok=True)
    procs.start([os.path.join(kdtest.BIN, "kdeploy-worker"), "--brokers", bs, "--host-id", host,
                 "--root", os.path.join(d, host, "root"), "--install-prefix", prefix,
                 "--env", f"APP_PORT={port}"] + procs.verify_args(), host)


def stop_apps(d, hosts):
    """The app runs detached from the workers: stop each host's copy."""
    for h in hosts:
        env = dict(os.environ, KDEPLOY_INSTALL_PREFIX=os.path.join(d, h, "prefix"))
        subprocess.run(["sh", os.path.join(SAMPLE, "scripts", "stop.sh")], env=env,
                       capture_output=True, timeout=30)


class Load:
    """Requests through HAProxy, one after another on each of `threads`
    threads, from start() to stop(); every answer is recorded."""

    def __init__(self, port, threads=2):
        self.port = port
        self.threads = threads
        self.results = []  # (time, ok, body)
        self.lock = threading.Lock()
        self.running = False

    def _run(self):
        while self.running:
            t = time.time()
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/")
                r = c.getresponse()
                body = r.read().decode(errors="replace").strip()
                ok = r.status == 200
                c.close()
            except OSError as e:
                ok, body = False, f"error: {e}"
            with self.lock:
                self.results.append((t, ok, body))
            time.sleep(0.005)

    def start(self):
        self.running = True
        self.workers = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(self.threads)]
        for w in self.workers:
            w.start()

    def stop(self):
        self.running = False
        for w in self.workers:
            w.join()
        with self.lock:
            results, self.results = self.results, []
        return results


def failures(results):
    return [r for r in results if not r[1]]


def versions(results):
    """The sequence of distinct versions answered, in the order the requests
    were sent ("shop 2.0 on x" -> "2.0"): the threads record answers as they
    come, and a slow one sent before a swap may come after a fast one sent
    after it."""
    seq = []
    for _, ok, body in sorted(results, key=lambda r: r[0]):
        if ok:
            v = body.split()[1] if len(body.split()) > 1 else body
            if not seq or seq[-1] != v:
                seq.append(v)
    return seq


def deploy(bs, spec_path, timeout=240):
    out = subprocess.run([os.path.join(kdtest.BIN, "kdeploy"), "--brokers", bs, "create", "-f",
                          spec_path, "--wait", "--timeout", str(timeout)],
                         capture_output=True, text=True, timeout=timeout + 60)
    return out.returncode, (out.stdout.split() or [""])[0], out.stderr
