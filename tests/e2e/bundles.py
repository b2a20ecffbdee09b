"""Builds revision bundles (tar.gz) for end-to-end tests: an AWS appspec or a
JD appspec, whose hooks append "<event> <revision> <operation>" lines to the
file named by the worker's host-level HOOK_LOG variable."""
import hashlib
import io
import os
import tarfile

HOOK = """#!/bin/sh
echo "$LIFECYCLE_EVENT {rev} $JDCLOUD_CODEDEPLOY_OPERATION" >> "$HOOK_LOG"
if [ -n "$CONC_LOG" ]; then
  case "$LIFECYCLE_EVENT" in
    BeforeInstall) echo "start $KD_HOST" >> "$CONC_LOG" ;;
    ValidateService) echo "end $KD_HOST" >> "$CONC_LOG" ;;
  esac
fi
{extra}
"""


def _add(tar, name, text, mode=0o755):
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def build(path, rev, fmt="aws", fail_validate_on=None, sleep=0, files_dest="/opt/shop",
          fail_stop=False):
    """Writes a bundle to path; returns its sha256."""
    events = ["ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart",
              "ValidateService"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for ev in events:
            extra = f"sleep {sleep}\n" if sleep else ""
            if ev == "ApplicationStop" and fail_stop:
                extra += f'echo "{rev} cannot stop" >&2; exit 5\n'
            if ev == "ValidateService" and fail_validate_on:
                extra += (f'if [ "$KD_HOST" = "{fail_validate_on}" ]; then '
                          f'echo "{rev} is unhealthy on $KD_HOST" >&2; exit 3; fi\n')
            _add(tar, f"scripts/{ev}.sh", HOOK.format(rev=rev, extra=extra))
        _add(tar, "app/VERSION", rev + "\n", 0o644)
        if fmt == "aws":
            hooks = "".join(f"  {ev}:\n    - location: scripts/{ev}.sh\n      timeout: 60\n"
                            for ev in events)
            spec = (f"version: 0.0\nos: linux\nfiles:\n  - source: app\n"
                    f"    destination: {files_dest}\nhooks:\n{hooks}")
            _add(tar, "appspec.yml", spec, 0o644)
        else:
            hooks = "".join(f"  {ev}:\n    - location: scripts/{ev}.sh\n      timeout: 60\n"
                            for ev in events)
            spec = (f"version: 1.0\nfiles:\n  - source: app\n    destination: {files_dest}\n"
                    f"env:\n  REVISION_NAME: {rev}\nhooks:\n{hooks}")
            _add(tar, "jdcloud-codedeploy.yml", spec, 0o644)
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def spec(path, app, group, hosts, url, sha256, concurrency=1, threshold=1, auto_rollback=False,
         extra=""):
    conc = concurrency if isinstance(concurrency, (int, str)) else \
        "[" + ", ".join(f'"{c}"' if isinstance(c, str) else str(c) for c in concurrency) + "]"
    if isinstance(conc, str) and not conc.startswith("["):
        conc = f'"{conc}"'
    text = (f"application: {app}\ngroup: {group}\nhosts: [{', '.join(hosts)}]\n"
            f"revision:\n  url: {url}\n  sha256: {sha256}\n"
            f"strategy: rolling\nconcurrency: {conc}\nfailure_threshold: {threshold}\n"
            f"auto_rollback: {'true' if auto_rollback else 'false'}\n"
            f"timeouts: {{host: 120, deployment: 600}}\n{extra}")
    with open(path, "w") as f:
        f.write(text)
    return path
