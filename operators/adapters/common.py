"""Helpers shared by the JSON adapters: decoding with the right dead-letter reason."""

from __future__ import annotations

from typing import Any

import orjson

from operators.model import AdapterResult, DeadLetterReason, RawMessage, dead


def decode_json(raw: RawMessage, adapter: str) -> tuple[Any, AdapterResult | None]:
    """Parse the payload as JSON: (document, None), or (None, a dead-letter result)."""
    if not raw.value.isascii():  # ASCII is UTF-8: only other payloads need the decode to check
        try:
            raw.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, dead(raw, DeadLetterReason.DECODE_ERROR, adapter, f"payload is not UTF-8: {exc}")
    try:
        return orjson.loads(raw.value), None
    except orjson.JSONDecodeError as exc:
        return None, dead(raw, DeadLetterReason.PARSE_ERROR, adapter, f"invalid JSON: {exc}")


def schema_error(raw: RawMessage, adapter: str, error: str) -> AdapterResult:
    return dead(raw, DeadLetterReason.SCHEMA_ERROR, adapter, error)


def opt_str(value: object) -> str | None:
    """A non-empty stripped string, or None (numbers are accepted as ids: SAP sends both)."""
    if type(value) is str:  # the usual case first (exactly `str`, so never a bool)
        return value.strip() or None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None


def describe(value: object) -> str:
    """A bad value, for an error message: short strings quoted, anything else by its type."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"{value!r}" if len(value) <= 40 else "a long string"
    return type(value).__name__
