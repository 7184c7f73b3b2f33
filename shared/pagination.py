"""Opaque list cursors: clients pass back `next_cursor` untouched; we never expose offsets."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from shared.http import Problem


def encode_cursor(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError as exc:
        raise Problem(400, "invalid-cursor", "The cursor is not one this API issued.") from exc
    if not isinstance(position, list) or len(position) != arity:
        raise Problem(400, "invalid-cursor", "The cursor is not one this API issued.")
    return position
