"""Dedup and per-message accounting (design.md section 4)."""

from __future__ import annotations

from datetime import UTC, datetime

from operators.ingest.accounting import (
    DEAD_LETTERED,
    DUPLICATE,
    IGNORED,
    NORMALIZED,
    Claim,
    EventDedup,
    MessageTally,
    bucket_of,
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
)
from tests.conftest import raw_message

T = datetime(2024, 1, 1, tzinfo=UTC)


def event(event_id: str, raw_ref: str = "t:0:0") -> CanonicalEvent:
    return CanonicalEvent(
        event_id=event_id,
        event_type=EventType.CARRIER_STATUS,
        source_kind=SourceKind.CARRIER,
        source_format="test",
        source_system="test",
        occurred_at=T,
        recorded_at=None,
        received_at=T,
        time_precision=TimePrecision.S,
        raw_ref=raw_ref,
    )


def claims_for(offset: int, *event_ids: str, received_ms: int = 0) -> list[Claim]:
    raw = raw_message("{}", topic="carrier.webhooks", offset=offset)
    split = split_result(raw, ok([event(i, raw.raw_ref) for i in event_ids]), received_ms)
    assert isinstance(split, list)
    return split


def run(messages: list[list[Claim]], ttl_ms: int = 10**12) -> list[str]:
    dedup, tally = EventDedup(ttl_ms), MessageTally()
    outcomes = []
    for claims in messages:
        outcomes += [o.outcome for o in tally.add(dedup.judge(claims))]
    return outcomes


def test_history_resend_with_one_new_detail_is_normalized_and_exact_resend_is_duplicate() -> None:
    first = claims_for(0, "a", "b")
    resend_plus_one = claims_for(1, "a", "b", "c")
    exact_resend = claims_for(2, "a", "b", "c")
    assert run([first, resend_plus_one, exact_resend]) == [NORMALIZED, NORMALIZED, DUPLICATE]


def test_new_event_types_are_counted_once() -> None:
    dedup, tally = EventDedup(10**12), MessageTally()
    tally.add(dedup.judge(claims_for(0, "a")))
    (outcome,) = tally.add(dedup.judge(claims_for(1, "a", "b")))
    assert outcome.new_event_types == ("CARRIER_STATUS",)


def test_a_message_repeating_an_event_waits_for_one_verdict_per_id() -> None:
    claims = claims_for(0, "a", "a", "b")
    assert [c.n_events for c in claims] == [2, 2]
    assert run([claims]) == [NORMALIZED]


def test_verdicts_from_different_buckets_complete_one_message() -> None:
    # The flow judges a message's events in different buckets; the tally joins them.
    claims = claims_for(0, "a", "b", "c")
    buckets = [EventDedup(10**12) for _ in range(3)]
    tally = MessageTally()
    assert tally.add(buckets[0].judge(claims[:1])) == []
    assert tally.add(buckets[1].judge(claims[1:2])) == []
    (done,) = tally.add(buckets[2].judge(claims[2:]))
    assert done.outcome == NORMALIZED
    assert tally.state.pending == {}  # discarded once complete


def test_dedup_forgets_ids_after_the_ttl_of_received_time() -> None:
    dedup = EventDedup(ttl_ms=1000)
    assert [v.is_new for v in dedup.judge(claims_for(0, "a", received_ms=0))] == [True]
    dedup.judge(claims_for(1, "z", received_ms=5000))  # time moves on, "a" is pruned
    assert "a" not in dedup.state.seen
    assert [v.is_new for v in dedup.judge(claims_for(2, "a", received_ms=5001))] == [True]


def test_dead_letters_and_ignores_are_final_outcomes() -> None:
    raw = raw_message(b"\xff", topic="wms.edi")
    dead_split = split_result(raw, dead(raw, DeadLetterReason.DECODE_ERROR, "x12", "not UTF-8"), 0)
    assert not isinstance(dead_split, list)
    assert (dead_split.outcome, dead_split.dead_reason) == (DEAD_LETTERED, "decode_error")
    ignored_split = split_result(raw, ignored("business partner"), 0)
    assert not isinstance(ignored_split, list) and ignored_split.outcome == IGNORED


def test_mapping_warnings_are_counted() -> None:
    raw = raw_message("{}")
    warnings = (
        AdapterWarning(WarningKind.MAPPING, "GTIN 1 (event.epcList) not in the product master"),
        AdapterWarning(WarningKind.CONTROL_NUMBER, "SE01='3' but set ST02='1' has 4 segments"),
    )
    result = AdapterResult(events=(event("a"),), warnings=warnings)
    (claim,) = split_result(raw, result, 0)  # type: ignore[misc]
    assert claim.mapping_warnings == 1


def test_buckets_are_stable_strings() -> None:
    assert bucket_of("sap:1", 64) == bucket_of("sap:1", 64)
    assert {bucket_of(f"id{i}", 64) for i in range(2000)} == {str(i) for i in range(64)}
