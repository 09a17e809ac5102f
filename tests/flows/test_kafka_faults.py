"""Kafka faults (issue 10), each through a real broker: a dead letter larger than its topic takes,
absurd broker timestamps across a restart, topics recreated under a recovery store, a run that
reads nothing. The broker outage tests (stop/start, give up, Ctrl-C) are in test_broker_outage.py."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from flows.run import run_pipeline
from flows.settings import Settings
from flows.summary import RunSummary, read_summary
from sinks.store import StoreConfig, connect, query_rows
from tests.flows.test_kafka_pipeline import consume_all, fresh_store
from tests.kafka_broker import create_topics, delete_topics

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

LONG_MAX = str(2**63 - 1)
YEAR_9999_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z
RECEIVED_MS = 1_717_423_560_000  # 2024-06-03T14:06:00Z
NOT_X12 = b"NOT*AN*INTERCHANGE~"


def x12_214(control: int) -> bytes:
    """A small valid X12 214 (one carrier status for PRO `PRO<control>`)."""
    segments = [
        "ISA*00*          *00*          *02*SCAC           *ZZ*SHIPPER        *240603*1406*U*00401*"
        f"{control:09d}*0*P*>",
        f"GS*QM*SCAC*SHIPPER*20240603*1406*{control}*X*004010",
        "ST*214*0001",
        f"B10*PRO{control}*SHIP{control}*SCAC",
        "AT7*X6*NS***20240603*1400*LT",
        "SE*4*0001",
        f"GE*1*{control}",
        f"IEA*1*{control:09d}",
    ]
    return ("~".join(segments) + "~").encode()


def produce(bootstrap: str, topic: str, values: list[tuple[bytes, int]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "message.max.bytes": 2_000_000})
    for value, timestamp in values:
        producer.produce(topic, value=value, key=b"k", timestamp=timestamp)
    assert producer.flush(30) == 0


def run_kafka(
    bootstrap: str, prefix: str, store: StoreConfig, recovery: Path | None = None, **extra: Any
) -> RunSummary:
    settings = Settings(
        source="kafka",
        bootstrap=bootstrap,
        until_end=True,
        topic_adapters={f"{prefix}.carrier.edi": "x12"},
        clickhouse=store.dsn,
        database=store.database,
        epoch_interval_s=1,
        dead_letter_topic=f"{prefix}.dlq",
        alerts_topic=f"{prefix}.alerts",
        recovery_dir=recovery,
        **extra,
    )
    result = run_pipeline(settings, progress=False)
    return read_summary(result.store, result.run_id, result.seconds)


def test_a_dead_letter_larger_than_its_topic_takes_is_published_truncated_and_stored_whole(
    kafka_bootstrap: str, chdb_dsn: str, tmp_path: Path
) -> None:
    """The dead-letter topic takes 20 kB; a 300 kB broken interchange is published cut to what the
    topic takes, with `logisync.truncated` = its size, and stored whole; a restart on the same
    recovery store goes on (before: the produce failed the run on every restart)."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {f"{prefix}.carrier.edi": 1, f"{prefix}.alerts": 1})
    limit = 20_000
    create_topics(kafka_bootstrap, {f"{prefix}.dlq": 1}, config={"max.message.bytes": str(limit)})
    huge = NOT_X12 + b"X" * (300_000 - len(NOT_X12))
    produce(kafka_bootstrap, f"{prefix}.carrier.edi", [(huge, RECEIVED_MS), (x12_214(1), RECEIVED_MS)])
    store, recovery = fresh_store(chdb_dsn), tmp_path / "recovery"

    first = run_kafka(kafka_bootstrap, prefix, store, recovery)
    assert first.balanced and first.total("raw_in") == 2 and first.total("dead_lettered") == 1
    letters = consume_all(kafka_bootstrap, f"{prefix}.dlq")
    assert len(letters) == 1
    value, headers = letters[0]
    assert headers["logisync.truncated"] == "300000" and headers["logisync.reason"] == "parse_error"
    assert 0 < len(value) <= limit and huge.startswith(value)
    stored = query_rows(connect(store), f"SELECT length(payload), reason FROM {store.database}.dead_letters FINAL")
    assert stored == [(300_000, "parse_error")]

    produce(kafka_bootstrap, f"{prefix}.carrier.edi", [(x12_214(2), RECEIVED_MS + 1000)])
    second = run_kafka(kafka_bootstrap, prefix, store, recovery)  # counts are per partition, resumed
    assert second.balanced and second.total("raw_in") == 3 and second.total("normalized") == 2


def test_absurd_broker_timestamps_are_dead_letters_before_and_after_a_restart(
    kafka_bootstrap: str, chdb_dsn: str, tmp_path: Path
) -> None:
    """Messages timestamped 9999-12-31 and 1970-01-01 (the topic accepts any timestamp) are
    schema_error dead letters that never move the watermark; the resumed run reads on."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    anything = {"message.timestamp.after.max.ms": LONG_MAX, "message.timestamp.before.max.ms": LONG_MAX}
    create_topics(kafka_bootstrap, {f"{prefix}.carrier.edi": 1}, config=anything)
    create_topics(kafka_bootstrap, {f"{prefix}.dlq": 1, f"{prefix}.alerts": 1})
    produce(
        kafka_bootstrap,
        f"{prefix}.carrier.edi",
        [(x12_214(1), RECEIVED_MS), (x12_214(2), YEAR_9999_MS), (x12_214(3), 1), (x12_214(4), RECEIVED_MS + 1000)],
    )
    store, recovery = fresh_store(chdb_dsn), tmp_path / "recovery"

    first = run_kafka(kafka_bootstrap, prefix, store, recovery)
    assert first.balanced and first.total("raw_in") == 4
    assert first.total("normalized") == 2 and first.dead_by_reason == {"schema_error": 2}
    letters = query_rows(
        connect(store), f"SELECT received_at, error FROM {store.database}.dead_letters FINAL ORDER BY received_at"
    )
    assert [at.year for at, _ in letters] == [1970, 9999]
    assert all("outside the accepted range" in error for _, error in letters)
    # the watermark stayed in 2024: no event's lateness was judged against year 9999
    assert query_rows(connect(store), f"SELECT count() FROM {store.database}.events FINAL") == [(2,)]

    produce(kafka_bootstrap, f"{prefix}.carrier.edi", [(x12_214(5), RECEIVED_MS + 2000)])
    second = run_kafka(kafka_bootstrap, prefix, store, recovery)
    assert second.balanced and second.total("raw_in") == 5
    assert second.total("normalized") == 3 and second.dead_by_reason == {"schema_error": 2}


def test_resuming_after_the_topics_were_recreated_says_so_and_reads_the_new_messages(
    kafka_bootstrap: str, chdb_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The recovery store resumes at offset 5; the recreated topic ends at 3: the run warns
    (offsets went backwards) and reads the 3 new messages instead of skipping them silently."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.carrier.edi"
    create_topics(kafka_bootstrap, {topic: 1, f"{prefix}.dlq": 1, f"{prefix}.alerts": 1})
    produce(kafka_bootstrap, topic, [(x12_214(index), RECEIVED_MS + index) for index in range(5)])
    store, recovery = fresh_store(chdb_dsn), tmp_path / "recovery"
    assert run_kafka(kafka_bootstrap, prefix, store, recovery).total("raw_in") == 5

    delete_topics(kafka_bootstrap, [topic])
    create_topics(kafka_bootstrap, {topic: 1})
    produce(kafka_bootstrap, topic, [(x12_214(10 + index), RECEIVED_MS + 10_000 + index) for index in range(3)])
    with caplog.at_level(logging.WARNING, logger="sources.kafka"):
        again = run_kafka(kafka_bootstrap, prefix, store, recovery)

    # the partition's accounting goes on from the snapshot: 5 messages of the old topic, 3 of the new
    assert again.balanced and again.total("raw_in") == 8 and again.total("normalized") == 8
    warnings = [record.getMessage() for record in caplog.records if "went backwards" in record.getMessage()]
    assert warnings == [
        f"{topic}:0: the recovery snapshot resumes at offset 5 but the partition ends at 3: the topic was "
        "recreated (offsets went backwards); reading it again from offset 0"
    ]


def test_an_until_end_run_that_reads_nothing_says_so_naming_the_topics(
    kafka_bootstrap: str, chdb_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {f"{prefix}.carrier.edi": 2, f"{prefix}.dlq": 1, f"{prefix}.alerts": 1})
    summary = run_kafka(kafka_bootstrap, prefix, fresh_store(chdb_dsn))
    assert summary.total("raw_in") == 0
    err = capsys.readouterr().err
    assert f"warning: read no message from {kafka_bootstrap} (topics {prefix}.carrier.edi)" in err


def test_a_run_that_reads_something_gives_no_such_warning(
    kafka_bootstrap: str, chdb_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {f"{prefix}.carrier.edi": 1, f"{prefix}.dlq": 1, f"{prefix}.alerts": 1})
    produce(
        kafka_bootstrap,
        f"{prefix}.carrier.edi",
        [(x12_214(1), int(datetime(2024, 6, 3, tzinfo=UTC).timestamp() * 1000))],
    )
    assert run_kafka(kafka_bootstrap, prefix, fresh_store(chdb_dsn)).total("raw_in") == 1
    assert "read no message" not in capsys.readouterr().err
