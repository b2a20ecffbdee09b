#!/usr/bin/env python3
"""kdeploy against Ansible: the same rolling deployment of a no-op bundle
(4 hooks and one file) over 20 hosts, 10 % at a time, measured in the same
run. kdeploy: one worker process serving the 20 hosts, on the embedded
broker. Ansible: ansible-playbook with the local connection, serial 10 %,
each host unpacking the bundle, running the 4 hooks and copying the file.
Prints medians of --runs and how many times faster kdeploy is.

Run from a Release build (needs ansible-core: apt-get install ansible-core):
  python3 tests/bench/bench_ansible.py --build build-rel"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

import fleetbench


def playbook(path, bundle, work, hook_log, percent):
    hooks = "".join(
        f"""    - name: {ev}
      ansible.builtin.command: "{{{{ d }}}}/bundle/scripts/{ev}.sh"
      environment: {{LIFECYCLE_EVENT: {ev}, HOOK_LOG: "{hook_log}"}}
""" for ev in fleetbench.HOOKS)
    text = f"""- hosts: fleet
  gather_facts: false
  serial: "{percent}%"
  vars:
    d: "{work}/{{{{ inventory_hostname }}}}"
  tasks:
    - name: directories
      ansible.builtin.file: {{path: "{{{{ item }}}}", state: directory}}
      loop: ["{{{{ d }}}}/bundle", "{{{{ d }}}}/prefix/opt/shop"]
    - name: unpack
      ansible.builtin.unarchive: {{src: "{bundle}", dest: "{{{{ d }}}}/bundle", remote_src: true}}
{hooks}    - name: install the file
      ansible.builtin.copy: {{src: "{{{{ d }}}}/bundle/app/VERSION", dest: "{{{{ d }}}}/prefix/opt/shop/VERSION", remote_src: true}}
"""
    with open(path, "w") as f:
        f.write(text)


def run_ansible(base, bundle, hosts, percent):
    work = os.path.join(base, "ansible")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    inventory = os.path.join(base, "inventory.ini")
    with open(inventory, "w") as f:
        f.write("[fleet]\n" + "".join(f"{h} ansible_connection=local "
                                      f"ansible_python_interpreter={sys.executable}\n"
                                      for h in hosts))
    book = os.path.join(base, "deploy.yml")
    playbook(book, bundle, work, os.path.join(base, "ansible-hooks.log"), percent)
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_RETRY_FILES_ENABLED="False",
               ANSIBLE_LOCAL_TEMP=os.path.join(base, "ansible-tmp"),
               ANSIBLE_HOME=os.path.join(base, "ansible-home"))
    t0 = time.perf_counter()
    out = subprocess.run(["ansible-playbook", "-i", inventory, book], env=env,
                         capture_output=True, text=True, timeout=1800)
    took = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError("ansible-playbook failed:\n" + out.stdout[-3000:] + out.stderr[-2000:])
    shutil.rmtree(work, ignore_errors=True)
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--percent", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="runs first, not counted")
    ap.add_argument("--base", help="another build, measured in the same run")
    args = ap.parse_args()
    if not shutil.which("ansible-playbook"):
        print("bench_ansible: ansible-playbook is not installed: apt-get install ansible-core",
              file=sys.stderr)
        return 2
    hosts = [f"a{i:03d}" for i in range(args.hosts)]
    builds = [args.build] + ([args.base] if args.base else [])
    kd = {b: [] for b in builds}
    ans = []
    for run in range(args.runs + args.warmup):
        counted = run >= args.warmup  # the first warm caches and connections
        for b in builds:
            # Each build its own broker and worker, one after the other, so
            # neither runs while the other is measured.
            fleet = fleetbench.Fleet(b, hosts, processes=1)
            try:
                bundle, sha = fleet.bundle("noop")
                fleet.deploy(f"warm{run}", bundle, sha, args.percent)
                t = fleet.deploy(f"ans{run}", bundle, sha, args.percent)
                if counted:
                    kd[b].append(t)
                if b == builds[-1]:
                    a = run_ansible(fleet.dir, bundle, hosts, args.percent)
                    if counted:
                        ans.append(a)
            finally:
                fleet.close()
    a = statistics.median(ans)
    print(f"{args.hosts} hosts, {args.percent}% at a time, medians of {args.runs} runs")
    print(f"  ansible  {a:8.2f} s")
    for b in builds:
        k = statistics.median(kd[b])
        print(f"  kdeploy  {k:8.2f} s  ({b}): {a / k:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
