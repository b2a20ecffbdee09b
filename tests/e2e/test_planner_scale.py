"""The planner stays up on requests that used to bring it down for good,
driven by a real planner over a simulated fleet (kdeploy-fleetsim) and lbctl
with its command driver:
  - blue-green groups of 100 and 1 hosts, deployed to both and rolled back
    (a rollback runs on the larger group: this overflowed a stack array and
    crashed the planner at every restart);
  - a 25,000-host deployment (its accepted event went over the broker's 1 MB
    limit and the planner exited at every restart): it is carried out, and
    no message of it is over the limit."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import kdtest  # noqa: E402

KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")
SHA = "0" * 64
BIG = 25000


def lb_command(d):
    path = os.path.join(d, "lb.sh")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\necho "$@" >> {d}/lb.log\nexit 0\n')
    os.chmod(path, 0o755)
    return path


def blue_green_spec(path, label):
    blue = ", ".join(f"P{i:06d}" for i in range(100))
    with open(path, "w") as f:
        f.write(f"application: shop\ngroup: web\nrevision:\n  url: file:///none/{label}.tgz\n"
                f"  sha256: {SHA}\n  label: \"{label}\"\nstrategy: blue_green\n"
                "concurrency: \"50%\"\nload_balancer: {service: shop}\nblue_green:\n"
                f"  blue: {{server_group: blue, hosts: [{blue}]}}\n"
                "  green: {server_group: green, hosts: [P000100]}\n")
    return path


def big_spec(path):
    with open(path, "w") as f:
        f.write("application: fleet\ngroup: all\nrevision:\n  url: file:///none/big.tgz\n"
                f"  sha256: {SHA}\nconcurrency: \"20%\"\n"
                "timeouts: {host: 600, deployment: 1200}\nhosts:\n")
        for i in range(BIG):
            f.write(f"- P{i:06d}\n")
    return path


def run(args, timeout=180):
    return subprocess.run([KDEPLOY] + args, capture_output=True, text=True, timeout=timeout)


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        d = procs.dir
        bs = procs.broker(partitions=4)
        planner = procs.planner(bs)
        procs.start([os.path.join(kdtest.BIN, "kdeploy-fleetsim"), "--brokers", bs,
                     "--count", str(BIG), "--prefix", "P"], "fleetsim")
        procs.start([os.path.join(kdtest.BIN, "kdeploy-lbctl"), "--brokers", bs,
                     "--driver", "command", "--command", lb_command(d),
                     "--state-dir", os.path.join(d, "lbctl")] + procs.verify_args(), "lbctl")
        deadline = time.time() + 120
        while "announced" not in procs.log_of("fleetsim") and time.time() < deadline:
            time.sleep(0.2)

        # Blue-green, 100 against 1: to blue, to green, then back.
        ids = []
        for label in ("1.0", "2.0"):
            out = run(["--brokers", bs, "create", "-f",
                       blue_green_spec(os.path.join(d, f"bg{label}.yaml"), label),
                       "--wait", "--timeout", "120"])
            t.check(out.returncode == 0, f"blue-green {label} succeeded: {out.stdout}{out.stderr}")
            ids.append(out.stdout.split()[0] if out.stdout else "")
        out = run(["--brokers", bs, "rollback", ids[1], "--wait", "--timeout", "120"])
        t.check(out.returncode == 0, f"the rollback to the 100-host group succeeded: "
                                     f"{out.stdout}{out.stderr}")
        st = run(["--brokers", bs, "status", ids[1]])
        t.check("succeeded, rolled back" in st.stdout, f"2.0 rolled back: {st.stdout[:300]}")
        with open(os.path.join(d, "lb.log")) as f:
            swaps = [line.split() for line in f if "swap" in line]
        t.check(len(swaps) == 3, f"three swaps (blue, green, blue again): {swaps}")
        t.check(planner.poll() is None, "the planner is still up")

        # 25,000 hosts in one deployment.
        out = run(["--brokers", bs, "create", "-f", big_spec(os.path.join(d, "big.yaml"))])
        t.check(out.returncode == 0, f"the 25,000-host request was sent: {out.stderr}")
        big = out.stdout.split()[0] if out.stdout else "none"
        deadline = time.time() + 240
        while time.time() < deadline and planner.poll() is None:
            if re.search(re.escape(big) + r": (succeeded|failed)", procs.log_of("planner")):
                break
            time.sleep(0.5)
        log = procs.log_of("planner")
        t.check(re.search(re.escape(big) + r": succeeded \(25000 hosts", log) is not None,
                f"all 25,000 hosts succeeded: {log[-2000:]}")
        t.check("Message size too large" not in log, "no message over the broker's limit")
        t.check(planner.poll() is None, "the planner is still up")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
