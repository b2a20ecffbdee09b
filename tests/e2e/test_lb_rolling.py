"""Rolling deployment behind a real HAProxy (retries 0) with a client sending
requests through it for the whole run: with the load balancer (13 steps per
host, lbctl draining each host before its app stops) no request fails and
afterwards every answer is the new version; the same app under the same
load without the load balancer does fail requests."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import kdtest  # noqa: E402
import lbtest  # noqa: E402
import bundles  # noqa: E402

HOSTS = ["web-01", "web-02", "web-03"]


def spec(d, name, version, sha, with_lb, auto_rollback=False):
    extra = "load_balancer: {server_group: web}\n" if with_lb else ""
    return bundles.spec(os.path.join(d, name + ".yaml"), "shop", "web", HOSTS,
                        "file://" + os.path.join(d, name + ".tar.gz"), sha, concurrency=1,
                        auto_rollback=auto_rollback, extra=extra)


def commands(bs, deploy_id):
    """The step and traffic commands sent for a deployment, from replay."""
    out = subprocess.run([os.path.join(kdtest.BIN, "kdeploy"), "--brokers", bs, "replay",
                          deploy_id, "--json"], capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    return [x for x in lines if x["kind"] in ("step", "traffic")]


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    d = procs.dir
    try:
        bs = procs.broker(partitions=4)
        ports = {h: lbtest.free_port() for h in HOSTS}
        front = lbtest.free_port()
        cfg = lbtest.haproxy_config(d, {"fe": (front, "default_backend web")},
                                    {"web": [(h, ports[h]) for h in HOSTS]}, check_inter="1s")
        sock = lbtest.start_haproxy(procs, d, cfg)
        procs.planner(bs)
        procs.start([os.path.join(kdtest.BIN, "kdeploy-lbctl"), "--brokers", bs, "--driver",
                     "haproxy", "--haproxy-socket", sock, "--state-dir",
                     os.path.join(d, "lbctl"), "--drain-timeout", "10", "--health-timeout",
                     "20"] + procs.verify_args(), "lbctl")
        for h in HOSTS:
            lbtest.start_worker(procs, bs, d, h, ports[h])

        sha = lbtest.sample_bundle(os.path.join(d, "v1.tar.gz"), "1.0")
        rc, _, err = lbtest.deploy(bs, spec(d, "v1", "1.0", sha, True))
        t.check(rc == 0, "V1 through the load balancer: " + err[-2000:])

        load = lbtest.Load(front)
        load.start()
        time.sleep(1)
        sha = lbtest.sample_bundle(os.path.join(d, "v2.tar.gz"), "2.0")
        rc, id2, err = lbtest.deploy(bs, spec(d, "v2", "2.0", sha, True))
        time.sleep(1)
        results = load.stop()
        t.check(rc == 0, "V2 through the load balancer: " + err[-2000:])
        t.check(len(results) > 100, f"the client kept asking ({len(results)} requests)")
        t.check(not lbtest.failures(results),
                f"no failed request with the load balancer: {lbtest.failures(results)[:5]}")
        t.check(lbtest.versions(results)[-1:] == ["2.0"] and
                all("2.0" in b for _, ok, b in results[-20:]),
                f"every answer afterwards is 2.0: {lbtest.versions(results)}")
        steps = commands(bs, id2)
        t.check(len(steps) == 13 * len(HOSTS), f"13 steps per host ({len(steps)})")

        # A broken release behind the load balancer: its host fails while out of
        # the pool, and the 12-step rollback brings it back; no request fails.
        load.start()
        time.sleep(1)
        sha = lbtest.sample_bundle(os.path.join(d, "bad.tar.gz"), "2.1", broken=True)
        rc, bad_id, err = lbtest.deploy(bs, spec(d, "bad", "2.1", sha, True, auto_rollback=True))
        time.sleep(1)
        results = load.stop()
        t.check(rc != 0 and "rollback succeeded" in err, "2.1 failed and was rolled back: "
                + err[-1500:])
        t.check(not lbtest.failures(results),
                f"no failed request through the failure and its rollback: "
                f"{lbtest.failures(results)[:5]}")
        t.check(all("2.0" in b for _, ok, b in results[-20:]), "2.0 serves again")
        rb = [x for x in commands(bs, bad_id) if x.get("rollback_of") == bad_id]
        t.check([x["step"] for x in rb] == [
            "BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic", "ApplicationStop",
            "BeforeInstall", "Install", "AfterInstall", "ApplicationStart", "ValidateService",
            "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic"],
            f"the seed's 12 rollback steps on the one host touched: {[x['step'] for x in rb]}")

        # The same app and load, without the load balancer: requests fail.
        load.start()
        time.sleep(1)
        sha = lbtest.sample_bundle(os.path.join(d, "v3.tar.gz"), "3.0")
        rc, _, err = lbtest.deploy(bs, spec(d, "v3", "3.0", sha, False))
        time.sleep(1)
        results = load.stop()
        t.check(rc == 0, "V3 without the load balancer: " + err[-2000:])
        print(f"without the load balancer: {len(lbtest.failures(results))} of {len(results)} "
              "requests failed", file=sys.stderr)
        t.check(len(lbtest.failures(results)) > 0,
                "without the load balancer some requests fail (the contrast)")
    finally:
        procs.stop_all_checked(t)
        lbtest.stop_apps(d, HOSTS)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
