#!/usr/bin/env python3
"""The GP's app (`snow app`) end to end in a real browser (issue 18).

Headless Chromium from Debian's `chromium` package, driven by Playwright
for Python through `executable_path` (no downloaded browser). Called by
scripts/app-e2e, which sets up the two sites and starts the servers and
the app; the subcommands:

    ports N                  N free TCP ports on 127.0.0.1, one per line
    lab-data BASELINE CLUSTER
                             the lab database's synthetic exports: two
                             years of weekly influenza A in 5401 and 1804
                             up to last week, and a cluster in 5401 this
                             week
    run                      the walk in the browser (its settings come in
                             the environment from scripts/app-e2e)

`run` prints "ok   STEP" per step and stops at the first failure with
"FAIL STEP: why" and a non-zero exit status. Only 127.0.0.1 is contacted:
the browser aborts any other request, and the walk fails if one was made.
"""

import datetime
import http.client
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from contextlib import contextmanager

ANALYSIS = "INFA"
MUNICIPALITY = "5401"
COUNTY = "54"
CLUSTER_CASES = 30
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Belt and braces: no name resolves, so nothing can leave the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


# ---------------------------------------------------------------- ports


def free_ports(n):
    """N distinct free ports: all bound at once to port 0, then released."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ------------------------------------------------------------- lab data

RAW_HEADER = "sample_id,patient_id,birth_date,sex,municipality,sample_date,analysis,result\n"
AGES = [1, 3, 7, 12, 19, 23, 31, 38, 45, 52, 58, 63, 70, 77, 84, 91]


def raw_row(n, municipality, day, result):
    age = AGES[n % len(AGES)]
    birth = day - datetime.timedelta(days=age * 365 + n % 300)
    sex = "MK"[n % 2]
    return f"S{day:%y%m%d}-{n:07d},P{n:08d},{birth},{sex},{municipality},{day},{ANALYSIS},{result}\n"


def lab_data(baseline_path, cluster_path, today):
    """Writes the two raw exports; returns (baseline rows, cluster rows).

    The baseline has a mild winter season and a small zigzag, the same
    every run: with `[lab.detection]` EARS C2 (min_sigma 2) no week of it
    raises an alarm, and 30 positives in one week do."""
    this_monday = today - datetime.timedelta(days=today.weekday())
    n = 0
    with open(baseline_path, "w") as out:
        out.write(RAW_HEADER)
        for back in range(104, 0, -1):
            monday = this_monday - datetime.timedelta(weeks=back)
            week = monday.isocalendar()[1]
            for muni, phase in (("5401", 0), ("1804", 2)):
                season = round(2.5 * math.cos(2 * math.pi * (week - 6) / 52))
                positive = 8 + season + (0, 1, 0, -1)[(back + phase) % 4]
                negative = 2 * positive + 3 + back % 3
                for k in range(positive + negative):
                    n += 1
                    day = monday + datetime.timedelta(days=k % 5)
                    out.write(raw_row(n, muni, day, "POS" if k < positive else "NEG"))
    base_rows = n
    days = (today - this_monday).days + 1
    with open(cluster_path, "w") as out:
        out.write(RAW_HEADER)
        for k in range(CLUSTER_CASES + 10):
            n += 1
            day = this_monday + datetime.timedelta(days=k % days)
            out.write(raw_row(n, MUNICIPALITY, day, "POS" if k < CLUSTER_CASES else "NEG"))
    return base_rows, n - base_rows


# ----------------------------------------------------------------- walk


class Failed(Exception):
    pass


def need(cond, why):
    if not cond:
        raise Failed(why)


def env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit(f"app_e2e.py run: {name} is not set (run scripts/app-e2e)")
    return v


class Walk:
    def __init__(self):
        self.snow = env("SNOW")
        self.work = env("WORK")
        self.url = env("APP_URL")
        self.po_c2s = env("PO_C2S")
        self.gp1 = env("GP1_JID")
        self.gp2 = env("GP2_JID")
        self.p12 = env("GP1_P12")
        self.otp = open(env("GP1_OTP")).read().strip()
        self.pass_file = env("PASS_FILE")
        self.passphrase = open(self.pass_file).read().splitlines()[0]
        self.gp2_keystore = env("GP2_KEYSTORE")
        self.cluster = env("CLUSTER_FILE")
        self.lab_home = env("LAB_HOME")
        self.shots = env("SHOTS")
        self.app_pid = env("APP_PID")
        u = urllib.parse.urlsplit(self.url)
        self.port = u.port
        self.base = f"http://127.0.0.1:{self.port}"
        self.page = None
        self.procs = []
        self.foreign = []
        self.console_errors = []
        self.navigations = []
        self.shot_list = []
        os.makedirs(self.shots, exist_ok=True)

    # --- helpers ---------------------------------------------------------

    def gp2_args(self):
        return ["--keystore", self.gp2_keystore, "--passphrase-file", self.pass_file, "--server", self.po_c2s]

    def snow_run(self, *args, timeout=60):
        r = subprocess.run([self.snow, *args], capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def listener(self, seconds):
        """GP 2 listening for one chat message; returns once it listens."""
        out = open(os.path.join(self.work, f"listen-{len(self.procs)}.log"), "w+")
        p = subprocess.Popen(
            [self.snow, "chat", "listen", *self.gp2_args(), "--count", "1", "--timeout", str(seconds)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(p)
        deadline = time.time() + 30
        while time.time() < deadline:
            out.seek(0)
            if "Listening as" in out.read():
                return p, out
            need(p.poll() is None, f"snow chat listen (GP 2) ended early: {self.read(out)}")
            time.sleep(0.1)
        raise Failed("snow chat listen (GP 2) did not start listening in 30 s")

    @staticmethod
    def read(out):
        out.seek(0)
        return out.read()

    def wait_listener(self, p, out, timeout):
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"snow chat listen (GP 2) did not end in {timeout} s: {self.read(out)}")
        text = self.read(out)
        need(p.returncode == 0, f"snow chat listen (GP 2) failed ({p.returncode}): {text}")
        return [l for l in text.splitlines() if not l.startswith("Listening as")]

    def shot(self, name, page=None, full_page=False):
        path = os.path.join(self.shots, name)
        (page or self.page).screenshot(path=path, full_page=full_page)
        os.chmod(path, 0o644)
        self.shot_list.append(path)

    def server_links(self):
        """The app's connections to the PO's c2s port (ss)."""
        port = self.po_c2s.rsplit(":", 1)[1]
        out = subprocess.run(["ss", "-Htnp", "state", "established", f"( dport = :{port} )"],
                             capture_output=True, text=True).stdout
        return sum(1 for line in out.splitlines() if f"pid={self.app_pid}," in line)

    def links_become(self, n, seconds=5):
        deadline = time.time() + seconds
        while (have := self.server_links()) != n:
            need(time.time() < deadline, f"the app has {have} connections to the Snow server, not {n}")
            time.sleep(0.2)

    def submit(self, selector):
        """Submits a form by its button; a refusal (403) fails with the app's words."""
        page = self.page
        is_post = lambda r: r.request.method == "POST" and r.request.resource_type == "document"  # noqa: E731
        aborted = []
        on_failed = lambda req: aborted.append(f"{req.method} {req.url} {req.failure}")  # noqa: E731
        page.on("requestfailed", on_failed)
        try:
            with page.expect_navigation():
                with page.expect_response(is_post) as answer:
                    page.click(selector)
            r = answer.value
        except Exception as e:
            raise Failed(f"{e}; requests that failed meanwhile: {aborted}; the page is now {page.url}") from None
        finally:
            page.remove_listener("requestfailed", on_failed)
        if r.status == 403:
            raise Failed(f"the app refused the form (POST {urllib.parse.urlsplit(r.url).path}: HTTP 403 "
                         f"{page.locator('main').inner_text()!r}; the browser sent Origin: "
                         f"{r.request.header_value('origin')!r})")
        return r

    def csrf(self):
        action = self.page.locator("form[action*='csrf=']").first.get_attribute("action")
        need(action and "csrf=" in action, "no form on the page carries the CSRF token")
        return urllib.parse.parse_qs(urllib.parse.urlsplit(action).query)["csrf"][0]

    def mark(self):
        """A marker that survives only if the page is not reloaded."""
        self.page.evaluate("window.__e2e_marker = 'still the same page'")
        self.navigations.clear()

    def still_same_page(self, what):
        m = self.page.evaluate("window.__e2e_marker")
        need(m == "still the same page" and not self.navigations,
             f"{what}: the page was reloaded or left (navigations: {self.navigations})")

    def watch(self, page):
        def on_request(req):
            host = urllib.parse.urlsplit(req.url).hostname
            if host not in ("127.0.0.1", None) and not req.url.startswith(("data:", "blob:", "about:")):
                self.foreign.append(req.url)

        page.on("request", on_request)
        # The walk's own wrong passphrases answer 400 and 401; anything else is a fault.
        expected = ("status of 400 (Bad Request)", "status of 401 (Unauthorized)")
        page.on("console", lambda m: self.console_errors.append(m.text)
                if m.type == "error" and not m.text.endswith(expected) else None)
        page.on("pageerror", lambda e: self.console_errors.append(f"page error: {e}"))
        page.on("framenavigated", lambda f: self.navigations.append(f.url) if f == page.main_frame else None)

    def only_here(self, route):
        """Requests to anything but the app are aborted in the browser."""
        req = route.request
        if urllib.parse.urlsplit(req.url).hostname != "127.0.0.1":
            route.abort()
        else:
            route.continue_()

    def layout_problems(self, page):
        """Overlapping text or controls, and sideways scrolling, on the page
        as it is now (the chart's own labels checked among themselves and
        against the chart's edges)."""
        return page.evaluate(
            """() => {
  const visible = (e) => {
    const s = getComputedStyle(e);
    return s.visibility !== 'hidden' && s.display !== 'none' &&
      !e.closest('[hidden], dialog:not([open]), .visually-hidden, .skip, noscript');
  };
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (e.getAttribute('class') ? '.' + e.getAttribute('class').trim().split(/\\s+/).join('.') : '') +
    ' "' + (e.textContent || e.value || '').trim().slice(0, 30) + '"';
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 2 &&
                            Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 2;
  const check = (els) => {
    const boxes = els.filter(visible).map((e) => [e, [...e.getClientRects()].filter((r) => r.width > 0 && r.height > 0)]);
    const bad = [];
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const [a, ra] = boxes[i], [b, rb] = boxes[j];
      if (a.contains(b) || b.contains(a)) continue;
      if (ra.some((x) => rb.some((y) => overlap(x, y)))) bad.push(name(a) + ' overlaps ' + name(b));
    }
    return bad;
  };
  const dialog = document.querySelector('dialog[open]');
  const root = dialog || document.body;
  const texts = [...root.querySelectorAll('a, button, input, select, textarea, label, h1, h2, h3, p, small, th, td, li > span, caption, .badge, #conn, .brand')]
    .filter((e) => !e.closest('svg'));
  const bad = check(texts);
  for (const svg of document.querySelectorAll('svg.chart')) {
    bad.push(...check([...svg.querySelectorAll('text')]));
    const edge = svg.getBoundingClientRect();
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      if (r.width > 0 && (r.left < edge.left - 1 || r.right > edge.right + 1 || r.top < edge.top - 1 || r.bottom > edge.bottom + 1))
        bad.push(name(t) + ' is cut off at the edge of the chart');
    }
  }
  const de = document.documentElement;
  return { bad: bad.slice(0, 12), sideways: de.scrollWidth - de.clientWidth };
}"""
        )

    def no_layout_problems(self, page, what):
        r = self.layout_problems(page)
        need(not r["bad"], f"{what}: {'; '.join(r['bad'])}")
        need(r["sideways"] <= 1, f"{what}: the page scrolls sideways by {r['sideways']} px")

    # --- the walk --------------------------------------------------------

    def run(self, p):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            self.walk(browser)
        finally:
            browser.close()

    def walk(self, browser):
        steps = Steps(self)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True, locale="en-GB")
        # Anything but the app is refused before it leaves the browser.
        ctx.route("**/*", self.only_here)
        page = self.page = ctx.new_page()
        page.set_default_timeout(30_000)
        self.watch(page)
        b = self.base

        with steps("the one-time link opens the first-run page"):
            page.goto(self.url)
            page.wait_for_url(f"{b}/setup")
            for field in ("file", "password", "passphrase", "passphrase2"):
                need(page.locator(f"label[for='{field}']").count() == 1, f"no label for #{field}")
                need(page.locator(f"#{field}").count() == 1, f"no #{field}")
            need(page.locator("#badge-alerts").count() == 0, "navigation shown before the key is imported")

        with steps("first run: different passphrases are refused, nothing is imported"):
            page.set_input_files("#file", self.p12)
            page.fill("#password", self.otp)
            page.fill("#passphrase", self.passphrase)
            page.fill("#passphrase2", self.passphrase)
            self.shot("01-first-run.png")
            page.fill("#passphrase2", self.passphrase + " not the same")
            self.submit("form[action^='/setup'] button[type=submit]")
            page.wait_for_load_state()
            need(page.locator(".notice.error").count() == 1, "no error notice for different passphrases")
            need(not os.path.exists(os.path.join(os.environ["GP1_HOME"], "keystore")), "a key store was written")

        with steps("first run: the .p12, the SMS password and the passphrase twice log the GP in"):
            page.set_input_files("#file", self.p12)
            page.fill("#password", self.otp)
            page.fill("#passphrase", self.passphrase)
            page.fill("#passphrase2", self.passphrase)
            self.submit("form[action^='/setup'] button[type=submit]")
            page.wait_for_url(f"{b}/alerts", timeout=60_000)
            need(self.gp1 in page.locator("#conn").inner_text(), "the header does not say who is logged in")
            need(os.path.isdir(os.path.join(os.environ["GP1_HOME"], "keystore")), "no key store was written")
            self.links_become(1)

        with steps("the language switch: Norwegian and back to English"):
            self.submit("form[action^='/lang'] button")
            page.wait_for_function("() => document.documentElement.lang === 'nb'")
            need("Søk" in page.locator("header nav").inner_text(), "the Norwegian navigation has no 'Søk'")
            self.submit("form[action^='/lang'] button")
            page.wait_for_function("() => document.documentElement.lang === 'en'")

        with steps("lock: the unlock page asks for the passphrase; a wrong one is refused"):
            self.submit("form[action^='/lock'] button")
            page.wait_for_url(f"{b}/unlock")
            need(page.locator("label[for='passphrase']").count() == 1, "no label for the passphrase")
            self.shot("02-unlock.png")
            page.fill("#passphrase", "not my passphrase at all")
            self.submit("form[action^='/unlock'] button[type=submit]")
            page.wait_for_load_state()
            need(page.locator(".notice.error").count() == 1, "no error notice for a wrong passphrase")

        with steps("lock logs the app out of the Snow server (no connection left)"):
            self.links_become(0)

        with steps("unlock with the passphrase logs in again"):
            page.fill("#passphrase", self.passphrase)
            self.submit("form[action^='/unlock'] button[type=submit]")
            page.wait_for_url(f"{b}/alerts", timeout=60_000)
            need(self.gp1 in page.locator("#conn").inner_text(), "not logged in after unlocking")
            self.links_become(1)

        with steps("search: the lab's analyses and areas in the form, the chart and table of the answer"):
            page.goto(f"{b}/search")
            page.wait_for_selector("#search-form")
            need(page.locator(f"#analysis option[value='{ANALYSIS}']").count() == 1, f"{ANALYSIS} not offered")
            need(page.locator(f"#area option[value='{MUNICIPALITY}']").count() == 1, f"{MUNICIPALITY} not offered")
            page.select_option("#analysis", ANALYSIS)
            page.select_option("#area", MUNICIPALITY)
            page.select_option("#weeks", "26")
            page.click("#search-form button[type=submit]")
            page.wait_for_selector("svg.chart")
            rows = page.locator("#result table tbody tr")
            need(rows.count() == 26, f"{rows.count()} rows in the table, not 26")
            need(page.locator("svg.chart rect.bar").count() >= 25, "fewer than 25 bars in the chart")
            need(page.locator("#result td.no-data").count() == 1, "this week (no data yet) is not marked 'no data'")
            self.search_url = page.url
            self.no_layout_problems(page, "search result")
            self.shot("03-search-result.png", full_page=True)

        with steps("search: the CSV link downloads period,tested,positive,persons,note — the same as snow search"):
            with page.expect_download() as d:
                page.click("#result a[download]")
            text = open(d.value.path(), encoding="utf-8").read()
            need(text.splitlines()[0] == "period,tested,positive,persons,note", f"CSV header: {text.splitlines()[:1]}")
            need(len(text.splitlines()) == 27, f"{len(text.splitlines())} CSV lines, not 27")
            rc, cli = self.snow_run("search", *self.gp2_args(), "--lab", "lab.example", "--analysis", ANALYSIS,
                                    "--area", MUNICIPALITY, "--weeks", "26", "--format", "csv")
            need(rc == 0, f"snow search (GP 2) failed: {cli}")
            need(cli.strip() == text.strip(), f"the app's CSV differs from snow search's:\n{text}\n---\n{cli}")

        with steps("alerts: subscribing to INFA in 5401 through the form (and its county 54)"):
            page.goto(f"{b}/alerts")
            page.fill("#sub-analysis", ANALYSIS)
            page.fill("#sub-area", MUNICIPALITY)
            self.submit("form[action^='/alerts/subscribe'] button[type=submit]")
            page.wait_for_url(f"{b}/alerts")
            subs = page.locator("section[aria-labelledby='subs-title']").inner_text()
            for node in (f"{ANALYSIS}/{MUNICIPALITY}", f"{ANALYSIS}/{COUNTY}"):
                need(node in subs, f"{node} not among the subscriptions: {subs}")
            need(page.locator("#alert-list li.card").count() == 0, "alerts before the cluster")

        with steps("a real alert arrives live: the lab's detection agent's signal, no reload"):
            self.mark()
            incoming = os.path.join(self.lab_home, "data", "in")
            shutil.copy(self.cluster, os.path.join(incoming, "cluster.csv.part"))
            os.rename(os.path.join(incoming, "cluster.csv.part"), os.path.join(incoming, "cluster.csv"))
            t0 = time.time()
            page.wait_for_selector("#alert-list li.card", timeout=120_000)
            self.alert_seconds = time.time() - t0
            self.still_same_page("the alert")
            badge = page.locator("#badge-alerts")
            need(badge.is_visible() and int(badge.inner_text()) >= 1, f"the alerts badge shows {badge.inner_text()!r}")
            need("New alert" in page.locator("#live").inner_text(), "the live region does not announce it")
            # Two signals come at once (municipality 5401 and county 54): both are listed.
            for area in (MUNICIPALITY, COUNTY):
                card = page.locator(f"#alert-list li.card a:has-text('{ANALYSIS} {area},')")
                try:
                    card.wait_for(timeout=15_000)
                except Exception:
                    shown = page.locator("#alert-list").inner_text()
                    raise Failed(f"the {area} signal is not listed 15 s after the first one came (the badge says "
                                 f"{badge.inner_text()}); the list shows: {shown!r}")
            self.still_same_page("the alerts")
            need(page.locator("#alert-list li.card.signal").count() >= 1, "the alert is not shown as a signal")
            self.no_layout_problems(page, "alert list")
            self.shot("04-alerts-list.png", full_page=True)

        with steps("the alert: its series as a chart with the threshold line"):
            page.click(f"#alert-list li.card a:has-text('{ANALYSIS} {MUNICIPALITY},')")
            page.wait_for_selector("svg.chart")
            self.alert_url = page.url
            need(page.locator("svg.chart line.threshold").count() == 1, "no threshold line in the chart")
            need("threshold" in (page.locator("svg.chart text.threshold-label").text_content() or ""), "no threshold label")
            need(page.locator("svg.chart rect.bar").count() >= 10, "the series has fewer than 10 bars")
            need("EARS_C2" in page.locator("main").inner_text(), "the algorithm is not named")

        with steps("the alert: confirmed with a comment, shown as confirmed by this GP"):
            comment = "Two of our patients too (e2e)"
            page.fill("#comment", comment)
            self.submit("form[action*='/confirm'] button[type=submit]")
            page.wait_for_url(self.alert_url)
            main = page.locator("main").inner_text()
            need(self.gp1 in main and comment in main, "the confirmation is not listed on the alert")
            need(page.locator("#comment").count() == 0, "the confirm form is still offered")
            self.no_layout_problems(page, "alert detail")
            self.shot("05-alert-detail.png", full_page=True)

        with steps("GP 2 (snow alert list) sees the confirmation with its comment"):
            deadline = time.time() + 30
            while True:
                rc, out = self.snow_run("alert", "list", *self.gp2_args())
                if rc == 0 and f"confirmed by {self.gp1}" in out and comment in out:
                    break
                need(time.time() < deadline, f"not in snow alert list of GP 2 within 30 s:\n{out}")
                time.sleep(1)

        with steps("alerts: the confirmed alert is under 'Confirmed', no longer new"):
            page.goto(f"{b}/alerts?show=confirmed")
            need(page.locator(f"#alert-list li.card a:has-text('{MUNICIPALITY}')").count() == 1, "not under Confirmed")
            page.goto(f"{b}/alerts")
            need(page.locator(f"#alert-list li.card a:has-text('{MUNICIPALITY}')").count() == 0, "still under New")

        with steps("chat: GP 2 added as a contact"):
            page.goto(f"{b}/chat")
            page.fill("#jid", self.gp2)
            self.submit("form[action^='/chat/contacts'] button[type=submit]")
            page.wait_for_url(f"{b}/chat")
            need(self.gp2 in page.locator("#contacts").inner_text(), "GP 2 is not among the contacts")
            self.no_layout_problems(page, "chat list")
            self.shot("06-chat-list.png")

        listen, listen_out = self.listener(15)
        with steps("chat: a new conversation opens with the sensitivity dialog"):
            page.click(f"#contacts a[href='/chat/with/{self.gp2}']")
            page.wait_for_url(f"{b}/chat/with/{self.gp2}")
            page.wait_for_function("() => document.getElementById('sensitivity')?.open === true", timeout=5_000)
            need(page.locator("#send-form").get_attribute("data-confirmed") == "false", "the form is confirmed")
            self.no_layout_problems(page, "sensitivity dialog")
            self.shot("07-chat-dialog.png")

        with steps("chat: cancelled, a message submitted in the page is not sent; the dialog opens again"):
            page.click("#dialog-cancel")
            page.wait_for_function("() => document.getElementById('sensitivity').open === false")
            self.mark()
            page.fill("#text", "NOT TO BE SENT: submitted before confirming")
            page.click("#send-form button[type=submit]")
            page.wait_for_function("() => document.getElementById('sensitivity').open === true", timeout=5_000)
            self.still_same_page("submitting before confirming")
            page.click("#dialog-cancel")

        with steps("chat: the app answers 409 to a send posted without confirming (with the page's CSRF token)"):
            action = page.locator("#send-form").get_attribute("action")
            r = page.request.post(f"{b}{action}", form={"text": "NOT TO BE SENT: posted before confirming"},
                                  headers={"Origin": b}, max_redirects=0)
            need(r.status == 409, f"HTTP {r.status}, not 409")
            need("must" in r.text().lower() or "confirm" in r.text().lower(), "the 409 page does not say why")

        with steps("chat: GP 2 (snow chat listen, online the whole time) received nothing"):
            lines = self.wait_listener(listen, listen_out, 30)
            need(not lines, f"GP 2 received: {lines}")

        message = "Influenza A is up in 5401 this week (e2e)"
        with steps("chat: confirmed in the dialog, the message goes out and GP 2 receives it"):
            page.fill("#text", message)
            page.click("#send-form button[type=submit]")
            page.wait_for_function("() => document.getElementById('sensitivity').open === true", timeout=5_000)
            listen, listen_out = self.listener(30)
            page.click("#dialog-confirm")
            page.wait_for_function("() => document.getElementById('send-form').dataset.confirmed === 'true'")
            need(page.locator("#text").input_value() == message, "the message was lost in the dialog")
            self.submit("#send-form button[type=submit]")
            page.wait_for_selector(f"#lines li.mine:has-text('{message}')")
            need(page.locator("#sensitivity").count() == 0, "the dialog is still on the page after confirming")
            lines = self.wait_listener(listen, listen_out, 40)
            need(len(lines) == 1 and message in lines[0] and f"[encrypted, signed by {self.gp1}]" in lines[0],
                 f"GP 2 received: {lines}")

        reply = "Same here, three this week (e2e reply)"
        with steps("chat: GP 2's reply (snow chat send) appears live in the conversation"):
            self.mark()
            rc, out = self.snow_run("chat", "send", *self.gp2_args(), "--to", self.gp1, reply)
            need(rc == 0, f"snow chat send (GP 2) failed: {out}")
            page.wait_for_selector(f"#lines li.theirs:has-text('{reply}')", timeout=30_000)
            self.still_same_page("the reply")
            need(page.locator("#lines li.theirs .warn").count() == 0, "the reply is marked as not encrypted")
            self.no_layout_problems(page, "conversation")
            self.shot("08-chat-reply.png", full_page=True)

        with steps("200% zoom (640×450 CSS px at 2×): no overlap, no sideways scrolling"):
            zoom = browser.new_context(viewport={"width": 640, "height": 450}, device_scale_factor=2, locale="en-GB")
            zoom.route("**/*", self.only_here)
            zoom.add_cookies(ctx.cookies())
            zp = zoom.new_page()
            self.watch(zp)
            for name, url in (("search", self.search_url), ("alerts", f"{b}/alerts?show=all"),
                              ("alert", self.alert_url), ("chat", f"{b}/chat"),
                              ("conversation", f"{b}/chat/with/{self.gp2}")):
                zp.goto(url)
                zp.wait_for_load_state()
                self.no_layout_problems(zp, f"{name} at 200%")
                if name == "search":
                    self.shot("09-search-200-percent.png", page=zp)
            zoom.close()

        with steps("security: the one-time link works only once"):
            status, _, _ = http_req("GET", self.url, self.port)
            need(status == 403, f"the one-time link again: HTTP {status}, not 403")

        cookie = next((c for c in ctx.cookies() if c["name"] == f"snow_app_{self.port}"), None)
        with steps("security: the session cookie is HttpOnly and SameSite=Strict"):
            need(cookie is not None, f"no cookie snow_app_{self.port}: {ctx.cookies()}")
            need(cookie["httpOnly"] and cookie["sameSite"] == "Strict", f"cookie: {cookie}")
        page.goto(f"{b}/alerts")
        csrf = self.csrf()
        jar = f"{cookie['name']}={cookie['value']}"
        with steps("security: with the cookie, the right Host, Origin and CSRF token the app answers (control)"):
            status, headers, _ = http_req("GET", f"{b}/alerts", self.port, {"Cookie": jar})
            need(status == 200, f"GET /alerts: HTTP {status}")
            csp = headers.get("content-security-policy", "")
            need("script-src 'self'" in csp and "frame-ancestors 'none'" in csp, f"CSP: {csp!r}")
            status, _, _ = http_req("POST", f"{b}/lang?csrf={csrf}", self.port,
                                    {"Cookie": jar, "Origin": b}, "lang=en")
            need(status in (302, 303), f"POST /lang: HTTP {status}")
        refusals = [
            ("a page without the cookie", "GET", f"{b}/alerts", {}, None),
            ("the event stream without the cookie", "GET", f"{b}/events", {}, None),
            ("a foreign Host header (DNS rebinding)", "GET", f"{b}/alerts",
             {"Cookie": jar, "Host": f"rebind.example:{self.port}"}, None),
            ("a foreign Host header for the script", "GET", f"{b}/assets/app.js",
             {"Host": f"rebind.example:{self.port}"}, None),
            ("a POST with a foreign Origin", "POST", f"{b}/lang?csrf={csrf}",
             {"Cookie": jar, "Origin": "http://evil.example"}, "lang=en"),
            ("a POST with Origin null", "POST", f"{b}/lang?csrf={csrf}", {"Cookie": jar, "Origin": "null"}, "lang=en"),
            ("a POST without Origin", "POST", f"{b}/lang?csrf={csrf}", {"Cookie": jar}, "lang=en"),
            ("a POST without the CSRF token", "POST", f"{b}/lang", {"Cookie": jar, "Origin": b}, "lang=en"),
            ("a POST with a wrong CSRF token", "POST", f"{b}/lang?csrf={'0' * 64}", {"Cookie": jar, "Origin": b},
             "lang=en"),
            ("a send without the CSRF token", "POST", f"{b}/chat/with/{self.gp2}/send", {"Cookie": jar, "Origin": b},
             "text=forged"),
            ("a wrong session cookie", "GET", f"{b}/alerts", {"Cookie": f"{cookie['name']}={'0' * 64}"}, None),
        ]
        for what, method, url, headers, body in refusals:
            with steps(f"security: refused (403): {what}"):
                status, _, _ = http_req(method, url, self.port, headers, body)
                need(status == 403, f"HTTP {status}, not 403")

        with steps("only 127.0.0.1 was contacted, and no script or CSP error in the pages"):
            need(not self.foreign, f"requests elsewhere: {self.foreign[:5]}")
            need(not self.console_errors, f"console errors: {self.console_errors[:5]}")
        ctx.close()


def http_req(method, url, port, headers=None, body=None):
    """One request over real HTTP (no redirects followed): status, headers."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    path = u.path + (f"?{u.query}" if u.query else "")
    h = dict(headers or {})
    h.setdefault("Host", f"127.0.0.1:{port}")
    if body is not None:
        h["Content-Type"] = "application/x-www-form-urlencoded"
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in h.items():
        c.putheader(k, v)
    data = body.encode() if body is not None else None
    if data is not None:
        c.putheader("Content-Length", str(len(data)))
    c.endheaders(data)
    if u.path == "/events":
        r = c.getresponse()
        status, hdrs = r.status, {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return status, hdrs, b""
    r = c.getresponse()
    out = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, out


class Steps:
    """`with steps(NAME):` prints "ok   NAME", or "FAIL NAME: why" and stops."""

    def __init__(self, walk):
        self.walk = walk

    @contextmanager
    def __call__(self, name):
        try:
            yield
        except Exception as e:  # noqa: BLE001 — every failure stops the walk, said by step
            why = str(e).strip() or type(e).__name__
            print(f"FAIL {name}: {why}", flush=True)
            try:
                if self.walk.page is not None:
                    path = os.path.join(self.walk.work, "failure.png")
                    self.walk.page.screenshot(path=path, full_page=True)
                    print(f"     page {self.walk.page.url}, screenshot {path}", flush=True)
            except Exception:  # noqa: BLE001
                pass
            raise SystemExit(1)
        print(f"ok   {name}", flush=True)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "ports":
        print("\n".join(map(str, free_ports(int(sys.argv[2])))))
        return
    if len(sys.argv) == 4 and sys.argv[1] == "lab-data":
        today = datetime.datetime.now(datetime.timezone.utc).date()
        base, cluster = lab_data(sys.argv[2], sys.argv[3], today)
        print(f"{base} baseline rows, {cluster} cluster rows")
        return
    if len(sys.argv) == 2 and sys.argv[1] == "run":
        from playwright.sync_api import sync_playwright

        walk = Walk()
        t0 = time.time()
        try:
            with sync_playwright() as p:
                walk.run(p)
        finally:
            for proc in walk.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        print(f"the walk took {time.time() - t0:.0f} s (the alert came {walk.alert_seconds:.1f} s after the file)")
        print("screenshots: " + " ".join(os.path.basename(s) for s in walk.shot_list))
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
