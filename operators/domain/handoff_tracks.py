"""Per (handoff, delivery) state: the latency fact and its SLA alerts (design.md 3.3, 3.5).

Everything rendered here is a function of the set of events seen and of the watermark W, never
of their arrival order, so a replay in any order (and any split of deliveries over buckets)
ends with the same rows:

- `from_at` / `to_at` are the earliest from- / to-time over matching events, ties by event_id.
- `version` is the number of distinct events matched to the handoff (from or to).
- The deadline is `from_at + sla`. Alerts are decided only once `W >= deadline`, on arrival
  times (when the stage could know the event: its received_at, or when resolution attached it):
  a to-event that arrived before the deadline counts as "in time". Every event still to come
  arrives at or after W, so once `W >= deadline` the set of in-time to-events is complete and
  the decision below never flips:
  * no to-event arrived before the deadline -> `handoff_missing`, opened_at = due_at = deadline;
    open until a to-event is known, then resolved with resolved_at = max(to_at, deadline) (the
    clamp keeps alert durations non-negative when the answer happened in time but reached us
    late). A to-event that arrives before W reaches the deadline but after the deadline gives
    the same alert, directly in its resolved form: it was missing at the deadline.
  * a to-event arrived before the deadline, but the earliest of those is stamped after it ->
    `handoff_late`, resolved at once (the handoff did complete): opened_at = deadline,
    resolved_at = that to-time. With to-times at or before arrival times this only happens when
    the answering system's clock or time zone is off, so it is rare by design.
  A late from-event can only move the deadline earlier; alerts are re-rendered with new versions.
  An alert that stops applying (only possible for events beyond the allowed lateness, or for a
  `handoff_late` whose deadline moved before its in-time to-event) gets a final resolved version
  with details.withdrawn instead of vanishing.

"The earliest to-time among to-events that arrived before D" is kept as a staircase of
(arrival, to-time) points whose to-time is a new minimum: usually one point, never more than the
to-events, and answered by a binary search.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import msgspec

from operators.domain.alerts import (
    CRITICAL,
    HANDOFF_LATE,
    HANDOFF_MISSING,
    OPEN,
    RESOLVED,
    WARNING,
    Alert,
    alert_id,
    details_json,
    iso,
    with_alert,
)
from operators.domain.handoffs import Handoff, SyncLatency
from operators.domain.items import tie_of

# (priority, occurred ms, tie of the event id, value): the smallest wins, so the choice is
# order-independent (operators.domain.items.tie_of).
Candidate = tuple[int, int, int, str]

_BIG = 2**62


def better(current: Candidate | None, new: Candidate | None) -> Candidate | None:
    if new is None:
        return current
    return new if current is None or new < current else current


def value_of(chosen: Candidate | None) -> str:
    return "" if chosen is None else chosen[3]


class Track(msgspec.Struct, gc=False, array_like=True):
    """What one delivery has seen of one handoff, plus what was last emitted for it.

    Discarded when: its delivery is discarded (operators.domain.lifecycle).
    """

    version: int = 0
    from_at: int | None = None
    from_event_id: str = ""
    to_at: int | None = None
    to_event_id: str = ""
    # (arrival ms, to-time ms, tie of the event id), arrival ascending, (to-time, tie) descending.
    stair: list[tuple[int, int, int]] = []
    order: Candidate | None = None
    site: Candidate | None = None
    emitted: int = 0  # version of the last emitted fact
    alerts: list[Alert] = []  # last emitted version of each alert of this track

    def deadline(self, handoff: Handoff) -> int | None:
        return None if self.from_at is None else self.from_at + handoff.sla_ms

    def record_from(self, at_ms: int, event_id: str) -> bool:
        """A from-event; True when it moved from_at (and so the deadline)."""
        if self.from_at is None or (at_ms, event_id) < (self.from_at, self.from_event_id):
            self.from_at, self.from_event_id = at_ms, event_id
            return True
        return False

    def record_to(self, at_ms: int, event_id: str, arrival_ms: int) -> None:
        if self.to_at is None or (at_ms, event_id) < (self.to_at, self.to_event_id):
            self.to_at, self.to_event_id = at_ms, event_id
        stair = self.stair
        point = (arrival_ms, at_ms, tie_of(event_id))
        index = bisect_right(stair, (arrival_ms, _BIG, _BIG))
        if index and stair[index - 1][1:] <= point[1:]:
            return  # an earlier-arriving to-event already has an earlier to-time
        end = index
        while end < len(stair) and stair[end][1:] >= point[1:]:
            end += 1
        stair[index:end] = [point]

    def first_before(self, deadline_ms: int) -> tuple[int, int, int] | None:
        """(arrival, to-time, event_id) with the earliest to-time among to-events that arrived
        before the deadline, or None."""
        index = bisect_left(self.stair, (deadline_ms, -_BIG, -_BIG))
        return self.stair[index - 1] if index else None


def render_fact(track: Track, handoff: Handoff, delivery_id: str) -> SyncLatency | None:
    """The current fact, or None until a from-event is known."""
    from_at = track.from_at
    if from_at is None:
        return None
    to_at, sla_ms = track.to_at, handoff.sla_ms
    latency_ms = None if to_at is None else to_at - from_at
    return SyncLatency(
        handoff.name,
        delivery_id,
        value_of(track.order),
        value_of(track.site),
        track.from_event_id,
        track.to_event_id,
        from_at,
        to_at,
        latency_ms,
        sla_ms,
        latency_ms is not None and latency_ms > sla_ms,  # breached
        latency_ms is not None and latency_ms < 0,  # clock_skew: answered before it was asked
        track.version,
    )


def _human(ms: int) -> str:
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    minutes, _ = divmod(ms // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m" if minutes else f"{sign}{ms / 1000:g}s"


def _alert(
    rule: str, track: Track, handoff: Handoff, delivery_id: str, deadline: int, resolved_at: int | None, details: str
) -> Alert:
    return Alert(
        alert_id=alert_id(rule, delivery_id, handoff.name),
        rule=rule,
        handoff=handoff.name,
        severity=CRITICAL if rule == HANDOFF_MISSING else WARNING,
        entity=delivery_id,
        delivery_id=delivery_id,
        site=value_of(track.site),
        sku="",
        state=OPEN if resolved_at is None else RESOLVED,
        due_at=deadline,
        opened_at=deadline,
        resolved_at=resolved_at,
        details=details,
        version=track.version,
    )


def render_alerts(track: Track, handoff: Handoff, delivery_id: str, watermark: int | None) -> list[Alert]:
    """The alerts of this track as they should read now (see the module docstring)."""
    from_at = track.from_at
    if from_at is None or watermark is None:
        return []
    deadline = from_at + handoff.sla_ms
    if watermark < deadline:
        return []  # W only grows and deadlines only move earlier: nothing was emitted either
    current: list[Alert] = []
    first = track.first_before(deadline)
    if first is None or first[1] > deadline:  # else: answered in time, no alert
        sla = _human(handoff.sla_ms)
        base = {
            "from_event_id": track.from_event_id,
            "from_at": iso(from_at),
            "deadline": iso(deadline),
            "sla_ms": handoff.sla_ms,
        }
        if first is None and track.to_at is None:
            details = details_json(**base, summary=f"no answer by the deadline (sla {sla})")
            current.append(_alert(HANDOFF_MISSING, track, handoff, delivery_id, deadline, None, details))
        elif first is None and track.to_at is not None:
            latency_ms = track.to_at - from_at
            breached = latency_ms > handoff.sla_ms
            verdict = "breached" if breached else "within sla, but received after the deadline"
            details = details_json(
                **base,
                to_event_id=track.to_event_id,
                to_at=iso(track.to_at),
                latency_ms=latency_ms,
                breached=breached,
                summary=f"arrived late, latency {_human(latency_ms)} (sla {sla}, {verdict})",
            )
            resolved_at = max(track.to_at, deadline)
            current.append(_alert(HANDOFF_MISSING, track, handoff, delivery_id, deadline, resolved_at, details))
        elif first is not None:
            arrival, to_time, tie = first
            latency_ms = to_time - from_at
            # The earliest in-time answer is nearly always the earliest answer overall, whose id the
            # track keeps; the staircase keeps only a tie of the others' ids.
            details = details_json(
                **base,
                to_event_id=track.to_event_id if tie == tie_of(track.to_event_id) else None,
                to_at=iso(to_time),
                to_received_at=iso(arrival),
                latency_ms=latency_ms,
                summary=f"completed late, latency {_human(latency_ms)} (sla {sla}); "
                "received before the deadline but stamped after it",
            )
            current.append(_alert(HANDOFF_LATE, track, handoff, delivery_id, deadline, to_time, details))
    if track.alerts:
        live = {alert.alert_id for alert in current}
        current.extend(_withdrawn(emitted, track.version) for emitted in track.alerts if emitted.alert_id not in live)
    return current


def _withdrawn(emitted: Alert, version: int) -> Alert:
    """An alert that no longer applies: a final resolved version, kept stable across renders."""
    details = details_json(
        withdrawn=True,
        summary="no longer applies: a from-event moved the deadline, or an in-time answer arrived "
        "later than the allowed lateness",
    )
    resolved_at = emitted.resolved_at if emitted.resolved_at is not None else emitted.opened_at
    return with_alert(emitted, state=RESOLVED, resolved_at=resolved_at, details=details, version=version)
