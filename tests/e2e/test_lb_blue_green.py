"""Blue-green behind a real HAProxy whose frontend routes through a map
(retries 0), with a client sending requests for the whole run: the first
deployment goes to blue; V2 goes to the idle green group and the service is
swapped to it; `kdeploy rollback` checks blue and swaps back. No request
fails; answers switch to V2 at the swap and back to V1 after the rollback."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import kdtest  # noqa: E402
import lbtest  # noqa: E402

BLUE = ["b1", "b2"]
GREEN = ["g1", "g2"]


def spec(d, name, sha, auto_rollback=False):
    path = os.path.join(d, name + ".yaml")
    with open(path, "w") as f:
        f.write(f"""application: shop
group: bg
strategy: blue_green
revision:
  url: file://{os.path.join(d, name + '.tar.gz')}
  sha256: {sha}
concurrency: "100%"
load_balancer: {{service: shop-svc}}
blue_green:
  blue:  {{server_group: blue,  hosts: [{', '.join(BLUE)}]}}
  green: {{server_group: green, hosts: [{', '.join(GREEN)}]}}
timeouts: {{host: 120, deployment: 600}}
auto_rollback: {'true' if auto_rollback else 'false'}
""")
    return path


def map_value(d):
    with open(os.path.join(d, "services.map")) as f:
        return dict(line.split() for line in f if line.strip()).get("shop-svc")


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    d = procs.dir
    try:
        bs = procs.broker(partitions=4)
        ports = {h: lbtest.free_port() for h in BLUE + GREEN}
        front = lbtest.free_port()
        with open(os.path.join(d, "services.map"), "w") as f:
            f.write("shop-svc blue\n")
        rule = f"use_backend %[str(shop-svc),map({d}/services.map,blue)]"
        cfg = lbtest.haproxy_config(d, {"fe": (front, rule)},
                                    {"blue": [(h, ports[h]) for h in BLUE],
                                     "green": [(h, ports[h]) for h in GREEN]})
        sock = lbtest.start_haproxy(procs, d, cfg)
        procs.planner(bs)
        procs.start([os.path.join(kdtest.BIN, "kdeploy-lbctl"), "--brokers", bs, "--driver",
                     "haproxy", "--haproxy-socket", sock, "--state-dir",
                     os.path.join(d, "lbctl")] + procs.verify_args(), "lbctl")
        for h in BLUE + GREEN:
            lbtest.start_worker(procs, bs, d, h, ports[h])

        sha = lbtest.sample_bundle(os.path.join(d, "v1.tar.gz"), "1.0")
        rc, id1, err = lbtest.deploy(bs, spec(d, "v1", sha))
        t.check(rc == 0, "V1 to blue: " + err[-2000:])
        t.check(map_value(d) == "blue", "the service points at blue")
        time.sleep(1.5)  # blue's health checks see the app up

        load = lbtest.Load(front)
        load.start()
        time.sleep(1)
        # A failed deploy to the idle group never touches traffic, so even
        # with auto_rollback there is nothing to roll back.
        sha = lbtest.sample_bundle(os.path.join(d, "bad.tar.gz"), "1.5", broken=True)
        rc, bad_id, err = lbtest.deploy(bs, spec(d, "bad", sha, auto_rollback=True))
        t.check(rc != 0 and "rolled back" not in err, "the broken release to green failed: "
                + err[-1000:])
        t.check(map_value(d) == "blue", "and the service still points at blue")
        listed = subprocess.run([os.path.join(kdtest.BIN, "kdeploy"), "--brokers", bs, "list",
                                 "--json"], capture_output=True, text=True, timeout=60).stdout
        t.check(bad_id not in [json.loads(x)["rollback_of"] for x in listed.splitlines()],
                "no rollback was started for it")
        sha = lbtest.sample_bundle(os.path.join(d, "v2.tar.gz"), "2.0")
        rc, id2, err = lbtest.deploy(bs, spec(d, "v2", sha))
        t.check(rc == 0, "V2 to green, then the swap: " + err[-2000:])
        t.check(map_value(d) == "green", "the map file follows the swap")
        time.sleep(1)
        out = subprocess.run([os.path.join(kdtest.BIN, "kdeploy"), "--brokers", bs, "rollback",
                              id2, "--wait", "--timeout", "120"],
                             capture_output=True, text=True, timeout=180)
        t.check(out.returncode == 0, "the rollback succeeded: " + out.stderr[-2000:])
        time.sleep(1)
        results = load.stop()
        t.check(map_value(d) == "blue", "the service points at blue again")
        t.check(len(results) > 100, f"the client kept asking ({len(results)} requests)")
        t.check(not lbtest.failures(results),
                f"no failed request: {lbtest.failures(results)[:5]}")
        t.check(lbtest.versions(results) == ["1.0", "2.0", "1.0"],
                f"1.0, then 2.0 at the swap, then 1.0 after the rollback: "
                f"{lbtest.versions(results)}")

        # Green's hosts were the only ones deployed to; the rollback only checked blue.
        st = json.loads(subprocess.run([os.path.join(kdtest.BIN, "kdeploy"), "--brokers", bs,
                                        "status", id2, "--json"], capture_output=True,
                                       text=True, timeout=60).stdout)
        t.check(sorted(h["host"] for h in st["hosts"]) == GREEN, f"V2 went to green: {st}")
        t.check(st["status"] == "rollback succeeded", f"V2 status: {st['status']}")
    finally:
        procs.stop_all_checked(t)
        lbtest.stop_apps(d, BLUE + GREEN)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
