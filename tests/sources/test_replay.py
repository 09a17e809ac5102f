"""Replay files (design.md 2.2): every line becomes a raw message, invalid ones included."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sources.replay import INVALID_TOPIC, format_line, parse_line, read_replay, write_replay

T = datetime(2024, 5, 1, 8, 30, 0, 123000, tzinfo=UTC)


def test_round_trip_text_and_binary_payloads(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with path.open("wb") as out:
        n = write_replay(out, [("erp.sap.events", "k1", T, b'{"a": 1}'), ("wms.edi", None, T, b"ISA\xff\xfe")])
    assert n == 2
    first, second = list(read_replay(path))
    assert (first.topic, first.key, first.value, first.offset, first.partition) == (
        "erp.sap.events",
        "k1",
        b'{"a": 1}',
        0,
        0,
    )
    assert first.received_at == T and first.raw_ref == "erp.sap.events:0:0"
    assert second.value == b"ISA\xff\xfe" and second.offset == 1
    assert b'"value_b64"' in format_line("wms.edi", None, T, b"\xff")


def test_invalid_envelopes_are_kept_as_invalid_messages() -> None:
    cases = {
        b"not json\n": "not JSON",
        b'{"key": null, "received_at": "2024-01-01T00:00:00Z", "value": "x"}\n': "missing 'topic'",
        b'{"topic": "t", "received_at": "yesterday", "value": "x"}\n': "bad 'received_at'",
        b'{"topic": "t", "received_at": "2024-01-01T00:00:00", "value": "x"}\n': "no UTC offset",
        b'{"topic": "t", "received_at": "2024-01-01T00:00:00Z"}\n': "missing 'value'",
        b'{"topic": "t", "received_at": "2024-01-01T00:00:00Z", "value_b64": "!!"}\n': "bad 'value_b64'",
    }
    for offset, (line, message) in enumerate(cases.items()):
        raw = parse_line(line, offset)
        assert raw.topic == INVALID_TOPIC
        assert raw.key is not None and message in raw.key
        assert raw.value == line.rstrip(b"\n")
        assert raw.offset == offset


def test_received_at_is_normalized_to_utc() -> None:
    raw = parse_line(b'{"topic": "t", "key": null, "received_at": "2024-01-01T02:00:00+02:00", "value": ""}', 0)
    assert raw.received_at == datetime(2024, 1, 1, tzinfo=UTC)
