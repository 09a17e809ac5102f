"""The time-dependent domain core: correlation, lifecycle, handoffs, SLA alerts, inventory ledger.

One `DomainCore` sees every new canonical event and every watermark tick, in the order the flow
delivers them, and drives the pure state machines with an explicit watermark:

    event -> reorder buffer, released in (received_at, event_id) order once W >= received_at
          -> XrefCorrelator (carrier events get their delivery_id) -> DeliveryLifecycle
          -> InventoryLedger (by site)
    tick  -> Watermark; when W moves: release the buffer up to W, then advance(W) on all three

The reorder buffer is what makes every output a function of the event set: whatever the worker
count or the arrival order (within the allowed lateness), the machines see the same sequence.
It delays domain rows by the allowed lateness, never the `events` table. An event that arrives
after W already passed its received_at (later than the lateness allows) is applied at once.

It runs under a single key in the flow so that cross-references, which join events of every
delivery, need no second shuffle; parsing and dedup, the expensive parts, stay parallel.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from operators.domain.alerts import Alert
from operators.domain.correlation import CorrelationState, XrefCorrelator
from operators.domain.delivery_status import DeliveryStatus
from operators.domain.handoffs import DEFAULT_HANDOFFS, Handoff, SyncLatency
from operators.domain.inventory import InventoryLedger
from operators.domain.inventory_units import (
    GraceConfig,
    InventoryDelta,
    InventoryPosition,
    InventoryState,
    ToleranceConfig,
)
from operators.domain.lifecycle import DeliveryLifecycle, LifecycleState
from operators.domain.watermark import Tick, Watermark, WatermarkState
from operators.formats.timeparse import to_epoch_ms
from operators.master import MasterData
from operators.model import CanonicalEvent

DomainOutput: TypeAlias = DeliveryStatus | SyncLatency | Alert | InventoryPosition | InventoryDelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CoreConfig:
    """Everything time- and rule-dependent (design.md 3.1-3.4), with the design's defaults."""

    allowed_lateness: timedelta = timedelta(minutes=5)
    xref_ttl: timedelta = timedelta(days=7)
    retention: timedelta = timedelta(days=30)
    handoffs: tuple[Handoff, ...] = DEFAULT_HANDOFFS
    tolerance: ToleranceConfig = field(default_factory=ToleranceConfig)
    grace: GraceConfig | timedelta = timedelta(hours=1)


@dataclass
class CoreState:
    """The state of all machines; each documents when its entries are discarded."""

    watermark: WatermarkState = field(default_factory=WatermarkState)
    correlation: CorrelationState = field(default_factory=CorrelationState)
    lifecycle: LifecycleState = field(default_factory=LifecycleState)
    inventory: InventoryState = field(default_factory=InventoryState)
    last_watermark_ms: int | None = None
    # Events waiting for W: heap of (received_ms, event_id, event). Discarded when: released.
    pending: list[tuple[int, str, CanonicalEvent]] = field(default_factory=list)


def compact(outputs: list[DomainOutput]) -> list[DomainOutput]:
    """Keep only the last version of each status, latency fact and position within one batch.

    Those tables keep the highest version per entity (ReplacingMergeTree), so the versions a
    batch superseded would only be written to be thrown away. Alerts keep every version (each
    one goes to Kafka and the webhook) and `inventory_deltas` is a time series: both stay whole.
    """
    batch = _Batch()
    batch.extend(outputs)
    return batch.rows()


class _Batch:
    """The outputs of one call, compacted as they arrive (same result as `compact`).

    A superseded row is let go as soon as its successor arrives: held to the end of the batch,
    the many versions a batch supersedes outlived the young garbage-collector generations and
    made the costly full collections (which scan the whole heap) come several times sooner.
    """

    __slots__ = ("_last", "_rows")

    def __init__(self) -> None:
        self._rows: list[DomainOutput | None] = []
        # entity -> index of its latest row in `_rows`. Discarded when: the batch is returned.
        self._last: dict[tuple[str, ...], int] = {}

    def append(self, row: DomainOutput) -> None:
        self.extend((row,))

    def extend(self, rows: Iterable[DomainOutput]) -> None:
        kept, last = self._rows, self._last
        for row in rows:
            if isinstance(row, DeliveryStatus):
                key: tuple[str, ...] = ("status", row.delivery_id)
            elif isinstance(row, SyncLatency):
                key = ("latency", row.handoff, row.delivery_id)
            elif isinstance(row, InventoryPosition):
                key = ("position", row.site, row.sku, row.uom)
            else:
                kept.append(row)  # alerts and deltas: every version stays
                continue
            superseded = last.get(key)
            if superseded is not None:
                kept[superseded] = None
            last[key] = len(kept)
            kept.append(row)

    def rows(self) -> list[DomainOutput]:
        return [row for row in self._rows if row is not None]


def from_ms(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


class DomainCore:
    def __init__(self, config: CoreConfig, master: MasterData, buckets: int, state: CoreState | None = None) -> None:
        state = state if state is not None else CoreState()
        self.state = state
        self.watermark = Watermark(int(config.allowed_lateness / timedelta(milliseconds=1)), buckets, state.watermark)
        self.correlator = XrefCorrelator(config.xref_ttl, config.retention, state.correlation)
        self.lifecycle = DeliveryLifecycle(config.handoffs, config.retention, state=state.lifecycle)
        self.inventory = InventoryLedger(
            master, config.tolerance, config.grace, state=state.inventory, retention=config.retention
        )

    def on_items(
        self, items: list[CanonicalEvent | Tick], now_ms: int | None = None, idle_ms: int | None = None
    ) -> list[DomainOutput]:
        """Events and ticks in arrival order; W moves (and deadlines fire) after the batch.

        `now_ms`/`idle_ms` (system time, live mode only) let idle partitions stop holding W back.
        """
        out = _Batch()
        last = self.state.last_watermark_ms
        for item in items:
            if isinstance(item, Tick):
                self.watermark.observe(item, now_ms)
                continue
            received_ms = to_epoch_ms(item.received_at)
            if last is not None and received_ms <= last:
                self._on_event(item, out)  # later than the allowed lateness: apply at once
            else:
                heapq.heappush(self.state.pending, (received_ms, item.event_id, item))
        current = self.watermark.current_ms(now_ms, idle_ms)
        if current is not None:
            self._advance(current, out)
        return out.rows()

    def finish(self) -> list[DomainOutput]:
        """End of a replay: W = max(received_at seen) (design.md 3.1)."""
        out = _Batch()
        final = self.watermark.final_ms()
        if self.state.pending:
            newest_pending = max(received_ms for received_ms, _, _ in self.state.pending)
            final = newest_pending if final is None else max(final, newest_pending)
        if final is not None:
            self._advance(final, out)
        return out.rows()

    def idle(self, idle_for: timedelta) -> list[DomainOutput]:
        """Live inputs idle for `idle_for` of system time: W moves on with the clock."""
        out = _Batch()
        moved = self.watermark.idle_ms(int(idle_for / timedelta(milliseconds=1)))
        if moved is not None:
            self._advance(moved, out)
        return out.rows()

    def _on_event(self, event: CanonicalEvent, out: _Batch) -> None:
        inventory_rows = self.inventory.on_event(event)  # by site: needs no correlation
        if inventory_rows:
            out.extend(inventory_rows)
        for item in self.correlator.on_event(event):
            if isinstance(item, Alert):
                out.append(item)
            else:
                delivery_rows = self.lifecycle.on_event(item)
                if delivery_rows:
                    out.extend(delivery_rows)

    def _advance(self, watermark_ms: int, out: _Batch) -> None:
        if self.state.last_watermark_ms is not None and watermark_ms <= self.state.last_watermark_ms:
            return
        self.state.last_watermark_ms = watermark_ms
        pending = self.state.pending
        while pending and pending[0][0] <= watermark_ms:
            self._on_event(heapq.heappop(pending)[2], out)
        watermark = from_ms(watermark_ms)
        for item in self.correlator.advance(watermark):
            if isinstance(item, Alert):
                out.append(item)
            else:
                out.extend(self.lifecycle.on_event(item))  # an orphan released unenriched
        out.extend(self.lifecycle.advance(watermark))
        out.extend(self.inventory.advance(watermark))

    @property
    def watermark_at(self) -> datetime | None:
        last = self.state.last_watermark_ms
        return None if last is None else from_ms(last)

    def snapshot(self) -> CoreState:
        """A copy later calls do not change (bytewax pickles it at every epoch)."""
        return CoreState(
            watermark=copy.deepcopy(self.state.watermark),
            correlation=self.correlator.snapshot(),
            lifecycle=self.lifecycle.snapshot(),
            inventory=copy.deepcopy(self.inventory.state),
            last_watermark_ms=self.state.last_watermark_ms,
            pending=list(self.state.pending),
        )
