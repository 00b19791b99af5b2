"""The HTML report opened in headless Chromium: it renders, the table and the SVG charts are in the DOM.

Needs Debian's chromium (`apt-get install -y chromium`); skipped, saying so, where it is missing.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.cli.report import render
from engine.report import build_report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium): "
                                                         "the HTML report cannot be checked in a browser")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


@pytest.mark.slow
def test_report_renders_in_chromium(scenario, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render(build_report(scenario, timezone_name="UTC"), "html"), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert re.search(r'<table id="report-table">', html)
    assert len(re.findall(r"<tr class=\"(rule|part|total)\">", html)) == 5  # other, tech, tech v1, tech v2, total
    assert len(re.findall(r'<svg class="funnel"', html)) == 2
    assert len(re.findall(r'<rect ', html)) == 12  # six stages per funnel
    assert re.search(r'<svg class="ttn"[^>]*>.*<polyline class="median"', html, re.S)
    assert len(re.findall(r"<circle ", html)) == 2  # one point per day
    shot = tmp_path / "report.png"
    res = chromium(tmp_path, "--hide-scrollbars", "--window-size=1280,1800", f"--screenshot={shot}", page.as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a real page, not a blank one
