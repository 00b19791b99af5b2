"""`herald dry-run` reads its input as it goes: the output of Pipeline.run_lines on the benchmark's outcomes, and
the first plans out before the input has ended."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.config.deployment import load_deployment
from engine.pipeline import Pipeline, plan_line

ROOT = Path(__file__).resolve().parents[2]
HERALD = Path(sys.executable).with_name("herald")
NOW = "2026-11-01T08:00:00+08:00"  # before every generated outcome: real scheduling, as the bench's


def _gen():
    """bench/_gen.py, loaded once (as tests/bench does: registered under its name, which its dataclasses need)."""
    if "_gen" in sys.modules:
        return sys.modules["_gen"]
    spec = importlib.util.spec_from_file_location("_gen", ROOT / "bench" / "_gen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["_gen"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, list[str]]:
    """The bench's generator: a 40-rule deployment and 1,500 outcomes (held, re-sent and broken ones among them)."""
    gen = _gen()
    root = tmp_path_factory.mktemp("generated")
    gen.write_deployment(root, 40)
    return root, gen.make_outcomes(1500)


def test_dry_run_writes_what_run_lines_gives(run_cli, generated) -> None:
    root, lines = generated
    (root / "outcomes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli(["dry-run", "--outcomes", "outcomes.jsonl", "--format", "jsonl", "--now", NOW], cwd=root)
    assert result.exit_code == 0, result.stderr
    with contextlib.chdir(root):  # template files are named relative to the working directory, as the CLI's
        dep = load_deployment([str(root)])
    plans = list(Pipeline(dep, now=datetime(2026, 11, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))),
                          render_channels="first").run_lines(lines))
    assert result.stdout == "".join(plan_line(p) + "\n" for p in plans)
    statuses = {p.status for p in plans}
    assert {"matched", "held", "duplicate", "invalid"} <= statuses  # the mix the generator promises
    assert result.stderr.startswith(f"{len(plans)} outcomes: ")


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.slow
def test_dry_run_answers_before_its_input_ends(generated) -> None:
    """A pipe that stays open after 1,500 JSON lines: their plans are written while the rest may still come (the
    input is read line by line, not whole before the first outcome)."""
    root, lines = generated
    body = ("\n".join(lines) + "\n").encode()  # plans enough to fill the child's output buffer
    proc = subprocess.Popen([str(HERALD), "dry-run", "--outcomes", "-", "--format", "jsonl", "--now", NOW],
                            cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=_env())
    first = threading.Event()
    out: list[bytes] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert proc.stdin is not None
        proc.stdin.write(body)
        proc.stdin.flush()
        assert first.wait(120), "no plan written while the input was still open"
        assert proc.poll() is None  # still waiting for the rest of its input
        proc.stdin.close()
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(30)
    assert len(out) == len([line for line in io.BytesIO(body) if line.strip()])
    assert json.loads(out[0])["outcome"] == json.loads(lines[0])["id"]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_progress_bar_passes_every_plan_through_in_order(enabled: bool) -> None:
    """The bar counts what goes by (the length of a streamed input is not known); it starts after `after` items."""
    from engine.cli.dryrun import progress

    assert list(progress(iter(range(50)), enabled, after=10)) == list(range(50))
    assert list(progress(iter(range(3)), enabled, after=10)) == [0, 1, 2]
