"""Kafka outputs: dead letters (raw payload + reason headers) and alerts (keyed by alert id).

Producers are idempotent (`enable.idempotence`): a retried produce is written once. A broker
outage neither hangs the run nor loses a message (KafkaTopicSink). What stays at-least-once is
bytewax's recovery: after a crash the last epoch is processed again and its
dead letters and alert versions are produced again (consumers dedupe alerts by
`alert_id:version`, dead letters by `logisync.raw_ref`).

A dead letter bigger than the topic accepts is produced truncated, with `logisync.truncated` = its
full size; ClickHouse keeps it whole. What the topic accepts is read from the broker at start
(`dead_letter_max_bytes`: the topic's `max.message.bytes` and the producer's `message.max.bytes`,
less room for the key, headers and batch framing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # re-exported untyped by confluent_kafka.admin
from confluent_kafka.admin._resource import ResourceType
from typing_extensions import override

from operators.domain.alerts import Alert, iso
from operators.formats.timeparse import to_epoch_ms
from operators.model import REPLAY_OF_HEADER, DeadLetter, RawMessage
from sources.kafka_client import Outage, client_config
from sources.stop import stop_requested

log = logging.getLogger(__name__)

DEAD_LETTER_TOPIC = "logisync.dead_letters"
ALERTS_TOPIC = "logisync.alerts"
# Under the broker's default message.max.bytes (1 MiB) with room for key, headers and framing.
DEAD_LETTER_MAX_BYTES = 900_000
# What a letter's key (at most 1 KiB), headers (error at most 1 KB, topic names, raw_ref) and the
# record batch framing can take besides its value.
_ENVELOPE_BYTES = 8_192
_PRODUCER_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes
_QUEUE_ROOM = 50_000  # under librdkafka's queue.buffering.max.messages (100,000)
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
    admin = AdminClient(client_config(bootstrap, config))
    try:
        futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=timeout_s)
        entries = next(iter(futures.values())).result(timeout=timeout_s)
        topic_max = int(entries["max.message.bytes"].value)
    except (KafkaException, KeyError, ValueError, TimeoutError) as exc:  # no rights, an old broker: the default
        log.warning("could not read max.message.bytes of %s (%s); dead letters over %d bytes are truncated",
                    topic, exc, DEAD_LETTER_MAX_BYTES)  # fmt: skip
        return DEAD_LETTER_MAX_BYTES
    return max(1_024, min(topic_max, producer_max) - _ENVELOPE_BYTES)


@dataclass(frozen=True)
class TopicSinkConfig:
    """Where and how a flow output is produced. `give_up_s`: an `--until-end` run stops with one
    line when the broker has not taken its messages for this long; None (a live run) waits for
    the broker as long as it takes, with a bounded log."""

    bootstrap: str
    topic: str
    config: Mapping[str, str] = field(default_factory=dict)
    give_up_s: float | None = None


class KafkaTopicSink(DynamicSink[KafkaSinkMessage[bytes | None, bytes]]):
    """Messages onto one topic, at least once, never hanging and never dropping without a word.

    bytewax's KafkaSink flushes without a timeout (a broker outage hangs the worker, and with it
    the source that would notice the outage and give up) and ignores delivery reports (a message
    the broker refused was lost silently). Here: an idempotent producer whose messages never time
    out in librdkafka's queue (`message.timeout.ms` 0); the flush waits in slices while an outage
    lasts (a log line when it starts, one every 30 s, one when it ends; `give_up_s` bounds it);
    a message the broker refuses (a permanent error) is logged with its reason (its rows are in
    ClickHouse).
    """

    def __init__(self, sink: TopicSinkConfig) -> None:
        self.sink = sink

    @override
    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[KafkaSinkMessage[bytes | None, bytes]]:
        return _TopicPartition(self.sink)


class _TopicPartition(StatelessSinkPartition[KafkaSinkMessage[bytes | None, bytes]]):
    def __init__(self, sink: TopicSinkConfig) -> None:
        self._sink = sink
        ours = {
            "linger.ms": "20",  # every batch is flushed: let librdkafka batch within it
            "compression.type": "lz4",
            "enable.idempotence": "true",
            "message.timeout.ms": "0",  # never drop a queued message; the flush below bounds the wait
        }
        self._producer = Producer(client_config(sink.bootstrap, {**ours, **sink.config}))
        self._outage = Outage(sink.topic, sink.bootstrap, sink.give_up_s, doing="writing")

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            log.error("Kafka refused a message for %s: %s (its rows are in ClickHouse)", self._sink.topic, error)

    @override
    def write_batch(self, items: list[KafkaSinkMessage[bytes | None, bytes]]) -> None:
        for item in items:
            while True:
                try:
                    self._producer.produce(
                        self._sink.topic,
                        value=item.value,
                        key=item.key,
                        headers=list(item.headers),  # a fresh list: librdkafka types it wider
                        timestamp=item.timestamp or 0,
                        on_delivery=self._delivered,
                    )
                    break
                except BufferError:  # librdkafka's queue is full (a long outage): wait for room
                    self._drain(until_room=True)
        self._drain()

    def _drain(self, until_room: bool = False) -> None:
        """Wait until every queued message is delivered (or refused), or only until there is room."""
        wait = 1.0
        while True:
            left = self._producer.flush(wait)
            now = time.monotonic()
            if left == 0 or (until_room and left < _QUEUE_ROOM):
                self._outage.recovered(now)
                return
            if stop_requested():
                log.warning("stopping with %d message(s) for %s not written (the broker is unreachable); "
                            "their rows are in ClickHouse", left, self._sink.topic)  # fmt: skip
                return
            wait = max(1.0, self._outage.failed(f"{left} message(s) not delivered", now))

    @override
    def close(self) -> None:
        # Never raises (bytewax also closes a partition while unwinding from an error, and a
        # second error there aborts the process): an outage at the end waits like any other, up
        # to a give-up or a stop request.
        self._drain()


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
    ours = {
        "enable.idempotence": "true",
        "linger.ms": "20",
        "compression.type": "lz4",
        "message.timeout.ms": str(int(timeout_s * 1000)),
    }
    producer = Producer(client_config(bootstrap, {**ours, **config}))
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
