"""HR-written message templates: scanning, locale resolution, rendering per channel in the sandbox, and template checks."""
from __future__ import annotations

import codecs
import contextlib
import hashlib
import re
from types import MappingProxyType
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.runtime import Context, EvalContext
from jinja2.utils import missing

from engine.rules.suggest import did_you_mean
from engine.errors import Diagnostic, Loc, sort_diagnostics
from engine.model import Message, quick_init
from engine.render.budget import DEFAULT_LIMITS, BudgetExceeded, RenderLimits, check_output, guarded
from engine.render.sandbox import HTML_ENV, TEXT_ENV, build_context
from engine.render.locales import pick
from engine.render.header import KNOWN_HEADER_KEYS, TemplateMeta, parse_header
from engine.render.variables import VarWalker

__all__ = [
    "HTML_BLOCKS",
    "KNOWN_HEADER_KEYS",
    "TEXT_BLOCKS",
    "RenderResult",
    "TemplateFile",
    "TemplateMeta",
    "TemplateStore",
    "build_context",
    "sms_length",
]

TEXT_BLOCKS = ("subject", "sms", "dingtalk", "email", "webhook")
HTML_BLOCKS = ("email_html",)  # and any other block whose name ends in `_html`
CHANNEL_BLOCKS = {"email": ("email", "subject")}  # blocks a channel needs; otherwise the channel's own name

_LOCALE_RE = re.compile(r"^(?P<name>.+?)\.(?P<locale>[a-z]{2,3}(?:-[A-Za-z0-9]+)*)$")


# ---------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class TemplateFile:
    """One template file: name, locale (None for the fallback), display path, header, block names."""

    name: str
    locale: str | None
    path: str
    meta: TemplateMeta | None
    blocks: tuple
    sha256: str = ""  # of the file's bytes: the attempt records which text was sent


@quick_init
@dataclass(frozen=True)
class RenderResult:
    """One rendering: the file used, its locale, the message, or an error (then message is None).

    An error has a `code` (the diagnostic codes of validate: template-unknown, template-unrenderable,
    template-decision, template-render, render-budget) and the template `line` it was found at, when known."""

    template: TemplateFile | None
    locale: str | None
    message: Message | None
    error: str | None = None
    code: str | None = None
    line: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@lru_cache(maxsize=256)
def _is_html_block(block: str) -> bool:
    return block in HTML_BLOCKS or block.endswith("_html")


# ---------------------------------------------------------------------------------------------------
# SMS length


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


_GSM = _GSM_BASIC | _GSM_EXTENSION
# a character outside both GSM sets: a search stops at the first (a set built of the text, as set.issuperset(text)
# makes on Python 3.11, holds every character)
_NOT_GSM_RE = re.compile("[^" + "".join(sorted(re.escape(c) for c in _GSM)) + "]")
_utf16 = codecs.utf_16_le_encode  # (the codec itself: no look-up of its name; surrogatepass: a lone surrogate is
# one unit, as it is one character here)


def _even_segments(total: int, single: int, multi: int) -> int:
    """_segments for characters of width one each (nothing to keep together across a split)."""
    return 0 if total == 0 else 1 if total <= single else -(-total // multi)


def sms_length(text: str) -> tuple[int, int]:
    """(characters, segments): GSM 03.38 septets (160 / 153 per part) or UTF-16 units (70 / 67 per part).

    Scans in C for the usual texts: a search for the first non-GSM character, then (GSM) a set scan for escape
    pairs or (UCS-2) the UTF-16 encoding's length, which is the character count when no character lies beyond
    the BMP (every character one unit wide); a width per character only when some are two wide."""
    text = text or ""
    if _NOT_GSM_RE.search(text) is None:
        if _GSM_EXTENSION.isdisjoint(text):
            return len(text), _even_segments(len(text), 160, 153)
        widths = [2 if c in _GSM_EXTENSION else 1 for c in text]
        return sum(widths), _segments(widths, 160, 153)
    units = len(_utf16(text, "surrogatepass")[0]) >> 1
    if units == len(text):
        return units, _even_segments(units, 70, 67)
    widths = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return units, _segments(widths, 70, 67)


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
    plans: dict = field(default_factory=dict)  # (channel, main_only) -> _ChannelPlan | _Unrenderable
    # (has a scoped block, has an eval-context modifier) of `ast`, found by one walk on first use (_ast_flags)
    ast_flags: tuple[bool, bool] | None = None


def _ast_flags(entry: _Entry) -> tuple[bool, bool]:
    """Whether the file's syntax tree holds a scoped block, and an eval-context modifier ({% autoescape %});
    found by one walk of the tree the first time a channel's plan asks (a walk costs about a millisecond, and
    a file has a plan for each channel and mode)."""
    flags = entry.ast_flags
    if flags is None:
        scoped = modifies = False
        for node in entry.ast.find_all((nodes.Block, nodes.EvalContextModifier)):
            if isinstance(node, nodes.Block):
                scoped = scoped or bool(node.scoped)
            else:
                modifies = True
        flags = entry.ast_flags = (scoped, modifies)
    return flags


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


def _frame_line(exc: BaseException, filename: str, template: Any) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = template.get_corresponding_lineno(tb.tb_lineno)
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
    if _verbatim(block):
        return text
    return _tidy_lines(text)


def _verbatim(block: str) -> bool:
    """A block whose text is only stripped by _tidy (webhook JSON, HTML)."""
    return block == "webhook" or _is_html_block(block)


def _tidy_lines(text: str) -> str:
    """_tidy of a stripped text block: trailing spaces and tabs dropped, blank-line runs made one blank line."""
    if "\n" not in text:  # one line (an SMS, a subject): nothing to drop (one memchr-like scan for the three below)
        return text
    if " \n" in text or ("\t" in text and "\t\n" in text):  # the expressions only where they can change something
        # (a search for one character is a memchr; for two, a scan of the text)
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


class _Parent(dict):
    """A render context's data (Context.parent) in which an absent name reads as Jinja's `missing`: its bound
    `__getitem__` answers what Context.resolve_or_missing answers while the context has no `vars`, in C."""

    __slots__ = ()

    def __missing__(self, key: str) -> Any:
        return missing


_NO_VARS: Mapping = MappingProxyType({})  # a block-only render never writes context.vars (only top-level code
_NO_EXPORTS: frozenset = frozenset()      # does): shared, and read-only, so a write would fail, never leak


class _BlockContexts:
    """Contexts for running one block of a template without top-level code (the single-block fast path):
    what `_new_context` builds, with the parts that never change between renders worked out once. In that
    path nothing adds blocks (only a parent template, which is top-level code, does): the block map is shared.

    Nothing writes `context.vars` either (only top-level code does), so the context's `resolve_or_missing`
    (which the compiled block calls for every name it reads) is the parent's own lookup. The eval context is
    shared too when the template has no `{% autoescape %}` (the only statement that changes it).

    The shared attributes live on a Context subclass made for the template (a render's context holds only
    its own four), and the template's globals (range, dict, namespace) are not copied into each parent: a
    name the data and extras lack is looked up in them by the parent's `__missing__` (what Jinja's parent,
    {**globals, **data}, answers for every name). A copy of the parent would lose them: Jinja copies it only
    for `context.derived()`, which a block-only template calls for a scoped block (no fast path then) and
    for a callable taking the context (none in the sandbox's globals and filters)."""

    __slots__ = ("autoescape", "context_class", "eval_ctx", "parent_class")

    def __init__(self, template: Any, modifies_eval_ctx: bool = True) -> None:
        environment = template.environment
        probe = EvalContext(environment, template.name)  # the autoescape setting Jinja works out per name
        self.autoescape = probe.autoescape
        self.eval_ctx = None if modifies_eval_ctx else probe
        shared = {"environment": environment, "name": template.name, "globals_keys": set(template.globals),
                  "blocks": {k: [v] for k, v in template.blocks.items()},  # (Jinja only reads globals_keys)
                  "vars": _NO_VARS, "exported_vars": _NO_EXPORTS, "__slots__": ()}
        if self.eval_ctx is not None:
            shared["eval_ctx"] = self.eval_ctx
        self.context_class = type("BlockContext", (Context,), shared)
        fallback = dict(template.globals).get

        def __missing__(self: dict, key: str) -> Any:  # noqa: N807 - the dict hook
            return fallback(key, missing)

        self.parent_class = type("BlockParent", (_Parent,), {"__slots__": (), "__missing__": __missing__})

    def new(self, data: Mapping, channel: str, extras: Mapping | None = None) -> Context:
        """A Context answering as _new_context(template, {**data, **extras}, channel)'s does: every attribute
        equal but `vars` and `exported_vars` (empty, read-only), the parent without the globals (its lookup
        finds them), and the context's `resolve_or_missing` (see the class)."""
        parent = self.parent_class(data)  # a copy of the data's own table (cheaper than inserting it key by key)
        if extras:
            parent.update(extras)
        parent["channel"] = channel
        ctx: Context = _new_object(self.context_class)
        if self.eval_ctx is None:
            eval_ctx = _new_object(EvalContext)
            eval_ctx.__dict__.update(environment=ctx.environment, autoescape=self.autoescape, volatile=False)
            ctx.__dict__ = {"parent": parent, "resolve_or_missing": parent.__getitem__, "eval_ctx": eval_ctx}
        else:
            ctx.__dict__ = {"parent": parent, "resolve_or_missing": parent.__getitem__}
        return ctx


_new_object = object.__new__


def _fields_of(cls: type, **values: Any) -> dict:
    """Every field of dataclass `cls` with its default, then `values`: what its __init__ would set but the
    fields left to fill (None here)."""
    out = {f.name: f.default for f in fields(cls)}
    out.update(values)
    if MISSING in out.values():
        raise TypeError(f"{cls.__name__}: a field without a default is not given")
    return out


@dataclass(frozen=True)
class _ChannelPlan:
    """How one file renders one channel, worked out once: the decisions the file serves, the blocks wanted
    and, when a single block of a file without top-level code is all there is to run, that block's
    compiled function."""

    decisions: tuple[str, ...]
    main: str
    wanted: tuple[str, ...]
    template: Any = None  # set for the single-block fast path
    block: Any = None
    contexts: _BlockContexts | None = None
    made: Mapping = field(default_factory=dict)  # Message's fields but the body (see _render_plan)
    verbatim: bool = False  # _verbatim(main): the text is only stripped


@dataclass(frozen=True)
class _Unrenderable:
    """Why a file cannot render a channel at all (a syntax error, no header, a missing block)."""

    error: str


class TemplateStore:
    """Every template file under a directory, scanned once; resolution, rendering and checks, cached."""

    def __init__(self, directory: str | Path, limits: RenderLimits | None = DEFAULT_LIMITS) -> None:
        self.directory = Path(directory)
        self.limits = limits  # every render's budget (None: unguarded, for the benchmark's baseline)
        self._entries: dict[str, list[_Entry]] = {}
        self._entry_memo: dict = {}  # (name, locale preferences) -> _Entry | None
        self._render_memo: dict = {}  # (name, preferences, channel, main_only) -> (_Entry | None, plan)
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
        meta, header_diags = parse_header(source, display)
        diags.extend(header_diags)
        blocks: tuple = ()
        ast = None
        syntax_ok = True
        try:
            ast = TEXT_ENV.parse(source, name=name, filename=display)
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
        file = TemplateFile(name, locale, display, meta, blocks, hashlib.sha256(raw).hexdigest())
        return _Entry(file, source, diags, syntax_ok, ast)

    def _compiled(self, entry: _Entry, html: bool) -> Any:
        if html not in entry.compiled:
            env = HTML_ENV if html else TEXT_ENV
            try:
                # both environments parse alike, so the scan's AST serves both (no optimizer: it stays intact)
                tree = _for_mode(entry.ast, html) if entry.ast is not None else entry.source
                code = env.compile(tree, name=entry.file.name, filename=entry.file.path)
                # a plain dict, not Jinja's ChainMap: every render copies the globals into its context
                entry.compiled[html] = env.template_class.from_code(env, code, dict(env.make_globals(None)))
                entry.top_level[html] = not isinstance(tree, nodes.Template) or any(
                    not isinstance(n, nodes.Block) and not _blank_output(n) for n in tree.body)
            except Exception as exc:  # noqa: BLE001 - a template that cannot compile is reported, never raised
                entry.compiled[html] = exc
        return entry.compiled[html]

    # -- lookup ----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every template name, sorted."""
        return sorted(self._entries)

    def files(self, name: str) -> list[TemplateFile]:
        """Every file of a template: the fallback first, then locales in order."""
        return [e.file for e in self._entries.get(name, [])]

    def _entry(self, name: str, locales: Sequence[str | None]) -> _Entry | None:
        key = (name, tuple(locales or ()))
        try:
            return self._entry_memo[key]
        except KeyError:
            pass
        except TypeError:  # unhashable preferences: resolve without the memo
            return self._find_entry(name, locales)
        found = self._entry_memo[key] = self._find_entry(name, locales)
        return found

    def _find_entry(self, name: str, locales: Sequence[str | None]) -> _Entry | None:
        entries = self._entries.get(name)
        if not entries:
            return None
        by_locale: dict = {}
        for e in entries:
            if e.file.locale:
                by_locale.setdefault(e.file.locale.lower(), e)
        bare = next((e for e in entries if e.file.locale is None), None)
        return pick(by_locale, bare, locales)

    def source(self, name: str, locales: Sequence[str | None]) -> str | None:
        """The source text of the file resolve() chooses (None when there is none)."""
        entry = self._entry(name, locales)
        return entry.source if entry else None

    def resolve(self, name: str, locales: Sequence[str | None]) -> TemplateFile | None:
        """The file the preferences choose (engine.render.locales): each tag and its parents in turn,
        `None` standing for the bare file; the bare file last when the list does not place it."""
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
                out.update(dict.fromkeys(wanted, err))
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
                out.update(dict.fromkeys(wanted, err))
                continue
            for block in wanted:
                if block not in template.blocks:
                    out[block] = (None, f"template {entry.file.name} ({entry.file.path}) has no block {block}", None)
                    continue
                try:
                    parts = [str(part) for part in template.blocks[block](ctx)]
                    check_output(parts)
                    text = "".join(parts)
                except Exception as exc:  # noqa: BLE001 - a template's runtime error is that block's result
                    out[block] = (None, _short(exc), _frame_line(exc, entry.file.path, template))
                    continue
                out[block] = (_tidy(text, block), None, None)
        return out

    def _plan(self, entry: _Entry, channel: str, main_only: bool) -> _ChannelPlan | _Unrenderable:
        """The channel's plan for this file, worked out once (and compiled then, outside any render budget)."""
        plan = entry.plans.get((channel, main_only))
        if plan is None:
            plan = entry.plans[(channel, main_only)] = self._channel_plan(entry, channel, main_only)
            if isinstance(plan, _ChannelPlan):
                for html in {_is_html_block(b) for b in plan.wanted}:
                    self._compiled(entry, html)
        return plan

    def _channel_plan(self, entry: _Entry, channel: str, main_only: bool) -> _ChannelPlan | _Unrenderable:
        """What rendering `channel` from this file takes, or why it cannot."""
        file = entry.file
        if not entry.syntax_ok:
            return _Unrenderable(f"template {file.path} has a syntax error")
        if file.meta is None:
            return _Unrenderable(f"template {file.path} has no valid header declaring its decisions")
        missing = [b for b in CHANNEL_BLOCKS.get(channel, (channel,)) if b not in file.blocks]
        if missing:
            return _Unrenderable(f"template {file.name} ({file.path}) has no block {missing[0]} for channel {channel}")
        decisions = tuple(file.meta.decisions)
        main = "email" if channel == "email" else channel
        wanted = [main]
        if "subject" in file.blocks and not main_only:
            wanted.append("subject")
        if channel == "email" and "email_html" in file.blocks and not main_only:
            wanted.append("email_html")
        if len(wanted) == 1:
            html = _is_html_block(main)
            template = self._compiled(entry, html)
            # (not with a scoped block inside: Jinja runs it in context.derived(), a copy of the parent, and the
            # fast path's parent holds no globals; see _BlockContexts)
            if not isinstance(template, Exception) and not entry.top_level.get(html, True) \
                    and main in template.blocks and entry.ast is not None and not _ast_flags(entry)[0]:
                modifies = _ast_flags(entry)[1]
                made = _fields_of(Message, channel=channel, body=None)
                return _ChannelPlan(decisions, main, tuple(wanted), template, template.blocks[main],
                                    _BlockContexts(template, modifies), made, _verbatim(main))
        return _ChannelPlan(decisions, main, tuple(wanted))

    def render(self, name: str, locale_prefs: tuple[str | None, ...], channel: str, context: Mapping,
               main_only: bool = False, extras: Mapping | None = None) -> RenderResult:
        """The message for `channel` from the best file of `name`; errors (never exceptions) in `error`.

        The template sees `context` with `extras` over it (as build_context merges an outcome and herald's
        extras; given apart, the two are merged once, into the render's own context).

        `main_only`: render just the channel's own block (no subject, no HTML part). The render runs
        under the store's budget (`limits`); going over it is an error naming the template and line.
        """
        file, message, failed = self.render_message(name, locale_prefs, channel, context, main_only, extras)
        if failed is not None:
            return failed
        assert file is not None  # (a message comes from a file)
        return RenderResult(file, file.locale, message, None)

    def render_message(self, name: str, locale_prefs: tuple[str | None, ...], channel: str, context: Mapping,
                       main_only: bool = False, extras: Mapping | None = None
                       ) -> tuple[TemplateFile | None, Message | None, RenderResult | None]:
        """render() without the RenderResult of a success: (the file, the message, None) when it renders, else
        (the file or None, None, the RenderResult with the error) (the dry-run's per-outcome call)."""
        try:  # the file and its plan for this channel, worked out once per (name, preferences, channel, mode)
            entry, plan = self._render_memo[(name, locale_prefs, channel, main_only)]
        except (KeyError, TypeError):  # not met yet, or unhashable preferences (not memoised)
            entry = self._entry(name, locale_prefs)
            plan = self._plan(entry, channel, main_only) if entry is not None else None
            with contextlib.suppress(TypeError):
                self._render_memo[(name, locale_prefs, channel, main_only)] = (entry, plan)
        if entry is None:
            hint = did_you_mean(name, self._entries)
            return None, None, RenderResult(None, None, None, f'unknown template "{name}"{hint}', "template-unknown")
        file = entry.file
        if plan.__class__ is _Unrenderable:
            return file, None, RenderResult(file, file.locale, None, plan.error, "template-unrenderable")
        decision = extras["decision"] if extras and "decision" in extras else context.get("decision")
        if decision.__class__ is str and decision not in plan.decisions:
            return file, None, RenderResult(
                file, file.locale, None, f"template {name} ({file.path}) does not declare decision {decision}",
                "template-decision")
        limits = self.limits
        if limits is None:
            return self._render_plan(entry, plan, channel, context, extras)
        try:
            return guarded(limits, self._render_plan, entry, plan, channel, context, extras, limits)
        except BudgetExceeded as exc:
            line = self._line_of(entry, exc)
            where = f"{file.path}:{line}" if line else file.path
            return file, None, RenderResult(file, file.locale, None, f"{where}: {limits.describe(exc.reason)}",
                                            "render-budget", line)

    def _line_of(self, entry: _Entry, exc: BaseException) -> int | None:
        """The template line a render was stopped at (None when it is not known)."""
        for template in entry.compiled.values():
            if not isinstance(template, Exception):
                line = _frame_line(exc, entry.file.path, template)
                if line:
                    return line
        return None

    def _render_plan(self, entry: _Entry, plan: _ChannelPlan, channel: str, context: Mapping,
                     extras: Mapping | None = None, limits: RenderLimits | None = None
                     ) -> tuple[TemplateFile, Message | None, RenderResult | None]:
        """Run a plan (the part of a render under the budget), as render_message answers: `limits`, the budget
        it runs under (guarded's), for the fast path's output check (None: unguarded)."""
        file = entry.file
        main = plan.main
        if plan.block is not None and plan.contexts is not None:  # one block, nothing at the top level
            try:
                parts = list(plan.block(plan.contexts.new(context, channel, extras)))
                if limits is not None:  # (BudgetExceeded is not an Exception: it passes the except below)
                    check_output(parts, limits)
                text = "".join(parts)
            except Exception as exc:  # noqa: BLE001 - a template must never take herald down
                line = _frame_line(exc, file.path, plan.template)
                where = f"{file.path}:{line}" if line else file.path
                return file, None, RenderResult(file, file.locale, None, f"{where}: block {main}: {_short(exc)}",
                                                "template-render", line)
            body = text.strip() if plan.verbatim else _tidy_lines(text.strip())  # _tidy(text, main)
            # Message(channel, body, ...), made as its __init__ makes it (the instance's dict, filled) from the
            # plan's copy of the fields
            message = _new_object(Message)
            values = message.__dict__  # (made empty, on first use)
            values.update(plan.made)
            values["body"] = body
            if channel == "sms":
                values["sms_chars"], values["sms_segments"] = sms_length(body)
            return file, message, None
        ctx: Mapping = {**context, **extras, "channel": channel} if extras else \
            context if context.get("channel") == channel else {**context, "channel": channel}
        rendered = self._render_blocks(entry, plan.wanted, ctx)
        for b in plan.wanted:
            text, err, line = rendered[b]
            if err is not None:
                where = f"{file.path}:{line}" if line else file.path
                return file, None, RenderResult(file, file.locale, None, f"{where}: block {b}: {err}",
                                                "template-render", line)
        body = rendered[main][0]
        subject = " ".join(rendered["subject"][0].split()) if "subject" in rendered else None
        html = rendered["email_html"][0] if "email_html" in rendered else None
        sms_chars = sms_segments = None
        if channel == "sms":
            sms_chars, sms_segments = sms_length(body)
        return file, Message(channel=channel, body=body, subject=subject, html=html,
                             sms_segments=sms_segments, sms_chars=sms_chars), None

    # -- checks ----------------------------------------------------------------------------------

    def _variable_diags(self, entry: _Entry, catalog: Any) -> list[Diagnostic]:
        if entry.ast is None:
            return []
        walker = VarWalker(catalog)
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
            self._compiled(entry, _is_html_block(block))  # outside the budget, as in render()
            for _n, (ctx, severity) in enumerate(contexts):
                limits = self.limits or DEFAULT_LIMITS
                try:
                    _text, err, line = guarded(limits, self._render_block, entry, block, {**ctx, "channel": block})
                except BudgetExceeded as exc:
                    _text, err, line = None, limits.describe(exc.reason), self._line_of(entry, exc)
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
            from engine.rules.schemas import template_fields
            catalog = template_fields()
        key = (catalog, sample_context_for)
        if key in self._check_cache:
            return list(self._check_cache[key])
        out: list[Diagnostic] = []
        for entries in self._entries.values():
            for entry in entries:
                out.extend(entry.diagnostics)
                out.extend(self._variable_diags(entry, catalog))
                out.extend(self._render_diags(entry, self._sample_contexts(entry, sample_context_for)))
                out.extend(self._empty_field_diags(entry))
            out.extend(self._mismatch_diags(entries))
        result = sort_diagnostics(out)
        self._check_cache[key] = tuple(result)
        return result

    def _empty_field_diags(self, entry: _Entry) -> list[Diagnostic]:
        """`template-empty-field` warnings: optional fields a subject, SMS or title prints as empty text
        (engine.render.emptyfields), located where the block prints them."""
        from engine.render.emptyfields import CHECKED_BLOCKS, empty_fields, field_line, optional_paths
        from engine.rules.schemas import TEMPLATE_EXTRAS, sample_outcome, schema

        if not entry.syntax_ok:
            return []
        decision = entry.file.meta.decisions[0] if entry.file.meta else "reject"
        paths = list(optional_paths(schema("outcome")))
        limits = self.limits or DEFAULT_LIMITS
        out: list[Diagnostic] = []
        sample = sample_outcome(decision=decision)
        for block in CHECKED_BLOCKS:
            if block not in entry.file.blocks:
                continue

            def text(outcome: dict, block: str = block) -> str | None:
                ctx = {**build_context(outcome, TEMPLATE_EXTRAS), "channel": block}
                try:
                    return guarded(limits, self._render_block, entry, block, ctx)[0]
                except BudgetExceeded:
                    return None

            out.extend(Loc(entry.file.path, field_line(entry.source, block, leaf), 1).warning(
                "template-empty-field",
                f"block {block} prints {leaf} as empty text when an outcome lacks it: give it a fallback "
                f"({{{{ {leaf} or \"...\" }}}}) or put the phrase in {{% if {leaf} %}}")
                for leaf in empty_fields(text, sample, paths))
        return out + self._empty_param_diags(entry, {".".join(p) for p in paths})

    @staticmethod
    def _empty_param_diags(entry: _Entry, optional: set) -> list[Diagnostic]:
        """`template-empty-field` for a header's sms_params variable taken from an optional field without a
        default: the provider's SMS would read with a blank where the variable is."""
        from engine.render.sms import param_source

        meta = entry.file.meta
        params = (meta.extra or {}).get("sms_params") if meta else None
        if meta is None or not isinstance(params, dict):
            return []
        out = []
        for var, spec in params.items():
            path, default = param_source(spec)
            if not isinstance(path, str) or default:
                continue
            parts = path.split(".")
            if any(".".join(parts[:n]) in optional for n in range(1, len(parts) + 1)):
                out.append(Loc(entry.file.path, meta.header_line, 1).warning(
                    "template-empty-field",
                    f"sms_params {var} takes {path}, which an outcome may lack: the SMS would read with a blank; "
                    f"write {var}: {{from: {path}, default: ...}}"))
        return out

    def _sample_contexts(self, entry: _Entry, sample_context_for: Callable | None) -> list:
        if sample_context_for is not None:
            with contextlib.suppress(Exception):  # a context that cannot be built: the schema's samples below
                return [(dict(sample_context_for(entry.file.name)), "error")]
        from engine.rules.schemas import TEMPLATE_EXTRAS, sample_outcome
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
