"""A crash mid-replay and a resume from the recovery snapshot give the same tables as one run.

SLA deadlines, buffered carrier events, dedup ids and inventory positions live in the snapshot,
so the resumed run fires exactly the alerts the uninterrupted run fires."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, run_main

from flows.domain_config import build_domain_config
from flows.pipeline import FlowConfig, build_flow
from flows.settings import Settings
from flows.topology import Topology
from operators.formats.master_csv import parse_master
from operators.formats.timeparse import to_epoch_ms
from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS, Normalizer
from operators.model import RawMessage
from simulator.scenario import SimConfig, simulate
from sinks.clickhouse import ClickHouseSink, SinkConfig
from sinks.store import StoreConfig, connect, migrate, query_rows
from sources.batch import RawBatch

pytestmark = pytest.mark.clickhouse

TABLES = {
    "events": "event_id",
    "delivery_status": "delivery_id",
    "sync_latency": "handoff, delivery_id",
    "alerts": "alert_id",
    "inventory_positions": "site, sku, uom",
}


SOURCE = "replay"


def batches(raws: list[RawMessage], size: int = 40) -> list[RawBatch]:
    """The messages as the replay source batches them, the last batch marked done."""
    out = []
    for start in range(0, len(raws), size):
        chunk = raws[start : start + size]
        out.append(RawBatch(SOURCE, chunk, max(to_epoch_ms(raw.received_at) for raw in chunk)))
    out.append(RawBatch(SOURCE, [], None, True))
    return out


def flow_for(store: StoreConfig, items: list[Any], recovery: bool) -> Dataflow:
    scenario = simulate(SimConfig(seed=21, deliveries=60))
    master = parse_master(scenario.products_csv, scenario.sites_csv)
    config = FlowConfig(
        topology=Topology(sources=(SOURCE,)),
        run_id="recovery-test",
        domain=build_domain_config(Settings()),
        master=master,
        recovery=recovery,
    )
    return build_flow(
        TestingSource(items),
        Normalizer(DEFAULT_TOPIC_ADAPTERS, master),
        ClickHouseSink(SinkConfig(store=store, run_id="recovery-test")),
        config,
    )


def tables(store: StoreConfig) -> dict[str, list[tuple[Any, ...]]]:
    client = connect(store)
    return {
        table: query_rows(
            client,
            f"SELECT * EXCEPT ({'ingested_at' if table == 'events' else 'version'}) "
            f"FROM {store.database}.{table} FINAL ORDER BY {key}",
        )
        for table, key in TABLES.items()
    }


def test_resume_after_a_crash_gives_the_same_tables(tmp_path: Path, chdb_dsn: str) -> None:
    scenario = simulate(SimConfig(seed=21, deliveries=60))
    raws = [RawMessage(r.topic, 0, offset, r.key, r.value, r.received_at) for offset, r in enumerate(scenario.records)]
    once = StoreConfig(chdb_dsn, "logisync_recovery_once")
    crashed = StoreConfig(chdb_dsn, "logisync_recovery_crashed")
    for store in (once, crashed):
        migrate(connect(store), store.database)

    run_main(flow_for(once, batches(raws), recovery=False), epoch_interval=timedelta(0))
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    items = batches(raws)
    middle = len(items) // 2
    flow = flow_for(crashed, [*items[:middle], TestingSource.ABORT(), *items[middle:]], recovery=True)
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    half = tables(crashed)
    assert 0 < len(half["events"]) < len(tables(once)["events"])  # it really stopped half way
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)  # resume

    expected, got = tables(once), tables(crashed)
    assert {name: len(rows) for name, rows in got.items()} == {name: len(rows) for name, rows in expected.items()}
    assert got == expected
    open_alerts = [row for row in got["alerts"] if row[8] == "open"]
    assert open_alerts, "the scenario has open alerts whose deadlines crossed the crash"
