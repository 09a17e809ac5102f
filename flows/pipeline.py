"""The ingest dataflow: raw messages -> canonical events, dead letters and accounting -> ClickHouse.

Shape:
    input            RawMessage
    normalize        Claim (one per event) | DeadLetter | MessageOutcome (dead / ignored)
    dedup            keyed by bucket(event_id): Verdict (new or duplicate)
    tally            keyed by bucket(raw_ref): MessageOutcome (normalized / duplicate)
    clickhouse       new CanonicalEvents, DeadLetters, MessageOutcomes -> events,
                     dead_letters, ingest_stats
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink
from typing_extensions import override

from operators.accounting import (
    Claim,
    DedupState,
    EventDedup,
    MessageOutcome,
    MessageTally,
    TallyState,
    Verdict,
    bucket_of,
    split_result,
)
from operators.model import DeadLetter, RawMessage
from operators.normalize import Normalizer
from operators.timeparse import to_epoch_ms
from sinks.clickhouse import ClickHouseSink, SinkItem
from sinks.kafka_out import dead_letter_message

BUCKETS = 64
DEFAULT_DEDUP_TTL_MS = 30 * 24 * 3600 * 1000  # design.md 3.2: state retention, 30 days of received time

NormalizedItem = Claim | DeadLetter | MessageOutcome


def normalize_batch(normalizer: Normalizer) -> Callable[[list[RawMessage]], list[NormalizedItem]]:
    def normalize(raws: list[RawMessage]) -> list[NormalizedItem]:
        out: list[NormalizedItem] = []
        for raw in raws:
            result = normalizer(raw)
            split = split_result(raw, result, to_epoch_ms(raw.received_at))
            if isinstance(split, MessageOutcome):
                if result.dead_letter is not None:
                    out.append(result.dead_letter)
                out.append(split)
            else:
                out.extend(split)
        return out

    return normalize


class _DedupLogic(op.StatefulBatchLogic[Claim, Verdict, DedupState]):
    def __init__(self, ttl_ms: int, resume: DedupState | None) -> None:
        self.dedup = EventDedup(ttl_ms, resume)

    @override
    def on_batch(self, values: list[Claim]) -> tuple[list[Verdict], bool]:
        return self.dedup.judge(values), self.RETAIN

    @override
    def snapshot(self) -> DedupState:
        state = self.dedup.state
        return DedupState(dict(state.seen), state.newest_ms, state.next_prune_ms)


class _TallyLogic(op.StatefulBatchLogic[Verdict, MessageOutcome, TallyState]):
    def __init__(self, resume: TallyState | None) -> None:
        self.tally = MessageTally(resume)

    @override
    def on_batch(self, values: list[Verdict]) -> tuple[list[MessageOutcome], bool]:
        return self.tally.add(values), self.RETAIN

    @override
    def snapshot(self) -> TallyState:
        return copy.deepcopy(self.tally.state)


def build_flow(
    source: Source[RawMessage],
    normalizer: Normalizer,
    sink: ClickHouseSink,
    *,
    dedup_ttl_ms: int = DEFAULT_DEDUP_TTL_MS,
    dead_letter_sink: Sink[Any] | None = None,
    flow_id: str = "logisync",
) -> Dataflow:
    flow = Dataflow(flow_id)
    raws = op.input("input", flow, source)  # RawMessage
    normalized = op.flat_map_batch("normalize", raws, normalize_batch(normalizer))  # NormalizedItem
    split = op.branch("split_claims", normalized, lambda item: isinstance(item, Claim))
    claims: Stream[Claim] = split.trues  # type: ignore[assignment]
    finished: Stream[DeadLetter | MessageOutcome] = split.falses  # type: ignore[assignment]

    by_event = op.key_on("key_event", claims, lambda claim: bucket_of(claim.event.event_id, BUCKETS))
    verdicts = op.stateful_batch("dedup", by_event, lambda resume: _DedupLogic(dedup_ttl_ms, resume))
    verdicts_only = op.key_rm("verdicts", verdicts)  # Verdict
    by_message = op.key_on("key_message", verdicts_only, lambda verdict: bucket_of(verdict.claim.raw_ref, BUCKETS))
    tallied = op.key_rm("tallied", op.stateful_batch("tally", by_message, _TallyLogic))  # MessageOutcome

    new_events = op.filter_map(
        "new_events", verdicts_only, lambda verdict: verdict.claim.event if verdict.is_new else None
    )  # CanonicalEvent

    if dead_letter_sink is not None:
        letters = op.filter_map("dead_letters", finished, _only_dead_letter)  # DeadLetter
        op.output("kafka_dead_letters", op.map("dead_letter_message", letters, dead_letter_message), dead_letter_sink)

    to_store: Stream[Any] = op.merge("to_store", new_events, finished, tallied)  # SinkItem
    keyed = op.key_on("key_sink", to_store, _sink_key)
    op.output("clickhouse", keyed, sink)
    return flow


def _only_dead_letter(item: DeadLetter | MessageOutcome) -> DeadLetter | None:
    return item if isinstance(item, DeadLetter) else None


def _sink_key(item: SinkItem) -> str:
    if isinstance(item, DeadLetter):
        return item.raw.raw_ref
    if isinstance(item, MessageOutcome):
        return item.topic
    return item.event_id
