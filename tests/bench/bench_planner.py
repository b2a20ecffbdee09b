#!/usr/bin/env python3
"""The planner at scale: one planner drives a rolling deployment over a
simulated fleet (kdeploy-fleetsim answers every step at once), on the
embedded broker. Reports, per fleet size: the deployment's duration (from
the planner's own records: accepted -> succeeded), steps per second
(commands answered), step events per second (commands sent plus results
read), and the planner's peak RSS.

Run from a build:  python3 tests/bench/bench_planner.py --build build-rel
                   [--counts 10000,100000] [--concurrency 10%]"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import kdtest  # noqa: E402
from procstat import cpu_seconds  # noqa: E402

STEPS = 7  # the rolling workflow's steps per host
SHA = "0" * 64


def write_spec(path, n, concurrency):
    with open(path, "w") as f:
        f.write("application: fleet\ngroup: sim\nrevision:\n"
                "  url: file:///nonexistent/bundle.tgz\n"
                f"  sha256: {SHA}\nconcurrency: \"{concurrency}\"\n"
                "timeouts: {host: 3600, deployment: 7200}\nhosts:\n")
        for i in range(n):
            f.write(f"- P{i:06d}\n")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def wait_for_log(procs, name, needle, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if needle in procs.log_of(name):
            return True
        time.sleep(0.2)
    return False


def one_run(n, concurrency, partitions):
    procs = kdtest.Procs()
    kd = os.path.join(kdtest.BIN, "kdeploy")
    try:
        bs = procs.broker(partitions=partitions)
        planner = procs.planner(bs, "--log-level", "info")
        procs.start([os.path.join(kdtest.BIN, "kdeploy-fleetsim"), "--brokers", bs,
                     "--count", str(n), "--prefix", "P", "--label", "role=sim"], "fleetsim")
        if not wait_for_log(procs, "fleetsim", "announced", 300):
            raise RuntimeError("fleetsim did not start:\n" + procs.log_of("fleetsim"))
        spec = os.path.join(procs.dir, "spec.yaml")
        write_spec(spec, n, concurrency)
        out = subprocess.run([kd, "--brokers", bs, "create", "-f", spec],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("create failed: " + out.stderr)
        deploy_id = out.stdout.split()[0]
        if not wait_for_log(procs, "planner", deploy_id + ": succeeded", 3600):
            raise RuntimeError("no success:\n" + procs.log_of("planner")[-3000:])
        rss = peak_rss_mb(planner.pid)
        cpu = {name: cpu_seconds(p.pid) for name, p in
               (("planner", planner), ("broker", procs.procs[0]), ("fleetsim", procs.procs[2]))}
        # "<id>: succeeded (N hosts, 0 skipped) in S s": the planner's own
        # record, accepted -> succeeded.
        m = re.search(re.escape(deploy_id) + r": succeeded \((\d+) hosts, \d+ skipped\) in "
                      r"([\d.]+) s", procs.log_of("planner"))
        ok, secs = int(m.group(1)), float(m.group(2))
        if ok != n:
            raise RuntimeError(f"{ok} of {n} hosts succeeded")
        return secs, rss, cpu
    finally:
        procs.stop_all()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--counts", default="10000,100000")
    ap.add_argument("--concurrency", default="10%")
    ap.add_argument("--partitions", type=int, default=12)
    args = ap.parse_args()
    kdtest.BIN = os.path.join(args.build, "bin")
    os.makedirs(kdtest.TMP, exist_ok=True)
    print(f"one planner, rolling over a simulated fleet, {args.concurrency} at a time, "
          f"{STEPS} steps a host")
    print(f"{'hosts':>8} {'seconds':>9} {'steps/s':>9} {'events/s':>9} {'planner RSS':>12}"
          f"   CPU seconds: planner, broker, fleetsim")
    for n in [int(x) for x in args.counts.split(",")]:
        secs, rss, cpu = one_run(n, args.concurrency, args.partitions)
        steps = n * STEPS
        print(f"{n:>8} {secs:>9.1f} {steps / secs:>9.0f} {2 * steps / secs:>9.0f} "
              f"{rss:>9.0f} MB   {cpu['planner']:.1f}, {cpu['broker']:.1f}, "
              f"{cpu['fleetsim']:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
