"""watch, status and replay of an unknown id fail at once, naming it; short
ids are taken everywhere an id is, and an ambiguous one lists the
candidates (issue 14, problem 3: watch of an unknown id waited in silence
for ever, even for a short id watch itself printed)."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from kdtest import kd  # noqa: E402
from test_rolling_deploy import HOSTS, start_fleet  # noqa: E402


def send_request(bs, deploy_id):
    """A request on the requests topic under deploy_id, as any client may
    write one (the planner ignores its body)."""
    out = subprocess.run([os.path.join(kdtest.TOOLS, "kd-test-send"), "--brokers", bs,
                          "--topic", "requests", "--key", deploy_id, "--deploy-id", deploy_id,
                          "--kind", "step_result", "--host", "web-01",
                          "--event", "ApplicationStart"],
                         capture_output=True, text=True, timeout=60)
    return out.returncode == 0


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

        for verb in ("watch", "status", "replay", "stop", "pause", "resume", "rollback"):
            start = time.time()
            out = kd(bs, verb, "abc", timeout=60)
            took = time.time() - start
            t.check(out.returncode == 4 and "no deployment 'abc'" in out.stderr and took < 15,
                    f"{verb} of an unknown id fails at once ({took:.1f} s): {out}")

        out = kd(bs, "status", id1[:8])
        t.check(out.returncode == 0 and id1 in out.stdout, f"status takes a short id: {out}")
        out = kd(bs, "replay", id1[:8], "--json")
        t.check(out.returncode == 0 and f'"deploy_id":"{id1}"' in out.stdout,
                f"replay takes a short id: {out.stdout[:300]} {out.stderr}")
        out = kd(bs, "watch", id1[:6], "--timeout", "30")
        t.check(out.returncode == 0, f"watch takes a short id: {out.stderr[-300:]}")

        # Two ids with one start: the start alone is ambiguous, each id is not.
        t.check(send_request(bs, "feed-0001") and send_request(bs, "feed-0002"),
                "two requests sent")
        out = kd(bs, "status", "feed")
        t.check(out.returncode == 4 and "feed-0001" in out.stderr and "feed-0002" in out.stderr,
                f"an ambiguous start lists the candidates: {out}")
        # A request not answered (yet) is not "unknown".
        out = kd(bs, "status", "feed-0001")
        t.check(out.returncode == 0 and "not answered" in out.stdout,
                f"a request without an answer is a deployment still: {out}")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
