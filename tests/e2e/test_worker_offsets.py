"""A worker process reads the steps of all its hosts through one consumer,
and each host keeps its own position: in its journal, and in its consumer
group kdeploy-worker-<host>. Hosts moved to other processes, one with its
root (journal) and one without, resume where they left off: no step of
the first deployment runs again, and the next deployment runs on both."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import KDEPLOY  # noqa: E402


def worker(procs, bs, name, root, prefix, hosts, log):
    """One root and one prefix: each host gets its own subdirectory, or
    uses them as they are when it is the process's only host."""
    cmd = [os.path.join(kdtest.BIN, "kdeploy-worker"), "--brokers", bs, "--root", root,
           "--install-prefix", prefix,
           "--env", "HOOK_LOG=" + log] + procs.verify_args()
    for h in hosts:
        cmd += ["--host-id", h]
    return procs.start(cmd, name)


def deploy(bs, d, rev, hosts):
    sha = bundles.build(os.path.join(d, rev + ".tar.gz"), rev)
    spec = bundles.spec(os.path.join(d, rev + ".yaml"), "shop", "web", hosts,
                        "file://" + os.path.join(d, rev + ".tar.gz"), sha, concurrency=2,
                        extra="file_exists: overwrite\n")
    out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec, "--wait",
                          "--timeout", "120"], capture_output=True, text=True, timeout=180)
    return out.returncode, out.stderr


def lines(log, rev):
    if not os.path.exists(log):
        return 0
    with open(log) as f:
        return sum(1 for line in f if line.split()[1:2] == [rev])


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=2)
        d = procs.dir
        log = os.path.join(d, "hooks.log")
        procs.planner(bs)
        prefix = os.path.join(d, "prefix")
        both = worker(procs, bs, "both", os.path.join(d, "root"), prefix, ["web-01", "web-02"],
                      log)
        rc, err = deploy(bs, d, "V1", ["web-01", "web-02"])
        t.check(rc == 0, "V1 deployed to both hosts of one process: " + err[-800:])
        t.check(lines(log, "V1") == 8, f"4 hooks ran on each host: {lines(log, 'V1')}")
        t.check("through one consumer" in procs.log_of("both"),
                "the process read both hosts' steps through one consumer")
        procs.stop(both)
        # web-01 moves with its root (the journal has its offset); web-02
        # moves without (its group has it).
        worker(procs, bs, "one", os.path.join(d, "root", "web-01"),
               os.path.join(prefix, "web-01"), ["web-01"], log)
        worker(procs, bs, "two", os.path.join(d, "fresh"), os.path.join(prefix, "web-02"),
               ["web-02"], log)
        time.sleep(3)
        t.check(lines(log, "V1") == 8, f"no step of V1 ran again: {lines(log, 'V1')} lines")
        rc, err = deploy(bs, d, "V2", ["web-01", "web-02"])
        t.check(rc == 0, "V2 deployed to the moved hosts: " + err[-800:])
        # ApplicationStop runs the installed revision's script: web-01 stops
        # V1 (installed under the root it kept); web-02, under a new root,
        # has nothing installed and nothing to stop.
        t.check(lines(log, "V1") == 9, f"only web-01's stop of V1 ran: {lines(log, 'V1')} lines")
        t.check(lines(log, "V2") == 8, f"V2's hooks ran on both: {lines(log, 'V2')} lines")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
