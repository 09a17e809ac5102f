"""Pure row mapping for the ClickHouse tables (`to_row` beside the sink, style.md).

Rows are tuples in the column order of their table; times are epoch milliseconds (ClickHouse's
own insert guidance: ints, not Python datetimes, on the hot path). The wall-clock column of a
table (`ingested_at`, `flushed_at`, `updated_at`) is not in the row: the sink adds it, one value
per insert. Row mapping runs where the row is made (any worker, any process); only the tuples
travel to the sink's partition.
"""

from __future__ import annotations

import base64
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from operators.domain.alerts import Alert
from operators.domain.delivery_status import DeliveryStatus
from operators.domain.handoffs import SyncLatency
from operators.domain.inventory_units import InventoryDelta, InventoryPosition
from operators.domain.lifecycle import EventLink
from operators.formats.timeparse import to_epoch_ms
from operators.ingest.accounting import IngestStats, LetterReplay
from operators.model import CanonicalEvent, DeadLetter, split_raw_ref

Row = Sequence[Any]  # a tuple when made, a list after crossing a process as msgpack


class StageWatermark(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One row of `stage_watermarks`: W of one bucket of one stage (epoch ms)."""

    run_id: str
    stage: str
    bucket: int
    watermark: int


EVENT_COLUMNS = (
    "event_id",
    "schema_version",
    "event_type",
    "source_kind",
    "source_format",
    "source_system",
    "occurred_at",
    "recorded_at",
    "received_at",
    "time_precision",
    "tz_assumed",
    "delivery_id",
    "order_id",
    "shipment_ref",
    "tracking_number",
    "carrier",
    "site",
    "milestone",
    "status_code",
    "reason_code",
    "location",
    "lines.sku",
    "lines.quantity",
    "lines.uom",
    "raw_ref",
    "attributes",
    "warnings",
)

DEAD_LETTER_COLUMNS = (
    "raw_ref",
    "topic",
    "partition",
    "offset",
    "key",
    "received_at",
    "reason",
    "adapter",
    "error",
    "payload",
    "payload_b64",
    "warnings",
)


def event_row(event: CanonicalEvent) -> Row:
    lines = event.lines
    recorded = event.recorded_at
    milestone = event.milestone
    return (
        event.event_id,
        event.schema_version,
        event.event_type.value,
        event.source_kind.value,
        event.source_format,
        event.source_system,
        to_epoch_ms(event.occurred_at),
        None if recorded is None else to_epoch_ms(recorded),
        to_epoch_ms(event.received_at),
        event.time_precision.value,
        event.tz_assumed,
        event.delivery_id or "",
        event.order_id or "",
        event.shipment_ref or "",
        event.tracking_number or "",
        event.carrier or "",
        event.site or "",
        "" if milestone is None else milestone.value,
        event.status_code or "",
        event.reason_code or "",
        event.location or "",
        [line.sku for line in lines],
        [line.quantity for line in lines],
        [line.uom for line in lines],
        event.raw_ref,
        event.attributes,
        event.warnings,
    )


def dead_letter_row(letter: DeadLetter) -> Row:
    """The whole payload, whatever its size (the dead-letter topic may get a truncated copy).

    A replayed message that is still dead replaces its original row (same topic and raw_ref) with
    the new verdict; partition and offset stay those of the original (its raw_ref), not where
    the replay carried it."""
    raw = letter.raw
    try:
        payload, is_b64 = raw.value.decode("utf-8"), False
    except UnicodeDecodeError:
        payload, is_b64 = base64.b64encode(raw.value).decode("ascii"), True
    partition, offset = raw.partition, raw.offset
    if raw.replay_of is not None:
        try:
            _, partition, offset = split_raw_ref(raw.replay_of)
        except ValueError:  # not a raw_ref of ours: keep where the replay carried it
            pass
    return (
        raw.raw_ref,
        raw.topic,
        partition,
        offset,
        raw.key or "",
        to_epoch_ms(raw.received_at),
        str(letter.reason),
        letter.adapter,
        letter.error,
        payload,
        is_b64,
        letter.warnings,
    )


def _fields(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(cls.__struct_fields__)


@dataclass(frozen=True)
class Table:
    """How one kind of row is stored."""

    name: str
    columns: Sequence[str]
    to_row: Callable[[Any], Row]
    clock: str | None = None  # the wall-clock column the sink adds at insert
    key: Callable[[Row], Any] | None = None  # entity key: only the newest version per key is kept ...
    version: int | None = None  # ... by this column (index into the row), within one insert


def _key(*indexes: int) -> Callable[[Row], Any]:
    return operator.itemgetter(*indexes)


TABLES: dict[type, Table] = {
    CanonicalEvent: Table("events", EVENT_COLUMNS, event_row, "ingested_at"),
    DeadLetter: Table("dead_letters", DEAD_LETTER_COLUMNS, dead_letter_row, "ingested_at"),
    IngestStats: Table("ingest_stats", _fields(IngestStats), msgspec.structs.astuple, "flushed_at", _key(0, 1, 2), 4),
    LetterReplay: Table("dead_letter_replays", _fields(LetterReplay), msgspec.structs.astuple, "replayed_at"),
    DeliveryStatus: Table("delivery_status", _fields(DeliveryStatus), msgspec.structs.astuple, None, _key(0), 12),
    SyncLatency: Table("sync_latency", _fields(SyncLatency), msgspec.structs.astuple, None, _key(0, 1), 12),
    Alert: Table("alerts", _fields(Alert), msgspec.structs.astuple),  # every version (a history)
    InventoryPosition: Table(
        "inventory_positions", _fields(InventoryPosition), msgspec.structs.astuple, None, _key(0, 1, 2), 11
    ),
    InventoryDelta: Table("inventory_deltas", _fields(InventoryDelta), msgspec.structs.astuple),
    EventLink: Table("event_links", _fields(EventLink), msgspec.structs.astuple, None, _key(0, 1), 8),
    StageWatermark: Table(
        "stage_watermarks", _fields(StageWatermark), msgspec.structs.astuple, "updated_at", _key(0, 1, 2), 3
    ),
}
TABLE_BY_NAME: dict[str, Table] = {table.name: table for table in TABLES.values()}
