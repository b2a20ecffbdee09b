"""Helpers for the observability tests (metrics, dashboard, webhooks):
free ports, waiting for an HTTP endpoint, scraping /metrics with the
Prometheus client's own parser, and workers started with extra options in
kdtest's host layout."""
import os
import socket
import time
import urllib.request

import kdtest


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, procs=None, name=None, timeout=20):
    """Waits until url answers 200; returns the body (bytes)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return r.read()
        except OSError as e:
            last = e
        time.sleep(0.1)
    log = procs.log_of(name) if procs and name else ""
    raise RuntimeError(f"{url} did not answer: {last}\n{log}")


def scrape(url):
    """Fetches url and parses it with prometheus_client's text parser.
    Returns ({(name, frozenset(labels.items())): value}, content type,
    {family name: type})."""
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(url, timeout=5) as r:
        ctype = r.headers.get("Content-Type", "")
        text = r.read().decode()
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, ctype, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def worker(procs, bs, hosts, *extra, name=None):
    """A worker process serving hosts (a list) in kdtest's layout: each host
    its <dir>/<host>/root and prefix, hooks told KD_HOST and HOOK_LOG. One
    --env pair is shared by a process, so several hosts log to the first
    host's hooks.log."""
    args = [os.path.join(kdtest.BIN, "kdeploy-worker"), "--brokers", bs] + procs.verify_args()
    for h in hosts:
        base = os.path.join(procs.dir, h)
        os.makedirs(os.path.join(base, "prefix"), exist_ok=True)
        args += ["--host-id", h, "--root", os.path.join(base, "root"),
                 "--install-prefix", os.path.join(base, "prefix")]
    args += ["--env", "KD_HOST=" + hosts[0],
             "--env", "HOOK_LOG=" + os.path.join(procs.dir, hosts[0], "hooks.log")]
    return procs.start(args + list(extra), name or hosts[0])


def browser(width=1400, height=1000):
    """Headless Chromium driven by Selenium (Debian's chromium and
    chromium-driver). The caller quits it, which ends the browser's
    processes."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def wait_for(fn, timeout=30, what="condition"):
    """Calls fn until it returns something true; returns that."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # the page is being redrawn under us
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what} ({last})")


def wait_synced(url, timeout=30):
    """Reads the dashboard's event stream at url until it says the history
    is read (the "synced" event)."""
    deadline = time.time() + timeout
    with urllib.request.urlopen(url, timeout=timeout) as r:
        while time.time() < deadline:
            line = r.readline()
            if not line:
                break
            if b'"type":"synced"' in line:
                return True
    raise RuntimeError(f"{url} never said synced")
