"""Shared parts of the fleet benchmarks (bench_fleet.py, bench_ansible.py):
a kdeploy fleet of real workers on the embedded broker, the no-op bundle
they deploy, and the per-host work that kdeploy and its baselines all do:
unpack the bundle, run its four hooks (BeforeInstall, AfterInstall,
ApplicationStart, ValidateService: a first deployment has nothing to stop),
and put its one file in place."""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import bundles  # noqa: E402
import kdtest  # noqa: E402

HOOKS = ["BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"]


def batches(hosts, percent):
    """The hosts in batches of percent % (at least one host), in order: how
    the planner's rolling deployment takes them."""
    size = max(1, len(hosts) * percent // 100)
    return [hosts[i:i + size] for i in range(0, len(hosts), size)]


class Fleet:
    """A broker, a signing planner and `processes` worker processes serving
    `hosts` between them, all stopped by close()."""

    def __init__(self, build, hosts, processes, partitions=6, interleave=False):
        """interleave: host i goes to process i % processes, so that a batch
        (consecutive hosts) spreads over the processes, as a batch of real
        hosts does; else each process takes a run of consecutive hosts."""
        kdtest.BIN = os.path.join(build, "bin")
        os.makedirs(kdtest.TMP, exist_ok=True)
        self.procs = kdtest.Procs()
        self.dir = self.procs.dir
        self.hosts = hosts
        self.hook_log = os.path.join(self.dir, "hooks.log")
        self.kd = os.path.join(kdtest.BIN, "kdeploy")
        try:
            self.bs = self.procs.broker(partitions=partitions)
            self.procs.planner(self.bs, "--log-level", "warn")
            per = -(-len(hosts) // processes)
            for p in range(processes):
                mine = hosts[p::processes] if interleave else hosts[p * per:(p + 1) * per]
                if not mine:
                    continue
                cmd = [os.path.join(kdtest.BIN, "kdeploy-worker"), "--brokers", self.bs,
                       "--root", os.path.join(self.dir, f"root{p}"),
                       "--install-prefix", os.path.join(self.dir, f"prefix{p}"),
                       "--env", "HOOK_LOG=" + self.hook_log,
                       "--log-level", "warn"] + self.procs.verify_args()
                for h in mine:
                    cmd += ["--host-id", h]
                self.procs.start(cmd, f"worker{p}")
            self.wait_announced()
        except Exception:
            self.close()
            raise

    def wait_announced(self, timeout=120):
        """Until the planner can see every host: `kdeploy hosts` lists them."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run([self.kd, "--brokers", self.bs, "hosts", "--json"],
                                 capture_output=True, text=True, timeout=120)
            try:
                listed = json.loads(out.stdout) if out.returncode == 0 else []
            except ValueError:
                listed = []
            seen = {h.get("host") for h in listed if h.get("alive")}
            if seen >= set(self.hosts):
                return
            time.sleep(0.5)
        raise RuntimeError("the workers did not announce every host")

    def bundle(self, name):
        """A no-op bundle (hooks append one line to a log) and its sha256."""
        path = os.path.join(self.dir, name + ".tar.gz")
        return path, bundles.build(path, name)

    def deploy(self, app, bundle, sha, percent):
        """One rolling deployment of every host, percent % at a time; its
        duration (s) from the planner's records, accepted to finished."""
        spec = bundles.spec(os.path.join(self.dir, app + ".yaml"), app, "web", self.hosts,
                            "file://" + bundle, sha, concurrency=f"{percent}%",
                            extra="file_exists: overwrite\n")
        t0 = time.perf_counter()
        out = subprocess.run([self.kd, "--brokers", self.bs, "create", "-f", spec, "--wait",
                              "--timeout", "900"], capture_output=True, text=True, timeout=1000)
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError("deployment failed: " + out.stderr[-3000:])
        deploy_id = out.stdout.split()[0]
        st = subprocess.run([self.kd, "--brokers", self.bs, "status", deploy_id, "--json"],
                            capture_output=True, text=True, timeout=120)
        try:
            d = json.loads(st.stdout)
            return (d["finished_ms"] - d["accepted_ms"]) / 1000.0
        except (ValueError, KeyError):
            # `status` reads the whole deployments topic and may hit its
            # deadline on a loaded machine: the CLI's own wall time, which
            # also counts publishing the request and following it, instead.
            print(f"  (status of {deploy_id} not read: {st.stderr.strip()[-200:]}; "
                  f"wall time of create --wait instead)", file=sys.stderr)
            return wall

    def close(self):
        self.procs.stop_all()
        shutil.rmtree(self.dir, ignore_errors=True)


def shell_script(bundle, hosts, percent, work_dir, hook_log):
    """A plain sh script doing each host's work, the hosts of a batch at
    once and the batches one after the other."""
    lines = ["#!/bin/sh", "set -e", f"export HOOK_LOG={hook_log}",
             "host() {",
             f'  d="{work_dir}/$1"; mkdir -p "$d/bundle" "$d/prefix/opt/shop"',
             f'  tar xzf {bundle} -C "$d/bundle"']
    for ev in HOOKS:
        lines.append(f'  LIFECYCLE_EVENT={ev} "$d/bundle/scripts/{ev}.sh"')
    lines += ['  cp "$d/bundle/app/VERSION" "$d/prefix/opt/shop/VERSION"', "}"]
    for batch in batches(hosts, percent):
        lines.append(" ".join(f"host {h} &" for h in batch) + " wait")
    return "\n".join(lines) + "\n"


def run_shell(bundle, hosts, percent, base):
    """The shell floor: seconds the script takes."""
    work = os.path.join(base, "shell")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    script = os.path.join(base, "floor.sh")
    with open(script, "w") as f:
        f.write(shell_script(bundle, hosts, percent, work, os.path.join(base, "shell-hooks.log")))
    t0 = time.perf_counter()
    subprocess.run(["sh", script], check=True)
    took = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    return took
