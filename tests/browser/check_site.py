"""Open every chapter of the built book in headless Chromium and check it renders.

Usage (after ``jupyter-book build . -W -n --keep-going``)::

    python tests/browser/check_site.py [--site _build/html] [--screenshots DIR]

The site is served from a loopback port; Chromium resolves no other host, so a
page that needs the network (a CDN script, a web font) fails here as it would
for a reader offline. For each page in ``_toc.yml`` it checks that

* the page loads with a title and a non-empty article with a heading;
* every math element is typeset by MathJax (``mjx-container``), with no TeX error;
* every image has loaded (``naturalWidth > 0``) and is not shrunk to less than
  half its size to fit the column (its labels would be illegible);
* no table or figure is wider than the article column at 1280 px (it would be cut
  off or scroll sideways), and no code block or output scrolls sideways;
* no notebook output is a traceback, unless its cell is tagged raises-exception;
* the browser console has no SEVERE entry;

and saves a full-page screenshot. It prints one line per page and exits 1 if any
check failed. Needs Debian's ``chromium`` and ``chromium-driver`` and the Python
package ``selenium``. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

REPO = Path(__file__).resolve().parents[2]


@dataclass
class PageResult:
    """What was found on one page."""

    doc: str
    title: str = ""
    math: str = "-"
    images: str = "-"
    wide_code: int = 0  # code blocks that scroll sideways (a problem)
    problems: list[str] = field(default_factory=list)
    screenshot: str = ""


def toc_docs(toc: Path) -> list[str]:
    """Document names in ``_toc.yml`` order: the root, then every file entry."""
    data = yaml.safe_load(toc.read_text(encoding="utf-8"))
    docs = [data["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                docs.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in data.items() if k != "root"})
    return [str(Path(doc).with_suffix("")) if "." in doc else doc for doc in docs]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, no request log; an empty favicon so none is missing."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on 127.0.0.1 at a free port; yield its base URL."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def make_driver(args: argparse.Namespace, profile: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        # Resolve no host but the loopback one: nothing leaves this machine.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        f"--window-size={args.width},{args.height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=args.chromedriver)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(args.timeout)
    return driver


def wait_for(driver: webdriver.Chrome, script: str, timeout: float) -> object:
    """Poll a JavaScript expression until it is truthy; return its last value."""
    deadline = time.monotonic() + timeout
    value = driver.execute_script(f"return {script};")
    while not value and time.monotonic() < deadline:
        time.sleep(0.2)
        value = driver.execute_script(f"return {script};")
    return value


def is_external(message: str, base: str) -> bool:
    """True when a console message is about a URL on another host."""
    ours = urlparse(base).netloc
    for word in message.split():
        url = urlparse(word.strip("'\"()"))
        if url.scheme in ("http", "https") and url.netloc and url.netloc != ours:
            return True
    return False


def check_page(
    driver: webdriver.Chrome, base: str, doc: str, args: argparse.Namespace
) -> PageResult:
    result = PageResult(doc)
    path = args.site / f"{doc}.html"
    if not path.is_file():
        result.problems.append(f"{path} was not built")
        return result
    driver.get_log("browser")  # drop what earlier pages left
    driver.get(base + f"{doc}.html")

    result.title = driver.title
    if not result.title or "404" in result.title:
        result.problems.append(f"bad title {result.title!r}")
    article = driver.execute_script(
        "const a = document.querySelector('article');"
        "return a ? [a.innerText.trim().length, a.querySelectorAll('h1').length]"
        " : [0, 0];"
    )
    if article[0] < 20 or article[1] < 1:
        result.problems.append(f"empty article (chars, h1s) = {article}")

    n_math = driver.execute_script("return document.querySelectorAll('.math').length;")
    if n_math:
        typeset = wait_for(
            driver,
            f"document.querySelectorAll('mjx-container').length >= {n_math}"
            " && document.querySelectorAll('mjx-container').length",
            args.timeout,
        )
        n_done = driver.execute_script(
            "return document.querySelectorAll('mjx-container').length;"
        )
        result.math = f"{n_done}/{n_math}"
        if not typeset:
            result.problems.append(f"MathJax typeset {n_done} of {n_math} formulas")
        errors = driver.execute_script(
            "return Array.from(document.querySelectorAll('mjx-merror'))"
            ".map(e => e.getAttribute('data-mjx-error') || e.textContent);"
        )
        if errors:
            result.problems.append(f"TeX errors: {errors[:3]}")

    driver.execute_script(
        "document.querySelectorAll('img').forEach(i => i.loading = 'eager');"
    )
    wait_for(
        driver,
        "Array.from(document.images).every(i => i.complete)",
        args.timeout,
    )
    broken = driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.getAttribute('src'));"
    )
    n_images = driver.execute_script("return document.images.length;")
    result.images = f"{n_images - len(broken)}/{n_images}"
    if broken:
        result.problems.append(f"images not loaded: {broken[:5]}")

    wide = driver.execute_script(
        "const a = document.querySelector('article');"
        "if (!a) return [[], [], 0];"
        "const w = a.clientWidth + 1;"
        "const tables = Array.from(a.querySelectorAll('table'))"
        "  .filter(t => t.getBoundingClientRect().width > w || t.scrollWidth > w)"
        "  .map(t => (t.innerText || '').trim().slice(0, 40));"
        "const shrunk = Array.from(a.querySelectorAll('img'))"
        "  .filter(i => i.naturalWidth > 0 && i.getBoundingClientRect().width > 0"
        "    && i.getBoundingClientRect().width < 0.5 * i.naturalWidth"
        "    && i.naturalWidth > w)"
        "  .map(i => (i.getAttribute('src') || '').slice(0, 60));"
        "const pres = Array.from(a.querySelectorAll('pre'))"
        "  .filter(p => p.scrollWidth > p.clientWidth + 1).length;"
        "return [tables, shrunk, pres];"
    )
    tables, shrunk, result.wide_code = wide
    if tables:
        result.problems.append(f"tables wider than the column: {tables[:3]}")
    if shrunk:
        result.problems.append(f"images shrunk below half size: {shrunk[:3]}")
    if result.wide_code:  # _static/aiayn.css wraps code and outputs
        result.problems.append(f"{result.wide_code} code blocks scroll sideways")

    tracebacks = driver.execute_script(
        "return document.querySelectorAll("
        "'.cell:not(.tag_raises-exception) .output.traceback').length;"
    )
    if tracebacks:
        result.problems.append(f"{tracebacks} traceback output(s) on the page")

    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        if args.allow_external and is_external(entry["message"], base):
            continue
        result.problems.append(f"console: {entry['message'][:300]}")

    args.screenshots.mkdir(parents=True, exist_ok=True)
    shot = args.screenshots / f"{doc.replace('/', '__')}.png"
    height = driver.execute_script(
        "return Math.max(document.body.scrollHeight,"
        " document.documentElement.scrollHeight);"
    )
    # Make the viewport as tall as the page, then capture it: steadier than
    # captureBeyondViewport, which can catch the theme mid-layout.
    metrics = {"width": args.width, "height": min(height, args.max_height)}
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {**metrics, "deviceScaleFactor": 1, "mobile": False},
    )
    time.sleep(0.5)
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    shot.write_bytes(base64.b64decode(png["data"]))
    result.screenshot = str(shot)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=REPO / "_build" / "html")
    parser.add_argument("--toc", type=Path, default=REPO / "_toc.yml")
    parser.add_argument(
        "--screenshots", type=Path, default=Path("/tmp/aiayn-screenshots")
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per wait")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument(
        "--max-height", type=int, default=8000, help="screenshot height cap (px)"
    )
    parser.add_argument(
        "--allow-external",
        action="store_true",
        help="ignore console errors about other hosts (default: they fail)",
    )
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"no built site at {args.site}: run jupyter-book build . first")
        return 2

    docs = toc_docs(args.toc)
    results = []
    with (
        serve(args.site) as base,
        tempfile.TemporaryDirectory(prefix="aiayn-chromium-") as profile,
    ):
        driver = make_driver(args, profile)
        try:
            for doc in docs:
                try:
                    results.append(check_page(driver, base, doc, args))
                except Exception as error:  # report the page, go on with the rest
                    results.append(
                        PageResult(doc, problems=[f"{type(error).__name__}: {error}"])
                    )
        finally:
            driver.quit()

    failed = [r for r in results if r.problems]
    for r in results:
        status = "FAIL" if r.problems else "ok  "
        print(
            f"{status} {r.doc:34s} math {r.math:>7s}  images {r.images:>5s}  "
            f"wide code {r.wide_code:3d}  {r.title}"
        )
        for problem in r.problems:
            print(f"       - {problem}")
    print(f"\nscreenshots in {args.screenshots}")
    print(f"code blocks scrolling sideways: {sum(r.wide_code for r in results)}")
    print(f"browser check: {len(results) - len(failed)} pages ok, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
