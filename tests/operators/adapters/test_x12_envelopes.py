"""X12 envelopes and set types: trailers that only warn, acknowledgements that are ignored, sets we
do not read that are dead letters (issue 11 items 2 and 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.adapters.x12 import adapt_x12
from operators.master import EMPTY_MASTER
from operators.model import AdapterResult, DeadLetterReason, EventType, WarningKind
from tests.conftest import FIXTURES, raw_message

X12 = FIXTURES / "x12"


def _adapt(payload: bytes | str) -> AdapterResult:
    return adapt_x12(raw_message(payload, topic="wms.edi"), EMPTY_MASTER)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ack_997_only.edi", "X12 acknowledgement without logistics meaning: 997 (functional acknowledgment)"),
        ("ack_999_only.edi", "X12 acknowledgement without logistics meaning: 999 (implementation acknowledgment)"),
        ("ack_ta1_only.edi", "X12 acknowledgement without logistics meaning: TA1 (interchange acknowledgment)"),
    ],
)
def test_acknowledgements_are_ignored_with_a_reason(name: str, reason: str) -> None:
    result = _adapt((X12 / name).read_bytes())
    assert result.outcome == "ignored" and result.ignored_reason == reason
    assert result.warnings == ()


def test_an_acknowledgement_beside_a_set_we_read_is_skipped_quietly() -> None:
    result = _adapt((X12 / "ack_997_with_945_no_iea.edi").read_bytes())
    (event,) = result.events
    assert event.event_type is EventType.SHIPMENT_DISPATCHED and event.delivery_id == "DLV80002"
    # The file ends without GE and IEA: trailer warnings, and the 945 is read all the same.
    assert [str(w) for w in result.warnings] == [
        "trailer: functional group GS06='954' (segment 8 (GS)) has no GE",
        "trailer: interchange ISA13='000000953' has no IEA",
    ]


def test_an_unsupported_set_beside_an_acknowledgement_is_a_dead_letter() -> None:
    result = _adapt((X12 / "ack_997_with_856.edi").read_bytes())
    assert result.dead_letter is not None
    assert result.dead_letter.reason is DeadLetterReason.UNSUPPORTED
    assert result.dead_letter.error == "X12 transaction set(s) 856 not supported"


@pytest.mark.parametrize(
    "name",
    [
        "x12_856_sample1_edifabric_walmart.edi",
        "x12_940_sample2_generalmills.edi",
        "x12_856_sample3_1edisource_004060.edi",
    ],
)
def test_sets_we_do_not_read_stay_unsupported_dead_letters(samples_dir: Path, name: str) -> None:
    result = _adapt((samples_dir / name).read_bytes())
    assert result.dead_letter is not None and result.dead_letter.reason is DeadLetterReason.UNSUPPORTED


def test_walmart_856_keeps_its_control_warnings_on_the_dead_letter(samples_dir: Path) -> None:
    result = _adapt((samples_dir / "x12_856_sample1_edifabric_walmart.edi").read_bytes())
    assert result.dead_letter is not None
    assert [str(w) for w in result.warnings] == ["control_number: GE01='2' but group GS06='000000001' has 1 sets"]


@pytest.mark.parametrize(
    ("removed", "trailers"),
    [
        (
            ("GE*1*101~", "GE*1*102~", "IEA*2*000000901~"),
            [
                "segment 13 (GS): group GS06='101' has no GE before it",
                "functional group GS06='102' (segment 13 (GS)) has no GE",
                "interchange ISA13='000000901' has no IEA",
            ],
        ),
        (("IEA*2*000000901~",), ["interchange ISA13='000000901' has no IEA"]),
        (("GE*1*102~",), ["segment 28 (IEA): group GS06='102' has no GE before IEA"]),
    ],
)
def test_complete_sets_without_trailers_are_read_with_warnings(removed: tuple[str, ...], trailers: list[str]) -> None:
    text = (X12 / "two_groups_214_945_crlf.edi").read_text()
    for segment in removed:
        text = text.replace(segment, "")
    result = _adapt(text)
    assert result.dead_letter is None and len(result.events) == 3
    assert [w.message for w in result.warnings if w.kind is WarningKind.TRAILER] == trailers


def test_a_set_without_se_is_a_parse_error_naming_it() -> None:
    text = (X12 / "two_groups_214_945_crlf.edi").read_text().replace("SE*13*0002~", "")
    result = _adapt(text)
    assert result.dead_letter is not None and result.dead_letter.reason is DeadLetterReason.PARSE_ERROR
    assert "ST02='0002'" in result.dead_letter.error and "has no SE" in result.dead_letter.error


def test_a_truncated_isa_names_the_missing_elements() -> None:
    text = (X12 / "two_groups_214_945_crlf.edi").read_text()
    result = _adapt(text.replace("*000000901*0*P*>~", "~", 1))
    assert result.dead_letter is not None and result.dead_letter.reason is DeadLetterReason.PARSE_ERROR
    assert result.dead_letter.error == (
        "X12 parse error: segment 1 (ISA): truncated, 12 elements before the GS segment, 16 expected "
        "(ISA13..ISA16 missing)"
    )
