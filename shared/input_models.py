"""Building blocks of the HTTP input models: strict, bounded, storable.

`StrictModel` refuses unknown fields and type coercion ("1" is not 1, 1.0 is not 1), and any
string holding a NUL or an unpaired surrogate (JSON allows both escaped; PostgreSQL and UTF-8
cannot store them), wherever it is nested. `SINGLE_LINE` is the pattern of one-line texts
(names, ids): no control characters at all. Numbers get explicit bounds where they are
declared (`Field(le=...)`), so a 5,000-digit integer is a 422, not an overflow.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

SINGLE_LINE = r"^[^\x00-\x1f\x7f]*$"
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _storable(value: Any, where: str = "") -> None:
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise ValueError(f"{where or 'a string'} holds a NUL or an unpaired surrogate")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, where)
            _storable(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _storable(item, f"{where}.{index}" if where else str(index))


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _only_storable_text(cls, data: Any) -> Any:
        _storable(data)
        return data
