"""Chaos on a 3-broker embedded cluster with two planners in one group:
partition leaders move (`kdeploy broker` SIGUSR1), a broker goes down and
comes back (SIGUSR2), one planner is killed with SIGKILL and restarted, and
a worker is killed in the middle of a hook and restarted. Every deployment
ends with the right outcome (succeeded; failed for the host whose hook was
cut short, which is reported, never run again), no hook runs twice, no
kdeploy process crashes, and no consumer is stuck (each ends in time).

  KD_CHAOS_DEPLOYMENTS=12 python3 tests/chaos/test_chaos_cluster.py   (by hand)
ctest runs 4 deployments (label chaos)."""
import os
import random
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from chaostest import hook_lines, status  # noqa: E402

HOSTS = ["web-01", "web-02", "web-03"]
KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")
EVENTS = ["leaders", "broker", "planner", "worker"]


def main():
    kdtest.require_embedded("a 3-broker embedded cluster and its test controls")
    count = int(os.environ.get("KD_CHAOS_DEPLOYMENTS", "4"))
    seed = int(os.environ.get("KD_CHAOS_SEED", str(int(time.time()))))
    rnd = random.Random(seed)
    print(f"chaos cluster: {count} deployments, seed {seed}")
    t = kdtest.Checks()
    procs = kdtest.Procs()
    done = {e: 0 for e in EVENTS}
    try:
        d = procs.dir
        path = os.path.join(d, "brokers")
        broker = procs.start([KDEPLOY, "broker", "--brokers-file", path, "--partitions", "4",
                              "--broker-count", "3"], "broker")
        deadline = time.time() + 20
        while not (os.path.exists(path) and open(path).read().strip()) and time.time() < deadline:
            time.sleep(0.05)
        bs = open(path).read().strip()
        planners = {n: procs.planner(bs, "--instance-id", n, name=f"{n}-0") for n in ("pa", "pb")}
        workers = {h: procs.worker(bs, h) for h in HOSTS}
        time.sleep(2)
        for i in range(1, count + 1):
            rev = f"V{i}"
            # The events in turn, so a short run sees each of them.
            event = EVENTS[(i - 1) % len(EVENTS)] if i <= len(EVENTS) else rnd.choice(EVENTS)
            sha = bundles.build(os.path.join(d, f"{rev}.tar.gz"), rev, sleep=0.3)
            spec = bundles.spec(os.path.join(d, f"{rev}.yaml"), "shop", "web", HOSTS,
                                "file://" + os.path.join(d, f"{rev}.tar.gz"), sha,
                                concurrency=3)
            out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec],
                                 capture_output=True, text=True, timeout=60)
            t.check(out.returncode == 0, f"{rev} submitted: {out.stderr}")
            deploy_id = out.stdout.strip()
            victim = rnd.choice(HOSTS)
            if event == "worker":
                # Mid-hook: once the victim's hook of this revision has started.
                deadline = time.time() + 30
                while time.time() < deadline and not any(
                        len(x) > 1 and x[1] == rev for x in hook_lines(procs, victim)):
                    time.sleep(0.02)
                time.sleep(0.1)
                w = workers[victim]
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()
                w.kd_killed = True
                workers[victim] = procs.worker(bs, victim, name=f"{victim}-{i}")
            else:
                time.sleep(rnd.uniform(0.3, 1.5))
                if event == "leaders":
                    os.kill(broker.pid, signal.SIGUSR1)
                elif event == "broker":
                    os.kill(broker.pid, signal.SIGUSR2)
                    time.sleep(3)
                    os.kill(broker.pid, signal.SIGUSR2)
                else:
                    name = rnd.choice(list(planners))
                    p = planners[name]
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    p.kd_killed = True
                    time.sleep(rnd.uniform(0, 1))
                    planners[name] = procs.planner(bs, "--instance-id", name, name=f"{name}-{i}")
            done[event] += 1
            deadline = time.time() + 150
            st = status(bs, deploy_id)
            while time.time() < deadline and st.get("status") not in (
                    "succeeded", "failed", "rollback succeeded", "rollback failed"):
                time.sleep(0.5)
                st = status(bs, deploy_id)
            if event == "worker":
                cut = [h for h in st.get("hosts", []) if h["host"] == victim]
                t.check(st.get("status") == "failed" and cut and cut[0]["status"] == "failed",
                        f"{rev}: failed on {victim}, whose hook was cut short: "
                        f"{st.get('status')} {cut}")
            else:
                t.check(st.get("status") == "succeeded",
                        f"{rev} succeeded through '{event}': {st.get('status')}")
            for h in HOSTS:
                ran = [x[0] for x in hook_lines(procs, h) if len(x) > 1 and x[1] == rev]
                t.check(len(ran) == len(set(ran)), f"{h}: no hook of {rev} ran twice: {ran}")
        print(f"chaos cluster: events {done}")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
