"""A generic validator from parsed TOML/JSON tables to frozen dataclasses.

Every key is checked against the dataclass's fields and every value against its type hint,
so a typo is a one-line error naming the closest valid key, never a silently ignored setting.
The experiment file, its ``[sweep]`` table and a run's saved configuration all go through it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from bench.core.errors import BenchError


def suggest(key: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or ""."""
    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a type hint; return it in the dataclass's own type."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not (-1e300 < value < 1e300):  # TOML's nan and inf, and integers no float can hold
                raise BenchError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is type(None):
        if value is None:
            return value
    elif dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    elif origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(coerce(v, args[0], where) for v in value)
            if len(value) == len(args):
                return tuple(coerce(v, a, where) for v, a in zip(value, args, strict=True))
    elif origin in (typing.Union, types.UnionType):
        for a in typing.get_args(hint):
            try:
                return coerce(value, a, where)
            except BenchError:
                pass
    else:  # Mapping and anything untyped: the caller checks it
        return value
    raise BenchError(f"{where}: expected {type_name(hint)}, got {value!r}")


def type_name(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {type_name(args[0])}"
        return f"a list of {len(args)} {type_name(args[0])}s"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if dataclasses.is_dataclass(hint):
        return "a table"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def build(cls: type, table: Any, where: str) -> Any:
    """``cls(**table)`` after checking every key and value; fields without a default are required."""
    if not isinstance(table, Mapping):
        raise BenchError(f"{where}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key not in fields:
            raise BenchError(f"{where}: unknown key '{key}'{suggest(key, fields)}")
        kwargs[key] = coerce(value, hints[key], f"{where}.{key}")
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise BenchError(f"{where}: {name} is required")
    return cls(**kwargs)


def at_least(where: str, value: float, low: float) -> None:
    if not value >= low:
        raise BenchError(f"{where} must be >= {low:g}, got {value}")


def positive(where: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise BenchError(f"{where} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
