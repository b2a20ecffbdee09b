"""An independent Kafka client (kafka-python) against `kdeploy broker`:
it sees the six topics, produces to and consumes from each, and reads a
kdeploy envelope with the right key, partition and headers."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import kdtest  # noqa: E402

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.partitioner.default import murmur2  # noqa: E402

TOPICS = ["requests", "deployments", "steps", "traffic", "results", "hosts", "groups"]


def read_one(bs, topic, partition, offset):
    c = KafkaConsumer(bootstrap_servers=bs, consumer_timeout_ms=10000,
                      api_version_auto_timeout_ms=10000)
    tp = TopicPartition(topic, partition)
    c.assign([tp])
    c.seek(tp, offset)
    msg = next(iter(c), None)
    c.close()
    return msg


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=6)
        c = KafkaConsumer(bootstrap_servers=bs, api_version_auto_timeout_ms=10000)
        topics = c.topics()
        for name in TOPICS:
            t.check(kdtest.topic(name) in topics, f"topic {kdtest.topic(name)} listed: {topics}")
            if not kdtest.EXTERNAL:  # an external cluster may have made them its own way
                t.check(len(c.partitions_for_topic(kdtest.topic(name)) or ()) == 6,
                        f"{kdtest.topic(name)} has 6 partitions")
        c.close()

        # kafka-python produces to and consumes from every topic.
        p = KafkaProducer(bootstrap_servers=bs, api_version_auto_timeout_ms=10000)
        for name in TOPICS:
            md = p.send(kdtest.topic(name), key=b"interop", value=b"hello " + name.encode(),
                        headers=[("kdeploy-type", b"test")]).get(timeout=10)
            m = read_one(bs, kdtest.topic(name), md.partition, md.offset)
            t.check(m is not None and m.value == b"hello " + name.encode(),
                    f"round trip through {kdtest.topic(name)}")
        p.close()

        # A kdeploy envelope, as a kdeploy service writes it.
        deploy_id = "7d0f6a8e-5a1b-4c2d-9e3f-0a1b2c3d4e5f"
        out = subprocess.run([os.path.join(kdtest.TOOLS, "kd-test-send"), "--brokers", bs,
                              "--topic", "steps", "--key", "web-01", "--host", "web-01",
                              "--deploy-id", deploy_id, "--kind", "step",
                              "--event", "ApplicationStart"],
                             capture_output=True, text=True, timeout=60)
        t.check(out.returncode == 0, "kd-test-send: " + out.stderr)
        c = KafkaConsumer(bootstrap_servers=bs, consumer_timeout_ms=10000,
                          auto_offset_reset="earliest", api_version_auto_timeout_ms=10000)
        partitions = len(c.partitions_for_topic(kdtest.topic("steps")) or ()) or 6
        expected = (murmur2(b"web-01") & 0x7fffffff) % partitions
        tps = [TopicPartition(kdtest.topic("steps"), i) for i in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        found = [m for m in c if m.key == b"web-01"]
        c.close()
        t.check(len(found) == 1, f"one kdeploy step for web-01, found {len(found)}")
        if found:
            m = found[0]
            headers = dict(m.headers)
            t.check(m.partition == expected,
                    f"partition {m.partition} == Java/kafka-python murmur2 {expected}")
            t.check(headers.get("kdeploy-type") == b"step", f"type header {headers}")
            t.check(headers.get("kdeploy-deploy-id") == deploy_id.encode(),
                    f"deploy-id header {headers}")
            # The value is the protobuf envelope: field 2 (deploy_id) is in it.
            t.check(deploy_id.encode() in m.value, "envelope carries the deploy id")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
