"""Validation and coercion helpers of memctl.config (private to it).

__post_init__ checks raise _Invalid(field, message); the loader turns it into a UserError
naming the file and the dotted field. _build coerces a YAML mapping into a dataclass,
checking every value against its type hint.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import fields
from typing import Any

import yaml

from memctl.errors import UserError


class _Invalid(ValueError):
    """Raised by __post_init__ checks: (field, message)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name, self.message = name, message


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise _Invalid(name, message)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(value > 0, name, f"must be > 0, got {value!r}")


def _non_negative(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(value >= 0, name, f"must be >= 0, got {value!r}")


def _choice(obj: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    _check(value in choices, name, f"must be one of {', '.join(choices)}; got {value!r}")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Checks `value` against a type hint; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _Invalid(where, f"must be a mapping, got {type(value).__name__}")
        return _build(hint, value, where)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise _Invalid(where, f"must be a list, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_type, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise _Invalid(where, f"must be a mapping, got {value!r}")
        return {_coerce(k, key_type, where): _coerce(v, item, f"{where}.{k}")
                for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported type {hint}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML reads 1e-4 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is bool and not isinstance(value, bool):
        raise _Invalid(where, f"must be true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _Invalid(where, f"must be an integer, got {value!r}")
    if not isinstance(value, hint):
        raise _Invalid(where, f"must be {hint.__name__}, got {value!r}")
    return value


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise _Invalid(where, f"unknown field (valid: {', '.join(sorted(known))})")
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else key
        kwargs[key] = _coerce(value, hints[key], where)
    try:
        return cls(**kwargs)
    except _Invalid as err:
        where = f"{prefix}.{err.name}" if prefix else err.name
        raise _Invalid(where, err.message) from None


def _apply_override(data: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise UserError(f"override {override!r}: expected section.field=value")
    dotted, raw = override.split("=", 1)
    keys = dotted.strip().split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"override {override!r}: {key} is not a section")
    try:
        node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise UserError(f"override {override!r}: cannot parse value: {err}") from None
