"""The browser harness for the console: Debian's headless Chromium driven by Selenium (through Debian's
chromedriver) against a real `herald serve` subprocess on loopback. Screenshots go to a temporary directory, so a
test run leaves the tree as it was; `HERALD_SCREENSHOTS=docs/screenshots` (what `make screenshots` sets) writes the
README's instead.

Skipped, saying so, where chromium or chromedriver is missing (`.ci/run` installs both)."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOTS_ENV = "HERALD_SCREENSHOTS"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
MISSING = None if CHROMIUM and DRIVER else ("chromium or chromedriver is not installed (apt-get install -y chromium "
                                            "chromium-driver): the console cannot be checked in a browser")


def new_browser(tmp_path: Path, lang: str = "en-US", width: int = 1280, height: int = 900, phone: bool = False):
    """A headless Chromium; `phone`: emulates a 390x844 phone screen (the window cannot be narrower than 500)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},{height}",
                f"--lang={lang}", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    if phone:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": 390, "height": 844,
                                                                               "pixelRatio": 2.0}})
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    if MISSING:
        pytest.skip(MISSING)
    driver = new_browser(tmp_path)
    try:
        yield driver
    finally:
        driver.quit()


@cache
def _scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="herald-screenshots-")  # removed when the test process ends


def shots_dir() -> Path:
    """Where screenshots go: $HERALD_SCREENSHOTS (a relative path is taken from the repository root), else this
    run's temporary directory."""
    asked = os.environ.get(SHOTS_ENV)
    shots = REPO / asked if asked else Path(_scratch().name)
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def screenshot(driver, name: str) -> Path:
    """Saves the whole page as NAME.png in shots_dir() and checks it is a real page."""
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 600)")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(int(height) + 120, 3000))
    path = shots_dir() / f"{name}.png"
    png = driver.get_screenshot_as_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, name
    path.write_bytes(png)
    return path


def sign_in(driver, url: str, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/console/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[role=alert]") or "/console/login" not in d.current_url,
               navigating=True)


def wait_until(driver, condition, timeout: float = 20.0, navigating: bool = False):
    """Waits (polling, with a deadline) until `condition(driver)` is true, e.g. a new page has loaded.

    `navigating`: the browser may be swapping documents meanwhile, when a WebDriver error (a node or an execution
    context of the page being left) only means "not yet"; the last one is reported if the deadline passes."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (WebDriverException,) if navigating else None
    return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=ignored).until(condition)


def unlabelled_controls(driver) -> list[str]:
    """Every visible form control without an accessible name (a <label for>, a wrapping label, aria-label(ledby))."""
    return driver.execute_script("""
      const out = [];
      for (const el of document.querySelectorAll('input, select, textarea, button')) {
        if (el.type === 'hidden') continue;
        const labelled = (el.labels && el.labels.length) || el.getAttribute('aria-label')
          || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim())
          || el.getAttribute('title');
        if (!labelled) out.push(el.outerHTML.slice(0, 120));
      }
      return out;""")
