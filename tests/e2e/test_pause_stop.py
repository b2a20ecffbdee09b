"""Operator controls, with a real planner and workers. Pause holds new hosts
until resume, but the host in the middle of its workflow finishes it while
paused; a second deployment of the same application/group is refused while
one is active. Stop, sent just after a host ran its old revision's stop
script, lets that host go on to install the new revision and run its
ApplicationStart and ValidateService, starts no other host, and ends the
deployment "stopped": every host is either untouched or runs the new
revision, never left with its application stopped (issue 14, problem 1).
Stop with rollback does the same, then rolls back the one host it changed."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import HOSTS, hook_log, installed, start_fleet  # noqa: E402


kd = kdtest.kd


def status(bs, deploy_id):
    out = kd(bs, "status", deploy_id, "--json")
    return json.loads(out.stdout) if out.returncode == 0 else {}


def host_phases(st):
    return {h["host"]: h["status"] for h in st.get("hosts", [])}


def ran(procs, host, event, rev):
    return any(line[:2] == [event, rev] for line in hook_log(procs, host))


wait_for = kdtest.wait_for


def check_no_host_left_half_way(t, procs, rev, before):
    """Each host ran rev's whole workflow, or none of it and still runs before."""
    for h in HOSTS:
        touched = any(line[1] == rev for line in hook_log(procs, h))
        if touched:
            t.check(ran(procs, h, "ApplicationStart", rev) and ran(procs, h, "ValidateService", rev)
                    and installed(procs, h) == rev,
                    f"{h} got {rev} and started it: {hook_log(procs, h)}, installed {installed(procs, h)}")
        else:
            t.check(installed(procs, h) == before, f"{h} untouched, still on {before}")


def pause_then_resume(t, procs, bs, spec):
    id1 = kd(bs, "create", "-f", spec).stdout.strip()
    t.check(wait_for(lambda: ran(procs, "web-01", "BeforeInstall", "V1")),
            "web-01 is in the middle of its workflow")
    out = kd(bs, "pause", id1, "--wait", "--timeout", "30")
    t.check(out.returncode == 0, "paused: " + out.stderr)
    st = status(bs, id1)
    t.check(st.get("status") == "paused" and st.get("paused") is True, f"status paused: {st}")
    started = [h for h, phase in host_phases(st).items() if phase != "pending"]
    t.check("running" in host_phases(st).values(),
            f"a host was in flight when the pause came: {host_phases(st)}")
    # The hosts in flight finish their whole workflow while paused...
    t.check(wait_for(lambda: all(ran(procs, h, "ValidateService", "V1") for h in started), 60),
            f"{started} finished V1 while paused: "
            f"{[hook_log(procs, h) for h in started]}")
    time.sleep(3)
    # ...and no other host starts.
    for h in HOSTS:
        if h not in started:
            t.check(hook_log(procs, h) == [], f"{h} not started while paused")
    st = status(bs, id1)
    t.check(st.get("status") == "paused", f"still paused once its hosts finished: {st.get('status')}")
    t.check(all(host_phases(st)[h] == "succeeded" for h in started),
            f"the paused hosts succeeded: {host_phases(st)}")

    other = kd(bs, "create", "-f", spec, "--wait", "--timeout", "30")
    t.check(other.returncode != 0 and "active deployment" in other.stderr,
            "a second deployment of shop/web is refused: " + other.stderr)

    out = kd(bs, "resume", id1, "--wait", "--timeout", "120")
    t.check(out.returncode == 0, "resumed and succeeded: " + out.stderr)
    t.check(status(bs, id1).get("status") == "succeeded", "succeeded after resume")
    t.check(all(installed(procs, h) == "V1" for h in HOSTS), "every host deployed")


def stop_mid_host(t, procs, bs, spec):
    id2 = kd(bs, "create", "-f", spec).stdout.strip()
    # web-01 has just stopped V1: its application is down until V2 starts.
    t.check(wait_for(lambda: ran(procs, "web-01", "ApplicationStop", "V1")),
            "web-01 ran V1's stop script")
    out = kd(bs, "stop", id2, "--reason", "e2e")
    t.check(out.returncode == 0, "stop sent: " + out.stderr)
    seen = set()

    def ended():
        seen.add(status(bs, id2).get("status"))
        return "stopped" in seen

    t.check(wait_for(ended, 90), f"status ends stopped: {seen}")
    t.check("stopping" in seen, f"status said stopping while web-01 finished: {seen}")
    st = status(bs, id2)
    t.check(host_phases(st) == {"web-01": "succeeded", "web-02": "pending", "web-03": "pending"},
            f"web-01 finished, the others never started: {host_phases(st)}")
    t.check(installed(procs, "web-01") == "V2", "web-01 runs V2")
    t.check([line[0] for line in hook_log(procs, "web-01") if line[1] == "V2"] ==
            ["BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"],
            f"web-01 ran V2's whole workflow after the stop: {hook_log(procs, 'web-01')}")
    check_no_host_left_half_way(t, procs, "V2", "V1")
    for h in ("web-02", "web-03"):
        t.check(not ran(procs, h, "ApplicationStop", "V1"), f"{h}'s application never stopped")
    later = kd(bs, "create", "-f", spec, "--dry-run")
    t.check(later.returncode == 0, "dry run still works")


def stop_with_rollback(t, procs, bs, spec):
    before = {h: installed(procs, h) for h in HOSTS}
    id3 = kd(bs, "create", "-f", spec).stdout.strip()
    t.check(wait_for(lambda: ran(procs, "web-01", "ApplicationStop", "V2")),
            "web-01 ran V2's stop script")
    out = subprocess.run([os.path.join(kdtest.TOOLS, "kd-test-send"), "--brokers", bs,
                          "--topic", "requests", "--key", id3, "--deploy-id", id3,
                          "--kind", "stop", "--rollback"], capture_output=True, text=True,
                         timeout=60)
    t.check(out.returncode == 0, "stop with rollback sent: " + out.stderr)
    t.check(wait_for(lambda: status(bs, id3).get("status") == "rollback succeeded", 120),
            f"stopped, then rolled back: {status(bs, id3).get('status')}")
    t.check([line for line in hook_log(procs, "web-01") if "V3" in line] ==
            [[ev, "V3", "UPDATE"] for ev in ("BeforeInstall", "AfterInstall", "ApplicationStart",
                                             "ValidateService")] + [["ApplicationStop", "V3", "ROLLBACK"]],
            f"web-01 finished V3, then stopped it for the rollback: {hook_log(procs, 'web-01')}")
    t.check(hook_log(procs, "web-01")[-4:] ==
            [[ev, "V2", "ROLLBACK"] for ev in ("BeforeInstall", "AfterInstall", "ApplicationStart",
                                               "ValidateService")],
            f"web-01 got V2 back: {hook_log(procs, 'web-01')[-4:]}")
    t.check(installed(procs, "web-01") == "V2", "web-01 runs V2 again")
    for h in ("web-02", "web-03"):
        t.check(not any("V3" in line for line in hook_log(procs, h)) and installed(procs, h) == before[h],
                f"{h} never touched by V3 or its rollback: {hook_log(procs, h)}")


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=4)
        start_fleet(procs, bs)
        d = procs.dir
        # Slow hooks: the controls arrive while a host is between two of them.
        sha = bundles.build(os.path.join(d, "v1.tar.gz"), "V1", sleep=1.5)
        spec = bundles.spec(os.path.join(d, "v1.yaml"), "shop", "web", HOSTS,
                            "file://" + os.path.join(d, "v1.tar.gz"), sha, concurrency=1)
        pause_then_resume(t, procs, bs, spec)

        sha = bundles.build(os.path.join(d, "v2.tar.gz"), "V2", sleep=1)
        spec = bundles.spec(os.path.join(d, "v2.yaml"), "shop", "web", HOSTS,
                            "file://" + os.path.join(d, "v2.tar.gz"), sha, concurrency=1)
        stop_mid_host(t, procs, bs, spec)

        sha = bundles.build(os.path.join(d, "v3.tar.gz"), "V3", sleep=1)
        spec = bundles.spec(os.path.join(d, "v3.yaml"), "shop", "web", HOSTS,
                            "file://" + os.path.join(d, "v3.tar.gz"), sha, concurrency=1)
        stop_with_rollback(t, procs, bs, spec)
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
