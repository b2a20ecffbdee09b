"""Chaos: the broker stops (SIGSTOP) in the middle of a deployment for longer
than a producer's message timeout (30 s), then resumes. Workers keep their
results in the journal and publish them when it is back, the planner waits
out the outage instead of exiting (deciding no host timeout while the broker
does not answer, though the outage is longer than the host timeout), and the
deployment ends succeeded with every hook run exactly once; no process exits.

  KD_CHAOS_PAUSE_S=120 python3 tests/chaos/test_chaos_broker_pause.py   (by hand)
ctest runs it with a 35 s outage (label chaos)."""
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from chaostest import hook_lines, status  # noqa: E402

HOSTS = ["web-01", "web-02"]
KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")
HOOKS = ["BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"]


def main():
    kdtest.require_embedded("stops the broker process (SIGSTOP)")
    pause = float(os.environ.get("KD_CHAOS_PAUSE_S", "35"))
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        d = procs.dir
        bs = procs.broker(partitions=2)
        broker = procs.procs[0]
        planner = procs.planner(bs, "--instance-id", "planner-1")
        workers = [procs.worker(bs, h) for h in HOSTS]
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1", sleep=1.0)
        # A host timeout shorter than the outage: the planner decides no
        # timeout while the brokers do not answer and restarts the hosts'
        # timers when they do, so the deployment rides the outage out.
        host_timeout = max(15, int(pause / 2))
        spec = os.path.join(d, "v1.yaml")
        with open(spec, "w") as f:
            f.write(f"application: shop\ngroup: web\nhosts: [{', '.join(HOSTS)}]\n"
                    f"revision:\n  url: file://{os.path.join(d, 'v1.tar.gz')}\n"
                    f"  sha256: {sha}\nconcurrency: 2\n"
                    f"timeouts: {{host: {host_timeout}, deployment: {int(pause) + 600}}}\n")
        out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec],
                             capture_output=True, text=True, timeout=60)
        t.check(out.returncode == 0, "submitted: " + out.stderr)
        deploy_id = out.stdout.strip()
        # Stop the broker while hooks run: their results cannot go out.
        deadline = time.time() + 60
        while time.time() < deadline and len(hook_lines(procs, HOSTS[0])) < 1:
            time.sleep(0.05)
        os.killpg(broker.pid, signal.SIGSTOP)
        time.sleep(pause)
        os.killpg(broker.pid, signal.SIGCONT)
        t.check(planner.poll() is None, "the planner waited out the outage")
        t.check(all(w.poll() is None for w in workers), "every worker waited out the outage")
        deadline = time.time() + 180
        st = status(bs, deploy_id)
        while time.time() < deadline and st.get("status") not in ("succeeded", "failed"):
            time.sleep(1)
            st = status(bs, deploy_id)
        t.check(st.get("status") == "succeeded", f"the deployment succeeded: {st.get('status')}")
        for h in HOSTS:
            ran = [x[0] for x in hook_lines(procs, h) if len(x) > 1 and x[1] == "V1"]
            t.check(ran == HOOKS, f"{h}: each hook exactly once, in order: {ran}")
        t.check(planner.poll() is None and all(w.poll() is None for w in workers),
                "no process exited")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
