#!/usr/bin/env python3
"""Per-step overhead of kdeploy: how long a deployment takes beyond the
work its hooks do, on the embedded broker, a planner and one worker process.

Reports medians over --runs deployments of:
  - one host, one at a time (the latency of the step pipeline):
    per step = (deployment wall time) / (steps), against the baseline of
    running the same hook scripts directly, one after the other;
  - --fleet hosts all at once (one worker process serving them all):
    steps per second across the fleet.
Run from a build:  python3 tests/bench/bench_steps.py --build build
Timings come from the planner's own records (accepted -> finished)."""
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

STEPS = 7  # the rolling workflow's steps per host


def deploy(bs, spec_path):
    out = subprocess.run([os.path.join(kdtest.BIN, "kdeploy"), "--brokers", bs, "create",
                          "-f", spec_path, "--wait", "--timeout", "300"],
                         capture_output=True, text=True, timeout=400)
    if out.returncode != 0:
        raise RuntimeError("deployment failed: " + out.stderr)
    deploy_id = out.stdout.split()[0]
    st = subprocess.run([os.path.join(kdtest.BIN, "kdeploy"), "--brokers", bs, "status",
                         deploy_id, "--json"], capture_output=True, text=True, timeout=60)
    d = json.loads(st.stdout)
    return (d["finished_ms"] - d["accepted_ms"]) / 1000.0


def hook_baseline(hook_log, runs=20):
    """The same hook script, run directly four times per host-deployment."""
    script = os.path.join(os.path.dirname(hook_log), "baseline-hook.sh")
    with open(script, "w") as f:
        f.write(bundles.HOOK.format(rev="B", extra=""))
    os.chmod(script, 0o755)
    env = dict(os.environ, HOOK_LOG=hook_log + ".baseline", LIFECYCLE_EVENT="BeforeInstall")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(4):
            subprocess.run([script], env=env, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--fleet", type=int, default=50)
    args = ap.parse_args()
    kdtest.BIN = os.path.join(args.build, "bin")
    os.makedirs(kdtest.TMP, exist_ok=True)
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=6)
        d = procs.dir
        hook_log = os.path.join(d, "hooks.log")
        procs.start([os.path.join(kdtest.BIN, "kdeploy-planner"), "--brokers", bs,
                     "--signing-key", procs.signing_key, "--log-level", "warn"], "planner")
        hosts = [f"h{i:03d}" for i in range(args.fleet)]
        cmd = [os.path.join(kdtest.BIN, "kdeploy-worker"), "--brokers", bs, "--root",
               os.path.join(d, "root"), "--install-prefix", os.path.join(d, "prefix"),
               "--env", "HOOK_LOG=" + hook_log, "--log-level", "warn"] + procs.verify_args()
        for h in hosts:
            cmd += ["--host-id", h]
        procs.start(cmd, "worker")
        time.sleep(2)

        single, fleet = [], []
        for run in range(args.runs + 1):
            sha = bundles.build(os.path.join(d, f"r{run}.tar.gz"), f"R{run}")
            url = "file://" + os.path.join(d, f"r{run}.tar.gz")
            # Two applications install the same files on the same hosts: the
            # second one overwrites what the first left (by default an
            # existing file fails the Install, as with the AWS agent).
            s1 = bundles.spec(os.path.join(d, f"one{run}.yaml"), "one", "web", hosts[:1], url, sha,
                              extra="file_exists: overwrite\n")
            sN = bundles.spec(os.path.join(d, f"all{run}.yaml"), "all", "web", hosts, url, sha,
                              concurrency="100%", extra="file_exists: overwrite\n")
            t1, tN = deploy(bs, s1), deploy(bs, sN)
            if run:  # the first run warms caches and connections
                single.append(t1)
                fleet.append(tN)
        base = hook_baseline(hook_log)
        one = statistics.median(single)
        many = statistics.median(fleet)
        print(f"kdeploy step pipeline, medians of {args.runs} runs")
        print(f"  one host, {STEPS} steps:       {one * 1000:8.1f} ms  "
              f"({one / STEPS * 1000:.1f} ms per step)")
        print(f"  baseline, its 4 hooks run directly: {base * 1000:8.1f} ms")
        print(f"  overhead per step:           {(one - base) / STEPS * 1000:8.1f} ms  "
              f"(ratio to baseline {one / base:.1f}x)")
        print(f"  {args.fleet} hosts at once:         {many * 1000:8.1f} ms  "
              f"({args.fleet * STEPS / many:.0f} steps/s)")
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
