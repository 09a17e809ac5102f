"""Kafka outputs: dead letters (raw payload + reason headers) and alerts (keyed by alert id)."""

from __future__ import annotations

from collections.abc import Mapping

from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage

from operators.model import DeadLetter
from operators.timeparse import to_epoch_ms

DEAD_LETTER_TOPIC = "logisync.dead_letters"
ALERTS_TOPIC = "logisync.alerts"


def dead_letter_message(letter: DeadLetter) -> KafkaSinkMessage[bytes | None, bytes]:
    """The raw payload unchanged, keyed as it came, with the verdict in headers."""
    raw = letter.raw
    headers = [
        ("logisync.reason", str(letter.reason).encode()),
        ("logisync.adapter", letter.adapter.encode()),
        ("logisync.error", letter.error.encode("utf-8", errors="replace")[:1000]),
        ("logisync.raw_ref", raw.raw_ref.encode()),
        ("logisync.source_topic", raw.topic.encode()),
        ("logisync.received_at_ms", str(to_epoch_ms(raw.received_at)).encode()),
    ]
    key = raw.key.encode("utf-8") if raw.key is not None else None
    return KafkaSinkMessage(key=key, value=raw.value, headers=headers)


def kafka_sink(bootstrap: str, topic: str, config: Mapping[str, str]) -> KafkaSink:
    # linger + compression: the connector flushes every batch, so let librdkafka batch too.
    add_config = {"linger.ms": "20", "compression.type": "lz4", **config}
    return KafkaSink([bootstrap], topic, add_config=add_config)
