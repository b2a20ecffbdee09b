"""Concurrency by count, percentage and ramp: never more hosts in flight than
allowed, batch by batch. Eight hosts served by one worker process."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402

KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")
HOSTS = [f"node-{i}" for i in range(1, 9)]


def max_in_flight(path):
    cur = peak = 0
    with open(path) as f:
        for line in f:
            cur += 1 if line.startswith("start") else -1
            peak = max(peak, cur)
    return peak


def batches(bs, spec):
    out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec, "--dry-run"],
                         capture_output=True, text=True, timeout=30)
    return [len(line.split()) - 2 for line in out.stdout.splitlines() if line.startswith("batch")]


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=3)
        d = procs.dir
        procs.planner(bs)
        args = [os.path.join(kdtest.BIN, "kdeploy-worker"), "--brokers", bs,
                "--root", os.path.join(d, "root"), "--install-prefix", os.path.join(d, "prefix"),
                "--env", "HOOK_LOG=" + os.path.join(d, "hooks.log")] + procs.verify_args()
        for h in HOSTS:
            args += ["--host-id", h]
        # One process, eight hosts: KD_HOST comes from each host's own env below.
        cases = [(2, [2, 2, 2, 2], 2), ("25%", [2, 2, 2, 2], 2), ([1, "50%"], [1, 4, 3], 4)]
        for i, (conc, want_batches, limit) in enumerate(cases):
            conc_log = os.path.join(d, f"conc{i}.log")
            env_args = ["--env", "CONC_LOG=" + conc_log]
            w = procs.start(args + env_args + ["--env", "KD_HOST=one-process"], f"worker{i}")
            sha = bundles.build(os.path.join(d, f"r{i}.tar.gz"), f"R{i}", sleep=0.2,
                                files_dest=f"/opt/app{i}")
            spec = bundles.spec(os.path.join(d, f"r{i}.yaml"), f"app{i}", "web", HOSTS,
                                "file://" + os.path.join(d, f"r{i}.tar.gz"), sha,
                                concurrency=conc)
            t.check(kdtest.wait_announced(bs, HOSTS), "the hosts are announced")
            t.check(batches(bs, spec) == want_batches,
                    f"concurrency {conc}: batches {batches(bs, spec)} == {want_batches}")
            out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec, "--wait",
                                  "--timeout", "120"], capture_output=True, text=True, timeout=180)
            t.check(out.returncode == 0, f"concurrency {conc} deployment succeeded: {out.stderr}")
            peak = max_in_flight(conc_log) if os.path.exists(conc_log) else -1
            t.check(0 < peak <= limit, f"concurrency {conc}: at most {limit} in flight, saw {peak}")
            with open(conc_log) as f:
                t.check(sum(1 for line in f if line.startswith("end")) == len(HOSTS),
                        "every host finished")
            procs.stop(w)
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
