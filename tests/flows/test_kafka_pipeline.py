"""The flow through a real Apache Kafka broker equals the file replay of the same messages."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from flows.run import run_pipeline
from flows.settings import Settings
from flows.summary import RunSummary, read_summary
from operators.formats.timeparse import to_epoch_ms
from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS
from simulator.scenario import SimConfig, simulate
from sinks.store import StoreConfig, connect, migrate, query_rows
from sources.replay import write_replay
from tests.flows.test_pipeline import messages
from tests.kafka_broker import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

Message = tuple[str, str | None, datetime, bytes]
COUNTS = ("raw_in", "normalized", "duplicates", "dead_lettered", "ignored", "events_out")


def keyed(records: Iterable[Message]) -> list[Message]:
    """Keys as producers set them: by delivery, so one delivery's messages (and their redeliveries)
    share a partition. The small replay is one delivery, except the feed without an adapter."""
    return [
        (topic, key or ("80001234" if topic != "wms.unknown_feed" else "x"), at, value)
        for topic, key, at, value in records
    ]


def produce(bootstrap: str, records: list[Message], prefix: str, partitions: int) -> dict[str, str]:
    """Produce onto `<prefix>.<topic>` topics; returns the topic map for the flow."""
    topics = sorted({topic for topic, *_ in records})
    mapping = {f"{prefix}.{t}": DEFAULT_TOPIC_ADAPTERS.get(t, "none") for t in topics}
    create_topics(bootstrap, {name: partitions for name in mapping} | {f"{prefix}.dlq": 1, f"{prefix}.alerts": 1})
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for topic, key, at, value in records:
        producer.produce(f"{prefix}.{topic}", value=value, key=key.encode() if key else None, timestamp=to_epoch_ms(at))
    assert producer.flush(30) == 0
    return mapping


def run_kafka(
    bootstrap: str, mapping: dict[str, str], prefix: str, store: StoreConfig, workers: int, master: Path | None = None
) -> RunSummary:
    settings = Settings(
        master_dir=master,
        source="kafka",
        bootstrap=bootstrap,
        until_end=True,
        topic_adapters=mapping,
        clickhouse=store.dsn,
        database=store.database,
        workers=workers,
        epoch_interval_s=1,
        dead_letter_topic=f"{prefix}.dlq",
        alerts_topic=f"{prefix}.alerts",
    )
    result = run_pipeline(settings, progress=False)
    return read_summary(result.store, result.run_id, result.seconds)


def run_file(tmp_path: Path, records: list[Message], store: StoreConfig, master: Path | None = None) -> RunSummary:
    path = tmp_path / "replay.jsonl"
    with path.open("wb") as out:
        write_replay(out, records)
    settings = Settings(
        source=f"file:{path}", clickhouse=store.dsn, database=store.database, epoch_interval_s=1, master_dir=master
    )
    result = run_pipeline(settings, progress=False)
    return read_summary(result.store, result.run_id, result.seconds)


def fresh_store(chdb_dsn: str) -> StoreConfig:
    config = StoreConfig(chdb_dsn, f"logisync_kafka_{uuid.uuid4().hex[:8]}")
    migrate(connect(config), config.database)
    return config


def unprefixed(summary: RunSummary, prefix: str) -> dict[str, dict[str, int]]:
    return {
        topic.removeprefix(f"{prefix}."): {key: counts[key] for key in COUNTS}
        for topic, counts in summary.per_topic.items()
    }


# Everything but where the raw message sat (topic name, partition, offset) must be identical.
EVENT_SQL = "SELECT * EXCEPT (ingested_at, raw_ref) FROM {db}.events FINAL ORDER BY event_id"
DEAD_SQL = (
    "SELECT replaceOne(topic, '{prefix}', ''), key, received_at, reason, adapter, replaceAll(error, '{prefix}', ''), "
    "payload "
    "FROM {db}.dead_letters FINAL ORDER BY payload, received_at"
)


def table(store: StoreConfig, sql: str, prefix: str = "") -> list[tuple[Any, ...]]:
    """Rows of a query, with the test's topic prefix (if any) stripped from topic names."""
    return query_rows(connect(store), sql.format(db=store.database, prefix=f"{prefix}." if prefix else "\\0"))


@pytest.fixture(scope="module")
def records() -> list[Message]:
    return keyed(messages())


def simulated() -> list[Message]:
    scenario = simulate(SimConfig(seed=5, deliveries=60))
    return [(r.topic, r.key, r.received_at, r.value) for r in scenario.records]


@pytest.mark.parametrize(("workers", "replay"), [(1, "small"), (2, "small"), (1, "simulated"), (2, "simulated")])
def test_kafka_replay_equals_file_replay(
    kafka_bootstrap: str, chdb_dsn: str, tmp_path: Path, records: list[Message], workers: int, replay: str
) -> None:
    records = records if replay == "small" else simulated()
    prefix = f"t{uuid.uuid4().hex[:8]}"
    mapping = produce(kafka_bootstrap, records, prefix, partitions=3)
    file_store, kafka_store = fresh_store(chdb_dsn), fresh_store(chdb_dsn)

    file_summary = run_file(tmp_path, records, file_store)
    kafka_summary = run_kafka(kafka_bootstrap, mapping, prefix, kafka_store, workers)

    assert unprefixed(kafka_summary, prefix) == unprefixed(file_summary, "")
    assert kafka_summary.balanced and kafka_summary.total("raw_in") == len(records)
    assert table(kafka_store, EVENT_SQL) == table(file_store, EVENT_SQL)
    assert table(kafka_store, DEAD_SQL, prefix) == table(file_store, DEAD_SQL)
    assert len(table(file_store, DEAD_SQL)) == file_summary.total("dead_lettered") > 0


def test_dead_letters_are_readable_from_their_topic(
    kafka_bootstrap: str, chdb_dsn: str, records: list[Message]
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    mapping = produce(kafka_bootstrap, records, prefix, partitions=1)
    run_kafka(kafka_bootstrap, mapping, prefix, fresh_store(chdb_dsn), workers=1)
    letters = consume_all(kafka_bootstrap, f"{prefix}.dlq")
    by_reason = sorted(
        (headers["logisync.reason"], headers["logisync.source_topic"].removeprefix(f"{prefix}."), value)
        for value, headers in letters
    )
    assert by_reason == [
        ("decode_error", "erp.sap.events", b"\xff\xfe not utf-8"),
        ("parse_error", "carrier.edi", b"GARBAGE*NOT*X12~"),
        ("parse_error", "erp.sap.events", b'{"specversion": "1.0", "type": '),
        ("unsupported", "wms.unknown_feed", b"{}"),
    ]
    assert all(headers["logisync.raw_ref"].startswith(prefix) for _, headers in letters)


def consume_all(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, str]]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    out: list[tuple[bytes, dict[str, str]]] = []
    try:
        while True:
            message = consumer.poll(10)
            assert message is not None, f"timed out reading {topic}"
            if message.error():
                break  # partition EOF: everything produced so far was read
            headers = {key: value.decode() for key, value in (message.headers() or [])}
            out.append((message.value(), headers))
    finally:
        consumer.close()
    return out


def test_alerts_are_readable_from_their_topic(kafka_bootstrap: str, chdb_dsn: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    mapping = produce(kafka_bootstrap, simulated(), prefix, partitions=2)
    store = fresh_store(chdb_dsn)
    run_kafka(kafka_bootstrap, mapping, prefix, store, workers=1)
    latest: dict[str, tuple[int, str]] = {}
    for value, headers in consume_all(kafka_bootstrap, f"{prefix}.alerts"):
        payload = orjson.loads(value)
        assert headers["logisync.rule"] == payload["rule"]
        if payload["version"] >= latest.get(payload["alert_id"], (0, ""))[0]:
            latest[payload["alert_id"]] = (payload["version"], payload["state"])
    stored = query_rows(
        connect(store), f"SELECT alert_id, version, state FROM {store.database}.alerts FINAL ORDER BY alert_id"
    )
    assert stored and sorted((a, v, s) for a, (v, s) in latest.items()) == [(a, int(v), s) for a, v, s in stored]


def test_three_kafka_runs_with_random_keys_give_the_file_replay_s_tables(
    kafka_bootstrap: str, chdb_dsn: str, tmp_path: Path
) -> None:
    """Issue 10: messages keyed at random (a redelivery lands on another partition than the first
    copy, so which copy a run reads first varies), 3 partitions, consumed 3 times into fresh
    stores: the same tables every time, and the file replay's."""
    scenario = simulate(SimConfig(seed=11, deliveries=40))
    rng = random.Random(3)
    records = [(r.topic, f"k{rng.randrange(10_000)}", r.received_at, r.value) for r in scenario.records]
    assert len({value for *_, value in records}) < len(records)  # the scenario has redeliveries
    prefix = f"t{uuid.uuid4().hex[:8]}"
    mapping = produce(kafka_bootstrap, records, prefix, partitions=3)
    master = tmp_path / "master"
    master.mkdir()
    (master / "products.csv").write_text(scenario.products_csv)
    (master / "sites.csv").write_text(scenario.sites_csv)

    file_store = fresh_store(chdb_dsn)
    file_summary = run_file(tmp_path, records, file_store, master)
    runs = []
    for _ in range(3):
        store = fresh_store(chdb_dsn)
        summary = run_kafka(kafka_bootstrap, mapping, prefix, store, workers=2, master=master)
        assert summary.balanced and summary.total("raw_in") == len(records)
        assert unprefixed(summary, prefix) == unprefixed(file_summary, "")
        runs.append(all_tables(store, prefix))
    assert runs[0] == runs[1] == runs[2]  # raw_ref included: the same topics, the same offsets
    assert sum(map(len, runs[0].values())) > 500 and runs[0]["alerts"]

    def without_raw_ref(tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
        return {name: rows for name, rows in tables.items() if name != "events"}

    assert without_raw_ref(runs[0]) == without_raw_ref(all_tables(file_store, ""))
    assert table(store, EVENT_SQL) == table(file_store, EVENT_SQL)


ALL_TABLES = {
    "events": "SELECT * EXCEPT (ingested_at) FROM {db}.events FINAL ORDER BY event_id",
    "dead_letters": DEAD_SQL,
    "delivery_status": "SELECT * FROM {db}.delivery_status FINAL ORDER BY delivery_id",
    "sync_latency": "SELECT * FROM {db}.sync_latency FINAL ORDER BY handoff, delivery_id",
    # A feed's alerts name its topic (and their id is made from it): the test's prefix is taken out.
    "alerts": (
        "SELECT if(startsWith(entity, 'topic:'), '', alert_id) AS id, * EXCEPT (alert_id, entity, details), "
        "replaceAll(entity, '{prefix}', '') AS topic_entity, replaceAll(details, '{prefix}', '') "
        "FROM {db}.alerts FINAL ORDER BY rule, topic_entity, handoff, due_at, id"
    ),
    "inventory_positions": "SELECT * FROM {db}.inventory_positions FINAL ORDER BY site, sku, uom",
}


def all_tables(store: StoreConfig, prefix: str) -> dict[str, list[tuple[Any, ...]]]:
    return {name: table(store, sql, prefix) for name, sql in ALL_TABLES.items()}
