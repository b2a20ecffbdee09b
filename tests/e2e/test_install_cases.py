"""Install cases from the AWS CodeDeploy agent's installer tests and code, each
run as a real deployment (broker, planner, worker) and compared with what the
agent does: whether Install succeeds, and what ends up on disk.

Every case is its own application on one host, so each has its own previous
revision (none) and its own directory under the host's install prefix. A case
names the agent's verdict and, where kdeploy differs on purpose, kdeploy's
with the section of docs/appspec.md that says why.

Run by hand with the binaries of any build (KD_BIN_DIR) to count agreement."""
import hashlib
import io
import os
import stat
import struct
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(__file__))
import kdtest  # noqa: E402

HOST = "inst-01"
KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")
INSTALLER_TEST = "aws-codedeploy-agent test/.../codedeploy/installer_test.rb"
INSTALL_CODE = "aws-codedeploy-agent lib/.../codedeploy/installer.rb"
INSTRUCTION = "aws-codedeploy-agent lib/.../codedeploy/install_instruction.rb"
APPSPEC_CODE = "aws-codedeploy-agent lib/.../application_specification/"
HEAD = "version: 0.0\nos: linux\n"
SCRIPT = "#!/bin/sh\nexit 0\n"


def bundle(path, files):
    """files: {name: text | ("dir",) | ("link", target) | (text, mode)}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, what in files.items():
            info = tarfile.TarInfo(name)
            data = b""
            if isinstance(what, tuple) and what[0] == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif isinstance(what, tuple) and what[0] == "link":
                info.type, info.linkname = tarfile.SYMTYPE, what[1]
            else:
                text, mode = what if isinstance(what, tuple) else (what, 0o644)
                data = text.encode()
                info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def acl_entries(path, default=False):
    """The POSIX ACL of path as {(tag, id): perms} from its xattr (tags: 1 user
    obj, 2 user, 4 group obj, 8 group, 16 mask, 32 other)."""
    name = "system.posix_acl_default" if default else "system.posix_acl_access"
    try:
        raw = os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for off in range(4, len(raw), 8):
        tag, perm, ident = struct.unpack_from("<HHI", raw, off)
        out[(tag, ident if tag in (2, 8) else None)] = perm
    return out


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


# Each case: (name, origin, agent verdict, appspec body, bundle files,
#             files existing before (relative to the case's dir),
#             spec extra, check(dir) -> list of (ok, what), kdeploy override)
CASES = []


def case(name, origin, agent, appspec, files, before=None, extra="", check=None, kd=None,
         reason=None):
    """reason: what kdeploy's failure must say, for a case that fails."""
    CASES.append(dict(name=name, origin=origin, agent=agent, appspec=appspec, files=files,
                      before=before or {}, extra=extra, check=check, kd=kd, reason=reason))


def dest(c):
    return f"/cases/{c}"


# --- files: copies, missing directories, sources -----------------------------
case("file-into-missing-dir", INSTALLER_TEST + ' "generate a mkdir command if the destination '
     'directory does not exist (absolute path)"', "succeed",
     HEAD + f"files:\n  - source: src1\n    destination: {dest('c01')}/dst1\n",
     {"src1": "one\n"}, check=lambda d: [(read(d + "/dst1/src1") == "one\n", "dst1/src1 copied")])
case("nested-missing-dirs", INSTALLER_TEST + ' "generate mkdir commands for multiple levels"',
     "succeed", HEAD + f"files:\n  - source: src1\n    destination: {dest('c02')}/dst1/foo/bar\n",
     {"src1": "one\n"}, check=lambda d: [(read(d + "/dst1/foo/bar/src1") == "one\n", "copied")])
case("directory-entries", INSTALLER_TEST + ' "generate a copy after the mkdir for each entry"',
     "succeed", HEAD + f"files:\n  - source: src1\n    destination: {dest('c03')}/dst1\n",
     {"src1/foo": "f\n", "src1/bar": "b\n"},
     check=lambda d: [(read(d + "/dst1/foo") == "f\n" and read(d + "/dst1/bar") == "b\n",
                       "the directory's entries copied into dst1 (not dst1/src1)")])
case("existing-destination-dir", INSTALLER_TEST + ' "not generate a mkdir if the destination '
     'exists"', "succeed", HEAD + f"files:\n  - source: src1\n    destination: {dest('c04')}/dst1\n",
     {"src1/foo": "f\n"}, before={"dst1/keep": "mine\n"},
     check=lambda d: [(read(d + "/dst1/foo") == "f\n", "copied into the existing directory"),
                      (read(d + "/dst1/keep") == "mine\n", "other files in it untouched")])
case("whole-bundle", INSTALL_CODE + ": source / is the archive root, appspec included",
     "succeed", HEAD + f"files:\n  - source: /\n    destination: {dest('c05')}\n",
     {"app/index.html": "hi\n"},
     check=lambda d: [(read(d + "/app/index.html") == "hi\n", "app copied"),
                      (read(d + "/appspec.yml") is not None, "appspec.yml copied too")])
# --- file_exists_behavior: the appspec's, the deployment's, the default -------
FE_FILES = {"src1": "new\n"}


def fe(c):
    return HEAD + f"files:\n  - source: src1\n    destination: {dest(c)}\n"


def kept(d):
    return [(read(d + "/src1") == "old\n", "the existing file kept")]


def replaced(d):
    return [(read(d + "/src1") == "new\n", "the existing file overwritten")]


case("exists-default-disallow", INSTALLER_TEST + ' "raise an error if the file already exists '
     "and @file_exists_behavior is set to 'DISALLOW'\" (the agent's default)", "fail",
     fe("c06"), FE_FILES, before={"src1": "old\n"}, check=kept,
     reason="already exists")
case("exists-appspec-overwrite", INSTALLER_TEST + " ... 'OVERWRITE'; the appspec sets it",
     "succeed", fe("c07") + "file_exists_behavior: OVERWRITE\n", FE_FILES,
     before={"src1": "old\n"}, check=replaced)
case("exists-appspec-retain", INSTALLER_TEST + " ... 'RETAIN'; the appspec sets it", "succeed",
     fe("c08") + "file_exists_behavior: RETAIN\n", FE_FILES, before={"src1": "old\n"},
     check=kept)
case("exists-appspec-disallow-wins", "agent: the appspec's setting wins over the deployment's",
     "fail", fe("c09") + "file_exists_behavior: DISALLOW\n", FE_FILES,
     before={"src1": "old\n"}, extra="file_exists: overwrite\n", check=kept,
     reason="already exists")
case("exists-appspec-retain-wins", "agent: the appspec's setting wins over the deployment's",
     "succeed", fe("c10") + "file_exists_behavior: RETAIN\n", FE_FILES,
     before={"src1": "old\n"}, extra="file_exists: overwrite\n", check=kept)
case("exists-deployment-overwrite", "agent: the deployment's setting when the appspec has none",
     "succeed", fe("c11"), FE_FILES, before={"src1": "old\n"},
     extra="file_exists: overwrite\n", check=replaced)
case("exists-deployment-keep", "agent: the deployment's setting when the appspec has none",
     "succeed", fe("c12"), FE_FILES, before={"src1": "old\n"}, extra="file_exists: keep\n",
     check=kept)
case("exists-in-directory-copy", INSTALLER_TEST + ' "raise an error if an entry already exists '
     "and @file_exists_behavior is set to 'DISALLOW'\"", "fail",
     HEAD + f"files:\n  - source: src1\n    destination: {dest('c13')}\n",
     {"src1/foo": "f\n", "src1/bar": "new\n"}, before={"bar": "old\n"},
     check=lambda d: [(read(d + "/bar") == "old\n" and read(d + "/foo") is None,
                       "nothing written: the agent fails before copying")],
     reason="bar already exists")
# --- permissions ---------------------------------------------------------------
PERM_FILES = {"app/run.sh": ("#!/bin/sh\n", 0o644), "app/lib/a.txt": "a\n", "app/b.txt": "b\n"}


def perms(c, body):
    return HEAD + f"files:\n  - source: app\n    destination: {dest(c)}\npermissions:\n" + body


case("two-entries-one-file", INSTRUCTION + ": set_permissions raises when a file's permissions "
     "are specified more than once", "fail",
     perms("c14", f"  - object: {dest('c14')}\n    mode: 755\n    type: [file]\n"
                  f"  - object: {dest('c14')}\n    pattern: \"*.sh\"\n    mode: 700\n"),
     PERM_FILES,
     reason="run.sh is matched by two permissions entries")
case("pattern-on-file-object", APPSPEC_CODE + "linux_permission_info.rb validate_file_permission",
     "fail", perms("c15", f"  - object: {dest('c15')}/run.sh\n    pattern: \"*.sh\"\n"), PERM_FILES,
     reason="pattern and except apply to directories only")
case("except-on-file-object", APPSPEC_CODE + "linux_permission_info.rb validate_file_permission",
     "fail", perms("c16", f"  - object: {dest('c16')}/run.sh\n    except: [x]\n"), PERM_FILES,
     reason="pattern and except apply to directories only")
case("pattern-matches-children", APPSPEC_CODE + "linux_permission_info.rb matches_pattern? "
     "(direct children only)", "succeed",
     perms("c17", f"  - object: {dest('c17')}\n    pattern: \"*.sh\"\n    mode: 750\n"),
     PERM_FILES,
     check=lambda d: [(mode_of(d + "/run.sh") == 0o750, "run.sh 0750"),
                      (mode_of(d + "/b.txt") == 0o644, "b.txt untouched")])
case("type-directory-only", INSTRUCTION + ": type selects directories", "succeed",
     perms("c18", f"  - object: {dest('c18')}\n    type: [directory]\n    mode: 711\n"),
     PERM_FILES,
     check=lambda d: [(mode_of(d + "/lib") == 0o711, "lib 0711"),
                      (mode_of(d + "/b.txt") == 0o644, "files untouched")])
case("owner-and-group", INSTRUCTION + ": chown", "succeed",
     perms("c19", f"  - object: {dest('c19')}\n    owner: nobody\n    group: nogroup\n"),
     PERM_FILES,
     check=lambda d: [(os.lstat(d + "/b.txt").st_uid == 65534 and
                       os.lstat(d + "/lib/a.txt").st_gid == 65534, "owned by nobody:nogroup")])
case("object-names-nothing", INSTALL_CODE + ": an object not installed is skipped", "succeed",
     perms("c20", "  - object: /nowhere/at/all\n    mode: 700\n"), PERM_FILES,
     check=lambda d: [(mode_of(d + "/b.txt") == 0o644, "nothing changed")])
case("unquoted-mode-0644", APPSPEC_CODE + "mode_info.rb: YAML reads 0644 as 420, the agent sets "
     "mode 0420", "succeed",
     perms("c21", f"  - object: {dest('c21')}/b.txt\n    mode: 0644\n"), PERM_FILES,
     check=lambda d: [(mode_of(d + "/b.txt") == 0o420, f"b.txt 0420, not {oct(mode_of(d + '/b.txt'))}")])
case("empty-type-list", APPSPEC_CODE + "application_specification.rb: type [] matches nothing",
     "succeed", perms("c22", f"  - object: {dest('c22')}\n    type: []\n    mode: 700\n"),
     PERM_FILES, check=lambda d: [(mode_of(d + "/b.txt") == 0o644, "nothing changed")])
# --- acls and context ------------------------------------------------------------
case("acl-named-user", INSTRUCTION + ": setfacl with the base entries from the mode", "succeed",
     perms("c23", f"  - object: {dest('c23')}/b.txt\n    acls:\n      - u:nobody:rwx\n"),
     PERM_FILES,
     check=lambda d: [(acl_entries(d + "/b.txt").get((2, 65534)) == 7, "user:nobody:rwx"),
                      (acl_entries(d + "/b.txt").get((16, None)) == 4,
                       "mask from the group bits (r--)"),
                      (acl_entries(d + "/b.txt").get((1, None)) == 6, "user:: from the mode")])
case("acl-default-on-dir", INSTRUCTION + ": default entries on a directory", "succeed",
     perms("c24", f"  - object: {dest('c24')}\n    type: [directory]\n    acls:\n"
                  "      - d:g:nogroup:rx\n"), PERM_FILES,
     check=lambda d: [(acl_entries(d + "/lib", True).get((8, 65534)) == 5,
                       "default group:nogroup:r-x on lib"),
                      (acl_entries(d + "/lib", True).get((16, None)) is not None,
                       "a default mask")])
case("acl-default-on-file", APPSPEC_CODE + "linux_permission_info.rb validate_file_acl", "fail",
     perms("c25", f"  - object: {dest('c25')}/b.txt\n    acls:\n      - d:u:nobody:rw\n"),
     PERM_FILES,
     reason="default (d:) acl entry applies to directories only")
case("context-without-selinux", INSTRUCTION + ": semanage fails on a host without SELinux",
     "fail", perms("c26", f"  - object: {dest('c26')}/b.txt\n    context:\n"
                          "      type: httpd_sys_content_t\n"), PERM_FILES,
     reason="SELinux is not enabled on this host")
# --- links and hooks -----------------------------------------------------------------
case("link-to-directory", INSTALLER_TEST + ' "generate a copy command instead of a mkdir command '
     'if the file inside the source directory is a symbolic link of a directory"', "succeed",
     HEAD + f"files:\n  - source: app\n    destination: {dest('c27')}\n",
     {"app/real/x": "x\n", "app/alias": ("link", "real")},
     check=lambda d: [(os.path.isdir(d + "/alias") and not os.path.islink(d + "/alias"),
                       "alias is a copy of the directory")],
     kd=("succeed", lambda d: [(os.readlink(d + "/alias") == "real", "alias kept as a link")],
         "docs/appspec.md, Differences: links"))
case("missing-hook-script", "agent HookExecutor: 'Script does not exist at specified location' "
     "(before ApplicationStop in kdeploy)", "fail",
     HEAD + f"files:\n  - source: app\n    destination: {dest('c28')}\n"
            "hooks:\n  AfterInstall:\n    - location: scripts/missing.sh\n",
     {"app/b.txt": "b\n"},
     check=lambda d: [(read(d + "/b.txt") is None, "nothing installed")],
     reason="'scripts/missing.sh' is missing from the bundle")
case("missing-files-source", INSTALL_CODE + ": a missing source fails the copy", "fail",
     HEAD + f"files:\n  - source: nothere\n    destination: {dest('c29')}\n",
     {"app/b.txt": "b\n"},
     reason="'nothere' is missing from the bundle")
case("hook-env-prefix", "kdeploy: hooks get KDEPLOY_INSTALL_PREFIX and KDEPLOY_HOST_ID "
     "(the agent has no prefix: its value is empty there)", "succeed",
     HEAD + f"files:\n  - source: app\n    destination: {dest('c30')}\n"
            "hooks:\n  AfterInstall:\n    - location: scripts/env.sh\n",
     {"app/b.txt": "b\n",
      "scripts/env.sh": ("#!/bin/sh\nset -e\ntest -f \"$KDEPLOY_INSTALL_PREFIX" + dest("c30") +
                         "/b.txt\"\necho \"$KDEPLOY_HOST_ID\" > \"$KDEPLOY_INSTALL_PREFIX" +
                         dest("c30") + "/host\"\n", 0o755)},
     check=lambda d: [(read(d + "/host") == HOST + "\n", "the hook found the installed file")])

case("empty-pattern", APPSPEC_CODE + "linux_permission_info.rb: the glob \"\" matches no name",
     "succeed", perms("c31", f"  - object: {dest('c31')}\n    pattern: \"\"\n    mode: 700\n"),
     PERM_FILES, check=lambda d: [(mode_of(d + "/b.txt") == 0o644, "nothing changed")])


def run_case(procs, bs, n, c, prefix):
    d = procs.dir
    app = f"case{n:02d}"
    base = os.path.join(prefix, "cases", f"c{n:02d}")
    files = dict(c["files"])
    files["appspec.yml"] = c["appspec"]
    sha = bundle(os.path.join(d, app + ".tar.gz"), files)
    for rel, text in c["before"].items():
        os.makedirs(os.path.dirname(os.path.join(base, rel)), exist_ok=True)
        with open(os.path.join(base, rel), "w") as f:
            f.write(text)
    spec = os.path.join(d, app + ".yaml")
    with open(spec, "w") as f:
        f.write(f"application: {app}\ngroup: g\nhosts: [{HOST}]\n"
                f"revision:\n  url: file://{d}/{app}.tar.gz\n  sha256: {sha}\n"
                f"strategy: rolling\nconcurrency: 1\nfailure_threshold: 1\n"
                f"auto_rollback: false\ntimeouts: {{host: 60, deployment: 120}}\n{c['extra']}")
    out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec, "--wait",
                          "--timeout", "90"], capture_output=True, text=True, timeout=150)
    got = "succeed" if out.returncode == 0 else "fail"
    return got, base, out.stdout + out.stderr


def deploy(procs, bs, app, files):
    """Deploys files (with their appspec.yml) as app; returns (rc, output)."""
    d = procs.dir
    sha = bundle(os.path.join(d, app + ".tar.gz"), files)
    spec = os.path.join(d, app + ".yaml")
    with open(spec, "w") as f:
        f.write(f"application: stopcheck\ngroup: g\nhosts: [{HOST}]\n"
                f"revision:\n  url: file://{d}/{app}.tar.gz\n  sha256: {sha}\n"
                "timeouts: {host: 60, deployment: 120}\n")
    out = subprocess.run([KDEPLOY, "--brokers", bs, "create", "-f", spec, "--wait",
                          "--timeout", "90"], capture_output=True, text=True, timeout=150)
    return out.returncode, out.stdout + out.stderr


def check_not_stopped(t, procs, bs):
    """V1 is running; V2 lacks a hook script. V2 fails before V1's
    ApplicationStop runs, so the running application is not stopped."""
    marker = os.path.join(procs.dir, "v1-stopped")
    stop = f"#!/bin/sh\necho stopped >> {marker}\n"
    v1 = {"stop.sh": (stop, 0o755),
          "appspec.yml": HEAD + "hooks:\n  ApplicationStop:\n    - location: stop.sh\n"}
    rc, out = deploy(procs, bs, "stop-v1", v1)
    t.check(rc == 0, "V1 deployed: " + out)
    v2 = dict(v1)
    v2["appspec.yml"] = v1["appspec.yml"] + "  ApplicationStart:\n    - location: start.sh\n"
    rc, out = deploy(procs, bs, "stop-v2", v2)
    t.check(rc != 0 and "'start.sh' is missing from the bundle" in out,
            "V2, whose start.sh is missing, fails: " + out)
    t.check(read(marker) is None, "V1's stop script never ran: the app was not stopped")


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    agree = differ = 0
    try:
        bs = procs.broker(partitions=2)
        procs.planner(bs)
        procs.worker(bs, HOST)
        prefix = os.path.join(procs.dir, HOST, "prefix")
        for n, c in enumerate(CASES, 1):
            assert dest(f"c{n:02d}") in c["appspec"] or "/nowhere" in c["appspec"], c["name"]
            got, base, out = run_case(procs, bs, n, c, prefix)
            expect, check, why = c["kd"] if c["kd"] else (c["agent"], c["check"], None)
            agree += got == c["agent"] and not c["kd"]
            t.check(got == expect, f"{c['name']}: Install should {expect}, it did {got}: {out}")
            if got == "fail" and c["reason"]:
                t.check(c["reason"] in out, f"{c['name']}: fails saying '{c['reason']}': {out}")
            results = check(base) if check and got == expect else []
            for ok, what in results:
                t.check(ok, f"{c['name']}: {what}")
            if c["kd"] and got == expect and all(ok for ok, _ in results):
                differ += 1
            elif c["kd"] is None and got == c["agent"] and not all(ok for ok, _ in results):
                agree -= 1
        check_not_stopped(t, procs, bs)
    finally:
        procs.stop_all_checked(t)
    print(f"install cases: {len(CASES)}; kdeploy does as the agent on {agree}, "
          f"differs as documented on {differ}")
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
