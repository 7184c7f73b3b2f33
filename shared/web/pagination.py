"""Opaque list cursors: clients pass back `next_cursor` untouched; we never expose offsets.

A cursor is the base64url JSON list of the last item's sort key, all strings. Whatever a
client sends instead (not base64, not JSON, the wrong length, a value that does not parse)
is a 400 `invalid-cursor`, never a 500.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from shared.web.problems import Problem


def encode_cursor(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def _invalid() -> Problem:
    return Problem(400, "invalid-cursor", "The cursor is not one this API issued.")


def decode_cursor(
    cursor: str | None, arity: int, parse: Sequence[Callable[[str], Any]] | None = None
) -> list[Any] | None:
    """The position in `cursor` (`arity` strings), each through its `parse` if given."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error) as exc:
        raise _invalid() from exc
    if (
        not isinstance(position, list)
        or len(position) != arity
        or not all(isinstance(part, str) for part in position)
    ):
        raise _invalid()
    if parse is None:
        return position
    try:
        return [convert(part) for convert, part in zip(parse, position, strict=True)]
    except (ValueError, TypeError) as exc:
        raise _invalid() from exc
