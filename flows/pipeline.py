"""The dataflow: raw batches -> canonical events, dead letters and exact accounting, through the
keyed domain stages -> ClickHouse, Kafka and the webhook.

Shape (every arrow carries packets, one per destination bucket per batch; flows/packets.py):

    input            RawBatch per input partition (a replay file: per lane)
    normalize        adapters -> DedupPacket per dedup bucket | TallyPacket | dead-letter rows
    dedup            by event_id bucket: new events -> events rows, Teach/Lookup -> resolution,
                     Pending -> arbiter, events with a delivery -> lifecycle, stock -> inventory;
                     verdicts -> tally
    resolution       by reference: Candidate -> arbiter
    arbiter          by primary reference: Resolved -> lifecycle; orphan alerts
    lifecycle        by delivery: status, latency facts, SLA alerts, event links;
                     InFlight / GoodsIssue -> inventory
    inventory        by site: positions, deltas, mismatch alerts
    tally            by input partition: ingest_stats rows, dead_letter_replays rows
    clickhouse       every row (one writer process for the embedded store)

Without `domain_stages` (a dead-letter replay run, `logisync dlq replay`) the flow is input ->
normalize -> dedup -> tally -> clickhouse: events, dead letters and the accounting, no domain
tables (a replay run has none of the domain state the live flow has; see FlowConfig).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.packets import DeadLetterPacket, DedupPacket, StagePacket, TallyPacket
from flows.stages import ALERTS, DEAD_LETTERS, SINK, TALLY, DedupLogic, Outbox, Routed, StageLogic, TallyLogic
from flows.topology import ARBITER, DEDUP, HEALTH, INVENTORY, LIFECYCLE, RESOLUTION, Topology, balanced_key
from operators.domain.arbiter import ArbiterLogic, ArbiterState
from operators.domain.config import DomainConfig
from operators.domain.health import MINUTE_MS, HealthLogic, HealthState, TopicMinute, minute_of
from operators.domain.inventory import InventoryLogic
from operators.domain.inventory_units import InventoryState
from operators.domain.items import DomainItem, bucket_of
from operators.domain.lifecycle import LifecycleLogic, LifecycleState
from operators.domain.resolution import ResolutionLogic, ResolutionState
from operators.domain.watermark import OrderKey
from operators.formats.timeparse import to_epoch_ms
from operators.ingest.accounting import Claim, TallyItem, split_result
from operators.ingest.normalize import Normalizer
from operators.ingest.sanity import insane_reason, is_sane_received
from operators.master import EMPTY_MASTER, MasterData
from operators.model import AdapterResult, DeadLetter, DeadLetterReason, dead
from sinks.clickhouse import ClickHouseSink
from sinks.kafka_out import DEAD_LETTER_MAX_BYTES, dead_letter_message
from sources.batch import RawBatch
from sources.file_source import accounting_source as lane_source
from sources.replay import INVALID_TOPIC


@dataclass(frozen=True)
class FlowConfig:
    """Everything the flow needs besides its source and sinks; every process builds the same."""

    topology: Topology
    run_id: str
    domain: DomainConfig = field(default_factory=DomainConfig)
    master: MasterData = EMPTY_MASTER
    recovery: bool = False
    lanes: int = 1  # a replay file dealt round-robin to this many lanes (one per worker)
    accounting_source: Callable[[str], str] = lane_source
    # The keyed domain stages (resolution, arbiter, lifecycle, inventory, health) and their
    # watermarks. Off for a dead-letter replay run: it starts with empty domain state, so its
    # delivery_status / sync_latency / inventory rows and alerts would be computed from the
    # replayed events alone and could replace the real ones (ReplacingMergeTree keeps the higher
    # version), and its old watermark would become the dashboards' clock.
    domain_stages: bool = True
    # Event ids the store already holds, judged duplicates (a dead-letter replay run, whose dedup
    # state starts empty: flows/dlq.stored_events).
    stored_events: frozenset[str] = frozenset()
    # The largest dead-letter value the dead-letter topic takes (sinks/kafka_out.dead_letter_max_bytes).
    dead_letter_max_bytes: int = DEAD_LETTER_MAX_BYTES


def normalize_batch(
    normalizer: Normalizer, topology: Topology, accounting_source: Callable[[str], str], health_stage: bool = True
) -> Callable[[RawBatch], list[Routed]]:
    """Adapters over one batch; claims grouped per dedup bucket, one packet to every bucket (it
    carries the partition's promise even when it has no claims for that bucket); messages and dead
    letters per topic and minute to the health stage, likewise (a replayed dead letter is not
    counted there again: the feed's health is about what arrived when)."""
    dedup_buckets = topology.count(DEDUP)
    dedup_keys = [topology.key(DEDUP, index) for index in range(dedup_buckets)]
    health_buckets = topology.count(HEALTH)
    health_keys = [topology.key(HEALTH, index) for index in range(health_buckets)]

    def normalize(batch: RawBatch) -> list[Routed]:
        claims: list[list[Claim]] = [[] for _ in range(dedup_buckets)]
        tally: list[TallyItem] = []
        letters: list[DeadLetter] = []
        minutes: dict[tuple[str, int], list[int]] = {}
        account = accounting_source(batch.source)
        horizon = batch.horizon_ms
        for raw in batch.messages:
            received_ms = to_epoch_ms(raw.received_at)
            result: AdapterResult
            if raw.topic == INVALID_TOPIC:
                result = dead(raw, DeadLetterReason.PARSE_ERROR, "replay", raw.key or "not a replay envelope")
            elif not is_sane_received(received_ms, horizon):
                result = dead(raw, DeadLetterReason.SCHEMA_ERROR, "envelope", insane_reason(raw.received_at, horizon))
            else:
                result = normalizer(raw)
            found, item = split_result(raw, account, result, received_ms)
            tally.append(item)
            if raw.replay_of is None and (
                result.dead_letter is None
                or result.dead_letter.reason != DeadLetterReason.SCHEMA_ERROR
                or (is_sane_received(received_ms, horizon))
            ):
                counts = minutes.get((raw.topic, minute_of(received_ms)))
                if counts is None:
                    counts = minutes[(raw.topic, minute_of(received_ms))] = [0, 0]
                counts[0] += 1
                counts[1] += result.dead_letter is not None
            for claim in found:
                claims[bucket_of(claim.event.event_id, dedup_buckets)].append(claim)
            if result.dead_letter is not None:
                letters.append(result.dead_letter)
        out: list[Routed] = [
            (DEDUP, dedup_keys[index], DedupPacket(batch.source, index, batch.promise, batch.done, claims[index]))
            for index in range(dedup_buckets)
        ]
        if health_stage:
            health: list[list[tuple[OrderKey, DomainItem]]] = [[] for _ in range(health_buckets)]
            for (topic, minute), (messages, dead_count) in minutes.items():
                key = (minute + MINUTE_MS, topic, 0)
                health[bucket_of(topic, health_buckets)].append((key, TopicMinute(topic, minute, messages, dead_count)))
            out.extend(
                (HEALTH, health_keys[index], StagePacket(batch.source, index, batch.promise, batch.done, health[index]))
                for index in range(health_buckets)
            )
        if tally:
            out.append((TALLY, account, TallyPacket(account, tally)))
        if letters:
            outbox = Outbox(topology, batch.source)
            for letter in letters:
                outbox.row(letter)
            out.extend(outbox.packets("normalize", None, False, False))
            out.append((DEAD_LETTERS, "", DeadLetterPacket(letters)))
        return out

    return normalize


def _to(destination: str, stream: Stream[Routed], upstream: str) -> Stream[tuple[str, Any]]:
    """The (key, payload) pairs of one destination: a keyed stream for the next stateful step."""

    def pick(routed: Routed) -> tuple[str, Any] | None:
        return (routed[1], routed[2]) if routed[0] == destination else None

    return op.filter_map(f"{upstream}_to_{destination}", stream, pick)


def _stage(
    name: str,
    inputs: list[Stream[tuple[str, Any]]],
    config: FlowConfig,
    make_logic: Callable[[Any], Any],
    state: type,
    lateness_ms: int = 0,
) -> Stream[Routed]:
    merged = inputs[0] if len(inputs) == 1 else op.merge(f"{name}_in", *inputs)
    topology, run_id, recovery = config.topology, config.run_id, config.recovery

    def builder(resume: bytes | None) -> StageLogic:
        return StageLogic(name, topology, make_logic, state, run_id, recovery, resume, lateness_ms)

    return op.key_rm(f"{name}_out", op.stateful_batch(name, merged, builder))


def build_flow(
    source: Source[RawBatch],
    normalizer: Normalizer,
    sink: ClickHouseSink,
    config: FlowConfig,
    *,
    dead_letter_sink: Sink[Any] | None = None,
    alert_sinks: Sequence[tuple[str, Sink[Any]]] = (),
    flow_id: str = "logisync",
) -> Dataflow:
    topology, domain = config.topology, config.domain
    flow = Dataflow(flow_id)
    batches = op.input("input", flow, source)  # RawBatch
    stages = config.domain_stages
    normalize = normalize_batch(normalizer, topology, config.accounting_source, health_stage=stages)
    if config.lanes > 1:
        # One replay partition, dealt to lanes: each lane's batches reach one worker, in order.
        lane_keys = {
            sender: balanced_key("lane", lane, topology.workers) for lane, sender in enumerate(topology.sources)
        }
        keyed = op.key_on("lane", batches, lambda batch: lane_keys[batch.source])
        normalized = op.key_rm(
            "normalized",
            op.stateful_flat_map("normalize", keyed, lambda _state, batch: (None, normalize(batch))),
        )  # Routed
    else:
        normalized = op.flat_map("normalize", batches, normalize)  # Routed

    recovery, run_id = config.recovery, config.run_id

    def dedup_builder(resume: bytes | None) -> DedupLogic:
        return DedupLogic(
            topology,
            domain.dedup_ttl_ms,
            domain.lateness_ms,
            domain.xref_ttl_ms,
            config.accounting_source,
            run_id,
            recovery,
            resume,
            route=stages,
            stored=config.stored_events,
        )

    deduped = op.key_rm("dedup_out", op.stateful_batch("dedup", _to(DEDUP, normalized, "normalize"), dedup_builder))

    def tally_builder(resume: bytes | None) -> TallyLogic:
        return TallyLogic(topology, run_id, recovery, resume)

    tally_in = op.merge("tally_in", _to(TALLY, normalized, "normalize"), _to(TALLY, deduped, "dedup"))
    tallied = op.key_rm("tally_out", op.stateful_batch("tally", tally_in, tally_builder))

    outputs = {"normalize": normalized, "dedup": deduped, "tally": tallied}
    if stages:
        outputs |= _domain_stages(normalized, deduped, config)
    rows = op.merge("rows", *(_sink_packets(name, stream) for name, stream in outputs.items()))
    op.output("clickhouse", rows, sink)

    if alert_sinks and stages:
        alerts = op.merge(
            "alerts", *(_payloads(ALERTS, name, outputs[name]) for name in (ARBITER, LIFECYCLE, INVENTORY, HEALTH))
        )
        for name, alert_sink in alert_sinks:
            op.output(name, alerts, alert_sink)
    if dead_letter_sink is not None:
        packets = _payloads(DEAD_LETTERS, "normalize", normalized)
        max_bytes = config.dead_letter_max_bytes
        letters = op.flat_map(
            "dead_letter_messages", packets, lambda packet: [dead_letter_message(x, max_bytes) for x in packet.letters]
        )
        op.output("kafka_dead_letters", letters, dead_letter_sink)
    return flow


def _domain_stages(
    normalized: Stream[Routed], deduped: Stream[Routed], config: FlowConfig
) -> dict[str, Stream[Routed]]:
    """resolution -> arbiter -> lifecycle -> inventory, fed by dedup; health, fed by normalize."""
    domain, master = config.domain, config.master
    resolved = _stage(
        RESOLUTION,
        [_to(RESOLUTION, deduped, "dedup")],
        config,
        lambda state: ResolutionLogic(domain.retention_ms, state),
        ResolutionState,
    )
    arbitrated = _stage(
        ARBITER,
        [_to(ARBITER, deduped, "dedup"), _to(ARBITER, resolved, "resolution")],
        config,
        lambda state: ArbiterLogic(domain.retention_ms, state),
        ArbiterState,
    )
    lifecycle = _stage(
        LIFECYCLE,
        [_to(LIFECYCLE, deduped, "dedup"), _to(LIFECYCLE, arbitrated, "arbiter")],
        config,
        lambda state: LifecycleLogic(domain.handoffs, domain.retention_ms, domain.idle_retention_ms, master, state),
        LifecycleState,
    )
    inventory = _stage(
        INVENTORY,
        [_to(INVENTORY, deduped, "dedup"), _to(INVENTORY, lifecycle, "lifecycle")],
        config,
        lambda state: InventoryLogic(master, domain.tolerance, domain.grace, domain.retention_ms, state),
        InventoryState,
    )

    health = _stage(
        HEALTH,
        [_to(HEALTH, normalized, "normalize")],
        config,
        lambda state: HealthLogic(domain.health, state),
        HealthState,
        lateness_ms=domain.lateness_ms,
    )
    return {RESOLUTION: resolved, ARBITER: arbitrated, LIFECYCLE: lifecycle, INVENTORY: inventory, HEALTH: health}


def _sink_packets(name: str, stream: Stream[Routed]) -> Stream[tuple[str, Any]]:
    def pick(routed: Routed) -> tuple[str, Any] | None:
        return (routed[1], routed[2]) if routed[0] == SINK else None

    return op.filter_map(f"{name}_rows", stream, pick)


def _payloads(destination: str, name: str, stream: Stream[Routed]) -> Stream[Any]:
    def pick(routed: Routed) -> Any:
        return routed[2] if routed[0] == destination else None

    return op.filter_map(f"{name}_{destination}", stream, pick)
