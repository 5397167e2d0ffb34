"""The morning page ``report.html`` in a real headless browser (Debian's ``chromium``).

The page opens from disk and must render with no console message (it has no script, so any
is a problem), no request the page itself starts (NetLog), no reference to anything outside
the file (every ``src``/``href``/``url()`` is a ``data:`` URI or a fragment), and a screenshot
that is not blank. Locally the test skips without chromium; under ``CI=true`` it fails instead
(``.ci/run`` installs chromium).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from test_reconcile_export import CONFIG, DAY, NOW, provider_only_rows
from reconcile_support import report_file
from transfer_wallet.reconcile.export import export_run
from transfer_wallet.reconcile.run import reconcile

#: Requests chromium makes on its own (updates, time, dictionaries) carry this initiator.
BROWSER_OWN = "not an origin"


def chromium() -> str:
    """The chromium binary; skips locally, fails under CI, when there is none."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed but CI=true: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return browser


class _References(HTMLParser):
    """Every URL-ish attribute value of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in ("src", "href", "srcset", "action", "poster", "data")
                       and value is not None]


def outside_references(html: str) -> list[str]:
    """References of the page to anything but itself (``data:`` URIs and ``#fragments`` are fine)."""
    parser = _References()
    parser.feed(html)
    urls = parser.found + re.findall(r"url\(\s*['\"]?([^'\")]+)", html) + re.findall(r"@import\s+['\"]([^'\"]+)", html)
    return [url for url in urls if not url.startswith(("data:", "#"))]


def page_requests(net_log: Path) -> list[str]:
    """URLs the page itself asked for (not chromium's own background requests), from a NetLog file."""
    document = json.loads(net_log.read_text())
    start = document["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [event["params"]["url"] for event in document["events"]
            if event["type"] == start and "url" in event.get("params", {})
            and event["params"].get("initiator") != BROWSER_OWN]


def browser_problems(page: Path, screenshot: Path) -> list[str]:
    """Open ``page`` in headless chromium: every console message, page request and outside reference."""
    net_log = screenshot.with_suffix(".netlog.json")
    run = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--enable-logging=stderr", "--v=0", f"--log-net-log={net_log}",
         "--window-size=1200,1400", f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    problems = [line for line in run.stderr.splitlines() if ":CONSOLE" in line or "net::ERR" in line]
    problems += [f"request: {url}" for url in page_requests(net_log)]
    problems += [f"reference: {url}" for url in outside_references(page.read_text(encoding="utf-8"))]
    return problems


def test_the_html_page_renders_in_a_real_headless_browser_without_errors(db, tmp_path):
    result = reconcile(db, CONFIG, DAY, report_file(provider_only_rows()), now=NOW)
    export_run(db, result, tmp_path / "out", now=NOW + dt.timedelta(days=3))
    screenshot = tmp_path / "report.png"
    assert browser_problems(tmp_path / "out" / "report.html", screenshot) == []
    assert screenshot.stat().st_size > 10_000  # a rendered page with charts, not a blank one


def test_the_browser_check_catches_a_script_error_and_an_outside_reference(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<html><body><h1>x</h1><img src="logo.png"><link rel="stylesheet" href="https://cdn.example/x.css">'
                    '<script>console.error("boom"); missing();</script></body></html>', encoding="utf-8")
    problems = browser_problems(page, tmp_path / "bad.png")
    assert any('"boom"' in p for p in problems) and any("missing is not defined" in p for p in problems)
    assert "reference: logo.png" in problems and "reference: https://cdn.example/x.css" in problems
