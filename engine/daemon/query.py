"""Query strings: a parameter that takes one value must be given once, and the OpenAPI document describes query
parameters as they travel.

Starlette keeps every value of a repeated query parameter and FastAPI hands a scalar parameter the last of them,
so `/report?stage=offer&stage=onsite` used to answer for `onsite` alone, silently. `REFUSE_REPEATS` is the
dependency that refuses such a request with 422 naming the parameter (RequestValidationError, so the same Problem
as any other refused parameter); the app adds it to every router and route with query parameters. Parameters
declared as lists (`rule`, `state`) are repeated by design and left alone. It is not app-wide: a FastAPI
dependency costs ~30 us a request, and intake's POST has no query parameters.

`as_sent` rewrites the query parameters of the OpenAPI document FastAPI generates to what a query string can carry:
an optional `str | None` is `anyOf: [string, null]` there, but no query string sends null (an absent parameter is
None), so it is the string schema alone; a list of strings is sent as one value or the parameter repeated, so it is
`type: [array, string]`. The document then says what the daemon accepts, and schemathesis judges the text it sent
against it (it keeps the generated value for any other type, and reported `?role=0.0` as a schema violation).
"""
from __future__ import annotations

import typing
from collections.abc import Sequence
from types import UnionType
from typing import Any

from fastapi import Depends, Request
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
        names: list[str] = []
        pending = [getattr(route, "dependant", None)]
        while pending:  # the route's own parameters, then its dependencies' (Dependant.dependencies)
            dependant = pending.pop()
            if dependant is None:
                continue
            names += [f.alias for f in dependant.query_params if not takes_many(f.field_info.annotation)]
            pending += dependant.dependencies
        known = tuple(dict.fromkeys(names))
        if route is not None:
            setattr(route, _NAMES, known)
    return known


async def one_value_each(request: Request) -> None:
    """Refuses (422, the parameter named) a scalar query parameter given more than once. (Async: FastAPI runs a
    plain function dependency in its thread pool.)"""
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


REFUSE_REPEATS = [Depends(one_value_each)]  # for `dependencies=` of a router, an include_router or a route


def as_sent(doc: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document `doc` (changed in place, and returned) with its query parameters' schemas as sent."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for param in operation.get("parameters", ()) if isinstance(operation, dict) else ():
                if param.get("in") == "query" and isinstance(param.get("schema"), dict):
                    param["schema"] = _as_sent(param["schema"])
    return doc


def _as_sent(schema: dict[str, Any]) -> dict[str, Any]:
    branches = schema.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
        value = next(b for b in branches if b != {"type": "null"})
        if "enum" not in value and "const" not in value:  # (null would have to join an enum: left as it is)
            schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **value}
    if schema.get("type") == "array" and schema.get("items", {}).get("type") == "string":
        schema = {**schema, "type": ["array", "string"]}  # `?rule=a`: one value, or the parameter repeated
    return schema
