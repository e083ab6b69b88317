"""A real headless Chromium (Debian's `chromium` + `chromedriver`) driven by Selenium, for the report's tests
and benchmark.

Browsers cannot be downloaded here, so Selenium is pointed at the system's chromium and chromedriver
(`apt-get install chromium chromium-driver`; `.ci/run` installs them). Each page gets a fresh profile;
Chrome's console (`browser` log) and its DevTools network events (`performance` log) are recorded so a
test can assert that the page logged no error and sent no request.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)


def find_browser() -> tuple[str, str] | None:
    """`(chromium, chromedriver)` paths, or None when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@dataclass
class PageSession:
    """An open page: the Selenium driver and what the browser logged so far."""

    driver: Any
    url: str
    console: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def collect_logs(self) -> None:
        """Move the browser's console entries and the network requests seen since the last call into
        `console` / `requests` (`(document that sent it, requested URL)`)."""
        self.console.extend(self.driver.get_log("browser"))
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                params = message["params"]
                self.requests.append((params.get("documentURL", ""), params["request"]["url"]))

    def errors(self) -> list[str]:
        """Console entries at level SEVERE (errors, uncaught exceptions, CSP violations)."""
        self.collect_logs()
        return [e["message"] for e in self.console if e.get("level") == "SEVERE"]

    def page_requests(self) -> list[str]:
        """Every URL the page asked for (its own file first)."""
        self.collect_logs()
        return [url for doc, url in self.requests if doc == self.url]

    def outside_requests(self) -> list[str]:
        """Requests the page made for anything but its own file and inline `data:` / `blob:` URLs."""
        return [u for u in self.page_requests() if u != self.url and not u.startswith(("data:", "blob:"))]

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait until the report's script says every chart is drawn; returns the seconds since navigation
        started (the page's load time, measured by the browser's own clock)."""
        from selenium.common.exceptions import TimeoutException

        self.driver.set_script_timeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # a page still busy drawing answers late: that is a wait, not a failure
                if self.driver.execute_script("return !!(window.__report && window.__report.ready)"):
                    return float(self.driver.execute_script("return window.__report.drawnMs")) / 1000
            except TimeoutException:
                continue
            time.sleep(0.05)
        raise TimeoutError(f"the report did not finish drawing within {timeout:.0f} s; errors: {self.errors()}")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)


@contextmanager
def open_page(path: str | Path, *, width: int = 1400, height: int = 1000) -> Iterator[PageSession]:
    """Open `path` (a local HTML file) in a fresh headless Chromium; quit it afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError("chromium and chromedriver are needed: apt-get install -y chromium chromium-driver")
    chromium, chromedriver = found
    profile = tempfile.mkdtemp(prefix="report-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.page_load_strategy = "none"  # `get` returns at once; `wait_ready` waits for the drawing itself
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    # a page of many long runs keeps the browser busy for minutes: allow each driver call that long
    driver.command_executor._client_config.timeout = 1800
    try:
        url = Path(path).resolve().as_uri()
        session = PageSession(driver=driver, url=url)
        driver.set_page_load_timeout(300)
        driver.get_log("performance")  # drop what the start page loaded before ours
        driver.get(url)
        yield session
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
