"""A rollback that skipped every host says so: "rollback: nothing to roll
back on 3 hosts", not "rollback succeeded" (issue 14, problem 9), in
rollback --wait, status, list and watch; the deployment it undid reads
"succeeded, nothing to roll back"; hosts are counted "1 host", "3 hosts"."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_cli_answers import kd  # noqa: E402
from test_rolling_deploy import HOSTS, start_fleet  # noqa: E402


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=4)
        start_fleet(procs, bs)
        d = procs.dir
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1")
        spec = bundles.spec(os.path.join(d, "v1.yaml"), "shop", "web", HOSTS,
                            "file://" + os.path.join(d, "v1.tar.gz"), sha)
        out = kd(bs, "create", "-f", spec, "--wait", "--timeout", "120")
        id1 = out.stdout.strip()
        t.check(out.returncode == 0, f"V1 deployed: {out.stderr[-300:]}")

        # V1 was each host's first revision: there is nothing to go back to.
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
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
