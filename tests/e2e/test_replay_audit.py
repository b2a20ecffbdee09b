"""Audit: `kdeploy replay` rebuilds a deployment with a failure and an auto
rollback from the topics alone, and agrees with the planner's record host
by host and step by step; its --json lines parse with any JSON parser; and
kafka-python, an independent client, finds every result of the deployment
on kdeploy.results by the kdeploy-deploy-id header."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import HOSTS, create, start_fleet  # noqa: E402

from kafka import KafkaConsumer  # noqa: E402

WORKFLOW = ["DownloadBundle", "ApplicationStop", "BeforeInstall", "Install", "AfterInstall",
            "ApplicationStart", "ValidateService"]
ROLLBACK = WORKFLOW[1:]


kd = kdtest.kd


def results_by_header(bs, deploy_id):
    c = KafkaConsumer(kdtest.topic("results"), bootstrap_servers=bs, auto_offset_reset="earliest",
                      consumer_timeout_ms=5000, api_version_auto_timeout_ms=10000)
    found = [dict(m.headers) for m in c
             if dict(m.headers).get("kdeploy-deploy-id") == deploy_id.encode()]
    c.close()
    return [h.get("kdeploy-type") for h in found]


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=4)
        start_fleet(procs, bs)
        d = procs.dir
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1")
        rc, id1, err = create(procs, bs, bundles.spec(
            os.path.join(d, "v1.yaml"), "shop", "web", HOSTS,
            "file://" + os.path.join(d, "v1.tar.gz"), sha, concurrency=3))
        t.check(rc == 0, "V1 deployed: " + err)
        sha = bundles.build(os.path.join(d, "v2.tar.gz"), "V2", fail_validate_on="web-02")
        rc, id2, err = create(procs, bs, bundles.spec(
            os.path.join(d, "v2.yaml"), "shop", "web", HOSTS,
            "file://" + os.path.join(d, "v2.tar.gz"), sha, concurrency=1, auto_rollback=True))
        t.check(rc != 0, "V2 failed")

        out = kd(bs, "replay", id2, "--json")
        t.check(out.returncode == 0, "replay ran: " + out.stderr)
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        t.check(len(lines) > 20, f"replay has the timeline ({len(lines)} lines)")
        for x in lines:
            t.check(all(k in x for k in ("deploy_id", "ts", "kind")), f"required keys: {x}")
        t.check([x["ts"] for x in lines] == sorted(x["ts"] for x in lines), "in time order")
        req = [x for x in lines if x["kind"] == "requested"]
        t.check(len(req) == 1 and "@" in req[0].get("requested_by", ""), f"who asked: {req}")
        rb = [x["rollback_deploy_id"] for x in lines if x["kind"] == "rollback_started"]
        t.check(len(rb) == 1, "the rollback that followed is named")
        rb_id = rb[0] if rb else ""
        rb_lines = [x for x in lines if x["deploy_id"] == rb_id]
        t.check(rb_lines and all(x.get("rollback_of") == id2 for x in rb_lines),
                "every rollback line says what it undid")

        # Host by host, step by step: replay against the planner's record.
        for dep, steps in ((id2, WORKFLOW), (rb_id, ROLLBACK)):
            rec = json.loads(kd(bs, "status", dep, "--json").stdout or "{}")
            for host in rec.get("hosts", []):
                h = host["host"]
                results = [x for x in lines if x["deploy_id"] == dep and
                           x["kind"] == "step_result" and x.get("host") == h]
                started = [x for x in lines if x["deploy_id"] == dep and
                           x["kind"] == "step" and x.get("host") == h]
                t.check([x["step"] for x in results] == [x["step"] for x in started],
                        f"{dep[:8]} {h}: a result for every step sent")
                if host["status"] == "pending":
                    t.check(not results, f"{h} untouched in replay too")
                    continue
                t.check([x["step"] for x in results] == steps[:len(results)],
                        f"{dep[:8]} {h}: steps in the seed's order: {[x['step'] for x in results]}")
                t.check(results and results[-1]["step"] == host["step"],
                        f"{dep[:8]} {h}: last step {host['step']} as the planner recorded")
                ok = all(x["status"] in ("succeeded", "skipped") for x in results)
                t.check(ok == (host["status"] == "succeeded"),
                        f"{dep[:8]} {h}: outcome {host['status']} agrees with the results")
                fin = [x for x in lines if x["deploy_id"] == dep and
                       x["kind"] == "host_finished" and x.get("host") == h]
                t.check(len(fin) == 1 and fin[0]["status"] == host["status"],
                        f"{dep[:8]} {h}: host_finished {fin} == {host['status']}")
        failed = [x for x in lines if x["deploy_id"] == id2 and x["kind"] == "step_result"
                  and x["status"] == "failed"]
        t.check(len(failed) == 1 and failed[0]["host"] == "web-02" and
                failed[0]["step"] == "ValidateService" and failed[0]["exit_code"] == 3 and
                "unhealthy" in failed[0].get("output_tail", ""),
                f"the failure with exit code and output: {failed}")

        # An independent client finds every result by header alone.
        types = results_by_header(bs, id2)
        replayed = [x for x in lines if x["deploy_id"] == id2 and x["kind"] == "step_result"]
        t.check(types.count(b"step_result") == len(replayed),
                f"kafka-python saw {types.count(b'step_result')} results, replay {len(replayed)}")
        again = kd(bs, "replay", id2, "--json")
        t.check(again.stdout == out.stdout,
                "a second replay prints the same lines in the same order")
        t.check(all(x.get("event_id") for x in lines), "every replayed event names its event id")
        text = kd(bs, "replay", id2)
        t.check(text.returncode == 0 and "web-02" in text.stdout, "text replay prints")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
