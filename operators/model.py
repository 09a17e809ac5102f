"""The canonical event model (schema_version 1) and the envelopes around it.

Every raw message becomes exactly one `AdapterResult`: events, a dead letter with a reason,
or an ignore with a reason (design.md 2.5 and section 4, accounting invariant).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypedDict, Unpack

from pydantic import BaseModel, ConfigDict, field_validator

SCHEMA_VERSION = 1


class EventType(StrEnum):
    ORDER_CREATED = "ORDER_CREATED"
    ORDER_RELEASED = "ORDER_RELEASED"
    PICK_CONFIRMED = "PICK_CONFIRMED"
    PACK_CONFIRMED = "PACK_CONFIRMED"
    SHIPMENT_DISPATCHED = "SHIPMENT_DISPATCHED"
    GOODS_ISSUE_POSTED = "GOODS_ISSUE_POSTED"
    GOODS_RECEIVED = "GOODS_RECEIVED"
    INVENTORY_ADJUSTED = "INVENTORY_ADJUSTED"
    INVENTORY_SNAPSHOT = "INVENTORY_SNAPSHOT"
    INVOICE_POSTED = "INVOICE_POSTED"
    CARRIER_STATUS = "CARRIER_STATUS"
    APPOINTMENT = "APPOINTMENT"
    # An EPCIS errorDeclaration: the event named in attributes["retracts"] is withdrawn.
    EVENT_RETRACTED = "EVENT_RETRACTED"


class SourceKind(StrEnum):
    ERP = "erp"
    WMS = "wms"
    CARRIER = "carrier"
    SNAPSHOT = "snapshot"


class TimePrecision(StrEnum):
    MS = "ms"
    S = "s"
    MIN = "min"
    DAY = "day"


class Milestone(StrEnum):
    PICKED_UP = "PICKED_UP"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    ARRIVED = "ARRIVED"
    DELIVERED = "DELIVERED"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    EXCEPTION = "EXCEPTION"
    RETURNED = "RETURNED"
    ETA = "ETA"
    CANCELLED = "CANCELLED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    UNKNOWN = "UNKNOWN"


class DeadLetterReason(StrEnum):
    DECODE_ERROR = "decode_error"  # bytes that are not UTF-8
    PARSE_ERROR = "parse_error"  # not JSON / not X12 / truncated
    SCHEMA_ERROR = "schema_error"  # well-formed but a required field is missing or mistyped
    MAPPING_ERROR = "mapping_error"  # a value that cannot be mapped (e.g. an unknown system)
    UNSUPPORTED = "unsupported"  # no adapter for this topic / content


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as it came off the backbone (design.md 2.1)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    received_at: datetime

    @property
    def raw_ref(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


class Line(BaseModel):
    """One inventory line: a quantity of a sku in a unit."""

    model_config = ConfigDict(frozen=True)

    sku: str
    quantity: float
    uom: str


class CanonicalEvent(BaseModel):
    """The canonical event, schema_version 1 (design.md 2.5). Immutable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    schema_version: int = SCHEMA_VERSION
    event_type: EventType
    source_kind: SourceKind
    source_format: str
    source_system: str
    occurred_at: datetime
    recorded_at: datetime | None
    received_at: datetime
    time_precision: TimePrecision
    tz_assumed: bool = False
    delivery_id: str | None = None
    order_id: str | None = None
    shipment_ref: str | None = None
    tracking_number: str | None = None
    carrier: str | None = None
    site: str | None = None
    milestone: Milestone | None = None
    status_code: str | None = None
    reason_code: str | None = None
    location: str | None = None
    lines: tuple[Line, ...] = ()
    raw_ref: str
    attributes: dict[str, str] = {}

    @field_validator("occurred_at", "recorded_at", "received_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("datetimes must be timezone-aware")
        return value


class EventFields(TypedDict, total=False):
    """The keyword arguments of `CanonicalEvent`, for `EventTemplate` (kept equal at import)."""

    event_id: str
    schema_version: int
    event_type: EventType
    source_kind: SourceKind
    source_format: str
    source_system: str
    occurred_at: datetime
    recorded_at: datetime | None
    received_at: datetime
    time_precision: TimePrecision
    tz_assumed: bool
    delivery_id: str | None
    order_id: str | None
    shipment_ref: str | None
    tracking_number: str | None
    carrier: str | None
    site: str | None
    milestone: Milestone | None
    status_code: str | None
    reason_code: str | None
    location: str | None
    lines: tuple[Line, ...]
    raw_ref: str
    attributes: dict[str, str]


if set(EventFields.__annotations__) != set(CanonicalEvent.model_fields):  # pragma: no cover - a drift guard
    raise RuntimeError("EventFields must list exactly the fields of CanonicalEvent")

_NONE = type(None)
# Per field, the exact input types that pydantic validation returns unchanged (no coercion).
_PASS_THROUGH: dict[str, tuple[type, ...]] = {
    "event_id": (str,),
    "schema_version": (int,),
    "event_type": (EventType,),
    "source_kind": (SourceKind,),
    "source_format": (str,),
    "source_system": (str,),
    "occurred_at": (datetime,),
    "recorded_at": (datetime, _NONE),
    "received_at": (datetime,),
    "time_precision": (TimePrecision,),
    "tz_assumed": (bool,),
    "delivery_id": (str, _NONE),
    "order_id": (str, _NONE),
    "shipment_ref": (str, _NONE),
    "tracking_number": (str, _NONE),
    "carrier": (str, _NONE),
    "site": (str, _NONE),
    "milestone": (Milestone, _NONE),
    "status_code": (str, _NONE),
    "reason_code": (str, _NONE),
    "location": (str, _NONE),
    "lines": (tuple,),
    "raw_ref": (str,),
    "attributes": (dict,),
}


def _passes_through(values: Mapping[str, object]) -> bool:
    """True when validating `values` would accept them and return them unchanged."""
    for name, value in values.items():
        kinds = _PASS_THROUGH.get(name)
        if kinds is None or type(value) not in kinds:
            return False
    for name in ("occurred_at", "recorded_at", "received_at"):
        value = values.get(name)
        if isinstance(value, datetime) and value.utcoffset() is None:
            return False  # `_aware` refuses it
    lines = values.get("lines")
    if isinstance(lines, tuple) and not all(type(line) is Line for line in lines):
        return False
    attributes = values.get("attributes")
    return not isinstance(attributes, dict) or all(
        type(key) is str and type(text) is str for key, text in attributes.items()
    )


# A validated event's `__dict__`: every field in declaration order, defaults where not given.
_FIELD_DEFAULTS: dict[str, Any] = {
    name: None if info.is_required() else info.default for name, info in CanonicalEvent.model_fields.items()
}
_REQUIRED_FIELDS = frozenset(name for name, info in CanonicalEvent.model_fields.items() if info.is_required())
_new_event = CanonicalEvent.__new__
_set = object.__setattr__


class EventTemplate:
    """What all events of one message share, checked once; `event()` adds each event's own fields.

    For adapters that make many events per message (EasyPost history resends, 214 AT7s), where
    pydantic validation per event was the largest single cost. The shared fields come from the raw
    message and are checked here: when each has exactly the type the model declares (see
    `_passes_through`), validation would return it unchanged. The fields given to `event()` must be
    the adapter's own results with the same guarantee (exact `str`, enum members, aware datetimes,
    `Line`s; mypy checks the types) and are not validated again. The event is laid out as
    validation lays it out: same `__dict__` (its own copy of `attributes`), fields set, frozen.
    If a shared field is not exact or a required field is missing, every event goes through
    `CanonicalEvent(...)`, which validates (coerces or refuses) as before. `event()` fields win.
    """

    __slots__ = ("_missing", "_names", "_shared", "_state", "_trusted")

    def __init__(self, **shared: Unpack[EventFields]) -> None:
        self._shared: dict[str, Any] = dict(shared)
        if "attributes" in self._shared:
            self._shared["attributes"] = dict(self._shared["attributes"])  # checked as it is now
        self._trusted = _passes_through(self._shared)
        self._state = _FIELD_DEFAULTS | self._shared
        self._names = set(self._shared)
        self._missing = _REQUIRED_FIELDS - self._names

    def event(self, **fields: Unpack[EventFields]) -> CanonicalEvent:
        if not (self._trusted and self._missing <= fields.keys()):
            return CanonicalEvent(**(self._shared | fields))
        state = self._state.copy()
        state.update(fields)
        state["attributes"] = dict(state["attributes"])  # validation copies the dict too
        event = _new_event(CanonicalEvent)
        _set(event, "__dict__", state)
        _set(event, "__pydantic_fields_set__", self._names.union(fields))
        _set(event, "__pydantic_extra__", None)
        _set(event, "__pydantic_private__", None)
        return event


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A raw message that could not be normalized, with the reason (design.md section 4)."""

    raw: RawMessage
    reason: DeadLetterReason
    adapter: str
    error: str


@dataclass(frozen=True, slots=True)
class AdapterResult:
    """What one adapter made of one raw message: exactly one of the three outcomes.

    `events` non-empty -> normalized (or duplicate, decided by dedup downstream);
    `dead_letter` set -> dead-lettered; otherwise -> ignored with `ignored_reason`.
    `warnings` are non-fatal findings (control-number mismatches, unmapped ids).
    """

    events: tuple[CanonicalEvent, ...] = ()
    dead_letter: DeadLetter | None = None
    ignored_reason: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def outcome(self) -> str:
        if self.dead_letter is not None:
            return "dead_lettered"
        if self.events:
            return "normalized"
        return "ignored"


def ok(events: list[CanonicalEvent] | tuple[CanonicalEvent, ...], warnings: list[str] | None = None) -> AdapterResult:
    """Events made from a message; an empty list is an ignore (say why with `ignored`)."""
    if not events:
        return AdapterResult(ignored_reason="no logistics events", warnings=tuple(warnings or ()))
    return AdapterResult(events=tuple(events), warnings=tuple(warnings or ()))


def ignored(reason: str, warnings: list[str] | None = None) -> AdapterResult:
    return AdapterResult(ignored_reason=reason, warnings=tuple(warnings or ()))


def dead(raw: RawMessage, reason: DeadLetterReason, adapter: str, error: str) -> AdapterResult:
    return AdapterResult(dead_letter=DeadLetter(raw=raw, reason=reason, adapter=adapter, error=error[:2000]))


def content_id(namespace: str, *parts: object) -> str:
    """A deterministic event id from content: `<namespace>:<sha256 prefix>`.

    Parts are joined with a separator that cannot occur in their text (\\x1f) so that
    ("a", "bc") and ("ab", "c") differ.
    """
    text = "\x1f".join(["" if part is None else str(part) for part in parts])
    return f"{namespace}:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]}"
