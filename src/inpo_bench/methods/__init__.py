"""Alignment methods behind one registry, as scorers/ has: name -> Method (methods/base.py).

Every module of this package that defines `METHOD` is a method; the registry finds them, so adding a method means
adding its module and its section in the configs. The CLI's choices, the DAG's method list and wildcards, the
config schema, the tables and figures all read `methods()`.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from .base import Context, Method

__all__ = ["Context", "Method", "get", "methods", "names"]


@cache
def methods() -> dict[str, Method]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if isinstance(getattr(module, "METHOD", None), Method):
            found.append(module.METHOD)
    return {m.name: m for m in sorted(found, key=lambda m: (m.order, m.name))}


def names() -> list[str]:
    return list(methods())


def get(name: str) -> Method:
    if name not in methods():
        raise ValueError(f"unknown method {name!r}; known: {names()}")
    return methods()[name]
