"""Pipeline-health alerts: feed_silent and dead_letter_rate, on closed minutes and W."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.domain.alerts import OPEN, RESOLVED, Alert
from operators.domain.health import (
    DEAD_LETTER_RATE,
    FEED_SILENT,
    MINUTE_MS,
    HealthConfig,
    HealthLogic,
    TopicMinute,
)
from operators.domain.stage import Bucket

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CONFIG = HealthConfig(silent_factor=5, silent_min_ms=10 * MINUTE_MS, silent_min_gaps=3, dead_letter_rate=0.1)


def minute(topic: str, index: int, messages: int = 1, dead: int = 0) -> tuple[tuple[int, str, int], TopicMinute]:
    start = T0 + index * MINUTE_MS
    return (start + MINUTE_MS, topic, 0), TopicMinute(topic, start, messages, dead)


def run(
    items: list[tuple[tuple[int, str, int], TopicMinute]], until: int, config: HealthConfig = CONFIG
) -> list[Alert]:
    """Items sent by one source in one packet, then W = `until` (a done source)."""
    bucket = Bucket(["s"], HealthLogic(config))
    out: list[Any] = []
    bucket.receive("s", until, False, items, out)
    bucket.receive("s", until, True, [], out)
    bucket.settle(out)
    return [row for row in out if isinstance(row, Alert)]


def test_a_feed_that_stops_opens_feed_silent_at_five_times_its_median_gap() -> None:
    # traffic every 4 minutes (gaps 4 min): silent threshold max(5 x 4 min, 10 min) = 20 min
    items = [minute("wms.edi", index) for index in range(0, 20, 4)]  # minutes 0, 4, ..., 16
    alerts = run(items, until=T0 + 40 * MINUTE_MS)
    (alert,) = alerts
    assert (alert.rule, alert.state, alert.entity) == (FEED_SILENT, OPEN, "topic:wms.edi")
    assert alert.opened_at == T0 + 17 * MINUTE_MS + 20 * MINUTE_MS  # quiet since the end of minute 16


def test_feed_silent_waits_for_enough_history_and_for_the_threshold() -> None:
    few = [minute("erp", index) for index in (0, 4)]  # one gap only: not a feed we know yet
    assert run(few, until=T0 + 300 * MINUTE_MS) == []
    items = [minute("erp", index) for index in range(0, 20, 4)]
    assert run(items, until=T0 + 36 * MINUTE_MS) == []  # due at 37 min: not yet


def test_traffic_again_resolves_feed_silent() -> None:
    items = [minute("erp", index) for index in range(0, 20, 4)] + [minute("erp", 60)]
    alerts = run(items, until=T0 + 75 * MINUTE_MS)
    assert [(a.state, a.version) for a in alerts] == [(OPEN, 1), (RESOLVED, 2)]
    assert alerts[1].resolved_at == T0 + 60 * MINUTE_MS
    # quiet again: the median gap is still 4 minutes, so it reopens 20 minutes after minute 60
    again = run(items, until=T0 + 90 * MINUTE_MS)
    assert [(a.state, a.version, a.opened_at) for a in again][-1] == (OPEN, 3, T0 + 61 * MINUTE_MS + 20 * MINUTE_MS)


def test_dead_letter_rate_opens_above_the_share_and_resolves_below() -> None:
    healthy = [minute("carrier.edi", index, messages=10) for index in range(30)]
    bad = [minute("carrier.edi", index, messages=10, dead=10) for index in range(30, 40)]
    later = [minute("carrier.edi", index, messages=10) for index in range(40, 200)]
    alerts = run(healthy + bad + later, until=T0 + 200 * MINUTE_MS)
    rate = [a for a in alerts if a.rule == DEAD_LETTER_RATE]
    assert [a.state for a in rate] == [OPEN, RESOLVED]
    # the minute ends where the share of the hour before crosses 10 %, computed independently
    opened = min(
        end
        for end in range(T0 + MINUTE_MS, T0 + 200 * MINUTE_MS + 1, MINUTE_MS)
        if _share(healthy + bad + later, end) > 0.1
    )
    assert rate[0].opened_at == opened
    closed = min(
        end for end in range(opened, T0 + 200 * MINUTE_MS + 1, MINUTE_MS) if _share(healthy + bad + later, end) <= 0.1
    )
    assert rate[1].resolved_at == closed


def _share(items: list[tuple[tuple[int, str, int], TopicMinute]], end: int) -> float:
    window = [item for _, item in items if end - 60 * MINUTE_MS <= item.minute_ms < end]
    messages = sum(item.messages for item in window)
    return sum(item.dead for item in window) / messages if messages >= 20 else 0.0


def test_few_messages_never_open_dead_letter_rate() -> None:
    items = [minute("erp", 0, messages=3, dead=3)]
    assert [a for a in run(items, until=T0 + 120 * MINUTE_MS) if a.rule == DEAD_LETTER_RATE] == []


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_alerts_do_not_depend_on_how_counts_are_split_or_ordered(rng: random.Random) -> None:
    """A minute's counts may come from many batches and partitions, in any order."""
    base = [minute("t", index, messages=5, dead=2 if 50 <= index < 60 else 0) for index in range(0, 150, 2)]
    split: list[tuple[tuple[int, str, int], TopicMinute]] = []
    for key, item in base:
        for part in range(item.messages):
            split.append((key, TopicMinute(item.topic, item.minute_ms, 1, int(part < item.dead))))
    rng.shuffle(split)
    assert run(split, until=T0 + 400 * MINUTE_MS) == run(base, until=T0 + 400 * MINUTE_MS)


@pytest.mark.parametrize("lateness", [0, 5 * MINUTE_MS])
def test_a_source_promise_trails_by_the_lateness_until_done(lateness: int) -> None:
    bucket = Bucket(["s"], HealthLogic(CONFIG), lateness_ms=lateness)
    out: list[Any] = []
    bucket.receive("s", T0 + 30 * MINUTE_MS, False, [], out)
    bucket.settle(out)
    assert bucket.watermark == T0 + 30 * MINUTE_MS - lateness
    bucket.receive("s", None, True, [], out)
    bucket.settle(out)
    assert bucket.watermark == T0 + 30 * MINUTE_MS  # the end of the input: no lateness left
