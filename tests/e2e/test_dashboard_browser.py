"""The dashboard in a real browser (headless Chromium driven by Selenium)
during real deployments: a broker, a planner and three workers. The page
is opened while a release is rolling out; it must show what an operator
looks for: the deployments with their status, every host's steps on a
timeline and in a table, the failing hook's output, the link between the
failed deployment and its rollback, and filters by application, group and
label. A screenshot is kept as dashboard.png in the test's directory."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bundles  # noqa: E402
import kdtest  # noqa: E402
import obstest  # noqa: E402

KDEPLOY = os.path.join(kdtest.BIN, "kdeploy")
HOSTS = ["web-01", "web-02", "web-03"]


def spec(path, app, group, hosts, url, sha, label, auto_rollback=False):
    with open(path, "w") as f:
        f.write(f"application: {app}\ngroup: {group}\nhosts: [{', '.join(hosts)}]\n"
                f"revision:\n  url: {url}\n  sha256: {sha}\n  label: \"{label}\"\n"
                f"strategy: rolling\nconcurrency: 1\nfailure_threshold: 1\n"
                f"auto_rollback: {'true' if auto_rollback else 'false'}\n"
                f"timeouts: {{host: 60, deployment: 120}}\n")
    return path


def create(bs, path, wait=True):
    args = [KDEPLOY, "--brokers", bs, "create", "-f", path]
    if wait:
        args += ["--wait", "--timeout", "60"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=90)
        return out.returncode, out.stdout.splitlines()[0] if out.stdout else ""
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def texts(driver, css):
    """The rendered text of every element css matches, read in one go: the
    page redraws as events come, so elements found earlier may be gone."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText)", css)


def rows(driver, css):
    """Each row css matches as the list of its cells' rendered texts."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(r => [...r.cells].map(c => c.innerText.trim()))", css)


def listed(driver):
    return driver.execute_script(
        "return [...document.querySelectorAll('#list .card')].map(c => c.dataset.id)")


def click(driver, css):
    """Clicks the first element css matches, again if it was redrawn meanwhile."""
    from selenium.webdriver.common.by import By
    def attempt():
        driver.find_element(By.CSS_SELECTOR, css).click()
        return True
    obstest.wait_for(attempt, what="a click on " + css)


def main():
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    t = kdtest.Checks()
    procs = kdtest.Procs()
    driver = None
    try:
        d = procs.dir
        bs = procs.broker(partitions=2)
        procs.planner(bs)
        for h in HOSTS:
            procs.worker(bs, h)
        port = obstest.free_port()
        procs.start([KDEPLOY, "dashboard", "--brokers", bs, "--listen", f"127.0.0.1:{port}"],
                    "dashboard")
        url = f"http://127.0.0.1:{port}/"
        obstest.wait_http(url + "healthz", procs, "dashboard")
        file_url = lambda name: "file://" + os.path.join(d, name)  # noqa: E731

        # 1.0 everywhere, and another application on web-03, before the page opens.
        sha1 = bundles.build(os.path.join(d, "v1.tar.gz"), "1.0")
        rc, v1 = create(bs, spec(os.path.join(d, "v1.yaml"), "shop", "web", HOSTS[:2],
                                 file_url("v1.tar.gz"), sha1, "1.0"))
        t.check(rc == 0, "1.0 deployed")
        sha_api = bundles.build(os.path.join(d, "api.tar.gz"), "api-7", files_dest="/opt/api")
        rc, api = create(bs, spec(os.path.join(d, "api.yaml"), "api", "blue", ["web-03"],
                                  file_url("api.tar.gz"), sha_api, "7"))
        t.check(rc == 0, "api 7 deployed")

        # The page opens on the history; then 2.0, which fails its health
        # check on web-02 (its hooks slow enough to be watched), appears live.
        driver = obstest.browser()
        driver.get(url)
        obstest.wait_for(lambda: driver.find_element(By.ID, "conn").text == "live",
                         what="the page to read the history and go live")
        obstest.wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#list .card")) == 2,
                         what="the two deployments of the history listed")
        # Slow enough that a loaded machine's browser still sees it run.
        sha2 = bundles.build(os.path.join(d, "v2.tar.gz"), "2.0", fail_validate_on="web-02",
                             sleep=1.5)
        rc, v2 = create(bs, spec(os.path.join(d, "v2.yaml"), "shop", "web", HOSTS[:2],
                                 file_url("v2.tar.gz"), sha2, "2.0", auto_rollback=True),
                        wait=False)
        t.check(rc == 0 and len(v2) == 36, f"2.0 submitted: {v2!r}")
        obstest.wait_for(lambda: driver.find_elements(
            By.CSS_SELECTOR, f'#list .card[data-id="{v2}"]'), what="2.0 to appear in the list")
        click(driver, f'#list .card[data-id="{v2}"]')
        running = obstest.wait_for(
            lambda: driver.find_elements(By.CSS_SELECTOR, "#detail h2 .s-deploying"),
            what="2.0 shown deploying")
        t.check(bool(running), "2.0 is shown while it deploys")
        t.check(bool(obstest.wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".bar.running"),
                                      what="a running step")),
                "a step in progress is drawn on the timeline")

        # It fails on web-02, and its rollback follows and ends.
        obstest.wait_for(lambda: driver.find_elements(By.CSS_SELECTOR,
                                                      "#detail h2 .s-rollback_succeeded"),
                         timeout=60, what="2.0 failed and rolled back")
        links = texts(driver, "#detail .meta .links")
        t.check(any(x.startswith("rolled back by ") for x in links), f"the rollback link: {links}")
        heading = texts(driver, "#detail h2")
        t.check(heading and heading[0].startswith("shop / web — 2.0"), f"heading: {heading!r}")
        hosts = texts(driver, "#detail .host .hname")
        t.check(hosts == HOSTS[:2], f"the hosts, in order: {hosts}")
        web02 = '#detail .host[data-host="web-02"]'
        t.check(texts(driver, web02 + " .badge")[:1] == ["FAILED"], "web-02 is shown failed")

        # web-02 is open by itself: its steps and the failing hook's output.
        steps = {r[0]: r for r in rows(driver, web02 + " tr.step")}
        t.check(steps.get("ValidateService", [""] * 4)[3] == "FAILED",
                f"web-02's ValidateService failed: {steps}")
        t.check(steps.get("Install", [""] * 4)[3] == "SUCCEEDED", f"web-02's Install: {steps}")
        tail = texts(driver, web02 + " pre.tail")
        t.check(tail and "2.0 is unhealthy on web-02" in tail[0],
                f"the failure's output is shown: {tail!r}")

        # web-01 succeeded: closed until clicked, then its seven steps.
        web01 = '#detail .host[data-host="web-01"]'
        bars = texts(driver, web01 + " .bar")
        t.check(len(bars) == 7, f"web-01 has 7 steps on its timeline: {bars}")
        t.check(rows(driver, web01 + " tr.step") == [], "web-01's table starts closed")
        click(driver, web01 + " .host-name")
        table = obstest.wait_for(lambda: rows(driver, web01 + " tr.step"), what="web-01's steps")
        t.check([r[0] for r in table] == ["DownloadBundle", "ApplicationStop", "BeforeInstall",
                                          "Install", "AfterInstall", "ApplicationStart",
                                          "ValidateService"],
                f"web-01's steps in order: {table}")
        t.check(all(r[2].endswith(" ms") or r[2].endswith(" s") for r in table),
                f"each step says how long it took: {table}")
        t.check([r[3] for r in table].count("SUCCEEDED") == 6 and table[1][3] == "SKIPPED"
                or [r[3] for r in table].count("SUCCEEDED") == 7,
                f"web-01's results: {[r[3] for r in table]}")

        # The list: three shop/api deployments plus the rollback, statuses shown.
        obstest.wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#list .card")) == 4,
                         timeout=60, what="four deployments listed")
        cards = dict(zip(driver.execute_script(
            "return [...document.querySelectorAll('#list .card')].map(c => c.dataset.id)"),
            texts(driver, "#list .card")))
        t.check("SUCCEEDED" in cards.get(v1, "").upper(), f"1.0 succeeded: {cards.get(v1)}")
        t.check("rolled back by" in cards.get(v2, ""), f"2.0 names its rollback: {cards.get(v2)}")
        driver.save_screenshot(os.path.join(d, "dashboard.png"))

        # The rollback, one click away, points back at 2.0.
        click(driver, "#detail .meta .links a")
        obstest.wait_for(lambda: [a for a in driver.find_elements(By.CSS_SELECTOR, "#detail .links")
                                  if a.text == "rollback of " + v2[:8]], timeout=20,
                         what="the rollback's link back")
        obstest.wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#detail h2 .s-succeeded, "
                                                      "#detail h2 .s-rollback_succeeded"),
                         timeout=60, what="the rollback succeeded")
        rb_hosts = texts(driver, "#detail .host .hname")
        t.check(rb_hosts == HOSTS[:2], f"the rollback's hosts are shown: {rb_hosts}")
        heading = texts(driver, "#detail h2")
        t.check(heading and heading[0].startswith("shop / web — rollback"),
                f"the rollback says it is one: {heading}")
        page = texts(driver, "#detail")[0]
        t.check("null" not in page and "undefined" not in page, f"no placeholder leaks: {page!r}")
        driver.save_screenshot(os.path.join(d, "dashboard-rollback.png"))

        # Filters: by application, by group, by label.
        Select(driver.find_element(By.ID, "f-app")).select_by_value("api")
        shown = listed(driver)
        t.check(shown == [api], f"application filter: only api's deployment: {shown}")
        Select(driver.find_element(By.ID, "f-app")).select_by_value("")
        Select(driver.find_element(By.ID, "f-group")).select_by_value("web")
        shown = listed(driver)
        t.check(api not in shown and v1 in shown and v2 in shown, f"group filter: {shown}")
        Select(driver.find_element(By.ID, "f-label")).select_by_value("1.0")
        shown = listed(driver)
        t.check(v1 in shown and v2 not in shown, f"label filter: {shown}")
        print("screenshots:", os.path.join(d, "dashboard.png"))
    except Exception:
        if driver:
            driver.save_screenshot(os.path.join(procs.dir, "dashboard-failure.png"))
            print("failure screenshot:", os.path.join(procs.dir, "dashboard-failure.png"))
        raise
    finally:
        if driver:
            driver.quit()
        procs.stop_all_checked(t)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
