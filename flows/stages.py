"""bytewax wrappers of the pure stage logic: one `StatefulBatchLogic` per bucket key.

Each wrapper receives packets, hands them to its logic (operators/), and turns what the logic
emitted into packets for the next steps: one `StagePacket` per downstream bucket (items plus this
bucket's promise), one `SinkPacket` of rows, alerts for Kafka and the webhook. A bucket whose
promise moved sends it to every downstream bucket even without items: W downstream depends on it.

A bytewax logic is built without its key, so a bucket learns its index from the first packet
addressed to it (`to`), and keeps it in its snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import bytewax.operators as op
import msgspec
from typing_extensions import override

from flows.packets import DedupPacket, SinkPacket, StagePacket, TallyPacket
from flows.snapshots import freeze, thaw
from flows.topology import DEDUP, DOWNSTREAM, Topology
from operators.domain.alerts import Alert
from operators.domain.items import DomainItem, bucket_of
from operators.domain.stage import Bucket, Logic
from operators.domain.watermark import Frontiers, OrderKey
from operators.ingest.accounting import DedupState, EventDedup, SourceTally, TallyItem, TallyState
from operators.ingest.route import route_event
from sinks.rows import TABLES, StageWatermark

# (destination, bytewax key, payload): what every step emits; flows/pipeline.py splits it.
Routed = tuple[str, str, Any]
SINK = "sink"
ALERTS = "alerts"
TALLY = "tally"
DEAD_LETTERS = "dead_letters"

_RAW_ENCODER = msgspec.msgpack.Encoder()


class BucketSnapshot(msgspec.Struct, array_like=True):
    """A domain-stage bucket: its senders' promises, what it promised, what waits for W, and its
    logic's own state (a msgspec Struct of the stage's state type)."""

    index: int
    promises: dict[str, int]
    finals: dict[str, int | None]
    watermark: int | None
    sent_promise: int | None
    sent_done: bool
    pending: list[tuple[OrderKey, DomainItem]]
    logic_state: msgspec.Raw


class DedupSnapshot(msgspec.Struct, array_like=True):
    index: int
    promises: dict[str, int]
    finals: dict[str, int | None]
    sent_promise: int | None
    sent_done: bool
    dedup: DedupState


class Outbox:
    """Groups one activation's outputs into packets."""

    __slots__ = ("alerts", "items", "rows", "sender", "topology")

    def __init__(self, topology: Topology, sender: str) -> None:
        self.topology = topology
        self.sender = sender
        self.items: dict[str, dict[int, list[Any]]] = {}
        self.rows: dict[str, list[Any]] = {}
        self.alerts: list[Alert] = []

    def add(self, outputs: Iterable[Any]) -> None:
        """Domain outputs: (stage, entity, order key, item) tuples, or rows."""
        items, topology = self.items, self.topology
        for output in outputs:
            if type(output) is tuple:
                stage, entity, key, item = output
                per_bucket = items.get(stage)
                if per_bucket is None:
                    per_bucket = items[stage] = {}
                bucket = bucket_of(entity, topology.count(stage))
                queue = per_bucket.get(bucket)
                if queue is None:
                    queue = per_bucket[bucket] = []
                queue.append((key, item))
            else:
                self.row(output)

    def row(self, record: Any) -> None:
        table = TABLES[type(record)]
        queue = self.rows.get(table.name)
        if queue is None:
            queue = self.rows[table.name] = []
        queue.append(table.to_row(record))
        if type(record) is Alert:
            self.alerts.append(record)

    def packets(self, stage: str, promise: int | None, done: bool, send_promise: bool) -> list[Routed]:
        """Stage packets for every downstream bucket that has items, or all of them when the
        promise moved (or the stage is done); then the rows and alerts."""
        out: list[Routed] = []
        topology = self.topology
        for downstream in DOWNSTREAM.get(stage, ()):
            per_bucket = self.items.get(downstream, {})
            for bucket in range(topology.count(downstream)):
                queue = per_bucket.get(bucket)
                if queue or send_promise:
                    packet = StagePacket(self.sender, bucket, promise, done, queue or [])
                    out.append((downstream, topology.key(downstream, bucket), packet))
        if self.rows:
            out.append((SINK, self.sender, SinkPacket(self.rows)))
        out.extend((ALERTS, "", alert) for alert in self.alerts)
        self.items, self.rows, self.alerts = {}, {}, []
        return out


class _Promises:
    """What a bucket last told its downstream buckets."""

    __slots__ = ("done", "promise")

    def __init__(self) -> None:
        self.promise: int | None = None
        self.done = False

    def moved(self, promise: int | None, done: bool) -> bool:
        if self.done:
            return False
        if done or (promise is not None and (self.promise is None or promise > self.promise)):
            self.promise, self.done = promise, done
            return True
        return False


class StageLogic(op.StatefulBatchLogic[StagePacket, Routed, bytes]):
    """One bucket of an ordered domain stage (resolution, arbiter, lifecycle, inventory, health)."""

    def __init__(
        self,
        stage: str,
        topology: Topology,
        make_logic: Callable[[Any], Logic],
        state_type: type[msgspec.Struct],
        run_id: str,
        recovery: bool,
        resume: bytes | None,
        lateness_ms: int = 0,
    ) -> None:
        self.stage = stage
        self.topology = topology
        self.make_logic = make_logic
        self.state_type = state_type
        self.lateness_ms = lateness_ms
        self.run_id = run_id
        self.recovery = recovery
        self.index = -1
        self.sender = ""
        self.bucket = Bucket(topology.senders(stage), make_logic(None), lateness_ms)
        self.sent = _Promises()
        state = thaw(resume, f"{stage}-bucket", BucketSnapshot)
        if state is not None:
            self._restore(state)

    def _bind(self, index: int) -> None:
        self.index = index
        self.sender = self.topology.sender_id(self.stage, index)

    @override
    def on_batch(self, values: list[StagePacket]) -> tuple[list[Routed], bool]:
        if self.index < 0:
            self._bind(values[0].to)
        outputs: list[Any] = []
        bucket = self.bucket
        before = bucket.watermark
        for packet in values:
            bucket.receive(packet.sender, packet.promise, packet.done, packet.items, outputs)
        bucket.settle(outputs)
        outbox = Outbox(self.topology, self.sender)
        outbox.add(outputs)
        if bucket.watermark is not None and bucket.watermark != before:
            outbox.row(StageWatermark(self.run_id, self.stage, self.index, bucket.watermark))
        done = bucket.done
        moved = self.sent.moved(bucket.watermark, done)
        return outbox.packets(self.stage, bucket.watermark, done, moved), self.RETAIN

    @override
    def snapshot(self) -> bytes:
        if not self.recovery:
            return b""
        bucket = self.bucket
        promises, finals = bucket.frontiers.state()
        pending = [(key, item) for key, _, item in sorted(bucket.reorder.heap, key=lambda entry: entry[:2])]
        logic_state = msgspec.Raw(_RAW_ENCODER.encode(bucket.logic.state))
        snapshot = BucketSnapshot(
            self.index, promises, finals, bucket.watermark, self.sent.promise, self.sent.done, pending, logic_state
        )
        return freeze(f"{self.stage}-bucket", snapshot, True)

    def _restore(self, state: BucketSnapshot) -> None:
        self._bind(state.index)
        logic_state = msgspec.msgpack.decode(state.logic_state, type=self.state_type)
        self.bucket = bucket = Bucket(self.topology.senders(self.stage), self.make_logic(logic_state), self.lateness_ms)
        bucket.frontiers.restore(state.promises, state.finals)
        bucket.watermark = state.watermark
        self.sent.promise, self.sent.done = state.sent_promise, state.sent_done
        for key, item in state.pending:
            bucket.reorder.push((key[0], key[1], key[2]), item)


class DedupLogic(op.StatefulBatchLogic[DedupPacket, Routed, bytes]):
    """One dedup bucket (operators.ingest.accounting.EventDedup): the earliest received copy of
    an event_id wins when W passes it; its row goes to the `events` table at first sight, the
    winner to the domain stages when decided, every verdict to the tally of the message's input
    partition.
    Without `route` (a flow without domain stages) new events only go to the table; `stored`
    ids (already in the store, for a replay run) are duplicates."""

    def __init__(
        self,
        topology: Topology,
        ttl_ms: int,
        lateness_ms: int,
        xref_ttl_ms: int,
        accounting_source: Callable[[str], str],
        run_id: str,
        recovery: bool,
        resume: bytes | None,
        route: bool = True,
        stored: frozenset[str] = frozenset(),
    ) -> None:
        self.topology = topology
        self.route = route
        self.stored = stored
        self.lateness_ms = lateness_ms
        self.xref_ttl_ms = xref_ttl_ms
        self.accounting_source = accounting_source
        self.run_id = run_id
        self.recovery = recovery
        self.index = -1
        self.sender = ""
        self.frontiers = Frontiers(topology.sources)
        self.sent = _Promises()
        state = thaw(resume, "dedup-bucket", DedupSnapshot)
        self.dedup = EventDedup(ttl_ms, state.dedup if state is not None else None)
        if state is not None:
            self._bind(state.index)
            self.frontiers.restore(state.promises, state.finals)
            self.sent.promise, self.sent.done = state.sent_promise, state.sent_done

    def _bind(self, index: int) -> None:
        self.index = index
        self.sender = self.topology.sender_id(DEDUP, index)

    @override
    def on_batch(self, values: list[DedupPacket]) -> tuple[list[Routed], bool]:
        if self.index < 0:
            self._bind(values[0].to)
        outbox = Outbox(self.topology, self.sender)
        dedup, stored = self.dedup, self.stored
        for packet in values:
            source = self.accounting_source(packet.sender)
            for claim in packet.claims:
                if claim.event.event_id in stored:
                    dedup.reject(source, claim.offset)
                else:
                    dedup.offer(claim.event, source, claim.offset, claim.received_ms)
            self.frontiers.update(packet.sender, packet.promise, packet.done)
        promise, done = self._promise()
        # Winners are decided up to the promise this bucket sends on with them: the domain
        # stages get every decided event before the promise that lets them apply it.
        dedup.decide(promise, everything=done)
        rows, decided, verdicts = dedup.take()
        for event in rows:
            outbox.row(event)
        if self.route and decided:
            routed: list[Any] = []
            xref_ttl_ms = self.xref_ttl_ms
            for candidate in decided:
                route_event(candidate.event, candidate.received_ms, xref_ttl_ms, routed)
            outbox.add(routed)
        moved = self.sent.moved(promise, done) and self.route
        if moved and promise is not None:
            outbox.row(StageWatermark(self.run_id, DEDUP, self.index, promise))
        out = outbox.packets(DEDUP, promise, done, moved)
        out.extend((TALLY, source, TallyPacket(source, list[TallyItem](items))) for source, items in verdicts.items())
        return out, self.RETAIN

    def _promise(self) -> tuple[int | None, bool]:
        """What dedup promises downstream: no event received more than the allowed lateness
        before its sources' progress is still to come; at the end, the newest received time."""
        frontiers = self.frontiers
        current = frontiers.current()
        if frontiers.all_done:
            return current, True
        return (None if current is None else current - self.lateness_ms), False

    @override
    def snapshot(self) -> bytes:
        if not self.recovery:
            return b""
        promises, finals = self.frontiers.state()
        state = DedupSnapshot(self.index, promises, finals, self.sent.promise, self.sent.done, self.dedup.state)
        return freeze("dedup-bucket", state, True)


class TallyLogic(op.StatefulBatchLogic[TallyPacket, Routed, bytes]):
    """The accounting of one input partition (operators.ingest.accounting.SourceTally)."""

    def __init__(self, topology: Topology, run_id: str, recovery: bool, resume: bytes | None) -> None:
        self.topology = topology
        self.run_id = run_id
        self.recovery = recovery
        self.tally: SourceTally | None = None
        state = thaw(resume, "tally", TallySnapshot)
        if state is not None:
            self.tally = SourceTally(state.source, run_id, state.state)

    @override
    def on_batch(self, values: list[TallyPacket]) -> tuple[list[Routed], bool]:
        tally = self.tally
        if tally is None:
            tally = self.tally = SourceTally(values[0].source, self.run_id)
        for packet in values:
            for item in packet.items:
                tally.add(item)
        # The counts and the replayed letters' outcomes travel in one packet and are stored by the
        # same flush of the sink: a letter is marked replayed when, and only when, it is counted.
        rows: list[Any] = [*tally.rows(), *tally.replays()]
        if not rows:
            return [], self.RETAIN
        outbox = Outbox(self.topology, f"tally/{tally.source}")
        for row in rows:
            outbox.row(row)
        return outbox.packets(TALLY, None, False, False), self.RETAIN

    @override
    def snapshot(self) -> bytes:
        if not self.recovery or self.tally is None:
            return b""
        return freeze("tally", TallySnapshot(self.tally.source, self.tally.state), True)


class TallySnapshot(msgspec.Struct, array_like=True):
    source: str
    state: TallyState
