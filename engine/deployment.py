"""A deployment loaded as one unit: config, templates and the validated rule set, with every diagnostic."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .config import Config, load_config
from .errors import Diagnostic, Loc, sort_diagnostics
from .model import RuleSet
from .schemas import template_fields


@dataclass(frozen=True)
class Deployment:
    """Everything the pipeline needs that comes from files: config, templates, rules."""

    config: Config
    templates: object  # engine.render.TemplateStore
    ruleset: RuleSet | None
    diagnostics: tuple = ()

    @property
    def ok(self) -> bool:
        return self.ruleset is not None and not any(d.is_error for d in self.diagnostics)


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
                    check_templates: bool = True) -> Deployment:
    """Load config, templates and rules named by `paths` (or the defaults), collecting every problem."""
    from .dsl.loader import load_ruleset
    from .render import TemplateStore

    cfg_file, root, rule_paths = _split_paths(paths)
    cfg_file = Path(config_path) if config_path else cfg_file
    if root is not None and cfg_file is None and (root / "herald.yaml").is_file():
        cfg_file = root / "herald.yaml"
    cfg, diags = load_config(cfg_file, root=root)
    if rule_paths:
        missing = [p for p in rule_paths if not p.exists()]
        diags += [Loc(str(p), 0, 0).error("no-such-path", f"{p} does not exist") for p in missing]
        cfg = _with_rules(cfg, tuple(p for p in rule_paths if p.exists()))
    templates = TemplateStore(cfg.templates)
    if not Path(cfg.templates).is_dir():
        diags.append(Loc(cfg.file or "herald.yaml", 0, 0).error(
            "no-templates", f"templates directory {cfg.templates} does not exist"))
    if check_templates:
        diags += templates.check(template_fields())
    ruleset, more = load_ruleset(cfg, templates)
    diags += more
    if ruleset is not None:
        from .sms import check_sms_templates

        diags += check_sms_templates(cfg, templates, ruleset.rules)
    diags = sort_diagnostics(diags)
    if any(d.is_error for d in diags):
        ruleset = None
    return Deployment(cfg, templates, ruleset, tuple(diags))


def _with_rules(cfg: Config, rules: tuple) -> Config:
    from dataclasses import replace

    return replace(cfg, rules=rules)
