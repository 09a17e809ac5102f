"""Row mapping of replayed messages: they keep the raw_ref (and position) of the original."""

from __future__ import annotations

import pickle

import msgspec

from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS, Normalizer
from operators.master import EMPTY_MASTER
from operators.model import DeadLetter, DeadLetterReason, RawMessage, split_raw_ref
from sinks.rows import DEAD_LETTER_COLUMNS, dead_letter_row, event_row
from sources.batch import RawBatch
from tests.conftest import RECEIVED, raw_message
from tests.flows.test_pipeline import SNAPSHOT


def replayed(value: bytes, original: str, topic: str = "stock.snapshots") -> RawMessage:
    """How the dead-letter source carries a stored letter: its own position, the original ref."""
    return RawMessage(topic, 0, 41, "k", value, RECEIVED, replay_of=original)


def test_raw_ref_is_the_original_when_replayed() -> None:
    assert raw_message(b"x", topic="wms.edi", offset=5).raw_ref == "wms.edi:0:5"
    assert replayed(b"x", "stock.snapshots:2:900").raw_ref == "stock.snapshots:2:900"
    assert split_raw_ref("carrier.webhooks:2:900") == ("carrier.webhooks", 2, 900)


def test_events_of_a_replayed_message_carry_the_original_raw_ref() -> None:
    result = Normalizer(DEFAULT_TOPIC_ADAPTERS, EMPTY_MASTER)(replayed(SNAPSHOT, "stock.snapshots:2:900"))
    (event,) = result.events
    assert event.raw_ref == "stock.snapshots:2:900"
    assert event_row(event)[24] == "stock.snapshots:2:900"


def test_a_replayed_letter_still_dead_replaces_the_original_row() -> None:
    original = raw_message(b"\xff\xfe", topic="erp.sap.events", offset=900)
    again = RawMessage("erp.sap.events", 0, 3, None, b"\xff\xfe", RECEIVED, replay_of=original.raw_ref)
    rows = [
        dict(
            zip(
                DEAD_LETTER_COLUMNS,
                dead_letter_row(DeadLetter(raw, DeadLetterReason.DECODE_ERROR, "x", "e")),
                strict=True,
            )
        )
        for raw in (original, again)
    ]
    assert rows[0] == rows[1]
    assert (rows[1]["raw_ref"], rows[1]["partition"], rows[1]["offset"]) == ("erp.sap.events:0:900", 0, 900)
    assert rows[1]["payload"] == "//4=" and rows[1]["payload_b64"] is True


def test_replay_of_survives_the_trip_between_processes_and_old_encodings_still_decode() -> None:
    batch = RawBatch("dlq:r1", [replayed(b"v", "wms.edi:1:2")], 5)
    assert pickle.loads(pickle.dumps(batch)).messages[0].replay_of == "wms.edi:1:2"
    # A message encoded before the field existed (a recovery snapshot, a packet in flight).
    old = msgspec.msgpack.encode(
        {"topic": "t", "partition": 0, "offset": 1, "key": None, "value": b"v", "received_at": RECEIVED}
    )
    decoded = msgspec.msgpack.decode(old, type=RawMessage)
    assert decoded.replay_of is None and decoded.raw_ref == "t:0:1"
