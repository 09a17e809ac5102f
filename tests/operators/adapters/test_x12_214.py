"""X12 214 carrier status -> CARRIER_STATUS / APPOINTMENT events, and the X12 adapter's dispatch."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.adapters.x12 import adapt_x12
from operators.master import EMPTY_MASTER, MasterData, Site
from operators.model import (
    AdapterResult,
    CanonicalEvent,
    DeadLetterReason,
    EventType,
    Milestone,
    SourceKind,
    TimePrecision,
)
from tests.conftest import FIXTURES, RECEIVED, SAMPLES, raw_message

X12_FIXTURES = FIXTURES / "x12"
CANADA_POST = "x12_214_sample1_canadapost_multi.edi"
EDISOURCE = "x12_214_sample2_1edisource_multi_stop.edi"
FREIGHTFORCE = "x12_214_sample3_freightforce_two_sets.edi"
ISA = "ISA*00*          *00*          *ZZ*CARRIER        *ZZ*SHIPPER        *240101*1200*U*00401*000000001*0*P*>"


def _adapt(payload: bytes | str, master: MasterData = EMPTY_MASTER) -> AdapterResult:
    return adapt_x12(raw_message(payload, topic="carrier.edi", offset=7), master)


def _events(payload: bytes | str, master: MasterData = EMPTY_MASTER) -> list[CanonicalEvent]:
    result = _adapt(payload, master)
    assert result.dead_letter is None, result.dead_letter
    return list(result.events)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _214(*body: str, b10: str = "B10*PRO1*BOL1*ACME", control: str = "0001") -> str:
    """A one-set interchange with correct counts around the given body segments."""
    segments = [f"ST*214*{control}", b10, *body]
    segments.append(f"SE*{len(segments) + 1}*{control}")
    return "~".join([ISA, "GS*QM*CARRIER*SHIPPER*20240101*1200*1*X*004010", *segments, "GE*1*1", "IEA*1*000000001"])


# --- Canada Post (19 sets, newline terminator) -----------------------------------------------

# (tracking number, AT701) -> expected UTC instant, each checked against its AT707 zone code.
CANADA_POST_TIMES = {
    ("4343638097845589", "XB"): _utc(2019, 11, 3, 20, 34),  # empty AT707: local at MS1 WRENCH, ON, CA
    ("4343638098050296", "AH"): _utc(2019, 11, 2, 23, 25),  # PT, PDT on 11-02
    ("4343638931638575", "CA"): _utc(2019, 11, 3, 0, 52),  # PT 17:52 PDT
    ("4343638098146166", "D1"): _utc(2019, 11, 2, 22, 48),  # MT 16:48 MDT
    ("4343638098181877", "AF"): _utc(2019, 11, 3, 21, 9),  # CS fixed -06:00
    ("4343638098181921", "XB"): _utc(2019, 11, 3, 17, 31),  # CS 11:31
    ("4343638151403540", "AF"): _utc(2019, 11, 3, 18, 25),  # MT 11:25 MST (after the 02:00 switch)
    ("4343638151403540", "XB"): _utc(2019, 11, 3, 15, 53),  # MT 08:53 MST
    ("4343638316026577", "AP"): _utc(2019, 11, 3, 15, 15),  # MT 08:15 MST
    ("4343638672340607", "AP"): _utc(2019, 11, 3, 13, 33),  # CS 07:33
    ("4343638098176088", "AP"): _utc(2019, 11, 3, 12, 31),  # CS 06:31
    ("4343638458862606", "XB"): _utc(2019, 11, 3, 22, 28),  # ET 17:28 EST
    ("4343638098196574", "XB"): _utc(2019, 11, 3, 21, 18),  # ET 16:18 EST
}


def test_canada_post_statuses(samples_dir: Path) -> None:
    result = _adapt((samples_dir / CANADA_POST).read_bytes())
    assert result.warnings == ()
    events = list(result.events)
    assert len(events) == 19
    assert Counter(e.attributes["tz_rule"] for e in events) == {"at707": 18, "event_location": 1}
    assert Counter(e.status_code for e in events) == {"AF": 7, "XB": 6, "AP": 3, "AH": 1, "CA": 1, "D1": 1}
    assert {e.reason_code for e in events} == {"NS", "AG", "BT"}
    assert len({e.event_id for e in events}) == 19
    for event in events:
        assert event.event_type is EventType.CARRIER_STATUS
        assert event.source_kind is SourceKind.CARRIER
        assert event.source_format == "x12-214"
        assert event.source_system == event.carrier == "CPCC"
        assert event.tracking_number == event.shipment_ref
        assert event.tracking_number is not None and len(event.tracking_number) == 16  # padding stripped
        assert event.recorded_at == _utc(2019, 11, 3, 18, 0)  # GS04+GS05
        assert event.received_at == RECEIVED
        assert event.raw_ref == "carrier.edi:0:7"
        assert event.time_precision is TimePrecision.MIN
    for (tracking, status), expected in CANADA_POST_TIMES.items():
        matching = [e for e in events if (e.tracking_number, e.status_code) == (tracking, status)]
        assert matching and all(e.occurred_at == expected for e in matching), (tracking, status)


def test_canada_post_milestones_locations_and_refs(samples_dir: Path) -> None:
    events = _events((samples_dir / CANADA_POST).read_bytes())
    by_code = {e.status_code: e for e in events}
    assert by_code["AF"].milestone is Milestone.PICKED_UP
    assert by_code["XB"].milestone is Milestone.ACKNOWLEDGED
    assert by_code["AP"].milestone is by_code["AH"].milestone is Milestone.DELIVERY_FAILED
    assert by_code["CA"].milestone is Milestone.CANCELLED
    assert by_code["D1"].milestone is Milestone.DELIVERED
    ah = by_code["AH"]
    assert ah.location == "DRILL, BC, CA"
    assert ah.attributes["time_code"] == "PT"
    assert ah.attributes["ref_97"] == "4343638098050296"  # L11 package number kept raw
    assert ah.attributes["ref_86"] == "0156"
    assert not ah.tz_assumed and ah.delivery_id is None


def test_empty_time_code_is_local_time_at_the_event_location(samples_dir: Path) -> None:
    first = _events((samples_dir / CANADA_POST).read_bytes())[0]
    assert first.status_code == "XB" and first.location == "WRENCH, ON, CA"
    # Ontario spans zones and WRENCH is no city GeoNames knows: Ontario's majority zone, flagged.
    assert first.occurred_at == _utc(2019, 11, 3, 20, 34)  # 15:34 EST
    assert first.tz_assumed
    assert first.attributes["tz_rule"] == "event_location" and first.attributes["tz_majority"] == "true"
    assert first.attributes["assumed_timezone"] == "America/Toronto"
    assert "time_code" not in first.attributes and "local_time" not in first.attributes
    # The shipper's site in the master does not win over where the status happened.
    master = MasterData(sites=(Site(site="CPC-DC", edi_warehouse_id="00602679321", timezone="America/Vancouver"),))
    with_site = _events((samples_dir / CANADA_POST).read_bytes(), master)[0]
    assert with_site.occurred_at == first.occurred_at and with_site.attributes == first.attributes
    assert with_site.event_id == first.event_id
    assert with_site.site is None  # a carrier event is not at our site


# --- 1 EDI Source (3 stops, appointments, L11 DO after the AT7s) ------------------------------


def test_edisource_stops_statuses_and_appointments(samples_dir: Path) -> None:
    result = _adapt((samples_dir / EDISOURCE).read_bytes())
    assert [str(w) for w in result.warnings] == ["control_number: IEA02='000002510' does not match ISA13='000003438'"]
    events = list(result.events)
    statuses = [e for e in events if e.event_type is EventType.CARRIER_STATUS]
    appointments = [e for e in events if e.event_type is EventType.APPOINTMENT]
    assert len(statuses) == 12 and len(appointments) == 6
    assert len({e.event_id for e in events}) == 18
    assert [e.status_code for e in statuses] == ["X3", "CP", "X1", "D1"] * 3
    assert [e.milestone for e in statuses[:4]] == [
        Milestone.PICKED_UP,
        Milestone.PICKED_UP,
        Milestone.ARRIVED,
        Milestone.DELIVERED,
    ]
    assert {e.reason_code for e in statuses if e.status_code == "X1"} == {"AD"}
    assert [e.status_code for e in appointments] == ["AA", "AB"] * 3
    assert {e.reason_code for e in appointments} == {"NA"}
    assert [e.attributes["appointment"] for e in appointments[:2]] == ["pickup", "delivery"]
    assert all(e.milestone is None for e in appointments)
    # The L11 DO of each stop follows its AT7s and still belongs to them.
    assert [e.delivery_id for e in statuses if e.status_code == "D1"] == ["99997666", "99990835", "99991280"]
    for event in events:
        assert (event.tracking_number, event.shipment_ref, event.carrier) == ("995551", "99948782", "XXXX")
        assert not event.tz_assumed and event.attributes["time_code"] == "PS"
    d1 = [e.occurred_at for e in statuses if e.status_code == "D1"]
    assert d1 == [_utc(2011, 12, 22, 15, 45), _utc(2011, 12, 19, 19, 0), _utc(2011, 12, 19, 12, 30)]
    assert appointments[0].occurred_at == _utc(2011, 12, 17, 16, 30)  # 08:30 PS (-08:00)
    assert events[0].recorded_at == _utc(2011, 12, 19, 17, 39)


def test_identical_at7_in_different_stops_get_different_ids(samples_dir: Path) -> None:
    # Every stop of the 1 EDI Source sample has `AT7*X3*NS***20111217*0930*PS`; only the DO differs.
    events = _events((samples_dir / EDISOURCE).read_bytes())
    x3 = [e for e in events if e.status_code == "X3"]
    assert len({e.occurred_at for e in x3}) == 1
    assert len({e.event_id for e in x3}) == 3


# --- freightforce (LT, Q7) -------------------------------------------------------------------


def test_freightforce_local_time_and_lading_exception(samples_dir: Path) -> None:
    result = _adapt((samples_dir / FREIGHTFORCE).read_bytes())
    assert [str(w) for w in result.warnings] == ["control_number: SE02='001 N/L' does not match ST02='001'"]
    af, d1 = result.events
    assert (af.status_code, af.milestone, af.occurred_at) == ("AF", Milestone.PICKED_UP, _utc(2006, 3, 1, 8, 0))
    assert (d1.status_code, d1.milestone, d1.occurred_at) == ("D1", Milestone.DELIVERED, _utc(2006, 3, 1, 16, 30))
    for event, wall in ((af, "2006-03-01T08:00:00"), (d1, "2006-03-01T16:30:00")):
        # LT without MS1 or a ship-from site: the adapter cannot know the zone. Read as UTC for now,
        # with the wall time kept for the domain to re-read in the delivery's site zone.
        assert event.tz_assumed and event.attributes["time_code"] == "LT"
        assert event.attributes["tz_rule"] == "unresolved" and event.attributes["local_time"] == wall
        assert event.delivery_id == "30011622"  # L11 CR
        assert event.tracking_number == "1234567" and event.attributes["ref_2I"] == "123456789"
        assert event.source_system == "SCAC"
    assert d1.attributes["lading_exception"] == "P PCS 1"  # Q7
    assert "lading_exception" not in af.attributes


# --- identity --------------------------------------------------------------------------------


def test_retransmission_with_new_control_numbers_keeps_ids(samples_dir: Path) -> None:
    text = (samples_dir / EDISOURCE).read_text()
    resent = (
        text.replace("000003438", "000009999")
        .replace("*2510*", "*7777*")
        .replace("ST*214*0001", "ST*214*0042")
        .replace("SE*27*0001", "SE*27*0042")
        .replace("20111219*1739", "20111220*0815")
    )
    original, again = _events(text), _events(resent)
    assert [e.event_id for e in original] == [e.event_id for e in again]
    assert again[0].recorded_at == _utc(2011, 12, 20, 8, 15)


def test_redelivery_of_the_same_bytes_is_deterministic(samples_dir: Path) -> None:
    payload = (samples_dir / CANADA_POST).read_bytes()
    assert [e.event_id for e in _events(payload)] == [e.event_id for e in _events(payload)]


# --- milestone table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "milestone"),
    [
        *((c, Milestone.PICKED_UP) for c in ("X3", "AF", "CP")),
        *((c, Milestone.IN_TRANSIT) for c in ("X4", "P1", "I1", "OA", "X6", "R1")),
        ("AJ", Milestone.OUT_FOR_DELIVERY),
        *((c, Milestone.ARRIVED) for c in ("X1", "X5")),
        ("D1", Milestone.DELIVERED),
        *((c, Milestone.DELIVERY_FAILED) for c in ("AH", "AP")),
        *((c, Milestone.EXCEPTION) for c in ("A9", "SD", "A7", "PR")),
        ("A3", Milestone.RETURNED),
        *((c, Milestone.ETA) for c in ("AG", "X2", "AA", "B6")),
        ("CA", Milestone.CANCELLED),
        ("XB", Milestone.ACKNOWLEDGED),
        ("J1", Milestone.UNKNOWN),
        ("Z9", Milestone.UNKNOWN),
    ],
)
def test_status_code_milestones(code: str, milestone: Milestone) -> None:
    (event,) = _events(_214("LX*1", f"AT7*{code}*NS***20240101*0800*UT"))
    assert event.milestone is milestone
    assert event.status_code == code  # unknown codes are kept raw, not errors


def test_x6_out_for_delivery_when_the_remarks_say_so() -> None:
    result = _adapt((X12_FIXTURES / "two_groups_214_945_crlf.edi").read_bytes())
    x6, d1 = (e for e in result.events if e.event_type is EventType.CARRIER_STATUS)
    assert (x6.status_code, x6.milestone) == ("X6", Milestone.OUT_FOR_DELIVERY)
    assert x6.occurred_at == _utc(2024, 3, 5, 14, 30)  # 09:30 ET in March before DST = EST
    assert x6.location == "COLUMBUS, OH, US" and d1.location == "DUBLIN, OH, US"
    assert d1.occurred_at == _utc(2024, 3, 5, 18, 5)  # AT706 `13` + `05` wrapped across lines
    assert x6.delivery_id == "DLV80001" and x6.recorded_at == _utc(2024, 3, 5, 14, 12, second=30)


def test_seconds_precision_and_fixed_offset() -> None:
    (event,) = _events(_214("LX*1", "AT7*X1*NS***20240701*081530*CD"))
    assert event.occurred_at == _utc(2024, 7, 1, 13, 15, second=30)
    assert event.time_precision is TimePrecision.S


def test_unknown_time_code_is_local_with_a_warning() -> None:
    result = _adapt(_214("LX*1", "AT7*X1*NS***20240701*0815*QQ"))
    (event,) = result.events
    assert event.tz_assumed and event.occurred_at == _utc(2024, 7, 1, 8, 15)
    assert [str(w) for w in result.warnings] == [
        "time_zone: segment 6 (AT7) unknown AT707 time code 'QQ', read as local time"
    ]


def test_set_level_l11_and_b10_fallbacks() -> None:
    (event,) = _events(
        _214("L11*SID-9*SI", "L11*BOL-7*BM", "L11*TRK-3*CN", "LX*1", "AT7*X1*NS***20240701*0815*UT", b10="B10***ACME")
    )
    assert (event.delivery_id, event.shipment_ref, event.tracking_number) == ("SID-9", "BOL-7", "TRK-3")
    assert event.source_system == "ACME"


def test_without_scac_the_sender_is_the_source_system() -> None:
    (event,) = _events(_214("LX*1", "AT7*X1*NS***20240701*0815*UT", b10="B10*PRO1*BOL1"))
    assert event.source_system == "CARRIER" and event.carrier is None


def test_envelope_oddities_are_warnings() -> None:
    payload = (
        _214("LX*1", "AT7*X1*NS***20240701*0815*UT")
        .replace("GS*QM*", "GS*SW*")
        .replace("*20240101*1200*1*", "*2024*1200*1*")
    )
    result = _adapt(payload)
    (event,) = result.events
    assert event.recorded_at is None
    assert [str(w) for w in result.warnings] == [
        "control_number: GS01='SW' for 214 set ST02=0001, expected 'QM'",
        "bad_value: recorded_at unknown, GS04: date '2024' is not CCYYMMDD",
    ]


# --- outcomes --------------------------------------------------------------------------------


def test_mixed_interchange_yields_supported_sets_and_warns() -> None:
    result = _adapt((X12_FIXTURES / "mixed_856_214.edi").read_bytes())
    (event,) = result.events
    assert event.status_code == "AF" and event.occurred_at == _utc(2024, 3, 6, 13, 15)  # 07:15 CST
    assert [str(w) for w in result.warnings] == ["unsupported_set: X12 856 set ST02=0001 skipped (no adapter for 856)"]


@pytest.mark.parametrize("name", ["x12_856_sample2_fishersci.edi", "x12_940_sample1_babelway.edi"])
def test_unsupported_sets_are_dead_lettered(samples_dir: Path, name: str) -> None:
    result = _adapt((samples_dir / name).read_bytes())
    assert result.dead_letter is not None
    assert result.dead_letter.reason is DeadLetterReason.UNSUPPORTED
    assert name.split("_")[1] in result.dead_letter.error


@pytest.mark.parametrize(
    ("body", "b10", "message"),
    [
        (("LX*1", "AT7*X1*NS****0815*UT"), "B10*P*B*S", "AT705 date missing"),
        (("LX*1", "AT7*X1*NS***20241301*0815*UT"), "B10*P*B*S", "AT705: '20241301' is not a calendar date"),
        (("LX*1", "AT7*X1*NS***20240101*2575*UT"), "B10*P*B*S", "AT706"),
        (("LX*1", "AT7*X1*NS***20240101*0815*UT"), "L11*X*DO", "B10 segment missing"),
    ],
)
def test_unreadable_sets_are_schema_errors(body: tuple[str, ...], b10: str, message: str) -> None:
    result = _adapt(_214(*body, b10=b10))
    assert result.dead_letter is not None
    assert result.dead_letter.reason is DeadLetterReason.SCHEMA_ERROR
    assert message in result.dead_letter.error and "214 set ST02=0001" in result.dead_letter.error


def test_set_without_status_is_ignored() -> None:
    result = _adapt(_214("L11*X*DO"))
    assert result.outcome == "ignored" and result.ignored_reason


def test_at7_without_codes_is_skipped_with_a_warning() -> None:
    result = _adapt(_214("LX*1", "AT7*****20240101*0815*UT", "AT7*D1*NS***20240101*0900*UT"))
    assert [e.status_code for e in result.events] == ["D1"]
    assert [str(w) for w in result.warnings] == [
        "skipped: 214 set ST02=0001 segment 6 (AT7) has neither AT701 nor AT703"
    ]


def test_decode_and_parse_errors(samples_dir: Path) -> None:
    not_utf8 = _adapt(b"ISA*00*\xff\xfe")
    assert not_utf8.dead_letter is not None and not_utf8.dead_letter.reason is DeadLetterReason.DECODE_ERROR
    truncated = _adapt((samples_dir / EDISOURCE).read_bytes()[:400])
    assert truncated.dead_letter is not None and truncated.dead_letter.reason is DeadLetterReason.PARSE_ERROR
    assert "has no SE" in truncated.dead_letter.error
    assert truncated.dead_letter.adapter == "x12"


# --- property tests --------------------------------------------------------------------------


def _assert_one_outcome(result: AdapterResult) -> None:
    outcomes = [bool(result.events), result.dead_letter is not None, result.ignored_reason is not None]
    assert sum(outcomes) == 1
    if result.dead_letter is not None:
        assert result.dead_letter.reason in DeadLetterReason and result.dead_letter.error
    if result.ignored_reason is not None:
        assert result.ignored_reason.strip()
    for event in result.events:
        assert event.occurred_at.utcoffset() is not None


@settings(max_examples=250, deadline=None)
@given(st.binary(max_size=1500))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    _assert_one_outcome(_adapt(payload))


_SAMPLE_214 = [
    p.read_bytes() for p in (SAMPLES / CANADA_POST, SAMPLES / EDISOURCE, SAMPLES / FREIGHTFORCE) if p.exists()
] + [(X12_FIXTURES / "two_groups_214_945_crlf.edi").read_bytes()]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_SAMPLE_214),
    st.integers(min_value=0, max_value=6000),
    st.lists(st.tuples(st.integers(min_value=0, max_value=6000), st.binary(min_size=1, max_size=3)), max_size=4),
)
def test_truncated_or_mutated_214_never_raise(payload: bytes, cut: int, mutations: list[tuple[int, bytes]]) -> None:
    mutated = bytearray(payload[: max(1, cut % (len(payload) + 1))])
    for position, replacement in mutations:
        at = position % (len(mutated) or 1)
        mutated[at : at + len(replacement)] = replacement
    _assert_one_outcome(_adapt(bytes(mutated)))
    master = MasterData(sites=(Site(site="S1", edi_warehouse_id="00602679321", timezone="America/Toronto"),))
    _assert_one_outcome(_adapt(bytes(mutated), master))


@settings(max_examples=250, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.text(max_size=12))
def test_unicode_inserted_into_a_valid_file_never_raises(position: int, insert: str) -> None:
    text = (X12_FIXTURES / "two_groups_214_945_crlf.edi").read_text()
    at = position % len(text)
    _assert_one_outcome(_adapt(text[:at] + insert + text[at:]))
