"""Dedup and the exact per-message accounting (design.md section 4): split_result, EventDedup,
SourceTally and its offset-block ingest_stats rows."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from itertools import permutations
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from operators.domain.items import bucket_of
from operators.ingest.accounting import (
    BLOCK,
    DEAD_LETTERED,
    IGNORED,
    Claim,
    EventDedup,
    Expect,
    Finished,
    IngestStats,
    Judged,
    SourceTally,
    TallyItem,
    count_mapping_warnings,
    split_result,
)
from operators.model import (
    AdapterResult,
    AdapterWarning,
    CanonicalEvent,
    DeadLetterReason,
    EventType,
    SourceKind,
    TimePrecision,
    WarningKind,
    dead,
    ignored,
    ok,
    with_changes,
)
from tests.conftest import raw_message

T = datetime(2024, 1, 1, tzinfo=UTC)
SOURCE = "carrier.webhooks:0"


def event(event_id: str, event_type: EventType = EventType.CARRIER_STATUS) -> CanonicalEvent:
    return CanonicalEvent(
        event_id=event_id,
        event_type=event_type,
        source_kind=SourceKind.CARRIER,
        source_format="test",
        source_system="test",
        occurred_at=T,
        recorded_at=None,
        received_at=T,
        time_precision=TimePrecision.S,
        raw_ref="t:0:0",
    )


def split(offset: int, result: AdapterResult, topic: str = "carrier.webhooks") -> tuple[list[Claim], TallyItem]:
    return split_result(raw_message("{}", topic=topic, offset=offset), SOURCE, result, 1_000 + offset)


def judge(dedup: EventDedup, claims: list[Claim], source: str = SOURCE) -> list[Judged]:
    """What a dedup bucket tells the tally once W passed the claims: per message, how many events
    it judged and the new ones."""
    for claim in claims:
        dedup.offer(claim.event, source, claim.offset, claim.received_ms)
    dedup.decide(max((claim.received_ms for claim in claims), default=None))
    _, _, verdicts = dedup.take()
    return verdicts.get(source, [])


def account(results: list[AdapterResult], topic: str = "carrier.webhooks") -> tuple[SourceTally, list[IngestStats]]:
    """Messages at offsets 0.. through split, one dedup and the tally; every row emitted."""
    dedup, tally, rows = EventDedup(10**12), SourceTally(SOURCE, "run-1"), []
    for offset, result in enumerate(results):
        claims, item = split(offset, result, topic)
        tally.add(item)
        for judged in judge(dedup, claims):
            tally.add(judged)
        rows += tally.rows()
    return tally, rows


def final(rows: list[IngestStats]) -> dict[tuple[int, str], IngestStats]:
    """The last row of each (block, topic); versions (`messages`) never go back."""
    last: dict[tuple[int, str], IngestStats] = {}
    for row in rows:
        previous = last.get((row.block, row.topic))
        assert previous is None or previous.messages < row.messages
        last[(row.block, row.topic)] = row
    return last


# -- split_result -------------------------------------------------------------------------------


def test_a_message_with_events_is_claimed_once_per_distinct_event() -> None:
    result = AdapterResult(
        events=(event("a"), event("a"), event("b")),  # a 214 repeating an AT7
        warnings=(
            AdapterWarning(WarningKind.MAPPING, "gtin 1 unknown"),
            AdapterWarning(WarningKind.CONTROL_NUMBER, "SE01 says 3"),
        ),
    )
    claims, item = split(7, result)
    assert [(c.event.event_id, c.source, c.offset, c.received_ms) for c in claims] == [
        ("a", SOURCE, 7, 1_007),
        ("b", SOURCE, 7, 1_007),
    ]
    assert item == Expect(7, "carrier.webhooks", 2, ("mapping", "control_number"))
    assert count_mapping_warnings(result) == 1


def test_dead_letters_and_ignores_are_final_at_once() -> None:
    raw = raw_message(b"\xff", topic="wms.edi", offset=3)
    claims, item = split_result(raw, SOURCE, dead(raw, DeadLetterReason.DECODE_ERROR, "x12", "not UTF-8"), 0)
    assert claims == [] and item == Finished(3, "wms.edi", DEAD_LETTERED, "decode_error", ())
    claims, item = split_result(
        raw, SOURCE, ignored("997 acknowledgement", [AdapterWarning(WarningKind.CONTROL_NUMBER, "GE01")]), 0
    )
    assert claims == [] and item == Finished(3, "wms.edi", IGNORED, "", ("control_number",))
    assert split_result(raw, SOURCE, ok([]), 0)[1] == Finished(3, "wms.edi", IGNORED, "", ())


# -- dedup --------------------------------------------------------------------------------------


def copy(event_id: str, raw_ref: str, **changes: Any) -> CanonicalEvent:
    return with_changes(event(event_id), raw_ref=raw_ref, **changes)


def test_the_earliest_received_copy_wins_whatever_arrives_first() -> None:
    dedup = EventDedup(ttl_ms=1000)
    dedup.offer(copy("a", "late"), "p1", 7, 20)
    dedup.offer(copy("a", "early"), "p0", 3, 10)  # an earlier copy, arriving second
    dedup.offer(copy("a", "later"), "p1", 8, 30)
    rows, decided, verdicts = dedup.take()
    # Rows at first sight and when a better copy arrives (the table keeps the last); the losers'
    # verdicts at once, the winner's when W passes it.
    assert [row.raw_ref for row in rows] == ["late", "early"] and decided == []
    assert verdicts == {"p1": [Judged(7, 1, ()), Judged(8, 1, ())]}
    dedup.decide(9)
    assert dedup.take() == ([], [], {}) and dedup.pending() == 1
    dedup.decide(10)
    rows, [winner], verdicts = dedup.take()
    assert rows == [] and (winner.event.raw_ref, winner.source, winner.offset) == ("early", "p0", 3)
    assert verdicts == {"p0": [Judged(3, 1, ("CARRIER_STATUS",))]}
    assert dedup.state.seen == {"a": 10} and dedup.state.candidates == {} and dedup.state.decided_ms == 10


def test_copies_received_in_the_same_millisecond_rank_by_content_then_raw_ref() -> None:
    first = copy("a", "z", location="AAA")
    second = copy("a", "y", location="BBB")
    third = copy("a", "x", location="AAA")
    winners = set()
    for order in permutations([first, second, third]):
        dedup = EventDedup(ttl_ms=1000)
        for index, event_copy in enumerate(order):
            dedup.offer(event_copy, "p0", index, 5)
        dedup.decide(5)
        _, [winner], _ = dedup.take()
        winners.add(winner.event.raw_ref)
    assert winners == {"x"}  # the smaller content (location AAA), then the smaller raw_ref


@given(st.permutations(range(6)), st.integers(min_value=0, max_value=60))
def test_winners_and_verdicts_do_not_depend_on_arrival_order(order: list[int], watermark: int) -> None:
    copies = [  # (event id, received ms, raw_ref, offset)
        ("id0", 0, "ref0", 0), ("id1", 10, "ref1", 1), ("id2", 20, "ref2", 2),
        ("id0", 30, "ref3", 3), ("id1", 15, "ref4", 4), ("id2", 20, "ref5", 5),
    ]  # fmt: skip
    baseline = EventDedup(ttl_ms=10**6)
    dedup = EventDedup(ttl_ms=10**6)
    for target, sequence in ((baseline, range(6)), (dedup, order)):
        for index in sequence:
            event_id, received_ms, raw_ref, offset = copies[index]
            target.offer(copy(event_id, raw_ref), "p0", offset, received_ms)
    results = []
    for target in (baseline, dedup):
        target.decide(watermark)
        target.decide(None, everything=True)
        rows, decided, verdicts = target.take()
        last_rows = {row.event_id: row.raw_ref for row in rows}  # the table keeps the last insert
        judged = sorted((v.offset, v.judged, v.new_types) for v in verdicts["p0"])
        results.append((last_rows, sorted(c.event.raw_ref for c in decided), judged))
    assert results[0] == results[1]
    assert results[0][0] == {"id0": "ref0", "id1": "ref1", "id2": "ref2"}  # the earliest copies; a tie by raw_ref


def test_a_copy_after_w_passed_its_time_is_judged_at_once() -> None:
    dedup = EventDedup(ttl_ms=1000)
    dedup.decide(100)
    dedup.offer(copy("a", "r0"), "p0", 0, 50)  # late: nothing earlier can come any more
    _, [winner], verdicts = dedup.take()
    assert winner.event.raw_ref == "r0" and verdicts == {"p0": [Judged(0, 1, ("CARRIER_STATUS",))]}
    dedup.offer(copy("a", "r1"), "p0", 1, 40)  # an even earlier copy, but after the decision
    assert dedup.take()[2] == {"p0": [Judged(1, 1, ())]}


def test_a_copy_received_later_than_the_ttl_after_the_winner_is_new_whenever_the_prune_runs() -> None:
    dedup = EventDedup(ttl_ms=1000)
    dedup.offer(copy("a", "r0"), "p0", 0, 0)
    dedup.decide(500)
    dedup.offer(copy("a", "r1"), "p0", 1, 1000)  # within the ttl of the winner: a duplicate
    dedup.offer(copy("a", "r2"), "p0", 2, 1001)  # later than the ttl: new again, though not pruned yet
    assert dedup.state.next_prune_ms == 600 and dedup.state.seen == {} and dedup.pending() == 1
    dedup.decide(1001)
    _, decided, verdicts = dedup.take()
    assert [c.event.raw_ref for c in decided] == ["r0", "r2"]
    assert verdicts == {"p0": [Judged(0, 1, ("CARRIER_STATUS",)), Judged(1, 1, ()), Judged(2, 1, ("CARRIER_STATUS",))]}


def test_dedup_forgets_ids_ttl_before_w() -> None:
    dedup = EventDedup(ttl_ms=1000)
    for event_id, received_ms in (("a", 0), ("edge", 4000), ("z", 5000)):
        dedup.offer(copy(event_id, event_id), "p0", 0, received_ms)
    dedup.decide(5000)
    assert set(dedup.state.seen) == {"edge", "z"}  # Discarded when: W is more than the ttl past it
    dedup.state.seen["old"] = 0
    dedup.decide(5050)  # at most once per tenth of the ttl: not yet
    assert "old" in dedup.state.seen
    dedup.decide(5100)
    assert "old" not in dedup.state.seen and "edge" not in dedup.state.seen


def test_warnings_reach_the_tally_by_kind() -> None:
    warnings = (
        AdapterWarning(WarningKind.MAPPING, "GTIN 1 (event.epcList) not in the product master"),
        AdapterWarning(WarningKind.CONTROL_NUMBER, "SE01='3' but set ST02='1' has 4 segments"),
    )
    result = AdapterResult(events=(event("a"),), warnings=warnings)
    _, item = split(0, result)
    assert isinstance(item, Expect)
    assert item.warnings == ("mapping", "control_number")
    assert count_mapping_warnings(result) == 1


# -- the tally ----------------------------------------------------------------------------------


def test_each_message_is_exactly_one_outcome() -> None:
    raw = raw_message("x", topic="carrier.webhooks")
    _, rows = account(
        [
            ok([event("a"), event("b")]),  # normalized, 2 events
            ok(
                [event("a"), event("b"), event("c", EventType.APPOINTMENT)],
                [AdapterWarning(WarningKind.MAPPING, "site X")],
            ),  # normalized, 1 new
            ok([event("a"), event("b"), event("c")]),  # every event known: duplicate
            dead(raw, DeadLetterReason.PARSE_ERROR, "easypost", "bad json"),
            ignored("tracker.created without details"),
        ]
    )
    [row] = final(rows).values()
    assert (row.source, row.block, row.topic, row.run_id) == (SOURCE, 0, "carrier.webhooks", "run-1")
    assert (row.messages, row.raw_in, row.normalized, row.duplicates, row.dead_lettered, row.ignored) == (
        5,
        5,
        2,
        1,
        1,
        1,
    )
    assert row.raw_in == row.normalized + row.duplicates + row.dead_lettered + row.ignored
    assert row.events_out == 3
    assert row.events_by_type == {"CARRIER_STATUS": 2, "APPOINTMENT": 1}
    assert row.dead_by_reason == {"parse_error": 1}
    assert (row.mapping_warnings, row.warnings_by_kind) == (1, {"mapping": 1})


def test_verdicts_from_several_buckets_complete_one_message_in_any_order() -> None:
    claims, expect = split(0, ok([event("a"), event("b"), event("c")]))
    buckets = [EventDedup(10**12) for _ in range(3)]
    judge(buckets[2], [Claim(event("c"), SOURCE, 99, 0)])  # bucket 2 has seen "c" before
    verdicts = [judged for index, claim in enumerate(claims) for judged in judge(buckets[index], [claim])]
    tally = SourceTally(SOURCE, "run-1")
    tally.add(verdicts[0])  # a verdict may overtake the message's Expect
    tally.add(verdicts[1])
    assert tally.rows() == [] and tally.open_count() == 1
    tally.add(expect)
    assert tally.rows() == [] and tally.state.open[0].events == 3
    tally.add(verdicts[2])
    [row] = tally.rows()
    assert (row.normalized, row.events_out, row.messages) == (1, 2, 1)
    assert tally.open_count() == 0 and tally.state.open == {}  # Discarded when: every event judged


def test_rows_are_per_block_and_topic_with_the_block_s_message_count_as_version() -> None:
    tally = SourceTally(SOURCE, "run-1")
    tally.add(Finished(1, "a", IGNORED, "", ()))
    tally.add(Finished(2, "b", IGNORED, "", ()))
    tally.add(Finished(BLOCK + 5, "a", DEAD_LETTERED, "schema_error", ()))
    rows = tally.rows()
    assert [(r.block, r.topic, r.messages, r.raw_in) for r in rows] == [
        (0, "a", 2, 1),
        (0, "b", 2, 1),
        (BLOCK, "a", 1, 1),
    ]
    assert tally.rows() == []  # only the blocks changed since the last call
    tally.add(Finished(3, "a", IGNORED, "", ()))
    assert [(r.block, r.topic, r.messages, r.raw_in) for r in tally.rows()] == [(0, "a", 3, 2), (0, "b", 3, 1)]


def test_a_complete_block_is_dropped_from_state_once_its_final_rows_are_out() -> None:
    tally = SourceTally(SOURCE, "run-1")
    for offset in range(BLOCK - 1):
        tally.add(Finished(offset, "t", IGNORED, "", ()))
    tally.add(Finished(BLOCK + 1, "t", IGNORED, "", ()))
    tally.rows()
    assert set(tally.state.blocks) == {0, BLOCK}
    tally.add(Finished(BLOCK - 1, "t", IGNORED, "", ()))
    [row] = tally.rows()
    assert (row.block, row.messages, row.raw_in, row.ignored) == (0, BLOCK, BLOCK, BLOCK)
    assert set(tally.state.blocks) == {BLOCK} and set(tally.state.counts) == {BLOCK}  # Discarded when: complete


def test_raw_in_is_the_sum_of_the_outcomes_per_topic() -> None:
    raw = raw_message("x")
    results = [
        ok([event(f"e{i % 4}")]) if i % 3 else dead(raw, DeadLetterReason.SCHEMA_ERROR, "t", "x") for i in range(30)
    ]
    results += [ignored("noise")] * 4
    tally, rows = account(results, topic="carrier.edi")
    [row] = final(rows).values()
    assert row.raw_in == 34 == row.normalized + row.duplicates + row.dead_lettered + row.ignored
    assert (row.normalized, row.duplicates, row.dead_lettered, row.ignored) == (4, 16, 10, 4)
    assert tally.open_count() == 0


def test_buckets_are_stable_and_spread() -> None:
    assert bucket_of("sap:1", 64) == zlib.crc32(b"sap:1") % 64 == 55  # crc32: the same in every process
    assert {bucket_of(f"id{i}", 64) for i in range(2000)} == set(range(64))
