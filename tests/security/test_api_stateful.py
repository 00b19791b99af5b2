"""Item 13: schemathesis in stateful mode over the API (the OpenAPI links: post, then get / approve / withdraw the
outcome and its notification), against a live loopback daemon: no 5xx, no response outside the schema."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_support import SECRET, make_deployment

ST = Path(sys.executable).with_name("st")
TOKEN = "stateful-token-0123456789"


@pytest.mark.slow
def test_the_api_holds_under_stateful_schemathesis(tmp_path: Path, daemons, monkeypatch) -> None:
    monkeypatch.setenv("HERALD_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("HERALD_TEST_SECRET", SECRET)
    d = daemons(make_deployment(tmp_path, auth=True))
    cmd = [str(ST if ST.exists() else shutil.which("st")), "run", d.url + "/openapi.json",
           "-H", f"Authorization: Bearer {TOKEN}", "--phases", "stateful", "--checks", "all",
           "--exclude-checks", "positive_data_acceptance", "--max-examples", "30", "--max-time", "40",
           "--workers", "1", "--no-color", "--seed", "20261206"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "Stateful" in run.stdout, run.stdout[-3000:]
