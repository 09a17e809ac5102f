"""The ClickHouse sink: buffers rows per table and inserts them in large columnar batches.

A batch is flushed when it reaches `max_rows`, when its oldest row is `flush_interval` old
(checked in `write_batch`, style.md: close() may not run on abort), and at every epoch end
(`snapshot`), so every row of an epoch is stored before bytewax commits that epoch. Replays after
a crash re-send rows; the tables are ReplacingMergeTree on entity keys, so they collapse.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from typing_extensions import override

from operators.domain.alerts import Alert
from operators.domain.core import DomainOutput
from operators.domain.delivery_status import DeliveryStatus
from operators.domain.handoffs import SyncLatency
from operators.domain.inventory_units import InventoryDelta, InventoryPosition
from operators.ingest.accounting import MessageOutcome
from operators.model import CanonicalEvent, DeadLetter
from sinks import rows
from sinks.store import StoreConfig, chdb_lock, connect
from web import metrics

log = logging.getLogger(__name__)

# New canonical events, dead letters, domain rows, and per-message outcomes (summed into ingest_stats).
SinkItem = CanonicalEvent | DeadLetter | MessageOutcome | DomainOutput
RowFn = Callable[[Any, int], tuple[object, ...]]
# item type -> (table, columns, to_row(item, ingested_ms))
TABLES: dict[type, tuple[str, Sequence[str], RowFn]] = {
    CanonicalEvent: ("events", rows.EVENT_COLUMNS, rows.event_row),
    DeadLetter: ("dead_letters", rows.DEAD_LETTER_COLUMNS, rows.dead_letter_row),
    DeliveryStatus: ("delivery_status", rows.DELIVERY_STATUS_COLUMNS, rows.delivery_status_row),
    SyncLatency: ("sync_latency", rows.SYNC_LATENCY_COLUMNS, rows.sync_latency_row),
    Alert: ("alerts", rows.ALERT_COLUMNS, rows.alert_row),
    InventoryPosition: ("inventory_positions", rows.INVENTORY_POSITION_COLUMNS, rows.inventory_position_row),
    InventoryDelta: ("inventory_deltas", rows.INVENTORY_DELTA_COLUMNS, rows.inventory_delta_row),
}


@dataclass(frozen=True)
class SinkConfig:
    store: StoreConfig
    run_id: str
    partitions: int = 1
    max_rows: int = 50_000
    flush_interval_s: float = 1.0
    insert_retries: int = 3


@dataclass
class SinkCounters:
    """What a sink partition has written, for the run summary and the benchmark."""

    inserts: int = 0
    rows: int = 0
    seconds: float = 0.0
    per_table: dict[str, int] = field(default_factory=dict)


class _ClickHousePartition(StatefulSinkPartition[SinkItem, None]):
    def __init__(self, config: SinkConfig, part: str, counters: SinkCounters) -> None:
        self._config = config
        self._part = part
        self._client = connect(config.store)
        self._db = config.store.database
        self._buffers: dict[type, list[Any]] = {kind: [] for kind in TABLES}
        self._outcomes: list[MessageOutcome] = []
        self._buffered = 0
        self._oldest: float | None = None
        self._flush_seq = 0
        self._counters = counters
        self._lock = chdb_lock() if config.store.embedded else None

    @override
    def write_batch(self, items: list[SinkItem]) -> None:
        buffers = self._buffers
        for item in items:
            if isinstance(item, MessageOutcome):
                self._outcomes.append(item)
            else:
                buffers[type(item)].append(item)
        self._buffered += len(items)
        now = time.monotonic()
        if self._oldest is None:
            self._oldest = now
        if self._buffered >= self._config.max_rows or now - self._oldest >= self._config.flush_interval_s:
            self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        ingested_ms = time.time_ns() // 1_000_000  # ingested_at: wall clock, a pipeline metric only
        for kind, buffered in self._buffers.items():
            if buffered:
                table, columns, to_row = TABLES[kind]
                self._insert(table, columns, [to_row(item, ingested_ms) for item in buffered])
                self._buffers[kind] = []
        if self._outcomes:
            self._flush_seq += 1
            stats = rows.ingest_stats_rows(
                self._outcomes, self._config.run_id, self._part, self._flush_seq, ingested_ms
            )
            self._insert("ingest_stats", rows.INGEST_STATS_COLUMNS, stats)
            metrics.record_outcomes(self._outcomes)  # after the insert: /metrics matches ingest_stats
            self._outcomes = []
        self._buffered = 0
        self._oldest = None

    def _insert(self, table: str, columns: Sequence[str], rows: list[tuple[object, ...]]) -> None:
        data = [list(column) for column in zip(*rows, strict=True)]
        started = time.perf_counter()
        for attempt in range(1, self._config.insert_retries + 1):
            try:
                self._do_insert(table, columns, data)
                break
            except Exception as exc:
                if attempt == self._config.insert_retries:
                    raise RuntimeError(
                        f"insert into {self._db}.{table} failed after {attempt} attempts: {exc}"
                    ) from exc
                log.warning("insert into %s.%s failed (attempt %d): %s", self._db, table, attempt, exc)
                time.sleep(0.5 * 2**attempt)  # backoff before retrying a failed insert
        elapsed = time.perf_counter() - started
        metrics.record_insert(table, len(rows), elapsed)
        counters = self._counters
        counters.inserts += 1
        counters.rows += len(rows)
        counters.seconds += elapsed
        counters.per_table[table] = counters.per_table.get(table, 0) + len(rows)

    def _do_insert(self, table: str, columns: Sequence[str], data: list[list[Any]]) -> None:
        insert: Callable[[], Any] = lambda: self._client.insert(  # noqa: E731
            f"{self._db}.{table}", data, column_names=list(columns), column_oriented=True
        )
        if self._lock is not None:
            with self._lock:
                insert()
        else:
            insert()

    @override
    def snapshot(self) -> None:
        self._flush()  # epoch barrier: everything of this epoch is stored before it commits

    @override
    def close(self) -> None:
        self._flush()


class ClickHouseSink(FixedPartitionedSink[SinkItem, None]):
    """Upstream is a KeyedStream of SinkItem; the key picks the sink partition."""

    def __init__(self, config: SinkConfig, counters: SinkCounters | None = None) -> None:
        self.config = config
        self.counters = counters if counters is not None else SinkCounters()

    @override
    def list_parts(self) -> list[str]:
        return [f"ch-{index}" for index in range(self.config.partitions)]

    @override
    def part_fn(self, item_key: str) -> int:
        return zlib.crc32(item_key.encode("utf-8"))

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ClickHousePartition:
        return _ClickHousePartition(self.config, for_part, self.counters)
