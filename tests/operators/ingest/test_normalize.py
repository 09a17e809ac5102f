"""The normalizer's mapping policy (`unmapped`): warn, or dead-letter `mapping_error`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS, Normalizer, mapping_error, with_warnings
from operators.master import MasterData, Product, Site
from operators.model import AdapterResult, AdapterWarning, DeadLetterReason, RawMessage, WarningKind
from tests.conftest import raw_message

MASTER = MasterData(products=(Product("MAT-100", "10614141073464", "EA"),), sites=(Site("1000", gln="0614141073467"),))


def epcis(*epcs: str, location: str = "urn:epc:id:sgln:0614141.07346.7") -> bytes:
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": "ni:///evt-1",
        "eventTime": "2024-03-01T10:00:00Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "OBSERVE",
        "bizStep": "shipping",
        "bizLocation": {"id": location},
        "epcList": list(epcs),
    }
    return json.dumps(event).encode()


KNOWN = "urn:epc:id:sgtin:0614141.107346.1"  # GTIN 10614141073464 = MAT-100
UNKNOWN = "urn:epc:id:sgtin:4012345.011111.1"  # GTIN 04012345111118: not in the master
SITE_1000 = "urn:epc:id:sgln:0614141.07346.7"  # GLN 0614141073467 = site 1000


def normalize(value: bytes, unmapped: str) -> tuple[RawMessage, AdapterResult]:
    raw = raw_message(value, topic="wms.epcis", offset=3)
    return raw, Normalizer(DEFAULT_TOPIC_ADAPTERS, MASTER, unmapped)(raw)


def test_warn_keeps_the_unmapped_id_and_counts_a_warning() -> None:
    _, result = normalize(epcis(KNOWN, UNKNOWN, location=SITE_1000), "warn")
    assert result.outcome == "normalized"
    (event,) = result.events
    assert sorted(line.sku for line in event.lines) == ["MAT-100", "UNMAPPED:04012345111118"]
    assert event.site == "1000"
    assert result.warnings == (
        AdapterWarning(WarningKind.MAPPING, "GTIN 04012345111118 (event.epcList) not in the product master"),
    )


def test_dead_letter_makes_the_message_a_mapping_error_naming_every_id() -> None:
    raw, result = normalize(epcis(KNOWN, UNKNOWN, location="urn:epc:id:sgln:9999999.00000.0"), "dead_letter")
    assert result.outcome == "dead_lettered" and result.events == ()
    letter = result.dead_letter
    assert letter is not None
    assert (letter.reason, letter.adapter, letter.raw) == (DeadLetterReason.MAPPING_ERROR, "epcis", raw)
    assert letter.error == (
        "2 id(s) not in the master data (unmapped = dead_letter): "
        "site 'urn:epc:id:sgln:9999999.00000.0' (event.bizLocation.id) not in the site master; "
        "GTIN 04012345111118 (event.epcList) not in the product master"
    )
    assert result.warnings == ()  # the mapping warnings became the error


def test_dead_letter_leaves_fully_mapped_messages_alone() -> None:
    _, strict = normalize(epcis(KNOWN, location=SITE_1000), "dead_letter")
    _, lenient = normalize(epcis(KNOWN, location=SITE_1000), "warn")
    assert strict == lenient and strict.outcome == "normalized" and strict.warnings == ()


def test_other_dead_letters_keep_their_reason_under_the_strict_policy() -> None:
    _, result = normalize(b'{"type": "ObjectEvent"', "dead_letter")
    assert result.dead_letter is not None and result.dead_letter.reason == DeadLetterReason.PARSE_ERROR


def test_structured_warnings_name_their_message_and_other_kinds_are_kept() -> None:
    raw = raw_message(b"{}", topic="wms.epcis")
    warnings = (
        AdapterWarning(WarningKind.MAPPING, "site 'X' not in the site master"),
        AdapterWarning(WarningKind.CONTROL_NUMBER, "SE01 says 5 segments, counted 6"),
        AdapterWarning(WarningKind.MAPPING, "site 'X' not in the site master"),  # one id named once
    )
    result = mapping_error(raw, "x12", AdapterResult(events=(), warnings=warnings))
    assert result.dead_letter is not None
    assert result.dead_letter.error == (
        "1 id(s) not in the master data (unmapped = dead_letter): site 'X' not in the site master"
    )
    assert result.warnings == (warnings[1],)


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unmapped policy must be one of"):
        Normalizer(DEFAULT_TOPIC_ADAPTERS, MASTER, "strict")


def test_warnings_are_written_onto_the_dead_letter_and_the_events() -> None:
    raw = raw_message(b"{}", topic="wms.epcis")
    warnings = (
        AdapterWarning(WarningKind.MAPPING, "site 'X' not in the site master"),
        AdapterWarning(WarningKind.CONTROL_NUMBER, "SE01 says 5 segments, counted 6"),
    )
    letter = with_warnings(mapping_error(raw, "x12", AdapterResult(events=(), warnings=warnings))).dead_letter
    assert letter is not None and letter.warnings == ("control_number: SE01 says 5 segments, counted 6",)
    _, result = normalize(epcis(KNOWN, UNKNOWN, location=SITE_1000), "warn")
    (event,) = result.events
    assert event.warnings == ("mapping: GTIN 04012345111118 (event.epcList) not in the product master",)
