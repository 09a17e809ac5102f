"""Kafka input through bytewax's Kafka connector, as RawMessages.

Wraps `bytewax.connectors.kafka.KafkaSource` (one input partition per topic-partition, batched
`consume`, offsets in the recovery snapshot) so that:
- every message becomes a RawMessage with `received_at` = the Kafka message timestamp, and
  `replay_of` = its `logisync.replay_of` header (a dead letter produced back by `logisync dlq
  replay`: it keeps its raw_ref, and the accounting moves the letter instead of counting it anew);
- `until_end` stops each partition at the end offset seen when the flow starts (backfills, tests);
- start-up checks the broker and topics with a timeout first (the connector's own metadata call
  has none and hangs forever on an unreachable broker: bytewax guide 1.3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import KafkaError as KafkaErrorCode
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from typing_extensions import override

from operators.formats.timeparse import to_epoch_ms
from operators.ingest.sanity import LIVE_AHEAD_MS, is_sane_received
from operators.model import REPLAY_OF_HEADER, RawMessage
from sources.batch import RawBatch
from sources.kafka_client import LIBRDKAFKA_LOG, KafkaUnavailableError, Outage, client_config
from sources.stop import give_up, stop_requested
from web import metrics

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Timestamp types of librdkafka: 0 = not available, 1 = create time, 2 = log append time.
_TIMESTAMP_NOT_AVAILABLE = 0


# librdkafka errors that pass on their own: the broker or the network is away for a while.
_TRANSIENT = {
    KafkaErrorCode._TRANSPORT,
    KafkaErrorCode._ALL_BROKERS_DOWN,
    KafkaErrorCode._TIMED_OUT,
    KafkaErrorCode._RESOLVE,
    KafkaErrorCode.NOT_LEADER_FOR_PARTITION,
    KafkaErrorCode.LEADER_NOT_AVAILABLE,
    KafkaErrorCode.REQUEST_TIMED_OUT,
    KafkaErrorCode.NETWORK_EXCEPTION,
}


class BrokerHealth:
    """What the consumers of one source hear about the broker, shared by its partitions.

    librdkafka reports a broker that went away (connection refused, all brokers down) to the
    `error_cb` of the client, not through `consume`, which just returns nothing: `on_error` is
    that callback (served inside `consume`, on the worker's thread). An error alone is not an
    outage (a broker closes idle connections, and librdkafka reconnects at once): `reachable`
    asks the broker for the topic's metadata, at most once a second for all partitions.
    """

    PROBE_TIMEOUT_S = 1.0
    PROBE_EVERY_S = 1.0

    def __init__(self) -> None:
        self.errors = 0  # transient errors reported so far
        self.last_error: Any = None
        self._probed_at = -1e9
        self._reachable = True

    def on_error(self, error: Any) -> None:
        self.errors += 1
        self.last_error = error

    def reachable(self, consumer: Any, topic: str, now: float) -> bool:
        if now - self._probed_at < self.PROBE_EVERY_S:
            return self._reachable
        try:
            metadata = consumer.list_topics(topic, timeout=self.PROBE_TIMEOUT_S)
            self._reachable = bool(metadata.brokers)
        except KafkaException:  # no answer within the timeout
            self._reachable = False
        self._probed_at = time.monotonic()
        return self._reachable


def preflight(bootstrap: str, topics: Sequence[str], config: Mapping[str, str], timeout_s: float = 10.0) -> None:
    """Fail fast with one line if the broker does not answer or a topic does not exist."""
    admin = AdminClient(client_config(bootstrap, config))
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except Exception as exc:
        raise KafkaUnavailableError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f} s: {exc}") from exc
    missing = sorted(set(topics) - set(metadata.topics))
    if missing:
        raise KafkaUnavailableError(f"Kafka at {bootstrap} has no topic(s) {missing}; create them first")


_MAX_DATETIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_MIN_DATETIME = datetime(1, 1, 1, tzinfo=UTC)


def to_raw(message: KafkaSourceMessage[bytes | None, bytes | None]) -> RawMessage:
    kind, millis = message.timestamp if message.timestamp is not None else (_TIMESTAMP_NOT_AVAILABLE, 0)
    if kind == _TIMESTAMP_NOT_AVAILABLE:
        # No broker timestamp (very old producers): arrival now is the best we can say.
        received_at = datetime.now(UTC)
    else:
        try:
            received_at = _EPOCH + timedelta(milliseconds=millis)
        except OverflowError:  # an absurd timestamp: kept absurd, so the flow dead-letters it
            received_at = _MAX_DATETIME if millis > 0 else _MIN_DATETIME
    key = message.key.decode("utf-8", errors="replace") if message.key is not None else None
    return RawMessage(
        topic=message.topic or "",
        partition=message.partition if message.partition is not None else 0,
        offset=message.offset if message.offset is not None else -1,
        key=key,
        value=message.value or b"",
        received_at=received_at,
        replay_of=replay_of(message.headers),
    )


def replay_of(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    """The original raw_ref of a replayed dead letter (its last `logisync.replay_of` header)."""
    found = None
    for name, value in headers:
        if name == REPLAY_OF_HEADER and value:
            found = value.decode("utf-8", errors="replace")
    return found


def source_id(topic: str, partition: int) -> str:
    """An input partition's name as a watermark sender and in ingest_stats: `<topic>:<partition>`."""
    return f"{topic}:{partition}"


@dataclass(frozen=True)
class LiveTiming:
    """Live mode (no end offsets): how a partition batches and how it lets the clock move W.

    `linger_ms`: a batch is handed on when it is this old (or full), counted from the poll before
    the one that read its first message: fewer, larger batches through the stages at the cost of
    that much latency (a step of the flow longer than this already batches). `idle_ms`: once a
    partition is caught up, it promises the clock minus this, so that a quiet feed does not hold
    back SLA alerts (as Flink's `withIdleness`); a message produced with an older timestamp than
    that arrives late.
    `heartbeat_ms`: how often a caught-up partition says so: the step by which the clock moves W
    when a partition is quiet, so a deadline passed that way reaches the stages at most this late
    (at 1 s, alerts came up to 1.3 s after the clock let W pass their deadline; each beat is an
    empty batch through the stages: 250 ms costs about 4 % of a core more than 1 s, idle).
    """

    linger_ms: int = 20
    idle_ms: int = 30_000
    heartbeat_ms: int = 250


Clock = Callable[[], int]  # wall clock, epoch ms


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class _RawPartition(StatefulSourcePartition[RawBatch, int | None]):
    """The connector's partition as RawBatches: bounded by an end offset (`until_end`), or live."""

    def __init__(
        self,
        inner: StatefulSourcePartition[Any, int | None],
        source: str,
        end_offset: int | None,
        live: LiveTiming | None,
        count: Callable[[int], None] | None,
        clock: Clock = _wall_ms,
        start_offset: int | None = None,
        outage: Outage | None = None,
        max_epoch_messages: int | None = None,
        health: BrokerHealth | None = None,
    ) -> None:
        self._inner = inner
        self._outage = outage or Outage(source, "?", None)
        self._health = health or BrokerHealth()
        self._errors_seen = self._health.errors
        self._paused_until = 0.0
        # Messages emitted since the last snapshot (an epoch), and the bound on them (see next_batch).
        self._epoch_messages = 0
        self._max_epoch_messages = max_epoch_messages
        self._source = source
        self._end = end_offset
        self._live = live
        self._count = count
        self._clock = clock
        # Our own position: messages past the end offset, or still lingering, are not emitted, so
        # they must not count as read either (a resume starts with them).
        self._next_offset = start_offset if start_offset is not None else inner.snapshot()
        self._done = self._reached(self._next_offset)
        self._finished = False
        self._pending: list[RawMessage] = []
        self._pending_since = 0
        self._polled_at = clock()  # the previous poll: a message read now may have waited since
        self._promise: int | None = None
        self._last_sent = 0
        topic, _, index = source.rpartition(":")
        self._partition = TopicPartition(topic, int(index)) if index.isdigit() else None
        self._lag_recorded_at = 0.0
        self.consumed = 0  # messages taken from the consumer so far (some may still linger)

    def _reached(self, next_offset: int | None) -> bool:
        return self._end is not None and next_offset is not None and next_offset >= self._end

    @override
    def next_batch(self) -> list[RawBatch]:
        if self._finished or stop_requested():
            raise StopIteration()
        room = self._epoch_room()
        if room == 0:
            # An epoch holds at most this many messages: after a crash the resumed run replays at
            # most one such epoch, so a restart always moves forward (bytewax ends epochs on time
            # only, and reading runs far ahead of processing during a backlog).
            return []
        if self._done:
            return self._end_batch()
        if room is not None and len(self._pending) >= room:
            # A poll (up to batch_size messages) read past the bound: the rest of this epoch is
            # already here, so no more reading until the next one (pending stays bounded).
            horizon = None if self._live is None else self._clock() + LIVE_AHEAD_MS
            return [RawBatch(self._source, self._take(horizon), self._promise, horizon_ms=horizon)]
        wall = time.monotonic()
        if wall < self._paused_until:
            return []
        polled_after, self._polled_at = self._polled_at, self._clock()
        try:
            polled = list(self._inner.next_batch())
        except StopIteration:  # partition EOF (`until_end`): everything up to the end was read
            polled = []
            self._done = True
        consumed = [message for message in polled if not isinstance(message, KafkaError)]
        errors = [item.err for item in polled if isinstance(item, KafkaError)]
        fatal = [error for error in errors if error.code() not in _TRANSIENT and not error.retriable()]
        if fatal:
            give_up(KafkaUnavailableError(f"{self._source}: Kafka error {fatal[0]}"))
            return []
        health = self._health
        if health.errors != self._errors_seen:  # the client reported errors since the last poll
            self._errors_seen = health.errors
            errors.append(health.last_error)
        if consumed:
            self._outage.recovered(wall)
        elif errors or self._outage.since is not None:
            # An error, or the end of a back-off in an outage: is the broker there?
            if self._reachable(wall):
                self._outage.recovered(wall)
            else:
                self._paused_until = wall + self._outage.failed(errors[0] if errors else health.last_error, wall)
        if consumed:
            self.consumed += len(consumed)
            self._record_lag(consumed[-1].offset + 1)
        for message in consumed:
            if self._end is not None and message.offset >= self._end:
                self._done = True
                break
            self._pending.append(to_raw(message))
            if len(self._pending) == 1:
                # Lingering counts from the previous poll: when the worker comes back only after a
                # long step (a busy flow), the message has waited that long already, so it goes on
                # at once instead of waiting for the poll after this one.
                self._pending_since = polled_after
        if self._pending and self._reached(self._pending[-1].offset + 1):
            self._done = True
        if self._done:
            return self._end_batch()
        live = self._live
        if live is None:
            return [RawBatch(self._source, self._take(), self._promise)] if self._pending else []
        now = self._clock()
        horizon = now + LIVE_AHEAD_MS
        if self._pending and (len(consumed) == 0 or now - self._pending_since >= live.linger_ms):
            messages = self._take(horizon)
            self._last_sent = now
            return [RawBatch(self._source, messages, self._promise, horizon_ms=horizon)]
        if not consumed and not self._pending and now - self._last_sent >= live.heartbeat_ms:
            # Caught up: later messages are received now or later (minus the producers' slack).
            floor = now - live.idle_ms
            if self._promise is None or floor > self._promise:
                self._promise = floor
            self._last_sent = now
            return [RawBatch(self._source, [], self._promise, horizon_ms=horizon)]
        return []

    def _reachable(self, now: float) -> bool:
        consumer = getattr(self._inner, "_consumer", None)  # bytewax's partition keeps its consumer private
        if consumer is None or self._partition is None:
            return True
        return self._health.reachable(consumer, self._partition.topic, now)

    def _epoch_room(self) -> int | None:
        """How many more messages this epoch may hand on (None: no bound)."""
        if self._max_epoch_messages is None:
            return None
        return max(self._max_epoch_messages - self._epoch_messages, 0)

    def _end_batch(self) -> list[RawBatch]:
        """Past the end offset: what is still pending, within the epoch bound; the batch that
        empties it is the partition's last (`done`)."""
        messages = self._take()
        self._finished = not self._pending
        return [RawBatch(self._source, messages, self._promise, self._finished)]

    def _take(self, horizon_ms: int | None = None) -> list[RawMessage]:
        """The pending messages, as many as the epoch bound lets on; the rest stay pending."""
        room = self._epoch_room()
        if room is None or room >= len(self._pending):
            messages, self._pending = self._pending, []
        else:
            messages, self._pending = self._pending[:room], self._pending[room:]
        self._epoch_messages += len(messages)
        promise = self._promise
        for message in messages:
            received_ms = to_epoch_ms(message.received_at)
            if is_sane_received(received_ms, horizon_ms) and (promise is None or received_ms > promise):
                promise = received_ms
        self._promise = promise
        if messages:
            self._next_offset = messages[-1].offset + 1
            if self._count is not None:
                self._count(len(messages))
        return messages

    def _record_lag(self, position: int) -> None:
        """Consumer lag for /metrics, at most once a second, from the high watermark of the
        consumer's last fetch (`cached=True`: no request to the broker)."""
        consumer = getattr(self._inner, "_consumer", None)  # bytewax's partition keeps its consumer private
        now = time.monotonic()
        if consumer is None or self._partition is None or now - self._lag_recorded_at < 1:
            return
        _low, high = consumer.get_watermark_offsets(self._partition, cached=True)
        if high >= 0:  # unknown (negative) until the consumer's first fetch response
            self._lag_recorded_at = now
            metrics.set_consumer_lag(self._partition.topic, self._partition.partition, max(high - position, 0))

    @override
    def next_awake(self) -> datetime | None:
        if self._paused_until > time.monotonic():
            return datetime.now(UTC) + timedelta(seconds=self._paused_until - time.monotonic())
        if self._pending and self._live is not None:
            return datetime.now(UTC) + timedelta(milliseconds=self._live.linger_ms)
        return self._inner.next_awake()

    @override
    def snapshot(self) -> int | None:
        self._epoch_messages = 0  # bytewax snapshots a partition at the end of each epoch
        return self._next_offset

    @override
    def close(self) -> None:
        self._inner.close()


class RawKafkaSource(FixedPartitionedSource[RawBatch, int | None]):
    """Topics -> RawBatches; `until_end` reads up to the end offsets seen at start, then ends."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        *,
        until_end: bool = False,
        batch_size: int = 2000,
        config: Mapping[str, str] | None = None,
        live: LiveTiming | None = None,
        count: Callable[[int], None] | None = None,
        give_up_s: float | None = None,
        max_epoch_messages: int | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = list(topics)
        self._until_end = until_end
        self._config = dict(config or {})
        self._live = None if until_end else (live or LiveTiming())
        self._count = count
        self._give_up_s = give_up_s if until_end else None  # a live run waits for the broker forever
        self._max_epoch_messages = max_epoch_messages
        self._health = BrokerHealth()
        # Reading from the beginning on a first start; a resume continues from the snapshot.
        # auto.offset.reset=earliest: never skip silently to the end if a resume offset was
        # deleted by retention (bytewax guide 1.3).
        self._inner = KafkaSource(
            [bootstrap],
            self._topics,
            tail=not until_end,
            batch_size=batch_size,
            # librdkafka takes objects too (a logger, a callback); bytewax types the dict as str -> str
            add_config=cast(
                dict[str, str],
                {
                    "auto.offset.reset": "earliest",
                    "logger": LIBRDKAFKA_LOG,
                    "error_cb": self._health.on_error,
                    **self._config,
                },
            ),
            raise_on_errors=False,  # consume errors come as KafkaError items: see _RawPartition
        )
        self._partitions = partitions_of(bootstrap, self._topics, self._config)

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    @property
    def senders(self) -> tuple[str, ...]:
        """Every input partition, known before the first message (the watermark waits for all)."""
        return tuple(
            source_id(topic, index) for topic, count in sorted(self._partitions.items()) for index in range(count)
        )

    @override
    def list_parts(self) -> list[str]:
        return list(self._inner.list_parts())

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _RawPartition:
        index, topic = for_part.split("-", 1)
        low, high = self._watermark_offsets(topic, int(index))
        if resume_state is not None and resume_state > high:
            log.warning(
                "%s:%s: the recovery snapshot resumes at offset %d but the partition ends at %d: "
                "the topic was recreated (offsets went backwards); reading it again from offset %d",
                topic, index, resume_state, high, low,
            )  # fmt: skip
            resume_state = low
        inner = self._inner.build_part(step_id, for_part, resume_state)
        end = high if self._until_end else None
        start = resume_state if resume_state is not None else low
        source = source_id(topic, int(index))
        outage = Outage(source, self._bootstrap, self._give_up_s)
        return _RawPartition(
            inner,
            source,
            end,
            self._live,
            self._count,
            start_offset=start,
            outage=outage,
            max_epoch_messages=self._max_epoch_messages,
            health=self._health,
        )

    def _watermark_offsets(self, topic: str, index: int) -> tuple[int, int]:
        consumer = Consumer({**client_config(self._bootstrap, self._config), "group.id": "logisync-watermarks"})
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, index), timeout=10)
        finally:
            consumer.close()
        return int(low), int(high)


def partitions_of(bootstrap: str, topics: Sequence[str], config: Mapping[str, str]) -> dict[str, int]:
    """topic -> partition count, from the broker's metadata."""
    admin = AdminClient(client_config(bootstrap, config))
    metadata = admin.list_topics(timeout=10)
    return {topic: len(metadata.topics[topic].partitions) for topic in topics if topic in metadata.topics}


def build_kafka_source(settings: Any, count: Callable[[int], None] | None = None) -> RawKafkaSource:
    """The Kafka source for `logisync run --source kafka` (topics = the configured topic map)."""
    topics = sorted(settings.topic_adapters)
    outputs = [settings.dead_letter_topic, settings.alerts_topic]
    if settings.create_topics:
        # Our own output topics are created when missing, as Kafka Streams does for its internal
        # topics (1 partition keeps every version of an alert in order); a missing input is an error.
        preflight(settings.bootstrap, topics, settings.kafka_config)
        ensure_topics(settings.bootstrap, dict.fromkeys(outputs, 1), settings.kafka_config)
    else:
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
        live=LiveTiming(idle_ms=int(settings.idle_timeout_s * 1000)),
        count=count,
        give_up_s=settings.kafka_give_up_s,
        max_epoch_messages=settings.epoch_max_messages,
    )


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    config: Mapping[str, str],
    timeout_s: float = 30.0,
    topic_config: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (name -> partitions) with `topic_config`, and wait
    until they do; returns the names it created."""
    admin = AdminClient(client_config(bootstrap, config))
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except Exception as exc:
        raise KafkaUnavailableError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f} s: {exc}") from exc
    wanted = [
        NewTopic(name, num_partitions=count, replication_factor=1, config=dict(topic_config or {}))
        for name, count in topics.items()
    ]
    missing = [topic for topic in wanted if topic.topic not in existing]
    if not missing:
        return []
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise KafkaUnavailableError(f"cannot create topic {name} at {bootstrap}: {exc}") from exc
        log.info("created topic %s at %s", name, bootstrap)
    return [topic.topic for topic in missing]
