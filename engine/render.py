"""HR-written message templates: scanning, header parsing, sandboxed rendering per channel, and template checks."""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml
from jinja2 import filters as jinja_filters
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.filters import FILTERS as DEFAULT_FILTERS
from jinja2.runtime import ChainableUndefined, Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .dsl.suggest import did_you_mean
from .errors import Diagnostic, Loc, sort_diagnostics
from .model import DECISIONS, Message, quick_init

__all__ = [
    "TemplateMeta", "TemplateFile", "RenderResult", "TemplateStore",
    "build_context", "sms_length", "HTML_BLOCKS", "TEXT_BLOCKS",
]

TEXT_BLOCKS = ("subject", "sms", "dingtalk", "email", "webhook")
HTML_BLOCKS = ("email_html",)  # and any other block whose name ends in `_html`
KNOWN_HEADER_KEYS = ("decisions", "description")
CHANNEL_BLOCKS = {"email": ("email", "subject")}  # blocks a channel needs; otherwise the channel's own name

_LOCALE_RE = re.compile(r"^(?P<name>.+?)\.(?P<locale>[a-z]{2,3}(?:-[A-Za-z0-9]+)*)$")
_HEADER_RE = re.compile(r"\A\{#-?\s*herald:(?P<body>.*?)-?#\}", re.DOTALL)
_HEADER_ANYWHERE_RE = re.compile(r"\{#-?\s*herald:")
_HEADER_AT_RE = re.compile(r"\{#-?\s*herald:(?P<body>.*?)-?#\}", re.DOTALL)
_PAIR_START_RE = re.compile(r"(\w+)=")
_MAX_REPEAT = 100_000     # longest string/list `*` may build
_MAX_EXPONENT = 256       # largest exponent `**` may use
_MAX_RANGE = 10_000       # longest range() a template may make
_MAX_FORMAT_WIDTH = 1_000  # widest field in a `%` format


# ---------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class TemplateMeta:
    """What a template's header declares: decisions it may serve, a description, anything else."""

    decisions: tuple
    description: str = ""
    extra: Mapping = field(default_factory=lambda: MappingProxyType({}))
    header_line: int = 1


@dataclass(frozen=True)
class TemplateFile:
    """One template file: name, locale (None for the fallback), display path, header, block names."""

    name: str
    locale: str | None
    path: str
    meta: TemplateMeta | None
    blocks: tuple


@quick_init
@dataclass(frozen=True)
class RenderResult:
    """One rendering: the file used, its locale, the message, or an error (then message is None)."""

    template: TemplateFile | None
    locale: str | None
    message: Message | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# ---------------------------------------------------------------------------------------------------
# Sandbox


class _LenientUndefined(ChainableUndefined):
    """Missing data renders empty and chains (`position.title` of no position); unsafe access raises at once."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()


class _Callable:
    """A method or helper a template may call but never print (its repr would show Python internals)."""

    __slots__ = ("_fn", "_label")

    def __init__(self, fn: Callable, label: str) -> None:
        self._fn = fn
        self._label = label

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __str__(self) -> str:
        raise SecurityError(f"{self._label} is a function: call it, e.g. {self._label}()")

    __html__ = __str__

    def __format__(self, spec: str) -> str:
        return self.__str__()

    def __repr__(self) -> str:
        return f"<{self._label}>"


_DATA_TYPES = (str, int, float, bool, type(None), Decimal, date, datetime, time, Undefined)


def _check_printable(value: Any, depth: int = 0) -> None:
    if isinstance(value, _DATA_TYPES):
        return
    if isinstance(value, (list, tuple)) and depth < 20:
        for item in value:
            _check_printable(item, depth + 1)
        return
    if isinstance(value, dict) and depth < 20:
        for key, item in value.items():
            _check_printable(key, depth + 1)
            _check_printable(item, depth + 1)
        return
    if isinstance(value, _Callable):
        str(value)  # raises SecurityError with a hint
    raise SecurityError("only text, numbers, lists and mappings can be printed in a template")


def _finalize(value: Any) -> Any:
    """Applied to every `{{ ... }}`: None prints as nothing, non-data objects are refused."""
    if value is None:
        return ""
    if value.__class__ is str or value.__class__ is int:  # the common case, first
        return value
    _check_printable(value)
    return value


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > _MAX_RANGE:
        raise OverflowError(f"range() too long for a template (more than {_MAX_RANGE} items)")
    return rng


def _namespace(*args: Any, **kwargs: Any) -> Any:
    from jinja2.utils import Namespace
    return Namespace(*args, **kwargs)


_FORMAT_WIDTH_RE = re.compile(r"%[-#0 +]*(?:\(\w*\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")


def _percent_too_wide(fmt: str) -> bool:
    """True when a %-format pads wider than the cap or takes its width from an argument (`%*d`)."""
    for m in _FORMAT_WIDTH_RE.finditer(fmt):
        if any(g and (g == "*" or int(g) > _MAX_FORMAT_WIDTH) for g in m.groups()):
            return True
    return False


_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _check_width(*values: Any) -> None:
    if any(isinstance(v, int) and v > _MAX_FORMAT_WIDTH for v in values):
        raise SecurityError("width too large for a template")


def _format_too_wide(fmt: str) -> bool:
    """True when a str.format string pads wider than the cap or takes its width from an argument."""
    try:
        for _, _, spec, _ in string.Formatter().parse(fmt):
            if spec and ("{" in spec or any(int(n) > _MAX_FORMAT_WIDTH for n in re.findall(r"\d+", spec))):
                return True
    except ValueError:
        return False
    return False


def _capped_filter(name: str) -> Callable:
    """A built-in filter whose width-like arguments are capped (center, indent, format)."""
    original = DEFAULT_FILTERS[name]

    def capped(value: Any, *args: Any, **kwargs: Any) -> Any:
        if name == "format":
            if _percent_too_wide(str(value)):
                raise SecurityError("format width too large for a template")
        else:
            _check_width(*args, *kwargs.values())
        return original(value, *args, **kwargs)

    capped.__name__ = name
    return capped


_DICT_ATTRS = frozenset(dir(dict))
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), dict, list})
_ABSENT = object()


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with methods wrapped so they cannot be printed and sizes capped."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def _wrap(self, value: Any, label: str) -> Any:
        if callable(value) and not isinstance(value, (Undefined, _Callable, type)):
            return _Callable(value, label)
        return value

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Fast path for the common case, a key of a plain dict holding plain data (the outcome's
        # fields): the same answer Jinja gives, without the sandbox's attribute checks.
        if type(obj) is dict and attribute.__class__ is str and attribute not in _DICT_ATTRS:
            value = obj.get(attribute, _ABSENT)
            if value.__class__ in _PLAIN_TYPES:
                return value
            if value is _ABSENT:  # what Jinja ends with, after an AttributeError and a KeyError
                return self.undefined(obj=obj, name=attribute)
        return self._wrap(super().getattr(obj, attribute), str(attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self._wrap(super().getitem(obj, argument), str(argument)[:40])

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807
        if isinstance(__obj, _Callable):
            __obj = __obj._fn
        if getattr(__obj, "__name__", None) in _PADDING_METHODS and isinstance(getattr(__obj, "__self__", None), str):
            _check_width(*args, *kwargs.values())
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _format_too_wide(value.__self__):
            def refuse(*args: Any, **kwargs: Any) -> str:
                raise SecurityError("format width too large for a template")
            return refuse
        return wrapped

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > _MAX_REPEAT:
                    raise SecurityError("repetition too large for a template")
        elif operator == "**":
            if isinstance(right, (int, float)) and abs(right) > _MAX_EXPONENT:
                raise SecurityError("exponent too large for a template")
        elif operator == "%" and isinstance(left, str) and _percent_too_wide(left):
            raise SecurityError("format width too large for a template")
        return super().call_binop(context, operator, left, right)


def _mask(value: Any, keep: int = 4) -> str:
    """Hide the middle of a phone number or the local part of an e-mail address."""
    if value is None or isinstance(value, Undefined):
        return ""
    text = str(value)
    if "@" in text:
        local, _, domain = text.partition("@")
        shown = local[:2] if len(local) > 2 else local[:1]
        return f"{shown}***@{domain}"
    keep = max(0, min(int(keep), 8))
    if len(text) <= keep + 3:
        return text[:1] + "*" * max(0, len(text) - 1)
    head = 3 if len(text) >= keep + 6 else 1
    return text[:head] + "*" * (len(text) - head - keep) + (text[-keep:] if keep else "")


def _date(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Format an ISO 8601 string (or a date/datetime) with strftime; other text is returned unchanged."""
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, (date, datetime)):
        parsed: Any = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            return str(value)
    try:
        return parsed.strftime(str(fmt)[:200])
    except (ValueError, TypeError):
        return str(value)


def _make_env(autoescape: bool) -> _Sandbox:
    env = _Sandbox(autoescape=autoescape, undefined=_LenientUndefined, finalize=_finalize,
                   keep_trailing_newline=False, auto_reload=False, cache_size=0, optimized=False)
    env.globals.clear()
    env.globals.update({
        "range": _Callable(_safe_range, "range"),
        "dict": _Callable(dict, "dict"),
        "namespace": _Callable(_namespace, "namespace"),
    })
    for name, fn in list(env.filters.items()):  # this environment is never async: skip the async dispatch
        sync = getattr(jinja_filters, f"sync_do_{name}", None)
        if sync is not None and fn is getattr(jinja_filters, f"do_{name}", None):
            env.filters[name] = sync
    for name in ("center", "indent", "format"):
        env.filters[name] = _capped_filter(name)
    env.filters["mask"] = _mask
    env.filters["date"] = _date
    return env


_TEXT_ENV = _make_env(False)
_HTML_ENV = _make_env(True)
_GLOBAL_NAMES = frozenset({"range", "dict", "namespace", "self", "super"})


@lru_cache(maxsize=256)
def _is_html_block(block: str) -> bool:
    return block in HTML_BLOCKS or block.endswith("_html")


# ---------------------------------------------------------------------------------------------------
# Context and SMS length


def _plain(value: Any, depth: int = 0) -> Any:
    if depth > 30:
        return None
    if isinstance(value, (str, int, float, bool, type(None), Decimal, date, datetime, time)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    return str(value)


def build_context(outcome: Mapping, extras: Mapping, trusted: bool = False) -> dict:
    """What a template sees: the outcome's fields at top level, then herald's extras (company, links, channel).

    `trusted`: outcome and extras are plain data already (from json.loads, or made plain once at
    load time): no copy needed, since the sandbox is immutable and templates cannot change them.
    """
    if trusted:
        return {**(outcome or {}), **(extras or {})}
    ctx = _plain(dict(outcome or {}))
    ctx.update(_plain(dict(extras or {})))
    return ctx


_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")


def _segments(widths: list, single: int, multi: int) -> int:
    total = sum(widths)
    if total == 0:
        return 0
    if total <= single:
        return 1
    count, used = 1, 0
    for w in widths:  # never split an escape pair or a surrogate pair across segments
        if used + w > multi:
            count, used = count + 1, 0
        used += w
    return count


def sms_length(text: str) -> tuple[int, int]:
    """(characters, segments): GSM 03.38 septets (160 / 153 per part) or UTF-16 units (70 / 67 per part)."""
    text = text or ""
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text):
        widths = [2 if c in _GSM_EXTENSION else 1 for c in text]
        return sum(widths), _segments(widths, 160, 153)
    widths = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return sum(widths), _segments(widths, 70, 67)


# ---------------------------------------------------------------------------------------------------
# Header


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


class _HeaderLoader(yaml.SafeLoader):
    """YAML 1.2 core-schema scalars, as in the rule files: `no` and `on` stay strings."""


try:
    from .dsl.yamlpos import _Resolver as _CoreResolver
    _HeaderLoader.yaml_implicit_resolvers = dict(_CoreResolver.yaml_implicit_resolvers)
except ImportError:  # pragma: no cover
    pass


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


def _parse_header(text: str, path: str) -> tuple[TemplateMeta | None, list[Diagnostic]]:
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
                where = raw.find(str(item)) if item is not None else -1
                iloc = Loc(path, *_line_col(text, body_offset + voff + where)) if where >= 0 else kloc
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


# ---------------------------------------------------------------------------------------------------
# Static variable check


def _targets(node: nodes.Node) -> set:
    return {n.name for n in node.find_all(nodes.Name) if n.ctx in ("store", "param")} | (
        {node.name} if isinstance(node, nodes.Name) else set())


def _bindings(body: Iterable[nodes.Node]) -> set:
    """Names bound directly in a scope: set, macro, import, and the same inside if (no new scope)."""
    out: set = set()
    for node in body:
        if isinstance(node, (nodes.Assign, nodes.AssignBlock)):
            out |= _targets(node.target)
        elif isinstance(node, nodes.Macro):
            out.add(node.name)
        elif isinstance(node, nodes.Import):
            out.add(node.target)
        elif isinstance(node, nodes.FromImport):
            out |= {n[1] if isinstance(n, tuple) else n for n in node.names}
        elif isinstance(node, nodes.If):
            out |= _bindings(node.body)
            for elif_ in node.elif_:
                out |= _bindings(elif_.body)
            out |= _bindings(node.else_)
        elif isinstance(node, (nodes.Scope, nodes.ScopedEvalContextModifier)):
            out |= _bindings(node.body)
    return out


def _chain(node: nodes.Node) -> tuple[list, nodes.Node]:
    """Dotted parts of a Getattr / constant-Getitem chain, innermost first, and the node it starts at."""
    parts: list = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str):
            parts.append(node.arg.value)
            node = node.node
        else:
            break
    parts.reverse()
    return parts, node


@lru_cache(maxsize=16)
def _leaves(catalog: Any) -> frozenset:
    """Catalog paths that have no sub-fields (strings, numbers, lists)."""
    paths = sorted(catalog.paths)
    return frozenset(p for p in paths if not any(q.startswith(p + ".") for q in paths))


_METHODS = frozenset(m for t in (str, dict, list) for m in dir(t) if not m.startswith("_"))


class _VarWalker:
    """Finds variable paths a template reads that the catalog does not know."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.found: list = []  # (lineno, path, root, suggestion)
        self._leaves = _leaves(catalog)

    def _known(self, parts: list, called: bool) -> bool:
        path = ".".join(parts)
        if self.catalog.knows(path):
            return True
        if called and len(parts) > 1 and parts[-1] in _METHODS and self.catalog.knows(".".join(parts[:-1])):
            return True  # a method of a known value: candidate.items(), position.title.upper()
        for n in range(len(parts) - 1, 0, -1):  # an attribute of a known leaf value (a string, a list)
            prefix = ".".join(parts[:n])
            if self.catalog.knows(prefix):
                return prefix in self._leaves and prefix not in self.catalog.free
        return False

    def expr(self, node: nodes.Node, scope: frozenset, called: bool = False) -> None:
        if isinstance(node, (nodes.Getattr, nodes.Getitem, nodes.Name)):
            parts, root = _chain(node)
            if isinstance(root, nodes.Name):
                if root.ctx == "load" and root.name not in scope and root.name not in _GLOBAL_NAMES:
                    full = [root.name] + parts
                    if not self._known(full, called):
                        n = 1
                        while n < len(full) and self.catalog.knows(".".join(full[:n])):
                            n += 1
                        bad = ".".join(full[:n])
                        self.found.append((root.lineno, bad, root.name, self.catalog.suggest(bad)))
                return
            self.visit(root, scope)
            # the non-constant subscripts of the chain are expressions of their own
            cur = node
            while isinstance(cur, (nodes.Getattr, nodes.Getitem)):
                if isinstance(cur, nodes.Getitem):
                    self.visit(cur.arg, scope)
                cur = cur.node
            return
        self.visit(node, scope)

    def body(self, body: Sequence[nodes.Node], scope: frozenset) -> None:
        inner = scope | _bindings(body)
        for child in body:
            self.visit(child, inner)

    def visit(self, node: nodes.Node, scope: frozenset) -> None:
        if isinstance(node, (nodes.Getattr, nodes.Getitem, nodes.Name)):
            if isinstance(node, nodes.Getitem) and not (
                    isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)):
                self.expr(node.node, scope)
                self.visit(node.arg, scope)
                return
            self.expr(node, scope)
        elif isinstance(node, nodes.Call):
            self.expr(node.node, scope, called=True)
            for child in list(node.args) + list(node.kwargs) + [node.dyn_args, node.dyn_kwargs]:
                if child is not None:
                    self.visit(child, scope)
        elif isinstance(node, nodes.Template):
            self.body(node.body, scope)
        elif isinstance(node, nodes.For):
            self.visit(node.iter, scope)
            inner = scope | _targets(node.target) | {"loop"}
            if node.test is not None:
                self.visit(node.test, inner)
            self.body(node.body, inner)
            self.body(node.else_, scope)
        elif isinstance(node, (nodes.Macro, nodes.CallBlock)):
            if isinstance(node, nodes.CallBlock):
                self.visit(node.call, scope)
            for default in node.defaults:
                self.visit(default, scope)
            inner = scope | {a.name for a in node.args} | {"varargs", "kwargs", "caller"}
            self.body(node.body, inner)
        elif isinstance(node, nodes.With):
            for value in node.values:
                self.visit(value, scope)
            inner = scope | set().union(*(_targets(t) for t in node.targets)) if node.targets else scope
            self.body(node.body, inner)
        elif isinstance(node, nodes.Block):
            self.body(node.body, scope)
        elif isinstance(node, (nodes.If,)):
            self.visit(node.test, scope)
            for child in node.body:
                self.visit(child, scope)
            for elif_ in node.elif_:
                self.visit(elif_, scope)
            for child in node.else_:
                self.visit(child, scope)
        elif isinstance(node, (nodes.Assign,)):
            self.visit(node.node, scope)
        elif isinstance(node, nodes.AssignBlock):
            if node.filter is not None:
                self.visit(node.filter, scope)
            self.body(node.body, scope)
        elif isinstance(node, nodes.FilterBlock):
            self.visit(node.filter, scope)
            self.body(node.body, scope)
        elif isinstance(node, (nodes.Filter, nodes.Test)):
            if node.node is not None:
                self.visit(node.node, scope)
            for child in list(node.args) + list(node.kwargs) + [node.dyn_args, node.dyn_kwargs]:
                if child is not None:
                    self.visit(child, scope)
        elif isinstance(node, nodes.NSRef):
            return
        else:
            for child in node.iter_child_nodes():
                self.visit(child, scope)


# ---------------------------------------------------------------------------------------------------
# Store


@dataclass
class _Entry:
    """A scanned file: its public description, source, load-time problems and lazily compiled forms."""

    file: TemplateFile
    source: str
    diagnostics: list
    syntax_ok: bool
    ast: Any = None
    compiled: dict = field(default_factory=dict)  # autoescape flag -> Template | Exception
    top_level: dict = field(default_factory=dict)  # autoescape flag -> has top-level set/macro/...
    plans: dict = field(default_factory=dict)  # (channel, main_only) -> _ChannelPlan | error text


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return path.as_posix()


def _split_name(rel: str) -> tuple[str, str | None]:
    stem = rel[:-3]
    head, _, last = stem.rpartition("/")
    m = _LOCALE_RE.match(last)
    if not m:
        return stem, None
    return (f"{head}/" if head else "") + m.group("name"), m.group("locale")


def _lookup_chain(tag: str) -> list:
    """RFC 4647 lookup: zh-Hans-CN, zh-Hans, zh (lower-cased)."""
    parts = tag.strip().lower().replace("_", "-").split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1) if parts[0]]


def _frame_line(exc: BaseException, filename: str, template: Any) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            try:
                line = template.get_corresponding_lineno(tb.tb_lineno)
            except Exception:  # pragma: no cover - defensive
                line = None
        tb = tb.tb_next
    return line


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


_BLANK_RUN_RE = re.compile(r"\n{3,}")
_TRAILING_WS_RE = re.compile(r"[ \t]+\n")


def _tidy(text: str, block: str) -> str:
    """Strip the block; in text blocks (not webhook, not html) drop trailing spaces and blank-line runs."""
    text = text.strip()
    if block == "webhook" or _is_html_block(block):
        return text
    if " \n" in text or "\t\n" in text:  # the regular expressions only where they can change something
        text = _TRAILING_WS_RE.sub("\n", text)
    if "\n\n\n" in text:
        text = _BLANK_RUN_RE.sub("\n\n", text)
    return text


def _for_mode(ast: nodes.Template, html: bool) -> nodes.Template:
    """The template without the top-level blocks the other compile serves (half the compile work).

    Kept whole when anything refers to `self` (`{{ self.subject() }}` in email_html needs every block).
    """
    if any(n.name == "self" for n in ast.find_all(nodes.Name)):
        return ast
    body = [n for n in ast.body if not (isinstance(n, nodes.Block) and _is_html_block(n.name) != html)]
    if len(body) == len(ast.body):
        return ast
    tree = nodes.Template(body, lineno=ast.lineno)
    tree.environment = ast.environment
    return tree


def _blank_output(node: nodes.Node) -> bool:
    """Whitespace between blocks: nothing to run before rendering a block."""
    return isinstance(node, nodes.Output) and all(
        isinstance(n, nodes.TemplateData) and not n.data.strip() for n in node.nodes)


def _minimal_outcome(decision: str) -> dict:
    return {"id": "sample", "decision": decision, "candidate": {"name": "张伟"}}


def _new_context(template: Any, data: Mapping, channel: str | None = None) -> Context:
    """What Template.new_context makes (the template's globals, then the data), with one dict copy."""
    parent = {**template.globals, **data}
    if channel is not None:
        parent["channel"] = channel
    return Context(template.environment, parent, template.name, template.blocks, template.globals)


@dataclass(frozen=True)
class _ChannelPlan:
    """How one file renders one channel, worked out once: the blocks wanted and, when a single block
    of a file without top-level code is all there is to run, that block's compiled function."""

    main: str
    wanted: tuple
    template: Any = None  # set for the single-block fast path
    block: Any = None


class TemplateStore:
    """Every template file under a directory, scanned once; resolution, rendering and checks, cached."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._entries: dict[str, list[_Entry]] = {}
        self._entry_memo: dict = {}  # (name, locale preferences) -> _Entry | None
        self._usage_cache: dict = {}
        self._check_cache: dict = {}
        self._scan()

    # -- scanning --------------------------------------------------------------------------------

    def _scan(self) -> None:
        if not self.directory.is_dir():
            return
        paths = sorted(p for p in self.directory.rglob("*.j2")
                       if p.is_file() and not any(part.startswith(".")
                                                  for part in p.relative_to(self.directory).parts))
        for p in paths:
            entry = self._load(p)
            self._entries.setdefault(entry.file.name, []).append(entry)
        for entries in self._entries.values():
            entries.sort(key=lambda e: (e.file.locale is not None, (e.file.locale or "").lower()))

    def _load(self, p: Path) -> _Entry:
        rel = p.relative_to(self.directory).as_posix()
        name, locale = _split_name(rel)
        display = _display(p)
        diags: list[Diagnostic] = []
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raw = b""
            diags.append(Loc(display, 1, 1).error("template-syntax", f"cannot read template: {exc.strerror}"))
        try:
            source = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            source = raw.decode("utf-8", errors="replace")
            line = raw[:exc.start].count(b"\n") + 1
            diags.append(Loc(display, line, 1).error("template-syntax", "template is not valid UTF-8"))
        source = source.lstrip("\ufeff")
        meta, header_diags = _parse_header(source, display)
        diags.extend(header_diags)
        blocks: tuple = ()
        ast = None
        syntax_ok = True
        try:
            ast = _TEXT_ENV.parse(source, name=name, filename=display)
            seen: list = []
            for block in ast.find_all(nodes.Block):
                if block.name not in seen:
                    seen.append(block.name)
            blocks = tuple(seen)
        except TemplateSyntaxError as exc:
            syntax_ok = False
            diags.append(Loc(display, max(1, exc.lineno or 1), 1).error(
                "template-syntax", f"template syntax error: {exc.message}"))
        except Exception as exc:  # noqa: BLE001 - the parser must never take herald down
            syntax_ok = False
            diags.append(Loc(display, 1, 1).error("template-syntax", f"template cannot be parsed: {_short(exc)}"))
        file = TemplateFile(name, locale, display, meta, blocks)
        return _Entry(file, source, diags, syntax_ok, ast)

    def _compiled(self, entry: _Entry, html: bool) -> Any:
        if html not in entry.compiled:
            env = _HTML_ENV if html else _TEXT_ENV
            try:
                # both environments parse alike, so the scan's AST serves both (no optimizer: it stays intact)
                tree = _for_mode(entry.ast, html) if entry.ast is not None else entry.source
                code = env.compile(tree, name=entry.file.name, filename=entry.file.path)
                # a plain dict, not Jinja's ChainMap: every render copies the globals into its context
                entry.compiled[html] = env.template_class.from_code(env, code, dict(env.make_globals(None)))
                entry.top_level[html] = not isinstance(tree, nodes.Template) or any(
                    not isinstance(n, nodes.Block) and not _blank_output(n) for n in tree.body)
            except Exception as exc:  # noqa: BLE001
                entry.compiled[html] = exc
        return entry.compiled[html]

    # -- lookup ----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every template name, sorted."""
        return sorted(self._entries)

    def files(self, name: str) -> list[TemplateFile]:
        """Every file of a template: the fallback first, then locales in order."""
        return [e.file for e in self._entries.get(name, [])]

    def _entry(self, name: str, locales: Sequence[str]) -> _Entry | None:
        key = (name, tuple(locales or ()))
        try:
            return self._entry_memo[key]
        except KeyError:
            pass
        except TypeError:  # unhashable preferences: resolve without the memo
            return self._find_entry(name, locales)
        found = self._entry_memo[key] = self._find_entry(name, locales)
        return found

    def _find_entry(self, name: str, locales: Sequence[str]) -> _Entry | None:
        entries = self._entries.get(name)
        if not entries:
            return None
        by_locale = {e.file.locale.lower(): e for e in entries if e.file.locale}
        for pref in locales or ():
            if not isinstance(pref, str) or not pref.strip():
                continue
            for tag in _lookup_chain(pref):
                if tag in by_locale:
                    return by_locale[tag]
        return next((e for e in entries if e.file.locale is None), None)

    def resolve(self, name: str, locales: Sequence[str]) -> TemplateFile | None:
        """The file for the first matching locale (exact, then shorter tags: en-US, en), else the fallback."""
        entry = self._entry(name, locales)
        return entry.file if entry else None

    # -- rendering -------------------------------------------------------------------------------

    def _render_block(self, entry: _Entry, block: str, context: Mapping) -> tuple[str | None, str | None, int | None]:
        """(text, error, template line of the error)."""
        return self._render_blocks(entry, (block,), context)[block]

    def _render_blocks(self, entry: _Entry, blocks: Sequence[str], context: Mapping) -> dict:
        """Render several blocks of one file: one context (and one run of the top level) per escape mode.

        Returns block -> (text, error, template line of the error).
        """
        out: dict = {}
        for html in (False, True):
            wanted = [b for b in blocks if _is_html_block(b) == html]
            if not wanted:
                continue
            template = self._compiled(entry, html)
            if isinstance(template, Exception):
                err = (None, f"template does not compile: {_short(template)}", getattr(template, "lineno", None))
                out.update({b: err for b in wanted})
                continue
            try:
                ctx = _new_context(template, context)
                if entry.top_level.get(html, True):  # top-level set / macro, so blocks can use them
                    real_blocks = ctx.blocks
                    ctx.blocks = {k: [lambda c: iter(())] for k in real_blocks}
                    for _ in template.root_render_func(ctx):
                        pass
                    ctx.blocks = real_blocks
            except Exception as exc:  # noqa: BLE001 - a template must never take herald down
                err = (None, _short(exc), _frame_line(exc, entry.file.path, template))
                out.update({b: err for b in wanted})
                continue
            for block in wanted:
                if block not in template.blocks:
                    out[block] = (None, f"template {entry.file.name} ({entry.file.path}) has no block {block}", None)
                    continue
                try:
                    text = "".join([str(part) for part in template.blocks[block](ctx)])
                except Exception as exc:  # noqa: BLE001
                    out[block] = (None, _short(exc), _frame_line(exc, entry.file.path, template))
                    continue
                out[block] = (_tidy(text, block), None, None)
        return out

    def _channel_plan(self, entry: _Entry, channel: str, main_only: bool) -> _ChannelPlan | str:
        """What rendering `channel` from this file takes, or why it cannot (an error message)."""
        file = entry.file
        if not entry.syntax_ok:
            return f"template {file.path} has a syntax error"
        if file.meta is None:
            return f"template {file.path} has no valid header declaring its decisions"
        missing = [b for b in CHANNEL_BLOCKS.get(channel, (channel,)) if b not in file.blocks]
        if missing:
            return f"template {file.name} ({file.path}) has no block {missing[0]} for channel {channel}"
        main = "email" if channel == "email" else channel
        wanted = [main]
        if "subject" in file.blocks and not main_only:
            wanted.append("subject")
        if channel == "email" and "email_html" in file.blocks and not main_only:
            wanted.append("email_html")
        if len(wanted) == 1:
            html = _is_html_block(main)
            template = self._compiled(entry, html)
            if not isinstance(template, Exception) and not entry.top_level.get(html, True) \
                    and main in template.blocks:
                return _ChannelPlan(main, tuple(wanted), template, template.blocks[main])
        return _ChannelPlan(main, tuple(wanted))

    def render(self, name: str, locale_prefs: Sequence[str], channel: str, context: Mapping,
               main_only: bool = False) -> RenderResult:
        """The message for `channel` from the best file of `name`; errors (never exceptions) in `error`.

        `main_only`: render just the channel's own block (no subject, no HTML part).
        """
        entry = self._entry(name, locale_prefs)
        if entry is None:
            hint = did_you_mean(name, self._entries)
            return RenderResult(None, None, None, f'unknown template "{name}"{hint}')
        file = entry.file
        plan = entry.plans.get((channel, main_only))
        if plan is None:
            plan = entry.plans[(channel, main_only)] = self._channel_plan(entry, channel, main_only)
        if plan.__class__ is str:
            return RenderResult(file, file.locale, None, plan)
        decision = context.get("decision")
        if decision.__class__ is str and decision not in file.meta.decisions:
            return RenderResult(file, file.locale, None,
                                f"template {name} ({file.path}) does not declare decision {decision}")
        main = plan.main
        if plan.block is not None:  # one block, nothing at the top level: render it straight away
            try:
                text = "".join(plan.block(_new_context(plan.template, context, channel)))
            except Exception as exc:  # noqa: BLE001 - a template must never take herald down
                line = _frame_line(exc, file.path, plan.template)
                where = f"{file.path}:{line}" if line else file.path
                return RenderResult(file, file.locale, None, f"{where}: block {main}: {_short(exc)}")
            body = _tidy(text, main)
            if channel != "sms":
                return RenderResult(file, file.locale, Message(channel, body), None)
            rendered = {main: (body, None, None)}
        else:
            ctx = context if context.get("channel") == channel else {**context, "channel": channel}
            rendered = self._render_blocks(entry, plan.wanted, ctx)
            for b in plan.wanted:
                text, err, line = rendered[b]
                if err is not None:
                    where = f"{file.path}:{line}" if line else file.path
                    return RenderResult(file, file.locale, None, f"{where}: block {b}: {err}")
        body = rendered[main][0]
        subject = " ".join(rendered["subject"][0].split()) if "subject" in rendered else None
        html = rendered["email_html"][0] if "email_html" in rendered else None
        sms_chars = sms_segments = None
        if channel == "sms":
            sms_chars, sms_segments = sms_length(body)
        message = Message(channel=channel, body=body, subject=subject, html=html,
                          sms_segments=sms_segments, sms_chars=sms_chars)
        return RenderResult(file, file.locale, message, None)

    # -- checks ----------------------------------------------------------------------------------

    def _variable_diags(self, entry: _Entry, catalog: Any) -> list[Diagnostic]:
        if entry.ast is None:
            return []
        walker = _VarWalker(catalog)
        try:
            walker.visit(entry.ast, frozenset())
        except RecursionError:  # absurdly deep nesting: nothing more to say than the render check will
            return []
        out = []
        lines = entry.source.splitlines()
        for lineno, path, root, suggestion in walker.found:
            text = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
            m = re.search(rf"(?<![\w.]){re.escape(root)}\b", text)
            col = m.start() + 1 if m else 1
            hint = f' (did you mean "{suggestion}"?)' if suggestion else ""
            out.append(Loc(entry.file.path, lineno, col).error(
                "template-variable", f'unknown variable "{path}"{hint}'))
        return out

    def _render_diags(self, entry: _Entry, contexts: list) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        if not entry.syntax_ok:
            return out
        for block in entry.file.blocks:
            for n, (ctx, severity) in enumerate(contexts):
                text, err, line = self._render_block(entry, block, {**ctx, "channel": block})
                if err is None:
                    continue
                loc = Loc(entry.file.path, line or 1, 1)
                if severity == "error":
                    out.append(loc.error("template-render", f"block {block} fails to render: {err}"))
                else:
                    out.append(loc.warning(
                        "template-render",
                        f"block {block} fails to render when optional outcome fields are missing: {err}"))
                break
        return out

    def _mismatch_diags(self, entries: list[_Entry]) -> list[Diagnostic]:
        usable = [e for e in entries if e.syntax_ok]
        if len(usable) < 2:
            return []
        ref = usable[0]
        out = []
        for e in usable[1:]:
            if ref.file.meta and e.file.meta and set(ref.file.meta.decisions) != set(e.file.meta.decisions):
                out.append(Loc(e.file.path, e.file.meta.header_line, 1).warning(
                    "template-locale-mismatch",
                    f"declares decisions [{', '.join(e.file.meta.decisions)}] but {ref.file.path} declares "
                    f"[{', '.join(ref.file.meta.decisions)}]"))
            if set(ref.file.blocks) != set(e.file.blocks):
                extra = sorted(set(e.file.blocks) - set(ref.file.blocks))
                lack = sorted(set(ref.file.blocks) - set(e.file.blocks))
                parts = ([f"lacks {', '.join(lack)}"] if lack else []) + ([f"adds {', '.join(extra)}"] if extra else [])
                out.append(Loc(e.file.path, 1, 1).warning(
                    "template-locale-mismatch",
                    f"blocks differ from {ref.file.path}: {'; '.join(parts)}"))
        return out

    def check(self, catalog: Any = None, sample_context_for: Callable[[str], Mapping] | None = None) -> list[Diagnostic]:
        """Every problem in every template: syntax, header, unknown variables, render failures, locale drift.

        `sample_context_for(name)` gives the full render context (see build_context) to try each template
        with; by default the schema's sample outcome, plus one with only required fields (warnings).
        """
        if catalog is None:
            from .schemas import template_fields
            catalog = template_fields()
        key = (catalog, sample_context_for)
        if key in self._check_cache:
            return list(self._check_cache[key])
        out: list[Diagnostic] = []
        for name, entries in self._entries.items():
            for entry in entries:
                out.extend(entry.diagnostics)
                out.extend(self._variable_diags(entry, catalog))
                out.extend(self._render_diags(entry, self._sample_contexts(entry, sample_context_for)))
            out.extend(self._mismatch_diags(entries))
        result = sort_diagnostics(out)
        self._check_cache[key] = tuple(result)
        return result

    def _sample_contexts(self, entry: _Entry, sample_context_for: Callable | None) -> list:
        if sample_context_for is not None:
            try:
                return [(dict(sample_context_for(entry.file.name)), "error")]
            except Exception:  # noqa: BLE001
                pass
        from .schemas import TEMPLATE_EXTRAS, sample_outcome
        decision = entry.file.meta.decisions[0] if entry.file.meta else "reject"
        return [(build_context(sample_outcome(decision=decision), TEMPLATE_EXTRAS), "error"),
                (build_context(_minimal_outcome(decision), TEMPLATE_EXTRAS), "warning")]

    def _usage_problems(self, name: str, decisions: tuple, channels: tuple) -> tuple:
        key = (name, decisions, channels)
        cached = self._usage_cache.get(key)
        if cached is not None:
            return cached
        problems: list = []
        entries = self._entries.get(name)
        if not entries:
            hint = did_you_mean(name, self._entries)
            problems.append(("unknown-template", f'unknown template "{name}"{hint}'))
        else:
            several = len(entries) > 1
            for decision in decisions:
                lacking = [e.file for e in entries
                           if e.syntax_ok and (e.file.meta is None or decision not in e.file.meta.decisions)]
                if not lacking:
                    continue
                where = f" (in {', '.join(f.path for f in lacking)})" if several and len(lacking) < len(entries) else ""
                problems.append(("template-decision",
                                 f"template {name} does not declare decision {decision}{where}: "
                                 f"a rule that can match {decision} must not use it"))
            for channel in channels:
                for block in CHANNEL_BLOCKS.get(channel, (channel,)):
                    lacking = [e.file for e in entries if e.syntax_ok and block not in e.file.blocks]
                    if not lacking:
                        continue
                    where = ", ".join(f.path for f in lacking)
                    problems.append(("template-missing-block",
                                     f"template {name} has no block {block} for channel {channel} (in {where})"))
        result = tuple(problems)
        self._usage_cache[key] = result
        return result

    def check_usage(self, name: str, decisions: Sequence[str], channels: Sequence[str], loc: Loc) -> list[Diagnostic]:
        """Problems with a rule using template `name` for `decisions` on `channels`, located at `loc`."""
        problems = self._usage_problems(name, tuple(decisions), tuple(channels))
        return [loc.error(code, message) for code, message in problems]
