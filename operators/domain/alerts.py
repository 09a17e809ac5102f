"""Alerts: one row of the `alerts` table (design.md 3.5 and 4), with a deterministic id.

An alert is an entity with versions: `open` -> `resolved`. Its id is a function of the rule, the
entity key and the handoff only, so a restart or a replay re-emits the same alert (ClickHouse
ReplacingMergeTree(version) and the idempotent webhook collapse the repeats) instead of a new one.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import msgspec
import orjson

# Rules of v1 (design.md 3.5). inventory_mismatch and the pipeline-health rules are raised elsewhere.
HANDOFF_MISSING = "handoff_missing"
HANDOFF_LATE = "handoff_late"
ORPHAN_CARRIER_EVENT = "orphan_carrier_event"
INVENTORY_MISMATCH = "inventory_mismatch"

OPEN = "open"
RESOLVED = "resolved"

# Severities: a missing handoff stops a delivery (someone must act); a late one or an event we
# cannot attribute is a data-quality finding.
CRITICAL = "critical"
WARNING = "warning"


class Alert(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One version of an alert (a row of `alerts`). Strings are "" when they do not apply; times
    are epoch milliseconds (UTC)."""

    alert_id: str
    rule: str
    handoff: str
    severity: str
    entity: str
    delivery_id: str
    site: str
    sku: str
    state: str  # OPEN | RESOLVED
    due_at: int | None
    opened_at: int
    resolved_at: int | None  # None while open
    details: str  # JSON object text, keys sorted
    version: int

    @property
    def is_unresolved(self) -> bool:
        return self.state == OPEN


def alert_id(rule: str, entity: str, handoff: str = "") -> str:
    """The deterministic id: a sha256 prefix of (rule, entity, handoff).

    The parts are joined with \\x1f (it cannot occur in them) so that distinct triples never collide
    by concatenation.
    """
    text = "\x1f".join((rule, entity, handoff))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def details_json(**fields: object) -> str:
    """Alert details as compact JSON with sorted keys (identical input -> identical text).

    datetimes become ISO 8601 text and timedeltas milliseconds; None values are left out.
    Pass epoch-ms times through `iso()` first.
    """
    plain = {key: _plain(value) for key, value in fields.items() if value is not None}
    return orjson.dumps(plain, option=orjson.OPT_SORT_KEYS).decode()


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return duration_ms(value)
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(millis: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 UTC text (`2024-03-01T08:00:00+00:00`), None as None."""
    if millis is None:
        return None
    return (_EPOCH + timedelta(milliseconds=millis)).isoformat()


def with_alert(alert: Alert, **changes: object) -> Alert:
    """A new version of an alert (the record itself is immutable)."""
    return msgspec.structs.replace(alert, **changes)


def duration_ms(value: timedelta) -> int:
    """A duration in whole milliseconds, floored (exact integer arithmetic, no float rounding)."""
    return value // timedelta(milliseconds=1)
