"""Pure row mapping for the ClickHouse tables (`to_row` beside the sink, style.md).

Rows are tuples in the column order below; times are epoch milliseconds (ClickHouse's own
insert guidance: ints, not Python datetimes, on the hot path).
"""

from __future__ import annotations

import base64
import operator
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import fields
from datetime import datetime
from typing import Any

from operators.domain.alerts import Alert
from operators.domain.delivery_status import DeliveryStatus
from operators.domain.handoffs import SyncLatency
from operators.domain.inventory_units import InventoryDelta, InventoryPosition
from operators.formats.timeparse import to_epoch_ms
from operators.ingest.accounting import DEAD_LETTERED, DUPLICATE, IGNORED, NORMALIZED, MessageOutcome
from operators.model import CanonicalEvent, DeadLetter

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
    "ingested_at",
)

DEAD_LETTER_COLUMNS = (
    "raw_ref",
    "topic",
    "partition",
    "offset",
    "key",
    "received_at",
    "ingested_at",
    "reason",
    "adapter",
    "error",
    "payload",
    "payload_b64",
)

INGEST_STATS_COLUMNS = (
    "run_id",
    "worker",
    "flush_seq",
    "flushed_at",
    "topic",
    "raw_in",
    "normalized",
    "events_out",
    "dead_lettered",
    "duplicates",
    "ignored",
    "mapping_warnings",
    "events_by_type",
    "dead_by_reason",
)


def event_row(event: CanonicalEvent, ingested_ms: int) -> tuple[object, ...]:
    lines = event.lines
    return (
        event.event_id,
        event.schema_version,
        str(event.event_type),
        str(event.source_kind),
        event.source_format,
        event.source_system,
        to_epoch_ms(event.occurred_at),
        None if event.recorded_at is None else to_epoch_ms(event.recorded_at),
        to_epoch_ms(event.received_at),
        str(event.time_precision),
        event.tz_assumed,
        event.delivery_id or "",
        event.order_id or "",
        event.shipment_ref or "",
        event.tracking_number or "",
        event.carrier or "",
        event.site or "",
        "" if event.milestone is None else str(event.milestone),
        event.status_code or "",
        event.reason_code or "",
        event.location or "",
        [line.sku for line in lines],
        [line.quantity for line in lines],
        [line.uom for line in lines],
        event.raw_ref,
        dict(event.attributes),
        ingested_ms,
    )


def dead_letter_row(letter: DeadLetter, ingested_ms: int) -> tuple[object, ...]:
    raw = letter.raw
    try:
        payload, is_b64 = raw.value.decode("utf-8"), False
    except UnicodeDecodeError:
        payload, is_b64 = base64.b64encode(raw.value).decode("ascii"), True
    return (
        raw.raw_ref,
        raw.topic,
        raw.partition,
        raw.offset,
        raw.key or "",
        to_epoch_ms(raw.received_at),
        ingested_ms,
        str(letter.reason),
        letter.adapter,
        letter.error,
        payload,
        is_b64,
    )


def ingest_stats_rows(
    outcomes: Iterable[MessageOutcome], run_id: str, worker: str, flush_seq: int, flushed_ms: int
) -> list[tuple[object, ...]]:
    """One row per topic summing the outcomes of one flush."""
    per_topic: dict[str, Counter[str]] = {}
    types: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {}
    for outcome in outcomes:
        counts = per_topic.setdefault(outcome.topic, Counter())
        counts["raw_in"] += 1
        counts[outcome.outcome] += 1
        counts["mapping_warnings"] += outcome.mapping_warnings
        counts["events_out"] += len(outcome.new_event_types)
        types.setdefault(outcome.topic, Counter()).update(outcome.new_event_types)
        if outcome.dead_reason:
            reasons.setdefault(outcome.topic, Counter())[outcome.dead_reason] += 1
    return [
        (
            run_id,
            worker,
            flush_seq,
            flushed_ms,
            topic,
            counts["raw_in"],
            counts[NORMALIZED],
            counts["events_out"],
            counts[DEAD_LETTERED],
            counts[DUPLICATE],
            counts[IGNORED],
            counts["mapping_warnings"],
            dict(types.get(topic, {})),
            dict(reasons.get(topic, {})),
        )
        for topic, counts in sorted(per_topic.items())
    ]


def _ms(value: datetime | None) -> int | None:
    return None if value is None else to_epoch_ms(value)


RowFn = Callable[[Any, int], tuple[object, ...]]


def field_row(columns: tuple[str, ...]) -> RowFn:
    """to_row for the domain rows, whose fields are the table's columns (datetimes -> epoch ms)."""

    getter = operator.attrgetter(*columns)
    times = tuple(index for index, column in enumerate(columns) if column.endswith(("_at", "_of")) or column == "at")

    def to_row(item: Any, ingested_ms: int) -> tuple[object, ...]:
        values = list(getter(item))
        for index in times:
            value = values[index]
            if value is not None:
                values[index] = to_epoch_ms(value)
        return tuple(values)

    return to_row


DELIVERY_STATUS_COLUMNS = tuple(field.name for field in fields(DeliveryStatus))
SYNC_LATENCY_COLUMNS = tuple(field.name for field in fields(SyncLatency))
ALERT_COLUMNS = tuple(field.name for field in fields(Alert))
INVENTORY_POSITION_COLUMNS = tuple(field.name for field in fields(InventoryPosition))
INVENTORY_DELTA_COLUMNS = tuple(field.name for field in fields(InventoryDelta))

delivery_status_row = field_row(DELIVERY_STATUS_COLUMNS)
sync_latency_row = field_row(SYNC_LATENCY_COLUMNS)
alert_row = field_row(ALERT_COLUMNS)
inventory_position_row = field_row(INVENTORY_POSITION_COLUMNS)
inventory_delta_row = field_row(INVENTORY_DELTA_COLUMNS)
