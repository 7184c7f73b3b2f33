"""Stripe's nested form encoding, decoded into plain dicts and lists.

The SDK flattens parameters as `metadata[order_id]=x`, `expand[0]=y`,
`payment_method_types[0]=card` (and older clients send `expand[]=y`). Operations
and the idempotency check both want the nested structure back, so it is decoded
once per request here; values stay strings and are coerced per field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from .errors import invalid, missing

_SUBSCRIPT = re.compile(r"\[([^\]]*)\]")


def parse_body(body: bytes) -> dict[str, Any]:
    """Decode an `application/x-www-form-urlencoded` request body."""
    return parse_query(body.decode("utf-8", errors="replace"))


def parse_query(query: str) -> dict[str, Any]:
    """Decode a query string or form body (blank values kept: Stripe uses them to unset)."""
    return decode(parse_qsl(query, keep_blank_values=True))


def decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn flat `a[b][0]=v` pairs into nested dicts, then index-keyed dicts into lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        _assign(root, _split(key), value, key)
    return _listify(root)


def _split(key: str) -> list[str]:
    """`metadata[order_id]` -> ["metadata", "order_id"]; `expand[]` -> ["expand", ""]."""
    head, bracket, rest = key.partition("[")
    if not bracket:
        return [key]
    return [head, *_SUBSCRIPT.findall("[" + rest)]


def _assign(node: dict[str, Any], path: list[str], value: str, key: str) -> None:
    """Walk/create the containers along `path`; a scalar/container clash is a 400."""
    for part in path[:-1]:
        child = node.setdefault(part or str(len(node)), {})
        if not isinstance(child, dict):
            raise invalid(f"Invalid parameter: {key}", param=key)
        node = child
    last = path[-1] or str(len(node))
    if isinstance(node.get(last), dict):
        raise invalid(f"Invalid parameter: {key}", param=key)
    node[last] = value


def _listify(node: dict[str, Any]) -> Any:
    """Dicts keyed only by integers were arrays on the client side; give them back as lists."""
    items = {k: _listify(v) if isinstance(v, dict) else v for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def to_int(params: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    """An integer parameter (amounts are integers in minor units, never floats)."""
    raw = params.get(name)
    if raw is None:
        if required:
            raise missing(name)
        return None
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise invalid(f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name)
    return int(raw)


def to_bool(params: Mapping[str, Any], name: str) -> bool:
    """A boolean parameter; the SDK sends Python booleans as "true"/"false"."""
    raw = params.get(name, "false")
    if raw not in ("true", "false"):
        raise invalid(f"Invalid boolean: {raw}", param=name)
    return raw == "true"


def to_str(params: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """A string parameter; an empty string counts as absent, as in Stripe."""
    raw = params.get(name)
    if raw in (None, ""):
        if required:
            raise missing(name)
        return None
    if not isinstance(raw, str):
        raise invalid(f"Invalid string: {name}", param=name)
    return raw


def to_metadata(params: Mapping[str, Any], current: Mapping[str, str] | None = None) -> dict:
    """Merge `metadata[...]` into `current`; an empty value deletes that key, as in Stripe."""
    raw = params.get("metadata")
    merged = dict(current or {})
    if raw in (None, ""):
        return merged
    if not isinstance(raw, dict):
        raise invalid("Invalid hash", param="metadata")
    for key, value in raw.items():
        if value == "":
            merged.pop(key, None)
        elif isinstance(value, str):
            merged[key] = value
        else:
            raise invalid("Metadata values must be strings.", param=f"metadata[{key}]")
    return merged
