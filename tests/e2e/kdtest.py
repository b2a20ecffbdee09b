"""Helpers for end-to-end tests: start kdeploy processes on loopback and
always stop them, whatever the test does."""
import os
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("KD_BIN_DIR", "build/bin")
TOOLS = os.environ.get("KD_TEST_TOOLS", "build/tests")
TMP = os.environ.get("KD_TEST_TMP", "/tmp")


class Procs:
    """Processes started by a test; stop_all() ends every one of them."""

    def __init__(self):
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="e2e-", dir=TMP)
        # Signed by default, as in production: the planner signs with the
        # private key, workers and lbctl verify with the public one.
        self.signing_key = os.path.join(self.dir, "planner.key")
        self.verify_key = os.path.join(self.dir, "planner.pub")
        subprocess.run([os.path.join(BIN, "kdeploy"), "keygen", self.signing_key,
                        self.verify_key], check=True, capture_output=True, timeout=30)

    def verify_args(self):
        """The options that make a worker or lbctl verify the planner's key."""
        return ["--verify-key", self.verify_key]

    def start(self, args, name, own=True, **kw):
        """Starts a process; own=False for one that is not kdeploy's (its
        exit code on SIGTERM is its own business)."""
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        p.kd_name = name
        p.kd_log = log
        p.kd_own = own
        self.procs.append(p)
        return p

    def log_of(self, name):
        try:
            with open(os.path.join(self.dir, name + ".log"), "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, p, sig=signal.SIGTERM, timeout=15):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        p.kd_log.close()
        return p.returncode

    def stop_all(self):
        """Stops every process; returns {name: exit code} of those that did
        not exit cleanly on SIGTERM (a crash, or a sanitizer's report)."""
        bad = {}
        for p in reversed(self.procs):
            rc = self.stop(p)
            if rc not in (0, None) and p.kd_own and not getattr(p, "kd_killed", False):
                bad[p.kd_name] = rc
        self.procs = []
        if os.environ.get("KD_E2E_SHOW_EXITS"):
            print("exit codes:", bad or "all clean", file=sys.stderr)
        return bad

    def stop_all_checked(self, checks):
        """stop_all(), counting a kdeploy process that did not exit cleanly
        (a crash, a leak report) as a failed check."""
        bad = self.stop_all()
        checks.check(not bad, f"every kdeploy process exited cleanly on SIGTERM: {bad}")

    def planner(self, bs, *args, name="planner"):
        return self.start([os.path.join(BIN, "kdeploy-planner"), "--brokers", bs,
                           "--signing-key", self.signing_key] + list(args), name)

    def worker(self, bs, host, *extra, name=None):
        """A worker for host in the tests' layout: <dir>/<host>/root and
        prefix, its hooks told KD_HOST, KD_PREFIX and
        HOOK_LOG=<dir>/<host>/hooks.log; extra options follow."""
        base = os.path.join(self.dir, host)
        os.makedirs(os.path.join(base, "prefix"), exist_ok=True)
        return self.start([os.path.join(BIN, "kdeploy-worker"), "--brokers", bs,
                           "--host-id", host, "--root", os.path.join(base, "root"),
                           "--install-prefix", os.path.join(base, "prefix"),
                           "--verify-key", self.verify_key, "--env", "KD_HOST=" + host,
                           "--env", "KD_PREFIX=" + os.path.join(base, "prefix"),
                           "--env", "HOOK_LOG=" + os.path.join(base, "hooks.log")] + list(extra),
                          name or host)

    def broker(self, partitions=6):
        path = os.path.join(self.dir, "brokers")
        self.start([os.path.join(BIN, "kdeploy"), "broker", "--brokers-file", path,
                    "--partitions", str(partitions)], "broker")
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    line = f.read().strip()
                if line:
                    return line
            time.sleep(0.05)
        raise RuntimeError("broker did not start:\n" + self.log_of("broker"))


class Checks:
    """Counts checks; prints 'N passed, N failed' at the end."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("CHECK failed:", what, file=sys.stderr)

    def summary(self):
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
