"""The deployment form's scripts (stop, start, check) stand for the hooks
ApplicationStop, ApplicationStart and ValidateService: they replace the
appspec's scripts for those events, and a later deployment's
ApplicationStop runs the stop script that came with the installed one."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import create, hook_log  # noqa: E402

HOST = "web-01"


def form(rev):
    return ("scripts:\n"
            f"  stop: 'echo \"form-stop {rev} $LIFECYCLE_EVENT\" >> \"$HOOK_LOG\"'\n"
            f"  start: 'echo \"form-start {rev} $LIFECYCLE_EVENT\" >> \"$HOOK_LOG\"'\n"
            f"  check: 'echo \"form-check {rev} $LIFECYCLE_EVENT\" >> \"$HOOK_LOG\"'\n")


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=2)
        d = procs.dir
        procs.planner(bs)
        procs.worker(bs, HOST)
        for rev in ("V1", "V2"):
            sha = bundles.build(os.path.join(d, rev + ".tar.gz"), rev)
            spec = bundles.spec(os.path.join(d, rev + ".yaml"), "shop", "web", [HOST],
                                "file://" + os.path.join(d, rev + ".tar.gz"), sha,
                                extra=form(rev))
            rc, _, err = create(procs, bs, spec)
            t.check(rc == 0, f"{rev} deployed: {err}")
        want = [["BeforeInstall", "V1", "UPDATE"], ["AfterInstall", "V1", "UPDATE"],
                ["form-start", "V1", "ApplicationStart"], ["form-check", "V1", "ValidateService"],
                ["form-stop", "V1", "ApplicationStop"],
                ["BeforeInstall", "V2", "UPDATE"], ["AfterInstall", "V2", "UPDATE"],
                ["form-start", "V2", "ApplicationStart"], ["form-check", "V2", "ValidateService"]]
        t.check(hook_log(procs, HOST) == want, f"form scripts in place of hooks: "
                                               f"{hook_log(procs, HOST)}")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
