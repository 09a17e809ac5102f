"""The alert clock of design.md 3.1: a watermark on `received_at`, carried explicitly.

bytewax's `notify_at` is wall-clock time and its EventClock busy-loops on historical data
(bytewax guide 2.4, 3.3), so the flow carries event time itself: after every input batch the
normalize step sends a `Tick` (the largest received_at of that source partition so far) to
every dedup bucket; each bucket forwards it after the events it judged before it, along the same
path as the events. A downstream stage therefore knows that every event of partition p with
received_at <= t has reached it once *every* bucket has forwarded a tick >= t for p, and

    W = min over source partitions p of (min over buckets of the last tick for p) - allowed_lateness

At the end of a replay W = max(received_at seen). In live mode two things use the system clock,
passed in explicitly: a source partition that has made no progress for `idle_ms` no longer holds
W back (as Flink's `withIdleness`: a quiet topic such as daily snapshots must not delay SLA
alerts for hours), and when every input is idle W moves on with the clock (`idle_ms()`).
Replays pass no clock, so their W is a function of the data alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Tick:
    """Event-time progress of one source partition, as seen through one dedup bucket."""

    source: str  # "<topic>:<partition>" of a Kafka input, or the replay partition
    bucket: str  # the dedup bucket that forwarded it ("" before dedup)
    received_ms: int


@dataclass
class WatermarkState:
    """Last tick per source partition and bucket.

    Discarded when: never per entry; it holds one int per (source partition, bucket), which is
    bounded by the topology (partitions x buckets), not by the data.
    """

    ticks: dict[str, dict[str, int]] = field(default_factory=dict)
    max_received_ms: int | None = None
    # Live mode only: system time (ms) at which each source partition last made progress.
    progressed_at: dict[str, int] = field(default_factory=dict)


class Watermark:
    def __init__(self, lateness_ms: int, buckets: int, state: WatermarkState | None = None) -> None:
        self.lateness_ms = lateness_ms
        self.buckets = buckets
        self.state = state if state is not None else WatermarkState()

    def observe(self, tick: Tick, now_ms: int | None = None) -> None:
        per_bucket = self.state.ticks.setdefault(tick.source, {})
        if tick.received_ms > per_bucket.get(tick.bucket, -(2**62)):
            per_bucket[tick.bucket] = tick.received_ms
            if now_ms is not None:
                self.state.progressed_at[tick.source] = now_ms
        if self.state.max_received_ms is None or tick.received_ms > self.state.max_received_ms:
            self.state.max_received_ms = tick.received_ms

    def current_ms(self, now_ms: int | None = None, idle_ms: int | None = None) -> int | None:
        """W in epoch ms, or None until every bucket has reported for every known partition.

        With `now_ms` and `idle_ms` (live mode), partitions idle for longer are left out, unless
        every partition is idle.
        """
        sources = self.state.ticks
        if now_ms is not None and idle_ms is not None:
            progressed = self.state.progressed_at
            active = {s: b for s, b in sources.items() if now_ms - progressed.get(s, now_ms) <= idle_ms}
            sources = active or sources
        lows = []
        for per_bucket in sources.values():
            if len(per_bucket) < self.buckets:
                return None
            lows.append(min(per_bucket.values()))
        if not lows:
            return None
        return min(lows) - self.lateness_ms

    def final_ms(self) -> int | None:
        """W at the end of a replay: the largest received_at seen, no lateness."""
        return self.state.max_received_ms

    def idle_ms(self, idle_for_ms: int) -> int | None:
        """W while live inputs have been idle for `idle_for_ms` of system time: it moves on with
        the clock from the last progress, so a quiet feed still fires alerts."""
        if self.state.max_received_ms is None:
            return None
        return self.state.max_received_ms - self.lateness_ms + idle_for_ms
