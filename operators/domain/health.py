"""Pipeline-health alerts (design.md 3.5), keyed by topic bucket, opened and resolved on W.

The normalize step counts, per input batch, the messages and dead letters of each topic per
minute of received_at (`TopicMinute`). This stage sums them per topic and minute, and once W has
passed a minute the minute is closed (complete: every message received in it has been counted),
so everything below is a function of the messages, not of their arrival order:

- `feed_silent`: a topic that usually carries messages (at least `min_gaps` gaps seen between its
  minutes with traffic) and has had none for `factor` x its median gap (at least `min_silence`).
  Opened at last message minute + that threshold, resolved by the next minute with traffic.
- `dead_letter_rate`: of a topic's messages received in the hour up to a closed minute, more
  than `rate` were dead letters (at least `min_messages` messages in that hour). Opened at the end
  of the first such minute, resolved at the end of the first minute back under the threshold.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from statistics import median
from typing import Any

import msgspec

from operators.domain.alerts import OPEN, RESOLVED, WARNING, Alert, alert_id, details_json, iso, with_alert
from operators.domain.watermark import OrderKey

FEED_SILENT = "feed_silent"
DEAD_LETTER_RATE = "dead_letter_rate"
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
GAPS_KEPT = 50


@dataclass(frozen=True)
class HealthConfig:
    silent_factor: float = 10.0
    silent_min_ms: int = 30 * MINUTE_MS
    silent_min_gaps: int = 10
    dead_letter_rate: float = 0.05
    dead_letter_min_messages: int = 20


class TopicMinute(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """Messages and dead letters of one topic received in one minute (its start, epoch ms), from
    one input batch."""

    topic: str
    minute_ms: int
    messages: int
    dead: int


class TopicHealth(msgspec.Struct, gc=False, array_like=True):
    """One topic. Discarded when: never (topics are configuration-sized)."""

    open_minutes: dict[int, list[int]] = {}  # minute -> [messages, dead], not yet closed
    hour: list[tuple[int, int, int]] = []  # closed minutes with traffic within the last hour
    last_traffic: int | None = None  # start of the last closed minute with traffic
    gaps: list[int] = []  # the last GAPS_KEPT gaps between minutes with traffic (ms)
    silent: Alert | None = None
    rate: Alert | None = None
    # When to look at silence next (None: it cannot open): first the earliest it could open (the
    # last traffic + the minimum), then, once the median gap is taken (`silent_exact`), when it opens.
    silent_due: int | None = None
    silent_exact: bool = False
    hour_messages: int = 0  # sums over `hour`
    hour_dead: int = 0


class HealthState(msgspec.Struct, gc=False):
    topics: dict[str, TopicHealth] = {}
    # Heap of (minute end, topic): minutes to close. Discarded when: W passes them.
    closing: list[tuple[int, str]] = []
    now: int = -(2**62)


class HealthLogic:
    """The topics of one bucket."""

    __slots__ = ("config", "state")

    def __init__(self, config: HealthConfig | None = None, state: HealthState | None = None) -> None:
        self.config = config if config is not None else HealthConfig()
        self.state = state if state is not None else HealthState()

    def apply(self, key: OrderKey, item: Any, out: list[Any]) -> None:
        if not isinstance(item, TopicMinute):  # pragma: no cover - the flow routes only these here
            raise TypeError(f"health: unexpected {type(item).__name__}")
        topic = self.state.topics.get(item.topic)
        if topic is None:
            topic = self.state.topics[item.topic] = TopicHealth()
        counts = topic.open_minutes.get(item.minute_ms)
        if counts is None:
            counts = topic.open_minutes[item.minute_ms] = [0, 0]
            heapq.heappush(self.state.closing, (item.minute_ms + MINUTE_MS, item.topic))
        counts[0] += item.messages
        counts[1] += item.dead
        if item.minute_ms + MINUTE_MS <= self.state.now:  # late: its minute closed already
            self._close_due(self.state.now, out)

    def fire_until(self, time_ms: int, out: list[Any]) -> None:
        state = self.state
        if time_ms <= state.now:
            return
        state.now = time_ms
        if state.closing and state.closing[0][0] < time_ms:
            self._close_due(time_ms, out)
        for name in sorted(state.topics):
            topic = state.topics[name]
            if topic.silent_due is not None and topic.silent_due <= time_ms:
                self._silence_due(name, topic, time_ms, out)

    def flush(self, out: list[Any]) -> None:
        return None

    def _close_due(self, now: int, out: list[Any]) -> None:
        state = self.state
        while state.closing and state.closing[0][0] < now:
            end, name = heapq.heappop(state.closing)
            topic = state.topics[name]
            counts = topic.open_minutes.pop(end - MINUTE_MS, None)
            if counts is not None:
                self._closed(name, topic, end - MINUTE_MS, counts[0], counts[1], out)

    def _closed(self, name: str, topic: TopicHealth, minute: int, messages: int, dead: int, out: list[Any]) -> None:
        """A complete minute of a topic (in time order, minutes with traffic only)."""
        if messages:
            if topic.last_traffic is not None and minute > topic.last_traffic:
                topic.gaps.append(minute - topic.last_traffic)
                del topic.gaps[:-GAPS_KEPT]
            if topic.last_traffic is None or minute > topic.last_traffic:
                topic.last_traffic = minute
            if topic.silent is not None and topic.silent.state == OPEN:
                details = details_json(topic=name, summary=f"traffic again from {iso(minute)}")
                topic.silent = with_alert(
                    topic.silent, state=RESOLVED, resolved_at=minute, details=details, version=topic.silent.version + 1
                )
                out.append(topic.silent)
            self._arm_silence(topic)
        end = minute + MINUTE_MS
        hour = topic.hour
        stale = 0
        while stale < len(hour) and hour[stale][0] <= end - HOUR_MS:
            topic.hour_messages -= hour[stale][1]
            topic.hour_dead -= hour[stale][2]
            stale += 1
        if stale:
            del hour[:stale]
        hour.append((minute, messages, dead))
        topic.hour_messages += messages
        topic.hour_dead += dead
        self._check_rate(name, topic, end, out)

    def _check_rate(self, name: str, topic: TopicHealth, end: int, out: list[Any]) -> None:
        config = self.config
        messages, dead = topic.hour_messages, topic.hour_dead
        share = dead / messages if messages else 0.0
        high = messages >= config.dead_letter_min_messages and share > config.dead_letter_rate
        alert = topic.rate
        is_open = alert is not None and alert.state == OPEN
        if high == is_open:
            return  # nothing changes: no details to build
        details = details_json(
            topic=name,
            messages=messages,
            dead_letters=dead,
            share=round(share, 4),
            threshold=config.dead_letter_rate,
            window_end=iso(end),
            summary=f"{dead} of {messages} messages in the hour up to {iso(end)} were dead letters",
        )
        if high and not is_open:
            version = 1 if alert is None else alert.version + 1
            topic.rate = _alert(DEAD_LETTER_RATE, name, end, details, version)
            out.append(topic.rate)
        elif not high and is_open and alert is not None:
            topic.rate = with_alert(alert, state=RESOLVED, resolved_at=end, details=details, version=alert.version + 1)
            out.append(topic.rate)

    def _arm_silence(self, topic: TopicHealth) -> None:
        """After a minute with traffic: silence cannot open before the minimum quiet time; its
        median gap is only taken then (a busy feed never gets that far)."""
        topic.silent_exact = False
        if topic.last_traffic is None or len(topic.gaps) < self.config.silent_min_gaps:
            topic.silent_due = None  # not a feed that usually carries messages (yet)
            return
        topic.silent_due = topic.last_traffic + MINUTE_MS + self.config.silent_min_ms

    def _silence_due(self, name: str, topic: TopicHealth, now: int, out: list[Any]) -> None:
        if not topic.silent_exact:
            assert topic.last_traffic is not None
            threshold = max(int(self.config.silent_factor * median(topic.gaps)), self.config.silent_min_ms)
            topic.silent_due = topic.last_traffic + MINUTE_MS + threshold
            topic.silent_exact = True
            if topic.silent_due > now:
                return
        self._open_silence(name, topic, out)

    def _open_silence(self, name: str, topic: TopicHealth, out: list[Any]) -> None:
        due, last = topic.silent_due, topic.last_traffic
        assert due is not None and last is not None
        topic.silent_due = None  # open until traffic comes back (which re-arms it)
        if topic.silent is not None and topic.silent.state == OPEN:
            return
        quiet_since = last + MINUTE_MS
        usual = median(topic.gaps)
        version = 1 if topic.silent is None else topic.silent.version + 1
        details = details_json(
            topic=name,
            last_message_minute=iso(last),
            median_gap_ms=int(usual),
            threshold_ms=due - quiet_since,
            summary=f"no message since {iso(quiet_since)}: {self.config.silent_factor:g} x its median gap",
        )
        topic.silent = _alert(FEED_SILENT, name, due, details, version)
        out.append(topic.silent)


def _alert(rule: str, topic: str, at: int, details: str, version: int) -> Alert:
    return Alert(
        alert_id=alert_id(rule, f"topic:{topic}"),
        rule=rule,
        handoff="",
        severity=WARNING,
        entity=f"topic:{topic}",
        delivery_id="",
        site="",
        sku="",
        state=OPEN,
        due_at=at,
        opened_at=at,
        resolved_at=None,
        details=details,
        version=version,
    )


def minute_of(received_ms: int) -> int:
    return received_ms - received_ms % MINUTE_MS
