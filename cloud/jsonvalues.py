"""Free-form JSON members of request bodies (a command's ``args``, a desired ``config``) that the cloud can
store, forward and answer again: finite numbers, text that is valid Unicode, a bounded depth.

Python's JSON reader accepts ``NaN``, ``1e999`` (infinity) and lone UTF-16 surrogates (``"\\ud800"``), which
no JSON writer can write back: found by fuzzing the API, they were answered with a 500 (or, in a desired
state, silently stored as null). ``JsonObject`` refuses them with a 400 naming the member.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_DEPTH = 32


def _check(value: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a number JSON can carry (use a finite number)")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: the text is not valid Unicode (a lone surrogate)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key, f"{where} (a key)", depth + 1)
            _check(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]", depth + 1)


def check_json_object(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` when every member can be written back as JSON; ValueError naming the first that cannot."""
    for key, item in value.items():
        _check(key, "a key", 1)
        _check(item, key, 1)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_object)]
"""A JSON object member of a request body (see the module's docstring)."""
