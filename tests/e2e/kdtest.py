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

# KDEPLOY_TEST_BROKERS=host:9092 runs the tests against that Kafka cluster
# instead of an embedded broker per test. Each test process then works under
# its own topic prefix (which also namespaces consumer groups), set in the
# environment so that every kdeploy process it starts inherits it.
EXTERNAL = os.environ.get("KDEPLOY_TEST_BROKERS", "")
if EXTERNAL:
    os.environ["KDEPLOY_TOPIC_PREFIX"] = "kdtest.%d-%d." % (os.getpid(), int(time.time()))
PREFIX = os.environ.get("KDEPLOY_TOPIC_PREFIX", "kdeploy.")
# Every topic kdeploy uses, with the settings deploy/create-topics.sh gives them.
TOPICS = {"requests": {}, "deployments": {}, "steps": {}, "traffic": {}, "results": {},
          "hosts": {"cleanup.policy": "compact"}, "groups": {"cleanup.policy": "compact"}}
SKIPPED = 77  # ctest's SKIP_RETURN_CODE for these tests


def topic(name):
    """The full name of one of kdeploy's topics, e.g. topic("steps")."""
    return PREFIX + name


def require_embedded(why):
    """Ends a test that needs the embedded broker itself (its test controls,
    SIGSTOP, a 3-broker cluster) as skipped when running on an external one."""
    if EXTERNAL:
        print("skipped on an external cluster: " + why)
        sys.exit(SKIPPED)


def create_topics(bootstrap, partitions):
    """Creates this test's topics on an external cluster (replication from
    KDEPLOY_TEST_REPLICATION, default 1). A broker without the CreateTopics
    API (the embedded one, started by hand to try this mode) creates them on
    first use instead, with its own partition count."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import IncompatibleBrokerVersion

    replication = int(os.environ.get("KDEPLOY_TEST_REPLICATION", "1"))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kdtest")
    try:
        admin.create_topics([NewTopic(topic(t), partitions, replication, topic_configs=cfg)
                             for t, cfg in TOPICS.items()], timeout_ms=30000)
    except IncompatibleBrokerVersion:
        # Asking for their metadata makes such a broker create them.
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers=bootstrap, client_id="kdtest")
        for t in TOPICS:
            p.partitions_for(topic(t))
        p.close()
    finally:
        admin.close()


def delete_topics(bootstrap):
    """Removes this test's topics from an external cluster, if it can."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import IncompatibleBrokerVersion

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kdtest")
        try:
            admin.delete_topics([topic(t) for t in TOPICS], timeout_ms=30000)
        finally:
            admin.close()
    except IncompatibleBrokerVersion:
        pass  # the embedded broker forgets everything when it stops
    except Exception as e:  # noqa: BLE001 - cleanup is best effort
        print(f"could not delete the test's topics ({PREFIX}*): {e}", file=sys.stderr)


def kd(bs, *args, timeout=120):
    """Runs `kdeploy --brokers bs ARGS...`; its CompletedProcess (text)."""
    return subprocess.run([os.path.join(BIN, "kdeploy"), "--brokers", bs] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def wait_for(pred, timeout=60):
    """Polls pred until it holds or timeout seconds pass; its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline and not pred():
        time.sleep(0.1)
    return pred()


def wait_announced(bs, hosts, timeout=30):
    """True once `kdeploy hosts` lists every one of hosts: for what reads
    the hosts topic itself (create --dry-run), which nothing makes wait."""
    import json
    deadline = time.time() + timeout
    while True:
        out = kd(bs, "hosts", "--json", timeout=60)
        try:
            seen = {h["host"] for h in json.loads(out.stdout)} if out.returncode == 0 else set()
        except ValueError:
            seen = set()
        if set(hosts) <= seen:
            return True
        if time.time() >= deadline:
            return False
        time.sleep(0.2)


class Procs:
    """Processes started by a test; stop_all() ends every one of them."""

    def __init__(self):
        self.procs = []
        self.topics_on = None  # the external cluster this test created topics on
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
        if self.topics_on:
            delete_topics(self.topics_on)
            self.topics_on = None
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
        """The bootstrap servers of a broker for this test: a new embedded one,
        or the external cluster (KDEPLOY_TEST_BROKERS) with this test's topics."""
        if EXTERNAL:
            create_topics(EXTERNAL, partitions)
            self.topics_on = EXTERNAL
            return EXTERNAL
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
