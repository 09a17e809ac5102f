"""Small canonical-event builders and a hand driver for the stateful operator tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from operators.domain.stage import Logic
from operators.domain.watermark import OrderKey
from operators.formats.timeparse import to_epoch_ms
from operators.model import CanonicalEvent, EventType, Milestone, SourceKind, TimePrecision

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)

_FORMATS = {
    SourceKind.ERP: "sap_ce",
    SourceKind.WMS: "x12_945",
    SourceKind.CARRIER: "x12_214",
    SourceKind.SNAPSHOT: "snapshot",
}


def at(minutes: float = 0, *, days: float = 0) -> datetime:
    """T0 plus an offset."""
    return T0 + timedelta(minutes=minutes, days=days)


def event(
    event_type: EventType,
    event_id: str,
    *,
    kind: SourceKind,
    occurred: datetime = T0,
    recorded: datetime | None = None,
    received: datetime | None = None,
    delivery_id: str | None = "D1",
    order_id: str | None = None,
    site: str | None = None,
    milestone: Milestone | None = None,
    tracking_number: str | None = None,
    shipment_ref: str | None = None,
    carrier: str | None = None,
) -> CanonicalEvent:
    """An event; recorded defaults to occurred, received to recorded (or occurred)."""
    recorded_at = recorded if recorded is not None else occurred
    return CanonicalEvent(
        event_id=event_id,
        event_type=event_type,
        source_kind=kind,
        source_format=_FORMATS[kind],
        source_system="test",
        occurred_at=occurred,
        recorded_at=recorded_at,
        received_at=received if received is not None else recorded_at,
        time_precision=TimePrecision.S,
        delivery_id=delivery_id,
        order_id=order_id,
        site=site,
        milestone=milestone,
        tracking_number=tracking_number,
        shipment_ref=shipment_ref,
        carrier=carrier,
        raw_ref=f"test:0:{event_id}",
    )


def released(event_id: str = "rel", **kw: object) -> CanonicalEvent:
    return event(EventType.ORDER_RELEASED, event_id, kind=SourceKind.ERP, **kw)


def wms(event_type: EventType, event_id: str, **kw: object) -> CanonicalEvent:
    return event(event_type, event_id, kind=SourceKind.WMS, **kw)


def erp(event_type: EventType, event_id: str, **kw: object) -> CanonicalEvent:
    return event(event_type, event_id, kind=SourceKind.ERP, **kw)


def carrier(milestone: Milestone, event_id: str, **kw: object) -> CanonicalEvent:
    return event(EventType.CARRIER_STATUS, event_id, kind=SourceKind.CARRIER, milestone=milestone, **kw)


def ms(minutes: float = 0, *, days: float = 0) -> int:
    """T0 plus an offset, in epoch milliseconds (the domain's time)."""
    return to_epoch_ms(at(minutes, days=days))


# -- driving a stage logic by hand ---------------------------------------------------------------

Keyed = tuple[OrderKey, Any]


def key_of(event: CanonicalEvent) -> OrderKey:
    """The order key dedup gives a new event: (received ms, event_id, 0)."""
    return (to_epoch_ms(event.received_at), event.event_id, 0)


L = TypeVar("L", bound=Logic)


class Driver(Generic[L]):
    """A stage logic driven by hand the way its bucket drives it (operators.domain.stage): before
    each input the logic's clock moves to the input's time (timers due by then fire first), and
    every call ends with one `flush` (a batch). An input older than the clock is a late input,
    applied at the clock as the bucket applies one that arrives below W."""

    def __init__(self, logic: L) -> None:
        self.logic = logic

    def feed(self, *inputs: CanonicalEvent | Keyed) -> list[Any]:
        """One batch; events get `key_of`, other items come as (key, item)."""
        out: list[Any] = []
        for entry in inputs:
            order_key, item = entry if isinstance(entry, tuple) else (key_of(entry), entry)
            self.logic.fire_until(order_key[0], out)
            self.logic.apply(order_key, item, out)
        self.logic.flush(out)
        return out

    def advance(self, watermark: int) -> list[Any]:
        """W moves (never back): timers fire, then the batch is flushed."""
        out: list[Any] = []
        self.logic.fire_until(watermark, out)
        self.logic.flush(out)
        return out
