"""Every case of tests/data/appspec/corpus gets kdeploy's verdict, compared with
the AWS CodeDeploy agent's.

Each case is an appspec file whose first comment lines say where it comes
from and what the agent does with it:
    # origin: where the case was taken from
    # agent: accept | refuse
    # kdeploy: refuse: why (only where kdeploy differs, as docs/appspec.md says)
    # warns: a text kdeploy's warnings must contain
The case is copied into a directory of its own as appspec.yml (the AWS name)
and checked with `kdeploy validate FILE` (the file alone: the corpus has no
scripts), then with `--strict`, which must refuse any case that warns.

Run by hand with --report to print the agreement counts."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import kdtest  # noqa: E402

SRC = os.environ.get("KD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(SRC, "tests", "data", "appspec", "corpus")


def read_case(path):
    head = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("# ") or ":" not in line:
                break
            key, _, value = line[2:].partition(":")
            head[key.strip()] = value.strip()
    return head


def validate(kdeploy, path, strict=False):
    args = [kdeploy, "validate"] + (["--strict"] if strict else []) + [path]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


def main():
    kdeploy = os.path.join(os.environ.get("KD_BIN_DIR", "build/bin"), "kdeploy")
    t = kdtest.Checks()
    tmp = tempfile.mkdtemp(prefix="corpus.", dir=os.environ.get("KD_TEST_TMP"))
    agree = differ = 0
    names = sorted(n for n in os.listdir(CORPUS) if n.endswith(".yml"))
    try:
        for name in names:
            head = read_case(os.path.join(CORPUS, name))
            agent = head.get("agent")
            t.check(agent in ("accept", "refuse"), f"{name}: has an agent verdict")
            expect = head.get("kdeploy", agent).split(":")[0].strip()
            case_dir = os.path.join(tmp, name[:-4])
            os.mkdir(case_dir)
            path = os.path.join(case_dir, "appspec.yml")
            shutil.copy(os.path.join(CORPUS, name), path)
            rc, err = validate(kdeploy, path)
            got = "accept" if rc == 0 else "refuse"
            agree += got == agent
            differ += got != agent and "kdeploy" in head
            t.check(rc in (0, 1), f"{name}: validate exits 0 or 1, not {rc}: {err}")
            t.check(got == expect, f"{name}: kdeploy should {expect}, it did {got}: {err}")
            if "warns" in head:
                t.check(head["warns"] in err and ":" in err.split("\n")[0],
                        f"{name}: warns '{head['warns']}' with file:line: {err!r}")
            if rc == 0 and err.strip():
                src, _ = validate(kdeploy, path, strict=True)
                t.check(src == 1, f"{name}: --strict refuses what warns")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"corpus: {len(names)} cases; kdeploy agrees with the agent on {agree}, "
          f"differs as documented on {differ}")
    t.check(len(names) >= 100, f"the corpus holds {len(names)} cases")
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
