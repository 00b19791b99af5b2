"""The one-way import rules of the package layout (README, Development), checked on the source with ast:
every import counts, a function's lazy import as much as a module's own.

- channels, tracking and report never import the daemon;
- the store imports no transport (engine.channels), nor the daemon;
- validation (engine.rules) imports no transport, nor the daemon;
- nothing in engine/ prints or imports click outside engine/cli (presentation lives with the CLI);
- no module imports another package's private name (`_name`, or a name inside a `_module`): what a package
  offers the others is public (and exported by its `__init__`).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"

FORBIDDEN = {
    "engine.channels": ("engine.daemon",),
    "engine.tracking": ("engine.daemon",),
    "engine.report": ("engine.daemon",),
    "engine.store": ("engine.channels", "engine.daemon"),
    "engine.rules": ("engine.channels", "engine.daemon"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `tree`."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return out


def _sources():
    for path in sorted(ENGINE.rglob("*.py")):
        module = _module_name(path)
        yield path, module, ast.parse(path.read_text("utf-8"), str(path))


def _violations(package: str, banned: tuple[str, ...]) -> list[str]:
    out = []
    for path, module, tree in _sources():
        if module != package and not module.startswith(package + "."):
            continue
        for line, name in _imports(tree, module, path.name == "__init__.py"):
            if any(name == b or name.startswith(b + ".") for b in banned):
                out.append(f"{path.relative_to(ENGINE.parent)}:{line}: {module} imports {name}")
    return sorted(set(out))


def _package(module: str) -> str:
    """The package a module belongs to: `engine.render` for engine.render.header, `engine.pipeline` for the
    top-level engine/pipeline.py, `cli` for cli.py."""
    return ".".join(module.split(".")[:2])


def _private_crossings(module: str, imports: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The imports of `module` that reach a private name (or a private module) of another engine package."""
    own = _package(module)
    out = []
    for line, name in imports:
        parts = name.split(".")
        if parts[0] != "engine" or _package(name) == own:
            continue
        if any(p.startswith("_") and not (p.startswith("__") and p.endswith("__")) for p in parts[1:]):
            out.append((line, name))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package):
    assert _violations(package, FORBIDDEN[package]) == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    tree = ast.parse("def f():\n    from engine.daemon import serve\n\nfrom ..daemon import app\n")
    names = [n for _, n in _imports(tree, "engine.report.html", False)]
    assert "engine.daemon.serve" in names and "engine.daemon.app" in names


def test_no_package_imports_another_packages_private_names():
    found = []
    cli = ROOT / "cli.py"
    sources = [*_sources(), (cli, "cli", ast.parse(cli.read_text("utf-8"), str(cli)))]
    for path, module, tree in sources:
        for line, name in _private_crossings(module, _imports(tree, module, path.name == "__init__.py")):
            found.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {name}")
    assert sorted(set(found)) == []


def test_the_private_name_checker_sees_names_modules_and_relative_imports():
    tree = ast.parse("from engine.rules.yamlpos import _Resolver\n"
                     "def f():\n    from ..schedule.timing import parse_instant, _parse\n"
                     "import engine.store._base\n"
                     "from engine.render.sandbox import _check\n"
                     "from .templates import _segments\n"
                     "from engine.exports import __all__\n")
    module = "engine.render.header"
    found = sorted(n for _, n in _private_crossings(module, _imports(tree, module, False)))
    assert found == ["engine.rules.yamlpos._Resolver", "engine.schedule.timing._parse", "engine.store._base"]


def test_engine_does_not_print_outside_the_cli():
    found = []
    for path, module, tree in _sources():
        if module.startswith("engine.cli"):
            continue
        found += [f"{path.relative_to(ENGINE.parent)}:{node.lineno}: print()" for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
        for line, name in _imports(tree, module, path.name == "__init__.py"):
            if name == "click" or name.startswith("click."):
                found.append(f"{path.relative_to(ENGINE.parent)}:{line}: imports {name}")
    assert found == []


def test_engine_leaves_the_garbage_collector_to_the_cli():
    """gc.disable/freeze are process-wide: a library that pauses the collector (the daemon reloads in a thread)
    pauses it for every thread. Only the CLI, which owns its process, may."""
    found = []
    for path, module, tree in _sources():
        if module.startswith("engine.cli"):
            continue
        for line, name in _imports(tree, module, path.name == "__init__.py"):
            if name == "gc" or name.startswith("gc."):
                found.append(f"{path.relative_to(ENGINE.parent)}:{line}: imports {name}")
    assert found == []
