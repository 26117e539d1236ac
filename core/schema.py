"""Dataclasses from untrusted JSON: every field's type checked against its annotation, in one place.

``from_dict(TrainConfig, raw, "config.json")`` refuses unknown keys, ``null`` where a value is needed, a
string where a number is, ``2.5`` epochs, ``"fast"`` as a learning rate, an object where a list is ... each
with one line that names the file and the field. Range checks stay with each dataclass's ``validate``.
Supported annotations: ``int``, ``float`` (finite; whole numbers accepted), ``str``, ``bool``, ``dict``,
``tuple[T, ...]``, ``X | None`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar, Union
import json
import re

from .errors import UserError

T = TypeVar("T")


def kind(value: Any) -> str:
    """How a JSON value reads to a person: ``a string "5"``, ``null``, ``an object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, str):
        text = value if len(value) <= 20 else value[:20] + "…"
        return f"the text {text!r}"
    if isinstance(value, (int, float)):
        return f"{value!r}"
    if isinstance(value, dict):
        return "an object {…}"
    if isinstance(value, (list, tuple)):
        return "a list […]"
    return type(value).__name__


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        names = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" (or null)" if type(None) in args else "")
    if origin is tuple:
        return f"a list of {_describe(args[0])}s" if args else "a list"
    if dataclasses.is_dataclass(tp):
        return "an object {…}"
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false",
            dict: "an object {…}"}.get(tp, getattr(tp, "__name__", str(tp)))


class _Mismatch(Exception):
    pass


def check_value(value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to ``tp`` (lists to tuples, whole numbers to floats), or a ``UserError``."""
    try:
        return _check(value, tp, where)
    except _Mismatch:
        raise UserError(f"{where} must be {_describe(tp)}, not {kind(value)}: fix that value.") from None


def _check(value: Any, tp: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _check(value, option, where)
            except _Mismatch:
                continue
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise _Mismatch
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Mismatch
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _Mismatch
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        item = args[0] if args else Any
        return tuple(_check(v, item, where) for v in value)
    raise TypeError(f"core.schema cannot check {tp!r} ({where})")  # a programming error, not bad input


def from_dict(cls: type[T], raw: Any, where: str, *, ignore: tuple[str, ...] = ()) -> T:
    """An instance of dataclass ``cls`` from the JSON object ``raw``; ``where`` names it in messages.

    Keys missing from ``raw`` keep their defaults; keys in ``ignore`` are dropped silently.
    """
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a JSON object {{…}}, not {kind(raw)}: fix the file.")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(k for k in set(raw) - set(known) - set(ignore))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(known)}.")
    values = {k: check_value(v, hints[k], f"{where}: {k}") for k, v in raw.items() if k in known}
    return cls(**values)


MAX_DEPTH = 64  #: no file sd-explorer reads nests deeper; Python's parser would overflow its stack near 1000


def parse_json(text: str | bytes):
    """``json.loads`` for untrusted text: nesting deeper than ``MAX_DEPTH`` is a ``ValueError`` (not a
    ``RecursionError`` from the parser, nor a stack overflow on a second pass), so every reader reports it
    in its own one line with its other JSON errors."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None


def _depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings (a linear scan, no recursion)."""
    deepest = depth = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        ch = m.group(0)
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def read_json_file(path, fix: str) -> dict:
    """A JSON object from ``path``; a missing, unreadable, non-UTF-8 or non-JSON file, or JSON that is not an
    object (``null``, a list), is a one-line ``UserError`` naming the file and ending with ``fix``."""
    try:
        raw = parse_json(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text: {fix}.") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a JSON file: {fix}.") from None
    except PermissionError:
        raise UserError(f"{path} cannot be read (permission denied): fix its permissions (chmod +r) or {fix}.") from None
    except OSError as exc:
        raise UserError(f"{path} cannot be read ({exc.strerror or exc}): {fix}.") from None
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}): {fix}.") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a JSON object {{…}}, not {kind(raw)}: {fix}.")
    return raw
