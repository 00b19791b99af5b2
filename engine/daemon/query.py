"""Query strings: a parameter that takes one value must be given once.

Starlette keeps every value of a repeated query parameter and FastAPI hands a scalar parameter the last of them,
so `/report?stage=offer&stage=onsite` used to answer for `onsite` alone, silently. `one_value_each` is an
app-wide dependency: when a route's scalar query parameter is given more than once, the request is refused with
422 naming it (the same Problem as any other refused parameter). Parameters declared as lists (`rule`, `state`)
are repeated by design and left alone.
"""
from __future__ import annotations

import typing
from collections.abc import Sequence
from types import UnionType
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

_MANY = (list, tuple, set, frozenset, Sequence)


def takes_many(annotation: Any) -> bool:
    """Whether a parameter annotated so takes several values (a list, a tuple, a set, optionally or not)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, UnionType):
        return any(takes_many(a) for a in typing.get_args(annotation) if a is not type(None))
    return (origin or annotation) in _MANY


_NAMES = "herald_scalar_query"  # the attribute that keeps scalar_query_names on the route (routes are unhashable)


def scalar_query_names(route: Any) -> tuple[str, ...]:
    """The names (aliases) of the route's query parameters that take one value, its dependencies' included."""
    known = getattr(route, _NAMES, None)
    if known is None:
        known = _scalar_query_names(route)
        if route is not None:
            setattr(route, _NAMES, known)
    return known


def _scalar_query_names(route: Any) -> tuple[str, ...]:
    names: list[str] = []
    pending = [getattr(route, "dependant", None)]
    while pending:  # the route's own parameters, then its dependencies' (Dependant.dependencies)
        dependant = pending.pop()
        if dependant is None:
            continue
        names += [f.alias for f in dependant.query_params if not takes_many(f.field_info.annotation)]
        pending += dependant.dependencies
    return tuple(dict.fromkeys(names))


def one_value_each(request: Request) -> None:
    """Refuses (422, the parameter named) a scalar query parameter given more than once."""
    if not request.scope.get("query_string"):
        return
    names = scalar_query_names(request.scope.get("route"))
    if not names:
        return
    params = request.query_params
    for name in names:
        count = len(params.getlist(name))
        if count > 1:
            raise RequestValidationError([{"loc": ("query", name), "type": "repeated",
                                           "msg": f"given {count} times; it takes one value"}])
