"""create, rollback, stop, pause and resume wait for the planner's answer
(issue 14, problem 8): create prints the id once accepted; a rejected create
or rollback exits non-zero with the reason; pause and resume say so; with no planner, one line says nobody answered."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import HOSTS, hook_log, start_fleet  # noqa: E402


kd = kdtest.kd


wait_for = kdtest.wait_for


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=4)
        start_fleet(procs, bs)
        d = procs.dir
        url = "file://" + os.path.join(d, "v1.tar.gz")
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1", sleep=0.5)
        spec = bundles.spec(os.path.join(d, "v1.yaml"), "shop", "web", HOSTS, url, sha)

        # Accepted: the id, as the only line, once the planner took it.
        out = kd(bs, "create", "-f", spec)
        id1 = out.stdout.strip()
        t.check(out.returncode == 0 and len(id1) == 36, f"create prints the id: {out}")
        t.check(wait_for(lambda: hook_log(procs, "web-01")), "web-01 started")

        # Pause: answered at once (a second pause is refused: test_cli_refusals).
        out = kd(bs, "pause", id1[:8], "--json")
        ans = json.loads(out.stdout or "{}")
        t.check(out.returncode == 0 and ans.get("answer") == "accepted" and
                ans.get("deploy_id") == id1, f"pause by short id answered: {out}")
        out = kd(bs, "resume", id1)
        t.check(out.returncode == 0, f"resume answered: {out}")

        # Another deployment of shop/web while one is active: rejected, exit 1.
        out = kd(bs, "create", spec)
        t.check(out.returncode == 1 and "create rejected" in out.stderr and
                "active" in out.stderr and out.stdout == "",
                f"the second create is rejected with its reason, no id: {out}")
        out = kd(bs, "watch", id1, "--timeout", "120")
        t.check(out.returncode == 0, f"the first one succeeded: {out.stderr[-500:]}")

        # A failed deployment rolled back automatically; rolling it back again
        # is rejected, and the CLI says so.
        sha2 = bundles.build(os.path.join(d, "v2.tar.gz"), "V2", fail_validate_on="web-01")
        spec2 = bundles.spec(os.path.join(d, "v2.yaml"), "shop", "web", HOSTS,
                             "file://" + os.path.join(d, "v2.tar.gz"), sha2, auto_rollback=True)
        out = kd(bs, "create", "-f", spec2, "--wait", "--timeout", "120")
        id2 = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
        t.check(out.returncode == 1 and "failed, rolled back" in out.stderr,
                f"V2 failed and was rolled back: {out.stderr[-800:]}")
        out = kd(bs, "rollback", id2)
        t.check(out.returncode == 1 and "rollback rejected" in out.stderr and out.stdout == "",
                f"rolling back a rolled-back deployment is rejected: {out}")
        out = kd(bs, "stop", id2)
        t.check(out.returncode == 1 and "stop refused" in out.stderr,
                f"stopping an ended deployment is refused: {out}")

        # No planner: one line after --timeout, exit 3.
        procs.stop(next(p for p in procs.procs if p.kd_name == "planner"))
        start = time.time()
        out = kd(bs, "pause", id1, "--timeout", "3")
        took = time.time() - start
        t.check(out.returncode == 3 and "no answer from the planner in 3 s" in out.stderr and
                len(out.stderr.strip().splitlines()) == 1 and took < 15,
                f"no planner: one line and exit 3 ({took:.1f} s): {out}")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
