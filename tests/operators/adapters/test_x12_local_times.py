"""X12 local times (AT707 LT or absent, 945 G62 without a time code, W0603 / W1501 dates): the zone
rules (event location, ship-from site, unresolved) and what they record (issue 11 item 1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from operators.adapters.x12 import adapt_x12
from operators.master import EMPTY_MASTER, MasterData, Product, Site
from operators.model import AdapterResult, CanonicalEvent, EventType, WarningKind
from tests.conftest import FIXTURES, raw_message

X12 = FIXTURES / "x12"
LTL = "ltl_214_local_times_no_trailers.edi"
WAREHOUSE = "wh_945_local_time_n4.edi"
# Our Bedford Park DC, known to partners by name only (N1*SF*BEDFORD PARK DC, no N104).
CHICAGO_MASTER = MasterData(
    sites=(Site(site="1010", gln="0614141000012", timezone="America/Chicago", name="Bedford Park DC"),)
)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _adapt(name: str, master: MasterData = EMPTY_MASTER) -> AdapterResult:
    return adapt_x12(raw_message((X12 / name).read_bytes(), topic="carrier.edi"), master)


def _by_tracking(result: AdapterResult) -> dict[str, list[CanonicalEvent]]:
    events: dict[str, list[CanonicalEvent]] = {}
    for event in result.events:
        events.setdefault(event.tracking_number or "", []).append(event)
    return events


# (B10 tracking number, AT701) -> (UTC instant, tz_rule, zone used, majority?), without master data.
EXPECTED = [
    # MS1 BEDFORD PARK, IL (no country: a US state), March 11 2024 = CDT.
    ("0771234567", "X3", _utc(2024, 3, 11, 13, 15), "event_location", "America/Chicago", False),
    # AT707 absent; `MS1*BEDFORD PARK *IL *USA`: spaces in elements, a 3-letter country.
    ("0771234567", "AF", _utc(2024, 3, 11, 14, 30), "event_location", "America/Chicago", False),
    ("0771234567", "X1", _utc(2024, 3, 12, 19, 5), "event_location", "America/Chicago", False),  # ANNISTON, AL
    ("0771234567", "D1", _utc(2024, 3, 12, 19, 40), "event_location", "America/Chicago", False),
    # Multi-zone states: the city decides where the table knows it, else the majority zone, flagged.
    ("0771234568", "X6", _utc(2024, 3, 13, 12, 0), "event_location", "America/Chicago", False),  # GARY, IN
    ("0771234568", "X6", _utc(2024, 3, 13, 19, 30), "event_location", "America/Indiana/Indianapolis", True),
    ("0771234568", "X6", _utc(2024, 3, 14, 12, 45), "event_location", "America/Denver", False),  # EL PASO, TX
    ("0771234568", "X1", _utc(2024, 3, 14, 16, 10), "event_location", "America/Toronto", False),  # THUNDER BAY, ON
    ("0771234568", "D1", _utc(2024, 3, 14, 20, 0), "event_location", "America/Tijuana", False),  # TIJUANA, BCN, MEX
    # MS1 names no place we know, and no site master: the adapter cannot know.
    ("0771234569", "X3", _utc(2024, 3, 15, 5, 0), "unresolved", "UTC", False),
    ("0771234569", "AF", _utc(2024, 3, 15, 5, 45), "unresolved", "UTC", False),
    ("0771234570", "AF", _utc(2024, 3, 15, 5, 55), "unresolved", "UTC", False),
]


def test_local_times_in_the_zone_of_the_event_location() -> None:
    result = _adapt(LTL)
    assert result.dead_letter is None
    got = [
        (
            e.tracking_number,
            e.status_code,
            e.occurred_at,
            e.attributes["tz_rule"],
            e.attributes["assumed_timezone"],
            e.attributes.get("tz_majority") == "true",
        )
        for e in result.events
    ]
    assert got == EXPECTED
    assert all(e.tz_assumed for e in result.events)


def test_unresolved_local_times_keep_the_wall_time_for_the_domain() -> None:
    events = _by_tracking(_adapt(LTL))
    unresolved = events["0771234569"] + events["0771234570"]
    assert [e.attributes["local_time"] for e in unresolved] == [
        "2024-03-15T05:00:00",
        "2024-03-15T05:45:00",
        "2024-03-15T05:55:00",
    ]
    resolved = events["0771234567"] + events["0771234568"]
    assert not [e for e in resolved if "local_time" in e.attributes]


def test_ship_from_site_by_name_when_the_location_cannot_decide() -> None:
    result = _adapt(LTL, CHICAGO_MASTER)
    events = _by_tracking(result)
    x3, af = events["0771234569"]
    assert (x3.occurred_at, x3.attributes["tz_rule"]) == (_utc(2024, 3, 15, 10, 0), "ship_from_site")  # 05:00 CDT
    assert (af.occurred_at, af.attributes["tz_rule"]) == (_utc(2024, 3, 15, 10, 45), "ship_from_site")
    assert x3.attributes["assumed_timezone"] == "America/Chicago" and "local_time" not in x3.attributes
    # The event location still comes first when it decides.
    assert [e.attributes["tz_rule"] for e in events["0771234567"]] == ["event_location"] * 4
    # No N1 at all: unresolved even with a master.
    (last,) = events["0771234570"]
    assert last.attributes["tz_rule"] == "unresolved"


def test_the_zone_does_not_change_event_ids() -> None:
    plain = [e.event_id for e in _adapt(LTL).events]
    with_site = [e.event_id for e in _adapt(LTL, CHICAGO_MASTER).events]
    assert plain == with_site and len(set(plain)) == len(plain)


def test_unknown_places_and_missing_trailers_are_warnings() -> None:
    result = _adapt(LTL)
    assert [str(w) for w in result.warnings] == [
        "trailer: functional group GS06='4711' (segment 2 (GS)) has no GE",
        "trailer: interchange ISA13='000004711' has no IEA",
        "time_zone: segment 44 (MS1) location 'NOWHERE, XX': state or province 'XX' is not a US state or "
        "Canadian province, and no country is given",
    ]


# --- 945 / 947 at a warehouse ----------------------------------------------------------------


def test_warehouse_local_times_from_its_n4_address() -> None:
    result = _adapt(WAREHOUSE)
    shipped = next(e for e in result.events if e.event_type is EventType.SHIPMENT_DISPATCHED)
    # G62*11 without G6205: 23:15 at KNOXVILLE, TN (a multi-zone state; Knoxville is Eastern), EDT.
    assert shipped.occurred_at == _utc(2024, 3, 13, 3, 15)
    assert shipped.tz_assumed and shipped.attributes["tz_rule"] == "event_location"
    assert shipped.attributes["assumed_timezone"] == "America/New_York"
    adjustments = [e for e in result.events if e.event_type is EventType.INVENTORY_ADJUSTED]
    assert {e.occurred_at for e in adjustments} == {_utc(2024, 3, 12, 4, 0)}  # W1501 midnight EDT
    assert {e.attributes["tz_rule"] for e in adjustments} == {"event_location"}


def test_warehouse_site_master_zone_comes_before_its_address() -> None:
    # A (deliberately different) zone in our own master wins: it is the warehouse's own setting.
    master = MasterData(sites=(Site(site="KNX", edi_warehouse_id="WHKNX", timezone="America/Chicago"),))
    shipped = next(e for e in _adapt(WAREHOUSE, master).events if e.event_type is EventType.SHIPMENT_DISPATCHED)
    assert shipped.occurred_at == _utc(2024, 3, 13, 4, 15)  # 23:15 CDT
    assert shipped.attributes["tz_rule"] == "ship_from_site" and shipped.site == "KNX"


def test_945_explicit_time_code_is_not_assumed() -> None:
    text = (X12 / WAREHOUSE).read_text().replace("G62*11*20240312*8*2315", "G62*11*20240312*8*2315*ET")
    shipped = adapt_x12(raw_message(text), EMPTY_MASTER).events[0]
    assert shipped.occurred_at == _utc(2024, 3, 13, 3, 15) and not shipped.tz_assumed
    assert shipped.attributes["tz_rule"] == "g6205"


# --- 947: one INVENTORY_ADJUSTED per W19 reason code within a set (issue 11 item 6) ------------


def test_947_keeps_one_event_per_reason_code() -> None:
    master = MasterData(products=(Product(sku="MAT-100-CS", gtin="10614141073461", uom="CA"),))
    adjustments = [e for e in _adapt(WAREHOUSE, master).events if e.event_type is EventType.INVENTORY_ADJUSTED]
    assert [(e.reason_code, [(line.sku, line.quantity, line.uom) for line in e.lines]) for e in adjustments] == [
        ("AA", [("MAT-100-CS", -2.0, "CA"), ("MAT-100-CS", -1.0, "CA")]),  # both AA lines, in order
        ("07", [("MAT-100-CS", 5.0, "CA")]),
    ]
    assert len({e.event_id for e in adjustments}) == 2


@pytest.mark.parametrize("zone_code", ["", "LT"])
def test_a_place_without_one_zone_is_unresolved_with_a_warning(zone_code: str) -> None:
    body = "\n".join(
        [
            "ST*214*0001",
            "B10*PRO1*BOL1*ACME",
            "LX*1",
            f"AT7*X3*NS***20240701*0815*{zone_code}",
            "MS1*RIO*RJ*BRA",
            f"AT7*AF*NS***20240701*0915*{zone_code}",
            "MS1*RIO*RJ*BRA",
            "SE*8*0001",
        ]
    )
    result = adapt_x12(raw_message(body), EMPTY_MASTER)
    assert [e.attributes["tz_rule"] for e in result.events] == ["unresolved", "unresolved"]
    assert [w.kind for w in result.warnings] == [WarningKind.TIME_ZONE, WarningKind.TIME_ZONE]
    assert "country BR spans several time zones" in result.warnings[0].message
