"""Rolling deployments end to end: the embedded broker, a planner and three
worker processes (each its own --root and --install-prefix).

V1 (AWS appspec), then V2 (JD appspec): V1's stop script runs first on each
host, the first deployment runs none. Then V3, whose ValidateService fails on
the second host, with concurrency 1 and auto rollback: the third host is never
touched, the first two end on V2 through a rollback with its own deploy id,
and every host's hooks ran in exactly the seed's order."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402

HOSTS = ["web-01", "web-02", "web-03"]
KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")


def start_fleet(procs, bs):
    procs.planner(bs)
    for h in HOSTS:
        procs.worker(bs, h)


def hook_log(procs, h):
    path = os.path.join(procs.dir, h, "hooks.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f.read().splitlines()]


def installed(procs, h):
    path = os.path.join(procs.dir, h, "prefix", "opt", "shop", "VERSION")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def create(procs, bs, spec_path):
    out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec_path, "--wait",
                          "--timeout", "120"],
                         capture_output=True, text=True, timeout=180)
    lines = out.stdout.splitlines()
    return out.returncode, (lines[0] if lines else ""), out.stderr


def seq(rev, op="UPDATE", stop=None):
    steps = []
    if stop:
        steps.append(["ApplicationStop", stop, op])
    for ev in ["BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"]:
        steps.append([ev, rev, op])
    return steps


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=4)
        start_fleet(procs, bs)
        d = procs.dir
        url = lambda name: "file://" + os.path.join(d, name)  # noqa: E731

        # V1, AWS appspec: the first deploy runs no stop script.
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1", fmt="aws")
        spec = bundles.spec(os.path.join(d, "v1.yaml"), "shop", "web", HOSTS, url("v1.tar.gz"),
                            sha, concurrency=2)
        rc, id1, err = create(procs, bs, spec)
        t.check(rc == 0, f"V1 deployment succeeded: {err}")
        t.check(len(id1) == 36, f"the deploy id is the first line: {id1!r}")
        for h in HOSTS:
            t.check(hook_log(procs, h) == seq("V1"), f"{h} V1 hooks: {hook_log(procs, h)}")
            t.check(installed(procs, h) == "V1", f"{h} has V1 installed")

        # V2, JD appspec: V1's stop script runs first.
        sha = bundles.build(os.path.join(d, "v2.tar.gz"), "V2", fmt="jd")
        spec = bundles.spec(os.path.join(d, "v2.yaml"), "shop", "web", HOSTS, url("v2.tar.gz"),
                            sha, concurrency="50%")
        rc, id2, err = create(procs, bs, spec)
        t.check(rc == 0, f"V2 deployment succeeded: {err}")
        for h in HOSTS:
            t.check(hook_log(procs, h) == seq("V1") + seq("V2", stop="V1"),
                    f"{h} V2 hooks: {hook_log(procs, h)}")
            t.check(installed(procs, h) == "V2", f"{h} has V2 installed")

        # V3 fails ValidateService on web-02: auto rollback of web-01 and web-02.
        sha = bundles.build(os.path.join(d, "v3.tar.gz"), "V3", fmt="aws",
                            fail_validate_on="web-02")
        spec = bundles.spec(os.path.join(d, "v3.yaml"), "shop", "web", HOSTS, url("v3.tar.gz"),
                            sha, concurrency=1, auto_rollback=True)
        rc, id3, err = create(procs, bs, spec)
        t.check(rc != 0, "V3 deployment reported as failed")
        t.check("rolled back as" in err and "rollback succeeded" in err,
                f"the CLI says the rollback succeeded: {err}")
        before = seq("V1") + seq("V2", stop="V1")
        v3 = seq("V3", stop="V2")
        back = seq("V2", op="ROLLBACK", stop="V3")
        t.check(hook_log(procs, "web-01") == before + v3 + back,
                f"web-01 V3 then rollback: {hook_log(procs, 'web-01')}")
        t.check(hook_log(procs, "web-02") == before + v3 + back,
                f"web-02 V3 (failed) then rollback: {hook_log(procs, 'web-02')}")
        t.check(hook_log(procs, "web-03") == before, "web-03 never touched by V3")
        for h in HOSTS:
            t.check(installed(procs, h) == "V2", f"{h} ends on V2: {installed(procs, h)}")

        # The rollback is its own deployment pointing back at V3's.
        out = subprocess.run([KDEPLOY, "--brokers", bs, "list", "--json"], capture_output=True,
                             text=True, timeout=60)
        import json
        deps = [json.loads(line) for line in out.stdout.splitlines()]
        rollbacks = [x for x in deps if x["rollback_of"] == id3]
        t.check(len(rollbacks) == 1, f"one rollback of {id3}: {deps}")
        if rollbacks:
            rb = rollbacks[0]
            t.check(rb["deploy_id"] not in (id1, id2, id3), "the rollback has a new id")
            t.check(rb["status"] == "rollback succeeded", f"rollback status {rb['status']}")
            t.check([x["host"] for x in rb["hosts"]] == ["web-01", "web-02"],
                    f"rollback hosts {rb['hosts']}")
        v3dep = [x for x in deps if x["deploy_id"] == id3]
        t.check(v3dep and v3dep[0]["status"] == "rollback succeeded",
                f"V3's status after its rollback: {v3dep}")
        st = subprocess.run([KDEPLOY, "--brokers", bs, "status", id3], capture_output=True,
                            text=True, timeout=60)
        t.check("web-02" in st.stdout and "ValidateService" in st.stdout,
                f"status names the failed host and step: {st.stdout}")
    finally:
        procs.stop_all_checked(t)
        for name in ["planner"] + HOSTS:
            log = procs.log_of(name)
            if "ERROR" in log.upper() and t.failed:
                print(f"--- {name} log ---\n{log[-3000:]}", file=sys.stderr)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
