"""With no broker reachable, every kdeploy command fails within seconds with
one clear line, and librdkafka's own lines appear only with --verbose
(issue 14, problem 7: create spent 35 s printing librdkafka errors, list
15 s). Also: --brokers-file on every program, --version on every program."""
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import kdtest  # noqa: E402

KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")
PROGRAMS = ["kdeploy", "kdeploy-worker", "kdeploy-planner", "kdeploy-lbctl", "kdeploy-fleetsim"]


def free_port():
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(args, timeout=60):
    start = time.time()
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return out, time.time() - start


def main():
    t = kdtest.Checks()
    d = tempfile.mkdtemp(prefix="e2e-", dir=kdtest.TMP)
    bs = f"127.0.0.1:{free_port()}"
    spec = os.path.join(d, "v1.yaml")
    with open(spec, "w") as f:
        f.write("application: shop\ngroup: web\nhosts: [web-01]\nrevision:\n"
                "  url: file:///nonexistent.tar.gz\n  sha256: " + "0" * 64 + "\n")
    commands = [["create", "-f", spec], ["rollback", "d-1"], ["stop", "d-1"],
                ["pause", "d-1"], ["resume", "d-1"], ["status", "d-1"], ["watch", "d-1"],
                ["list"], ["replay", "d-1"], ["hosts"]]
    for cmd in commands:
        out, took = run([KDEPLOY, "--brokers", bs] + cmd)
        lines = out.stderr.strip().splitlines()
        # hosts is another file's: any failing exit code will do there.
        t.check((out.returncode == 3 or (cmd[0] == "hosts" and out.returncode != 0)) and
                took < 15,
                f"{cmd[0]} fails fast ({took:.1f} s, exit {out.returncode})")
        t.check(len(lines) == 1 and lines[0].startswith(f"kdeploy: cannot reach the broker at {bs}"),
                f"{cmd[0]}: one clear line: {out.stderr}")
    out, took = run([KDEPLOY, "--brokers", bs, "list", "--verbose"])
    t.check(out.returncode == 3 and "rdkafka" in out.stderr and took < 15,
            f"--verbose shows librdkafka's lines: {out.stderr[:300]}")

    # --brokers-file: one line, or one broker per line; empty or unreadable: refused.
    listed = os.path.join(d, "brokers")
    with open(listed, "w") as f:
        f.write(f"\n  {bs}\n127.0.0.1:{free_port()}\n")
    out, _ = run([KDEPLOY, "--brokers-file", listed, "list"])
    t.check(out.returncode == 3 and f"cannot reach the broker at {bs},127.0.0.1:" in out.stderr,
            f"--brokers-file: its lines joined: {out.stderr}")
    empty = os.path.join(d, "empty")
    open(empty, "w").close()
    for prog in PROGRAMS:
        args = [os.path.join(kdtest.BIN, prog)]
        if prog == "kdeploy":
            args.append("list")
        if prog == "kdeploy-fleetsim":
            args += ["--count", "1", "--prefix", "sim-"]
        for path, what in ((empty, "empty"), (os.path.join(d, "missing"), "No such file")):
            out, took = run(args + ["--brokers-file", path], timeout=30)
            t.check(out.returncode != 0 and what in out.stderr and took < 15,
                    f"{prog} refuses an {what} brokers file: {out.stderr[-300:]}")
        out, _ = run([os.path.join(kdtest.BIN, prog), "--version"])
        t.check(out.returncode == 0 and out.stdout.startswith(prog + " "),
                f"{prog} --version: {out.stdout} {out.stderr}")

    # With a broker: the same file works.
    procs = kdtest.Procs()
    try:
        real = procs.broker(partitions=2)
        with open(listed, "w") as f:
            f.write(real.replace(",", "\n") + "\n")
        out, _ = run([KDEPLOY, "--brokers-file", listed, "list"])
        # An empty cluster: the one line is list's own "no deployments yet".
        t.check(out.returncode == 0 and out.stderr.startswith("no deployments yet") and
                len(out.stderr.splitlines()) == 1, f"list through --brokers-file: {out}")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
