"""Kafka consumer lag reaches /metrics from the source partition (a real broker)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from sources.kafka import RawKafkaSource
from tests.kafka_broker import TopicFactory
from web import metrics

pytestmark = pytest.mark.kafka
PRODUCED = 50
READ_TIMEOUT_S = 60.0


def test_consumer_lag_is_the_high_watermark_minus_the_position(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = kafka_topic_factory(partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for index in range(PRODUCED):
        producer.produce(topic, value=f"message {index}".encode())
    assert producer.flush(30) == 0
    source = RawKafkaSource(kafka_bootstrap, [topic], batch_size=10)
    partition = source.build_part("lag", f"0-{topic}", None)
    try:
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not partition.consumed:  # the first consume calls may return nothing during the fetch
            assert time.monotonic() < deadline, "no message read from the broker"
            partition.next_batch()
        read = partition.consumed
        assert 0 < read <= 10
        lag = metrics.PIPELINE_REGISTRY.get_sample_value(
            "logisync_kafka_consumer_lag", {"topic": topic, "partition": "0"}
        )
        assert lag == PRODUCED - read
    finally:
        partition.close()
