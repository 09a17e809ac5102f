"""The Kafka source gets the real secrets; its log line only masked ones."""

from __future__ import annotations

import logging

import pytest

from flows.settings import Settings
from sources.kafka import build_kafka_source
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
