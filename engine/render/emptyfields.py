"""template-empty-field: which optional outcome fields a short block (subject, SMS, title) prints as nothing.

An outcome needs only its required fields (id, decision, candidate.name); `关于{{ position.title }}的进展`
then reads "关于的进展". For each optional field of the outcome schema (at any depth), the block is rendered
with the complete sample outcome and again with that field missing, down to the minimal outcome; when the
second text is the first with the field's printed value simply cut out, the field prints as empty text
there. A fallback (`{{ position.title or "我司" }}`, `| default(...)`) or a condition around the whole
phrase (`{% if position %}...{% endif %}`) does not count. Blocks are rendered by the caller (a function
outcome -> text or None), so the sandbox and the render budget stay the template store's.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

CHECKED_BLOCKS = ("subject", "sms", "title")  # short texts where a missing word leaves a broken sentence
_JOINERS = (", ", "、", "，", "; ", "；", " ", "")  # how a list may be printed (| join(...))
_SCALARS = (str, int, float)


def optional_paths(schema: Mapping, prefix: tuple = ()) -> Iterator[tuple]:
    """Every optional property of an object schema, as a path of keys, parents before children."""
    required = set(schema.get("required", ()))
    for key, sub in schema.get("properties", {}).items():
        path = prefix + (key,)
        if key not in required:
            yield path
        if isinstance(sub, Mapping) and sub.get("type") == "object":
            yield from optional_paths(sub, path)


def _get(data: Any, path: tuple) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _without(data: dict, path: tuple) -> dict:
    """`data` without the field at `path`: only the mappings along the path are copied (templates never write)."""
    out = dict(data)
    node = out
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            return out
        node[key] = child = dict(child)
        node = child
    node.pop(path[-1], None)
    return out


def _printed(value: Any, path: tuple) -> list[tuple[str, list[str]]]:
    """(leaf path, the ways its value may print) for every scalar under `value`."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, _SCALARS):
        return [(".".join(path), [str(value)])]
    if isinstance(value, list):
        items = [str(v) for v in value if isinstance(v, _SCALARS) and not isinstance(v, bool)]
        return [(".".join(path), [j.join(items) for j in _JOINERS])] if items else []
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _printed(v, path + (k,))]
    return []


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def empty_fields(render: Callable[[dict], str | None], sample: dict, paths: list[tuple]) -> list[str]:
    """The leaf paths (dotted) that `render` prints as empty text when the outcome lacks them."""
    full = render(sample)
    if not full:
        return []
    found: list[str] = []
    for path in paths:
        value = _get(sample, path)
        shown = [(leaf, form) for leaf, forms in _printed(value, path)
                 for form in [next((f for f in forms if f and f in full), None)] if form]
        if not shown or any(leaf in found for leaf, _ in shown):
            continue  # prints nothing of this field (or a parent was named already)
        missing = render(_without(sample, path))
        if missing is None:
            continue  # fails to render: template-render says so
        cut = full
        for _leaf, form in sorted(shown, key=lambda s: -len(s[1])):
            cut = cut.replace(form, "")
        if _squash(cut) == _squash(missing) and _squash(missing) != _squash(full):
            found += [leaf for leaf, _ in shown if leaf not in found]
    return found


def field_line(source: str, block: str, leaf: str) -> int:
    """The line (1-based) where `block` prints `leaf` (else where the block starts, else 1)."""
    lines = source.splitlines()
    start = re.compile(r"{%-?\s*block\s+" + re.escape(block) + r"\b")
    found = next(((n, m) for n, t in enumerate(lines) if (m := start.search(t))), None)
    if found is None:
        return 1
    first, opening = found
    end = re.compile(r"{%-?\s*endblock")
    parts = leaf.split(".")
    name = re.compile(r"\b" + r"\s*\.\s*".join(map(re.escape, parts)) + r"\b")
    for n in range(first, len(lines)):
        text = lines[n] if n > first else lines[n][opening.end():]
        if name.search(text):
            return n + 1
        if end.search(text):
            break
    return first + 1
