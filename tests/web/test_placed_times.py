"""Local times placed in the delivery's site zone (event_links.tz_rule) reach the panels.

No adapter on this branch leaves a zone unresolved yet, so the replay has no such event: here the
real lifecycle places two X12 local times (a 945 that names its delivery, a 214 that resolution
attaches by tracking number) and the real sink stores what it emits.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flows.packets import SinkPacket
from operators.domain.items import Resolved
from operators.domain.lifecycle import EventLink, LifecycleLogic
from operators.formats.timeparse import to_epoch_ms
from operators.master import MasterData, Site
from operators.model import CanonicalEvent, EventType, Milestone, SourceKind, TimePrecision, with_changes
from sinks.clickhouse import ClickHousePartition, SinkConfig, SinkCounters
from sinks.rows import TABLES
from sinks.store import StoreConfig, connect
from web import queries
from web.params import query_values, read_clock
from web.querylib import run_query

pytestmark = pytest.mark.clickhouse

DELIVERY, TRACKING, SITE = "80900001", "1Z999PLACED0000001", "1010"
MASTER = MasterData(sites=(Site(SITE, timezone="America/Chicago"),))  # UTC-6 in March


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _naive(text: str) -> datetime:
    """A UTC time as the store's client returns it (naive)."""
    return datetime.fromisoformat(text)


def _event(event_id: str, event_type: EventType, kind: SourceKind, occurred: str, **fields: Any) -> CanonicalEvent:
    occurred_at = _at(occurred)
    return CanonicalEvent(
        event_id=event_id,
        event_type=event_type,
        source_kind=kind,
        source_format=fields.pop("source_format", "sap-ce"),
        source_system=fields.pop("source_system", "S4"),
        occurred_at=occurred_at,
        recorded_at=_at(fields.pop("recorded")),
        received_at=_at(fields.pop("received")),
        time_precision=TimePrecision.S,
        raw_ref=f"test:0:{event_id}",
        **fields,
    )


RELEASE = _event(
    "release", EventType.ORDER_RELEASED, SourceKind.ERP, "2026-03-02T14:00:00",
    recorded="2026-03-02T14:00:01", received="2026-03-02T14:00:02", delivery_id=DELIVERY, order_id="1109001",
    site=SITE,
)  # fmt: skip
# A 945 and a 214 whose local times no rule could place: read as UTC for now, the wall time kept.
DISPATCH = _event(
    "dispatch", EventType.SHIPMENT_DISPATCHED, SourceKind.WMS, "2026-03-02T10:00:00",
    recorded="2026-03-02T16:10:00", received="2026-03-02T16:11:00", source_format="x12-945",
    source_system="TPL1010", delivery_id=DELIVERY, site=SITE, tracking_number=TRACKING, tz_assumed=True,
    attributes={"tz_rule": "unresolved", "local_time": "2026-03-02T10:00:00"},
)  # fmt: skip
PICKUP = _event(
    "pickup", EventType.CARRIER_STATUS, SourceKind.CARRIER, "2026-03-02T12:30:00",
    recorded="2026-03-02T18:45:00", received="2026-03-02T18:46:00", source_format="x12-214",
    source_system="ODFL", carrier="ODFL", tracking_number=TRACKING, milestone=Milestone.PICKED_UP, tz_assumed=True,
    attributes={"tz_rule": "unresolved", "local_time": "2026-03-02T12:30:00"},
)  # fmt: skip


def _store_lifecycle(store: StoreConfig) -> list[EventLink]:
    """The events as the adapters made them, and every row the lifecycle emits for them."""
    logic = LifecycleLogic(master=MASTER)
    out: list[Any] = []
    resolved = Resolved(with_changes(PICKUP, delivery_id=DELIVERY), "tracking_number", f"ref:{TRACKING}")
    for event, item in ((RELEASE, RELEASE), (DISPATCH, DISPATCH), (PICKUP, resolved)):
        logic.apply((to_epoch_ms(event.received_at), event.event_id, 0), item, out)
    logic.fire_until(to_epoch_ms(PICKUP.received_at), out)
    logic.flush(out)
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for record in (RELEASE, DISPATCH, PICKUP, *out):
        table = TABLES[type(record)]
        tables.setdefault(table.name, []).append(tuple(table.to_row(record)))
    sink = ClickHousePartition(SinkConfig(store, "placed"), "ch-0", SinkCounters(), time.monotonic)
    sink.write_batch([SinkPacket(tables)])
    sink.close()
    return [record for record in out if isinstance(record, EventLink)]


def test_placed_local_times_order_the_timeline_and_measure_source_lag(store: StoreConfig) -> None:
    links = _store_lifecycle(store)
    assert {(link.event_id, link.via, link.tz_rule) for link in links} == {
        ("dispatch", "event", "delivery_site"),
        ("pickup", "tracking_number", "delivery_site"),
    }
    client = connect(store)
    clock = read_clock(client, store.database, datetime.now(UTC))

    def run(name: str, **args: str) -> list[dict[str, Any]]:
        return run_query(client, queries.get(name), store.database, query_values(args, clock)).records()

    timeline = run("delivery_timeline", delivery=DELIVERY)
    # placed: 10:00 and 12:30 Chicago are 16:00 and 18:30 UTC, after the 14:00 release
    columns = ("event_id", "occurred_at", "occurred_at_reported", "tz_rule", "linked_via")
    assert [tuple(row[c] for c in columns) for row in timeline] == [
        ("release", _naive("2026-03-02T14:00:00"), _naive("2026-03-02T14:00:00"), "", "event"),
        ("dispatch", _naive("2026-03-02T16:00:00"), _naive("2026-03-02T10:00:00"), "delivery_site", "event"),
        ("pickup", _naive("2026-03-02T18:30:00"), _naive("2026-03-02T12:30:00"), "delivery_site", "tracking_number"),
    ]  # fmt: skip
    (header,) = run("delivery_header", delivery=DELIVERY)
    assert (header["dispatched_at"], header["picked_up_at"]) == (
        _naive("2026-03-02T16:00:00"),
        _naive("2026-03-02T18:30:00"),
    )
    # source lag (recorded - occurred) from the placed times: 10 and 15 minutes, not 6 h and more
    lags = {r["partner"]: r["source_lag_p50_min"] for r in run("partner_performance")}
    assert lags == {"TPL1010": 10.0, "ODFL": 15.0}
    # the carrier belongs to the delivery through event_links: the partner filter finds it
    assert [r["delivery_id"] for r in run("oldest_in_flight", partner="ODFL")] == [DELIVERY]
    (found,) = run("delivery_search", q=TRACKING.lower())
    assert (found["delivery_id"], found["matched_on"]) == (DELIVERY, "tracking_number")
    assert clock.as_of - _at("2026-03-02T18:46:00") < timedelta(seconds=1)
