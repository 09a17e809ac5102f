"""No poison message (issue 10): a message with an absurd time, an absurd quantity or a delivery
of tens of thousands of events is handled like any other: a dead letter with a reason (and the
run goes on, every other table as without it), or events processed in time linear in their count.

The Kafka-only classes (an oversized dead letter, absurd broker timestamps across a restart) are
in test_kafka_faults.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.run import run_pipeline
from flows.settings import Settings
from flows.summary import RunSummary, read_summary
from operators.ingest.sanity import MAX_QUANTITY
from simulator.scenario import Scenario, SimConfig, simulate
from simulator.stress import epcis_document
from sinks.store import StoreConfig, connect, migrate, query_rows
from sources.replay import write_replay
from tests.flows.test_domain_replay import domain_tables

pytestmark = pytest.mark.clickhouse

Record = tuple[str, str | None, datetime, bytes]
EPCIS_TOPIC = "wms.epcis"


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return simulate(SimConfig(seed=17, deliveries=60))


def records_of(scenario: Scenario) -> list[Record]:
    return [(r.topic, r.key, r.received_at, r.value) for r in scenario.records]


def fresh_store(chdb_dsn: str, name: str) -> StoreConfig:
    store = StoreConfig(chdb_dsn, name)
    migrate(connect(store), store.database)
    return store


def replay(tmp_path: Path, records: list[Record], store: StoreConfig, scenario: Scenario | None = None) -> RunSummary:
    path = tmp_path / f"{store.database}.jsonl"
    with path.open("wb") as out:
        write_replay(out, records)
    master = None
    if scenario is not None:
        master = tmp_path / f"{store.database}-master"
        master.mkdir()
        (master / "products.csv").write_text(scenario.products_csv)
        (master / "sites.csv").write_text(scenario.sites_csv)
    settings = Settings(source=f"file:{path}", clickhouse=store.dsn, database=store.database, master_dir=master)
    result = run_pipeline(settings, progress=False)
    return read_summary(result.store, result.run_id, result.seconds)


def dead_letters(store: StoreConfig) -> list[tuple[Any, ...]]:
    return query_rows(
        connect(store),
        f"SELECT reason, adapter, error, received_at FROM {store.database}.dead_letters FINAL ORDER BY received_at",
    )


def test_absurd_received_at_is_a_schema_error_and_moves_no_watermark(
    tmp_path: Path, chdb_dsn: str, scenario: Scenario
) -> None:
    """Copies of a real message received in 9999 and in year 1: each is a schema_error dead letter;
    every computed table (alerts included: a watermark in 9999 would fire every SLA deadline) is
    the one of the same replay without them, and the accounting holds."""
    records = records_of(scenario)
    topic, key, _, value = records[len(records) // 2]
    absurd = [
        (topic, key, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), value),
        (topic, key, datetime(1, 1, 1, tzinfo=UTC), value),
    ]
    clean_store, poisoned_store = fresh_store(chdb_dsn, "poison_time_clean"), fresh_store(chdb_dsn, "poison_time")
    clean = replay(tmp_path, records, clean_store, scenario)
    poisoned = replay(tmp_path, [*records[:10], absurd[0], *records[10:], absurd[1]], poisoned_store, scenario)

    assert domain_tables(poisoned_store) == domain_tables(clean_store)
    assert domain_tables(clean_store)["alerts"], "the scenario has alerts a runaway watermark would change"
    new_letters = sorted(set(dead_letters(poisoned_store)) - set(dead_letters(clean_store)))
    assert [(reason, adapter) for reason, adapter, *_ in new_letters] == [("schema_error", "envelope")] * 2
    assert all("outside the accepted range 2000-01-01..2100-01-01" in error for _, _, error, _ in new_letters)
    assert poisoned.balanced and poisoned.total("raw_in") == clean.total("raw_in") + 2
    assert poisoned.total("dead_lettered") == clean.total("dead_lettered") + 2


def test_an_absurd_quantity_is_a_schema_error_and_the_run_goes_on(tmp_path: Path, chdb_dsn: str) -> None:
    """Two documents of 1e308 units of one position would sum to inf in the ledger: each is a
    schema_error dead letter naming the quantity; the sane document beside them is processed."""
    received = datetime(2024, 6, 3, 14, 6, tzinfo=UTC)
    records: list[Record] = [
        (EPCIS_TOPIC, "a", received, epcis_document(2, quantity=1e308, delivery="80000001")),
        (EPCIS_TOPIC, "b", received + timedelta(seconds=1), epcis_document(2, quantity=-1e308, delivery="80000002")),
        (EPCIS_TOPIC, "c", received + timedelta(seconds=2), epcis_document(3, quantity=MAX_QUANTITY, delivery="8003")),
    ]
    store = fresh_store(chdb_dsn, "poison_quantity")
    summary = replay(tmp_path, records, store)

    assert summary.balanced and summary.total("dead_lettered") == 2 and summary.total("events_out") == 3
    letters = dead_letters(store)
    assert [(reason, adapter) for reason, adapter, *_ in letters] == [("schema_error", "epcis")] * 2
    assert "line quantity 1e+308 of sku '10614141073464' is outside +-1e+12" in letters[0][2]
    assert "line quantity -1e+308" in letters[1][2]


def test_a_ten_thousand_event_document_of_one_delivery_is_processed_whole(tmp_path: Path, chdb_dsn: str) -> None:
    """One delivery with 10,000 events (today's profile: linear; it took 55 s and grew
    quadratically in the ledger's and the lifecycle's per-delivery sums). Every event is stored,
    the delivery's status is its last step's, and the in-flight quantity is the exact sum of the
    2,500 dispatches. Its time against the event count is `make bench`'s last table."""
    store = fresh_store(chdb_dsn, "poison_big_delivery")
    document = epcis_document(10_000, quantity=0.1)
    summary = replay(tmp_path, [(EPCIS_TOPIC, "80004711", datetime(2024, 6, 3, 14, 6, tzinfo=UTC), document)], store)

    assert summary.balanced and summary.total("events_out") == 10_000
    db = store.database
    client = connect(store)
    by_type = query_rows(client, f"SELECT event_type, count() FROM {db}.events FINAL GROUP BY 1 ORDER BY 1")
    assert by_type == [
        ("GOODS_RECEIVED", 2500),
        ("PACK_CONFIRMED", 2500),
        ("PICK_CONFIRMED", 2500),
        ("SHIPMENT_DISPATCHED", 2500),
    ]
    status = query_rows(client, f"SELECT delivery_id, status, version FROM {db}.delivery_status FINAL")
    assert status == [("80004711", "DISPATCHED", 10_000)]
    positions = query_rows(client, f"SELECT sku, in_flight_qty FROM {db}.inventory_positions FINAL")
    assert positions == [("10614141073464", 250.0)]  # 2,500 x 0.1
