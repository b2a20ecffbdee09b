#!/usr/bin/env python3
"""The worker's own cost, from /proc: a worker serving N hosts, idle on the
embedded broker (a signing planner running): its RSS, its threads, the
context switches and CPU time of all its threads over --idle seconds, and
how long it takes to exit on SIGTERM. With --base, the same for another
build's worker in the same run (before/after).

Run from a Release build:
  python3 tests/bench/bench_worker.py --build build-rel --hosts 1,100 [--base OLD-BUILD]"""
import argparse
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import kdtest  # noqa: E402
from procstat import cpu_seconds  # noqa: E402


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def switches(pid):
    """Context switches of every thread of pid, so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if "ctxt_switches" in line:
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return total


def measure(bin_dir, count, idle_s, extra):
    kdtest.BIN = bin_dir
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=6)
        procs.planner(bs, "--log-level", "warn")
        cmd = [os.path.join(bin_dir, "kdeploy-worker"), "--brokers", bs, "--root",
               os.path.join(procs.dir, "root"), "--log-level", "warn"] + procs.verify_args() + extra
        for i in range(count):
            cmd += ["--host-id", f"w{i:05d}"]
        w = procs.start(cmd, "worker")
        time.sleep(5 + count / 100)  # started, every host announced, settled
        broker = next(p for p in procs.procs if p.kd_name == "broker")
        sw, cpu, bcpu = switches(w.pid), cpu_seconds(w.pid), cpu_seconds(broker.pid)
        time.sleep(idle_s)
        bcpu = (cpu_seconds(broker.pid) - bcpu) / idle_s * 100
        row = {"rss_kb": status(w.pid, "VmRSS"), "anon_kb": status(w.pid, "RssAnon"),
               "threads": status(w.pid, "Threads"),
               "switches_per_s": (switches(w.pid) - sw) / idle_s,
               "cpu_pct": (cpu_seconds(w.pid) - cpu) / idle_s * 100, "broker_pct": bcpu}
        t0 = time.perf_counter()
        os.killpg(w.pid, signal.SIGTERM)
        w.wait(timeout=60)
        row["stop_s"] = time.perf_counter() - t0
        row["exit"] = w.returncode
        return row
    finally:
        procs.stop_all()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--base", help="another build to measure in the same run")
    ap.add_argument("--hosts", default="1,100")
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("-X", action="append", default=[], metavar="PROP=VALUE",
                    help="a librdkafka property for the worker (repeatable)")
    args = ap.parse_args()
    os.makedirs(kdtest.TMP, exist_ok=True)
    builds = ([("base", args.base)] if args.base else []) + [("this", args.build)]
    print(f"idle worker over {args.idle:.0f} s (all its threads), then SIGTERM")
    print("RSS counts the shared libraries' pages; private is its anonymous memory")
    print(f"{'build':6} {'hosts':>6} {'RSS MB':>7} {'private':>8} {'threads':>8} {'switches/s':>11} "
          f"{'CPU %':>6} {'broker CPU %':>13} {'stop s':>7}")
    for count in (int(x) for x in args.hosts.split(",")):
        for name, build in builds:
            r = measure(os.path.join(build, "bin"), count, args.idle,
                        [a for x in args.X for a in ("-X", x)])
            print(f"{name:6} {count:6d} {r['rss_kb'] / 1024:7.1f} {r['anon_kb'] / 1024:8.1f} "
                  f"{r['threads']:8d} "
                  f"{r['switches_per_s']:11.0f} {r['cpu_pct']:6.1f} {r['broker_pct']:13.1f} "
                  f"{r['stop_s']:7.2f}"
                  + ("" if r["exit"] == 0 else f"  (exit {r['exit']})"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
