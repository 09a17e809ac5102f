"""Dedup by event_id and the per-message accounting of design.md section 4.

Every raw message ends as exactly one of: normalized (it yields at least one event not seen
before), duplicate (every event it yields was already seen), dead_lettered, or ignored.
Events of one message are deduplicated in several buckets (keyed by event_id), so the verdict
for the message is tallied afterwards in a second keyed step (keyed by raw_ref).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from operators.model import AdapterResult, CanonicalEvent, RawMessage, WarningKind

NORMALIZED = "normalized"
DUPLICATE = "duplicate"
DEAD_LETTERED = "dead_lettered"
IGNORED = "ignored"
OUTCOMES = (NORMALIZED, DUPLICATE, DEAD_LETTERED, IGNORED)


def bucket_of(key: str, buckets: int) -> str:
    """A stable bucket for a key (crc32, never hash(): it must agree across processes)."""
    return str(zlib.crc32(key.encode("utf-8")) % buckets)


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """The accounting verdict for one raw message."""

    topic: str
    outcome: str
    new_event_types: tuple[str, ...] = ()
    dead_reason: str = ""
    mapping_warnings: int = 0


@dataclass(frozen=True, slots=True)
class Claim:
    """One event of a message, on its way to dedup. `n_events` lets the tally know when it is done."""

    event: CanonicalEvent
    raw_ref: str
    topic: str
    n_events: int
    mapping_warnings: int
    received_ms: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """A claim after dedup: `is_new` is False when the event_id was already seen."""

    claim: Claim
    is_new: bool


def count_mapping_warnings(result: AdapterResult) -> int:
    return sum(1 for warning in result.warnings if warning.kind is WarningKind.MAPPING)


def split_result(raw: RawMessage, result: AdapterResult, received_ms: int) -> list[Claim] | MessageOutcome:
    """Claims for a message that yielded events, else its final outcome (dead letter / ignore)."""
    mapping = count_mapping_warnings(result)
    if result.dead_letter is not None:
        return MessageOutcome(
            raw.topic, DEAD_LETTERED, dead_reason=str(result.dead_letter.reason), mapping_warnings=mapping
        )
    if not result.events:
        return MessageOutcome(raw.topic, IGNORED, mapping_warnings=mapping)
    # An adapter may yield the same event twice in one message (a 214 repeating an AT7):
    # claim each id once, so the message's tally is not waiting for a second verdict.
    unique = list({event.event_id: event for event in result.events}.values())
    return [Claim(event, raw.raw_ref, raw.topic, len(unique), mapping, received_ms) for event in unique]


@dataclass
class DedupState:
    """Seen event ids of one bucket -> received_at (ms) of their first sighting.

    Discarded when: an id is forgotten `ttl_ms` after the newest received_at this bucket has
    seen (so a redelivery later than the ttl counts as new again); the bucket itself lives as
    long as the flow.
    """

    seen: dict[str, int] = field(default_factory=dict)
    newest_ms: int = 0
    next_prune_ms: int = 0


class EventDedup:
    """First sighting of an event_id wins; later ones are duplicates."""

    def __init__(self, ttl_ms: int, state: DedupState | None = None) -> None:
        self.ttl_ms = ttl_ms
        self.state = state if state is not None else DedupState()

    def judge(self, claims: Iterable[Claim]) -> list[Verdict]:
        state = self.state
        seen = state.seen
        verdicts = []
        for claim in claims:
            event_id = claim.event.event_id
            is_new = event_id not in seen
            if is_new:
                seen[event_id] = claim.received_ms
            verdicts.append(Verdict(claim, is_new))
            state.newest_ms = max(state.newest_ms, claim.received_ms)
        if state.newest_ms >= state.next_prune_ms:
            self._prune()
        return verdicts

    def _prune(self) -> None:
        state = self.state
        horizon = state.newest_ms - self.ttl_ms
        state.seen = {event_id: ms for event_id, ms in state.seen.items() if ms >= horizon}
        # Pruning is O(n): do it at most once per tenth of the ttl of received time.
        state.next_prune_ms = state.newest_ms + max(self.ttl_ms // 10, 1)


@dataclass
class _Pending:
    topic: str
    remaining: int
    mapping_warnings: int
    new_types: list[str] = field(default_factory=list)


@dataclass
class TallyState:
    """Messages whose events are still being judged: raw_ref -> what is known so far.

    Discarded when: an entry is removed as soon as every event of its message has a verdict.
    """

    pending: dict[str, _Pending] = field(default_factory=dict)


class MessageTally:
    """Collects the verdicts of a message's events into one MessageOutcome."""

    def __init__(self, state: TallyState | None = None) -> None:
        self.state = state if state is not None else TallyState()

    def add(self, verdicts: Iterable[Verdict]) -> list[MessageOutcome]:
        pending = self.state.pending
        done = []
        for verdict in verdicts:
            claim = verdict.claim
            entry = pending.get(claim.raw_ref)
            if entry is None:
                entry = _Pending(claim.topic, claim.n_events, claim.mapping_warnings)
                pending[claim.raw_ref] = entry
            entry.remaining -= 1
            if verdict.is_new:
                entry.new_types.append(str(claim.event.event_type))
            if entry.remaining <= 0:
                del pending[claim.raw_ref]
                outcome = NORMALIZED if entry.new_types else DUPLICATE
                done.append(
                    MessageOutcome(
                        entry.topic,
                        outcome,
                        new_event_types=tuple(entry.new_types),
                        mapping_warnings=entry.mapping_warnings,
                    )
                )
        return done
