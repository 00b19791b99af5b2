"""Locale negotiation for templates: which file of a template serves a candidate (Babel parses the tags).

The order (SPEC, Additions): the candidate's locale, then its parents (`en-US` -> `en`, `zh-Hant-TW` ->
`zh-Hant` -> `zh`), then the bare `name.j2`, then the rule's locale only when no bare file exists.
Without a candidate locale: the rule's locale, then the bare file.

A preference list is a tuple of tags in which `BARE` (None) stands for "the bare file here"; a list
without `BARE` tries the bare file last.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any
from collections.abc import Mapping

from babel.core import Locale, UnknownLocaleError, parse_locale

BARE = None  # in a preference list: the bare name.j2 (the file without a locale)


@lru_cache(maxsize=4096)
def chain(tag: str) -> tuple[str, ...]:
    """The tag and its parents, most specific first, lower-cased: zh-Hant-TW, zh-TW, zh-Hant, zh.

    Babel parses the tag (any case, `-` or `_`); a tag without a script also tries the script CLDR
    says it likely has (zh-TW -> zh-Hant). A tag Babel cannot parse is only compared as written."""
    text = tag.strip().replace("_", "-")
    if not text:
        return ()
    try:
        language, territory, script, variant = parse_locale(text, sep="-")[:4]
    except ValueError:
        return (text.lower(),)
    if script is None and territory is not None:
        try:
            script = Locale.parse(f"{language}_{territory}").script
        except (UnknownLocaleError, ValueError):
            script = None
        implied = True
    else:
        implied = False
    forms: list[str] = []
    if not implied:
        forms.append("-".join(filter(None, (language, script, territory, variant))))
    forms.append("-".join(filter(None, (language, territory, variant))))
    if variant:
        forms.append("-".join(filter(None, (language, script, territory))) if not implied
                     else f"{language}-{territory}")
    if script:
        forms.append(f"{language}-{script}")
    forms.append(language)
    seen: dict[str, None] = {}
    for form in forms:
        seen.setdefault(form.lower(), None)
    return tuple(seen)


def candidate_locale(outcome: Mapping[str, Any]) -> str | None:
    """The candidate's locale when the outcome gives a non-blank one."""
    cand = outcome.get("candidate")
    return locale_of(cand) if cand.__class__ is dict else None


def locale_of(candidate: Mapping[str, Any]) -> str | None:
    """The locale of a candidate (the outcome's `candidate` object) when it is a non-blank string."""
    mine = candidate.get("locale")
    return mine if mine.__class__ is str and mine.strip() else None


def preferences(candidate: str | None, rule_locale: str | None) -> tuple[str | None, ...]:
    """The preference list for a candidate locale and a rule locale (see the module docstring)."""
    if candidate:
        return (candidate, BARE, rule_locale) if rule_locale else (candidate, BARE)
    return (rule_locale, BARE) if rule_locale else (BARE,)


def pick(by_locale: Mapping[str, Any], bare: Any, prefs: Any) -> Any:
    """The entry the preferences choose: `by_locale` maps lower-cased file locales to entries."""
    for pref in prefs or ():
        if pref is BARE:
            if bare is not None:
                return bare
            continue
        if not isinstance(pref, str):
            continue
        for tag in chain(pref):
            found = by_locale.get(tag)
            if found is not None:
                return found
    return bare
