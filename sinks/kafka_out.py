"""Kafka outputs: dead letters (raw payload + reason headers) and alerts (keyed by alert id).

Producers are idempotent (`enable.idempotence`): a retried produce is written once. What stays
at-least-once is bytewax's recovery: after a crash the last epoch is processed again and its
dead letters and alert versions are produced again (consumers dedupe alerts by
`alert_id:version`, dead letters by `logisync.raw_ref`).

A dead letter bigger than the topic accepts is produced truncated, with `logisync.truncated` = its
full size; ClickHouse keeps it whole. What the topic accepts is read from the broker at start
(`dead_letter_max_bytes`: the topic's `max.message.bytes` and the producer's `message.max.bytes`,
less room for the key, headers and batch framing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # re-exported untyped by confluent_kafka.admin
from confluent_kafka.admin._resource import ResourceType

from operators.domain.alerts import Alert, iso
from operators.formats.timeparse import to_epoch_ms
from operators.model import REPLAY_OF_HEADER, DeadLetter, RawMessage

log = logging.getLogger(__name__)

DEAD_LETTER_TOPIC = "logisync.dead_letters"
ALERTS_TOPIC = "logisync.alerts"
# Under the broker's default message.max.bytes (1 MiB) with room for key, headers and framing.
DEAD_LETTER_MAX_BYTES = 900_000
# What a letter's key (at most 1 KiB), headers (error at most 1 KB, topic names, raw_ref) and the
# record batch framing can take besides its value.
_ENVELOPE_BYTES = 8_192
_PRODUCER_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes
_TIME_FIELDS = ("due_at", "opened_at", "resolved_at")


def dead_letter_message(
    letter: DeadLetter, max_bytes: int = DEAD_LETTER_MAX_BYTES
) -> KafkaSinkMessage[bytes | None, bytes]:
    """The raw payload unchanged (or its first `max_bytes`), keyed as it came, with the verdict in
    headers."""
    raw = letter.raw
    value = raw.value
    headers = [
        ("logisync.reason", str(letter.reason).encode()),
        ("logisync.adapter", letter.adapter.encode()),
        ("logisync.error", letter.error.encode("utf-8", errors="replace")[:1000]),
        ("logisync.raw_ref", raw.raw_ref.encode()),
        ("logisync.source_topic", raw.topic.encode()),
        ("logisync.received_at_ms", str(to_epoch_ms(raw.received_at)).encode()),
    ]
    if len(value) > max_bytes:
        headers.append(("logisync.truncated", str(len(value)).encode()))
        value = value[:max_bytes]
    key = raw.key.encode("utf-8")[:1024] if raw.key is not None else None
    return KafkaSinkMessage(key=key, value=value, headers=headers)


def dead_letter_max_bytes(bootstrap: str, topic: str, config: Mapping[str, str], timeout_s: float = 10.0) -> int:
    """The largest dead-letter value the topic takes: its `max.message.bytes` (the broker's default
    when the topic does not set it) and the producer's `message.max.bytes`, less the envelope.
    If the broker does not say, the default limit, with a warning."""
    producer_max = int(config.get("message.max.bytes", _PRODUCER_MAX_BYTES))
    admin = AdminClient({"bootstrap.servers": bootstrap, **config})
    try:
        futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=timeout_s)
        entries = next(iter(futures.values())).result(timeout=timeout_s)
        topic_max = int(entries["max.message.bytes"].value)
    except (KafkaException, KeyError, ValueError, TimeoutError) as exc:  # no rights, an old broker: the default
        log.warning("could not read max.message.bytes of %s (%s); dead letters over %d bytes are truncated",
                    topic, exc, DEAD_LETTER_MAX_BYTES)  # fmt: skip
        return DEAD_LETTER_MAX_BYTES
    return max(1_024, min(topic_max, producer_max) - _ENVELOPE_BYTES)


def kafka_sink(bootstrap: str, topic: str, config: Mapping[str, str]) -> KafkaSink:
    # linger + compression: the connector flushes every batch, so let librdkafka batch too.
    add_config = {"linger.ms": "20", "compression.type": "lz4", "enable.idempotence": "true", **config}
    return KafkaSink([bootstrap], topic, add_config=add_config)


def alert_payload(alert: Alert) -> dict[str, object]:
    """An alert as a JSON-ready dict (times ISO 8601 UTC), for Kafka and the webhook."""
    payload: dict[str, object] = msgspec.structs.asdict(alert)
    for name in _TIME_FIELDS:
        value = payload[name]
        payload[name] = str(iso(value)).replace("+00:00", "Z") if isinstance(value, int) else None
    return payload


def alert_message(alert: Alert) -> KafkaSinkMessage[bytes, bytes]:
    """Keyed by alert id, so every version of an alert lands in one partition, in order."""
    headers = [("logisync.rule", alert.rule.encode()), ("logisync.version", str(alert.version).encode())]
    return KafkaSinkMessage(key=alert.alert_id.encode(), value=orjson.dumps(alert_payload(alert)), headers=headers)


@dataclass
class Produced:
    """What a produce of replayed dead letters came to: raw_refs delivered, and those that failed."""

    delivered: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (raw_ref, error)


def produce_replays(
    bootstrap: str, messages: Sequence[RawMessage], config: Mapping[str, str], timeout_s: float = 60.0
) -> Produced:
    """Dead letters back onto their own topics (`logisync dlq replay` in Kafka mode): the whole
    payload (from the store, not the dead-letter topic's copy, which may be truncated), the
    original key (so the letter lands where its delivery's messages do) and the original
    received_at as the Kafka timestamp (so its events are what a local replay makes), with the
    `logisync.replay_of` header = the original raw_ref, which the Kafka source reads back."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": "true",
            "linger.ms": "20",
            "compression.type": "lz4",
            "message.timeout.ms": str(int(timeout_s * 1000)),
            **config,
        }
    )
    result = Produced()

    def report(raw_ref: str) -> Any:
        def delivered(error: Any, _message: Any) -> None:
            if error is None:
                result.delivered.append(raw_ref)
            else:
                result.failed.append((raw_ref, str(error)))

        return delivered

    for raw in messages:
        raw_ref = raw.raw_ref
        while True:
            try:
                producer.produce(
                    raw.topic,
                    value=raw.value,
                    key=raw.key.encode("utf-8") if raw.key is not None else None,
                    timestamp=to_epoch_ms(raw.received_at),
                    headers=[(REPLAY_OF_HEADER, raw_ref.encode("utf-8"))],
                    on_delivery=report(raw_ref),
                )
                break
            except BufferError:  # librdkafka's queue is full: let deliveries drain it
                producer.poll(1.0)
        producer.poll(0)
    left = producer.flush(timeout_s + 5)
    if left:
        log.warning("%d replayed dead letters were still unconfirmed after %.0f s", left, timeout_s)
    return result
