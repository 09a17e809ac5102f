"""The bytewax wrapper of operators.domain.core.DomainCore (one key: "core").

Event time comes in as ticks (operators/watermark.py), never from `notify_at`. The only use of
the system clock is live mode: when no input arrived for `idle_timeout`, W moves on with the
clock so that a quiet feed still fires SLA alerts (design.md 3.1).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import bytewax.operators as op
from typing_extensions import override

from flows.snapshots import freeze, thaw
from operators.domain.core import CoreConfig, CoreState, DomainCore, DomainOutput
from operators.domain.watermark import Tick
from operators.master import MasterData
from operators.model import CanonicalEvent

CORE_KEY = "core"


class CoreLogic(op.StatefulBatchLogic[CanonicalEvent | Tick, DomainOutput, bytes]):
    def __init__(
        self,
        config: CoreConfig,
        master: MasterData,
        buckets: int,
        resume: bytes | None,
        idle_timeout: timedelta | None,
        recovery: bool,
    ) -> None:
        self.core = DomainCore(config, master, buckets, thaw(resume, CoreState))
        self.recovery = recovery
        self.idle_timeout = idle_timeout
        self.last_input = datetime.now(UTC)

    @override
    def on_batch(self, values: list[CanonicalEvent | Tick]) -> tuple[list[DomainOutput], bool]:
        self.last_input = datetime.now(UTC)
        if self.idle_timeout is None:
            return self.core.on_items(values), self.RETAIN  # replay: W from the data alone
        now_ms = time.time_ns() // 1_000_000
        idle_ms = int(self.idle_timeout / timedelta(milliseconds=1))
        return self.core.on_items(values, now_ms, idle_ms), self.RETAIN

    @override
    def on_notify(self) -> tuple[list[DomainOutput], bool]:
        return self.core.idle(datetime.now(UTC) - self.last_input), self.RETAIN

    @override
    def notify_at(self) -> datetime | None:
        if self.idle_timeout is None:
            return None  # replay: W only moves with the data, and at the end of the input
        return max(self.last_input + self.idle_timeout, datetime.now(UTC) + self.idle_timeout / 10)

    @override
    def on_eof(self) -> tuple[list[DomainOutput], bool]:
        return self.core.finish(), self.RETAIN

    @override
    def snapshot(self) -> bytes:
        return freeze(self.core.state, self.recovery)
