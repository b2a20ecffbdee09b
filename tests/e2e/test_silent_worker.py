"""A host whose worker never answers (no result, no heartbeat) fails once its
step's timeout passes, and counts toward the failure threshold; the other
hosts are not held up by it."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import KDEPLOY, hook_log  # noqa: E402


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=2)
        d = procs.dir
        procs.planner(bs)
        procs.worker(bs, "web-01")
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1")
        spec = bundles.spec(os.path.join(d, "v1.yaml"), "shop", "web", ["web-01", "ghost"],
                            "file://" + os.path.join(d, "v1.tar.gz"), sha, concurrency=2,
                            threshold=2, extra="allow_unknown_hosts: true\n")
        with open(spec) as f:
            text = f.read().replace("timeouts: {host: 120, deployment: 600}",
                                    "timeouts: {host: 4, deployment: 600}")
        with open(spec, "w") as f:
            f.write(text)
        t0 = time.time()
        out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec, "--wait",
                              "--timeout", "60"], capture_output=True, text=True, timeout=90)
        took = time.time() - t0
        deploy_id = out.stdout.split()[0] if out.stdout.split() else ""
        t.check(out.returncode != 0, "the deployment did not succeed: " + out.stderr[-800:])
        t.check(took < 30, f"the silent host was given up on its timeout ({took:.1f} s)")
        st = json.loads(subprocess.run([KDEPLOY, "--brokers", bs, "status", deploy_id, "--json"],
                                       capture_output=True, text=True, timeout=60).stdout)
        hosts = {h["host"]: h for h in st["hosts"]}
        t.check(hosts["web-01"]["status"] == "succeeded", f"web-01 went through: {hosts}")
        t.check(hosts["ghost"]["status"] == "failed" and
                "no result or heartbeat from ghost" in hosts["ghost"]["error"],
                f"ghost failed for silence: {hosts['ghost']}")
        t.check(len(hook_log(procs, "web-01")) == 4, "web-01's hooks ran")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
