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

from operators.accounting import MessageOutcome
from operators.model import CanonicalEvent, DeadLetter
from sinks.rows import (
    DEAD_LETTER_COLUMNS,
    EVENT_COLUMNS,
    INGEST_STATS_COLUMNS,
    dead_letter_row,
    event_row,
    ingest_stats_rows,
)
from sinks.store import StoreConfig, chdb_lock, connect

log = logging.getLogger(__name__)

# New canonical events, dead letters, and per-message outcomes (summed into ingest_stats).
SinkItem = CanonicalEvent | DeadLetter | MessageOutcome


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
        self._events: list[CanonicalEvent] = []
        self._dead: list[DeadLetter] = []
        self._outcomes: list[MessageOutcome] = []
        self._oldest: float | None = None
        self._flush_seq = 0
        self._counters = counters
        self._lock = chdb_lock() if config.store.embedded else None

    @override
    def write_batch(self, items: list[SinkItem]) -> None:
        for item in items:
            if isinstance(item, CanonicalEvent):
                self._events.append(item)
            elif isinstance(item, DeadLetter):
                self._dead.append(item)
            else:
                self._outcomes.append(item)
        now = time.monotonic()
        if self._oldest is None:
            self._oldest = now
        buffered = len(self._events) + len(self._dead) + len(self._outcomes)
        if buffered >= self._config.max_rows or now - self._oldest >= self._config.flush_interval_s:
            self._flush()

    def _flush(self) -> None:
        if not (self._events or self._dead or self._outcomes):
            return
        ingested_ms = time.time_ns() // 1_000_000  # ingested_at: wall clock, a pipeline metric only
        if self._events:
            self._insert("events", EVENT_COLUMNS, [event_row(e, ingested_ms) for e in self._events])
        if self._dead:
            self._insert("dead_letters", DEAD_LETTER_COLUMNS, [dead_letter_row(d, ingested_ms) for d in self._dead])
        if self._outcomes:
            self._flush_seq += 1
            rows = ingest_stats_rows(self._outcomes, self._config.run_id, self._part, self._flush_seq, ingested_ms)
            self._insert("ingest_stats", INGEST_STATS_COLUMNS, rows)
        self._events, self._dead, self._outcomes = [], [], []
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
        counters = self._counters
        counters.inserts += 1
        counters.rows += len(rows)
        counters.seconds += time.perf_counter() - started
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
