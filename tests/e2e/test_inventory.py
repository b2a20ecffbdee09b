"""Inventory: workers announce labels on the hosts topic; `kdeploy hosts`
lists and filters them; a spec selects hosts by labels; a host no worker
ever announced is refused at once (issue 14, problem 4) unless the spec
allows unknown hosts, and then the deployment waits for it; hooks are told
the install prefix, the host id and its labels (problem 5); a bundle
missing a hook script fails at DownloadBundle, before the running
application is stopped (problem 6)."""
import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import KDEPLOY, create, hook_log  # noqa: E402

WEB = ["web-01", "web-02"]
DB = "db-01"

ENV_HOOK = """#!/bin/sh
{
  echo "prefix=$KDEPLOY_INSTALL_PREFIX"
  echo "host=$KDEPLOY_HOST_ID"
  echo "labels=$KDEPLOY_HOST_LABELS"
  echo "role=$KDEPLOY_LABEL_ROLE"
  echo "zone=$KDEPLOY_LABEL_ZONE"
} > "$KDEPLOY_INSTALL_PREFIX/hook-env.txt"
test -f "$KDEPLOY_INSTALL_PREFIX/opt/shop/VERSION"
"""


def env_bundle(path):
    """A bundle whose AfterInstall hook writes what it was told to a file
    under the install prefix."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        bundles._add(tar, "scripts/env.sh", ENV_HOOK)
        bundles._add(tar, "app/VERSION", "ENV\n", 0o644)
        bundles._add(tar, "appspec.yml",
                     "version: 0.0\nos: linux\nfiles:\n  - source: app\n"
                     "    destination: /opt/shop\nhooks:\n  AfterInstall:\n"
                     "    - location: scripts/env.sh\n      timeout: 30\n", 0o644)
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def broken_bundle(path, bundle_dir):
    """V2 whose appspec names an AfterInstall script the bundle lacks; the
    same tree unpacked in bundle_dir, for `kdeploy validate`."""
    spec = ("version: 0.0\nos: linux\nfiles:\n  - source: app\n    destination: /opt/shop\n"
            "hooks:\n  ApplicationStop:\n    - location: scripts/ApplicationStop.sh\n"
            "  AfterInstall:\n    - location: scripts/missing.sh\n")
    stop = bundles.HOOK.format(rev="V2", extra="")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        bundles._add(tar, "scripts/ApplicationStop.sh", stop)
        bundles._add(tar, "app/VERSION", "V2\n", 0o644)
        bundles._add(tar, "appspec.yml", spec, 0o644)
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    os.makedirs(os.path.join(bundle_dir, "scripts"), exist_ok=True)
    os.makedirs(os.path.join(bundle_dir, "app"), exist_ok=True)
    for name, text in (("appspec.yml", spec), ("scripts/ApplicationStop.sh", stop),
                       ("app/VERSION", "V2\n")):
        with open(os.path.join(bundle_dir, name), "w") as f:
            f.write(text)
    return hashlib.sha256(data).hexdigest()


kd = functools.partial(kdtest.kd, timeout=60)


def spec_text(app, hosts, url, sha, extra=""):
    return (f"application: {app}\ngroup: web\nhosts: {hosts}\n"
            f"revision:\n  url: {url}\n  sha256: {sha}\n"
            f"timeouts: {{host: 60, deployment: 300}}\n{extra}")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_hosts(bs, want, t):
    """Waits until `kdeploy hosts` lists the want hosts (only for the
    listing checks: the planner itself reads the hosts topic to its end)."""
    deadline = time.time() + 30
    hosts = []
    while time.time() < deadline:
        out = kd(bs, "hosts", "--json")
        hosts = json.loads(out.stdout) if out.returncode == 0 and out.stdout else []
        if all(any(h["host"] == w for h in hosts) for w in want):
            return hosts
        time.sleep(0.2)
    t.check(False, f"hosts announced: {want} in {hosts}")
    return hosts


def check_listing(bs, t):
    hosts = wait_hosts(bs, WEB + [DB], t)
    by = {h["host"]: h for h in hosts}
    t.check(by.get("web-01", {}).get("labels") == {"role": "web", "zone": "a"},
            f"web-01's labels announced: {by.get('web-01')}")
    t.check(by.get(DB, {}).get("labels") == {"role": "db"}, f"db-01's labels: {by.get(DB)}")
    table = kd(bs, "hosts").stdout.splitlines()
    t.check(table and table[0].split()[:3] == ["HOST", "STATE", "LAST"], f"a header: {table[:1]}")
    t.check(table and table[-1] == "3 hosts", f"a count: {table[-1:]}")
    t.check(any("role=web,zone=a" in line for line in table), f"labels shown: {table}")
    web = kd(bs, "hosts", "--label", "role=web").stdout.splitlines()
    t.check([line.split()[0] for line in web[1:-1]] == WEB and web[-1] == "2 hosts",
            f"hosts --label role=web: {web}")
    one = kd(bs, "hosts", "--label", "role=web", "--label", "zone=b").stdout.splitlines()
    t.check([line.split()[0] for line in one[1:-1]] == ["web-02"] and one[-1] == "1 host",
            f"two labels, both must match: {one}")
    bad = kd(bs, "hosts", "--label", "role")
    t.check(bad.returncode == 2 and "KEY=VALUE" in bad.stderr, f"a bad filter: {bad.stderr}")


def check_selection(procs, bs, d, t):
    sha = env_bundle(os.path.join(d, "env.tar.gz"))
    url = "file://" + os.path.join(d, "env.tar.gz")
    spec = write(os.path.join(d, "labels.yaml"),
                 spec_text("shop", "{labels: {role: web}}", url, sha,
                           "deployment_config: AllAtOnce\n"))
    dry = kd(bs, "create", "-f", spec, "--dry-run")
    t.check(dry.returncode == 0 and "batch 1: web-01 web-02" in dry.stdout,
            f"--dry-run resolves the labels: {dry.stdout} {dry.stderr}")
    rc, dep, err = create(procs, bs, spec)
    t.check(rc == 0, f"deployed to the hosts labelled role=web: {err}")
    st = json.loads(kd(bs, "status", dep, "--json").stdout or "{}")
    t.check(sorted(h["host"] for h in st.get("hosts", [])) == WEB,
            f"the selection, recorded at acceptance: {st.get('hosts')}")
    t.check(not os.path.exists(os.path.join(procs.dir, DB, "prefix", "hook-env.txt")),
            "db-01 was not selected")
    # Problem 5: what the hooks were told.
    prefix = os.path.join(procs.dir, "web-01", "prefix")
    try:
        with open(os.path.join(prefix, "hook-env.txt")) as f:
            seen = dict(line.split("=", 1) for line in f.read().splitlines())
    except OSError as e:
        seen = {"error": str(e)}
    t.check(seen.get("prefix") == prefix, f"KDEPLOY_INSTALL_PREFIX: {seen}")
    t.check(seen.get("host") == "web-01", f"KDEPLOY_HOST_ID: {seen}")
    t.check(seen.get("labels") == "role=web,zone=a", f"KDEPLOY_HOST_LABELS: {seen}")
    t.check(seen.get("role") == "web" and seen.get("zone") == "a",
            f"KDEPLOY_LABEL_<KEY>: {seen}")
    none = write(os.path.join(d, "none.yaml"),
                 spec_text("api", "{labels: {role: cache}}", url, sha))
    out = kd(bs, "create", "-f", none, "--wait", "--timeout", "30")
    t.check(out.returncode != 0 and "role=cache" in out.stderr,
            f"no host with the labels: rejected naming them: {out.stderr}")


def check_unknown(procs, bs, d, t):
    sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1")
    url = "file://" + os.path.join(d, "v1.tar.gz")
    spec = write(os.path.join(d, "ghost.yaml"),
                 spec_text("ghosts", "[web-01, ghost-9]", url, sha))
    dry = kd(bs, "create", "-f", spec, "--dry-run")
    t.check(dry.returncode != 0 and "ghost-9" in dry.stderr,
            f"--dry-run names the unknown host: {dry.stderr}")
    t0 = time.time()
    out = kd(bs, "create", "-f", spec, "--wait", "--timeout", "60", timeout=90)
    took = time.time() - t0
    t.check(out.returncode != 0 and "ghost-9" in out.stderr and "never announced" in out.stderr,
            f"a host no worker announced: rejected, naming it: {out.stderr}")
    t.check(took < 20, f"rejected at once, not at the host timeout ({took:.1f} s)")
    t.check(hook_log(procs, "web-01") == [], "nothing ran on web-01")
    # allow_unknown_hosts: accepted; waits until the host's worker comes.
    late = write(os.path.join(d, "late.yaml"),
                 spec_text("late", "[late-01]", url, sha, "allow_unknown_hosts: true\n"))
    p = subprocess.Popen([KDEPLOY, "--brokers", bs, "create", "-f", late, "--wait",
                          "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(4)
        t.check(p.poll() is None, "allow_unknown_hosts: accepted, waiting for late-01")
        procs.worker(bs, "late-01")
        _, err = p.communicate(timeout=110)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    t.check(p.returncode == 0, f"late-01 came and was deployed to: {err}")
    t.check(len(hook_log(procs, "late-01")) == 4, f"late-01's hooks: {hook_log(procs, 'late-01')}")


def check_missing_script(procs, bs, d, t):
    bundle_dir = os.path.join(d, "broken")
    sha = broken_bundle(os.path.join(d, "v2.tar.gz"), bundle_dir)
    val = subprocess.run([KDEPLOY, "validate", bundle_dir], capture_output=True, text=True,
                         timeout=30)
    t.check(val.returncode != 0 and "scripts/missing.sh" in val.stderr,
            f"validate fails a bundle missing a hook script: {val.stderr}")
    before = hook_log(procs, DB)
    spec = write(os.path.join(d, "v2.yaml"),
                 spec_text("db", "[db-01]", "file://" + os.path.join(d, "v2.tar.gz"), sha))
    rc, dep, err = create(procs, bs, spec)
    t.check(rc != 0, "the deployment of a bundle missing a script failed")
    st = json.loads(kd(bs, "status", dep, "--json").stdout or "{}")
    hosts = st.get("hosts", [{}])
    t.check(hosts and "DownloadBundle" in json.dumps(hosts[0]) and
            "missing.sh" in json.dumps(hosts[0]),
            f"it failed at DownloadBundle, naming the script: {hosts}")
    t.check(hook_log(procs, DB) == before,
            f"the running V1 was never stopped: {hook_log(procs, DB)[len(before):]}")


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=3)
        d = procs.dir
        procs.planner(bs)
        procs.worker(bs, "web-01", "--label", "role=web", "--label", "zone=a")
        procs.worker(bs, "web-02", "--label", "role=web", "--label", "zone=b")
        # db-01 takes its labels from its config file.
        procs.worker(bs, DB, "--config", write(os.path.join(d, "db.yml"), "labels:\n  role: db\n"))
        check_listing(bs, t)
        check_selection(procs, bs, d, t)
        # db-01 runs V1, whose stop script logs: then V2 lacks a script.
        sha = bundles.build(os.path.join(d, "db1.tar.gz"), "V1")
        rc, _, err = create(procs, bs, write(
            os.path.join(d, "db1.yaml"),
            spec_text("db", "[db-01]", "file://" + os.path.join(d, "db1.tar.gz"), sha)))
        t.check(rc == 0, f"db-01 runs V1: {err}")
        check_missing_script(procs, bs, d, t)
        check_unknown(procs, bs, d, t)
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
