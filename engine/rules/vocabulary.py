"""Vocabularies: the values a deployment says its outcomes use (a rule file's optional `vocabulary:`).

    vocabulary:
      role: [backend, frontend, sales]
      stage: [first_round, second_round, final]
      reason: [skills_gap, position_filled]
      locale: [zh-CN, en]              # candidate.locale; a declared tag covers its children (en: en-US)
      attributes:
        source: [campus, referral]     # the attribute keys outcomes carry, each with its values
        requisition: null              # a known key, any value

Every rule file may declare one; the sections are merged (values added up) into one frozen `Vocabulary`
on the loaded RuleSet (`ruleset.vocabulary`). It is a read-only mapping from outcome field path (`role`,
`candidate.locale`, `attributes.source`) to the frozenset of its values, so readers (validate, the gate,
`herald sources check`) look values up by field. Declaring nothing leaves the vocabulary empty (falsy):
nothing is checked.

This module owns parsing the section (located errors), checking rules' `match` values and `when`
literals against it (did-you-mean), and the gate's check of an outcome (`Vocabulary.outside`: a dict get
and a set lookup per declared field, nothing allocated unless something is outside).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Diagnostic
from engine.rules.suggest import did_you_mean
from engine.rules.yamlpos import Document

TOP_FIELDS = ("role", "stage", "reason")  # vocabulary key == outcome field
LOCALE_FIELD = "candidate.locale"          # vocabulary key `locale`
ATTRIBUTES = "attributes"
CODE = "outside-vocabulary"
_SCALARS = (str, int, float, bool)


def _locale_forms(tag: str) -> tuple[str, ...]:
    from engine.render.locales import chain

    return chain(tag) if tag.strip() else ()


@dataclass(frozen=True)
class Vocabulary(Mapping):
    """The merged vocabulary: field path -> frozenset of values (only fields some rule file declares).

    `attribute_keys` is None when no file declares `attributes:` (any key is fine), else every declared
    key, including those declared with any value (`key: null`, not in the mapping)."""

    entries: tuple = ()  # ((field path, frozenset of values), ...), sorted by path (not `values`: Mapping's method)
    attribute_keys: frozenset | None = None
    _index: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)
    # the gate's lookups, resolved once: (top-level key, allowed), the locale set with its lower forms, attributes
    _top: tuple = field(default=(), init=False, repr=False, compare=False, hash=False)
    _locales: frozenset | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _attrs: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        index = dict(self.entries)
        object.__setattr__(self, "_index", index)
        locales = index.get(LOCALE_FIELD)
        object.__setattr__(self, "_top", tuple((f, index[f]) for f in TOP_FIELDS if f in index))
        object.__setattr__(self, "_locales", None if locales is None else
                           frozenset(locales) | frozenset(v.lower() for v in locales))
        prefix = ATTRIBUTES + "."
        object.__setattr__(self, "_attrs", {p[len(prefix):]: v for p, v in index.items() if p.startswith(prefix)})

    # -- the Mapping protocol (field path -> frozenset)
    def __getitem__(self, path: str) -> frozenset:
        return self._index[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __bool__(self) -> bool:
        return bool(self._index) or self.attribute_keys is not None

    # -- membership
    def knows_locale(self, tag: str) -> bool:
        """True when `tag`, or a parent of it (en for en-US), is a declared locale (or none is declared)."""
        locales = self._locales
        if locales is None or tag in locales:
            return True
        return any(form in locales for form in _locale_forms(tag))

    def problem(self, path: str, value: Any) -> str | None:
        """Why `value` of field `path` is outside the vocabulary, or None (also for undeclared fields)."""
        if path == LOCALE_FIELD:
            if not isinstance(value, str) or self.knows_locale(value):
                return None
            return f'{path} "{value}" is not in the vocabulary{did_you_mean(value, sorted(self._index[path]))}'
        if path.startswith(ATTRIBUTES + ".") and self.attribute_keys is not None:
            key = path[len(ATTRIBUTES) + 1:].split(".")[0]
            if key not in self.attribute_keys:
                return (f'{ATTRIBUTES}.{key} is not an attribute in the vocabulary'
                        f'{did_you_mean(key, sorted(self.attribute_keys))}')
        allowed = self._index.get(path)
        if allowed is None or not isinstance(value, _SCALARS) or value in allowed:
            return None
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        return f"{path} {shown} is not in the vocabulary{did_you_mean(str(value), sorted(map(str, allowed)))}"

    def outside(self, record: Mapping) -> str | None:
        """The gate's check of one outcome: None when every declared field's value is in the vocabulary,
        else a warning naming each value outside it."""
        found = self.findings(record)
        return None if found is None else self.describe(found)

    def describe(self, found: Sequence[tuple[str, Any]]) -> str | None:
        """The warning for `findings`: each value outside the vocabulary, with did-you-mean."""
        return "; ".join(p for p in (self.problem(path, v) for path, v in found) if p) or None

    def findings(self, record: Mapping) -> tuple[tuple[str, Any], ...] | None:
        """(field path, value) of each value of `record` outside the vocabulary, None when there is none (the
        common case allocates nothing: one dict get and one set lookup per declared field). For an attribute
        key outside the vocabulary the field is `attributes.KEY`; its value is then not a vocabulary's."""
        found: list | None = None
        for key, allowed in self._top:
            v = record.get(key)
            if v is not None and v not in allowed:
                found = (found or []) + [(key, v)]
        if self._locales is not None:
            cand = record.get("candidate")
            tag = cand.get("locale") if cand.__class__ is dict else None
            if tag.__class__ is str and tag not in self._locales and not self.knows_locale(tag):
                found = (found or []) + [(LOCALE_FIELD, tag)]
        if self.attribute_keys is not None:
            attrs = record.get(ATTRIBUTES)
            if attrs.__class__ is dict and attrs:
                for key, v in attrs.items():
                    if key not in self.attribute_keys:
                        found = (found or []) + [(f"{ATTRIBUTES}.{key}", v)]
                        continue
                    allowed = self._attrs.get(key)
                    if allowed is not None and v.__class__ in _SCALARS and v not in allowed:
                        found = (found or []) + [(f"{ATTRIBUTES}.{key}", v)]
        return tuple(found) if found else None

    def marks(self, found: Sequence[tuple[str, Any]] | None) -> dict[str, str | None] | None:
        """What the store keeps of `findings` (engine/store: outcomes.outside_vocabulary), for the report's
        count per rule and field: field path -> the value as text (at most 80 characters), or None for an
        attribute key outside the vocabulary (its value is the candidate's data, not a code)."""
        if not found:
            return None
        out: dict[str, str | None] = {}
        for path, v in found:
            unknown_key = path.startswith(ATTRIBUTES + ".") and self.attribute_keys is not None and \
                path[len(ATTRIBUTES) + 1:] not in self.attribute_keys
            out[path] = None if unknown_key else str(v)[:80]
        return out


EMPTY = Vocabulary()


# ------------------------------------------------------------------------------------- loading

def _values(raw: Any) -> list:
    """The scalar values of one list (the schema check reports the wrong shapes)."""
    if not isinstance(raw, list):
        return []
    return [v for v in raw if isinstance(v, _SCALARS)]


def collect_vocabulary(docs: list[Document]) -> tuple[Vocabulary, list[Diagnostic]]:
    """Every rule file's `vocabulary:` merged into one Vocabulary. A locale that is not a language tag is
    an error at its own position; wrong shapes are the schema check's to report."""
    from engine.rules.loader import locale_problem

    merged: dict[str, set] = {}
    attribute_keys: set | None = None
    diags: list[Diagnostic] = []
    for doc in docs:
        raw = doc.data.get("vocabulary")
        if not isinstance(raw, dict):
            continue
        for key in TOP_FIELDS:
            if key in raw:
                merged.setdefault(key, set()).update(_values(raw[key]))
        if "locale" in raw:
            tags = _values(raw["locale"])
            for i, tag in enumerate(raw["locale"] if isinstance(raw["locale"], list) else []):
                problem = locale_problem(tag) if isinstance(tag, str) else None
                if problem:
                    diags.append(doc.loc(("vocabulary", "locale", i)).error("bad-locale", f"vocabulary: {problem}"))
            merged.setdefault(LOCALE_FIELD, set()).update(t for t in tags if isinstance(t, str))
        attrs = raw.get(ATTRIBUTES)
        if isinstance(attrs, dict):
            attribute_keys = attribute_keys or set()
            for key, values in attrs.items():
                attribute_keys.add(str(key))
                if values is not None:
                    merged.setdefault(f"{ATTRIBUTES}.{key}", set()).update(
                        _values(values))
    vocab = Vocabulary(entries=tuple(sorted((k, frozenset(v)) for k, v in merged.items())),
                       attribute_keys=frozenset(attribute_keys) if attribute_keys is not None else None)
    return vocab, diags


# ------------------------------------------------------------------------------------- rules

def match_problems(vocab: Vocabulary, rule_id: str, key: str, values: tuple) -> list[tuple[int, str]]:
    """(index of the value, message) for each `match` value outside the vocabulary."""
    if not vocab:
        return []
    out = []
    for j, v in enumerate(values):
        problem = vocab.problem(key, v) if v is not None else None
        if problem:
            out.append((j, f'rule "{rule_id}" match: {problem}'))
    return out


def when_problems(vocab: Vocabulary, rule_id: str, literals: list) -> list[tuple[int, str]]:
    """(offset in the expression, message) for each `when` literal compared with a field, outside it."""
    if not vocab:
        return []
    out = []
    for path, value, offset in literals:
        problem = vocab.problem(path, value)
        if problem:
            out.append((offset, f'rule "{rule_id}" when: {problem}'))
    return out


def unreached_locales(vocab: Vocabulary, templates: Any, name: str, rule_locale: str) -> list[tuple[str, str | None]]:
    """(declared locale, the file its candidates get instead) for each locale of the vocabulary that reaches no
    file of template `name`: neither a file for it or a parent, nor the bare `name.j2` (engine.render.locales)."""
    from engine.render.locales import preferences

    declared = vocab.get(LOCALE_FIELD) if vocab else None
    if not declared or not templates.files(name):
        return []
    out = []
    for tag in sorted(declared):
        if templates.resolve(name, (tag,)) is None:
            fallback = templates.resolve(name, preferences(tag, rule_locale))
            out.append((tag, fallback.path if fallback is not None else None))
    return out
