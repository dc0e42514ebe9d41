"""Canonical JSON: the exact bytes that audit hashes and signatures are computed over."""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

ISO_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # keeps full precision; floats never enter a hash
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("naive datetime in canonical content")
        return value.astimezone(UTC).strftime(ISO_UTC)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    raise TypeError(f"{type(value).__name__} is not canonical-JSON serialisable")


_CONTAINERS = (float, dict, list, tuple, set, frozenset, enum.Enum)


def _refuse_floats(value: Any) -> None:
    """json.dumps writes floats itself (never calling `default`), so look for them first,
    wherever they hide (values, keys, sets, enum values): a float in hashed content would be a
    silently rounded result."""
    if isinstance(value, float):
        raise TypeError("floats are not allowed in canonical content; use Decimal")
    if isinstance(value, enum.Enum):
        _refuse_floats(value.value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, float):
                _refuse_floats(key)
            if isinstance(item, _CONTAINERS):
                _refuse_floats(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            if isinstance(item, _CONTAINERS):
                _refuse_floats(item)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, Decimals as strings, floats refused."""
    _refuse_floats(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(value: Any) -> str:
    """SHA-256 of the canonical JSON of `value`."""
    return sha256_hex(canonical_json(value))
