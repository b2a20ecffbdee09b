"""The worker's trust boundary, attacked with real deployments: nothing a
hook user does, and nothing anyone without the planner's key writes to the
steps topic, makes the root worker act outside what it owns.

1. A `runas: nobody` hook replaces a directory the permissions made its own
   with a symlink to a root-only directory: the next Install is refused,
   naming it, and nothing is written there.
2. The same hook appends a command to the cached copy of a 0777 stop script:
   the cache gives it no write access, and the next ApplicationStop (root)
   runs the script as shipped.
3. A misspelt config key, or no verify key at all: the worker and lbctl
   refuse to start.
4. Steps sent unsigned, signed by another key, or signed but expired do
   nothing; a signed step replayed after the host lost its journal and its
   expiry passed does nothing.
5. A worker killed with SIGKILL in the middle of a hook: when it starts
   again it ends the orphaned hook before it reports the step, and the
   rollback's hooks never overlap it."""
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402

HOST = "web-01"
KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")
SEND = os.path.join(kdtest.TOOLS, "kd-test-send")

LOG_LINE = 'echo "{ev} {rev} $JDCLOUD_CODEDEPLOY_OPERATION $(date +%s.%N)" >> "$HOOK_LOG"\n'


def add(tar, name, text, mode=0o755):
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def build(path, app_files, scripts, appspec):
    """A bundle: app_files and scripts are {name: (text, mode)}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, (text, mode) in {**app_files, **scripts}.items():
            add(tar, name, text, mode)
        add(tar, "appspec.yml", appspec, 0o644)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def hooks_yaml(hooks):
    out = "hooks:\n"
    for ev, scripts in hooks.items():
        out += f"  {ev}:\n"
        for loc, runas in scripts:
            out += f"    - location: {loc}\n      timeout: 120\n"
            if runas:
                out += f"      runas: {runas}\n"
    return out


def log_script(ev, rev, extra=""):
    return "#!/bin/sh\n" + LOG_LINE.format(ev=ev, rev=rev) + extra


def create(bs, spec, wait=True):
    args = [KDEPLOY, "--brokers", bs, "create", "-f", spec, "--wait", "--timeout", "180"]
    if not wait:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = subprocess.run(args, capture_output=True, text=True, timeout=240)
    lines = out.stdout.splitlines()
    return out.returncode, (lines[0] if lines else ""), out.stderr


def hook_lines(procs):
    path = os.path.join(procs.dir, HOST, "hooks.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f.read().splitlines()]


wait_for = kdtest.wait_for


# ---- 1 and 2: a hook user attacks the next deployment ----

ATTACK = """#!/bin/sh
# As the hook user: make root run a command of ours at the next
# ApplicationStop, and steer root's next Install outside the prefix.
if echo 'echo PWNED >> "$HOOK_LOG"' >> "$(dirname "$0")/stop.sh" 2>/dev/null; then
  echo "append ok" >> "$ATTACK_LOG"
else
  echo "append refused" >> "$ATTACK_LOG"
fi
rm -rf "$KD_PREFIX/opt/shop/www/data" && ln -s "$SECRET" "$KD_PREFIX/opt/shop/www/data" &&
  echo "symlink planted" >> "$ATTACK_LOG"
"""


def shop_bundle(d, rev, attack):
    scripts = {"scripts/stop.sh": (log_script("ApplicationStop", rev), 0o777),
               "scripts/start.sh": (log_script("ApplicationStart", rev), 0o755)}
    start = [("scripts/start.sh", None)]
    if attack:
        scripts["scripts/attack.sh"] = (ATTACK, 0o755)
        start.append(("scripts/attack.sh", "nobody"))
    spec = ("version: 0.0\nos: linux\nfiles:\n  - source: app\n    destination: /opt/shop\n"
            "permissions:\n  - object: /opt/shop\n    owner: nobody\n" +
            hooks_yaml({"ApplicationStop": [("scripts/stop.sh", None)],
                        "ApplicationStart": start}))
    path = os.path.join(d, f"shop-{rev}.tar.gz")
    sha = build(path, {"app/www/data/index.html": (rev + "\n", 0o644)}, scripts, spec)
    return bundles.spec(os.path.join(d, f"shop-{rev}.yaml"), "shop", "web", [HOST],
                        "file://" + path, sha)


def attack_hook_user(t, procs, bs):
    d = procs.dir
    secret = os.path.join(d, "secret")
    rc, _, err = create(bs, shop_bundle(d, "V1", attack=True))
    t.check(rc == 0, f"V1 with the attacking hook deployed: {err[-1500:]}")
    with open(os.path.join(d, "attack.log")) as f:
        attack = f.read()
    t.check("append refused" in attack, f"the hook user cannot write a cached script: {attack}")
    t.check("symlink planted" in attack, f"the hook user planted its symlink: {attack}")
    rc, id2, err = create(bs, shop_bundle(d, "V2", attack=False))
    t.check(rc != 0, "V2's Install is refused")
    lines = hook_lines(procs)
    t.check(["ApplicationStop", "V1"] == (lines[-1][:2] if lines else None),
            f"V1's stop script ran as shipped, last: {lines[-3:]}")
    t.check(not any(line[0] == "PWNED" for line in lines), f"no command of the hook user ran as "
                                                           f"root: {lines}")
    st = subprocess.run([KDEPLOY, "--brokers", bs, "status", id2], capture_output=True,
                        text=True, timeout=60)
    want = os.path.join(d, HOST, "prefix", "opt", "shop", "www", "data")
    t.check(want in st.stdout and "symlink" in st.stdout,
            f"the failure names the symlink: {st.stdout[-1500:]}")
    t.check(os.listdir(secret) == ["keep.txt"], f"nothing written through the symlink: "
                                                f"{os.listdir(secret)}")
    t.check(os.stat(secret).st_mode & 0o7777 == 0o700, "the target's mode is unchanged")
    with open(os.path.join(secret, "keep.txt")) as f:
        t.check(f.read() == "root's\n", "the target's file is unchanged")


# ---- 3: config typos and a missing verify key ----

def refused_to_start(t, args, want):
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    t.check(out.returncode == 2 and want in out.stderr,
            f"{os.path.basename(args[0])} refused to start ({want}): rc {out.returncode} "
            f"{out.stderr}")


def attack_config(t, procs, bs):
    d = procs.dir
    cfg = os.path.join(d, "typo.yml")
    with open(cfg, "w") as f:
        f.write(f"brokers: {bs}\nhost_id: web-09\nroot: {d}/web-09\nverify_kye: {procs.verify_key}\n")
    worker = os.path.join(kdtest.BIN, "kdeploy-worker")
    lbctl = os.path.join(kdtest.BIN, "kdeploy-lbctl")
    refused_to_start(t, [worker, "--config", cfg],
                     f"{cfg}:4: unknown key 'verify_kye' (did you mean 'verify_key'?)")
    refused_to_start(t, [worker, "--brokers", bs, "--host-id", "web-09", "--root",
                         os.path.join(d, "web-09"), "--verify-kye", procs.verify_key],
                     "unknown option '--verify-kye' (did you mean '--verify-key'?)")
    refused_to_start(t, [worker, "--brokers", bs, "--host-id", "web-09", "--root",
                         os.path.join(d, "web-09")], "no verify key")
    with open(cfg, "w") as f:
        f.write(f"brokers: {bs}\ndriver: command\ncommand: /bin/true\nverify_kye: x\n")
    refused_to_start(t, [lbctl, "--config", cfg], "(did you mean 'verify_key'?)")
    refused_to_start(t, [lbctl, "--brokers", bs, "--driver", "command", "--command",
                         "/bin/true", "--state-dir", os.path.join(d, "lb")], "no verify key")
    # A planner with a misspelt signing key would sign nothing.
    planner = os.path.join(kdtest.BIN, "kdeploy-planner")
    with open(cfg, "w") as f:
        f.write(f"brokers: {bs}\nsigning_kye: {procs.signing_key}\n")
    refused_to_start(t, [planner, "--config", cfg],
                     f"{cfg}:2: unknown key 'signing_kye' (did you mean 'signing_key'?)")
    refused_to_start(t, [planner, "--brokers", bs, "--signing-kye", procs.signing_key],
                     "unknown option '--signing-kye' (did you mean '--signing-key'?)")


# ---- 4: forged, expired and replayed steps ----

def sig_bundle(d):
    path = os.path.join(d, "sig.tar.gz")
    spec = ("version: 0.0\nos: linux\n" +
            hooks_yaml({"ApplicationStart": [("scripts/start.sh", None)]}))
    sha = build(path, {}, {"scripts/start.sh": (log_script("ApplicationStart", "SIG"), 0o755)},
                spec)
    return bundles.spec(os.path.join(d, "sig.yaml"), "sig", "web", [HOST], "file://" + path, sha)


def send_start(bs, rev_id, deploy_id, key=None, expires_ms=None):
    args = [SEND, "--brokers", bs, "--topic", "steps", "--key", HOST, "--host", HOST,
            "--deploy-id", deploy_id, "--event", "ApplicationStart", "--application", "sig",
            "--group", "web", "--revision-deploy-id", rev_id]
    if key:
        args += ["--signing-key", key]
    if expires_ms is not None:
        args += ["--expires-ms", str(expires_ms)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return out.returncode == 0


def sig_runs(procs):
    return sum(1 for line in hook_lines(procs) if line[:2] == ["ApplicationStart", "SIG"])


def attack_steps(t, procs, bs, worker):
    d = procs.dir
    rc, rev_id, err = create(bs, sig_bundle(d))
    t.check(rc == 0, f"the sig revision deployed: {err[-1500:]}")
    base = sig_runs(procs)
    other_key, other_pub = os.path.join(d, "other.key"), os.path.join(d, "other.pub")
    subprocess.run([KDEPLOY, "keygen", other_key, other_pub], check=True, capture_output=True)
    now = int(time.time() * 1000)
    t.check(send_start(bs, rev_id, str(uuid.uuid4())), "sent unsigned")
    t.check(send_start(bs, rev_id, str(uuid.uuid4()), key=other_key), "sent with another key")
    t.check(send_start(bs, rev_id, str(uuid.uuid4()), key=procs.signing_key,
                       expires_ms=now - 1000), "sent expired")
    # The control: a fresh signed step runs, so the three above had their chance.
    replayed = str(uuid.uuid4())
    expires = int(time.time() * 1000) + 4000
    t.check(send_start(bs, rev_id, replayed, key=procs.signing_key, expires_ms=expires),
            "sent fresh")
    t.check(wait_for(lambda: sig_runs(procs) == base + 1), "the fresh signed step ran")
    time.sleep(1)
    t.check(sig_runs(procs) == base + 1,
            f"unsigned, forged and expired steps ran nothing: {sig_runs(procs) - base} runs")
    log = procs.log_of(HOST)
    t.check("signature" in log and "expired" in log, "the worker says why it skipped them")
    # The host loses its journal; the same signed step comes again later.
    procs.stop(worker)
    shutil.rmtree(os.path.join(d, HOST, "root", "journal"))
    worker = procs.worker(bs, HOST, "--env", "ATTACK_LOG=" + os.path.join(d, "attack.log"),
                          "--env", "SECRET=" + os.path.join(d, "secret"), name=HOST + "-2")
    while time.time() * 1000 < expires + 200:
        time.sleep(0.1)
    t.check(send_start(bs, rev_id, replayed, key=procs.signing_key, expires_ms=expires),
            "replayed")
    t.check(wait_for(lambda: "expired" in procs.log_of(HOST + "-2"), 30),
            "the restarted worker saw the replay and refused it as expired")
    t.check(sig_runs(procs) == base + 1, "the replayed step ran nothing")
    return worker


# ---- 4b: batch-signed steps, tampered with ----

def planner_steps(bs):
    """The steps for HOST on the steps topic, as kafka-python reads them."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bs, consumer_timeout_ms=5000,
                      api_version_auto_timeout_ms=10000)
    tps = [TopicPartition(kdtest.topic("steps"), i)
           for i in c.partitions_for_topic(kdtest.topic("steps")) or ()]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    found = [m for m in c if m.key == HOST.encode()]
    c.close()
    return found


def attack_batch_proofs(t, procs, bs, name):
    """The planner signs its steps in batches: each carries the batch's
    signature and its proof, not a signature of its own. Copies with a
    changed proof or value are refused by the worker, before decoding."""
    from kafka import KafkaProducer
    batched = [m for m in planner_steps(bs) if "kdeploy-batch-proof" in dict(m.headers)]
    t.check(len(batched) >= 4, f"the planner's steps are batch-signed: {len(batched)}")
    if not batched:
        return
    m = batched[-1]
    h = dict(m.headers)
    proof = h["kdeploy-batch-proof"]
    t.check(len(h.get("kdeploy-batch-signature", b"")) == 64 and "kdeploy-signature" not in h
            and len(proof) >= 8 and (len(proof) - 8) % 32 == 0,
            f"batch headers: signature of 64 bytes, proof of 8 + 32k: {len(proof)}")
    index = int.from_bytes(proof[:4], "big")

    def forged(value, new_proof):
        return [(k, new_proof if k == "kdeploy-batch-proof" else v) for k, v in m.headers], value

    flipped = bytearray(m.value)
    flipped[len(flipped) // 2] ^= 1
    attempts = [
        forged(m.value, proof[:-1] + bytes([proof[-1] ^ 1])),  # a path hash, or the count
        forged(bytes(flipped), proof),                          # the command itself
        forged(m.value, proof[:4] + index.to_bytes(4, "big") + proof[8:]),  # index >= count
        forged(m.value, proof[:5]),                             # malformed
    ]
    base = sig_runs(procs)
    before = procs.log_of(name).count("batch")
    p = KafkaProducer(bootstrap_servers=bs, api_version_auto_timeout_ms=10000)
    for headers, value in attempts:
        p.send(kdtest.topic("steps"), key=m.key, value=value, headers=headers,
               partition=m.partition).get(timeout=10)
    p.close()
    t.check(wait_for(lambda: procs.log_of(name).count("batch") >= before + len(attempts), 30),
            "the worker refused each tampered batch-signed step: "
            + procs.log_of(name)[-1500:])
    t.check(sig_runs(procs) == base, "tampered steps ran nothing")


# ---- 5: a worker killed mid-hook ----

SLOW = """#!/bin/sh
i=0
while [ $i -lt 150 ]; do
  echo "tick S2 UPDATE $(date +%s.%N)" >> "$HOOK_LOG"
  i=$((i + 1))
  sleep 0.2
done
"""


def slow_bundle(d, rev, slow_start):
    events = ["ApplicationStop", "BeforeInstall", "ApplicationStart", "ValidateService"]
    scripts = {f"scripts/{ev}.sh": (log_script(ev, rev), 0o755) for ev in events}
    if slow_start:
        scripts["scripts/ApplicationStart.sh"] = (SLOW, 0o755)
    spec = "version: 0.0\nos: linux\n" + hooks_yaml({ev: [(f"scripts/{ev}.sh", None)]
                                                     for ev in events})
    path = os.path.join(d, f"slow-{rev}.tar.gz")
    sha = build(path, {}, scripts, spec)
    return bundles.spec(os.path.join(d, f"slow-{rev}.yaml"), "slow", "web", [HOST],
                        "file://" + path, sha, auto_rollback=True)


def attack_kill_mid_hook(t, procs, bs, worker):
    d = procs.dir
    rc, _, err = create(bs, slow_bundle(d, "S1", False))
    t.check(rc == 0, f"S1 deployed: {err[-1500:]}")
    run = create(bs, slow_bundle(d, "S2", True), wait=False)
    t.check(wait_for(lambda: any(line[0] == "tick" for line in hook_lines(procs)), 90),
            "S2's slow ApplicationStart started")
    worker.kd_killed = True
    procs.stop(worker, sig=signal.SIGKILL)
    time.sleep(1)
    killed_at = time.time()
    ticks = [line for line in hook_lines(procs) if line[0] == "tick"]
    t.check(float(ticks[-1][3]) > killed_at - 0.6, "the orphaned hook still runs after SIGKILL")
    procs.worker(bs, HOST, name=HOST + "-3")
    out, errtext = run.communicate(timeout=240)
    t.check(run.returncode != 0 and "rollback succeeded" in errtext,
            f"S2 failed and was rolled back: {errtext[-1500:]}")
    lines = hook_lines(procs)
    ticks = [float(line[3]) for line in lines if line[0] == "tick"]
    rollback = [float(line[3]) for line in lines if line[2:3] == ["ROLLBACK"]]
    t.check(len(rollback) >= 4, f"the rollback ran its hooks: {lines[-8:]}")
    t.check(ticks and rollback and max(ticks) < min(rollback),
            f"no rollback hook overlapped the orphan: last tick {max(ticks or [0])}, first "
            f"rollback hook {min(rollback or [0])}")
    t.check(len(ticks) < 150, f"the orphan was ended, not left to finish: {len(ticks)} ticks")
    t.check("outlived the previous worker" in procs.log_of(HOST + "-3"),
            "the restarted worker says it ended the orphan")


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        d = procs.dir
        # Hook users must reach their scripts and the prefix (as on a host).
        os.chmod(d, 0o755)
        os.makedirs(os.path.join(d, "secret"), mode=0o700)
        with open(os.path.join(d, "secret", "keep.txt"), "w") as f:
            f.write("root's\n")
        os.chmod(os.path.join(d, "secret"), 0o700)
        with open(os.path.join(d, "attack.log"), "w") as f:
            pass
        os.chmod(os.path.join(d, "attack.log"), 0o666)
        bs = procs.broker(partitions=2)
        procs.planner(bs)
        worker = procs.worker(bs, HOST, "--env", "ATTACK_LOG=" + os.path.join(d, "attack.log"),
                              "--env", "SECRET=" + os.path.join(d, "secret"))
        attack_config(t, procs, bs)
        attack_hook_user(t, procs, bs)
        worker = attack_steps(t, procs, bs, worker)
        attack_batch_proofs(t, procs, bs, HOST + "-2")
        attack_kill_mid_hook(t, procs, bs, worker)
    finally:
        procs.stop_all_checked(t)
        if t.failed:
            for name in ["planner", HOST, HOST + "-2", HOST + "-3"]:
                print(f"--- {name} log ---\n{procs.log_of(name)[-3000:]}", file=sys.stderr)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
