"""What status, list, watch and replay say (issue 14): a rollback that
skipped every host says "rollback: nothing to roll back on 3 hosts", not
"rollback succeeded" (problem 9); a failed deployment that was rolled back
reads "failed, rolled back" and exits non-zero (problem 2); replay shows the
failing hook's real exit code (problem 10); --reason shows up in status,
watch and replay; short ids, header rows, "1 host"; --json."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from kdtest import kd, wait_for  # noqa: E402
from test_rolling_deploy import HOSTS, hook_log, start_fleet  # noqa: E402


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=4)
        start_fleet(procs, bs)
        d = procs.dir
        empty = kd(bs, "list")
        t.check(empty.returncode == 0 and empty.stdout == "" and
                "no deployments yet" in empty.stderr,
                f"list with no deployments says so, on stderr: {empty}")

        def rev(name, **kw):
            sha = bundles.build(os.path.join(d, name + ".tar.gz"), name, **kw)
            return bundles.spec(os.path.join(d, name + ".yaml"), "shop", "web", HOSTS,
                                "file://" + os.path.join(d, name + ".tar.gz"), sha, auto_rollback=True)

        out = kd(bs, "create", "-f", rev("V1"), "--wait", "--timeout", "120")
        id1 = out.stdout.strip()
        t.check(out.returncode == 0, f"V1 succeeded: {out.stderr[-500:]}")
        st = kd(bs, "status", id1[:8])
        t.check(st.returncode == 0 and "succeeded" in st.stdout, f"status of V1, exit 0: {st}")

        # V1 was each host's first revision: rolling it back has nothing to go
        # back to, and says so (problem 9), in rollback --wait, status, list, watch.
        out = kd(bs, "rollback", id1[:8], "--wait", "--timeout", "120", "--reason", "try it")
        rid = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
        t.check(out.returncode == 0 and "nothing to roll back on 3 hosts" in out.stderr,
                f"rollback --wait says nothing was rolled back: {out.stderr[-600:]}")
        t.check("1 host(s)" not in out.stderr and "1 hosts" not in out.stderr,
                f"hosts are counted in words: {out.stderr[-600:]}")
        st = kd(bs, "status", rid)
        t.check("rollback: nothing to roll back on 3 hosts" in st.stdout and
                "rollback succeeded" not in st.stdout, f"status of the rollback: {st.stdout}")
        t.check("try it" in st.stdout, f"status shows the rollback's reason: {st.stdout}")
        st = kd(bs, "status", id1)
        t.check("succeeded, nothing to roll back" in st.stdout,
                f"status of V1 after it: {st.stdout}")
        rows = kd(bs, "list").stdout.splitlines()
        mine = [r for r in rows if r.startswith(rid[:8])]
        t.check(mine and "rollback: nothing to roll back on 3 hosts" in mine[0],
                f"list: {rows}")
        js = json.loads(kd(bs, "status", rid, "--json").stdout)
        t.check(js.get("outcome") == "rollback: nothing to roll back on 3 hosts",
                f"status --json outcome: {js.get('outcome')}")
        w = kd(bs, "watch", rid, "--timeout", "30")
        t.check(w.returncode == 0 and "nothing to roll back on 3 hosts" in w.stderr,
                f"watch of the rollback: {w.stderr[-500:]}")

        # V2 fails ValidateService on web-02 (exit 3) and is rolled back.
        out = kd(bs, "create", "-f", rev("V2", fail_validate_on="web-02"), "--wait",
                 "--timeout", "120")
        id2 = out.stdout.strip().splitlines()[0]
        t.check(out.returncode == 1 and "failed, rolled back" in out.stderr,
                f"create --wait: failed, rolled back: {out.stderr[-600:]}")
        st = kd(bs, "status", id2)
        t.check(st.returncode == 1, f"status of a rolled-back deployment exits 1: {st.returncode}")
        t.check("failed, rolled back" in st.stdout and "rollback succeeded" not in st.stdout,
                f"status says failed, rolled back: {st.stdout}")
        t.check("HOST" in st.stdout and "STATUS" in st.stdout and "1 hosts" not in st.stdout,
                f"status has a header row: {st.stdout}")
        js = json.loads(kd(bs, "status", id2, "--json").stdout)
        t.check(js.get("outcome") == "failed, rolled back" and js.get("exit_code") == 1,
                f"status --json: outcome and exit code: {js}")
        lst = kd(bs, "list")
        rows = lst.stdout.splitlines()
        t.check(rows and rows[0].split()[:2] == ["ID", "APPLICATION"], f"list header: {rows[:1]}")
        mine = [r for r in rows if r.startswith(id2[:8])]
        t.check(mine and "failed, rolled back" in mine[0], f"list row of V2: {mine}")
        t.check(not any("rollback succeeded" in r for r in rows if r.startswith(id2[:8])),
                "list does not call V2 a success")
        w = kd(bs, "watch", id2[:10], "--timeout", "60")
        t.check(w.returncode == 1 and "failed, rolled back" in w.stderr,
                f"watch: failed, rolled back, exit 1: {w.stderr[-500:]}")

        # Replay: the failing hook's exit code, never exit=0 on a failed step.
        rp = kd(bs, "replay", id2[:8])
        failed = [x for x in rp.stdout.splitlines()
                  if "step_result" in x and "status=failed" in x]
        t.check(failed and all("exit=3" in x for x in failed),
                f"replay shows exit=3 on the failed step: {failed}")
        t.check(not any("status=failed" in x and "exit=0" in x for x in rp.stdout.splitlines()),
                "no failed line says exit=0")
        lines = [json.loads(x) for x in kd(bs, "replay", id2, "--json").stdout.splitlines()]
        t.check(any(x.get("kind") == "step_result" and x.get("exit_code") == 3 for x in lines),
                "replay --json: exit_code 3")

        # A stop with a reason: shown by status, watch and replay.
        out = kd(bs, "create", "-f", rev("V3", sleep=1))
        id3 = out.stdout.strip()
        t.check(wait_for(lambda: any(x[1] == "V3" for x in hook_log(procs, "web-01"))),
                "V3 started")
        out = kd(bs, "stop", id3, "--reason", "change freeze", "--wait", "--timeout", "120")
        t.check(out.returncode == 0, f"stopped: {out.stderr[-500:]}")
        st = kd(bs, "status", id3)
        t.check(st.returncode == 1 and "change freeze" in st.stdout and "stopped" in st.stdout,
                f"status shows the stop and its reason, exit 1: {st}")
        w = kd(bs, "watch", id3, "--timeout", "30")
        t.check("change freeze" in w.stderr, f"watch shows the reason: {w.stderr[-500:]}")
        rp = kd(bs, "replay", id3)
        t.check("change freeze" in rp.stdout, f"replay shows the reason: {rp.stdout[-800:]}")
        wj = kd(bs, "watch", id3, "--json", "--timeout", "30")
        events = [json.loads(x) for x in wj.stdout.splitlines()]
        t.check(events and all("kind" in e for e in events), f"watch --json: {wj.stdout[:300]}")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
