"""Shared test fixtures: throw-away deployments on disk, and the herald CLI run in-process."""
from __future__ import annotations

import itertools
import logging
import os
import sys
from pathlib import Path
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest
from click.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[1]

# Tests that read the real clock (daemons and their scheduling, the CLI planning from now, tracking tokens
# checked against now, the demo): marked `timesensitive`, and run again by .ci/run under libfaketime at a
# Sunday night in Shanghai, on China's National Day and across Berlin's DST change. Tests elsewhere pass
# `now` explicitly. New modules that read the clock belong here (or mark themselves).
TIME_SENSITIVE = ("tests/daemon/", "tests/cli/test_cli.py", "tests/security/test_secrets.py",
                  "tests/channels/test_fallback_real.py", "tests/channels/test_check.py", "tests/tracking/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        rel = Path(str(item.path)).relative_to(root).as_posix() if Path(str(item.path)).is_relative_to(root) else ""
        if rel.startswith(TIME_SENSITIVE):
            item.add_marker(pytest.mark.timesensitive)


@pytest.fixture(autouse=True)
def _herald_log_handler_removed() -> Iterator[None]:
    """A test that runs `herald serve` in-process installs herald's stderr handler on the root logger
    (setup_logging); it goes with the test, so threads that outlive it (a test SMTP server's "EOF received")
    do not print into the suite's output."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    added = [h for h in root.handlers if getattr(h, "_herald", False) and h not in before]
    for h in added:
        root.removeHandler(h)
    if added:
        root.setLevel(level)


def write_files(root: Path, files: Mapping[str, str | None]) -> None:
    """Write {relative path: text} under `root`; a None text means "leave this file out"."""
    for rel, text in files.items():
        if text is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture(autouse=True, scope="module")
def _no_daemon_left_running() -> Iterator[None]:
    """Fails a test module that leaves a `herald serve` subprocess (tests/daemon/daemon_support.py) running,
    after killing it: an orphan outlives pytest, holds claims and keeps polling a store that is gone. Per
    module, not per test: a module-scoped fixture may serve one daemon to all its tests (it stops first)."""
    yield
    support = sys.modules.get("daemon_support")  # not imported: no test started one
    left = support.reap_leftovers() if support is not None else []
    if left:
        pytest.fail("the module left herald serve running (killed now): " + "; ".join(left), pytrace=False)


@pytest.fixture(scope="session")
def pg() -> Iterator:
    """A running throwaway PostgreSQL cluster for the whole session (tests/store/pg_cluster.py); its
    `create_database()` gives a fresh database's URL. Without PostgreSQL installed its tests skip, saying why,
    except under CI (CI=true), where they fail: .ci/run installs Debian's postgresql package, so a missing server
    there is a broken CI, not a skip."""
    import pg_cluster

    if pg_cluster.find_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL (initdb, pg_ctl) is not installed: .ci/run must install Debian's postgresql")
        pytest.skip("PostgreSQL is not installed (initdb, pg_ctl): its store tests are skipped here, never in CI")
    cluster = pg_cluster.start()
    assert cluster is not None
    yield cluster
    cluster.stop()


@pytest.fixture
def deployment(tmp_path: Path) -> Callable[..., Path]:
    """Factory: deployment({"rules/10.yaml": ..., "templates/x.j2": ..., "herald.yaml": ...}) -> its root.

    rules/ and templates/ are always created (pass dirs=False to create only the files given), so a
    deployment without herald.yaml runs on the built-in defaults. Each call makes a new directory.
    """
    counter = itertools.count()

    def make(files: Mapping[str, str | None] = {}, *, dirs: bool = True) -> Path:
        root = tmp_path / f"deployment-{next(counter)}"
        root.mkdir()
        if dirs:
            (root / "rules").mkdir()
            (root / "templates").mkdir()
        write_files(root, files)
        return root

    return make


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """run_cli(["validate", ...], cwd=root, input="...") -> click Result (stdout, stderr, exit_code).

    Runs in-process through click's CliRunner with the working directory changed to `cwd` for the
    rest of the test; exceptions other than SystemExit propagate, so a crash fails the test loudly.
    """
    def run(args: Sequence[str], cwd: Path | str | None = None, input: str | None = None,
            env: Mapping[str, str] | None = None) -> Result:
        from cli import main

        if cwd is not None:
            monkeypatch.chdir(cwd)
        return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)

    return run


@pytest.fixture(autouse=True)
def _fresh_robot_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty process-wide robot limiter: sends of earlier tests do not pace this one."""
    from engine.channels import dingtalk_robot
    from engine.channels.ratelimit import LocalRateLimiter

    monkeypatch.setattr(dingtalk_robot, "ROBOT_LIMITER", LocalRateLimiter(dingtalk_robot.ROBOT_LIMIT, 60.0))
