"""The X12 tokenizer / envelope parser and the X12 time helpers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.formats.x12 import X12ParseError, looks_like_x12, parse_x12, tokenize
from operators.formats.x12_time import X12TimeError, group_timestamp, parse_x12_date, parse_x12_time, to_utc
from operators.model import AdapterWarning, TimePrecision, WarningKind
from tests.conftest import FIXTURES

X12_FIXTURES = FIXTURES / "x12"
ISA = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*U*00401*000000001*0*P*>"


def _interchange(*body: str, terminator: str = "~") -> str:
    segments = [ISA, "GS*QM*SENDER*RECEIVER*20240101*1200*1*X*004010", *body, "GE*1*1", "IEA*1*000000001"]
    return terminator.join(segments) + terminator


SET_214 = ("ST*214*0001", "B10*PRO*BOL*SCAC", "LX*1", "AT7*AF*NS***20240101*0800*ET", "SE*5*0001")


# --- separators ------------------------------------------------------------------------------


def test_separators_come_from_the_isa(samples_dir: Path) -> None:
    text = (samples_dir / "x12_214_sample2_1edisource_multi_stop.edi").read_text()
    separators, segments = tokenize(text)
    assert (separators.element, separators.component, separators.segment) == ("*", ">", "~")
    assert [s.tag for s in segments[:4]] == ["ISA", "GS", "ST", "B10"]
    assert segments[3].elements == ("995551", "99948782", "XXXX")


def test_newline_terminator_and_padded_elements(samples_dir: Path) -> None:
    text = (samples_dir / "x12_214_sample1_canadapost_multi.edi").read_text()
    separators, segments = tokenize(text)
    assert separators.segment == "\n" and separators.component == ">"
    b10 = next(s for s in segments if s.tag == "B10")
    assert b10.elements[0] == "4343638097845589              "  # raw keeps the padding
    assert b10.el(1) == "4343638097845589"  # el() strips it
    assert b10.el(9) == ""


def test_non_fixed_width_isa(samples_dir: Path) -> None:
    document = parse_x12((samples_dir / "x12_214_sample3_freightforce_two_sets.edi").read_text())
    assert document.separators.component == ":"
    assert [t.control_number for t in document.transaction_sets] == ["001", "002"]
    assert document.transaction_sets[0].envelope.sender_id == "SCAC"
    assert document.transaction_sets[0].envelope.group_control == "001"


@pytest.mark.parametrize("terminator", ["~", "~\n", "~\r\n", "\n", "\r\n"])
def test_terminator_variants(terminator: str) -> None:
    document = parse_x12(_interchange(*SET_214, terminator=terminator))
    assert document.warnings == ()
    (tset,) = document.transaction_sets
    assert [s.tag for s in tset.body] == ["B10", "LX", "AT7"]
    assert tset.body[2].el(7) == "ET"


def test_other_delimiters_and_repetition_separator() -> None:
    isa = ISA.replace("*", "|").replace("|U|00401", "|^|00501").replace("|>", "|:")
    body = [isa, "GS|QM|S|R|20240101|1200|1|X|005010", *(s.replace("*", "|") for s in SET_214)]
    text = "\x1c".join([*body, "GE|1|1", "IEA|1|000000001"])
    document = parse_x12(text)
    assert document.separators.element == "|"
    assert document.separators.segment == "\x1c"
    assert document.separators.repetition == "^"
    assert document.transaction_sets[0].body[0].el(3) == "SCAC"


def test_segments_wrapped_across_lines_are_joined(samples_dir: Path) -> None:
    document = parse_x12((samples_dir / "x12_940_sample2_generalmills.edi").read_text())
    (tset,) = document.transaction_sets
    w01 = [s for s in tset.body if s.tag == "W01"]
    assert len(w01) == 2
    assert w01[0].el(15) == "PI" and w01[0].el(16) == "001089"  # the wrapped tail belongs to W01
    assert not [w for w in document.warnings if w.message.startswith("SE01")]  # SE01 = 20 holds


def test_wrapped_fixture_with_crlf() -> None:
    document = parse_x12((X12_FIXTURES / "two_groups_214_945_crlf.edi").read_text())
    at7 = [s for s in document.transaction_sets[0].body if s.tag == "AT7"]
    assert at7[1].el(6) == "1305"


# --- bare sets and envelopes -----------------------------------------------------------------


def test_bare_set_with_tilde(samples_dir: Path) -> None:
    document = parse_x12((samples_dir / "x12_945_sample1_jrsimplot_st_se_only.edi").read_text())
    (tset,) = document.transaction_sets
    assert tset.set_id == "945" and tset.control_number == "0001"
    assert tset.envelope.sender_id is None and tset.envelope.group_date is None
    assert len(tset.body) == 27
    assert document.warnings == (
        AdapterWarning(WarningKind.CONTROL_NUMBER, "SE01='32' but set ST02='0001' has 29 segments"),
    )


def test_bare_set_with_newlines(samples_dir: Path) -> None:
    document = parse_x12((samples_dir / "x12_947_sample1_saputo_snippet.edi").read_text())
    (tset,) = document.transaction_sets
    assert [s.tag for s in tset.body] == ["W15", "N1", "N1", "W19"]
    assert document.warnings == ()


def test_several_groups_and_sets_keep_their_envelope() -> None:
    document = parse_x12((X12_FIXTURES / "two_groups_214_945_crlf.edi").read_text())
    assert document.warnings == ()
    first, second = document.transaction_sets
    assert (first.set_id, first.envelope.functional_id, first.envelope.group_time) == ("214", "QM", "141230")
    assert (second.set_id, second.envelope.functional_id, second.envelope.group_control) == ("945", "SW", "102")
    assert first.envelope.sender_id == second.envelope.sender_id == "ACMEWMS"
    assert first.envelope.interchange_control == "000000901"


def test_two_interchanges_in_one_payload() -> None:
    one = _interchange(*SET_214)
    document = parse_x12(one + "\n" + one)
    assert len(document.transaction_sets) == 2


def test_zero_padded_controls_are_not_mismatches(samples_dir: Path) -> None:
    document = parse_x12((samples_dir / "x12_214_sample1_canadapost_multi.edi").read_text())
    assert len(document.transaction_sets) == 19
    assert document.warnings == ()


# --- control validation: warnings, never rejection -------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "warning"),
    [
        ("SE*5*0001", "SE*7*0001", "control_number: SE01='7' but set ST02='0001' has 5 segments"),
        ("SE*5*0001", "SE*5*0002", "control_number: SE02='0002' does not match ST02='0001'"),
        ("GE*1*1", "GE*3*1", "control_number: GE01='3' but group GS06='1' has 1 sets"),
        ("GE*1*1", "GE*1*9", "control_number: GE02='9' does not match GS06='1'"),
        ("IEA*1*", "IEA*2*", "control_number: IEA01='2' but interchange has 1 groups"),
        ("IEA*1*000000001", "IEA*1*000000002", "control_number: IEA02='000000002' does not match ISA13='000000001'"),
        ("GE*1*1~", "", "trailer: segment 8 (IEA): group GS06='1' has no GE before IEA"),
        ("IEA*1*000000001~", "", "trailer: interchange ISA13='000000001' has no IEA"),
        ("GE*1*1~IEA*1*000000001~", "", "trailer: functional group GS06='1' (segment 2 (GS)) has no GE"),
        ("GE*1*1~", "IEA*1*000000001~GE*1*1~", "trailer: segment 8 (IEA): group GS06='1' has no GE before IEA"),
    ],
)
def test_envelope_findings_are_warnings(old: str, new: str, warning: str) -> None:
    document = parse_x12(_interchange(*SET_214).replace(old, new, 1))
    assert str(document.warnings[0]) == warning
    assert len(document.transaction_sets) == 1


def test_missing_trailers_are_one_warning_each() -> None:
    text = _interchange(*SET_214).replace("GE*1*1~IEA*1*000000001~", "")
    assert [str(w) for w in parse_x12(text).warnings] == [
        "trailer: functional group GS06='1' (segment 2 (GS)) has no GE",
        "trailer: interchange ISA13='000000001' has no IEA",
    ]


def test_a_second_group_without_ge_before_it_is_read() -> None:
    text = _interchange(*SET_214, "GS*QM*SENDER*RECEIVER*20240101*1300*2*X*004010", *SET_214).replace("GE*1*1~", "", 1)
    document = parse_x12(text)
    assert len(document.transaction_sets) == 2
    assert [w.kind for w in document.warnings][:1] == [WarningKind.TRAILER]
    assert document.transaction_sets[1].envelope.group_control == "2"


def test_sample_control_quirks_are_warnings(samples_dir: Path) -> None:
    edisource = parse_x12((samples_dir / "x12_214_sample2_1edisource_multi_stop.edi").read_text())
    assert [str(w) for w in edisource.warnings] == [
        "control_number: IEA02='000002510' does not match ISA13='000003438'"
    ]
    waqe = parse_x12((samples_dir / "x12_945_sample2_3pl_waqe.edi").read_text())
    assert [str(w) for w in waqe.warnings] == ["control_number: SE01='12' but set ST02='000006123' has 16 segments"]


def test_interchange_acknowledgment_alone_is_a_document_without_sets() -> None:
    text = "~".join([ISA, "TA1*000000123*240101*1200*A*000", "IEA*0*000000001"]) + "~"
    document = parse_x12(text)
    assert document.transaction_sets == () and document.interchange_acknowledgments == 1


# --- parse errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "empty payload"),
        ("   \n", "empty payload"),
        ('{"object": "Event"}', "not X12"),
        ("ISA*00*  *00*", "segment 1 (ISA): truncated, 4 elements, 16 expected (ISA05..ISA16 missing)"),
        ("ISAX00", "element separator"),
        (ISA.replace("*>", "*A") + "~", "ISA16 component separator 'A' is not a delimiter"),
        # A truncated ISA names what is missing, not an ISA16 taken from the GS that follows.
        (
            _interchange(*SET_214).replace("*000000001*0*P*>", ""),
            "segment 1 (ISA): truncated, 12 elements before the GS segment, 16 expected (ISA13..ISA16 missing)",
        ),
        (_interchange(*SET_214)[:-40], "transaction set ST02='0001' (segment 3 (ST)) has no SE"),
        (_interchange(*SET_214[:-1]), "has no SE"),
        (_interchange("B10*PRO*BOL*SCAC", *SET_214), "segment 3 (B10): segment outside a transaction set"),
        (_interchange(*SET_214).replace("LX*1", "lx*1"), "segment 5: 'lx' is not a segment id"),
        (_interchange("SE*1*0001"), "SE without a matching ST"),
        (_interchange("ST**0001", "SE*2*0001"), "ST01 transaction set id is empty"),
        (ISA + "~GS*QM*S*R*20240101*1200*1*X*004010~GE*0*1~IEA*1*000000001~", "no transaction set"),
        ("ST*945", "no segment terminator"),
    ],
)
def test_unreadable_input_names_the_problem(payload: str, message: str) -> None:
    with pytest.raises(X12ParseError, match=re.escape(message)):
        parse_x12(payload)


def test_looks_like_x12() -> None:
    assert looks_like_x12("\ufeff  ISA*00*")
    assert looks_like_x12("ST*947*1\n")
    assert not looks_like_x12('{"specversion": "1.0"}')
    assert not looks_like_x12("STATUS report")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ISAGTEX*~>:^|\n\r 0123456789B1LW")), max_size=300))
def test_parser_only_raises_parse_errors(text: str) -> None:
    try:
        document = parse_x12(text)
    except X12ParseError as exc:
        assert str(exc)
    else:
        assert document.transaction_sets or document.interchange_acknowledgments


# --- time codes ------------------------------------------------------------------------------


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "clock", "code", "expected"),
    [
        ("20191102", "1625", "PT", _utc(2019, 11, 2, 23, 25)),  # still PDT (Canada Post sample)
        ("20191104", "1625", "PT", _utc(2019, 11, 5, 0, 25)),  # PST after the switch
        ("20240115", "0800", "ET", _utc(2024, 1, 15, 13, 0)),
        ("20240715", "0800", "ET", _utc(2024, 7, 15, 12, 0)),
        ("20240715", "0800", "ES", _utc(2024, 7, 15, 13, 0)),  # the code says standard time
        ("20240115", "0800", "ED", _utc(2024, 1, 15, 12, 0)),
        ("20240715", "0800", "CS", _utc(2024, 7, 15, 14, 0)),
        ("20240715", "0800", "CT", _utc(2024, 7, 15, 13, 0)),
        ("20240715", "0800", "MT", _utc(2024, 7, 15, 14, 0)),
        ("20240715", "0800", "MS", _utc(2024, 7, 15, 15, 0)),
        ("20240715", "0800", "AT", _utc(2024, 7, 15, 16, 0)),
        ("20240715", "0800", "HT", _utc(2024, 7, 15, 18, 0)),
        ("20240715", "0800", "TT", _utc(2024, 7, 15, 11, 0)),
        ("20240715", "0800", "NT", _utc(2024, 7, 15, 10, 30)),
        ("20240115", "0800", "NS", _utc(2024, 1, 15, 11, 30)),
        ("20240115", "0800", "ND", _utc(2024, 1, 15, 10, 30)),
        ("20240115", "0800", "UT", _utc(2024, 1, 15, 8, 0)),
        ("20240115", "0800", "GM", _utc(2024, 1, 15, 8, 0)),
        ("20240115", "0800", "01", _utc(2024, 1, 15, 7, 0)),
        ("20240115", "0800", "12", _utc(2024, 1, 14, 20, 0)),
        ("20240115", "0800", "13", _utc(2024, 1, 15, 20, 0)),
        ("20240115", "0800", "24", _utc(2024, 1, 15, 9, 0)),
    ],
)
def test_time_codes(day: str, clock: str, code: str, expected: datetime) -> None:
    resolved = to_utc(day, clock, code, local_zone=None, date_element="AT705", time_element="AT706")
    assert resolved.instant == expected
    assert not resolved.local and resolved.known_code
    assert resolved.precision is TimePrecision.MIN


@pytest.mark.parametrize("code", ["", "LT", "lt"])
def test_local_time_uses_the_given_zone_else_utc(code: str) -> None:
    site = to_utc("20240715", "0800", code, local_zone="Europe/Berlin", date_element="d", time_element="t")
    assert site.instant == _utc(2024, 7, 15, 6, 0) and site.local and site.zone == "Europe/Berlin"
    bare = to_utc("20240715", "0800", code, local_zone=None, date_element="d", time_element="t")
    assert bare.instant == _utc(2024, 7, 15, 8, 0) and bare.local and bare.zone == "UTC"


def test_unknown_code_and_bad_zone_fall_back_to_local_then_utc() -> None:
    resolved = to_utc("20240715", "0800", "QQ", local_zone="Not/AZone", date_element="d", time_element="t")
    assert resolved.instant == _utc(2024, 7, 15, 8, 0)
    assert resolved.local and not resolved.known_code and resolved.zone == "UTC"


def test_precision_from_the_time_element() -> None:
    def precision(clock: str) -> TimePrecision:
        return to_utc("20240101", clock, "UT", local_zone=None, date_element="d", time_element="t").precision

    assert precision("1200") is TimePrecision.MIN
    assert precision("120005") is TimePrecision.S
    assert precision("12000512") is TimePrecision.MS
    assert precision("") is TimePrecision.DAY
    assert parse_x12_time("1200051", "t") == (time(12, 0, 5, 100_000), TimePrecision.MS)


@pytest.mark.parametrize(
    ("value", "message"),
    [("2019110", "not CCYYMMDD"), ("20190230", "not a calendar date"), ("00010101", "implausible year")],
)
def test_bad_dates(value: str, message: str) -> None:
    with pytest.raises(X12TimeError, match=message):
        parse_x12_date(value, "AT705")


@pytest.mark.parametrize("value", ["2460", "12", "1a00", "2500", "120099"])
def test_bad_times(value: str) -> None:
    with pytest.raises(X12TimeError, match="AT706"):
        parse_x12_time(value, "AT706")


def test_dates_parse() -> None:
    assert parse_x12_date("20191102", "AT705") == date(2019, 11, 2)


def test_group_timestamp_is_read_as_utc() -> None:
    assert group_timestamp("20191103", "1800") == _utc(2019, 11, 3, 18, 0)
    assert group_timestamp("20240305", "141230") == _utc(2024, 3, 5, 14, 12, second=30)
    assert group_timestamp(None, None) is None
    with pytest.raises(X12TimeError, match="GS05"):
        group_timestamp("20240305", "99")
