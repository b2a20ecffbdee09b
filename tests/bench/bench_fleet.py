#!/usr/bin/env python3
"""kdeploy against the floor: a rolling deployment of a no-op bundle (4 hooks
and one file) over N hosts, 10 % at a time, served by 10 worker processes on
the embedded broker, against a plain shell script doing the same per-host
work (unpack, the 4 hooks, copy the file) in the same batches, measured in
the same run. Prints medians of --runs and their ratio.

Run from a Release build:
  python3 tests/bench/bench_fleet.py --build build-rel --hosts 100,200,1000"""
import argparse
import statistics
import sys

import fleetbench


def measure(args, build, count, shell):
    """Medians of kdeploy's runs with build and, when shell, of the shell
    floor's, each run right after kdeploy's."""
    hosts = [f"f{count}-{i:05d}" for i in range(count)]
    fleet = fleetbench.Fleet(build, hosts, args.processes, interleave=args.interleave)
    try:
        bundle, sha = fleet.bundle("noop")
        kd, sh = [], []
        for run in range(args.runs + args.warmup):
            # A new application each run: a first deployment (no
            # ApplicationStop), so both sides run the same 4 hooks.
            t = fleet.deploy(f"fleet{run}", bundle, sha, args.percent)
            s = fleetbench.run_shell(bundle, hosts, args.percent, fleet.dir) if shell else 0
            if run >= args.warmup:  # the first warm caches and connections
                kd.append(t)
                sh.append(s)
    finally:
        fleet.close()
    return statistics.median(kd), statistics.median(sh)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--hosts", default="100,200,1000", help="comma-separated fleet sizes")
    ap.add_argument("--processes", type=int, default=10, help="worker processes")
    ap.add_argument("--percent", type=int, default=10, help="hosts at a time, in %%")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--interleave", action="store_true",
                    help="host i to process i %% processes: a batch spreads over the processes")
    ap.add_argument("--warmup", type=int, default=1, help="runs first, not counted")
    ap.add_argument("--base", help="another build, measured first in the same run")
    args = ap.parse_args()
    print(f"rolling deployment, {args.percent}% at a time, {args.processes} worker processes"
          f"{' (hosts interleaved)' if args.interleave else ''}, medians of {args.runs} runs")
    print(f"{'hosts':>7} {'kdeploy':>10} {'shell':>10} {'ratio':>7}")
    for count in (int(x) for x in args.hosts.split(",")):
        base = measure(args, args.base, count, False)[0] if args.base else None
        kd, sh = measure(args, args.build, count, True)
        print(f"{count:7d} {kd:9.2f}s {sh:9.2f}s {kd / sh:6.2f}x", flush=True)
        if base is not None:
            print(f"{'':7s} {base:9.2f}s {'':10s} {base / sh:6.2f}x  ({args.base})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
