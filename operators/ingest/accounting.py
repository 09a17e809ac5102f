"""Dedup by event_id and the exact per-message accounting of design.md section 4.

Every raw message ends as exactly one of: normalized (it carries the winning copy of at least one
event), duplicate (every event it yields was won by another copy), dead_lettered, or ignored.
Which copy of an event wins does not depend on arrival order (EventDedup).

A replayed dead letter (`RawMessage.replay_of`, `logisync dlq replay`) is not a new raw message:
it counts in its outcome and in `replayed`, never in `raw_in`, so per topic
`raw_in = normalized + duplicates + ignored + dead_lettered - replayed` after any number of
replays (each replay takes one letter out of dead_lettered and puts it into one outcome, possibly
dead again). Its outcome is also recorded per letter (`LetterReplay`, table dead_letter_replays),
in the same rows as the counts, so a letter is replayed once however a replay run ends.

A message's events are deduplicated in several buckets (keyed by event_id), so its verdict is
tallied in a second step keyed by its *input partition* (`source`), which also keeps the counts:
per offset block of the partition (`BLOCK` offsets) and topic, one `ingest_stats` row whose
version is the number of messages of the block counted so far. The block a message belongs to
depends on its offset alone, and the counts are bytewax state, snapshotted with the input
offsets, so after any crash series the rows (read with FINAL) count every consumed message
exactly once: a replayed epoch re-sends the same rows, never adds to them.
"""

from __future__ import annotations

import heapq

import msgspec

from operators.model import AdapterResult, CanonicalEvent, RawMessage, WarningKind

NORMALIZED = "normalized"
DUPLICATE = "duplicate"
DEAD_LETTERED = "dead_lettered"
IGNORED = "ignored"
OUTCOMES = (NORMALIZED, DUPLICATE, DEAD_LETTERED, IGNORED)
PRODUCED = "produced"  # a letter produced back onto its Kafka topic; the live flow records the rest

BLOCK = 10_000  # offsets per ingest_stats row of an input partition


class Claim(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One event of a message, on its way to dedup."""

    event: CanonicalEvent
    source: str  # the input partition the message came from
    offset: int
    received_ms: int


class Expect(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """A message that yielded events: how many distinct ones, and what its adapter warned about."""

    offset: int
    topic: str
    events: int
    warnings: tuple[str, ...]  # warning kinds, one per warning
    replay_of: str = ""  # the original raw_ref when the message is a replayed dead letter


class Judged(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """The verdicts one dedup bucket gave some events of a message."""

    offset: int
    judged: int
    new_types: tuple[str, ...]  # event types of the events that were new


def count_mapping_warnings(result: AdapterResult) -> int:
    return sum(1 for warning in result.warnings if warning.kind is WarningKind.MAPPING)


class Finished(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """A message dead-lettered or ignored by its adapter: its outcome is known at once."""

    offset: int
    topic: str
    outcome: str  # DEAD_LETTERED | IGNORED
    dead_reason: str
    warnings: tuple[str, ...]
    replay_of: str = ""


TallyItem = Expect | Judged | Finished


def split_result(
    raw: RawMessage, source: str, result: AdapterResult, received_ms: int
) -> tuple[list[Claim], TallyItem]:
    """The claims of a message (one per distinct event), and what the tally learns from it now."""
    kinds = tuple(warning.kind.value for warning in result.warnings)
    replay_of = raw.replay_of or ""
    if result.dead_letter is not None:
        return [], Finished(raw.offset, raw.topic, DEAD_LETTERED, str(result.dead_letter.reason), kinds, replay_of)
    if not result.events:
        return [], Finished(raw.offset, raw.topic, IGNORED, "", kinds, replay_of)
    # An adapter may yield the same event twice in one message (a 214 repeating an AT7):
    # claim each id once, so the message's tally is not waiting for a second verdict.
    unique = list({event.event_id: event for event in result.events}.values())
    claims = [Claim(event, source, raw.offset, received_ms) for event in unique]
    return claims, Expect(raw.offset, raw.topic, len(unique), kinds, replay_of)


class BestCopy(msgspec.Struct, gc=False, array_like=True):
    """The best copy of an event seen so far, until W passes its received time."""

    received_ms: int
    source: str  # the accounting source (input partition) of the message that carried it
    offset: int
    event: CanonicalEvent


class DedupState(msgspec.Struct, gc=False):
    """One dedup bucket.

    `seen`: decided event ids -> received_at (ms) of the winning copy. Discarded when: W is more
    than `ttl_ms` past it (a copy received later than the ttl counts as new again, whenever the
    prune runs). `candidates`: ids whose copies are still compared, the best copy so far.
    Discarded when: W passes its received time (it is decided and moves to `seen`).
    `decided_ms`: the W up to which everything is decided (-1: nothing yet).
    """

    seen: dict[str, int] = {}
    candidates: dict[str, BestCopy] = {}
    decided_ms: int = -1
    next_prune_ms: int = 0


_TIE_ENCODER = msgspec.msgpack.Encoder()


def _copy_key(event: CanonicalEvent) -> bytes:
    """What ranks two copies of an event received in the same millisecond: their content, apart
    from where they sat (the same in a file replay and in Kafka), and then where they sat."""
    return _TIE_ENCODER.encode(msgspec.structs.replace(event, raw_ref=""))


class EventDedup:
    """Dedup by event_id, independent of arrival order: of the copies of an event, the earliest
    received wins (ties: the smaller content, then the smaller raw_ref), decided when W passes its
    received time; every other copy is a duplicate. A copy that arrives after W passed it (late)
    is judged at once, as the domain stages apply late items at once (design.md 3.1).

    The first copy's `events` row is stored at once (a dashboard does not wait for W); a better
    copy arriving before the decision stores its row again (the table keeps the last insert). The
    winner's verdict and its routing to the domain stages wait for the decision: the domain stages
    apply it when their W passes its received time anyway, so they wait for nothing more.

    Each call to `offer` and `decide` adds to what `take` hands over: events rows to store, the
    decided winners, and per accounting source the verdicts (`Judged`) for the tally.
    """

    __slots__ = ("_decided", "_heap", "_rows", "_verdicts", "state", "ttl_ms")

    def __init__(self, ttl_ms: int, state: DedupState | None = None) -> None:
        self.ttl_ms = ttl_ms
        self.state = state if state is not None else DedupState()
        self._heap = [(candidate.received_ms, event_id) for event_id, candidate in self.state.candidates.items()]
        heapq.heapify(self._heap)
        self._rows: list[CanonicalEvent] = []
        self._decided: list[BestCopy] = []
        self._verdicts: dict[str, dict[int, tuple[int, list[str]]]] = {}

    def offer(self, event: CanonicalEvent, source: str, offset: int, received_ms: int) -> None:
        state = self.state
        event_id = event.event_id
        seen_ms = state.seen.get(event_id)
        if seen_ms is not None:
            if received_ms - seen_ms <= self.ttl_ms:
                self._judge(source, offset, None)
                return
            del state.seen[event_id]  # received longer than the ttl after the winner: new again
        candidate = state.candidates.get(event_id)
        if candidate is not None:
            if not self._better(event, received_ms, candidate):
                self._judge(source, offset, None)
                return
            self._judge(candidate.source, candidate.offset, None)  # the copy it replaces lost
        candidate = state.candidates[event_id] = BestCopy(received_ms, source, offset, event)
        self._rows.append(event)
        if received_ms <= state.decided_ms:  # late: W passed it already, nothing can beat it now
            self._decide(event_id, candidate)
        else:
            heapq.heappush(self._heap, (received_ms, event_id))

    def reject(self, source: str, offset: int) -> None:
        """A copy judged a duplicate without comparing (its id is in the store already)."""
        self._judge(source, offset, None)

    @staticmethod
    def _better(event: CanonicalEvent, received_ms: int, candidate: BestCopy) -> bool:
        if received_ms != candidate.received_ms:
            return received_ms < candidate.received_ms
        mine, theirs = _copy_key(event), _copy_key(candidate.event)
        if mine != theirs:
            return mine < theirs
        return event.raw_ref < candidate.event.raw_ref

    def decide(self, watermark: int | None, everything: bool = False) -> None:
        """Decide every candidate received at or before `watermark` (all of them at the end)."""
        state, heap = self.state, self._heap
        if everything:
            watermark = max((received_ms for received_ms, _ in heap), default=state.decided_ms)
            watermark = max(watermark, state.decided_ms)
        if watermark is None or watermark <= state.decided_ms:
            return
        candidates = state.candidates
        while heap and heap[0][0] <= watermark:
            received_ms, event_id = heapq.heappop(heap)
            candidate = candidates.get(event_id)
            if candidate is not None and candidate.received_ms == received_ms:
                self._decide(event_id, candidate)
        state.decided_ms = watermark
        if watermark >= state.next_prune_ms:  # O(seen), so at most once per tenth of the ttl
            horizon = watermark - self.ttl_ms
            state.seen = {event_id: ms for event_id, ms in state.seen.items() if ms >= horizon}
            state.next_prune_ms = watermark + max(self.ttl_ms // 10, 1)

    def _decide(self, event_id: str, candidate: BestCopy) -> None:
        del self.state.candidates[event_id]
        self.state.seen[event_id] = candidate.received_ms
        self._decided.append(candidate)
        self._judge(candidate.source, candidate.offset, candidate.event.event_type.value)

    def _judge(self, source: str, offset: int, new_type: str | None) -> None:
        per_offset = self._verdicts.get(source)
        if per_offset is None:
            per_offset = self._verdicts[source] = {}
        entry = per_offset.get(offset)
        if entry is None:
            entry = per_offset[offset] = (0, [])
        if new_type is not None:
            entry[1].append(new_type)
        per_offset[offset] = (entry[0] + 1, entry[1])

    def take(self) -> tuple[list[CanonicalEvent], list[BestCopy], dict[str, list[Judged]]]:
        """The events rows to store, the winners decided and the verdicts per source, since the
        last call."""
        verdicts = {
            source: [Judged(offset, count, tuple(types)) for offset, (count, types) in per_offset.items()]
            for source, per_offset in self._verdicts.items()
        }
        rows, decided = self._rows, self._decided
        self._rows, self._decided, self._verdicts = [], [], {}
        return rows, decided, verdicts

    def pending(self) -> int:
        """Events whose copies are still compared (waiting for W)."""
        return len(self.state.candidates)


class IngestStats(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One row of `ingest_stats`: the accounting of one topic within one offset block of one
    input partition. `messages` (the version) counts the block's messages of every topic."""

    source: str
    block: int
    topic: str
    run_id: str
    messages: int
    raw_in: int
    normalized: int
    events_out: int
    dead_lettered: int
    duplicates: int
    ignored: int
    mapping_warnings: int
    events_by_type: dict[str, int]
    dead_by_reason: dict[str, int]
    warnings_by_kind: dict[str, int]
    replayed: int = 0  # replayed dead letters, counted in their outcome, not in raw_in


class LetterReplay(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One row of `dead_letter_replays`: what one replay of a dead letter came to."""

    raw_ref: str  # the original message's
    topic: str
    outcome: str  # NORMALIZED | DUPLICATE | IGNORED | DEAD_LETTERED (still dead) | PRODUCED
    run_id: str


class TopicCounts(msgspec.Struct, gc=False, array_like=True):
    raw_in: int = 0
    normalized: int = 0
    events_out: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    ignored: int = 0
    events_by_type: dict[str, int] = {}
    dead_by_reason: dict[str, int] = {}
    warnings_by_kind: dict[str, int] = {}
    replayed: int = 0


class Open(msgspec.Struct, gc=False, array_like=True):
    """A message whose events are still being judged. Discarded when: every event has a verdict."""

    topic: str = ""
    events: int = -1  # -1 until the Expect arrives (a verdict may overtake it)
    judged: int = 0
    warnings: tuple[str, ...] = ()
    new_types: list[str] = []
    replay_of: str = ""


class TallyState(msgspec.Struct, gc=False):
    # offset -> message being judged. See Open.
    open: dict[int, Open] = {}
    # block -> messages counted, and per topic counts. Discarded when: never while the flow runs
    # for blocks still open; a full block is dropped once emitted complete (its row is final).
    blocks: dict[int, int] = {}
    counts: dict[int, dict[str, TopicCounts]] = {}


class SourceTally:
    """The accounting of one input partition."""

    __slots__ = ("_changed", "_replays", "run_id", "source", "state")

    def __init__(self, source: str, run_id: str, state: TallyState | None = None) -> None:
        self.source = source
        self.run_id = run_id
        self.state = state if state is not None else TallyState()
        self._changed: set[int] = set()
        self._replays: list[LetterReplay] = []

    def add(self, item: TallyItem) -> None:
        if isinstance(item, Finished):
            self._count(item.offset, item.topic, item.outcome, (), item.dead_reason, item.warnings, item.replay_of)
            return
        entry = self.state.open.get(item.offset)
        if entry is None:
            entry = self.state.open[item.offset] = Open()
        if isinstance(item, Expect):
            entry.topic, entry.events, entry.warnings = item.topic, item.events, item.warnings
            entry.replay_of = item.replay_of
        else:
            entry.judged += item.judged
            entry.new_types.extend(item.new_types)
        if entry.events >= 0 and entry.judged >= entry.events:
            del self.state.open[item.offset]
            outcome = NORMALIZED if entry.new_types else DUPLICATE
            self._count(item.offset, entry.topic, outcome, entry.new_types, "", entry.warnings, entry.replay_of)

    def _count(
        self, offset: int, topic: str, outcome: str, new_types: list[str] | tuple[str, ...], dead_reason: str,
        warnings: tuple[str, ...], replay_of: str,
    ) -> None:  # fmt: skip
        block = offset - offset % BLOCK
        state = self.state
        state.blocks[block] = state.blocks.get(block, 0) + 1
        per_topic = state.counts.get(block)
        if per_topic is None:
            per_topic = state.counts[block] = {}
        counts = per_topic.get(topic)
        if counts is None:
            counts = per_topic[topic] = TopicCounts()
        if replay_of:
            counts.replayed += 1
            self._replays.append(LetterReplay(replay_of, topic, outcome, self.run_id))
        else:
            counts.raw_in += 1
        if outcome == NORMALIZED:
            counts.normalized += 1
            counts.events_out += len(new_types)
            for event_type in new_types:
                counts.events_by_type[event_type] = counts.events_by_type.get(event_type, 0) + 1
        elif outcome == DUPLICATE:
            counts.duplicates += 1
        elif outcome == DEAD_LETTERED:
            counts.dead_lettered += 1
            counts.dead_by_reason[dead_reason] = counts.dead_by_reason.get(dead_reason, 0) + 1
        else:
            counts.ignored += 1
        for kind in warnings:
            counts.warnings_by_kind[kind] = counts.warnings_by_kind.get(kind, 0) + 1
        self._changed.add(block)

    def rows(self) -> list[IngestStats]:
        """The rows of the blocks changed since the last call."""
        state = self.state
        out = []
        for block in sorted(self._changed):
            messages = state.blocks[block]
            for topic, counts in sorted(state.counts[block].items()):
                out.append(
                    IngestStats(
                        self.source,
                        block,
                        topic,
                        self.run_id,
                        messages,
                        counts.raw_in,
                        counts.normalized,
                        counts.events_out,
                        counts.dead_lettered,
                        counts.duplicates,
                        counts.ignored,
                        counts.warnings_by_kind.get("mapping", 0),
                        dict(counts.events_by_type),
                        dict(counts.dead_by_reason),
                        dict(counts.warnings_by_kind),
                        counts.replayed,
                    )
                )
            if messages >= BLOCK:  # complete: its rows are final, nothing can change them
                del state.blocks[block], state.counts[block]
        self._changed.clear()
        return out

    def replays(self) -> list[LetterReplay]:
        """The replayed letters whose outcome became known since the last call."""
        replays, self._replays = self._replays, []
        return replays

    def open_count(self) -> int:
        return len(self.state.open)
