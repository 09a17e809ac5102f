"""X12 945 shipping advice -> SHIPMENT_DISPATCHED, X12 947 adjustment -> INVENTORY_ADJUSTED."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.adapters.x12 import adapt_x12
from operators.master import EMPTY_MASTER, MasterData, Product, Site
from operators.model import (
    AdapterResult,
    CanonicalEvent,
    DeadLetterReason,
    EventType,
    Line,
    SourceKind,
    TimePrecision,
    WarningKind,
)
from tests.conftest import FIXTURES, RECEIVED, SAMPLES, raw_message

X12_FIXTURES = FIXTURES / "x12"
SIMPLOT = "x12_945_sample1_jrsimplot_st_se_only.edi"
WAQE = "x12_945_sample2_3pl_waqe.edi"
SAPUTO = "x12_947_sample1_saputo_snippet.edi"

SIMPLOT_MASTER = MasterData(
    products=(
        Product(sku="FRIES-1", gtin="10071179016458", uom="CA"),
        Product(sku="FRIES-2", gtin="10071179000709", uom="CA"),
    ),
    sites=(Site(site="FTW", edi_warehouse_id="708066", timezone="America/Chicago"),),
)
FIXTURE_MASTER = MasterData(
    products=(Product(sku="MAT-100", gtin="00614141000111", uom="EA"), Product(sku="SKU-200", gtin="", uom="CS")),
    sites=(Site(site="DC01", edi_warehouse_id="0614141000012", timezone="America/New_York"),),
)


def _adapt(payload: bytes | str, master: MasterData = EMPTY_MASTER) -> AdapterResult:
    return adapt_x12(raw_message(payload, topic="wms.edi", offset=3), master)


def _event(payload: bytes | str, master: MasterData = EMPTY_MASTER) -> CanonicalEvent:
    result = _adapt(payload, master)
    assert result.dead_letter is None, result.dead_letter
    (event,) = result.events
    return event


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _bare(set_id: str, *body: str) -> str:
    """A bare ST..SE snippet (no envelope) with a correct SE01."""
    return "~".join([f"ST*{set_id}*0001", *body, f"SE*{len(body) + 2}*0001"]) + "~"


# --- 945: J.R. Simplot (bare ST..SE, shifted W12 layout) -------------------------------------


def test_simplot_945_facts(samples_dir: Path) -> None:
    result = _adapt((samples_dir / SIMPLOT).read_bytes())
    assert [str(w) for w in result.warnings] == ["control_number: SE01='32' but set ST02='0001' has 29 segments"]
    (event,) = result.events
    assert event.event_type is EventType.SHIPMENT_DISPATCHED
    assert (event.source_kind, event.source_format) == (SourceKind.WMS, "x12-945")
    assert event.delivery_id == "01766655"  # W0602 depositor order
    assert event.shipment_ref == "1035"  # W0604
    assert event.order_id == "9116"  # W0606 PO
    assert event.attributes["master_reference"] == "4896833"  # W0607
    assert event.carrier == "TRUK"  # W2702
    assert event.site == "708066"  # N1*SF N104, raw without a master
    assert event.occurred_at == _utc(2013, 10, 29)  # W0603, no site zone, no N4: UTC midnight for now
    assert event.time_precision is TimePrecision.DAY and event.tz_assumed
    assert event.attributes["tz_rule"] == "unresolved" and event.attributes["local_time"] == "2013-10-29T00:00:00"
    assert event.recorded_at is None  # no GS envelope
    assert event.received_at == RECEIVED and event.raw_ref == "wms.edi:0:3"
    # W1203 shipped (= W1202 ordered here) in CA; the GTIN-14 sits after `UK` in W1208/W1209.
    assert event.lines == (
        Line(sku="10071179016458", quantity=72, uom="CA"),
        Line(sku="10071179016458", quantity=72, uom="CA"),
        Line(sku="10071179000709", quantity=96, uom="CA"),
    )
    assert sum(line.quantity for line in event.lines) == 240  # W0301
    plates = event.attributes["license_plates"].split(",")
    assert len(plates) == 5 and plates[0] == "00100752782101847618"  # N9*LV pallet SSCCs
    assert event.attributes["total_units"] == "240"


def test_simplot_945_with_master_data(samples_dir: Path) -> None:
    plain = _event((samples_dir / SIMPLOT).read_bytes())
    result = _adapt((samples_dir / SIMPLOT).read_bytes(), SIMPLOT_MASTER)
    (event,) = result.events
    assert not [w for w in result.warnings if w.kind is WarningKind.MAPPING]
    assert [line.sku for line in event.lines] == ["FRIES-1", "FRIES-1", "FRIES-2"]
    assert event.site == "FTW"
    assert event.occurred_at == _utc(2013, 10, 29, 5)  # midnight CDT at the site
    assert event.tz_assumed and event.attributes["tz_rule"] == "ship_from_site"
    assert "local_time" not in event.attributes
    assert event.event_id == plain.event_id  # ids do not depend on master data


def test_unknown_site_and_product_are_unmapped_with_warnings(samples_dir: Path) -> None:
    master = MasterData(products=(Product(sku="OTHER", gtin="00000000000017", uom="EA"),), sites=(Site("ELSEWHERE"),))
    result = _adapt((samples_dir / SIMPLOT).read_bytes(), master)
    (event,) = result.events
    assert event.site == "UNMAPPED:708066"
    assert [line.sku for line in event.lines] == ["UNMAPPED:10071179016458"] * 2 + ["UNMAPPED:10071179000709"]
    mapping = [w.message for w in result.warnings if w.kind is WarningKind.MAPPING]
    assert len(mapping) == 4 and mapping[0] == "site '708066' (N1*SF N104) not in the site master"
    assert event.tz_assumed and event.occurred_at == _utc(2013, 10, 29)


# --- 945: 3PL WAQE (enveloped, VN item) ------------------------------------------------------


def test_waqe_945_facts(samples_dir: Path) -> None:
    result = _adapt((samples_dir / WAQE).read_bytes())
    assert [str(w) for w in result.warnings] == ["control_number: SE01='12' but set ST02='000006123' has 16 segments"]
    (event,) = result.events
    assert (event.delivery_id, event.shipment_ref, event.order_id) == ("IF102", "BOL12345", "PO9865")
    assert event.occurred_at == _utc(2019, 6, 4)  # W0603: G62*10 is a requested date, not shipped
    assert event.site == "CHI" and event.carrier == "NPLT"
    assert event.lines == (Line(sku="123456789", quantity=3000, uom="EA"),)
    assert event.source_system == "YOUR-ID-HERE"  # ISA06
    assert event.recorded_at == _utc(2020, 9, 1, 14, 9)
    assert event.attributes["license_plates"] == "LPN6569"


def test_waqe_vendor_item_maps_as_a_sku(samples_dir: Path) -> None:
    master = MasterData(
        products=(Product(sku="123456789", gtin="", uom="EA"),),
        sites=(Site(site="CHICAGO-3PL", edi_warehouse_id="CHI", timezone="America/Chicago"),),
    )
    result = _adapt((samples_dir / WAQE).read_bytes(), master)
    (event,) = result.events
    assert event.lines[0].sku == "123456789" and event.site == "CHICAGO-3PL"
    assert event.occurred_at == _utc(2019, 6, 4, 5) and event.tz_assumed  # midnight CDT, a local date
    assert event.attributes["tz_rule"] == "ship_from_site"
    assert not [w for w in result.warnings if w.kind is WarningKind.MAPPING]


def test_retransmitted_945_keeps_its_id(samples_dir: Path) -> None:
    text = (samples_dir / WAQE).read_text()
    resent = text.replace("043000123", "043000999").replace("000000123", "000000999").replace("000006123", "17")
    assert _event(text).event_id == _event(resent).event_id


# --- 945: enveloped fixture with G62*11, N9 refs, N1*WH --------------------------------------


def test_945_shipped_time_refs_and_lines() -> None:
    result = _adapt((X12_FIXTURES / "two_groups_214_945_crlf.edi").read_bytes(), FIXTURE_MASTER)
    assert result.warnings == ()
    dispatched = [e for e in result.events if e.event_type is EventType.SHIPMENT_DISPATCHED]
    assert len(result.events) == 3 and len(dispatched) == 1
    event = dispatched[0]
    assert event.occurred_at == _utc(2024, 3, 4, 21, 42)  # G62*11 16:42 ET (EST in early March)
    assert event.time_precision is TimePrecision.MIN and not event.tz_assumed
    assert event.attributes["tz_rule"] == "g6205" and "assumed_timezone" not in event.attributes
    assert event.shipment_ref == "BOL555"  # W0604 empty -> N9*BM
    assert event.tracking_number == "PRO777"  # N9*CN
    assert (event.delivery_id, event.order_id, event.site) == ("DLV80001", "PO-4711", "DC01")
    assert event.lines == (Line(sku="MAT-100", quantity=10, uom="EA"), Line(sku="SKU-200", quantity=4, uom="CS"))
    assert event.recorded_at == _utc(2024, 3, 5, 14, 13)


def test_945_g62_local_time_uses_the_site_zone() -> None:
    payload = _bare(
        "945",
        "W06*F*D1*20240304*S1",
        "N1*WH*DC*9*0614141000012",
        "G62*11*20240304*W*1642",
        "W12*CC*1*1**EA**UK*00614141000111",
    )
    event = _event(payload, FIXTURE_MASTER)
    assert event.occurred_at == _utc(2024, 3, 4, 21, 42) and event.tz_assumed
    assert event.attributes["tz_rule"] == "ship_from_site"
    bare = _event(payload)
    assert bare.occurred_at == _utc(2024, 3, 4, 16, 42) and bare.tz_assumed
    assert bare.attributes["tz_rule"] == "unresolved" and bare.attributes["local_time"] == "2024-03-04T16:42:00"
    assert bare.event_id == event.event_id  # the zone is not part of the identity


def test_945_without_lines_still_reports_the_dispatch() -> None:
    event = _event(_bare("945", "W06*F*D1*20240304*S1"))
    assert event.lines == () and event.delivery_id == "D1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (("N1*WH*DC",), "W06 segment missing"),
        (("W06*F*D1**S1",), "no ship date"),
        (("W06*F*D1*20240230*S1",), "W0603: '20240230' is not a calendar date"),
        (("W06*F*D1*20240304", "W12*CC*1*x**EA**VN*A"), "W1203 quantity 'x' is not a number"),
        (("W06*F*D1*20240304", "W12*CC*1*1****VN*A"), "W1205 unit of measure missing"),
        (("W06*F*D1*20240304", "W12*CC*1*1**EA"), "no product id"),
        (("W06*F*D1*20240304", "G62*11*20240304*W*2599"), "G6204"),
    ],
)
def test_unreadable_945_is_a_schema_error(body: tuple[str, ...], message: str) -> None:
    result = _adapt(_bare("945", *body))
    assert result.dead_letter is not None
    assert result.dead_letter.reason is DeadLetterReason.SCHEMA_ERROR
    assert message in result.dead_letter.error and "945 set ST02=0001" in result.dead_letter.error


# --- 947 -------------------------------------------------------------------------------------


def test_saputo_947_facts(samples_dir: Path) -> None:
    result = _adapt((samples_dir / SAPUTO).read_bytes())
    assert result.warnings == ()
    (event,) = result.events
    assert event.event_type is EventType.INVENTORY_ADJUSTED
    assert (event.source_kind, event.source_format) == (SourceKind.WMS, "x12-947")
    assert event.lines == (Line(sku="1009332", quantity=-13, uom="CA"),)  # debit 13 CA, W1905 VN
    assert event.reason_code == "06"  # W1901 kept raw
    assert event.site == "1234567890802"  # N1*WH N104
    assert event.occurred_at == _utc(2023, 2, 17)
    assert event.time_precision is TimePrecision.DAY and event.tz_assumed
    assert event.attributes["adjustment_number"] == "1391265893"
    assert event.attributes["depositor"] == "SAPUTO"
    assert event.recorded_at is None


def test_saputo_947_with_master(samples_dir: Path) -> None:
    master = MasterData(
        products=(Product(sku="1009332", gtin="", uom="CA"),),
        sites=(Site(site="WH-QC", gln="1234567890802", timezone="America/Toronto"),),
    )
    event = _event((samples_dir / SAPUTO).read_bytes(), master)
    assert event.site == "WH-QC" and event.lines[0].sku == "1009332"
    assert event.occurred_at == _utc(2023, 2, 17, 5) and event.tz_assumed  # W1501 midnight EST, a local date
    assert event.attributes["tz_rule"] == "ship_from_site"


def test_947_one_event_per_reason() -> None:
    payload = _bare(
        "947",
        "W15*20240110*ADJ-1",
        "N1*WH*DC*9*0614141000012",
        "W19*06*-2*EA**UK*00614141000111",
        "W19*AU*-1*CS**VN*SKU-200",
        "W19*06*5*EA**UK*00614141000111",
    )
    result = _adapt(payload, FIXTURE_MASTER)
    first, second = result.events
    assert first.reason_code == "06" and second.reason_code == "AU"
    assert first.lines == (Line(sku="MAT-100", quantity=-2, uom="EA"), Line(sku="MAT-100", quantity=5, uom="EA"))
    assert second.lines == (Line(sku="SKU-200", quantity=-1, uom="CS"),)
    assert first.event_id != second.event_id
    assert first.occurred_at == _utc(2024, 1, 10, 5) and first.site == "DC01"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (("N1*WH*DC",), "W15 segment missing"),
        (("W15**A1",), "W1501 adjustment date missing"),
        (("W15*20240110*A1", "W19*06*--1*EA**VN*X"), "W1902 quantity '--1' is not a number"),
        (("W15*20240110*A1", "W19*06*1***VN*X"), "W1903 unit of measure missing"),
    ],
)
def test_unreadable_947_is_a_schema_error(body: tuple[str, ...], message: str) -> None:
    result = _adapt(_bare("947", *body))
    assert result.dead_letter is not None and result.dead_letter.reason is DeadLetterReason.SCHEMA_ERROR
    assert message in result.dead_letter.error


def test_947_without_lines_is_ignored() -> None:
    result = _adapt(_bare("947", "W15*20240110*A1"))
    assert result.outcome == "ignored" and result.ignored_reason


def test_947_id_depends_on_content_not_control_numbers(samples_dir: Path) -> None:
    text = (samples_dir / SAPUTO).read_text()
    resent = text.replace("837460001", "900000001")
    changed = text.replace("-13.000", "-12.000")
    assert _event(text).event_id == _event(resent).event_id
    assert _event(text).event_id != _event(changed).event_id


# --- property tests --------------------------------------------------------------------------


def _assert_one_outcome(result: AdapterResult) -> None:
    outcomes = [bool(result.events), result.dead_letter is not None, result.ignored_reason is not None]
    assert sum(outcomes) == 1
    if result.dead_letter is not None:
        assert result.dead_letter.error
    if result.ignored_reason is not None:
        assert result.ignored_reason.strip()


_SAMPLES = [p.read_bytes() for p in (SAMPLES / SIMPLOT, SAMPLES / WAQE, SAMPLES / SAPUTO) if p.exists()] + [
    (X12_FIXTURES / "two_groups_214_945_crlf.edi").read_bytes()
]


@settings(max_examples=250, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("STW0659471*~\n-.ENUKVCAG12")), max_size=400))
def test_x12_like_text_never_raises(text: str) -> None:
    _assert_one_outcome(_adapt("ST*945*1~" + text))
    _assert_one_outcome(_adapt("ST*947*1~" + text, FIXTURE_MASTER))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_SAMPLES),
    st.integers(min_value=0, max_value=2000),
    st.lists(st.tuples(st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=3)), max_size=4),
)
def test_truncated_or_mutated_945_947_never_raise(payload: bytes, cut: int, mutations: list[tuple[int, bytes]]) -> None:
    mutated = bytearray(payload[: max(1, cut % (len(payload) + 1))])
    for position, replacement in mutations:
        at = position % (len(mutated) or 1)
        mutated[at : at + len(replacement)] = replacement
    _assert_one_outcome(_adapt(bytes(mutated)))
    _assert_one_outcome(_adapt(bytes(mutated), SIMPLOT_MASTER))
