"""Chaos: the planner killed with SIGKILL at random moments, on a 3-broker
embedded cluster, while deployments run on real workers, with poison and
repeated messages on the topics it reads. Each deployment must end
succeeded, every hook must have run exactly once per host and step, no
kdeploy process may crash, and no consumer may get stuck (every deployment
ends in time).

  KD_CHAOS_DEPLOYMENTS=20 python3 tests/chaos/test_chaos_planner.py   (by hand)
ctest runs a short version (label chaos): 3 deployments, as many kills."""
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
HOOKS = ["BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"]


def start_planner(procs, bs, n):
    # A fixed instance id: the restarted planner takes the old one's place at once.
    return procs.planner(bs, "--instance-id", "planner-1", name=f"planner{n}")


def poison(bs, rnd):
    """Garbage and repeats on every topic, from another Kafka client
    (kafka-python): bytes that are no envelope, an envelope type header that
    lies, and a result for a deployment nobody knows, twice."""
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bs.split(","))
    for topic in map(kdtest.topic, kdtest.TOPICS):
        # Keyed by a host of the test sometimes, so a worker reads it too.
        key = rnd.choice([f"k{rnd.randrange(99)}", "web-01", "web-02"]).encode()
        p.send(topic, key=key, value=b"\x00\xffnot an envelope",
               headers=[("kdeploy-type", b"create")])
        p.send(topic, key=key, value=bytes(rnd.randrange(256) for _ in range(64)))
    p.flush()
    p.close()
    send = os.path.join(kdtest.TOOLS, "kd-test-send")
    for _ in range(2):
        subprocess.run([send, "--brokers", bs, "--topic", "results", "--key", "poison-0001",
                        "--deploy-id", "poison-0001", "--kind", "step_result", "--host", "web-01",
                        "--event", "Install"], capture_output=True, timeout=30)


def main():
    count = int(os.environ.get("KD_CHAOS_DEPLOYMENTS", "3"))
    seed = int(os.environ.get("KD_CHAOS_SEED", str(int(time.time()))))
    kdtest.require_embedded("a 3-broker embedded cluster")
    rnd = random.Random(seed)
    print(f"chaos: {count} deployments, seed {seed}")
    t = kdtest.Checks()
    procs = kdtest.Procs()
    kills = 0
    try:
        d = procs.dir
        path = os.path.join(d, "brokers")
        procs.start([KDEPLOY, "broker", "--brokers-file", path, "--partitions", "4",
                     "--broker-count", "3"], "broker")
        deadline = time.time() + 20
        while not (os.path.exists(path) and open(path).read().strip()) and time.time() < deadline:
            time.sleep(0.05)
        bs = open(path).read().strip()
        planner = start_planner(procs, bs, 0)
        for h in HOSTS:
            procs.worker(bs, h)
        prev = None
        for i in range(1, count + 1):
            rev = f"V{i}"
            sha = bundles.build(os.path.join(d, f"{rev}.tar.gz"), rev, sleep=0.1)
            spec = bundles.spec(os.path.join(d, f"{rev}.yaml"), "shop", "web", HOSTS,
                                "file://" + os.path.join(d, f"{rev}.tar.gz"), sha,
                                concurrency=rnd.choice([1, 2, 3]))
            out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec],
                                 capture_output=True, text=True, timeout=60)
            t.check(out.returncode == 0, f"{rev} submitted: {out.stderr}")
            deploy_id = out.stdout.strip()
            # The kill lands anywhere in the deployment (about 3 s long).
            time.sleep(rnd.uniform(0.0, 2.5))
            planner.send_signal(signal.SIGKILL)
            planner.wait()
            planner.kd_killed = True
            kills += 1
            poison(bs, rnd)
            time.sleep(rnd.uniform(0.0, 1.0))
            planner = start_planner(procs, bs, i)
            deadline = time.time() + 120
            st = status(bs, deploy_id)
            while time.time() < deadline and st.get("status") not in ("succeeded", "failed"):
                time.sleep(0.5)
                st = status(bs, deploy_id)
            t.check(st.get("status") == "succeeded", f"{rev} succeeded: {st.get('status')}")
            for h in HOSTS:
                lines = hook_lines(procs, h)
                ran = [x for x in lines if len(x) > 1 and x[1] == rev]
                t.check([x[0] for x in ran] == HOOKS,
                        f"{h}: each hook of {rev} exactly once, in order: {ran}")
                stops = [x for x in lines if x[0] == "ApplicationStop" and prev and x[1] == prev]
                t.check(len(stops) == (1 if prev else 0),
                        f"{h}: {prev}'s stop script ran once before {rev}: {stops}")
            prev = rev
        print(f"chaos: {kills} planner kills")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
