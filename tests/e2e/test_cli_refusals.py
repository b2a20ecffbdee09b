"""A stop, pause or resume the planner will not carry out is refused, and the
CLI says why in one line and exits 1 (issue 14, problem 8: pausing twice was
accepted silently, resume of a running deployment too). The planner names
the refused request in the answer (in_reply_to). stop --rollback --wait
follows the rollback."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from kdtest import kd, wait_for  # noqa: E402
from test_rolling_deploy import HOSTS, hook_log, start_fleet  # noqa: E402


def refused(t, out, verb, what):
    lines = out.stderr.strip().splitlines()
    t.check(out.returncode == 1 and len(lines) == 1 and f"{verb} refused" in lines[0],
            f"{what}: {out}")


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=4)
        start_fleet(procs, bs)
        d = procs.dir
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1", sleep=0.5)
        spec = bundles.spec(os.path.join(d, "v1.yaml"), "shop", "web", HOSTS,
                            "file://" + os.path.join(d, "v1.tar.gz"), sha)
        id1 = kd(bs, "create", spec).stdout.strip()
        t.check(wait_for(lambda: hook_log(procs, "web-01")), "web-01 started")

        start = time.time()
        refused(t, kd(bs, "resume", id1), "resume", "resume of a running deployment")
        t.check(kd(bs, "pause", id1).returncode == 0, "paused")
        refused(t, kd(bs, "pause", id1), "pause", "a second pause")
        t.check(time.time() - start < 30, "every answer came without waiting out a timeout")
        t.check(kd(bs, "resume", id1).returncode == 0, "resumed")
        t.check(kd(bs, "watch", id1, "--timeout", "120").returncode == 0, "it succeeded")
        refused(t, kd(bs, "pause", id1), "pause", "pause of an ended deployment")

        # stop --rollback --wait: hosts in flight finish, then the ones that
        # changed go back to V1; that is a success of the stop.
        sha = bundles.build(os.path.join(d, "v2.tar.gz"), "V2", sleep=0.5)
        spec = bundles.spec(os.path.join(d, "v2.yaml"), "shop", "web", HOSTS,
                            "file://" + os.path.join(d, "v2.tar.gz"), sha)
        id2 = kd(bs, "create", spec).stdout.strip()
        t.check(wait_for(lambda: any(x[1] == "V2" for x in hook_log(procs, "web-01"))),
                "V2 started on web-01")
        out = kd(bs, "stop", id2[:8], "--rollback", "--reason", "wrong build", "--wait",
                 "--timeout", "120")
        t.check(out.returncode == 0 and "stopped, rolled back" in out.stderr,
                f"stop --rollback --wait: stopped, rolled back: {out.stderr[-800:]}")
        st = kd(bs, "status", id2)
        t.check("stopped, rolled back" in st.stdout and "wrong build" in st.stdout,
                f"status: {st.stdout}")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
