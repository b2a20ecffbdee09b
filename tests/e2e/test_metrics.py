"""Prometheus metrics of the worker, lbctl and the dashboard, read by
Prometheus' own text parser (python3-prometheus-client) after a real
deployment behind a load balancer (lbctl's command driver): steps and hook
durations by lifecycle event, download bytes and time, journal replays,
traffic changes, and the deployment counts the planner will export too
(counted by `kdeploy dashboard` from the topics)."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
import obstest  # noqa: E402

HOSTS = ["web-01", "web-02"]
OBS = os.path.join(os.environ.get("KD_SOURCE_DIR", "."), "deploy", "observability")
# Exported only once it happens (a failed publish, a webhook delivery).
NOT_YET = {"kdeploy_publish_errors_total", "kdeploy_notify_deliveries_total"}


def check_deploy_files(t, exported):
    """The alert rules and the Grafana dashboard parse, and name only
    metrics that exist."""
    import yaml
    with open(os.path.join(OBS, "kdeploy-alerts.yml")) as f:
        rules = yaml.safe_load(f)
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    t.check(len(exprs) >= 8 and all(r.get("alert") and r.get("labels", {}).get("severity")
                                    for g in rules["groups"] for r in g["rules"]),
            "every alert rule has a name, an expression and a severity")
    with open(os.path.join(OBS, "grafana-kdeploy.json")) as f:
        dash = json.load(f)
    exprs += [tg["expr"] for p in dash["panels"] for tg in p.get("targets", [])]
    names = set(re.findall(r"kdeploy_[a-z_]+", " ".join(exprs)))
    known = exported | NOT_YET
    unknown = sorted(n for n in names if n not in known)
    t.check(not unknown, f"alerts and dashboard name only real metrics: {unknown}")
    t.check(len(names) >= 20, f"they cover the metrics: {len(names)} names")
KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")


def lb_command(d):
    path = os.path.join(d, "lb.sh")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\necho "$@" >> {d}/lb.log\nexit 0\n')
    os.chmod(path, 0o755)
    return path


def read_events(url, last_id, count):
    """The first count events of the stream as (id, data), sent Last-Event-ID."""
    import urllib.request
    req = urllib.request.Request(url, headers={"Last-Event-ID": last_id} if last_id else {})
    out, ev_id = [], None
    with urllib.request.urlopen(req, timeout=10) as r:
        while len(out) < count:
            line = r.readline().decode().rstrip("\n")
            if line.startswith("id: "):
                ev_id = line[4:]
            elif line.startswith("data: "):
                out.append((ev_id, line[6:]))
                ev_id = None
    return out


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        d = procs.dir
        bs = procs.broker(partitions=2)
        wport, lport, pport = obstest.free_port(), obstest.free_port(), obstest.free_port()
        procs.planner(bs, "--metrics-listen", f"127.0.0.1:{pport}")
        purl = f"http://127.0.0.1:{pport}/metrics"
        obstest.wait_http(purl, procs, "planner")
        obstest.worker(procs, bs, HOSTS, "--metrics-listen", f"127.0.0.1:{wport}",
                       name="worker")
        procs.start([os.path.join(kdtest.BIN, "kdeploy-lbctl"), "--brokers", bs,
                     "--driver", "command", "--command", lb_command(d),
                     "--state-dir", os.path.join(d, "lbctl"),
                     "--metrics-listen", f"127.0.0.1:{lport}"] + procs.verify_args(), "lbctl")
        dport, dmport = obstest.free_port(), obstest.free_port()
        procs.start([KDEPLOY, "dashboard", "--brokers", bs, "--listen", f"127.0.0.1:{dport}",
                     "--metrics-listen", f"127.0.0.1:{dmport}"], "dashboard")
        durl = f"http://127.0.0.1:{dmport}/metrics"
        obstest.wait_http(durl, procs, "dashboard")
        obstest.wait_synced(f"http://127.0.0.1:{dport}/events")
        wurl = f"http://127.0.0.1:{wport}/metrics"
        lurl = f"http://127.0.0.1:{lport}/metrics"
        obstest.wait_http(wurl, procs, "worker")
        obstest.wait_http(lurl, procs, "lbctl")

        # Before any deployment: the families are there, at zero.
        w, ctype, types = obstest.scrape(wurl)
        t.check(ctype.startswith("text/plain; version=0.0.4"), f"content type {ctype}")
        t.check(obstest.value(w, "kdeploy_worker_hosts") == 2, "the worker serves 2 hosts")
        t.check(obstest.value(w, "kdeploy_worker_journal_replays_total", kind="result") == 0,
                "no replay yet")
        t.check(types.get("kdeploy_worker_hook_duration_seconds") == "histogram",
                f"hook durations are a histogram: {types}")

        bundle = os.path.join(d, "v1.tar.gz")
        sha = bundles.build(bundle, "V1", sleep=0.2)
        spec = bundles.spec(os.path.join(d, "v1.yaml"), "shop", "web", HOSTS,
                            "file://" + bundle, sha, concurrency=1,
                            extra="load_balancer: {server_group: web}\n")
        out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec, "--wait",
                              "--timeout", "60"], capture_output=True, text=True, timeout=90)
        t.check(out.returncode == 0, f"the deployment succeeded: {out.stdout}{out.stderr}")

        # The same step delivered twice: the second is answered from the journal.
        send = [os.path.join(kdtest.TOOLS, "kd-test-send"), "--brokers", bs, "--key", "web-01",
                "--host", "web-01", "--deploy-id", "replayed-0001", "--event", "BeforeInstall",
                "--signing-key", procs.signing_key,
                "--expires-ms", str(int((time.time() + 600) * 1000))]
        for _ in range(2):
            r = subprocess.run(send, capture_output=True, text=True, timeout=30)
            t.check(r.returncode == 0, "kd-test-send: " + r.stderr)
        deadline = time.time() + 20
        while time.time() < deadline:
            w, _, _ = obstest.scrape(wurl)
            if obstest.value(w, "kdeploy_worker_journal_replays_total", kind="result") == 1:
                break
            time.sleep(0.2)

        v = lambda name, **kw: obstest.value(w, name, **kw)  # noqa: E731
        t.check(v("kdeploy_worker_journal_replays_total", kind="result") == 1,
                "one repeated delivery was answered from the journal")
        t.check(v("kdeploy_worker_steps_total", event="Install", status="succeeded") == 2,
                "Install succeeded on both hosts")
        t.check(v("kdeploy_worker_steps_total", event="ApplicationStop", status="skipped") == 2,
                "a first deployment skips ApplicationStop")
        t.check(v("kdeploy_worker_hook_duration_seconds_count", event="ValidateService",
                  status="succeeded") == 2, "ValidateService's hook durations, one per host")
        hook_sum = v("kdeploy_worker_hook_duration_seconds_sum", event="ValidateService",
                     status="succeeded") or 0
        t.check(hook_sum >= 0.4, f"each ValidateService hook slept 0.2 s: sum {hook_sum}")
        t.check(v("kdeploy_worker_hook_duration_seconds_bucket", event="ValidateService",
                  status="succeeded", le="+Inf") == 2, "the +Inf bucket counts every hook")
        t.check(v("kdeploy_worker_hook_duration_seconds_count", event="Install",
                  status="succeeded") is None, "Install runs no hook")
        t.check(v("kdeploy_worker_downloads_total", result="succeeded") == 2,
                "one download per host")
        size = os.path.getsize(bundle)
        t.check(v("kdeploy_worker_download_bytes_total") == 2 * size,
                f"download bytes: {v('kdeploy_worker_download_bytes_total')} == 2 x {size}")
        t.check(v("kdeploy_worker_download_duration_seconds_count", result="succeeded") == 2,
                "download time observed twice")
        t.check(v("kdeploy_worker_steps_in_progress") == 0, "nothing runs now")
        t.check(v("kdeploy_build_info", component="worker", version="0.1.0") == 1, "build info")

        lb, _, _ = obstest.scrape(lurl)
        for action in ("block", "allow"):
            n = obstest.value(lb, "kdeploy_lbctl_changes_total", action=action,
                              status="succeeded", driver="command")
            t.check(n == 2, f"lbctl: 2 {action} changes, got {n}")
            n = obstest.value(lb, "kdeploy_lbctl_change_duration_seconds_count", action=action)
            t.check(n == 2, f"lbctl: 2 {action} durations, got {n}")
        t.check(obstest.value(lb, "kdeploy_lbctl_changes_total", action="swap",
                              status="succeeded", driver="command") == 0, "no swap")
        t.check(obstest.value(lb, "kdeploy_lbctl_messages_skipped_total") == 0, "none skipped")

        # Deployment metrics, counted from the topics' live events.
        dm, _, types = obstest.scrape(durl)
        g = lambda name, **kw: obstest.value(dm, name, **kw)  # noqa: E731
        t.check(g("kdeploy_deployments_accepted_total", operation="update") == 1, "1 accepted")
        t.check(g("kdeploy_deployments_finished_total", status="succeeded") == 1, "1 succeeded")
        t.check(g("kdeploy_deployments_finished_total", status="failed") == 0, "none failed")
        t.check(g("kdeploy_deployment_duration_seconds_count", status="succeeded") == 1,
                "its duration observed")
        for ev in ("Install", "BlockTraffic", "AllowTraffic", "ValidateService"):
            t.check(g("kdeploy_steps_total", event=ev, status="succeeded") == 2,
                    f"{ev} succeeded on 2 hosts: {g('kdeploy_steps_total', event=ev, status='succeeded')}")
        t.check(g("kdeploy_step_duration_seconds_count", event="ValidateService") == 2,
                "ValidateService durations")
        t.check(types.get("kdeploy_hosts_in_flight") is None,
                "the dashboard exports no planner-only gauge")

        # The planner's own: the same counts, from the events it published and
        # the results it took, and its gauges.
        deadline = time.time() + 5
        while time.time() < deadline:
            pm, _, ptypes = obstest.scrape(purl)
            if obstest.value(pm, "kdeploy_hosts_in_flight") == 0:
                break
            time.sleep(0.2)
        pv = lambda name, **kw: obstest.value(pm, name, **kw)  # noqa: E731
        t.check(pv("kdeploy_deployments_accepted_total", operation="update") == 1,
                "planner: 1 accepted")
        t.check(pv("kdeploy_deployments_finished_total", status="succeeded") == 1,
                "planner: 1 succeeded")
        t.check(pv("kdeploy_steps_total", event="Install", status="succeeded") == 2,
                "planner: Install succeeded on 2 hosts")
        t.check(pv("kdeploy_step_duration_seconds_count", event="ValidateService") == 2,
                "planner: ValidateService durations")
        t.check(ptypes.get("kdeploy_hosts_in_flight") == "gauge" and
                pv("kdeploy_hosts_in_flight") == 0, "planner: no host in flight now")
        t.check(pv("kdeploy_deployments_active") == 0, "planner: no deployment active")
        t.check(pv("kdeploy_notify_queue") == 0, "planner: no webhook waiting")
        t.check(ptypes.get("kdeploy_consumer_lag_messages") == "gauge" and
                pv("kdeploy_consumer_lag_messages", topic="results") == 0,
                "planner: every result read (consumer lag 0)")

        # Every family, with samples or not yet (a counter's name ends in _total).
        exported = set()
        for u in (wurl, lurl, durl, purl):
            samples, _, fams = obstest.scrape(u)
            exported |= {name for (name, _) in samples}
            exported |= {n + ("_total" if k == "counter" else "") for n, k in fams.items()}
        check_deploy_files(t, exported)

        # The event stream resumes after an id of its own, starts over after another's.
        ev_url = f"http://127.0.0.1:{dport}/events"
        first = read_events(ev_url, None, 3)
        t.check(len(first) == 3 and first[0][1].startswith('{"seq":1,'), f"from the start: {first}")
        again = read_events(ev_url, first[1][0], 1)
        t.check(again and again[0][0] == first[2][0], f"resumes after {first[1][0]}: {again}")
        other = read_events(ev_url, "1." + first[1][0].split(".")[1], 2)
        t.check(other and other[0] == (None, '{"type":"reset"}') and
                other[1][1].startswith('{"seq":1,'), f"another process's id starts over: {other}")

        # A bad listen address is refused at start, naming the option.
        bad = subprocess.run([os.path.join(kdtest.BIN, "kdeploy-worker"), "--brokers", bs,
                              "--host-id", "x", "--root", os.path.join(d, "x"),
                              "--metrics-listen", "127.0.0.1"] + procs.verify_args(),
                             capture_output=True,
                             text=True, timeout=30)
        t.check(bad.returncode == 2 and "--metrics-listen" in bad.stderr,
                f"a bad listen address is refused: {bad.returncode} {bad.stderr}")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
