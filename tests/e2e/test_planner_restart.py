"""The planner keeps no state it cannot rebuild from the topics: killed with
SIGKILL mid-deployment and restarted, it carries the deployment to its end,
and no hook runs twice."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import HOSTS, KDEPLOY, hook_log, installed, seq  # noqa: E402


def start_planner(procs, bs, name):
    # A fixed instance id: the restarted planner takes the old one's place at once.
    return procs.planner(bs, "--instance-id", "planner-1", name=name)


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=4)
        planner = start_planner(procs, bs, "planner")
        for h in HOSTS:
            procs.worker(bs, h)
        d = procs.dir
        # Each hook takes a moment, so the kill lands mid-deployment.
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1", sleep=0.4)
        spec = bundles.spec(os.path.join(d, "v1.yaml"), "shop", "web", HOSTS,
                            "file://" + os.path.join(d, "v1.tar.gz"), sha, concurrency=1)
        out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec],
                             capture_output=True, text=True, timeout=60)
        t.check(out.returncode == 0, "submitted: " + out.stderr)
        deploy_id = out.stdout.strip()

        # Kill the planner while web-02 is in the middle of its steps.
        deadline = time.time() + 60
        while time.time() < deadline and len(hook_log(procs, "web-02")) < 2:
            time.sleep(0.05)
        t.check(len(hook_log(procs, "web-02")) >= 2, "web-02 started before the kill")
        planner.send_signal(signal.SIGKILL)
        planner.wait()
        planner.kd_killed = True
        time.sleep(1.0)
        start_planner(procs, bs, "planner2")

        def status():
            out = subprocess.run([KDEPLOY, "--brokers", bs, "status", deploy_id, "--json"],
                                 capture_output=True, text=True, timeout=60)
            return json.loads(out.stdout) if out.returncode == 0 else {}

        deadline = time.time() + 90
        st = status()
        while time.time() < deadline and st.get("status") != "succeeded":
            time.sleep(0.5)
            st = status()
        t.check(st.get("status") == "succeeded", f"finished after the restart: {st}")
        for h in HOSTS:
            t.check(hook_log(procs, h) == seq("V1"),
                    f"{h}: every hook exactly once, in order: {hook_log(procs, h)}")
            t.check(installed(procs, h) == "V1", f"{h} has V1")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
