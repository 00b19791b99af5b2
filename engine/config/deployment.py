"""A deployment loaded as one unit: config, templates and the validated rule set, with every diagnostic."""
from __future__ import annotations

import multiprocessing
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.config.settings import Config, load_config
from engine.errors import Diagnostic, Loc, sort_diagnostics
from engine.model import RuleSet
from engine.rules.schemas import template_fields

if TYPE_CHECKING:
    from concurrent.futures import Future

    from engine.render.templates import TemplateStore


@dataclass(frozen=True)
class Deployment:
    """Everything the pipeline needs that comes from files: config, templates, rules."""

    config: Config
    templates: TemplateStore
    ruleset: RuleSet | None
    diagnostics: tuple = ()

    @property
    def ok(self) -> bool:
        return self.ruleset is not None and not any(d.is_error for d in self.diagnostics)

    @property
    def ruleset_in_use(self) -> RuleSet:
        """The rule set of a deployment that loaded: what the daemon serves (it never serves one that did not)."""
        if self.ruleset is None:
            raise ValueError("this deployment has no rule set: it did not load (see its diagnostics)")
        return self.ruleset


def _split_paths(paths: Sequence[str]) -> tuple[Path | None, Path | None, list[Path]]:
    """PATH arguments to (config file, deployment root, rule files or directories)."""
    config = root = None
    rules: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and ((p / "herald.yaml").is_file() or (p / "rules").is_dir()):
            root = p
        elif p.is_file() and (p.name in ("herald.yaml", "herald.yml") or p.name.startswith("herald.")):
            config = p
        else:
            rules.append(p)
    return config, root, rules


def load_deployment(paths: Sequence[str] = (), config_path: str | None = None,
                    check_templates: bool = True, parallel: bool = False) -> Deployment:
    """Load config, templates and rules named by `paths` (or the defaults), collecting every problem.

    `parallel`: render-check the templates in a forked worker while this process loads the rules
    (for `herald validate` on a multi-core machine; never from a process that runs threads).
    """
    return _load_deployment(paths, config_path, check_templates, parallel)


def _template_diagnostics(directory: str, limits: Any = None) -> list[Diagnostic]:
    """The template checks on their own (what a worker process runs)."""
    from engine.render.budget import DEFAULT_LIMITS
    from engine.render.templates import TemplateStore

    return TemplateStore(directory, limits or DEFAULT_LIMITS).check(template_fields())


def _start_template_check(directory: Path, limits: Any = None) -> Future[list[Diagnostic]] | None:
    """A future for the template diagnostics from a forked worker, or None where that is not possible."""
    if (os.cpu_count() or 1) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    if threading.active_count() > 1:
        # Forking a process that runs other threads can leave the child waiting forever on a lock one of
        # them held at the fork (seen under libfaketime, whose clock lock is taken by every time call);
        # the daemon's reloads and test processes check the templates in this process instead.
        return None
    try:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        future = pool.submit(_template_diagnostics, str(directory), limits)
        pool.shutdown(wait=False)
        return future
    except (OSError, RuntimeError):
        return None


def _load_deployment(paths: Sequence[str], config_path: str | None, check_templates: bool,
                     parallel: bool) -> Deployment:
    from engine.rules.loader import load_ruleset
    from engine.render.budget import limits_from_config
    from engine.render.templates import TemplateStore

    cfg_file, root, rule_paths = _split_paths(paths)
    cfg_file = Path(config_path) if config_path else cfg_file
    if root is not None and cfg_file is None and (root / "herald.yaml").is_file():
        cfg_file = root / "herald.yaml"
    cfg, diags = load_config(cfg_file, root=root)
    if rule_paths:
        missing = [p for p in rule_paths if not p.exists()]
        diags += [Loc(str(p), 0, 0).error("no-such-path", f"{p} does not exist") for p in missing]
        cfg = _with_rules(cfg, tuple(p for p in rule_paths if p.exists()))
    limits = limits_from_config(cfg.render)
    future = _start_template_check(cfg.templates, limits) if parallel and check_templates else None
    templates = TemplateStore(cfg.templates, limits)
    if not Path(cfg.templates).is_dir():
        diags.append(Loc(cfg.file or "herald.yaml", 0, 0).error(
            "no-templates", f"templates directory {cfg.templates} does not exist"))
    ruleset, more = load_ruleset(cfg, templates)
    diags += more
    if check_templates:
        try:
            diags += future.result() if future is not None else templates.check(template_fields())
        except Exception:  # noqa: BLE001 - a broken worker: do the same work here
            diags += templates.check(template_fields())
    if ruleset is not None:
        from engine.render.sms import check_sms_templates

        diags += check_sms_templates(cfg, templates, ruleset.rules)
    if cfg.sources:
        from engine.sources.config import check_vocabulary

        diags += check_vocabulary(cfg.sources, ruleset)
    diags = sort_diagnostics(diags)
    if any(d.is_error for d in diags):
        ruleset = None
    return Deployment(cfg, templates, ruleset, tuple(diags))


def _with_rules(cfg: Config, rules: tuple) -> Config:
    from dataclasses import replace

    return replace(cfg, rules=rules)
