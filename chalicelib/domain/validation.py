"""Small checks for request bodies that name the field at fault."""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

from chalicelib.errors import InvalidRequest, PayloadTooLarge


def json_bytes(value: Any) -> int:
    """The size of value as compact JSON in UTF-8: what it takes to store or send, not its
    ASCII-escaped form (which counts a Hebrew letter as six bytes, an emoji as twelve)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def require_object(value: Any, field: str = "body") -> Mapping[str, Any]:
    """The value as a JSON object, or InvalidRequest."""
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{field} must be a JSON object", field=field)
    return value


def reject_unknown(body: Mapping[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    """InvalidRequest naming the first field that is not in allowed."""
    allowed = set(allowed)
    for key in body:
        if key not in allowed:
            raise InvalidRequest(f"unknown field '{prefix}{key}'", field=f"{prefix}{key}",
                                 code="unknown_field")


def integer(body: Mapping[str, Any], field: str, *, low: int, high: int,
            default: int | None = None, prefix: str = "") -> int:
    """An integer field within [low, high]; a missing field takes default or is an error."""
    name = f"{prefix}{field}"
    value = body.get(field, default)
    if value is None:
        raise InvalidRequest(f"'{name}' is required", field=name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{name}' must be an integer", field=name)
    if not low <= value <= high:
        raise InvalidRequest(f"'{name}' must be between {low} and {high}", field=name)
    return value


def number(body: Mapping[str, Any], field: str, *, low: float, high: float,
           default: float | None = None, prefix: str = "") -> float:
    """A finite number (int or float, not bool) within [low, high]."""
    name = f"{prefix}{field}"
    value = body.get(field, default)
    if value is None:
        raise InvalidRequest(f"'{name}' is required", field=name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"'{name}' must be a number", field=name)
    # The range check first: a huge JSON integer would overflow math.isfinite.
    if not low <= value <= high or not math.isfinite(value):
        raise InvalidRequest(f"'{name}' must be between {low:g} and {high:g}", field=name)
    return value


def boolean(body: Mapping[str, Any], field: str, *, default: bool, prefix: str = "") -> bool:
    """A true/false field; absent takes default."""
    name = f"{prefix}{field}"
    value = body.get(field, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false", field=name)
    return value


@overload
def text(body: Mapping[str, Any], field: str, *, max_length: int, min_length: int = 1,
         default: str | None = None, prefix: str = "", required: Literal[True] = True) -> str: ...
@overload
def text(body: Mapping[str, Any], field: str, *, max_length: int, min_length: int = 1,
         default: str | None = None, prefix: str = "", required: bool) -> str | None: ...
def text(body: Mapping[str, Any], field: str, *, max_length: int, min_length: int = 1,
         default: str | None = None, prefix: str = "", required: bool = True) -> str | None:
    """A string field with length limits; None only when optional and absent."""
    name = f"{prefix}{field}"
    value = body.get(field, default)
    if value is None:
        if required:
            raise InvalidRequest(f"'{name}' is required", field=name)
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", field=name)
    if len(value.strip()) < min_length:
        raise InvalidRequest(f"'{name}' must have at least {min_length} characters", field=name)
    if len(value) > max_length:
        raise InvalidRequest(f"'{name}' must have at most {max_length} characters", field=name)
    return value


def choice(body: Mapping[str, Any], field: str, options: Iterable[str], *,
           default: str | None = None, prefix: str = "") -> str:
    """A string field that must be one of options."""
    name = f"{prefix}{field}"
    options = tuple(options)
    value = body.get(field, default)
    if value is None:
        raise InvalidRequest(f"'{name}' is required", field=name)
    if not isinstance(value, str) or value not in options:
        raise InvalidRequest(f"'{name}' must be one of: {', '.join(options)}", field=name)
    return value


def string_list(body: Mapping[str, Any], field: str, *, max_items: int, max_length: int,
                min_items: int = 0, unique: bool = True, prefix: str = "",
                reserved: Iterable[str] = ()) -> list[str]:
    """A list of non-empty printable strings (absent means empty when min_items is 0).

    Entries in reserved are refused (names the platform itself uses in the same place)."""
    name = f"{prefix}{field}"
    value = body.get(field, [] if min_items == 0 else None)
    if value is None:
        raise InvalidRequest(f"'{name}' is required", field=name)
    if not isinstance(value, list):
        raise InvalidRequest(f"'{name}' must be a list of strings", field=name)
    if len(value) > max_items:
        raise PayloadTooLarge(f"'{name}' may hold at most {max_items} entries", field=name)
    if len(value) < min_items:
        raise InvalidRequest(f"'{name}' needs at least {min_items} entries", field=name)
    reserved = set(reserved)
    for index, entry in enumerate(value):
        if (not isinstance(entry, str) or not entry.strip() or len(entry) > max_length
                or not entry.isprintable()):
            raise InvalidRequest(
                f"'{name}[{index}]' must be a non-empty printable string of at most "
                f"{max_length} characters", field=f"{name}[{index}]")
        if entry in reserved:
            raise InvalidRequest(f"'{name}[{index}]': {entry!r} is reserved", field=f"{name}[{index}]")
    if unique and len(set(value)) != len(value):
        raise InvalidRequest(f"'{name}' has duplicate entries", field=name)
    return list(value)


def page_limit(query: Mapping[str, str], default: int = 100) -> int:
    """The `limit` query parameter of a listing: 1 to 1000."""
    text = query.get("limit", str(default))
    if not (text.isascii() and text.isdigit()):
        raise InvalidRequest("'limit' must be a whole number", field="limit")
    return integer({"limit": int(text)}, "limit", low=1, high=1000)
