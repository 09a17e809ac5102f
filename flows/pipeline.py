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

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink
from typing_extensions import override

from flows.domain import CORE_KEY, CoreLogic
from flows.snapshots import freeze, thaw
from operators.domain.alerts import Alert
from operators.domain.core import CoreConfig, DomainOutput
from operators.domain.inventory_units import InventoryDelta, InventoryPosition
from operators.domain.watermark import Tick
from operators.formats.timeparse import to_epoch_ms
from operators.ingest.accounting import (
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
from operators.ingest.normalize import Normalizer
from operators.master import EMPTY_MASTER, MasterData
from operators.model import CanonicalEvent, DeadLetter, RawMessage
from sinks.clickhouse import ClickHouseSink, SinkItem
from sinks.kafka_out import dead_letter_message
from sources.replay import INVALID_TOPIC

BUCKETS = 64
DEFAULT_DEDUP_TTL_MS = 30 * 24 * 3600 * 1000  # design.md 3.2: state retention, 30 days of received time

NormalizedItem = Claim | Tick | DeadLetter | MessageOutcome
_BUCKET_IDS = tuple(str(index) for index in range(BUCKETS))


def kafka_partition(raw: RawMessage) -> str:
    """The watermark source of a Kafka message: its topic-partition."""
    return f"{raw.topic}:{raw.partition}"


def replay_stream(raw: RawMessage) -> str:
    """A replay file is one ordered stream whatever the topics in it: one watermark source."""
    return "replay"


def normalize_batch(
    normalizer: Normalizer,
    count_messages: Callable[[int], None] | None = None,
    source_of: Callable[[RawMessage], str] = kafka_partition,
) -> Callable[[list[RawMessage]], list[NormalizedItem]]:
    """Adapters over a batch, then one Tick per source partition of the batch for every bucket."""

    def normalize(raws: list[RawMessage]) -> list[NormalizedItem]:
        if count_messages is not None:
            count_messages(len(raws))
        out: list[NormalizedItem] = []
        progress: dict[str, int] = {}
        for raw in raws:
            received_ms = to_epoch_ms(raw.received_at)
            source = source_of(raw) if raw.topic != INVALID_TOPIC else "replay.invalid"
            if received_ms > progress.get(source, -(2**62)):
                progress[source] = received_ms
            result = normalizer(raw)
            split = split_result(raw, result, received_ms)
            if isinstance(split, MessageOutcome):
                if result.dead_letter is not None:
                    out.append(result.dead_letter)
                out.append(split)
            else:
                out.extend(split)
        progress.pop("replay.invalid", None)  # an unreadable replay line has no event time
        for source, received_ms in progress.items():
            out.extend(Tick(source, bucket, received_ms) for bucket in _BUCKET_IDS)
        return out

    return normalize


class _DedupLogic(op.StatefulBatchLogic[Claim | Tick, Verdict | Tick, bytes]):
    """Judges claims; forwards ticks after the claims that came before them (see watermark.py)."""

    def __init__(self, ttl_ms: int, resume: bytes | None, recovery: bool) -> None:
        self.dedup = EventDedup(ttl_ms, thaw(resume, DedupState))
        self.recovery = recovery

    @override
    def on_batch(self, values: list[Claim | Tick]) -> tuple[list[Verdict | Tick], bool]:
        out: list[Verdict | Tick] = []
        claims: list[Claim] = []
        for value in values:
            if isinstance(value, Tick):
                out.extend(self.dedup.judge(claims))
                claims = []
                out.append(value)
            else:
                claims.append(value)
        out.extend(self.dedup.judge(claims))
        return out, self.RETAIN

    @override
    def snapshot(self) -> bytes:
        return freeze(self.dedup.state, self.recovery)


class _TallyLogic(op.StatefulBatchLogic[Verdict, MessageOutcome, bytes]):
    def __init__(self, resume: bytes | None, recovery: bool) -> None:
        self.tally = MessageTally(thaw(resume, TallyState))
        self.recovery = recovery

    @override
    def on_batch(self, values: list[Verdict]) -> tuple[list[MessageOutcome], bool]:
        return self.tally.add(values), self.RETAIN

    @override
    def snapshot(self) -> bytes:
        return freeze(self.tally.state, self.recovery)


def build_flow(
    source: Source[RawMessage],
    normalizer: Normalizer,
    sink: ClickHouseSink,
    *,
    dedup_ttl_ms: int = DEFAULT_DEDUP_TTL_MS,
    dead_letter_sink: Sink[Any] | None = None,
    core: CoreConfig | None = None,
    master: MasterData = EMPTY_MASTER,
    alert_sinks: Sequence[tuple[str, Sink[Any]]] = (),
    idle_timeout: timedelta | None = None,
    recovery: bool = False,
    progress: Callable[[int], None] | None = None,
    source_of: Callable[[RawMessage], str] = kafka_partition,
    flow_id: str = "logisync",
) -> Dataflow:
    flow = Dataflow(flow_id)
    raws = op.input("input", flow, source)  # RawMessage
    normalized = op.flat_map_batch(
        "normalize", raws, normalize_batch(normalizer, progress, source_of)
    )  # NormalizedItem
    split = op.branch("split_claims", normalized, lambda item: isinstance(item, Claim | Tick))
    claims: Stream[Claim | Tick] = split.trues  # type: ignore[assignment]
    finished: Stream[DeadLetter | MessageOutcome] = split.falses  # type: ignore[assignment]

    by_event = op.key_on("key_event", claims, _dedup_key)
    judged = op.key_rm(
        "judged", op.stateful_batch("dedup", by_event, lambda resume: _DedupLogic(dedup_ttl_ms, resume, recovery))
    )  # Verdict | Tick, ticks after the verdicts they follow
    split_judged = op.branch("split_ticks", judged, lambda item: isinstance(item, Verdict))
    verdicts_only: Stream[Verdict] = split_judged.trues  # type: ignore[assignment]
    ticks: Stream[Tick] = split_judged.falses  # type: ignore[assignment]
    by_message = op.key_on("key_message", verdicts_only, lambda verdict: bucket_of(verdict.claim.raw_ref, BUCKETS))
    tallied = op.key_rm(
        "tallied", op.stateful_batch("tally", by_message, lambda resume: _TallyLogic(resume, recovery))
    )  # MessageOutcome

    new_events = op.filter_map(
        "new_events", verdicts_only, lambda verdict: verdict.claim.event if verdict.is_new else None
    )  # CanonicalEvent

    if dead_letter_sink is not None:
        letters = op.filter_map("dead_letters", finished, _only_dead_letter)  # DeadLetter
        op.output("kafka_dead_letters", op.map("dead_letter_message", letters, dead_letter_message), dead_letter_sink)

    stores: list[Stream[Any]] = [new_events, finished, tallied]
    if core is not None:
        core_config = core
        core_in = op.key_on("key_core", op.merge("events_and_ticks", new_events, ticks), lambda _: CORE_KEY)
        domain = op.key_rm(
            "domain_rows",
            op.stateful_batch(
                "core",
                core_in,
                lambda resume: CoreLogic(core_config, master, BUCKETS, resume, idle_timeout, recovery),
            ),
        )  # DeliveryStatus | SyncLatency | Alert | InventoryPosition | InventoryDelta
        stores.append(domain)
        alerts = op.filter_map("alerts", domain, _only_alert)  # Alert
        for name, alert_sink in alert_sinks:
            op.output(name, alerts, alert_sink)

    to_store: Stream[Any] = op.merge("to_store", *stores)  # SinkItem
    keyed = op.key_on("key_sink", to_store, _sink_key)
    op.output("clickhouse", keyed, sink)
    return flow


def _dedup_key(item: Claim | Tick) -> str:
    return item.bucket if isinstance(item, Tick) else bucket_of(item.event.event_id, BUCKETS)


def _only_alert(item: DomainOutput) -> Alert | None:
    return item if isinstance(item, Alert) else None


def _only_dead_letter(item: DeadLetter | MessageOutcome) -> DeadLetter | None:
    return item if isinstance(item, DeadLetter) else None


def _sink_key(item: SinkItem) -> str:
    if isinstance(item, DeadLetter):
        return item.raw.raw_ref
    if isinstance(item, MessageOutcome):
        return item.topic
    if isinstance(item, CanonicalEvent):
        return item.event_id
    if isinstance(item, Alert):
        return item.alert_id
    if isinstance(item, InventoryPosition | InventoryDelta):
        return f"{item.site}/{item.sku}"
    return item.delivery_id
