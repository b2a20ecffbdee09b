"""Requests produced straight to the requests topic, past the CLI's checks,
as any client with write access could: the planner checks each one itself.
  - one host named twice: rejected (it used to loop through thousands of
    batches, flooding two topics and serving nothing else);
  - host ids with a newline or "../": rejected (they were accepted and
    printed raw);
and the planner stays up and goes on to accept a good request."""
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import kdtest  # noqa: E402

SEND = os.path.join(kdtest.TOOLS, "kd-test-send")


def send_create(bs, deploy_id, hosts):
    # A group of its own: no request waits on another's being active.
    out = subprocess.run([SEND, "--brokers", bs, "--topic", "requests", "--key", deploy_id,
                          "--deploy-id", deploy_id, "--kind", "create", "--hosts", hosts,
                          "--group", "g-" + deploy_id[:8]],
                         capture_output=True, text=True, timeout=60)
    return out.returncode == 0


def events_of(bs, deploy_id, want, timeout=30):
    """The kdeploy-type headers of deploy_id's events on the deployments
    topic, read until one of want is there (or timeout)."""
    from kafka import KafkaConsumer
    c = KafkaConsumer(kdtest.topic("deployments"), bootstrap_servers=bs,
                      auto_offset_reset="earliest", consumer_timeout_ms=2000,
                      api_version_auto_timeout_ms=10000)
    types = []
    deadline = time.time() + timeout
    try:
        while True:  # one pass at least
            for m in c:
                if m.key == deploy_id.encode():
                    types.append(dict(m.headers).get("kdeploy-type", b"").decode())
            if time.time() >= deadline or any(t in want for t in types):
                break
    finally:
        c.close()
    return types


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=2)
        planner = procs.planner(bs)
        # Two hosts that announce themselves (ok-000000, ok-000001) and
        # answer every step at once.
        procs.start([os.path.join(kdtest.BIN, "kdeploy-fleetsim"), "--brokers", bs,
                     "--count", "2", "--prefix", "ok-"], "fleetsim")
        deadline = time.time() + 60
        while "announced" not in procs.log_of("fleetsim") and time.time() < deadline:
            time.sleep(0.2)

        twice = str(uuid.uuid4())
        t.check(send_create(bs, twice, "ok-000000,ok-000000,ok-000001"), "sent: a host named twice")
        types = events_of(bs, twice, ("rejected", "accepted"))
        t.check(types[:1] == ["rejected"], f"a host named twice is rejected: {types[:5]}")
        time.sleep(2)
        types = events_of(bs, twice, (), timeout=0)
        t.check(len(types) <= 2, f"and nothing floods the topic: {len(types)} events")

        for bad in ("ok-000000\nFAKE succeeded,ok-000001", "../etc,ok-000001", "x" * 254):
            d = str(uuid.uuid4())
            t.check(send_create(bs, d, bad), f"sent: hosts {bad[:20]!r}")
            types = events_of(bs, d, ("rejected", "accepted"))
            t.check(types[:1] == ["rejected"], f"hosts {bad[:20]!r} are rejected: {types[:5]}")

        good = str(uuid.uuid4())
        t.check(send_create(bs, good, "ok-000000,ok-000001"), "sent: a good request")
        types = events_of(bs, good, ("rejected", "accepted"))
        t.check("accepted" in types, f"a good request is then accepted: {types[:5]}")
        t.check(planner.poll() is None, "the planner is still up")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
