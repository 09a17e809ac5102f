"""Kafka input through bytewax's Kafka connector, as RawMessages.

Wraps `bytewax.connectors.kafka.KafkaSource` (one input partition per topic-partition, batched
`consume`, offsets in the recovery snapshot) so that:
- every message becomes a RawMessage with `received_at` = the Kafka message timestamp;
- `until_end` stops each partition at the end offset seen when the flow starts (backfills, tests);
- start-up checks the broker and topics with a timeout first (the connector's own metadata call
  has none and hangs forever on an unreachable broker: bytewax guide 1.3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaSource, KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from typing_extensions import override

from operators.model import RawMessage
from web import metrics

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Timestamp types of librdkafka: 0 = not available, 1 = create time, 2 = log append time.
_TIMESTAMP_NOT_AVAILABLE = 0


class KafkaUnavailableError(RuntimeError):
    """The broker cannot be reached or a topic is missing; one line for the CLI."""


def preflight(bootstrap: str, topics: Sequence[str], config: Mapping[str, str], timeout_s: float = 10.0) -> None:
    """Fail fast with one line if the broker does not answer or a topic does not exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **config})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except Exception as exc:
        raise KafkaUnavailableError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f} s: {exc}") from exc
    missing = sorted(set(topics) - set(metadata.topics))
    if missing:
        raise KafkaUnavailableError(f"Kafka at {bootstrap} has no topic(s) {missing}; create them first")


def to_raw(message: KafkaSourceMessage[bytes | None, bytes | None]) -> RawMessage:
    kind, millis = message.timestamp if message.timestamp is not None else (_TIMESTAMP_NOT_AVAILABLE, 0)
    if kind == _TIMESTAMP_NOT_AVAILABLE:
        # No broker timestamp (very old producers): arrival now is the best we can say.
        received_at = datetime.now(UTC)
    else:
        received_at = _EPOCH + timedelta(milliseconds=millis)
    key = message.key.decode("utf-8", errors="replace") if message.key is not None else None
    return RawMessage(
        topic=message.topic or "",
        partition=message.partition if message.partition is not None else 0,
        offset=message.offset if message.offset is not None else -1,
        key=key,
        value=message.value or b"",
        received_at=received_at,
    )


class _RawPartition(StatefulSourcePartition[RawMessage, int | None]):
    """The connector's partition, mapped to RawMessages and optionally bounded by an end offset."""

    def __init__(
        self, inner: StatefulSourcePartition[Any, int | None], end_offset: int | None, for_part: str = ""
    ) -> None:
        self._inner = inner
        self._end = end_offset
        index, _, topic = for_part.partition("-")  # bytewax names a partition "<index>-<topic>"
        self._partition = TopicPartition(topic, int(index)) if index.isdigit() else None
        self._lag_recorded_at = 0.0
        # Our own position: messages past the end offset are not emitted, so they must not be
        # counted as read either (a later resume in live mode starts with them).
        self._next_offset = inner.snapshot()
        self._done = self._reached(self._next_offset)

    def _reached(self, next_offset: int | None) -> bool:
        return self._end is not None and next_offset is not None and next_offset >= self._end

    @override
    def next_batch(self) -> list[RawMessage]:
        if self._done:
            raise StopIteration()
        batch = self._inner.next_batch()
        out = []
        for message in batch:
            if self._end is not None and message.offset >= self._end:
                self._done = True
                break
            out.append(to_raw(message))
            self._next_offset = message.offset + 1
        if self._reached(self._next_offset):
            self._done = True
        if out:
            self._record_lag()
        return out

    def _record_lag(self) -> None:
        """Consumer lag for /metrics, at most once a second, from the high watermark of the
        consumer's last fetch (`cached=True`: no request to the broker)."""
        consumer = getattr(self._inner, "_consumer", None)  # bytewax's partition keeps its consumer private
        now = time.monotonic()
        if consumer is None or self._partition is None or self._next_offset is None or now - self._lag_recorded_at < 1:
            return
        self._lag_recorded_at = now
        _low, high = consumer.get_watermark_offsets(self._partition, cached=True)
        if high >= 0:
            metrics.set_consumer_lag(self._partition.topic, self._partition.partition, max(high - self._next_offset, 0))

    @override
    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    @override
    def snapshot(self) -> int | None:
        return self._next_offset

    @override
    def close(self) -> None:
        self._inner.close()


class RawKafkaSource(FixedPartitionedSource[RawMessage, int | None]):
    """Topics -> RawMessages; `until_end` reads up to the end offsets seen at start, then ends."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        *,
        until_end: bool = False,
        batch_size: int = 2000,
        config: Mapping[str, str] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = list(topics)
        self._until_end = until_end
        self._config = dict(config or {})
        # Reading from the beginning on a first start; a resume continues from the snapshot.
        # auto.offset.reset=earliest: never skip silently to the end if a resume offset was
        # deleted by retention (bytewax guide 1.3).
        self._inner = KafkaSource(
            [bootstrap],
            self._topics,
            tail=not until_end,
            batch_size=batch_size,
            add_config={"auto.offset.reset": "earliest", **self._config},
        )

    @override
    def list_parts(self) -> list[str]:
        return list(self._inner.list_parts())

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _RawPartition:
        inner = self._inner.build_part(step_id, for_part, resume_state)
        end = self._end_offset(for_part) if self._until_end else None
        return _RawPartition(inner, end, for_part)

    def _end_offset(self, for_part: str) -> int:
        index, topic = for_part.split("-", 1)
        consumer = Consumer({"bootstrap.servers": self._bootstrap, "group.id": "logisync-watermarks", **self._config})
        try:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, int(index)), timeout=10)
        finally:
            consumer.close()
        return int(high)


def build_kafka_source(settings: Any) -> RawKafkaSource:
    """The Kafka source for `logisync run --source kafka` (topics = the configured topic map)."""
    topics = sorted(settings.topic_adapters)
    outputs = [settings.dead_letter_topic, settings.alerts_topic]
    preflight(settings.bootstrap, topics + outputs, settings.kafka_config)
    log.info(
        "consuming %s from %s (until_end=%s, config %s)",
        topics,
        settings.bootstrap,
        settings.until_end,
        settings.redacted_kafka_config(),
    )
    return RawKafkaSource(
        settings.bootstrap,
        topics,
        until_end=settings.until_end,
        batch_size=settings.batch_size,
        config=settings.kafka_config,
    )


def ensure_topics(
    bootstrap: str, topics: Mapping[str, int], config: Mapping[str, str], timeout_s: float = 30.0
) -> None:
    """Create the topics that do not exist yet (name -> partitions), and wait until they do."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **config})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [NewTopic(name, num_partitions=count, replication_factor=1) for name, count in topics.items()]
    missing = [topic for topic in wanted if topic.topic not in existing]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise KafkaUnavailableError(f"cannot create topic {name} at {bootstrap}: {exc}") from exc
