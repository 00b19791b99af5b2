"""A template's header comment ({# herald: decisions=[...] ... #}): parsed into TemplateMeta, every problem located."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from collections.abc import Mapping

import yaml

from engine.rules.suggest import did_you_mean
from engine.rules.yamlpos import CoreResolver
from engine.errors import Diagnostic, Loc
from engine.model import DECISIONS

__all__ = ["KNOWN_HEADER_KEYS", "TemplateMeta", "parse_header"]

KNOWN_HEADER_KEYS = ("decisions", "description")
_HEADER_RE = re.compile(r"\A\{#-?\s*herald:(?P<body>.*?)-?#\}", re.DOTALL)
_HEADER_ANYWHERE_RE = re.compile(r"\{#-?\s*herald:")
_HEADER_AT_RE = re.compile(r"\{#-?\s*herald:(?P<body>.*?)-?#\}", re.DOTALL)
_PAIR_START_RE = re.compile(r"(\w+)=")


@dataclass(frozen=True)
class TemplateMeta:
    """What a template's header declares: decisions it may serve, a description, anything else."""

    decisions: tuple
    description: str = ""
    extra: Mapping = field(default_factory=lambda: MappingProxyType({}))
    header_line: int = 1



def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


class _HeaderLoader(yaml.SafeLoader):
    """YAML 1.2 core-schema scalars, as in the rule files: `no` and `on` stay strings."""


_HeaderLoader.yaml_implicit_resolvers = dict(CoreResolver.yaml_implicit_resolvers)


def _split_pairs(body: str) -> tuple[list, str | None]:
    """[(key, key_offset, value_text, value_offset)] from `k=v k2=[a, b]`; or an error message."""
    starts: list = []
    depth, quote, i = 0, "", 0
    while i < len(body):
        c = body[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"':
                i += 1
        elif c in "\"'" and (i == 0 or body[i - 1] in " \t\n=[{,:("):
            quote = c
        elif c in "[{(":
            depth += 1
        elif c in "]})":
            depth = max(0, depth - 1)
        elif depth == 0 and (i == 0 or body[i - 1].isspace()):
            m = _PAIR_START_RE.match(body, i)
            if m:
                starts.append((m.group(1), i, m.end()))
                i = m.end()
                continue
        i += 1
    pairs = []
    first = starts[0][1] if starts else len(body)
    if body[:first].strip():
        return [], f'expected key=value, found "{body[:first].strip()[:40]}"'
    for n, (key, koff, voff) in enumerate(starts):
        end = starts[n + 1][1] if n + 1 < len(starts) else len(body)
        raw = body[voff:end]
        lead = len(raw) - len(raw.lstrip())
        pairs.append((key, koff, raw.strip(), voff + lead))
    return pairs, None


def parse_header(text: str, path: str) -> tuple[TemplateMeta | None, list[Diagnostic]]:
    """The header comment on line 1 (`{# herald: decisions=[reject] #}`) and its problems."""
    diags: list[Diagnostic] = []
    m = _HEADER_RE.match(text)
    header_line = 1
    if not m:
        later = _HEADER_ANYWHERE_RE.search(text)
        if later is None:
            return None, [Loc(path, 1, 1).error(
                "template-header", "missing header: the first line must be {# herald: decisions=[...] #}")]
        line, col = _line_col(text, later.start())
        where = "must start the file" if line == 1 else f"must be on the first line, not line {line}"
        diags.append(Loc(path, line, col).error("template-header", f"the herald header {where}"))
        m = _HEADER_AT_RE.match(text, later.start())
        if m is None:
            return None, diags
        header_line = line
    body_offset = m.start("body")
    pairs, problem = _split_pairs(m.group("body"))
    if problem:
        line, col = _line_col(text, body_offset)
        return None, diags + [Loc(path, line, col).error("template-header", f"invalid header: {problem}")]
    values: dict = {}
    locs: dict = {}
    for key, koff, raw, voff in pairs:
        kloc = Loc(path, *_line_col(text, body_offset + koff))
        if key in values:
            diags.append(kloc.error("template-header", f'header key "{key}" given twice'))
            continue
        try:
            value = yaml.load(raw, Loader=_HeaderLoader) if raw else None
        except Exception as exc:  # noqa: BLE001 - YAMLError, and RecursionError on absurd nesting
            if key == "description":
                value = raw
            else:
                reason = str(getattr(exc, "problem", None) or "not a YAML flow value")
                diags.append(Loc(path, *_line_col(text, body_offset + voff)).error(
                    "template-header", f'header value of "{key}" is not valid YAML: {reason}'))
                continue
        values[key] = value
        locs[key] = (kloc, voff, raw)
    decisions: list = []
    if "decisions" not in values:
        if not any(k == "decisions" for k, *_ in pairs):
            diags.append(Loc(path, header_line, 1).error(
                "template-header", "header must declare decisions, e.g. {# herald: decisions=[reject] #}"))
    else:
        kloc, voff, raw = locs["decisions"]
        value = values["decisions"]
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            diags.append(kloc.error(
                "template-header", f"decisions must be a non-empty list of {', '.join(DECISIONS)}"))
        else:
            for item in items:
                if isinstance(item, str) and item in DECISIONS:
                    if item not in decisions:
                        decisions.append(item)
                    continue
                at = raw.find(str(item)) if item is not None else -1
                iloc = Loc(path, *_line_col(text, body_offset + voff + at)) if at >= 0 else kloc
                hint = did_you_mean(str(item), DECISIONS)
                diags.append(iloc.error(
                    "template-header",
                    f'unknown decision "{item}"{hint}: decisions are {", ".join(DECISIONS)}'))
    description = values.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        description = locs["description"][2]
    extra = {k: v for k, v in values.items() if k not in KNOWN_HEADER_KEYS}
    if not decisions:
        return None, diags
    return TemplateMeta(tuple(decisions), description, MappingProxyType(extra), header_line), diags
