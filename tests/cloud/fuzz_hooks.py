"""schemathesis hooks for tests/cloud/test_api_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

Rule files are sent as TOML text (``PUT /api/v1/rules/{name}``, ``application/toml``), which schemathesis has no
serializer for: generated strings go as UTF-8 text, anything else as its JSON text (the API must refuse it).
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/toml")
def toml_text(_ctx: Any, value: Any) -> bytes:
    """The generated body as text."""
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else json.dumps(value).encode()
