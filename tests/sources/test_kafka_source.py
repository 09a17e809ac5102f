"""The Kafka source gets the real secrets (its log line only masked ones), and bounds its epochs."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Producer

from flows.settings import Settings
from sources.kafka import RawKafkaSource, build_kafka_source
from tests.kafka_broker import TopicFactory


@pytest.mark.kafka
def test_kafka_secrets_reach_librdkafka_but_not_the_log(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    feed, dead, alerts = kafka_topic_factory(), kafka_topic_factory(), kafka_topic_factory()
    settings = Settings(
        source="kafka",
        bootstrap=kafka_bootstrap,
        topic_adapters={feed: "x12"},
        dead_letter_topic=dead,
        alerts_topic=alerts,
        kafka={"sasl.password": "hunter2", "sasl.oauthbearer.config": "scope=x secret=hunter2", "client.id": "t"},
    )
    with caplog.at_level(logging.INFO, logger="sources.kafka"):
        source = build_kafka_source(settings)
    assert source.list_parts() == [f"0-{feed}"]
    assert "'sasl.password': '***'" in caplog.text and "'client.id': 't'" in caplog.text
    assert "hunter2" not in caplog.text and "hunter2" not in repr(settings)
    assert settings.kafka_config["sasl.password"] == "hunter2"  # what librdkafka is given


@pytest.mark.kafka
def test_an_epoch_hands_on_at_most_epoch_max_messages_though_a_poll_reads_more(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    """A poll takes up to batch_size (200) messages; the epoch bound (50) still holds: the rest
    waits, read already, for the next epochs (before: the first epoch held a whole poll)."""
    topic = kafka_topic_factory()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for _ in range(500):
        producer.produce(topic, value=b"{}", key=b"k")
    assert producer.flush(30) == 0
    source = RawKafkaSource(kafka_bootstrap, [topic], until_end=True, batch_size=200, max_epoch_messages=50)
    partition = source.build_part("input", f"0-{topic}", None)
    epochs: list[list[int]] = [[]]
    done = False
    deadline = time.monotonic() + 60
    while not done:
        assert time.monotonic() < deadline, f"read {sum(map(len, epochs))} of 500 messages in 60 s"
        for batch in partition.next_batch():
            epochs[-1] += [message.offset for message in batch.messages]
            done = batch.done
        assert len(epochs[-1]) <= 50, f"epoch {len(epochs)} handed on {len(epochs[-1])} messages"
        if len(epochs[-1]) == 50 and not done:
            assert partition.next_batch() == []  # the epoch is full: nothing more until it ends
            assert partition.snapshot() == epochs[-1][-1] + 1  # bytewax ends it: the resume offset
            epochs.append([])
    partition.close()
    assert [len(epoch) for epoch in epochs] == [50] * 10
    assert [offset for epoch in epochs for offset in epoch] == list(range(500))
