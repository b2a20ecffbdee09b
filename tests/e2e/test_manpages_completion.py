"""The man pages and shell completions keep up with the programs: every
option a program's --help lists is in its man page, every kdeploy command is
in kdeploy(1) and in the bash and zsh completions, and the bash completion
completes commands, options and daemons' options."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import kdtest  # noqa: E402

SOURCE = os.environ.get("KD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
MAN = os.path.join(kdtest.BIN, "..", "man")
DAEMONS = {"kdeploy-worker": "kdeploy-worker.8", "kdeploy-planner": "kdeploy-planner.8",
           "kdeploy-lbctl": "kdeploy-lbctl.8", "kdeploy-fleetsim": "kdeploy-fleetsim.1"}


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30)


def options(help_text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", help_text))


def man_text(page):
    """The page as man renders it, or its roff source when man is missing."""
    path = os.path.join(MAN, page)
    if shutil.which("man"):
        out = subprocess.run(["man", "-l", path], capture_output=True, text=True, timeout=30,
                             env=dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING=""))
        if out.returncode == 0:
            return out.stdout
    with open(path) as f:
        return f.read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")


def bash_complete(words):
    script = f"""
source /usr/share/bash-completion/bash_completion
source {os.path.join(SOURCE, 'completions', 'kdeploy.bash')}
COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}
COMP_LINE="{' '.join(words)}"; COMP_POINT=${{#COMP_LINE}}
f=$(complete -p {words[0]} | sed 's/.*-F \\([^ ]*\\) .*/\\1/')
"$f" {words[0]} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
echo "${{COMPREPLY[*]}}"
"""
    env = dict(os.environ, PATH=os.path.abspath(kdtest.BIN) + ":" + os.environ["PATH"])
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                         env=env)
    return out.stdout.split()


def main():
    t = kdtest.Checks()
    for prog, page in DAEMONS.items():
        help_text = run(os.path.join(kdtest.BIN, prog), "--help").stdout
        text = man_text(page)
        missing = sorted(o for o in options(help_text) if o not in text)
        t.check(not missing, f"{page} documents every option of {prog} --help: {missing}")
        out = run(os.path.join(kdtest.BIN, prog), "--version")
        t.check(out.returncode == 0 and "0." in out.stdout, f"{prog} --version: {out.stdout}")

    usage = run(os.path.join(kdtest.BIN, "kdeploy"), "--help").stdout
    commands = re.findall(r"^  ([a-z]+) ", usage, re.M)
    t.check(len(commands) >= 10, f"kdeploy --help lists its commands: {commands}")
    kdeploy1 = man_text("kdeploy.1")
    with open(os.path.join(SOURCE, "completions", "kdeploy.bash")) as f:
        bash = f.read()
    with open(os.path.join(SOURCE, "completions", "_kdeploy")) as f:
        zsh = f.read()
    for c in commands:
        t.check(re.search(r"\b" + c + r"\b", kdeploy1) is not None, f"kdeploy.1 has {c}")
        t.check(re.search(r"\b" + c + r"\b", bash) is not None, f"bash completion has {c}")
        t.check(f"'{c}:" in zsh, f"zsh completion has {c}")
    for c in commands:
        help_text = run(os.path.join(kdtest.BIN, "kdeploy"), c, "--help").stdout
        missing = sorted(o for o in options(help_text) if o not in kdeploy1)
        t.check(not missing, f"kdeploy.1 documents every option of kdeploy {c}: {missing}")
    t.check(os.path.exists(os.path.join(MAN, "kdeploy-spec.5")), "kdeploy-spec.5 is built")

    if os.path.exists("/usr/share/bash-completion/bash_completion"):
        t.check(bash_complete(["kdeploy", "cr"]) == ["create"], "bash: kdeploy cr -> create")
        got = bash_complete(["kdeploy", "stop", "--r"])
        t.check("--rollback" in got and "--reason" in got, f"bash: stop --r -> {got}")
        got = bash_complete(["kdeploy-worker", "--host"])
        t.check(got == ["--host-id"], f"bash: kdeploy-worker --host -> {got}")
    else:
        t.check(False, "bash-completion is installed (deploy/install-deps.sh)")
    if shutil.which("zsh"):
        out = run("zsh", "-n", os.path.join(SOURCE, "completions", "_kdeploy"))
        t.check(out.returncode == 0, "zsh parses _kdeploy: " + out.stderr)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
