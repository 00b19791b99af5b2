"""bench/_against.py: end to end against another commit in the same run (issues 10 and 13's comparison)."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))  # a fixed clock, as the bench's


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_gen = _load("_gen")
against = _load("_against")


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    base = tmp_path_factory.mktemp("against")
    outcomes = base / "outcomes.jsonl"
    outcomes.write_text("\n".join(_gen.make_outcomes(300)) + "\n", encoding="utf-8")
    _gen.write_deployment(base / "rules", 10)
    return base, outcomes, base / "rules"


def test_export_writes_the_commit_s_tree(tmp_path):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    tree = against.export(head, tmp_path)
    assert (tree / "engine" / "pipeline.py").read_bytes() == subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{head}:engine/pipeline.py"], capture_output=True, check=True).stdout


def test_export_of_an_unknown_commit_fails(tmp_path):
    with pytest.raises(subprocess.CalledProcessError):
        against.export("0" * 40, tmp_path)


@pytest.mark.slow
def test_compare_runs_each_tree_in_its_own_process_on_the_same_work(workload, tmp_path):
    _, outcomes, rules = workload
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "engine", copy / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    got = against.compare({"here": ROOT, "copy": copy}, rules, outcomes, rounds=2, now=NOW)
    assert got["here"]["engine"] == str(ROOT / "engine")
    assert got["copy"]["engine"] == str(copy / "engine")  # herald imported from the tree it was given
    assert got["here"]["statuses"] == got["copy"]["statuses"]
    assert sum(got["here"]["statuses"].values()) == 300
    for label in got:
        assert len(got[label]["rounds"]) == 2
        assert got[label]["best"] == min(got[label]["rounds"]) > 0


@pytest.mark.slow
def test_a_tree_without_herald_is_an_error_not_a_figure(workload, tmp_path):
    _, outcomes, rules = workload
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="ended"):
        against.compare({"empty": tmp_path / "empty"}, rules, outcomes, rounds=1, now=NOW)


@pytest.mark.slow
def test_the_child_writes_what_the_pipeline_writes_in_this_process(workload, tmp_path):
    """bench/dryrun.py's end-to-end figures come from a Child on this tree: its output is the pipeline's."""
    import contextlib
    import io

    from engine.config.deployment import load_deployment
    from engine.pipeline import Pipeline, plan_line

    _, outcomes, rules = workload
    child = against.Child(ROOT, rules, outcomes, NOW)
    try:
        cpu, wall = child.run_both()
        assert cpu > 0 and wall > 0
        assert child.run(guarded=False) > 0  # the budget off for one run: still runs the whole file
        child.output(tmp_path / "out.jsonl")
    finally:
        child.close()
    with contextlib.chdir(rules):
        dep = load_deployment([str(rules)])
    buf = io.StringIO()
    lines = outcomes.read_text(encoding="utf-8").split("\n")
    for plan in Pipeline(dep, now=NOW, render_channels="first").run_lines(lines):
        buf.write(plan_line(plan) + "\n")
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == buf.getvalue()
    assert buf.getvalue().count("\n") == 300


@pytest.mark.slow
def test_the_release_before_the_render_budget_runs_as_a_child(workload, tmp_path):
    """The default --against commit (8ea434f) has no TemplateStore.limits: its child must still answer (a child
    that set the budget on every run ended at once there, and the comparison printed 'not measured')."""
    _, outcomes, rules = workload
    dryrun = _load("dryrun")
    try:
        tree = against.export(dryrun.BEFORE, tmp_path)
    except subprocess.CalledProcessError:
        pytest.skip(f"{dryrun.BEFORE} is not in this clone's history (a shallow clone)")
    got = against.compare({"here": ROOT, "release": tree}, rules, outcomes, rounds=1, now=NOW)
    assert got["release"]["engine"] == str(tree / "engine")
    assert sum(got["release"]["statuses"].values()) == 300
    assert got["release"]["best"] > 0
