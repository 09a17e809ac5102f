"""Whole ingest flow, in-process, into the real ClickHouse engine (chDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.run import run_pipeline
from flows.settings import Settings
from flows.summary import read_summary
from sinks.store import StoreConfig, connect, query_rows
from sources.replay import write_replay

pytestmark = pytest.mark.clickhouse

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def cloud_event(event_id: str, type_: str, data: dict[str, Any], time: str = "2026-03-02T09:00:00Z") -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "type": f"sap.s4.beh.{type_}",
            "source": "/default/sap.s4.beh/S4HCLNT100",
            "id": event_id,
            "time": time,
            "datacontenttype": "application/json",
            "data": data,
        }
    )


def tracker_event(event_id: str, details: list[tuple[str, str, str]]) -> bytes:
    return orjson.dumps(
        {
            "object": "Event",
            "id": event_id,
            "description": "tracker.updated",
            "created_at": "2026-03-03T10:00:00Z",
            "result": {
                "object": "Tracker",
                "id": "trk_9",
                "tracking_code": "1Z999",
                "carrier": "UPS",
                "status": details[-1][0],
                "tracking_details": [
                    {
                        "object": "TrackingDetail",
                        "message": message,
                        "status": status,
                        "status_detail": "arrived_at_facility",
                        "datetime": when,
                        "carrier_code": "",
                        "tracking_location": {"city": "LYON", "state": None, "country": "FR", "zip": None},
                    }
                    for status, when, message in details
                ],
            },
        }
    )


EDI_214 = (
    "ISA*00*          *00*          *02*ABCD           *ZZ*SHIPPER        *260302*1000*U*00401*000000101*0*P*>~"
    "GS*QM*ABCD*SHIPPER*20260302*1000*101*X*004010~ST*214*0001~B10*PRO123*BOL77*ABCD~L11*80001234*DO~"
    "LX*1~AT7*AF*NS***20260302*0930*UT~MS1*LYON**FR~SE*6*0001~GE*1*101~IEA*1*000000101~"
)

SNAPSHOT = orjson.dumps(
    {
        "snapshot_id": "wms-1",
        "system": "wms",
        "source_system": "WMS1",
        "as_of": "2026-03-02T06:00:00Z",
        "site": "1010",
        "lines": [{"sku": "MAT-1", "quantity": 40, "uom": "EA"}],
    }
)


def messages() -> list[tuple[str, str | None, datetime, bytes]]:
    """A small replay whose accounting is known exactly."""
    order = cloud_event("ce-1", "salesorder.v1.SalesOrder.Created.v1", {"SalesOrder": "4711"})
    release = cloud_event(
        "ce-2",
        "outbounddelivery.v1.OutboundDelivery.Created.v1",
        {
            "OutboundDelivery": "80001234",
            "SalesOrder": "4711",
            "ShippingPoint": "1010",
            "CreationDateTime": "2026-03-02T09:05:00Z",
            "to_DeliveryDocumentItem": [
                {"Material": "MAT-1", "ActualDeliveryQuantity": "5", "DeliveryQuantityUnit": "EA"}
            ],
        },
    )
    partner = cloud_event("ce-3", "businesspartner.v1.BusinessPartner.Changed.v1", {"BusinessPartner": "1"})
    first = tracker_event("evt_1", [("in_transit", "2026-03-03T08:00:00Z", "Picked up")])
    second = tracker_event(
        "evt_2",
        [("in_transit", "2026-03-03T08:00:00Z", "Picked up"), ("delivered", "2026-03-04T12:00:00Z", "Delivered")],
    )
    resend = tracker_event(
        "evt_3",
        [("in_transit", "2026-03-03T08:00:00Z", "Picked up"), ("delivered", "2026-03-04T12:00:00Z", "Delivered")],
    )
    retransmitted_214 = EDI_214.replace("000000101", "000000202").replace("*101*", "*202*")
    rows: list[tuple[str, bytes]] = [
        ("erp.sap.events", order),  # normalized
        ("erp.sap.events", release),  # normalized
        ("erp.sap.events", order),  # duplicate (redelivery)
        ("erp.sap.events", partner),  # ignored
        ("erp.sap.events", b'{"specversion": "1.0", "type": '),  # dead: parse_error (truncated)
        ("erp.sap.events", b"\xff\xfe not utf-8"),  # dead: decode_error
        ("carrier.webhooks", first),  # normalized
        ("carrier.webhooks", second),  # normalized (one new detail)
        ("carrier.webhooks", resend),  # duplicate (history resent)
        ("carrier.edi", EDI_214.encode()),  # normalized
        ("carrier.edi", retransmitted_214.encode()),  # duplicate (new control numbers)
        ("carrier.edi", b"GARBAGE*NOT*X12~"),  # dead: parse_error
        ("stock.snapshots", SNAPSHOT),  # normalized
        ("wms.unknown_feed", b"{}"),  # dead: unsupported
    ]
    return [(topic, None, T0 + timedelta(seconds=i), value) for i, (topic, value) in enumerate(rows)]


EXPECTED = {
    "carrier.edi": {"raw_in": 3, "normalized": 1, "duplicates": 1, "dead_lettered": 1, "ignored": 0},
    "carrier.webhooks": {"raw_in": 3, "normalized": 2, "duplicates": 1, "dead_lettered": 0, "ignored": 0},
    "erp.sap.events": {"raw_in": 6, "normalized": 2, "duplicates": 1, "dead_lettered": 2, "ignored": 1},
    "stock.snapshots": {"raw_in": 1, "normalized": 1, "duplicates": 0, "dead_lettered": 0, "ignored": 0},
    "wms.unknown_feed": {"raw_in": 1, "normalized": 0, "duplicates": 0, "dead_lettered": 1, "ignored": 0},
}


@pytest.fixture
def replay(tmp_path: Path) -> Path:
    path = tmp_path / "small.jsonl"
    with path.open("wb") as out:
        write_replay(out, messages())
    return path


def run(replay: Path, store: StoreConfig, workers: int = 1) -> Any:
    settings = Settings(
        source=f"file:{replay}", clickhouse=store.dsn, database=store.database, workers=workers, epoch_interval_s=1
    )
    result = run_pipeline(settings, progress=False)
    return read_summary(result.store, result.run_id, result.seconds)


def events(store: StoreConfig) -> list[tuple[Any, ...]]:
    client = connect(store)
    return query_rows(
        client,
        f"SELECT * EXCEPT (ingested_at) FROM {store.database}.events FINAL ORDER BY event_id",
    )


def test_accounting_per_topic_is_exact(replay: Path, store: StoreConfig) -> None:
    summary = run(replay, store)
    got = {
        topic: {k: counts[k] for k in ("raw_in", "normalized", "duplicates", "dead_lettered", "ignored")}
        for topic, counts in summary.per_topic.items()
    }
    assert got == EXPECTED
    assert summary.balanced
    assert summary.dead_by_reason == {"decode_error": 1, "parse_error": 2, "unsupported": 1}
    assert summary.events_by_type == {
        "CARRIER_STATUS": 3,
        "INVENTORY_SNAPSHOT": 1,
        "ORDER_CREATED": 1,
        "ORDER_RELEASED": 1,
    }


def test_tables_hold_the_events_and_dead_letters(replay: Path, store: StoreConfig) -> None:
    run(replay, store)
    client = connect(store)
    db = store.database
    rows = query_rows(
        client,
        f"SELECT event_type, delivery_id, order_id, lines.sku, lines.quantity FROM {db}.events FINAL "
        "WHERE event_type = 'ORDER_RELEASED'",
    )
    assert rows == [("ORDER_RELEASED", "80001234", "4711", ["MAT-1"], [5.0])]
    carrier = query_rows(
        client, f"SELECT milestone, tracking_number FROM {db}.events FINAL WHERE source_format = 'x12-214'"
    )
    assert carrier == [("PICKED_UP", "PRO123")]
    dead = query_rows(client, f"SELECT raw_ref, reason, payload_b64 FROM {db}.dead_letters FINAL ORDER BY raw_ref")
    assert dead == [
        ("carrier.edi:0:11", "parse_error", False),
        ("erp.sap.events:0:4", "parse_error", False),
        ("erp.sap.events:0:5", "decode_error", True),
        ("wms.unknown_feed:0:13", "unsupported", False),
    ]


def test_same_replay_twice_leaves_the_same_distinct_rows(replay: Path, store: StoreConfig) -> None:
    run(replay, store)
    once = events(store)
    run(replay, store)
    assert events(store) == once
    assert len(once) == 6


def test_two_workers_write_the_same_events(replay: Path, store: StoreConfig, chdb_dsn: str) -> None:
    run(replay, store, workers=1)
    other = StoreConfig(chdb_dsn, store.database + "_w2")
    from sinks.store import migrate

    migrate(connect(other), other.database)
    summary = run(replay, other, workers=2)
    assert events(other) == events(store)
    assert summary.balanced


def test_warnings_are_counted_by_kind_and_kept_on_the_rows(tmp_path: Path, store: StoreConfig) -> None:
    fixtures = Path(__file__).parents[1] / "fixtures" / "x12"
    rows = [
        ("carrier.edi", (fixtures / "mixed_856_214.edi").read_bytes()),  # an 856 set skipped beside a 214
        ("wms.edi", (fixtures / "ack_997_with_945_no_iea.edi").read_bytes()),  # no GE, no IEA
        ("carrier.edi", b"ISA*00*~GS*QM~ST*214*0001~"),  # dead: a truncated ISA, with no warning
    ]
    path = tmp_path / "warnings.jsonl"
    with path.open("wb") as out:
        write_replay(out, [(topic, None, T0 + timedelta(seconds=i), value) for i, (topic, value) in enumerate(rows)])
    summary = run(path, store)
    assert summary.balanced
    db, client = store.database, connect(store)
    by_kind = query_rows(
        client,
        f"SELECT topic, kind, sum(n) FROM {db}.ingest_stats FINAL "
        "ARRAY JOIN mapKeys(warnings_by_kind) AS kind, mapValues(warnings_by_kind) AS n "
        "GROUP BY topic, kind ORDER BY topic, kind",
    )
    assert by_kind == [("carrier.edi", "unsupported_set", 1), ("wms.edi", "trailer", 2)]
    on_events = query_rows(client, f"SELECT source_format, warnings FROM {db}.events FINAL ORDER BY source_format")
    assert on_events == [
        ("x12-214", ["unsupported_set: X12 856 set ST02=0001 skipped (no adapter for 856)"]),
        (
            "x12-945",
            [
                "trailer: functional group GS06='954' (segment 8 (GS)) has no GE",
                "trailer: interchange ISA13='000000953' has no IEA",
            ],
        ),
    ]
    assert query_rows(client, f"SELECT reason, warnings FROM {db}.dead_letters FINAL") == [("parse_error", [])]
