"""The ClickHouse sink: buffers rows per table and inserts them in large columnar batches.

Rows arrive as `SinkPacket`s (tuples already mapped by the stage that made them). A table's
buffer keeps only the newest version of each entity of a ReplacingMergeTree table (a batch of
events touches a delivery many times; only its last row survives anyway). The buffers are
inserted together when they hold `max_rows` (by the worker: backpressure), when the oldest row is
`flush_interval_s` old (by a timer thread, so rows never wait for the next packet: a quiet stream
after a burst), and at every epoch end (`snapshot`), so every row of an epoch is stored before
bytewax commits it. The timer inserts outside the buffers' lock: the worker goes on adding rows
(and the dataflow on moving) while it inserts; inserts themselves run one at a time, in the
order their rows were taken, and an epoch's flush waits for a timed insert in progress. A timed
insert that fails is raised in the worker at its next write or epoch end, so the epoch is not
committed without its rows. Replays after a crash re-send rows: entity tables collapse them
(ReplacingMergeTree), and `ingest_stats` rows are deterministic per offset block.

Inserts use `optimize_on_insert=0`: ReplacingMergeTree's insert-time dedup sorted and collapsed
every block again (two to four times the engine's insert cost, measured with chDB); the
collapsing still happens at merges and under FINAL.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from typing_extensions import override

from sinks.rows import TABLE_BY_NAME, Table
from sinks.store import StoreConfig, chdb_lock, connect
from web import metrics

log = logging.getLogger(__name__)

SinkItem = Any  # flows.packets.SinkPacket (sinks does not import flows)
_INSERT_SETTINGS = {"optimize_on_insert": 0}
# Inserted first in every flush: rows that normalize and dedup send at once. The others come from
# the domain stages, which wait for W (allowed_lateness_s behind) anyway.
_FIRST = {name: rank for rank, name in enumerate(("events", "dead_letters", "ingest_stats"))}


@dataclass(frozen=True)
class SinkConfig:
    store: StoreConfig
    run_id: str
    partitions: int = 1
    max_rows: int = 50_000
    flush_interval_s: float = 1.0
    insert_retries: int = 3
    # Only this process lists the sink's partitions (an embedded store admits one process).
    writer_process: int | None = None
    process_id: int = 0


@dataclass
class SinkCounters:
    """What the sink partitions of this process have written, for the summary and the benchmark."""

    inserts: int = 0
    rows: int = 0
    seconds: float = 0.0
    per_table: dict[str, int] = field(default_factory=dict)
    # hooks: called after each insert with (table, rows, seconds), and with the received_at (ms)
    # of each inserted event (Kafka timestamp to stored row: the live latency).
    on_insert: Callable[[str, int, float], None] | None = None
    on_events: Callable[[list[int], int], None] | None = None


class FlushPolicy:
    """When to insert: `max_rows` buffered, or the oldest buffered row `interval_s` old.
    A pure object over an explicit clock (seconds), so that it is tested without waiting."""

    __slots__ = ("buffered", "interval_s", "max_rows", "oldest")

    def __init__(self, max_rows: int, interval_s: float) -> None:
        self.max_rows = max_rows
        self.interval_s = interval_s
        self.buffered = 0
        self.oldest: float | None = None

    def added(self, rows: int, now: float) -> None:
        if rows and self.oldest is None:
            self.oldest = now
        self.buffered += rows

    def full(self) -> bool:
        return self.buffered >= self.max_rows

    def due(self, now: float) -> bool:
        if not self.buffered:
            return False
        return self.full() or (self.oldest is not None and now - self.oldest >= self.interval_s)

    def flushed(self) -> None:
        self.buffered = 0
        self.oldest = None


class _Buffer:
    """One table's rows waiting for an insert."""

    __slots__ = ("keyed", "rows", "table")

    def __init__(self, table: Table) -> None:
        self.table = table
        self.rows: list[Sequence[Any]] = []
        self.keyed: dict[Any, Sequence[Any]] = {}

    def add(self, rows: list[Sequence[Any]]) -> int:
        table = self.table
        if table.key is None or table.version is None:
            self.rows.extend(rows)
            return len(rows)
        keyed, key_of, version = self.keyed, table.key, table.version
        added = 0
        for row in rows:
            key = key_of(row)
            held = keyed.get(key)
            if held is None:
                added += 1
                keyed[key] = row
            elif row[version] >= held[version]:
                keyed[key] = row
        return added

    def take(self) -> list[Sequence[Any]]:
        rows = self.rows if self.table.key is None else list(self.keyed.values())
        self.rows, self.keyed = [], {}
        return rows


class _Accounting:
    """Prometheus counters from the `ingest_stats` rows a partition stores.

    A row holds the running totals of one (input partition, offset block, topic); the counters
    grow by the difference to the row last stored for that key, so /metrics equals the table,
    replayed rows included (they add nothing). Replayed dead letters grow their outcome but not
    messages_in: the growth of `replayed` is handed to the outcome calls (which outcome a replay
    ended in does not matter to the totals)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        # key -> (normalized, events_out, duplicates, ignored, replayed, dead letters by reason)
        self._last: dict[Any, tuple[int, int, int, int, int, dict[str, int]]] = {}

    def record(self, table: Table, rows: list[Sequence[Any]]) -> None:
        column = {name: index for index, name in enumerate(table.columns)}
        if table.key is None:
            return
        for row in rows:
            key = table.key(row)
            key = tuple(key) if isinstance(key, list) else key
            topic = str(row[column["topic"]])
            reasons = {str(reason): int(count) for reason, count in dict(row[column["dead_by_reason"]]).items()}
            now = (
                int(row[column["normalized"]]),
                int(row[column["events_out"]]),
                int(row[column["duplicates"]]),
                int(row[column["ignored"]]),
                int(row[column["replayed"]]),
                reasons,
            )
            before = self._last.get(key, (0, 0, 0, 0, 0, {}))
            self._last[key] = now
            grown: list[tuple[str, int, int, str]] = []  # (outcome, messages, events, dead reason)
            if now[0] > before[0] or now[1] > before[1]:
                grown.append(("normalized", now[0] - before[0], now[1] - before[1], ""))
            if now[2] > before[2]:
                grown.append(("duplicate", now[2] - before[2], 0, ""))
            if now[3] > before[3]:
                grown.append(("ignored", now[3] - before[3], 0, ""))
            for reason, count in reasons.items():
                if count > before[5].get(reason, 0):
                    grown.append(("dead_lettered", count - before[5].get(reason, 0), 0, reason))
            replays = max(now[4] - before[4], 0)
            for outcome, messages, events, reason in grown:
                replayed = min(replays, messages)
                replays -= replayed
                metrics.record_outcome(topic, outcome, reason, events, messages, replayed)


class ClickHousePartition(StatefulSinkPartition[SinkItem, None]):
    def __init__(
        self, config: SinkConfig, part: str, counters: SinkCounters, clock: Callable[[], float], *, timer: bool = True
    ) -> None:
        """`timer=False`: no timer thread (tests call `timed_flush` / `flush_if_due` with their clock)."""
        self._config = config
        self._part = part
        self._client = connect(config.store)
        self._db = config.store.database
        self._buffers: dict[str, _Buffer] = {}
        self._counters = counters
        self._chdb = chdb_lock() if config.store.embedded else None
        self._clock = clock
        self._policy = FlushPolicy(config.max_rows, config.flush_interval_s)
        self._accounting = _Accounting()
        self._lock = threading.Lock()  # buffers and policy: the bytewax worker adds, an insert takes
        self._inserting = threading.Lock()  # one insert at a time, in the order rows were taken
        self._timer_failure: Exception | None = None
        self._closed = threading.Event()
        self._timer = threading.Thread(target=self._tick, name=f"logisync-sink-{part}", daemon=True)
        if timer:
            self._timer.start()

    @override
    def write_batch(self, items: list[SinkItem]) -> None:
        self._raise_timer_failure()
        with self._lock:
            added = 0
            buffers = self._buffers
            for packet in items:
                for name, rows in packet.tables.items():
                    buffer = buffers.get(name)
                    if buffer is None:
                        buffer = buffers[name] = _Buffer(TABLE_BY_NAME[name])
                    added += buffer.add(rows)
            self._policy.added(added, self._clock())
            full = self._policy.full()
        if full:
            self._flush()  # the worker inserts a full buffer itself: memory stays bounded

    def flush_if_due(self, now: float) -> bool:
        """The timer's check: insert everything once the oldest row is old enough (or the buffers
        are full). Also called by tests with an explicit clock."""
        with self._inserting:
            with self._lock:
                if not self._policy.due(now):
                    return False
                taken = self._take()
            self._insert_all(taken)
        return True

    def _tick(self) -> None:
        period = min(max(self._config.flush_interval_s / 10, 0.01), 1.0)
        while not self._closed.wait(period) and self.timed_flush(self._clock()):
            pass

    def timed_flush(self, now: float) -> bool:
        """One tick of the timer: False once an insert failed (the worker raises it at its next
        write or epoch end, and the timer stops)."""
        try:
            self.flush_if_due(now)
        except Exception as exc:
            log.exception("timed flush of sink partition %s failed", self._part)
            self._timer_failure = exc
            return False
        return True

    def _raise_timer_failure(self) -> None:
        failure = self._timer_failure
        if failure is not None:
            raise RuntimeError(f"sink partition {self._part}: a timed insert failed: {failure}") from failure

    def _flush(self) -> None:
        """Insert every buffer, after any insert in progress."""
        with self._inserting:
            with self._lock:
                taken = self._take()
            self._insert_all(taken)

    def _take(self) -> list[tuple[Table, list[Sequence[Any]]]]:
        """Every buffer's rows, emptied (the caller holds the buffers' lock)."""
        if not self._policy.buffered:
            return []
        order = sorted(self._buffers, key=lambda name: (_FIRST.get(name, len(_FIRST)), name))
        taken = [(self._buffers[name].table, self._buffers[name].take()) for name in order]
        self._policy.flushed()
        return [(table, rows) for table, rows in taken if rows]

    def _insert_all(self, taken: list[tuple[Table, list[Sequence[Any]]]]) -> None:
        for table, rows in taken:
            # ingested_at: the wall clock when this table's insert starts (a pipeline metric only)
            self._insert(table, rows, time.time_ns() // 1_000_000)

    def _insert(self, table: Table, rows: list[Sequence[Any]], now_ms: int) -> None:
        columns = list(table.columns)
        data = [list(column) for column in zip(*rows, strict=True)]
        if table.clock is not None:
            columns.append(table.clock)
            data.append([now_ms] * len(rows))
        settings: dict[str, Any] = dict(_INSERT_SETTINGS)
        if table.name == "ingest_stats" and table.key is not None:
            # The same offset blocks re-sent after a crash (at-least-once) are the same block:
            # ClickHouse drops the repeat (non_replicated_deduplication_window, migration 0005).
            ordered = sorted(rows, key=table.key)
            digest = hashlib.sha256(msgspec.msgpack.encode(ordered)).hexdigest()
            settings["insert_deduplication_token"] = f"{table.name}:{digest[:32]}"
        started = time.perf_counter()
        for attempt in range(1, self._config.insert_retries + 1):
            try:
                self._do_insert(table.name, columns, data, settings)
                break
            except Exception as exc:
                if attempt == self._config.insert_retries:
                    raise RuntimeError(
                        f"insert into {self._db}.{table.name} failed after {attempt} attempts: {exc}"
                    ) from exc
                log.warning("insert into %s.%s failed (attempt %d): %s", self._db, table.name, attempt, exc)
                time.sleep(0.5 * 2**attempt)  # backoff before retrying a failed insert
        seconds = time.perf_counter() - started
        metrics.record_insert(table.name, len(rows), seconds)
        if table.name == "ingest_stats":
            self._accounting.record(table, rows)
        elif table.name == "stage_watermarks":
            metrics.record_stage_watermarks(rows, now_ms)  # a stage's W: the min over every partition's buckets
        counters = self._counters
        counters.inserts += 1
        counters.rows += len(rows)
        counters.seconds += seconds
        counters.per_table[table.name] = counters.per_table.get(table.name, 0) + len(rows)
        if counters.on_insert is not None:
            counters.on_insert(table.name, len(rows), seconds)
        if counters.on_events is not None and table.name == "events":
            counters.on_events(data[table.columns.index("received_at")], now_ms)

    def _do_insert(self, table: str, columns: list[str], data: list[list[Any]], settings: dict[str, Any]) -> None:
        def insert() -> None:
            self._client.insert(
                f"{self._db}.{table}", data, column_names=columns, column_oriented=True, settings=settings
            )

        if self._chdb is not None:
            with self._chdb:
                insert()
        else:
            insert()

    @override
    def snapshot(self) -> None:
        self._raise_timer_failure()
        self._flush()  # epoch barrier: everything of this epoch is stored before it commits

    @override
    def close(self) -> None:
        self._closed.set()
        self._flush()


class ClickHouseSink(FixedPartitionedSink[SinkItem, None]):
    """Upstream is a KeyedStream of SinkPackets; the key picks the sink partition.

    With an embedded store only `writer_process` lists the partitions (bytewax then places them
    on that process's workers): chDB admits one process, so it is the single writer.
    """

    def __init__(
        self, config: SinkConfig, counters: SinkCounters | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.counters = counters if counters is not None else SinkCounters()
        self.clock = clock

    @override
    def list_parts(self) -> list[str]:
        writer = self.config.writer_process
        if writer is not None and writer != self.config.process_id:
            return []
        return [f"ch-{index}" for index in range(self.config.partitions)]

    @override
    def part_fn(self, item_key: str) -> int:
        return zlib.crc32(item_key.encode("utf-8"))

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: None) -> ClickHousePartition:
        return ClickHousePartition(self.config, for_part, self.counters, self.clock)
