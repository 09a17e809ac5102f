"""Kafka outputs: dead letters (raw payload + reason headers) and alerts (keyed by alert id)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import orjson
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage

from operators.domain.alerts import Alert
from operators.formats.timeparse import to_epoch_ms
from operators.model import DeadLetter
from sinks.rows import ALERT_COLUMNS

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


def alert_payload(alert: Alert) -> dict[str, object]:
    """An alert as a JSON-ready dict (times ISO 8601 UTC), for Kafka and the webhook."""
    payload: dict[str, object] = {}
    for name in ALERT_COLUMNS:
        value = getattr(alert, name)
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        payload[name] = value
    return payload


def alert_message(alert: Alert) -> KafkaSinkMessage[bytes, bytes]:
    """Keyed by alert id, so every version of an alert lands in one partition, in order."""
    headers = [("logisync.rule", alert.rule.encode()), ("logisync.version", str(alert.version).encode())]
    return KafkaSinkMessage(key=alert.alert_id.encode(), value=orjson.dumps(alert_payload(alert)), headers=headers)
