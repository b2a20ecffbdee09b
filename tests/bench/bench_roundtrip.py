#!/usr/bin/env python3
"""The step round trip, planner -> worker -> planner, beyond the hook's own
time: for each step of one-host deployments on the embedded broker, the
time from the planner recording a step to it recording the next, less the
step's duration as the worker reports it. Reports p50 and p99 over every
step of --runs deployments (7 steps each; a no-op bundle whose hooks only
append a line to a log).

Run from a build:  python3 tests/bench/bench_roundtrip.py --build build-rel [--runs 20]

To split the round trip: --fetch-wait MS gives the planner and the worker
that fetch.wait.max.ms (the embedded broker answers a waiting fetch only
when the wait ends), and --tmp /dev/shm puts the worker's journal on tmpfs,
where fdatasync costs nothing.

It also reports what the processes cost: CPU of the planner, the worker and
the broker, as a share of one core, while the deployments ran, then idle
for 10 s after them (what an eager lane costs while steps are in flight,
and that it costs nothing once they are not)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from procstat import cpu_seconds  # noqa: E402


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def samples(kd, bs, deploy_id):
    """Round trips (ms) of one deployment, from its replay, each with its
    three legs: the planner's step to the worker starting it (delivery,
    fetch wait, signature check), the worker's work after the hook (its
    journal record of the result), and its result to the planner's next
    step (publish, fetch wait, the planner's decision and records)."""
    out = subprocess.run([kd, "--brokers", bs, "replay", deploy_id, "--json"],
                         capture_output=True, text=True, timeout=120)
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    dispatched = sorted((x["ts"], x.get("step")) for x in lines if x["kind"] == "step")
    results = {x.get("step"): x for x in lines if x["kind"] == "step_result"}
    rows = []
    for a, b in zip(dispatched, dispatched[1:]):
        r = results.get(a[1])
        if not r:
            continue
        hook_end = r["started_ms"] + r["duration_ms"]
        rows.append(((b[0] - a[0]) - r["duration_ms"], r["started_ms"] - a[0],
                     r["ts"] - hook_end, b[0] - r["ts"]))
    return rows


def cpu_shares(pids, since, t0):
    """Percent of one core each pid used since the cpu_seconds figures in since,
    taken at monotonic time t0."""
    wall = time.monotonic() - t0
    return [100.0 * (cpu_seconds(p) - c) / wall for p, c in zip(pids, since)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--fetch-wait", type=int, help="fetch.wait.max.ms of planner and worker")
    ap.add_argument("--tmp", help="where the worker's root (and journal) lives")
    args = ap.parse_args()
    kdtest.BIN = os.path.join(args.build, "bin")
    if args.tmp:
        kdtest.TMP = args.tmp
    extra = ["-X", f"fetch.wait.max.ms={args.fetch_wait}"] if args.fetch_wait is not None else []
    os.makedirs(kdtest.TMP, exist_ok=True)
    kd = os.path.join(kdtest.BIN, "kdeploy")
    procs = kdtest.Procs()
    rtts = []
    busy = idle = None
    try:
        bs = procs.broker(partitions=2)
        broker = procs.procs[-1]
        planner = procs.planner(bs, "--log-level", "warn", *extra)
        worker = procs.worker(bs, "h1", "--log-level", "warn", *extra)
        pids = [planner.pid, worker.pid, broker.pid]
        d = procs.dir
        for run in range(args.runs + 1):
            if run == 1:
                t0, since = time.monotonic(), [cpu_seconds(p) for p in pids]
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
        busy = cpu_shares(pids, since, t0)
        time.sleep(2)  # past the worker's and the planner's hurry after a step
        t0, since = time.monotonic(), [cpu_seconds(p) for p in pids]
        time.sleep(10)
        idle = cpu_shares(pids, since, t0)
    finally:
        procs.stop_all()
    print(f"step round trip beyond the hook, {len(rtts)} steps of {args.runs} deployments"
          f" (fetch wait {args.fetch_wait if args.fetch_wait is not None else 'default'},"
          f" journal in {args.tmp or kdtest.TMP})")
    total = [x[0] for x in rtts]
    print(f"  p50 {percentile(total, 50):6.1f} ms   p99 {percentile(total, 99):6.1f} ms   "
          f"mean {statistics.mean(total):6.1f} ms")
    legs = ("planner's step to the worker starting it", "worker after the hook (journal)",
            "result to the planner's next step")
    for i, name in enumerate(legs, 1):
        v = [x[i] for x in rtts]
        print(f"    {name:42s} p50 {percentile(v, 50):5.1f} ms  mean {statistics.mean(v):5.1f} ms")
    for what, shares in (("deploying (samples included)", busy), ("idle, 10 s after", idle)):
        print(f"  CPU {what:29s} planner {shares[0]:5.1f} %  worker {shares[1]:5.1f} %  "
              f"broker {shares[2]:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
