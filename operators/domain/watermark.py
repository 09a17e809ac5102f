"""Event time through the keyed stages (design.md 3.1): frontiers, the watermark W and the
reorder buffer every stage applies its inputs through.

bytewax's `notify_at` is wall-clock time and its EventClock busy-loops on historical data
(bytewax guide 2.4, 3.3), so the flow carries event time itself, inside the packets that carry
the data. Every packet a sender (a source partition, or a bucket of an upstream stage) sends to a
bucket carries the sender's *promise*: no item with an order time at or below it will follow on
that channel. Channels are FIFO, so a bucket that holds a promise from **every** sender it can
hear from knows that every item up to

    W = min over its senders of their promise

has reached it. Nothing is known until every expected sender has spoken: the set of senders is
configuration (the input partitions, the upstream bucket count), never "those seen so far".

A sender that is done (the end of a replay, a Kafka partition read to its end offset) no longer
holds W back; it leaves its *final* time, and when every sender is done, W = the largest final
time (design.md 3.1: at the end of a replay W = max(received_at seen), not infinity, so that no
SLA deadline after the data fires). Live inputs never finish: a caught-up Kafka partition
promises the wall clock instead (sources/kafka.py), so a quiet feed does not stop the alerts.

Each stage applies its inputs in order-key order, `(time ms, tie, seq)`, as W passes them, so
what it computes is a function of the set of inputs, not of their arrival order. An input that
arrives with its time at or below W already (later than the allowed lateness) is applied at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Any

# (time in epoch ms, tie-break text, sequence): the order in which a stage applies its inputs.
OrderKey = tuple[int, str, int]


class Frontiers:
    """The promises of one bucket's senders, and the watermark they allow.

    Discarded when: never per sender; one entry per expected sender (topology-sized).
    """

    __slots__ = ("_active", "done", "expected", "finals", "promises")

    def __init__(self, expected: Iterable[str]) -> None:
        self.expected = frozenset(expected)
        self.promises: dict[str, int] = {}
        self.finals: dict[str, int | None] = {}  # sender -> its final time (None: it sent nothing)
        self.done: set[str] = set()
        self._active = len(self.expected)

    def update(self, sender: str, promise: int | None, done: bool = False) -> None:
        """A sender's newest promise (never moves back), or its final time when `done` (the
        largest of the final promise and every earlier one; None if it never promised anything)."""
        if sender in self.done or sender not in self.expected:
            return
        if done:
            earlier = self.promises.pop(sender, None)
            finals = [value for value in (promise, earlier) if value is not None]
            self.done.add(sender)
            self.finals[sender] = max(finals) if finals else None
            self._active -= 1
            return
        if promise is not None and promise > self.promises.get(sender, promise - 1):
            self.promises[sender] = promise

    def current(self) -> int | None:
        """W, or None while some expected sender has not spoken."""
        if self._active <= 0:
            finals = [value for value in self.finals.values() if value is not None]
            return max(finals) if finals else None
        if len(self.promises) < self._active:
            return None
        return min(self.promises.values())

    @property
    def all_done(self) -> bool:
        return self._active <= 0

    def state(self) -> tuple[dict[str, int], dict[str, int | None]]:
        return dict(self.promises), dict(self.finals)

    def restore(self, promises: dict[str, int], finals: dict[str, int | None]) -> None:
        self.promises = {s: p for s, p in promises.items() if s in self.expected}
        self.finals = {s: f for s, f in finals.items() if s in self.expected}
        self.done = set(self.finals)
        self._active = len(self.expected) - len(self.done)


class Reorder:
    """Inputs waiting for W, released in order-key order.

    Discarded when: released (W reaches the input's time). Holds about `allowed_lateness` of input.
    """

    __slots__ = ("_count", "heap")

    def __init__(self) -> None:
        # (key, arrival count, item): the count only breaks ties between equal keys (the same input
        # sent twice), so items themselves are never compared.
        self.heap: list[tuple[OrderKey, int, Any]] = []
        self._count = 0

    def push(self, key: OrderKey, item: Any) -> None:
        self._count += 1
        heapq.heappush(self.heap, (key, self._count, item))

    def pop_until(self, watermark: int) -> Iterator[tuple[OrderKey, Any]]:
        heap = self.heap
        while heap and heap[0][0][0] <= watermark:
            key, _, item = heapq.heappop(heap)
            yield key, item

    def newest(self) -> int | None:
        """The largest time waiting (for the end of input)."""
        return max((entry[0][0] for entry in self.heap), default=None)

    def __len__(self) -> int:
        return len(self.heap)
