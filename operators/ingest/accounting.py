"""Dedup by event_id and the exact per-message accounting of design.md section 4.

Every raw message ends as exactly one of: normalized (it yields at least one event not seen
before), duplicate (every event it yields was already seen), dead_lettered, or ignored.

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


class DedupState(msgspec.Struct, gc=False):
    """Seen event ids of one bucket -> received_at (ms) of their first sighting.

    Discarded when: an id is forgotten `ttl_ms` after the newest received_at this bucket has
    seen (so a redelivery later than the ttl counts as new again); the bucket itself lives as
    long as the flow.
    """

    seen: dict[str, int] = {}
    newest_ms: int = 0
    next_prune_ms: int = 0


class EventDedup:
    """First sighting of an event_id wins; later ones are duplicates."""

    __slots__ = ("state", "ttl_ms")

    def __init__(self, ttl_ms: int, state: DedupState | None = None) -> None:
        self.ttl_ms = ttl_ms
        self.state = state if state is not None else DedupState()

    def is_new(self, event_id: str, received_ms: int) -> bool:
        state = self.state
        seen = state.seen
        state.newest_ms = max(state.newest_ms, received_ms)
        if event_id in seen:
            return False
        seen[event_id] = received_ms
        return True

    def prune(self) -> None:
        """Forget ids older than the ttl; O(n), so at most once per tenth of the ttl."""
        state = self.state
        if state.newest_ms < state.next_prune_ms:
            return
        horizon = state.newest_ms - self.ttl_ms
        state.seen = {event_id: ms for event_id, ms in state.seen.items() if ms >= horizon}
        state.next_prune_ms = state.newest_ms + max(self.ttl_ms // 10, 1)


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
