#!/usr/bin/env python3
"""The step round trip, planner -> worker -> planner, beyond the hook's own
time: for each step of one-host deployments on the embedded broker, the
time from the planner recording a step to it recording the next, less the
step's duration as the worker reports it. Reports p50 and p99 over every
step of --runs deployments (7 steps each; a no-op bundle whose hooks only
append a line to a log).

Run from a build:  python3 tests/bench/bench_roundtrip.py --build build-rel [--runs 20]"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import bundles  # noqa: E402
import kdtest  # noqa: E402


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def samples(kd, bs, deploy_id):
    """Round trips (ms) of one deployment, from its replay."""
    out = subprocess.run([kd, "--brokers", bs, "replay", deploy_id, "--json"],
                         capture_output=True, text=True, timeout=120)
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    dispatched = sorted((x["ts"], x.get("step")) for x in lines if x["kind"] == "step")
    took = {x.get("step"): x.get("duration_ms", 0) for x in lines if x["kind"] == "step_result"}
    return [(b[0] - a[0]) - took.get(a[1], 0) for a, b in zip(dispatched, dispatched[1:])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    kdtest.BIN = os.path.join(args.build, "bin")
    os.makedirs(kdtest.TMP, exist_ok=True)
    kd = os.path.join(kdtest.BIN, "kdeploy")
    procs = kdtest.Procs()
    rtts = []
    try:
        bs = procs.broker(partitions=2)
        procs.planner(bs, "--log-level", "warn")
        procs.worker(bs, "h1", "--log-level", "warn")
        d = procs.dir
        for run in range(args.runs + 1):
            sha = bundles.build(os.path.join(d, f"r{run}.tar.gz"), f"R{run}")
            spec = bundles.spec(os.path.join(d, f"r{run}.yaml"), "rt", "web", ["h1"],
                                "file://" + os.path.join(d, f"r{run}.tar.gz"), sha)
            out = subprocess.run([kd, "--brokers", bs, "create", "-f", spec, "--wait",
                                  "--timeout", "120"], capture_output=True, text=True,
                                 timeout=180)
            if out.returncode != 0:
                raise RuntimeError("deployment failed: " + out.stderr[-2000:])
            if run:  # the first warms caches and connections
                rtts += samples(kd, bs, out.stdout.split()[0])
    finally:
        procs.stop_all()
    print(f"step round trip beyond the hook, {len(rtts)} steps of {args.runs} deployments")
    print(f"  p50 {percentile(rtts, 50):6.1f} ms   p99 {percentile(rtts, 99):6.1f} ms   "
          f"mean {statistics.mean(rtts):6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
