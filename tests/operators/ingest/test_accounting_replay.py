"""The accounting of replayed dead letters: counted in their outcome and in `replayed`, never in
raw_in, with one `LetterReplay` per letter (operators/ingest/accounting.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from operators.ingest.accounting import (
    DEAD_LETTERED,
    DUPLICATE,
    IGNORED,
    NORMALIZED,
    Expect,
    Finished,
    IngestStats,
    Judged,
    LetterReplay,
    SourceTally,
    TallyItem,
    split_result,
)
from operators.model import (
    AdapterResult,
    CanonicalEvent,
    DeadLetterReason,
    EventType,
    RawMessage,
    SourceKind,
    TimePrecision,
    dead,
    ignored,
    ok,
)

T = datetime(2024, 1, 1, tzinfo=UTC)
TOPIC = "wms.epcis"


def event(event_id: str) -> CanonicalEvent:
    return CanonicalEvent(
        event_id=event_id,
        event_type=EventType.SHIPMENT_DISPATCHED,
        source_kind=SourceKind.WMS,
        source_format="epcis",
        source_system="test",
        occurred_at=T,
        recorded_at=None,
        received_at=T,
        time_precision=TimePrecision.S,
        raw_ref="x",
    )


def message(offset: int, replay_of: str | None = None) -> RawMessage:
    return RawMessage(TOPIC, 0, offset, None, b"{}", T, replay_of=replay_of)


def tally_items(raw: RawMessage, result: AdapterResult, new: bool = True) -> list[TallyItem]:
    """What normalize and dedup tell the tally about one message."""
    claims, first = split_result(raw, "src", result, 0)
    items: list[TallyItem] = [first]
    if claims:
        new_types = tuple(claim.event.event_type.value for claim in claims) if new else ()
        items.append(Judged(raw.offset, len(claims), new_types))
    return items


def counts(row: IngestStats) -> dict[str, int]:
    names = ("raw_in", "replayed", "normalized", "duplicates", "dead_lettered", "ignored", "events_out")
    return {name: getattr(row, name) for name in names}


def balanced(row: IngestStats) -> bool:
    return row.raw_in == row.normalized + row.duplicates + row.dead_lettered + row.ignored - row.replayed


def test_split_result_carries_the_original_raw_ref_of_a_replay() -> None:
    raw = message(3, replay_of="wms.epcis:2:77")
    _, finished = split_result(raw, "dlq:r", dead(raw, DeadLetterReason.MAPPING_ERROR, "epcis", "e"), 0)
    assert finished == Finished(3, TOPIC, DEAD_LETTERED, "mapping_error", (), "wms.epcis:2:77")
    claims, expect = split_result(raw, "dlq:r", ok([event("e1"), event("e1"), event("e2")]), 0)
    assert expect == Expect(3, TOPIC, 2, (), "wms.epcis:2:77") and len(claims) == 2
    _, plain = split_result(message(4), "src", ok([event("e3")]), 0)
    assert isinstance(plain, Expect) and plain.replay_of == ""


def test_a_replay_run_counts_outcomes_and_replayed_but_no_raw_message() -> None:
    tally = SourceTally("dlq:r1", "r1")
    letters = [
        (message(0, "wms.epcis:0:10"), ok([event("a"), event("b")]), True),  # mapped now: normalized
        (message(1, "wms.epcis:0:11"), ok([event("a")]), False),  # its event came first: duplicate
        (message(2, "wms.epcis:1:12"), ignored("valid, no logistics meaning"), True),
        (message(3, "wms.epcis:1:13"), dead(message(3), DeadLetterReason.MAPPING_ERROR, "epcis", "e"), True),
    ]
    for raw, result, new in letters:
        for item in tally_items(raw, result, new):
            tally.add(item)
    (row,) = tally.rows()
    assert counts(row) == {
        "raw_in": 0,
        "replayed": 4,
        "normalized": 1,
        "duplicates": 1,
        "dead_lettered": 1,
        "ignored": 1,
        "events_out": 2,
    }
    assert balanced(row) and row.messages == 4 and row.dead_by_reason == {"mapping_error": 1}
    assert tally.replays() == [
        LetterReplay("wms.epcis:0:10", TOPIC, NORMALIZED, "r1"),
        LetterReplay("wms.epcis:0:11", TOPIC, DUPLICATE, "r1"),
        LetterReplay("wms.epcis:1:12", TOPIC, IGNORED, "r1"),
        LetterReplay("wms.epcis:1:13", TOPIC, DEAD_LETTERED, "r1"),
    ]
    assert tally.replays() == []  # each letter's outcome is handed on once


def test_a_replay_waits_for_every_verdict_like_any_message() -> None:
    tally = SourceTally("dlq:r1", "r1")
    raw = message(0, "wms.epcis:0:10")
    claims, expect = split_result(raw, "dlq:r1", ok([event("a"), event("b")]), 0)
    tally.add(Judged(0, 1, ("SHIPMENT_DISPATCHED",)))  # one dedup bucket answered before the Expect
    tally.add(expect)
    assert tally.replays() == [] and tally.open_count() == 1
    tally.add(Judged(0, 1, ()))
    assert tally.replays() == [LetterReplay("wms.epcis:0:10", TOPIC, NORMALIZED, "r1")]
    assert len(claims) == 2 and tally.open_count() == 0


def test_letters_replayed_twice_keep_the_invariant_across_runs() -> None:
    """Run 1 dead-letters 3 messages; replay 1 fixes one (two still dead); replay 2 fixes the rest.
    Summed over the three runs' rows (what ingest_stats FINAL holds), the topic balances, and
    dead_lettered - replayed is the letters left."""
    live = SourceTally("wms.epcis:0", "run")
    for offset in range(5):
        raw = message(offset)
        result = dead(raw, DeadLetterReason.MAPPING_ERROR, "epcis", "e") if offset < 3 else ok([event(f"ok{offset}")])
        for item in tally_items(raw, result):
            live.add(item)
    first, second = SourceTally("dlq:r1", "r1"), SourceTally("dlq:r2", "r2")
    for index in range(3):
        raw = message(index, f"wms.epcis:0:{index}")
        fixed = index == 0
        result = ok([event(f"fixed{index}")]) if fixed else dead(raw, DeadLetterReason.MAPPING_ERROR, "epcis", "e")
        for item in tally_items(raw, result):
            first.add(item)
    for index in (1, 2):
        raw = message(index - 1, f"wms.epcis:0:{index}")
        for item in tally_items(raw, ok([event(f"fixed{index}")])):
            second.add(item)
    rows = [*live.rows(), *first.rows(), *second.rows()]
    total = {name: sum(counts(row)[name] for row in rows) for name in counts(rows[0])}
    assert total == {
        "raw_in": 5,
        "replayed": 5,
        "normalized": 5,
        "duplicates": 0,
        "dead_lettered": 5,
        "ignored": 0,
        "events_out": 5,
    }
    assert all(balanced(row) for row in rows)
    assert total["dead_lettered"] - total["replayed"] == 0  # no letter left
    assert live.rows() == [] and first.rows() == []  # rows only for blocks changed since the last call


def test_a_live_block_mixes_new_messages_and_replays_and_still_balances() -> None:
    """Kafka mode: letters produced back onto their topic arrive among new messages."""
    tally = SourceTally("wms.epcis:0", "live")
    for item in tally_items(message(100), ok([event("n1")])):
        tally.add(item)
    for item in tally_items(message(101, replay_of="wms.epcis:0:7"), ok([event("r1")])):
        tally.add(item)
    for item in tally_items(message(102), ignored("ack")):
        tally.add(item)
    (row,) = tally.rows()
    assert (row.raw_in, row.replayed, row.normalized, row.ignored, row.events_out) == (2, 1, 2, 1, 2)
    assert balanced(row) and row.messages == 3
    assert tally.replays() == [LetterReplay("wms.epcis:0:7", TOPIC, NORMALIZED, "live")]
