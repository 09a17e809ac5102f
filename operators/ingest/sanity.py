"""Which received_at values and quantities the pipeline accepts (issue: no poison message).

A message whose received_at (its Kafka timestamp, or a replay line's field) is far outside any
plausible time (`9999-12-31`, `0001-01-01`, a producer's clock decades off) would move the
watermark to that time and fire or suppress every SLA deadline at once. It is dead-lettered
(`schema_error`) instead and never counts towards the watermark. In live mode the source also
bounds it by the wall clock (`horizon_ms`: one day ahead of it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from operators.formats.timeparse import to_epoch_ms
from operators.model import CanonicalEvent

EARLIEST_MS = to_epoch_ms(datetime(2000, 1, 1, tzinfo=UTC))
LATEST_MS = to_epoch_ms(datetime(2100, 1, 1, tzinfo=UTC))
LIVE_AHEAD_MS = 86_400_000  # live mode: a received_at more than a day ahead of the clock is absurd
# A line quantity beyond this (a trillion units of anything) is absurd; it would also make the
# inventory ledger's sums overflow (two 1e308 quantities sum to inf).
MAX_QUANTITY = 1e12


def is_sane_received(received_ms: int, horizon_ms: int | None = None) -> bool:
    upper = LATEST_MS if horizon_ms is None else min(LATEST_MS, horizon_ms)
    return EARLIEST_MS <= received_ms < upper


def insane_reason(received_at: datetime, horizon_ms: int | None = None) -> str:
    ahead = "" if horizon_ms is None else ", nor more than a day ahead of the clock"
    return (
        f"received_at {received_at.isoformat()} is outside the accepted range "
        f"2000-01-01..2100-01-01{ahead}; it would move the watermark, so the message is set aside"
    )


def quantity_problem(events: Iterable[CanonicalEvent]) -> str | None:
    """Why an adapter's events can't be taken (a line quantity outside +-MAX_QUANTITY), or None."""
    for event in events:
        for line in event.lines:
            if not -MAX_QUANTITY <= line.quantity <= MAX_QUANTITY:
                return (
                    f"line quantity {line.quantity!r} of sku {line.sku!r} is outside +-{MAX_QUANTITY:g}; "
                    "no inventory position holds that much, and the ledger's sums would overflow"
                )
    return None
