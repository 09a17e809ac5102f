"""Dead-letter replay in Kafka mode, on the session's real broker: `logisync dlq replay
--bootstrap` produces each pending letter back onto its own topic (whole payload from the store,
original key and timestamp, header `logisync.replay_of`), and the live pipeline, resumed with its
state, reads them as replays: the accounting moves them, and their outcome replaces `produced`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from flows.cli import main
from flows.run import run_pipeline
from flows.settings import Settings
from simulator.scenario import SimConfig, simulate
from sinks.store import StoreConfig, connect, migrate, query_rows
from sources.kafka import replay_of
from sources.replay import write_replay
from tests.flows.test_kafka_pipeline import EVENT_SQL, Message, produce

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

GTIN = "00614141100019"


def test_replay_of_header_is_read_into_the_raw_message() -> None:
    assert replay_of([("logisync.replay_of", b"wms.epcis:2:17")]) == "wms.epcis:2:17"
    assert replay_of([("other", b"x")]) is None and replay_of([]) is None
    assert replay_of([("logisync.replay_of", None)]) is None


def run_file(tmp_path: Path, records: list[Message], master: Path, store: StoreConfig) -> None:
    """The reference: the same messages from a replay file, with the fixed master."""
    path = tmp_path / "replay.jsonl"
    with path.open("wb") as out:
        write_replay(out, records)
    settings = Settings(
        source=f"file:{path}", clickhouse=store.dsn, database=store.database, master_dir=master, unmapped="dead_letter"
    )
    run_pipeline(settings, progress=False)


def high_watermarks(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hw-{uuid.uuid4().hex}"})
    try:
        metadata = consumer.list_topics(timeout=10)
        return {
            (topic, index): consumer.get_watermark_offsets(TopicPartition(topic, index), timeout=10)[1]
            for topic in topics
            for index in metadata.topics[topic].partitions
        }
    finally:
        consumer.close()


def read_from(bootstrap: str, start: dict[tuple[str, int], int]) -> list[Any]:
    """Every message after the given offsets, up to the current end."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, index, offset) for (topic, index), offset in start.items()])
    out, ended = [], 0
    try:
        while ended < len(start):
            message = consumer.poll(10)
            assert message is not None, "timed out reading the replayed letters"
            if message.error():
                ended += 1  # partition EOF
                continue
            out.append(message)
    finally:
        consumer.close()
    return out


def test_letters_go_back_onto_their_topics_and_the_live_pipeline_accounts_for_them(
    kafka_bootstrap: str, chdb_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = simulate(SimConfig(seed=11, deliveries=25))
    records: list[Message] = [(r.topic, r.key, r.received_at, r.value) for r in sim.records]
    prefix = f"t{uuid.uuid4().hex[:8]}"
    mapping = produce(kafka_bootstrap, records, prefix, partitions=2)
    master = tmp_path / "master"
    master.mkdir()
    (master / "products.csv").write_text(sim.products_csv.replace(f",{GTIN},", ",,"))
    (master / "sites.csv").write_text(sim.sites_csv)
    store = StoreConfig(chdb_dsn, f"dlq_kafka_{uuid.uuid4().hex[:8]}")
    migrate(connect(store), store.database)
    settings = Settings(
        source="kafka",
        bootstrap=kafka_bootstrap,
        until_end=True,
        topic_adapters=mapping,
        clickhouse=store.dsn,
        database=store.database,
        master_dir=master,
        unmapped="dead_letter",
        recovery_dir=tmp_path / "recovery",
        epoch_interval_s=1,
        dead_letter_topic=f"{prefix}.dlq",
        alerts_topic=f"{prefix}.alerts",
    )
    run_pipeline(settings, progress=False)

    def rows(sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return query_rows(connect(store), sql.format(db=store.database), parameters)

    letters = {
        ref: (topic, key, received, payload)
        for ref, topic, key, received, payload in rows(
            "SELECT raw_ref, topic, key, toUnixTimestamp64Milli(received_at), payload FROM {db}.dead_letters FINAL "
            "WHERE reason = 'mapping_error'"
        )
    }
    assert letters and all(ref.startswith(f"{prefix}.wms.") for ref in letters)

    # Fix the master; replay through Kafka (the settings file is what the deployment uses).
    (master / "products.csv").write_text(sim.products_csv)
    config = tmp_path / "logisync.toml"
    topics = "\n".join(f'"{topic}" = "{adapter}"' for topic, adapter in mapping.items())
    config.write_text(f'unmapped = "dead_letter"\n\n[topics]\n{topics}\n')
    flags = ["--clickhouse", store.dsn, "--database", store.database, "--config", str(config)]
    before = high_watermarks(kafka_bootstrap, sorted(mapping))
    capsys.readouterr()
    assert main(["dlq", "replay", "--reason", "mapping_error", "--bootstrap", kafka_bootstrap, "--quiet", *flags]) == 0
    out = capsys.readouterr().out
    assert f"produced {len(letters):,} dead letters back onto their topics" in out

    # On the topics: the whole payload, the original key and timestamp, the header.
    produced = read_from(kafka_bootstrap, before)
    assert len(produced) == len(letters)
    for message in produced:
        headers = dict(message.headers())
        original = headers["logisync.replay_of"].decode()
        topic, key, received_ms, payload = letters[original]
        assert message.topic() == topic and message.value() == payload.encode()
        assert message.key() == (key.encode() if key else None)
        assert message.timestamp()[1] == received_ms
    # The letters are in flight: not pending, marked produced.
    replays = "SELECT outcome, count() FROM {db}.dead_letter_replays FINAL GROUP BY outcome ORDER BY outcome"
    assert rows(replays) == [("produced", len(letters))]
    assert rows("SELECT count() FROM {db}.dead_letter_status WHERE pending AND reason = 'mapping_error'") == [(0,)]
    # A second replay right away has nothing to produce.
    assert main(["dlq", "replay", "--reason", "mapping_error", "--bootstrap", kafka_bootstrap, *flags]) == 0
    assert capsys.readouterr().out.strip() == "nothing to replay: no pending dead letter matches"

    # The pipeline resumes (its state, its offsets) with the fixed master and reads the replays.
    run_pipeline(settings.replace(run_id=None), progress=False)
    per_topic = rows(
        "SELECT topic, sum(raw_in), sum(normalized) + sum(duplicates) + sum(ignored) + sum(dead_lettered), "
        "sum(replayed), sum(dead_lettered) - sum(replayed) FROM {db}.ingest_stats FINAL GROUP BY topic"
    )
    assert all(raw_in == outcomes - replayed for _, raw_in, outcomes, replayed, _ in per_topic)
    assert sum(row[1] for row in per_topic) == len(records)  # the replays are not new raw messages
    assert sum(row[3] for row in per_topic) == len(letters)
    outcomes = dict(rows(replays))
    assert sum(outcomes.values()) == len(letters) and set(outcomes) <= {"normalized", "duplicate"}
    # The events are those of a run with the fixed master, and keep the letters' raw_refs.
    reference = StoreConfig(chdb_dsn, f"dlq_kafka_ref_{uuid.uuid4().hex[:8]}")
    migrate(connect(reference), reference.database)
    run_file(tmp_path, records, master, reference)
    assert query_rows(connect(store), EVENT_SQL.format(db=store.database)) == query_rows(
        connect(reference), EVENT_SQL.format(db=reference.database)
    )
    refs = {"refs": tuple(letters)}
    replayed_refs = rows("SELECT DISTINCT raw_ref FROM {db}.events FINAL WHERE raw_ref IN %(refs)s", refs)
    assert len(replayed_refs) == outcomes.get("normalized", 0) > 0
    # Letters left per topic: the same as the reference run has.
    reference_left = dict(
        query_rows(
            connect(reference),
            f"SELECT topic, sum(dead_lettered) FROM {reference.database}.ingest_stats FINAL GROUP BY topic",
        )
    )
    assert {topic.removeprefix(f"{prefix}."): left for topic, *_, left in per_topic} == reference_left
