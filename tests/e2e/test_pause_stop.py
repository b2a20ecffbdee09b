"""Operator controls: pause holds a deployment (no new host starts) until
resume; a second deployment of the same application/group is refused while
one is active; stop ends a deployment where it stands, as stopped."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import HOSTS, KDEPLOY, hook_log, start_fleet  # noqa: E402


def kd(bs, *args, timeout=120):
    return subprocess.run([KDEPLOY, "--brokers", bs] + list(args), capture_output=True,
                          text=True, timeout=timeout)


def status(bs, deploy_id):
    out = kd(bs, "status", deploy_id, "--json")
    return json.loads(out.stdout) if out.returncode == 0 else {}


def started_hosts(procs):
    return [h for h in HOSTS if hook_log(procs, h)]


def wait_for(pred, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and not pred():
        time.sleep(0.1)
    return pred()


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=4)
        start_fleet(procs, bs)
        d = procs.dir
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1", sleep=0.3)
        spec = bundles.spec(os.path.join(d, "v1.yaml"), "shop", "web", HOSTS,
                            "file://" + os.path.join(d, "v1.tar.gz"), sha, concurrency=1)
        id1 = kd(bs, "create", "-f", spec).stdout.strip()
        t.check(wait_for(lambda: "web-01" in started_hosts(procs)), "web-01 started")

        out = kd(bs, "pause", id1, "--wait", "--timeout", "30")
        t.check(out.returncode == 0, "paused: " + out.stderr)
        t.check(status(bs, id1).get("paused") is True, "status says paused")
        time.sleep(3)
        t.check(started_hosts(procs) == ["web-01"], f"no new host while paused: {started_hosts(procs)}")

        other = kd(bs, "create", "-f", spec, "--wait", "--timeout", "30")
        t.check(other.returncode != 0 and "active deployment" in other.stderr,
                "a second deployment of shop/web is refused: " + other.stderr)

        out = kd(bs, "resume", id1, "--wait", "--timeout", "120")
        t.check(out.returncode == 0, "resumed and succeeded: " + out.stderr)
        t.check(status(bs, id1).get("status") == "succeeded", "succeeded after resume")
        t.check(started_hosts(procs) == HOSTS, "every host deployed")

        sha = bundles.build(os.path.join(d, "v2.tar.gz"), "V2", sleep=0.3)
        spec = bundles.spec(os.path.join(d, "v2.yaml"), "shop", "web", HOSTS,
                            "file://" + os.path.join(d, "v2.tar.gz"), sha, concurrency=1)
        id2 = kd(bs, "create", "-f", spec).stdout.strip()
        t.check(wait_for(lambda: any(line[1] == "V2" for line in hook_log(procs, "web-01"))),
                "V2 started on web-01")
        out = kd(bs, "stop", id2, "--wait", "--timeout", "30")
        t.check(out.returncode == 0, "stopped: " + out.stderr)
        time.sleep(3)
        st = status(bs, id2)
        t.check(st.get("status") == "stopped", f"status stopped: {st.get('status')}")
        t.check(not any(line[1] == "V2" for line in hook_log(procs, "web-03")),
                "web-03 never got V2")
        later = kd(bs, "create", "-f", spec, "--dry-run")
        t.check(later.returncode == 0, "dry run still works")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
