"""The ClickHouse sink: timed flushes (an explicit clock), compaction of entity rows, the epoch
barrier, and accounting metrics that equal the stored rows."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flows.packets import SinkPacket
from operators.domain.delivery_status import DeliveryStatus
from operators.ingest.accounting import IngestStats
from sinks.clickhouse import ClickHousePartition, FlushPolicy, SinkConfig, SinkCounters
from sinks.rows import TABLES
from sinks.store import StoreConfig, connect, migrate, query_rows

pytestmark = pytest.mark.clickhouse


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def status(delivery_id: str, version: int) -> DeliveryStatus:
    return DeliveryStatus(delivery_id, "", "", "RELEASED", None, None, None, None, None, None, None, False, version)


def packet(*records: Any) -> SinkPacket:
    tables: dict[str, list[Any]] = {}
    for record in records:
        table = TABLES[type(record)]
        tables.setdefault(table.name, []).append(table.to_row(record))
    return SinkPacket(tables)


@pytest.fixture
def store(chdb_dsn: str, request: pytest.FixtureRequest) -> StoreConfig:
    config = StoreConfig(chdb_dsn, f"logisync_sink_{request.node.name[-20:].replace('[', '_').replace(']', '')}")
    migrate(connect(config), config.database)
    return config


def count(store: StoreConfig, table: str) -> int:
    return int(query_rows(connect(store), f"SELECT count() FROM {store.database}.{table}")[0][0])


def test_the_policy_flushes_on_age_or_size_only() -> None:
    policy = FlushPolicy(max_rows=10, interval_s=0.5)
    assert not policy.due(100.0)  # nothing buffered
    policy.added(3, 100.0)
    assert not policy.due(100.49)
    assert policy.due(100.5)
    policy.flushed()
    policy.added(10, 200.0)
    assert policy.due(200.0)  # full


def test_rows_are_stored_on_the_timer_without_new_rows(store: StoreConfig) -> None:
    clock = Clock()
    config = SinkConfig(store=store, run_id="t", max_rows=1000, flush_interval_s=0.5)
    partition = ClickHousePartition(config, "ch-0", SinkCounters(), clock, timer=False)
    try:
        partition.write_batch([packet(status("D1", 1), status("D2", 1))])
        assert not partition.flush_if_due(0.4)
        assert count(store, "delivery_status") == 0
        clock.now = 0.6  # no new rows arrive: the age alone triggers the insert
        assert partition.flush_if_due(clock.now)
        assert count(store, "delivery_status") == 2
        assert not partition.flush_if_due(5.0)  # nothing left
    finally:
        partition.close()


def test_only_the_newest_version_of_an_entity_is_inserted(store: StoreConfig) -> None:
    counters = SinkCounters()
    partition = ClickHousePartition(SinkConfig(store=store, run_id="t"), "ch-0", counters, Clock())
    try:
        partition.write_batch([packet(status("D1", 1), status("D1", 3), status("D2", 1))])
        partition.write_batch([packet(status("D1", 2))])  # an older version arriving later
        partition.snapshot()  # the epoch barrier
    finally:
        partition.close()
    rows = query_rows(connect(store), f"SELECT delivery_id, version FROM {store.database}.delivery_status ORDER BY 1")
    assert rows == [("D1", 3), ("D2", 1)]
    assert counters.per_table == {"delivery_status": 2}


def test_accounting_metrics_grow_by_the_difference_of_block_rows(store: StoreConfig) -> None:
    from web import metrics

    def stats(messages: int, normalized: int, dead: int) -> IngestStats:
        return IngestStats(
            "t:0",
            0,
            "wms.edi",
            "run",
            messages,
            messages,
            normalized,
            normalized,
            dead,
            0,
            0,
            0,
            {},
            {"parse_error": dead},
            {},
        )

    before = metrics.PIPELINE_REGISTRY.get_sample_value("logisync_messages_in_total", {"topic": "wms.edi"}) or 0.0
    partition = ClickHousePartition(SinkConfig(store=store, run_id="t"), "ch-0", SinkCounters(), Clock())
    try:
        partition.write_batch([packet(stats(5, 4, 1))])
        partition.snapshot()
        partition.write_batch([packet(stats(9, 7, 2))])  # the same block, fuller
        partition.snapshot()
        partition.write_batch([packet(stats(9, 7, 2))])  # a replayed epoch re-sends it: adds nothing
        partition.snapshot()
    finally:
        partition.close()
    after = metrics.PIPELINE_REGISTRY.get_sample_value("logisync_messages_in_total", {"topic": "wms.edi"}) or 0.0
    assert after - before == 9
    rows = query_rows(connect(store), f"SELECT sum(raw_in) FROM {store.database}.ingest_stats FINAL")
    assert rows == [(9,)]


class SlowInsert:
    """Stands for a slow insert: blocks until released, records the tables it inserted."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.started = threading.Event()
        self.release = threading.Event()
        self.tables: list[str] = []

    def __call__(self, table: str, *args: Any) -> None:
        self.started.set()
        assert self.release.wait(30)
        self.tables.append(table)
        self.real(table, *args)


def test_a_timed_insert_does_not_hold_up_the_worker_and_the_epoch_waits_for_it(store: StoreConfig) -> None:
    clock = Clock()
    config = SinkConfig(store=store, run_id="t", max_rows=1000, flush_interval_s=0.5)
    partition = ClickHousePartition(config, "ch-0", SinkCounters(), clock, timer=False)
    slow = SlowInsert(partition._do_insert)
    partition._do_insert = slow  # type: ignore[method-assign]
    try:
        partition.write_batch([packet(status("D1", 1))])
        timer = threading.Thread(target=partition.timed_flush, args=(1.0,))  # as the timer thread does
        timer.start()
        assert slow.started.wait(30)  # the timed insert of D1 is in progress ...
        partition.write_batch([packet(status("D2", 1))])  # ... and the worker still adds rows
        epoch = threading.Thread(target=partition.snapshot)
        epoch.start()
        epoch.join(0.2)
        assert epoch.is_alive()  # the epoch's flush waits for the insert in progress
        slow.release.set()
        timer.join(30)
        epoch.join(30)
        assert not epoch.is_alive()
        rows = query_rows(connect(store), f"SELECT delivery_id FROM {store.database}.delivery_status ORDER BY 1")
        assert rows == [("D1",), ("D2",)]
        assert slow.tables == ["delivery_status", "delivery_status"]  # D1's insert, then D2's
    finally:
        slow.release.set()
        partition.close()


def test_a_failed_timed_insert_fails_the_worker_at_its_next_write(store: StoreConfig) -> None:
    clock = Clock()
    config = SinkConfig(store=store, run_id="t", max_rows=1000, flush_interval_s=0.5, insert_retries=1)
    partition = ClickHousePartition(config, "ch-0", SinkCounters(), clock, timer=False)

    def broken(table: str, *args: Any) -> None:
        raise OSError(f"disk full inserting {table}")

    partition._do_insert = broken  # type: ignore[method-assign]
    try:
        partition.write_batch([packet(status("D1", 1))])
        assert not partition.timed_flush(1.0)  # the timer stops ...
        with pytest.raises(RuntimeError, match=r"a timed insert failed.*disk full inserting delivery_status"):
            partition.write_batch([packet(status("D2", 1))])  # ... and the worker fails: no epoch commits
        with pytest.raises(RuntimeError, match="a timed insert failed"):
            partition.snapshot()
    finally:
        partition._closed.set()


def test_rows_that_do_not_wait_for_w_are_inserted_first_in_a_flush(store: StoreConfig) -> None:
    partition = ClickHousePartition(SinkConfig(store=store, run_id="t"), "ch-0", SinkCounters(), Clock())
    inserted: list[str] = []
    partition._do_insert = lambda table, *_: inserted.append(table)  # type: ignore[method-assign]
    status_row = TABLES[DeliveryStatus].to_row(status("D1", 1))
    tables = {"alerts": [("a",)], "delivery_status": [status_row], "dead_letters": [("d",)], "events": [("e",)]}
    try:
        partition.write_batch([SinkPacket(tables)])
        partition.snapshot()
    finally:
        partition._closed.set()
    assert inserted == ["events", "dead_letters", "alerts", "delivery_status"]
