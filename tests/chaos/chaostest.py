"""What the chaos tests share: reading the hooks' logs and a deployment's
status, in kdtest's layout."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import kdtest  # noqa: E402

KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")


def hook_lines(procs, host):
    """The lines of host's hooks.log, split: [event, revision, operation]."""
    path = os.path.join(procs.dir, host, "hooks.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f.read().splitlines()]


def status(bs, deploy_id):
    """`kdeploy status --json` of deploy_id, or {} when it cannot be read."""
    out = subprocess.run([KDEPLOY, "--brokers", bs, "status", deploy_id, "--json"],
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout else {}
