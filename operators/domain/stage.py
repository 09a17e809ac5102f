"""One bucket of a keyed, ordered stage: its senders' frontiers, its reorder buffer and its logic.

The flow (flows/stages.py) hands a bucket the packets that reached it; the bucket records each
sender's promise, buffers the items, and once W moves applies every item up to W in order-key
order, firing the logic's timers (SLA deadlines, reference expiry, grace periods) in between:
a timer due at time t fires before an item of time t is applied. Everything the logic emits is
appended to `out`, in order; the flow routes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from operators.domain.watermark import Frontiers, OrderKey, Reorder


class Logic(Protocol):
    """The pure state machine of one bucket (resolution, arbiter, lifecycle, inventory). Its
    `state` is a msgspec Struct: all of it, and what a snapshot holds."""

    state: Any

    def apply(self, key: OrderKey, item: Any, out: list[Any]) -> None:
        """Apply one input, at the logic's clock (the last `fire_until`)."""

    def fire_until(self, time_ms: int, out: list[Any]) -> None:
        """Move the logic's clock to `time_ms` (never back), firing every timer due by then."""

    def flush(self, out: list[Any]) -> None:
        """After a batch of inputs: emit what the batch changed (rows are emitted once per batch)."""


class Bucket:
    """Frontiers + reorder buffer + logic. `watermark` only grows.

    `lateness_ms`: for a bucket that hears the input partitions themselves (their newest received
    time), W trails them by the allowed lateness, until they are all done; buckets that hear
    ordered stages take those stages' W as it is (0)."""

    __slots__ = ("frontiers", "lateness_ms", "logic", "reorder", "watermark")

    def __init__(self, senders: Iterable[str], logic: Logic, lateness_ms: int = 0) -> None:
        self.frontiers = Frontiers(senders)
        self.reorder = Reorder()
        self.logic = logic
        self.lateness_ms = lateness_ms
        self.watermark: int | None = None

    def receive(
        self, sender: str, promise: int | None, done: bool, items: Iterable[tuple[OrderKey, Any]], out: list[Any]
    ) -> None:
        """One packet. Items at or below W already are late: applied at once (design.md 3.1)."""
        watermark = self.watermark
        logic = self.logic
        for key, item in items:
            if watermark is not None and key[0] <= watermark:
                logic.apply(key, item, out)
            else:
                self.reorder.push(key, item)
        self.frontiers.update(sender, promise, done)

    def settle(self, out: list[Any]) -> None:
        """Move W as far as the frontiers allow, applying what it passes; then flush."""
        current = self.frontiers.current()
        if current is not None and self.lateness_ms and not self.frontiers.all_done:
            current -= self.lateness_ms
        logic = self.logic
        if current is not None and (self.watermark is None or current > self.watermark):
            for key, item in self.reorder.pop_until(current):
                logic.fire_until(key[0], out)
                logic.apply(key, item, out)
            logic.fire_until(current, out)
            self.watermark = current
        logic.flush(out)

    @property
    def done(self) -> bool:
        """Every sender is done and nothing waits: this bucket's own output is final."""
        return self.frontiers.all_done and not self.reorder
