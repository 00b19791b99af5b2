"""The sandbox templates run in: Jinja2's immutable sandbox with size limits, safe helpers and filters, and the context."""
from __future__ import annotations

import re
import string
import warnings
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from collections.abc import Callable, Mapping

from jinja2 import filters as jinja_filters
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.exceptions import SecurityError, TemplateRuntimeError, UndefinedError
from jinja2.filters import FILTERS as DEFAULT_FILTERS
from jinja2.runtime import ChainableUndefined, Undefined
from jinja2.utils import missing, pass_context, pass_environment, pass_eval_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.render.budget import _SMALL, _local, charge, charge_printed, charge_printed_total, charge_size, charge_to

__all__ = ["GLOBAL_NAMES", "HTML_ENV", "TEXT_ENV", "build_context", "plain"]

_MAX_REPEAT = 100_000     # longest string/list `*` may build
_MAX_EXPONENT = 256       # largest exponent `**` may use
_MAX_RANGE = 10_000       # longest range() a template may make
_MAX_FORMAT_WIDTH = 1_000  # widest field in a `%` format
_MAX_INT_BITS = 65_536    # largest integer `*` and `**` may build


class _LenientUndefined(ChainableUndefined):
    """Missing data renders empty and chains (`position.title` of no position); unsafe access raises at once."""

    __slots__ = ()

    def __init__(self, hint: str | None = None, obj: Any = missing, name: str | None = None,
                 exc: type[TemplateRuntimeError] = UndefinedError) -> None:
        # Undefined.__init__'s four assignments, inline: templates make one of these for every reference to a
        # missing field (`position` of an outcome without one), and super() with *args costs twice as much
        self._undefined_hint = hint
        self._undefined_obj = obj
        self._undefined_name = name
        self._undefined_exception = exc
        if exc is SecurityError:
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
    if value.__class__ is str:  # the common case, first
        if len(value) > _SMALL:
            charge_printed(value)
        return value
    if value.__class__ is int:
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
    return any(any(g and (g == "*" or int(g) > _MAX_FORMAT_WIDTH) for g in m.groups()) for m in _FORMAT_WIDTH_RE.finditer(fmt))


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


def _check_replace(text: str, old: Any = "", new: Any = "", count: Any = -1, *_: Any, **__: Any) -> None:
    """Refuse a replace whose result would be too large, before it is built (one C call: not interruptible)."""
    if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        hits = text.count(old) + (1 if old == "" else 0)
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        charge_size(len(text) + hits * (len(new) - len(old)))


def _check_join(sep: str, items: Any = (), *_: Any, **__: Any) -> None:
    if isinstance(items, (list, tuple)):
        charge_size(sum(len(i) for i in items if isinstance(i, str)) + len(sep) * len(items))


_GROWING_METHODS: dict[str, Callable[..., None]] = {"replace": _check_replace, "join": _check_join}


def _check_filter_args(name: str, value: Any, args: tuple, kwargs: dict) -> None:
    if name == "replace" and isinstance(value, str):
        _check_replace(value, *args, **kwargs)
    elif name == "join" and isinstance(value, (list, tuple)):
        sep = args[0] if args else kwargs.get("d", "")
        _check_join(sep if isinstance(sep, str) else "", value)
    elif name == "indent" and isinstance(value, str):
        width = args[0] if args else kwargs.get("width", 4)
        if isinstance(width, int):
            charge_size(len(value) + (value.count("\n") + 1) * width)
        elif isinstance(width, str):
            charge_size(len(value) + (value.count("\n") + 1) * len(width))


def _budgeted_join(fn: Callable, pass_arg: Any) -> Callable:
    """`join` (called with the eval context first), budgeted as _budgeted_filter does it, in one pass: the
    filter every message template uses, so the render's slot is looked up once and the sizes summed in a loop.
    The separator is a parameter of its own (`join(", ")`, `join(d=", ")`): no tuple of extra arguments to
    build and unpack on the common call."""

    def budgeted(first: Any, value: Any, d: Any = "", *args: Any, **kwargs: Any) -> Any:
        slot = getattr(_local, "slot", None)  # this thread's render, charged when in progress (as charge() finds it)
        if slot is None or not slot.active:
            return fn(first, value, d, *args, **kwargs) if args or kwargs else fn(first, value, d)
        if value.__class__ is list and d.__class__ is str and not args and not kwargs and not first.autoescape:
            # plain text joined with a plain separator in a text block: `d.join(value)` is what the filter
            # returns (str(d).join(map(str, value))), without the map and the str() of every item; charged
            # as below
            size = len(d) * len(value)
            for item in value:
                if item.__class__ is not str:
                    break
                size += len(item)
            else:  # the result's length is known before it is built: the items and one separator fewer
                charge_to(slot, size, size - len(d) if value else 0)
                return d.join(value)
        if isinstance(value, (list, tuple)):  # what _check_filter_args charges for `join`
            size = len(d) * len(value) if d.__class__ is str or isinstance(d, str) else 0
            for item in value:
                if item.__class__ is str or isinstance(item, str):
                    size += len(item)
            charge_to(slot, size)
        result = fn(first, value, d, *args, **kwargs) if args or kwargs else fn(first, value, d)
        if isinstance(result, (str, list, tuple, dict)):  # what charge() counts
            charge_to(slot, len(result))
        return result

    budgeted.__name__ = "join"
    return _passing(pass_arg, budgeted)


_PASS = {"context": pass_context, "eval_context": pass_eval_context, "environment": pass_environment}


def _passing(pass_arg: Any, fn: Callable) -> Callable:
    """`fn` marked, with Jinja's own decorator, to take first what `pass_arg` (a filter's jinja_pass_arg) names."""
    return _PASS[pass_arg.name](fn)


def _budgeted_filter(name: str, fn: Callable) -> Callable:
    """A filter whose growing arguments are checked first and whose result is charged to the render."""
    pass_arg = getattr(fn, "jinja_pass_arg", None)
    if name == "join" and pass_arg is not None:
        return _budgeted_join(fn, pass_arg)

    if pass_arg is None:
        def budgeted(value: Any, *args: Any, **kwargs: Any) -> Any:
            _check_filter_args(name, value, args, kwargs)
            return charge(fn(value, *args, **kwargs))

        budgeted.__name__ = name
        return budgeted

    def budgeted_passed(first: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_filter_args(name, value, args, kwargs)
        return charge(fn(first, value, *args, **kwargs))

    budgeted_passed.__name__ = name
    return _passing(pass_arg, budgeted_passed)


_DICT_ATTRS = frozenset(dir(dict))
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), dict, list})
_ABSENT = object()


class _BudgetCodeGenerator(CodeGenerator):
    """Jinja's code generator, with `a ~ b` measured (environment.measured) before it is joined, and two
    fast paths written inline into the compiled template (no Python call in the common case):

    - `x.name` on a plain dict whose value under "name" is plain data (the outcome's fields): that value,
      as `_Sandbox.getattr` answers it; a key the dict lacks, the environment's undefined, as it answers
      that too; anything else (another type, a dict attribute such as `items`, a callable) goes through
      `environment.getattr`, the sandbox's checks.
    - `{{ value }}` in a text block: a string of at most `_SMALL` characters is printed as it is, as
      `_finalize` does; anything else through `environment.finalize`, the sandbox's checks and charges.

    Both use two scratch locals (`_hg_o`, `_hg_v`; Jinja's own names all begin `l_`, `t_` or `_block`)
    assigned inside the expression, so nested uses are each complete before the outer one reads them."""

    def write_commons(self) -> None:
        super().write_commons()
        self.writeline("_hg_plain = environment.plain_types")

    @optimizeconst
    def visit_Getattr(self, node: nodes.Getattr, frame: Any) -> None:  # noqa: N802 - Jinja's visitor name
        if self.environment.is_async or node.attr in _DICT_ATTRS:
            super().visit_Getattr(node, frame)
            return
        self.write("(_hg_v if (_hg_o := ")
        self.visit(node.node, frame)
        self.write(f").__class__ is dict and (_hg_v := _hg_o.get({node.attr!r}, missing)).__class__ in _hg_plain"
                   f" else undefined(obj=_hg_o, name={node.attr!r}) if _hg_o.__class__ is dict and _hg_v is missing"
                   f" else environment.getattr(_hg_o, {node.attr!r}))")

    @staticmethod
    def _inline_finalize(frame: Any, finalize: Any) -> bool:
        return not frame.eval_ctx.volatile and not frame.eval_ctx.autoescape and finalize.src == "environment.finalize("

    def _output_child_pre(self, node: nodes.Expr, frame: Any, finalize: Any) -> None:
        if self._inline_finalize(frame, finalize):
            self.write("(_hg_v if (_hg_v := ")
        else:
            super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Any, finalize: Any) -> None:
        if self._inline_finalize(frame, finalize):
            self.write(f").__class__ is str and len(_hg_v) <= {_SMALL} else str(environment.finalize(_hg_v)))")
        else:
            super()._output_child_post(node, frame, finalize)

    def visit_Output(self, node: nodes.Output, frame: Any) -> None:  # noqa: N802 - Jinja's visitor name
        """Jinja's visit_Output, but in a generator (root or block function: no buffer) the pieces of one
        output node are yielded joined, in one `yield concat((...))`, not one yield each: a generator's
        resumption costs more than the join, and every consumer joins the pieces anyway."""
        if frame.buffer is not None or self.environment.is_async or frame.require_output_check:
            super().visit_Output(node, frame)
            return
        finalize = self._make_finalize()
        body: list = []  # Jinja's grouping: runs of constants (lists of text) and nodes evaluated at runtime
        for child in node.nodes:
            try:
                if not (finalize.const or isinstance(child, nodes.TemplateData)):
                    raise nodes.Impossible()
                const = self._output_child_to_const(child, frame, finalize)
            except Exception:  # noqa: BLE001 - as Jinja: not constant (Impossible), or an error easier to report at runtime
                body.append(child)
                continue
            if body and isinstance(body[-1], list):
                body[-1].append(const)
            else:
                body.append([const])
        if len(body) < 2:
            super().visit_Output(node, frame)
            return
        self.writeline("yield concat((")
        self.indent()
        for item in body:
            if isinstance(item, list):
                self.writeline(self._output_const_repr(item) + ",")
            else:
                self.newline(item)
                self._output_child_pre(item, frame, finalize)
                self.visit(item, frame)
                self._output_child_post(item, frame, finalize)
                self.write(",")
        self.outdent()
        self.writeline("))")

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:  # noqa: N802 - Jinja's visitor name
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"{func_name}(environment.measured((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with methods wrapped so they cannot be printed and sizes capped."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _BudgetCodeGenerator
    plain_types = _PLAIN_TYPES  # what the compiled templates' inline getattr hands out as it is

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

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(__obj, _Callable):
            __obj = __obj._fn
        name = getattr(__obj, "__name__", None)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            if name in _PADDING_METHODS:
                _check_width(*args, *kwargs.values())
            elif name in _GROWING_METHODS:
                _GROWING_METHODS[name](owner, *args, **kwargs)
        return charge(super().call(__context, __obj, *args, **kwargs))

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        if argument.__class__ is slice:
            charge(value)
        return self._wrap(value, str(argument)[:40])

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
            if left.__class__ is int and right.__class__ is int \
                    and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                raise SecurityError("number too large for a template")
        elif operator == "**":
            if isinstance(right, (int, float)) and abs(right) > _MAX_EXPONENT:
                raise SecurityError("exponent too large for a template")
            if left.__class__ is int and right.__class__ is int and left.bit_length() * abs(right) > _MAX_INT_BITS:
                raise SecurityError("number too large for a template")
        elif operator == "%" and isinstance(left, str) and _percent_too_wide(left):
            raise SecurityError("format width too large for a template")
        result = super().call_binop(context, operator, left, right)
        if result.__class__ is not int and result.__class__ is not float:
            charge(result)
        return result

    def measured(self, parts: tuple) -> tuple:
        """`a ~ b`: the pieces are measured before Jinja joins them."""
        charge_printed_total(parts)
        return parts


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


def _make_env(autoescape: bool, env_class: type[_Sandbox] = _Sandbox) -> _Sandbox:
    env = env_class(autoescape=autoescape, undefined=_LenientUndefined, finalize=_finalize,
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
    for name, fn in list(env.filters.items()):
        env.filters[name] = _budgeted_filter(name, fn)
    return env


TEXT_ENV = _make_env(False)
HTML_ENV = _make_env(True)
GLOBAL_NAMES = frozenset({"range", "dict", "namespace", "self", "super"})

# Jinja writes a slice as a Python subscript, so `{% set x = 5[::-1] %}` compiles to `5[::-1]`, and Python's compiler
# warns on stderr ("'int' object is not subscriptable; perhaps you missed a comma?") at a line of the generated
# code. The render fails on it anyway and validate reports it at the template's line: the warning is noise.
warnings.filterwarnings("ignore", r".*; perhaps you missed a comma\?", SyntaxWarning)

def plain(value: Any, depth: int = 0) -> Any:
    if depth > 30:
        return None
    if isinstance(value, (str, int, float, bool, type(None), Decimal, date, datetime, time)):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v, depth + 1) for v in value]
    return str(value)


def build_context(outcome: Mapping, extras: Mapping, trusted: bool = False) -> dict:
    """What a template sees: the outcome's fields at top level, then herald's extras (company, links, channel).

    `trusted`: outcome and extras are plain data already (from json.loads, or made plain once at
    load time): no copy needed, since the sandbox is immutable and templates cannot change them.
    """
    if trusted:
        return {**(outcome or {}), **(extras or {})}
    ctx = plain(dict(outcome or {}))
    ctx.update(plain(dict(extras or {})))
    return ctx
