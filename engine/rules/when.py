"""The `when` expression language: parsing (lark, LALR), compiling to a fast predicate, field checks, explanations."""
from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping

import re2
from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from engine.rules.suggest import closest

MAX_LENGTH = 100_000  # characters in one expression
MAX_DEPTH = 50        # nesting of parentheses / `not` / and-or groups

SYNTAX, UNKNOWN_FIELD, BAD_REGEX, TYPE = "when-syntax", "unknown-field", "bad-regex", "when-type"


@dataclass(frozen=True)
class WhenError:
    """A problem at a character offset (0-based) inside the expression source."""

    offset: int
    code: str  # when-syntax | unknown-field | bad-regex | when-type
    message: str


@dataclass(frozen=True)
class FieldRef:
    """A field path as written in the expression, and where."""

    path: str
    offset: int


# ---------------------------------------------------------------- the syntax tree (identity-hashed)

@dataclass(frozen=True, eq=False)
class _Lit:
    value: Any  # str, int, float, bool, None, or a tuple of those (a list literal)
    start: int
    end: int


@dataclass(frozen=True, eq=False)
class _Field:
    path: str
    start: int
    end: int


@dataclass(frozen=True, eq=False)
class _Op:
    """A condition: op is and, or, not, truth (a bare value), a comparison operator, in, not in, contains, ..."""

    op: str
    args: tuple
    start: int
    end: int
    regex: Any = None  # the compiled pattern of `matches`


class _Fail(Exception):
    def __init__(self, offset: int, code: str, message: str):
        self.error = WhenError(offset, code, message)


# ---------------------------------------------------------------- parsing

@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "when.lark").read_text("utf-8")
    return Lark(grammar, parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=False)


_KEYWORDS = {"and", "or", "not", "in", "contains", "startswith", "endswith", "matches", "true", "false", "null"}
_OPERATORS = {"CMP", "IN", "CONTAINS", "STARTSWITH", "ENDSWITH", "MATCHES"}
_CHAR_HINTS = {"=": 'use "==" to compare', "&": 'write "and"', "|": 'write "or"', "!": 'write "not", or "!=" to compare'}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)


def _unescape(body: str) -> str:
    """Backslash escapes: \\n \\t \\r \\\\ \\" \\' \\uXXXX \\UXXXXXXXX; any other (\\d, \\b, \\.) is kept as written, for regexes."""
    def one(m: re.Match) -> str:
        s = m.group(1)
        if len(s) > 1:
            code = int(s[1:], 16)
            return chr(code) if code <= 0x10FFFF else m.group(0)
        return _ESCAPES.get(s, m.group(0))
    return _ESCAPE_RE.sub(one, body) if "\\" in body else body


def _join(words: list) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _expected(names: set) -> str:
    """The terminals the parser would take, in plain words."""
    words = []
    if names >= {"PATH", "STRING", "LPAR"}:
        words.append("a value")
    elif names >= {"PATH", "LSQB"}:
        words.append("a list or a field")
    elif names >= {"STRING", "NUMBER"}:
        words.append("a literal (string, number, true, false, null)")
    elif "STRING" in names:
        words.append("a regular expression in quotes")
    if "CMP" in names:
        words.append("an operator")
    elif names & _OPERATORS:
        words += [f'"{n.lower()}"' for n in sorted(names & _OPERATORS)]
    if names & {"AND", "OR"} and "CMP" not in names:
        words.append('"and" or "or"' if {"AND", "OR"} <= names else f'"{min(names & {"AND", "OR"}).lower()}"')
    words += [f'"{s}"' for n, s in (("RPAR", ")"), ("RSQB", "]"), ("COMMA", ",")) if n in names]
    if not words and "$END" in names:
        words.append("the end of the expression")
    return _join(words) if words else "something else"


def _acceptable(exc: UnexpectedInput) -> set:
    """Exactly the terminals that may come next (the LALR table's own list over-approximates)."""
    try:
        return set(exc.interactive_parser.accepts())
    except Exception:  # noqa: BLE001 - lark's interactive parser may be missing or fail; `expected` is the fallback
        return set(getattr(exc, "expected", ()) or ())


def _syntax_error(source: str, exc: UnexpectedInput) -> WhenError:
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = source[pos]
        if ch in "\"'":
            return WhenError(pos, SYNTAX, f"unterminated string: no closing {ch}")
        if ch == "." and pos > 0 and (source[pos - 1].isalnum() or source[pos - 1] == "_"):
            return WhenError(pos, SYNTAX, 'unexpected "." — a field path is names joined by dots, like candidate.locale')
        hint = _CHAR_HINTS.get(ch)
        shown = f'"{ch}"' if ch.isprintable() else f"U+{ord(ch):04X}"
        return WhenError(pos, SYNTAX, f"unexpected character {shown}" + (f" — {hint}" if hint else ""))
    accepts = _acceptable(exc)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return WhenError(len(source), SYNTAX, f"unexpected end of expression — expected {_expected(accepts)}")
    tok: Token = exc.token  # type: ignore[attr-defined]  # an UnexpectedToken: lark's only other kind
    pos = tok.start_pos or 0
    if tok.type == "RPAR" and "$END" in accepts:
        return WhenError(pos, SYNTAX, 'unexpected ")" — there is no "(" to close')
    text = str(tok) if len(str(tok)) <= 40 else str(tok)[:37] + "..."
    found = f"string {text}" if tok.type == "STRING" else f'"{text}"'
    message = f"unexpected {found} — expected {_expected(accepts)}"
    if tok.type == "CMP" and "CMP" not in accepts and accepts & {"AND", "OR"}:
        message += ' (comparisons do not chain: join them with "and")'
    elif tok.type == "PATH" and tok.lower() in _KEYWORDS:
        message += f' (keywords are lowercase: "{tok.lower()}")'
    return WhenError(pos, SYNTAX, message)


def _build(node: Any, depth: int = 0) -> Any:
    """The lark tree as _Lit / _Field / _Op; raises _Fail for too deep nesting, bad numbers, bad regexes."""
    if depth > MAX_DEPTH:
        raise _Fail(getattr(getattr(node, "meta", None), "start_pos", 0) or 0, SYNTAX,
                    f"expression is nested too deeply (more than {MAX_DEPTH} levels)")
    if isinstance(node, Token):  # only a PATH reaches here bare (the right side of `in`)
        return _Field(str(node), node.start_pos or 0, node.end_pos or 0)
    kind, kids, meta = node.data, node.children, node.meta
    start, end = meta.start_pos, meta.end_pos
    if kind == "field":
        return _Field(str(kids[0]), start, end)
    if kind == "literal":
        return _Lit(_literal(_token(kids[0])), start, end)
    if kind == "list":
        return _Lit(tuple(_literal(_token(k.children[0])) for k in kids if isinstance(k, Tree)), start, end)
    if kind == "group":  # (x) is the value x; (a == b) is the condition
        inner = kids[1]
        if isinstance(inner, Tree) and inner.data == "truth":
            inner = inner.children[0]
        return _build(inner, depth + 1)
    parts = [_build(k, depth + 1) for k in kids if isinstance(k, Tree) or k.type == "PATH"]
    if kind in ("or_expr", "and_expr"):
        return _Op(kind[:-5], tuple(parts), start, end)
    if kind == "not_":
        return _Op("not", tuple(parts), start, end)
    if kind == "truth":
        inner = parts[0]
        return inner if isinstance(inner, _Op) else _Op("truth", (inner,), start, end)
    if kind == "compare":
        return _Op(str(kids[1]), tuple(parts), start, end)
    if kind == "matches":
        pattern = _literal(kids[2])
        try:
            regex = compile_regex(pattern)
        except Exception as exc:  # noqa: BLE001 - ValueError, OverflowError, RecursionError ...
            raise _Fail(kids[2].start_pos, BAD_REGEX, f"bad regular expression {kids[2]}: {exc}") from None
        return _Op("matches", (parts[0], _Lit(pattern, kids[2].start_pos, kids[2].end_pos)), start, end, regex)
    return _Op({"in_": "in", "not_in": "not in"}.get(kind, kind), tuple(parts), start, end)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors come back as diagnostics, not on stderr
_RE2_OPTIONS.max_mem = 8 << 20   # a compiled pattern's memory budget (bytes)


def compile_regex(pattern: str) -> Any:
    """A `matches` pattern compiled with RE2: linear-time matching, so no input can make it backtrack.

    Raises ValueError with RE2's reason for what RE2 does not accept (backreferences, lookaround, ...).
    """
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"not valid RE2 syntax: {reason}") from None


MEMO_TEXT_CHARS = 256   # texts up to this long have their `matches` verdicts remembered
MEMO_ENTRIES = 4096     # verdicts kept per pattern (the memo starts over when full)


def memo_search(regex: Any) -> Callable[[str], bool]:
    """Whether `regex` finds a match in a text, remembered per short text: RE2's Python binding costs
    microseconds a call, and routed fields (role, stage, source, ...) repeat the same few values."""
    return _memo_parts(regex)[1]


def _memo_parts(regex: Any) -> tuple[Callable[[str], bool | None], Callable[[str], bool]]:
    """memo_search's memo lookup (the verdict, or None when not remembered) and the search itself: a
    compiled `matches` asks the memo's C-level get first and calls the search only when it has nothing."""
    search = regex.search
    memo: dict[str, bool] = {}
    get = memo.get

    def found(text: str) -> bool:
        hit = get(text)
        if hit is None:
            hit = search(text) is not None
            if len(text) <= MEMO_TEXT_CHARS:
                if len(memo) >= MEMO_ENTRIES:
                    memo.clear()
                memo[text] = hit
        return hit

    return get, found


def _token(node: Tree | Token) -> Token:
    """A child the grammar always makes a token (a literal's, a regex's)."""
    if not isinstance(node, Token):
        raise TypeError(f"expected a token, got a {node.data} tree")
    return node


def _literal(tok: Token) -> Any:
    if tok.type == "STRING":
        return _unescape(tok[1:-1])
    if tok.type == "NUMBER":
        try:
            return int(tok) if tok.lstrip("-").isdigit() else float(tok)
        except ValueError:
            raise _Fail(tok.start_pos or 0, SYNTAX, f"number {tok[:20]}... is too long") from None
    return {"TRUE": True, "FALSE": False, "NULL": None}[tok.type]


def _refs(node: Any, out: list) -> list:
    if isinstance(node, _Field):
        out.append(FieldRef(node.path, node.start))
    elif isinstance(node, _Op):
        for arg in node.args:
            _refs(arg, out)
    return out


# ---------------------------------------------------------------- runtime semantics (used by the generated code)

_NUM = (int, float)
_SEQ = (list, tuple)


def _eq(a: Any, b: Any) -> bool:
    """Equality by value and type: null only equals null, true is not 1, 1 equals 1.0, lists and objects deeply."""
    if a is None or b is None:
        return a is b
    ta, tb = type(a), type(b)
    if (ta in _NUM and tb in _NUM) or (ta is str and tb is str) or (ta is bool and tb is bool):
        return a == b
    if ta in _SEQ and tb in _SEQ:
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    return False


def _ordered(a: Any, b: Any) -> bool:
    """May a and b be compared with < etc.? Both numbers or both strings."""
    ta, tb = type(a), type(b)
    return (ta in _NUM and tb in _NUM) or (ta is str and tb is str)


def _member(a: Any, seq: Any) -> bool:
    return a is not None and type(seq) in _SEQ and any(_eq(a, x) for x in seq)


def _not_member(a: Any, seq: Any) -> bool:
    return a is not None and type(seq) in _SEQ and not any(_eq(a, x) for x in seq)


def _contains(a: Any, b: Any) -> bool:
    if b is None:
        return False
    if type(a) in _SEQ:
        return any(_eq(x, b) for x in a)
    return type(a) is str and type(b) is str and b in a


_RUNTIME = {"_eq": _eq, "_ordered": _ordered, "_member": _member, "_not_member": _not_member,
            "_contains": _contains, "_NUM": _NUM, "_SEQ": _SEQ, "isinstance": isinstance, "dict": dict,
            "type": type, "str": str, "bool": bool, "Exception": Exception, "__builtins__": {}}


# ---------------------------------------------------------------- code generation

class _Gen:
    """Turns a tree into one Python expression over the outcome `o`; literals and regexes become named constants."""

    def __init__(self) -> None:
        self.consts: dict = {}
        self.n = 0

    def const(self, value: Any) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def temp(self) -> str:
        self.n += 1
        return f"_v{self.n}"

    def value(self, node: Any) -> str:
        if isinstance(node, _Op):  # a parenthesised condition used as a value: true or false
            return self.cond(node)
        if isinstance(node, _Lit):
            return self.const(node.value)
        parts = node.path.split(".")
        code = f"_get({parts[0]!r})"
        for part in parts[1:]:
            t = self.temp()
            code = f"({t}.get({part!r}) if isinstance({t} := {code}, dict) else None)"
        return code

    def cond(self, node: _Op) -> str:
        op, args = node.op, node.args
        if op in ("and", "or"):
            return "(" + f" {op} ".join(self.cond(a) for a in args) + ")"
        if op == "not":
            return f"(not {self.cond(args[0])})"
        if op == "truth":
            return "True" if isinstance(args[0], _Op) else f"({self.value(args[0])} is True)"
        left, right = args
        if op in ("==", "!="):
            return self.equal(left, right, op == "!=")
        if op in ("<", "<=", ">", ">="):
            return self.order(op, left, right)
        if op in ("in", "not in"):
            return self.member(left, right, op == "not in")
        if op == "contains":
            return f"_contains({self.value(left)}, {self.value(right)})"
        if op == "matches":
            t, h = self.temp(), self.temp()
            known, found = _memo_parts(node.regex)
            return (f"(type({t} := {self.value(left)}) is str and ({h} if ({h} := {self.const(known)}({t})) "
                    f"is not None else {self.const(found)}({t})))")
        # startswith / endswith
        t, u = self.temp(), self.temp()
        return (f"(type({t} := {self.value(left)}) is str and type({u} := {self.value(right)}) is str"
                f" and {t}.{op}({u}))")

    def equal(self, left: Any, right: Any, negate: bool) -> str:
        if isinstance(left, _Lit) and not isinstance(right, _Lit):
            left, right = right, left
        neg = "not " if negate else ""
        if isinstance(right, _Lit):
            lit = right.value
            if lit is None or type(lit) is bool:
                return f"({self.value(left)} is {'not ' if negate else ''}{lit!r})"
            if type(lit) is str:
                return f"({self.value(left)} {'!=' if negate else '=='} {self.const(lit)})"
            if type(lit) in _NUM:
                t = self.temp()
                return f"({neg}(type({t} := {self.value(left)}) in _NUM and {t} == {self.const(lit)}))"
        return f"({neg}_eq({self.value(left)}, {self.value(right)}))"

    def order(self, op: str, left: Any, right: Any) -> str:
        lits = [x.value for x in (left, right) if isinstance(x, _Lit)]
        if any(v is None or type(v) not in (int, float, str) for v in lits):
            return "False"  # null, true/false or a list can never be ordered
        if len(lits) == 1:
            lit = lits[0]
            guard = "type({t}) in _NUM" if type(lit) in _NUM else "type({t}) is str"
            t = self.temp()
            if isinstance(right, _Lit):
                return f"({guard.format(t=f'({t} := {self.value(left)})')} and {t} {op} {self.const(lit)})"
            return f"({guard.format(t=f'({t} := {self.value(right)})')} and {self.const(lit)} {op} {t})"
        t, u = self.temp(), self.temp()
        return f"(_ordered({t} := {self.value(left)}, {u} := {self.value(right)}) and {t} {op} {u})"

    def member(self, left: Any, right: Any, negate: bool) -> str:
        if isinstance(right, _Lit):  # a list literal: set look-ups, one set per type (true is not 1)
            t = self.temp()
            tests = []
            for guard, kinds in (("type({t}) is str", (str,)), ("type({t}) in _NUM", (int, float)),
                                 ("type({t}) is bool", (bool,))):
                members = frozenset(v for v in right.value if type(v) in kinds)
                if members:
                    tests.append(f"{guard.format(t=t)} and {t} in {self.const(members)}")
            found = " or ".join(f"({x})" for x in tests) or "False"
            if negate:
                return f"(({t} := {self.value(left)}) is not None and not ({found}))"
            return f"(({t} := {self.value(left)}) is not None and ({found}))"
        fn = "_not_member" if negate else "_member"
        return f"{fn}({self.value(left)}, {self.value(right)})"


def _compile(node: _Op) -> Callable[[Mapping], bool]:
    """The predicate for `node`. Its constants (literals, sets, regexes) are closure cells of a function made
    by a factory compiled once per shape of expression: the rules of a large rule set share a few code
    objects and one namespace instead of one each (10,000 of them were megabytes that no CPU cache held)."""
    gen = _Gen()
    body = gen.cond(node)
    names = tuple(gen.consts)
    make = _factory(names, body) if len(body) <= SHARED_BODY_CHARS else _make_factory(names, body)
    return make(*gen.consts.values())


SHARED_BODY_CHARS = 4096  # longer expressions are compiled on their own (the factory cache holds no huge texts)


def _make_factory(names: tuple[str, ...], body: str) -> Callable[..., Callable[[Mapping], bool]]:
    source = (f"def _make({', '.join(names)}):\n"
              "    def _when(o):\n"
              "        try:\n"
              "            _get = o.get\n"
              f"            return {body}\n"
              "        except Exception:\n"
              "            return False\n"
              "    return _when\n")
    namespace: dict[str, Any] = dict(_RUNTIME)
    exec(compile(source, "<when>", "exec"), namespace)  # noqa: S102 - generated from our own tree only
    return namespace["_make"]


_factory = lru_cache(maxsize=1024)(_make_factory)


# ---------------------------------------------------------------- numeric ranges (for the router's interval tables)

@dataclass(frozen=True)
class FieldRange:
    """What a `when` made only of number comparisons on one field, joined by `and`, tests: the field is a number
    (not true/false, not NaN) between `lo` and `hi` (None: unbounded), each bound included when `*_closed`."""

    path: str
    lo: int | float | None = None
    lo_closed: bool = False
    hi: int | float | None = None
    hi_closed: bool = False

    def contains(self, x: Any) -> bool:
        """The predicate's answer for the value x of the field."""
        if type(x) not in _NUM or x != x:
            return False
        if self.lo is not None and (x < self.lo or (x == self.lo and not self.lo_closed)):
            return False
        return self.hi is None or x < self.hi or (x == self.hi and self.hi_closed)


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def _range_of(root: _Op) -> FieldRange | None:
    """The FieldRange `root` tests, or None when it is anything else (another operator, two fields, `or`, ...)."""
    parts, todo = [], [root]
    while todo:
        node = todo.pop()
        if not isinstance(node, _Op):
            return None
        if node.op == "and":
            todo.extend(node.args)
        elif node.op in _FLIP and len(node.args) == 2:
            parts.append(node)
        else:
            return None
    lo: Any = None
    hi: Any = None
    lo_closed = hi_closed = False
    path = None
    for node in parts:
        left, right = node.args
        op = node.op
        if isinstance(left, _Lit):
            left, right, op = right, left, _FLIP[op]
        if not (isinstance(left, _Field) and isinstance(right, _Lit)) or type(right.value) not in _NUM:
            return None
        if path is None:
            path = left.path
        elif left.path != path:
            return None
        v = right.value
        if v != v:
            return None
        if op in (">", ">=", "==") and (lo is None or v > lo or (v == lo and lo_closed and op == ">")):
            lo, lo_closed = v, op != ">"
        if op in ("<", "<=", "==") and (hi is None or v < hi or (v == hi and hi_closed and op == "<")):
            hi, hi_closed = v, op != "<"
    return FieldRange(path, lo, lo_closed, hi, hi_closed) if path is not None else None


def field_range(predicate: Callable | None) -> FieldRange | None:
    """The FieldRange a compiled `when` predicate tests, when it is one; None for any other predicate."""
    rng = getattr(predicate, "field_range", None)
    return rng if isinstance(rng, FieldRange) else None


# ---------------------------------------------------------------- the public API

@dataclass(frozen=True)
class WhenExpr:
    """A parsed and compiled `when` expression."""

    source: str
    fields: tuple  # FieldRef, in source order
    predicate: Callable[[Mapping], bool]  # compiled; never raises
    _root: Any = field(default=None, repr=False, compare=False)
    _parts: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    def __call__(self, outcome: Mapping) -> bool:
        return self.predicate(outcome)

    def explain(self, outcome: Mapping) -> str | None:
        """None when the expression is true; else the first (leftmost, innermost) condition that made it false,
        e.g. 'score >= 60 was false (score = 55)'. An or-group is named whole."""
        try:
            if self.predicate(outcome):
                return None
            node = self._root
            while node.op == "and":  # descend to the leftmost false part; an or-group or a `not` is named whole
                node = next((a for a in node.args if not self._holds(a, outcome)), node.args[-1])
            values = ", ".join(_describe(path, outcome) for path in dict.fromkeys(r.path for r in _refs(node, [])))
            text = _tidy(self.source[node.start:node.end])
            return f"{text} was false ({values})" if values else f"{text} is always false"
        except Exception:  # noqa: BLE001 - explanations are best effort; they must not break routing
            return f"{_tidy(self.source)} was false"

    def _holds(self, node: _Op, outcome: Mapping) -> bool:
        fn = self._parts.get(id(node))
        if fn is None:
            fn = self._parts[id(node)] = _compile(node)
        return fn(outcome)


_MISSING = object()
_SPACE_RE = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|\s+""", re.S)


def _tidy(text: str) -> str:
    """Runs of white space (outside strings) as one space, for expressions written over several lines."""
    return _SPACE_RE.sub(lambda m: m.group(1) or " ", text).strip()


def _describe(path: str, outcome: Mapping) -> str:
    value: Any = outcome
    for part in path.split("."):
        value = value.get(part, _MISSING) if isinstance(value, Mapping) else _MISSING
        if value is _MISSING:
            return f"{path} is missing"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"{path} = {text if len(text) <= 60 else text[:57] + '...'}"


@lru_cache(maxsize=2048)
def _parse_cached(source: str) -> tuple:
    if not source.strip():
        return None, (WhenError(0, SYNTAX, "empty expression"),)
    if len(source) > MAX_LENGTH:
        return None, (WhenError(MAX_LENGTH, SYNTAX, f"expression is too long (more than {MAX_LENGTH} characters)"),)
    try:
        tree = _parser().parse(source)
    except UnexpectedInput as exc:
        return None, (_syntax_error(source, exc),)
    except (LarkError, RecursionError) as exc:
        return None, (WhenError(0, SYNTAX, f"could not parse the expression: {exc}"),)
    errors = []
    try:
        root = _build(tree)
    except _Fail as fail:
        errors.append(fail.error)
        errors += _more_regex_errors(tree, fail.error.offset)
        return None, tuple(sorted(set(errors), key=lambda e: e.offset))
    except RecursionError:
        return None, (WhenError(0, SYNTAX, f"expression is nested too deeply (more than {MAX_DEPTH} levels)"),)
    if not isinstance(root, _Op):  # a bare literal or field at the top: `true`, `approved`
        root = _Op("truth", (root,), root.start, root.end)
    try:
        predicate = _compile(root)
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None, (WhenError(0, SYNTAX, "expression is too complex"),)
    predicate.field_range = _range_of(root)  # type: ignore[attr-defined]  # read through field_range()
    return WhenExpr(source, tuple(_refs(root, [])), predicate, root), ()


def _more_regex_errors(tree: Tree, seen: int) -> list:
    """Every bad regex, not only the first one _build met."""
    out = []
    try:
        for sub in tree.iter_subtrees():
            regex = _token(sub.children[2]) if sub.data == "matches" else None
            if regex is not None and regex.start_pos != seen:
                try:
                    compile_regex(_unescape(regex[1:-1]))
                except Exception as exc:  # noqa: BLE001 - ValueError, OverflowError, RecursionError ...
                    out.append(WhenError(regex.start_pos or 0, BAD_REGEX, f"bad regular expression {regex}: {exc}"))
    except RecursionError:
        pass
    return out


def parse_when(source: str) -> tuple[WhenExpr | None, list[WhenError]]:
    """Parse and compile `source`: (expression, []) or (None, errors). Never raises."""
    if not isinstance(source, str):
        shown = json.dumps(source, default=str)
        return None, [WhenError(0, SYNTAX, f"the expression must be text, got {shown}; put it in quotes")]
    try:
        expr, errors = _parse_cached(source)
    except Exception as exc:  # noqa: BLE001 - a last resort: parse_when must never raise
        return None, [WhenError(0, SYNTAX, f"could not parse the expression: {exc}")]
    return expr, list(errors)


def compile_when(source: str) -> Callable[[Mapping], bool]:
    """The compiled predicate for `source`; raises ValueError with the first error (for tests and benchmarks)."""
    expr, errors = parse_when(source)
    if expr is None:
        first = errors[0]
        raise ValueError(f"{first.code} at {first.offset}: {first.message}")
    return expr.predicate


# ---------------------------------------------------------------- checks against the outcome schema

_KIND_WORDS = {"number": "a number", "string": "text", "boolean": "true or false", "array": "a list",
               "object": "an object"}


@lru_cache(maxsize=1)
def _kinds() -> dict:
    """path -> (kind, enum values or None) for the typed fields of outcome.schema.json."""
    from engine.rules.schemas import schema

    out: dict = {}

    def walk(node: dict, prefix: str) -> None:
        for key, sub in node.get("properties", {}).items():
            kind = {"integer": "number"}.get(sub.get("type"), sub.get("type"))
            enum = tuple(sub["enum"]) if "enum" in sub else None
            if enum and all(type(v) is str for v in enum):
                kind = "string"
            if kind in _KIND_WORDS:
                out[prefix + key] = (kind, enum)
            if kind == "object":
                walk(sub, prefix + key + ".")

    walk(schema("outcome"), "")
    return out


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", tuple: "array"}[type(value)]


def _shown(value: Any) -> str:
    return json.dumps(list(value) if type(value) is tuple else value, ensure_ascii=False)


def _type_problem(op: str, path: str, kind: str, enum: Any, lit: Any, field_left: bool) -> str | None:
    """Why `path op lit` (or `lit op path`) can never be true, or None when it can."""
    got = _kind_of(lit)
    if op in ("<", "<=", ">", ">="):
        if got in ("null", "boolean", "array"):
            return f"{_shown(lit)} cannot be compared with {op}; use == or !="
        if kind not in ("number", "string"):
            return f"{path} is {_KIND_WORDS[kind]}; it cannot be compared with {op}"
        if got != kind:
            return f"{path} is {_KIND_WORDS[kind]}, but {_shown(lit)} is {_KIND_WORDS[got]}"
        return None
    if op in ("==", "!=", "in", "not in"):
        if op in ("in", "not in") and not field_left:
            return None if kind == "array" else f"{path} is {_KIND_WORDS[kind]}, not a list; `{op}` needs a list"
        for item in (lit if op in ("in", "not in") else (lit,)):
            item_kind = _kind_of(item)
            if item_kind != "null" and item_kind != kind:
                return f"{path} is {_KIND_WORDS[kind]}, but {_shown(item)} is {_KIND_WORDS[item_kind]}"
            if enum and item_kind == "string" and item not in enum:
                best = closest(item, enum)
                return (f"{path} is one of {', '.join(_shown(v) for v in enum)}; {_shown(item)} never matches"
                        + (f' (did you mean "{best}"?)' if best else ""))
        return None
    if not field_left:
        return None
    if op == "contains":
        if kind not in ("array", "string"):
            return f"{path} is {_KIND_WORDS[kind]}; `contains` works on lists and text"
        if got != "string":
            return f"{path} holds text, but {_shown(lit)} is {_KIND_WORDS.get(got, 'null')}"
        return None
    if kind != "string":  # startswith, endswith, matches
        return f"{path} is {_KIND_WORDS[kind]}; `{op}` works on text"
    if got != "string":
        return f"`{op}` needs text, but {_shown(lit)} is {_KIND_WORDS.get(got, 'null')}"
    return None


_EXAMPLES = {"number": "{p} >= 60", "string": '{p} == "..."', "array": '{p} contains "..."', "object": "{p} != null"}


def _type_errors(node: Any, source: str, out: list) -> list:
    if not isinstance(node, _Op):
        return out
    kinds = _kinds()
    if node.op == "truth" and isinstance(node.args[0], _Field) and node.args[0].path in kinds:
        kind = kinds[node.args[0].path][0]
        if kind != "boolean":
            path = node.args[0].path
            out.append(WhenError(node.start, TYPE, f"{path} is {_KIND_WORDS[kind]}, not true or false: "
                                 f"write a comparison, like {_EXAMPLES[kind].format(p=path)}"))
    elif len(node.args) == 2 and node.op not in ("and", "or"):
        left, right = node.args
        pair = (left, right, True) if isinstance(left, _Field) else (right, left, False)
        fld, lit, field_left = pair
        if isinstance(fld, _Field) and isinstance(lit, _Lit) and fld.path in kinds:
            kind, enum = kinds[fld.path]
            problem = _type_problem(node.op, fld.path, kind, enum, lit.value, field_left)
            if problem:
                text = _tidy(source[node.start:node.end])
                verdict = "always true" if node.op in ("!=", "not in") else "always false"
                out.append(WhenError(node.start, TYPE, f"{problem}: {text} is {verdict}"))
    for arg in node.args:
        _type_errors(arg, source, out)
    return out


def _unknown_hint(path: str, catalog: Any) -> str:
    low = path.lower()
    if low in _KEYWORDS or low == "none":
        return f' (keywords are lowercase: "{"null" if low == "none" else low}")'
    known = sorted(getattr(catalog, "paths", ()))
    best = next((p for p in known if p.endswith("." + path)), None) or catalog.suggest(path)
    if best is None and "." not in path and "attributes" in getattr(catalog, "free", ()):
        return f' (an organisation\'s own fields go under attributes: "attributes.{path}")'
    return f' (did you mean "{best}"?)' if best else ""


_EQUALITY = ("==", "!=", "in", "not in")


def field_literals(expr: WhenExpr) -> list[tuple[str, Any, int]]:
    """(field path, literal, offset of the literal) for every `field == "x"`, `!=`, `in [...]`, `not in [...]`
    (each list item on its own, at the list's offset): the values a vocabulary check compares."""
    out: list[tuple[str, Any, int]] = []
    stack = [expr._root]
    while stack:
        node = stack.pop()
        if not isinstance(node, _Op):
            continue
        stack.extend(node.args)
        if node.op in _EQUALITY and len(node.args) == 2:
            left, right = node.args
            fld, lit = (left, right) if isinstance(left, _Field) else (right, left)
            if isinstance(fld, _Field) and isinstance(lit, _Lit):
                items = lit.value if isinstance(lit.value, tuple) else (lit.value,)
                out += [(fld.path, v, lit.start) for v in items if v is not None]
    return sorted(out, key=lambda t: t[2])


def check_fields(expr: WhenExpr, catalog: Any) -> list[WhenError]:
    """Unknown fields (with a suggestion) and comparisons the outcome schema makes always true or false."""
    errors = [WhenError(ref.offset, UNKNOWN_FIELD, f'unknown field "{ref.path}"' + _unknown_hint(ref.path, catalog))
              for ref in expr.fields if not catalog.knows(ref.path)]
    with contextlib.suppress(Exception):  # the type check is a courtesy; it must never hide the unknown-field errors
        errors += _type_errors(expr._root, expr.source, [])
    return sorted(errors, key=lambda e: e.offset)
