"""The live Kafka partition (sources.kafka._RawPartition) on an explicit clock: how long messages
linger before they are handed on, and how often a caught-up partition promises the clock."""

from __future__ import annotations

from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage

from sources.batch import RawBatch
from sources.kafka import LiveTiming, _RawPartition

START = 1_800_000_000_000  # epoch ms


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


class Inner:
    """Stands for bytewax's Kafka partition: hands out the polls it was given, then nothing."""

    def __init__(self) -> None:
        self.polls: list[list[Any]] = []

    def next_batch(self) -> list[Any]:
        return self.polls.pop(0) if self.polls else []

    def next_awake(self) -> None:
        return None

    def snapshot(self) -> int:
        return 0

    def close(self) -> None:
        pass


def message(offset: int, stamp_ms: int) -> KafkaSourceMessage[bytes | None, bytes | None]:
    return KafkaSourceMessage(b"k", b"{}", topic="wms.edi", offset=offset, partition=0, timestamp=(1, stamp_ms))


def live_partition(timing: LiveTiming) -> tuple[_RawPartition, Inner, Clock]:
    inner, clock = Inner(), Clock()
    partition = _RawPartition(inner, "wms.edi:0", None, timing, None, clock=clock, start_offset=0)  # type: ignore[arg-type]
    return partition, inner, clock


def test_a_caught_up_partition_promises_the_clock_minus_idle_every_heartbeat() -> None:
    timing = LiveTiming()
    assert timing.heartbeat_ms == 250  # the step by which idle partitions move W (README "Latency budget")
    partition, _, clock = live_partition(timing)
    beats: list[tuple[int, int | None]] = []
    for _ in range(1000):  # 1 s in steps of 1 ms, nothing to read
        beats.extend((clock.now, batch.promise) for batch in partition.next_batch())
        clock.now += 1
    assert beats == [(START + at, START + at - timing.idle_ms) for at in (0, 250, 500, 750)]


def test_messages_linger_while_more_arrive_and_go_at_once_when_the_poll_is_empty() -> None:
    partition, inner, clock = live_partition(LiveTiming(linger_ms=20))
    inner.polls = [[message(0, START - 5)], [message(1, START - 4)]]
    assert partition.next_batch() == []  # more may follow: wait up to linger_ms
    clock.now += 10
    assert partition.next_batch() == []  # another message came: still within linger_ms of the first
    clock.now += 1
    [batch] = partition.next_batch()  # an empty poll: caught up, hand on at once
    assert isinstance(batch, RawBatch)
    assert [raw.offset for raw in batch.messages] == [0, 1]
    assert batch.promise == START - 4  # the newest Kafka timestamp


def test_a_steady_stream_is_handed_on_every_linger_ms() -> None:
    partition, inner, clock = live_partition(LiveTiming(linger_ms=20))
    inner.polls = [[message(offset, START + offset)] for offset in range(50)]
    handed: list[tuple[int, int]] = []
    for _ in range(50):  # a message every millisecond: every poll has one
        handed.extend((clock.now, len(batch.messages)) for batch in partition.next_batch())
        clock.now += 1
    # from the poll before the first message of each batch: START (the partition's start), then +20
    assert handed == [(START + 20, 21), (START + 40, 20)]


def test_a_message_read_after_a_long_step_of_the_flow_goes_on_at_once() -> None:
    partition, inner, clock = live_partition(LiveTiming(linger_ms=20))
    assert [batch.messages for batch in partition.next_batch()] == [[]]  # caught up: a heartbeat
    clock.now += 300  # the worker was busy elsewhere for 300 ms: the message may have waited that long
    inner.polls = [[message(0, START + 5)], [message(1, START + 301)]]
    [batch] = [batch for batch in partition.next_batch() if batch.messages]
    assert [raw.offset for raw in batch.messages] == [0]
    clock.now += 1  # polled again at once: this message has waited at most 1 ms, so it lingers
    assert partition.next_batch() == []
