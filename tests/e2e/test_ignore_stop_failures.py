"""A broken old revision whose stop script fails blocks the next deployment
at ApplicationStop, unless the deployment asks to ignore stop failures."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
from test_rolling_deploy import create, hook_log, installed  # noqa: E402

HOST = "web-01"


def main():
    t = kdtest.Checks()
    procs = kdtest.Procs()
    try:
        bs = procs.broker(partitions=2)
        d = procs.dir
        procs.planner(bs)
        procs.worker(bs, HOST)

        def deploy(rev, **kw):
            sha = bundles.build(os.path.join(d, rev + ".tar.gz"), rev,
                                fail_stop=kw.pop("fail_stop", False))
            spec = bundles.spec(os.path.join(d, rev + ".yaml"), "shop", "web", [HOST],
                                "file://" + os.path.join(d, rev + ".tar.gz"), sha, **kw)
            return create(procs, bs, spec)

        rc, _, err = deploy("V1", fail_stop=True)
        t.check(rc == 0, "V1, whose stop script fails, deployed: " + err)
        rc, _, err = deploy("V2")
        t.check(rc != 0 and "ApplicationStop" in err, "V2 fails at V1's stop script: " + err)
        t.check(installed(procs, HOST) == "V1", "V1 stays installed")
        rc, _, err = deploy("V3", extra="ignore_stop_failures: true\n")
        t.check(rc == 0, "V3 ignores the stop failure: " + err)
        t.check(installed(procs, HOST) == "V3", "V3 installed")
        stops = [line for line in hook_log(procs, HOST) if line[0] == "ApplicationStop"]
        t.check(stops == [["ApplicationStop", "V1", "UPDATE"]] * 2,
                f"V1's stop script ran for V2 and for V3: {stops}")
    finally:
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
