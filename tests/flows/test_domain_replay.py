"""Lifecycle, latency, alerts and inventory through the whole flow, checked three ways:
against what the simulator planted, against an independent SQL recomputation from `events`,
and against itself (worker count, arrival order shuffled within the allowed lateness)."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.run import run_pipeline
from flows.settings import Settings
from simulator.scenario import Scenario, SimConfig, simulate
from sinks.store import StoreConfig, connect, migrate, query_rows
from sources.replay import write_replay

pytestmark = pytest.mark.clickhouse

SEED, DELIVERIES = 13, 150
DOMAIN_TABLES = {
    "delivery_status": "delivery_id",
    "sync_latency": "handoff, delivery_id",
    "alerts": "alert_id",
    "inventory_positions": "site, sku, uom",
}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return simulate(SimConfig(seed=SEED, deliveries=DELIVERIES))


def write(tmp_path: Path, scenario: Scenario, records: list[Any] | None = None) -> tuple[Path, Path]:
    replay, master = tmp_path / "replay.jsonl", tmp_path / "master"
    master.mkdir(exist_ok=True)
    (master / "products.csv").write_text(scenario.products_csv)
    (master / "sites.csv").write_text(scenario.sites_csv)
    with replay.open("wb") as out:
        write_replay(out, ((r.topic, r.key, r.received_at, r.value) for r in records or scenario.records))
    return replay, master


def run(replay: Path, master: Path, store: StoreConfig, workers: int = 1, processes: int = 1) -> None:
    settings = Settings(
        source=f"file:{replay}",
        clickhouse=store.dsn,
        database=store.database,
        master_dir=master,
        workers=workers,
        processes=processes,
    )
    run_pipeline(settings, progress=False)


def rows(store: StoreConfig, sql: str) -> list[tuple[Any, ...]]:
    return query_rows(connect(store), sql.format(db=store.database))


def domain_tables(store: StoreConfig) -> dict[str, list[tuple[Any, ...]]]:
    """Every computed table, and `events` but for where a message sat in the file (a shuffled
    replay moves it) and when its row was inserted."""
    tables = {
        table: rows(store, f"SELECT * FROM {{db}}.{table} FINAL ORDER BY {key}") for table, key in DOMAIN_TABLES.items()
    }
    tables["events"] = rows(store, "SELECT * EXCEPT (raw_ref, ingested_at) FROM {db}.events FINAL ORDER BY event_id")
    return tables


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory, scenario: Scenario, chdb_dsn: str) -> StoreConfig:
    store = StoreConfig(chdb_dsn, "logisync_domain_base")
    migrate(connect(store), store.database)
    replay, master = write(tmp_path_factory.mktemp("domain"), scenario)
    run(replay, master, store)
    return store


def test_breaches_and_missing_handoffs_are_the_planted_ones(replayed: StoreConfig, scenario: Scenario) -> None:
    facts = scenario.expected.facts
    got = dict(rows(replayed, "SELECT handoff, countIf(breached) FROM {db}.sync_latency FINAL GROUP BY handoff"))
    assert got == {name: facts[f"breached_{name}"] for name in got} and len(got) == 4
    per_handoff = dict(
        rows(
            replayed,
            "SELECT handoff, count() FROM {db}.sync_latency FINAL WHERE latency_ms IS NOT NULL GROUP BY handoff",
        )
    )
    assert per_handoff == {name: facts[f"handoff_{name}"] for name in per_handoff}
    missing = rows(
        replayed,
        "SELECT handoff, count() FROM {db}.alerts FINAL WHERE rule = 'handoff_missing' AND state = 'open' "
        "GROUP BY handoff",
    )
    assert missing == [("ship_to_erp", facts["missing_ship_to_erp"])]
    assert rows(replayed, "SELECT count() FROM {db}.alerts FINAL WHERE rule = 'orphan_carrier_event'") == [(0,)]
    statuses = dict(rows(replayed, "SELECT status, count() FROM {db}.delivery_status FINAL GROUP BY status"))
    assert sum(statuses.values()) == facts["deliveries"]


def test_no_alert_for_handoffs_well_inside_their_sla(replayed: StoreConfig) -> None:
    inside = rows(
        replayed,
        "SELECT count() FROM {db}.alerts AS a FINAL INNER JOIN {db}.sync_latency AS f FINAL "
        "ON a.delivery_id = f.delivery_id AND a.handoff = f.handoff "
        "WHERE f.latency_ms IS NOT NULL AND f.latency_ms < f.sla_ms / 2",
    )
    assert inside == [(0,)]


def test_latency_facts_equal_an_independent_recomputation_from_events(replayed: StoreConfig) -> None:
    """design.md 3.3, in SQL over the stored events: from_at = earliest from-time, to_at = earliest
    to-time, latency = to_at - from_at, to the millisecond."""
    recomputed = rows(
        replayed,
        """
        WITH e AS (SELECT * FROM {db}.events FINAL WHERE delivery_id != '')
        SELECT handoff, delivery_id, from_at, to_at, dateDiff('millisecond', from_at, to_at) FROM (
            SELECT 'release_to_wms' AS handoff, delivery_id,
                   minIf(occurred_at, event_type = 'ORDER_RELEASED' AND source_kind = 'erp') AS from_at,
                   minIf(coalesce(recorded_at, received_at),
                         event_type IN ('PICK_CONFIRMED', 'PACK_CONFIRMED', 'SHIPMENT_DISPATCHED')
                         AND source_kind = 'wms') AS to_at,
                   countIf(event_type = 'ORDER_RELEASED') AS has_from
            FROM e GROUP BY delivery_id
            UNION ALL
            SELECT 'ship_to_erp', delivery_id,
                   minIf(occurred_at, event_type = 'SHIPMENT_DISPATCHED' AND source_kind = 'wms'),
                   minIf(coalesce(recorded_at, received_at), event_type = 'GOODS_ISSUE_POSTED' AND source_kind = 'erp'),
                   countIf(event_type = 'SHIPMENT_DISPATCHED')
            FROM e GROUP BY delivery_id
            UNION ALL
            SELECT 'ship_to_invoice', delivery_id,
                   minIf(occurred_at, event_type = 'GOODS_ISSUE_POSTED' AND source_kind = 'erp'),
                   minIf(coalesce(recorded_at, received_at), event_type = 'INVOICE_POSTED' AND source_kind = 'erp'),
                   countIf(event_type = 'GOODS_ISSUE_POSTED')
            FROM e GROUP BY delivery_id
        )
        WHERE has_from > 0 AND to_at > toDateTime64(0, 3, 'UTC')
        ORDER BY handoff, delivery_id
        """,
    )
    stored = rows(
        replayed,
        "SELECT handoff, delivery_id, from_at, to_at, latency_ms FROM {db}.sync_latency FINAL "
        "WHERE handoff != 'dispatch_to_pickup' AND latency_ms IS NOT NULL ORDER BY handoff, delivery_id",
    )
    assert len(stored) > 3 * DELIVERIES * 0.9
    assert stored == recomputed


def test_final_inventory_positions_show_exactly_the_planted_discrepancies(
    replayed: StoreConfig, scenario: Scenario
) -> None:
    unexplained = rows(
        replayed,
        "SELECT site, sku, unexplained_delta FROM {db}.inventory_positions FINAL WHERE unexplained_delta != 0 "
        "ORDER BY site, sku",
    )
    planted = sorted(
        (site, sku, float(qty))
        for site, skus in scenario.expected.inventory_unexplained.items()
        for sku, qty in skus.items()
    )
    assert unexplained == planted and planted
    alerted = rows(
        replayed,
        "SELECT site, sku FROM {db}.alerts FINAL WHERE rule = 'inventory_mismatch' AND state = 'open' "
        "ORDER BY site, sku",
    )
    assert alerted == [(site, sku) for site, sku, _ in planted]


def test_two_workers_give_the_same_domain_tables(
    replayed: StoreConfig, scenario: Scenario, tmp_path: Path, chdb_dsn: str
) -> None:
    store = StoreConfig(chdb_dsn, "logisync_domain_w2")
    migrate(connect(store), store.database)
    replay, master = write(tmp_path, scenario)
    run(replay, master, store, workers=2)
    assert domain_tables(store) == domain_tables(replayed)


def test_two_processes_give_the_same_tables(
    replayed: StoreConfig, scenario: Scenario, tmp_path: Path, chdb_dsn: str
) -> None:
    store = StoreConfig(chdb_dsn, "logisync_domain_p2")
    migrate(connect(store), store.database)
    replay, master = write(tmp_path, scenario)
    run(replay, master, store, processes=2)
    tables = domain_tables(store)
    assert tables == domain_tables(replayed)
    assert all(tables.values()) and len(tables["events"]) > 1000


def test_arrival_order_shuffled_within_the_lateness_gives_the_same_tables(
    replayed: StoreConfig, scenario: Scenario, tmp_path: Path, chdb_dsn: str
) -> None:
    rng = random.Random(5)
    lateness = timedelta(minutes=5)
    shuffled = sorted(scenario.records, key=lambda r: r.received_at + rng.random() * lateness)
    assert shuffled != scenario.records
    store = StoreConfig(chdb_dsn, "logisync_domain_shuffled")
    migrate(connect(store), store.database)
    replay, master = write(tmp_path, scenario, shuffled)
    run(replay, master, store)
    assert domain_tables(store) == domain_tables(replayed)


def test_hourly_rollups_agree_with_the_tables(replayed: StoreConfig) -> None:
    """The materialized views used by dashboards, checked against the exact tables."""
    rollup = rows(
        replayed,
        "SELECT site, sum(positions_changed) FROM {db}.inventory_site_hourly_summary GROUP BY site ORDER BY site",
    )
    exact = rows(
        replayed,
        "SELECT site, count() FROM (SELECT DISTINCT site, sku, uom, toStartOfHour(at) FROM {db}.inventory_deltas) "
        "GROUP BY site ORDER BY site",
    )
    assert rollup == exact and rollup
    rollup_latency = rows(
        replayed,
        "SELECT handoff, site, hour, facts, breaches, p50_ms, p95_ms, p99_ms FROM {db}.sync_latency_percentiles "
        "ORDER BY handoff, site, hour",
    )
    exact_latency = rows(
        replayed,
        "SELECT handoff, site, toStartOfHour(from_at) AS hour, count(), countIf(breached), "
        "quantileExact(0.5)(latency_ms), quantileExact(0.95)(latency_ms), quantileExact(0.99)(latency_ms) "
        "FROM {db}.sync_latency FINAL WHERE latency_ms IS NOT NULL GROUP BY handoff, site, hour "
        "ORDER BY handoff, site, hour",
    )
    assert rollup_latency == exact_latency and rollup_latency
