"""Repository habits the README's Development section promises, checked on the source:

- every `# type: ignore[code]` and `# noqa: CODE` in engine/ and cli.py names its codes and says why
  (`# type: ignore[attr-defined]  # reason`, `# noqa: BLE001 - reason`);
- no test puts folders on `sys.path` by hand: pytest's `pythonpath` setting in pyproject.toml does it;
- every benchmark script starts from a clone (its imports resolve from any directory);
- each package's `__init__` says in its docstring what it owns and exports its public names (`__all__`), each
  of which resolves.
"""
from __future__ import annotations

import ast
import importlib
import io
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_CODES = r"[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*"
_REASON = r"\s*(?:#|-|—)\s*\S"  # `# why` after a type: ignore, `- why` after a noqa (either is accepted)
_TYPE_IGNORE = re.compile(r"type:\s*ignore")
_TYPE_IGNORE_OK = re.compile(r"type:\s*ignore\[[a-z0-9_-]+(?:\s*,\s*[a-z0-9_-]+)*\]" + _REASON)
_NOQA = re.compile(r"\bnoqa\b", re.IGNORECASE)
_NOQA_OK = re.compile(r"\bnoqa:\s*" + _CODES + _REASON)


def _comments(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment token in `source` (strings that mention the words do not count)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [(t.start[0], t.string) for t in tokens if t.type == tokenize.COMMENT]


def unexplained(source: str) -> list[tuple[int, str]]:
    """The comments in `source` with a `type: ignore` or `noqa` that lacks its codes or its reason."""
    out = []
    for line, text in _comments(source):
        bad_ignore = _TYPE_IGNORE.search(text) and not _TYPE_IGNORE_OK.search(text)
        if bad_ignore or (_NOQA.search(text) and not _NOQA_OK.search(text)):
            out.append((line, text))
    return out


def _checked_files() -> list[Path]:
    return sorted((ROOT / "engine").rglob("*.py")) + [ROOT / "cli.py"]


def test_every_type_ignore_and_noqa_says_why():
    found = [f"{path.relative_to(ROOT)}:{line}: {text}"
             for path in _checked_files()
             for line, text in unexplained(path.read_text("utf-8"))]
    assert not found, "a type: ignore / noqa without its codes and a reason:\n" + "\n".join(found)


def test_the_checker_tells_explained_from_unexplained():
    bad = ("x = f()  # type: ignore\n"
           "y = g()  # type: ignore[attr-defined]\n"
           "z = h()  # noqa\n"
           "w = k()  # noqa: E731\n")
    good = ("x = f()  # type: ignore[attr-defined]  # jinja sets it at runtime\n"
            "y = g()  # type: ignore[union-attr, arg-type]  # checked above\n"
            "z = h()  # noqa: BLE001 - a bad channel must not stop the others\n"
            "w = k()  # noqa: BLE001, S110 - any failure: the full validator runs\n"
            "s = '# type: ignore and noqa in a string do not count'\n")
    assert [line for line, _ in unexplained(bad)] == [1, 2, 3, 4]
    assert unexplained(good) == []


def _is_sys_path(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path"
            and isinstance(node.value, ast.Name) and node.value.id == "sys")


def _sys_path_edits(source: str, filename: str) -> list[int]:
    """Lines that call sys.path.insert/append/extend, or assign to sys.path."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            edits = node.func.attr in {"insert", "append", "extend"} and _is_sys_path(node.func.value)
        elif isinstance(node, ast.Assign):
            edits = any(_is_sys_path(t) for t in node.targets)
        elif isinstance(node, ast.AugAssign):
            edits = _is_sys_path(node.target)
        else:
            edits = False
        if edits:
            out.append(node.lineno)
    return sorted(out)


def test_tests_use_pytest_pythonpath_not_sys_path():
    found = [f"{path.relative_to(ROOT)}:{line}"
             for path in sorted((ROOT / "tests").rglob("*.py"))
             for line in _sys_path_edits(path.read_text("utf-8"), str(path))]
    assert not found, ("sys.path edited by hand (add the folder to `pythonpath` in pyproject.toml's "
                       "[tool.pytest.ini_options] instead):\n" + "\n".join(found))


def test_the_sys_path_checker_sees_each_form():
    source = ("import sys\n"
              "sys.path.insert(0, 'a')\n"
              "sys.path.append('b')\n"
              "sys.path += ['c']\n"
              "sys.path = ['d']\n"
              "paths = []\n"
              "paths.insert(0, 'fine')\n"
              "text = 'sys.path.insert(0, x) in a string is fine'\n")
    assert _sys_path_edits(source, "<test>") == [2, 3, 4, 5]


def _packages() -> list[str]:
    return sorted(".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "engine").rglob("__init__.py")
                  if p.parent != ROOT / "engine")


@pytest.mark.parametrize("package", _packages())
def test_each_package_says_what_it_owns_and_exports_its_names(package):
    module = importlib.import_module(package)
    assert (module.__doc__ or "").strip(), f"{package}/__init__.py has no docstring saying what it owns"
    names = getattr(module, "__all__", None)
    assert names, f"{package}/__init__.py has no __all__"
    assert len(set(names)) == len(names), f"{package}.__all__ names a name twice"
    assert not [n for n in names if n.startswith("_")], f"{package}.__all__ exports a private name"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{package}.__all__ names what it does not have: {missing}"


@pytest.mark.slow
def test_a_package_exports_without_importing_its_submodules():
    """engine/exports.py: importing one submodule (or the package) imports none of its siblings; a name imports
    its own submodule on first use."""
    code = ("import sys, engine.rules.when, engine.schedule\n"
            "print(sorted(m for m in sys.modules if m in ('engine.rules.when', 'engine.rules.loader', "
            "'engine.rules.cases', 'engine.schedule.timing')))\n"
            "from engine.schedule import parse_duration\n"
            "print('engine.schedule.timing' in sys.modules, 'engine.schedule.clock' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout.splitlines()
    assert out[0] == "['engine.rules.when']"
    assert out[1] == "True False"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("[a-z]*.py")))
def test_each_benchmark_starts_from_a_clone(script, tmp_path):
    """`make bench-NAME` runs `python bench/NAME.py`: its imports (the engine, and the test helpers it shares, such
    as the replica tests' webhook receiver in bench/cluster.py) resolve from any directory, with no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--help"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:")
