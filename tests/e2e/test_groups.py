"""Deployment groups, defined once: `kdeploy group set NAME -f FILE` stores a
spec without its revision on the compacted groups topic; `group list` and
`group show` read it back (show prints a file `group set` takes again);
`kdeploy create --group NAME --revision URL --sha256 HEX` deploys it; a bad
group file is refused with file:line errors and did-you-mean hints; `group
delete` removes it."""
import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import hook_log, installed  # noqa: E402

HOSTS = ["web-01", "web-02", "web-03"]

GROUP = """application: shop
group: web
hosts: {labels: {role: web}}
deployment_config: HalfAtATime
auto_rollback: true
timeouts: {host: 60, deployment: 300}
"""

BAD = """application: shop
group: web
hots: [web-01]
concurency: 2
revision: {url: "http://x/y.tgz"}
"""


kd = functools.partial(kdtest.kd, timeout=90)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=2)
        d = procs.dir
        procs.planner(bs)
        for h in HOSTS:
            procs.worker(bs, h, "--label", "role=web")
        procs.worker(bs, "db-01", "--label", "role=db")

        out = kd(bs, "group", "set", "web", "-f", write(os.path.join(d, "web.yaml"), GROUP))
        t.check(out.returncode == 0 and "group web stored" in out.stdout,
                f"group set: {out.stdout} {out.stderr}")
        out = kd(bs, "group", "list")
        lines = out.stdout.splitlines()
        t.check(out.returncode == 0 and lines[0].split()[0] == "NAME" and
                lines[1].split()[:3] == ["web", "shop/web", "rolling"] and
                "HalfAtATime" in lines[1] and lines[-1] == "1 group",
                f"group list: {out.stdout} {out.stderr}")
        listed = json.loads(kd(bs, "group", "list", "--json").stdout or "[]")
        t.check(len(listed) == 1 and listed[0]["hosts"] == {"labels": {"role": "web"}},
                f"group list --json: {listed}")
        shown = kd(bs, "group", "show", "web")
        t.check(shown.returncode == 0 and "deployment_config: HalfAtATime" in shown.stdout,
                f"group show: {shown.stdout} {shown.stderr}")
        # What show prints is a group file: stored again, it reads the same.
        kd(bs, "group", "set", "web2", "-f", write(os.path.join(d, "web2.yaml"), shown.stdout))
        again = kd(bs, "group", "show", "web2")
        t.check(again.stdout.splitlines()[1:] == shown.stdout.splitlines()[1:],
                f"show's output round-trips: {again.stdout} {again.stderr}")

        # Errors: every one with file:line, keys with a hint; nothing stored.
        bad = write(os.path.join(d, "bad.yaml"), BAD)
        out = kd(bs, "group", "set", "bad", "-f", bad)
        t.check(out.returncode != 0, "a bad group file is refused")
        for want in (f"{bad}:3: hots: unknown key (did you mean hosts?)",
                     f"{bad}:4: concurency: unknown key (did you mean concurrency?)",
                     f"{bad}:5: revision: a group holds no revision",
                     f"{bad}:1: hosts: is required"):
            t.check(want in out.stderr, f"error '{want}' in: {out.stderr}")
        t.check("bad" not in kd(bs, "group", "list").stdout.split(), "the bad group not stored")
        out = kd(bs, "group", "sett", "x")
        t.check(out.returncode == 2 and "did you mean 'set'" in out.stderr, f"verbs: {out.stderr}")

        # create --group: the group's spec with a revision, checked as any.
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1")
        url = "file://" + os.path.join(d, "v1.tar.gz")
        dry = kd(bs, "create", "--group", "web", "--revision", url, "--sha256", sha, "--dry-run")
        t.check(dry.returncode == 0 and "batch 1: web-01" in dry.stdout and
                "batch 2: web-02" in dry.stdout,
                f"HalfAtATime of 3 hosts: 1 a batch: {dry.stdout} {dry.stderr}")
        out = kd(bs, "create", "--group", "web", "--revision", url, "--sha256", sha,
                 "--label", "1.0", "--wait", "--timeout", "120", timeout=150)
        t.check(out.returncode == 0, f"create --group deployed: {out.stderr[-600:]}")
        dep = out.stdout.split()[0] if out.stdout.split() else ""
        st = json.loads(kd(bs, "status", dep, "--json").stdout or "{}")
        t.check(sorted(h["host"] for h in st.get("hosts", [])) == HOSTS,
                f"the group's hosts, selected by label: {st.get('hosts')}")
        t.check(all(installed(procs, h) == "V1" for h in HOSTS), "V1 installed on the group")
        t.check(hook_log(procs, "db-01") == [], "db-01 untouched")
        out = kd(bs, "create", "--group", "web", "--revision", url)
        t.check(out.returncode != 0 and "revision.sha256" in out.stderr,
                f"a revision without checksum refused: {out.stderr}")
        out = kd(bs, "create", "--group", "nope", "--revision", url, "--sha256", sha)
        t.check(out.returncode != 0 and "no deployment group named nope" in out.stderr,
                f"an unknown group: {out.stderr}")

        out = kd(bs, "group", "delete", "web2")
        t.check(out.returncode == 0 and "group web2 deleted" in out.stdout, f"delete: {out.stderr}")
        out = kd(bs, "group", "show", "web2")
        t.check(out.returncode != 0 and "no deployment group named web2" in out.stderr,
                f"deleted: {out.stderr}")
        t.check(kd(bs, "group", "list").stdout.splitlines()[-1] == "1 group", "one group left")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
