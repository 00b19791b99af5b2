"""YAML loading that keeps a line and column for every key and value, and never raises."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from yaml.resolver import Resolver

from engine.errors import Diagnostic, Loc

from yaml.composer import Composer
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.scanner import Scanner

try:  # libyaml's parser and composer when present: several times faster on large rule sets
    from yaml._yaml import CParser  # what yaml.cyaml re-exports (without saying so to type checkers)
    LIBYAML = True
except ImportError:  # pragma: no cover - pure-Python fallback
    LIBYAML = False

YamlPath = tuple  # of str | int


class CoreResolver(Resolver):
    """YAML 1.2 core-schema scalars: `no`, `on`, `09:00` and dates stay strings (no Norway problem).

    resolve() is PyYAML's without path resolvers (herald has none): it runs once per scalar, and a
    large rule set has hundreds of thousands of them.
    """

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:  # no path resolvers: nothing to track
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, regexp in self.yaml_implicit_resolvers.get(value[:1], ()):
                    if regexp.match(value):
                        return tag
            return "tag:yaml.org,2002:str"
        return "tag:yaml.org,2002:seq" if kind is yaml.SequenceNode else "tag:yaml.org,2002:map"


CoreResolver.yaml_implicit_resolvers = {}
CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


if LIBYAML:
    class _Loader(CParser, CoreResolver):
        def __init__(self, stream: Any) -> None:
            CParser.__init__(self, stream)
            CoreResolver.__init__(self)
else:  # pragma: no cover
    class _Loader(Reader, Scanner, Parser, Composer, CoreResolver):  # type: ignore[no-redef]  # the pure-Python loader, same name
        def __init__(self, stream: Any) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            CoreResolver.__init__(self)


@dataclass
class Document:
    """A loaded YAML document: plain Python data and where each part of it was written."""

    file: str
    data: Any
    value_pos: dict = field(default_factory=dict)  # path -> (line, col) of the value
    key_pos: dict = field(default_factory=dict)    # path -> (line, col) of the mapping key
    styles: dict = field(default_factory=dict)     # path -> scalar style: None plain, ' " | >
    text: str = ""

    def text_loc(self, path: YamlPath, offset: int) -> Loc:
        """Location of character `offset` inside the string scalar at `path` (for errors in expressions)."""
        base = self.loc(path)
        value = _get(self.data, path)
        style = self.styles.get(tuple(path))
        if not isinstance(value, str):
            return base
        before = value[:offset]
        if style in ("|", ">"):
            # Block scalars: content lines start on the line after the key, at the block's indent.
            # Each source line contributes its text plus one joining character (a newline for `|`,
            # a space for `>` folding), so offsets map back line by line.
            lines = self.text.splitlines()
            first = lines[base.line] if 0 <= base.line < len(lines) else ""
            indent = len(first) - len(first.lstrip(" "))
            consumed = 0
            line_no = base.line + 1
            for line_no in range(base.line + 1, len(lines) + 1):
                content = lines[line_no - 1][indent:]
                if offset <= consumed + len(content):
                    return Loc(self.file, line_no, indent + 1 + offset - consumed)
                consumed += len(content) + 1
            return Loc(self.file, max(line_no, base.line), indent + 1)
        if "\n" in before:  # a folded flow scalar: good enough to name the line it starts on
            return base
        return Loc(self.file, base.line, base.column + offset + (1 if style in ("'", '"') else 0))

    def loc(self, path: YamlPath = (), key: bool = False) -> Loc:
        """Location of the value (or its key) at `path`; the nearest known ancestor when absent."""
        path = tuple(path)
        while True:
            table = self.key_pos if key else self.value_pos
            pos = table.get(path) or (self.key_pos.get(path) if not key else self.value_pos.get(path))
            if pos:
                return Loc(self.file, pos[0], pos[1])
            if not path:
                return Loc(self.file, 1, 1)
            path = path[:-1]


def _get(data: Any, path: YamlPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _scalar(node: yaml.ScalarNode) -> Any:
    tag, v = node.tag, node.value
    if tag == "tag:yaml.org,2002:str":
        return v
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return v.lower() == "true"
    if tag == "tag:yaml.org,2002:int":
        return int(v, 0) if v[:2] in ("0x", "0o") else int(v)
    if tag == "tag:yaml.org,2002:float":
        low = v.lower().lstrip("+")
        if low in (".inf", "-.inf"):
            return float("-inf") if low.startswith("-") else float("inf")
        if low == ".nan":
            return float("nan")
        return float(v)
    raise _Problem(node, "yaml-tag", f"unsupported YAML tag {tag!r}; write plain values")


class _Problem(Exception):
    def __init__(self, node: yaml.Node, code: str, message: str):
        self.node, self.code, self.message = node, code, message


MAX_ALIAS_VALUES = 100_000  # values YAML aliases may repeat in one document (a "billion laughs" stops here)


class _Builder:
    """Turns a composed node tree into plain data plus position tables, collecting problems."""

    def __init__(self, file: str):
        self.file = file
        self.doc = Document(file, None)
        self.problems: list[Diagnostic] = []
        self._active: set[int] = set()
        self._built: set[int] = set()  # collections built once: building one again expands an alias
        self._in_alias = 0
        self._repeated = 0              # values built again through aliases, against MAX_ALIAS_VALUES
        self.alias_path: YamlPath = ()  # where the outermost alias being expanded is used

    def _loc(self, node: yaml.Node) -> Loc:
        return Loc(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: YamlPath) -> Any:
        if self._in_alias:
            self._repeated += 1
            if self._repeated > MAX_ALIAS_VALUES:
                raise _Problem(node, "yaml-alias-bomb",
                               f"YAML aliases repeat more than {MAX_ALIAS_VALUES:,} values (an alias of an alias "
                               "of ...?): write the values out, or use fewer levels of aliases")
        self.doc.value_pos.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.ScalarNode):
            if node.style:
                self.doc.styles[path] = node.style
            try:
                return _scalar(node)
            except _Problem as p:
                self.problems.append(self._loc(node).error(p.code, p.message))
                return None
        if id(node) in self._active:
            self.problems.append(self._loc(node).error("yaml-recursive", "recursive YAML alias"))
            return None
        self._active.add(id(node))
        again = id(node) in self._built
        if again and not self._in_alias:
            self.alias_path = path
        self._in_alias += again
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag not in ("tag:yaml.org,2002:seq",):
                    self.problems.append(self._loc(node).error("yaml-tag", f"unsupported YAML tag {node.tag!r}"))
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            if node.tag not in ("tag:yaml.org,2002:map",):
                self.problems.append(self._loc(node).error("yaml-tag", f"unsupported YAML tag {node.tag!r}"))
            out: dict = {}
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode):
                    self.problems.append(self._loc(knode).error("yaml-key", "a mapping key must be a plain value"))
                    continue
                try:
                    key = _scalar(knode)
                except _Problem as p:
                    self.problems.append(self._loc(knode).error(p.code, p.message))
                    continue
                if key is None or isinstance(key, float):
                    key = knode.value
                if isinstance(key, (bool, int)):
                    key = knode.value  # keys are names: `1:` or `true:` mean the text
                if key in out:
                    first = self.doc.key_pos.get(path + (key,), (0, 0))
                    self.problems.append(self._loc(knode).error(
                        "duplicate-key", f'key "{key}" appears twice in one mapping (first at line {first[0]})'))
                    continue
                self.doc.key_pos[path + (key,)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
                out[key] = self.build(vnode, path + (key,))
            return out
        finally:
            self._active.discard(id(node))
            self._built.add(id(node))
            self._in_alias -= again


def load_yaml(text: str, file: str) -> tuple[Document, list[Diagnostic]]:
    """Parse one YAML document; syntax errors come back as located diagnostics, never raised."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        return Document(file, None), [Diagnostic(file, line, col, "error", "yaml-syntax", f"YAML syntax: {what}")]
    except (yaml.YAMLError, ValueError, UnicodeError) as e:  # reader errors (control characters, encodings)
        line, col = 1, 1
        pos = getattr(e, "position", None)
        if isinstance(pos, int):  # libyaml counts bytes of UTF-8, the pure reader characters
            prefix = text.encode("utf-8")[:pos].decode("utf-8", "ignore") if LIBYAML else text[:pos]
            line = prefix.count("\n") + 1
            col = len(prefix) - (prefix.rfind("\n") + 1) + 1
        return Document(file, None), [Diagnostic(file, line, col, "error", "yaml-syntax",
                                                 f"YAML syntax: {e}".splitlines()[0])]
    if node is None:
        return Document(file, None), []
    b = _Builder(file)
    b.doc.text = text
    try:
        b.doc.data = b.build(node, ())
    except RecursionError:
        return Document(file, None), [Diagnostic(file, 1, 1, "error", "yaml-syntax", "YAML nesting is too deep")]
    except _Problem as p:  # an alias bomb, located where the alias is used: nothing built is kept
        return Document(file, None), [b.doc.loc(b.alias_path, key=True).error(p.code, p.message)]
    return b.doc, b.problems


def load_yaml_file(path: str | FsPath, display: str | None = None) -> tuple[Document, list[Diagnostic]]:
    """Read and parse a YAML file; unreadable or non-UTF-8 files are located diagnostics too."""
    name = display or str(path)
    try:
        text = FsPath(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        return Document(name, None), [Diagnostic(name, 1, 1, "error", "encoding", f"not UTF-8 text: {e.reason} at byte {e.start}")]
    except OSError as e:
        return Document(name, None), [Diagnostic(name, 0, 0, "error", "io", f"cannot read: {e.strerror}")]
    return load_yaml(text, name)
