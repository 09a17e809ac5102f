"""The dead-letter source: stored letters back as RawMessages that keep their raw_ref."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from operators.model import DeadLetter, DeadLetterReason, RawMessage
from sinks.rows import DEAD_LETTER_COLUMNS, dead_letter_row
from sinks.store import StoreConfig, connect
from sources.dead_letters import DeadLetterSource, LetterFilter, load_messages, replay_source, select_letters

pytestmark = pytest.mark.clickhouse

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def store_letters(store: StoreConfig, letters: list[DeadLetter]) -> None:
    rows = [list(dead_letter_row(letter)) for letter in letters]
    connect(store).insert(
        f"{store.database}.dead_letters",
        [[*row, 0] for row in rows],
        column_names=[*DEAD_LETTER_COLUMNS, "ingested_at"],
    )


def letter(topic: str, partition: int, offset: int, value: bytes, seconds: int, key: str | None = "k") -> DeadLetter:
    raw = RawMessage(topic, partition, offset, key, value, T0 + timedelta(seconds=seconds))
    return DeadLetter(raw, DeadLetterReason.MAPPING_ERROR, "epcis", "unmapped")


def test_letters_come_back_oldest_first_with_their_raw_ref_payload_and_key(store: StoreConfig) -> None:
    store_letters(
        store,
        [
            letter("wms.epcis", 2, 900, b'{"late": 1}', seconds=30),
            letter("wms.edi", 0, 5, b"\xff\xfe binary", seconds=10, key=None),
            letter("wms.epcis", 1, 12, b'{"early": 1}', seconds=10),
        ],
    )
    refs = select_letters(connect(store), store.database, LetterFilter())
    assert [ref.raw_ref for ref in refs] == ["wms.edi:0:5", "wms.epcis:1:12", "wms.epcis:2:900"]
    source = DeadLetterSource(store, refs, replay_source("r1"), batch_size=2)
    assert source.senders == ("dlq:r1",) and source.list_parts() == ["dead_letters"]
    part = source.build_part("input", "dead_letters", None)
    first, second, last = part.next_batch(), part.next_batch(), part.next_batch()
    assert [batch.source for batch in first + second + last] == ["dlq:r1"] * 3
    messages = first[0].messages + second[0].messages
    assert messages == [
        RawMessage("wms.edi", 0, 0, None, b"\xff\xfe binary", T0 + timedelta(seconds=10), "wms.edi:0:5"),
        RawMessage("wms.epcis", 0, 1, "k", b'{"early": 1}', T0 + timedelta(seconds=10), "wms.epcis:1:12"),
        RawMessage("wms.epcis", 0, 2, "k", b'{"late": 1}', T0 + timedelta(seconds=30), "wms.epcis:2:900"),
    ]
    assert [m.raw_ref for m in messages] == ["wms.edi:0:5", "wms.epcis:1:12", "wms.epcis:2:900"]
    ms = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)
    assert (first[0].promise, second[0].promise) == (ms + 10_000, ms + 30_000)
    assert (last[0].messages, last[0].promise, last[0].done) == ([], ms + 30_000, True)
    with pytest.raises(StopIteration):
        part.next_batch()


def test_a_resumed_partition_continues_after_its_snapshot(store: StoreConfig) -> None:
    store_letters(store, [letter("wms.epcis", 0, offset, b"{}", seconds=offset) for offset in range(5)])
    refs = select_letters(connect(store), store.database, LetterFilter())
    part = DeadLetterSource(store, refs, "dlq:r2", batch_size=2).build_part("input", "dead_letters", None)
    part.next_batch()
    resumed = DeadLetterSource(store, refs, "dlq:r2", batch_size=2).build_part("input", "dead_letters", part.snapshot())
    assert [m.raw_ref for m in resumed.next_batch()[0].messages] == ["wms.epcis:0:2", "wms.epcis:0:3"]


def test_a_letter_gone_from_the_store_is_skipped(store: StoreConfig) -> None:
    store_letters(store, [letter("wms.epcis", 0, 1, b"{}", seconds=1), letter("wms.epcis", 0, 2, b"{}", seconds=2)])
    refs = select_letters(connect(store), store.database, LetterFilter())
    connect(store).command(f"TRUNCATE TABLE {store.database}.dead_letters")
    store_letters(store, [letter("wms.epcis", 0, 2, b"{}", seconds=2)])
    messages = load_messages(connect(store), store.database, refs, 40)
    assert [(m.raw_ref, m.offset) for m in messages] == [("wms.epcis:0:2", 41)]
