"""The local broker of scripts/kafka-local really is Kafka: round trip, offsets, groups, settings."""

from __future__ import annotations

import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.kafka_broker import KAFKA_LOCAL, TopicFactory, unique_topic_name

pytestmark = pytest.mark.kafka

MESSAGES = 1000
PARTITIONS = 3


def _produce(bootstrap: str, topic: str) -> dict[int, list[tuple[bytes, bytes]]]:
    """Send MESSAGES keyed records round-robin over the partitions; returns them per partition, in order."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    sent: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    for i in range(MESSAGES):
        key, value = f"key-{i:04d}".encode(), f"value-{i}".encode()
        partition = i % PARTITIONS
        producer.produce(topic, value=value, key=key, partition=partition, on_delivery=on_delivery)
        sent[partition].append((key, value))
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still queued after 30 s"
    assert failures == []
    return sent


def _consume_all(bootstrap: str, topic: str, expected: int) -> dict[int, list[tuple[bytes, bytes, int]]]:
    """Read `expected` records through a consumer group (this also creates __consumer_offsets)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic_name("group"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: dict[int, list[tuple[bytes, bytes, int]]] = defaultdict(list)
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        count = 0
        while count < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.2):
                assert msg.error() is None, msg.error()
                key, value, partition, offset = msg.key(), msg.value(), msg.partition(), msg.offset()
                assert key is not None and value is not None
                assert partition is not None and offset is not None
                received[partition].append((key, value, offset))
                count += 1
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        # the group's committed offsets are the ends of the partitions: offsets topic works on one node
        assert {tp.partition: tp.offset for tp in committed} == {p: len(records) for p, records in received.items()}
    finally:
        consumer.close()
    return received


def test_1000_messages_round_trip_over_3_partitions(kafka_bootstrap: str, kafka_topic_factory: TopicFactory) -> None:
    topic = kafka_topic_factory(partitions=PARTITIONS)
    sent = _produce(kafka_bootstrap, topic)

    received = _consume_all(kafka_bootstrap, topic, MESSAGES)

    assert Counter({p: len(r) for p, r in received.items()}) == Counter({0: 334, 1: 333, 2: 333})
    for partition in range(PARTITIONS):
        # exact keys and values, in produce order, at offsets 0..n-1
        assert [(k, v) for k, v, _ in received[partition]] == sent[partition]
        assert [offset for _, _, offset in received[partition]] == list(range(len(sent[partition])))
    assert {k for records in received.values() for k, _, _ in records} == {
        f"key-{i:04d}".encode() for i in range(MESSAGES)
    }
    # watermarks match too (a Kafka-compatible stand-in was seen to get the high mark wrong)
    probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_topic_name("wm")})
    try:
        marks = [probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(PARTITIONS)]
    finally:
        probe.close()
    assert marks == [(0, 334), (0, 333), (0, 333)]


def test_status_reports_the_session_bootstrap(kafka_bootstrap: str, kafka_state_dir: Path) -> None:
    status = subprocess.run(
        [str(KAFKA_LOCAL), "--state-dir", str(kafka_state_dir), "status"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert status.returncode == 0, status.stderr
    assert status.stdout.strip() == kafka_bootstrap
    assert kafka_bootstrap.startswith("127.0.0.1:")


def test_topics_are_not_auto_created(kafka_bootstrap: str) -> None:
    # a mistyped topic must fail the way it does in production (KafkaSource raises at start-up)
    missing = unique_topic_name("missing")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})

    metadata = admin.list_topics(topic=missing, timeout=10)

    error = metadata.topics[missing].error
    assert error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert missing not in admin.list_topics(timeout=10).topics
