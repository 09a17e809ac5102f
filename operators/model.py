"""The canonical event model (schema_version 1) and the envelopes around it.

Every raw message becomes exactly one `AdapterResult`: events, a dead letter with a reason,
or an ignore with a reason (design.md 2.5 and section 4, accounting invariant).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any, TypedDict, Unpack

import msgspec

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


class RawMessage(msgspec.Struct, frozen=True, gc=False):
    """One message as it came off the backbone (design.md 2.1).

    `replay_of`: set when the message is a dead letter fed through the flow again (`logisync dlq
    replay`): the raw_ref of the original, which the message keeps, so its events and its dead
    letter name the message as it first arrived and the accounting moves the original letter
    instead of counting a new message. Fields are only ever added at the end, with a default.
    """

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    received_at: datetime
    replay_of: str | None = None

    @property
    def raw_ref(self) -> str:
        if self.replay_of is not None:
            return self.replay_of
        return f"{self.topic}:{self.partition}:{self.offset}"


# The Kafka header that carries `replay_of` on a dead letter produced back onto its topic.
REPLAY_OF_HEADER = "logisync.replay_of"


def split_raw_ref(raw_ref: str) -> tuple[str, int, int]:
    """`<topic>:<partition>:<offset>` -> its parts (a topic name has no `:`). Raises ValueError."""
    topic, partition, offset = raw_ref.rsplit(":", 2)
    return topic, int(partition), int(offset)


class Line(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One inventory line: a quantity of a sku in a unit."""

    sku: str
    quantity: float
    uom: str


class CanonicalEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False, array_like=True, tag="event"):
    """The canonical event, schema_version 1 (design.md 2.5). Immutable.

    A msgspec Struct rather than a pydantic model: it is built once or more per raw message on
    the hot path (9 us and 2.2 KB as a validated pydantic model, under 1 us and ~300 B here, and not
    tracked by the garbage collector), and it crosses bytewax processes as msgpack (`EVENT_CODEC`).
    The adapters are the boundary that checks every value; they pass exact types (enum members,
    aware UTC datetimes, `Line`s). Serialized positionally (`array_like`): a field is only ever
    added at the end, with a default, and `schema_version` says which layout a record has.
    """

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
    # What the adapter found amiss in the message that carried the event ("kind: message"), e.g.
    # an unmapped id or an envelope's control numbers: the message's findings, on each of its events.
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for value in (self.occurred_at, self.recorded_at, self.received_at):
            if value is not None and value.tzinfo is None:
                raise ValueError(f"event {self.event_id}: datetimes must be timezone-aware, got {value!r}")


def with_changes(event: CanonicalEvent, **changes: Any) -> CanonicalEvent:
    """A copy of the event with some fields changed (the event itself is immutable)."""
    return msgspec.structs.replace(event, **changes)


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
    warnings: tuple[str, ...]


if set(EventFields.__annotations__) != set(CanonicalEvent.__struct_fields__):  # pragma: no cover - a drift guard
    raise RuntimeError("EventFields must list exactly the fields of CanonicalEvent")


class EventTemplate:
    """What all events of one message share; `event()` adds each event's own fields (they win).

    For adapters that make many events per message (EasyPost history resends, 214 AT7s). The
    first event is built from keywords; the next ones that give the same fields copy it with
    their own values (`msgspec.structs.replace`: under half the cost of building an event).
    """

    __slots__ = ("_first", "_first_fields", "_shared")

    def __init__(self, **shared: Unpack[EventFields]) -> None:
        self._shared: dict[str, Any] = dict(shared)
        self._first: CanonicalEvent | None = None
        self._first_fields: frozenset[str] = frozenset()

    def event(self, **fields: Unpack[EventFields]) -> CanonicalEvent:
        attributes = fields.get("attributes")
        # Each event owns its attributes (a dict is mutable even in a frozen event).
        fields["attributes"] = dict(attributes if attributes is not None else self._shared.get("attributes") or {})
        first = self._first
        if first is not None and fields.keys() == self._first_fields:
            # Every field is either shared (as in the first event) or given again here.
            return msgspec.structs.replace(first, **fields)
        values: dict[str, Any] = self._shared | fields
        event = CanonicalEvent(**values)
        if first is None:
            self._first, self._first_fields = event, frozenset(fields)
        return event


# Events across processes, in snapshots and in dead-letter replays: msgpack, positional.
EVENT_ENCODER = msgspec.msgpack.Encoder()
EVENTS_DECODER = msgspec.msgpack.Decoder(list[CanonicalEvent])


class DeadLetter(msgspec.Struct, frozen=True, gc=False):
    """A raw message that could not be normalized, with the reason (design.md section 4)."""

    raw: RawMessage
    reason: DeadLetterReason
    adapter: str
    error: str
    warnings: tuple[str, ...] = ()  # the adapter's other findings ("kind: message")


class WarningKind(StrEnum):
    """What a non-fatal finding is about (README "Warning kinds"). A closed set: the flow counts
    warnings by kind, so a new kind is a new column for the analysts."""

    MAPPING = "mapping"  # an id not in the master data, kept as UNMAPPED:<raw>
    CONTROL_NUMBER = "control_number"  # SE/GE/IEA counts or control numbers, GS01, ST outside GS
    TRAILER = "trailer"  # a GE / IEA trailer missing or misplaced: the sets were read anyway
    UNSUPPORTED_SET = "unsupported_set"  # an X12 set we do not read, skipped beside sets we read
    TIME_ZONE = "time_zone"  # an unknown time code, or a local time whose zone is a guess
    SKIPPED = "skipped"  # a part of the message not read (an AT7 without a code, an EPC that is no GTIN)
    BAD_VALUE = "bad_value"  # an optional value that cannot be read, dropped (GS04, eventTimeZoneOffset)


class AdapterWarning(msgspec.Struct, frozen=True, gc=False):
    """One non-fatal finding of an adapter: its kind (for counting) and what was found."""

    kind: WarningKind
    message: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"


class AdapterResult(msgspec.Struct, frozen=True, gc=False):
    """What one adapter made of one raw message: exactly one of the three outcomes.

    `events` non-empty -> normalized (or duplicate, decided by dedup downstream);
    `dead_letter` set -> dead-lettered; otherwise -> ignored with `ignored_reason`.
    `warnings` are non-fatal findings (control-number mismatches, unmapped ids), with any outcome.
    """

    events: tuple[CanonicalEvent, ...] = ()
    dead_letter: DeadLetter | None = None
    ignored_reason: str | None = None
    warnings: tuple[AdapterWarning, ...] = ()

    @property
    def outcome(self) -> str:
        if self.dead_letter is not None:
            return "dead_lettered"
        if self.events:
            return "normalized"
        return "ignored"


Warnings = list[AdapterWarning] | tuple[AdapterWarning, ...] | None


def ok(events: list[CanonicalEvent] | tuple[CanonicalEvent, ...], warnings: Warnings = None) -> AdapterResult:
    """Events made from a message; an empty list is an ignore (say why with `ignored`)."""
    if not events:
        return AdapterResult(ignored_reason="no logistics events", warnings=tuple(warnings or ()))
    return AdapterResult(events=tuple(events), warnings=tuple(warnings or ()))


def ignored(reason: str, warnings: Warnings = None) -> AdapterResult:
    return AdapterResult(ignored_reason=reason, warnings=tuple(warnings or ()))


def dead(
    raw: RawMessage, reason: DeadLetterReason, adapter: str, error: str, warnings: Warnings = None
) -> AdapterResult:
    return AdapterResult(
        dead_letter=DeadLetter(raw=raw, reason=reason, adapter=adapter, error=error[:2000]),
        warnings=tuple(warnings or ()),
    )


def content_id(namespace: str, *parts: object) -> str:
    """A deterministic event id from content: `<namespace>:<sha256 prefix>`.

    Parts are joined with a separator that cannot occur in their text (\\x1f) so that
    ("a", "bc") and ("ab", "c") differ.
    """
    text = "\x1f".join(["" if part is None else str(part) for part in parts])
    return f"{namespace}:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]}"
