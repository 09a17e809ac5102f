"""Per (handoff, delivery) state: the latency fact and its SLA alerts (design.md 3.3, 3.5).

Everything rendered here is a function of the set of events seen and of the watermark W, never
of their arrival order, so a replay in any order (and any split of deliveries over instances)
ends with the same rows:

- `from_at` / `to_at` are the earliest from- / to-time over matching events, ties by event_id.
- `version` is the number of distinct events matched to the handoff (from or to).
- The deadline is `from_at + sla`. Alerts are decided only once `W >= deadline`, on received
  times: a to-event received before the deadline counts as "in time". Under the allowed
  lateness every event still to come has `received_at >= W`, so once `W >= deadline` the set of
  in-time to-events is complete and the decision below never flips:
  * no to-event received before the deadline -> `handoff_missing`, opened_at = due_at = deadline;
    open until a to-event is known, then resolved with resolved_at = max(to_at, deadline) (the
    clamp keeps alert durations non-negative when the answer happened in time but reached us
    late). A to-event that arrives before W reaches the deadline but was received after it gives
    the same alert, directly in its resolved form: it was missing at the deadline.
  * a to-event received before the deadline, but the earliest of those is stamped after it ->
    `handoff_late`, resolved at once (the handoff did complete): opened_at = deadline,
    resolved_at = that to-time. With to-times at or before received times this only happens when
    the answering system's clock or time zone is off, so it is rare by design.
  A late from-event can only move the deadline earlier; alerts are re-rendered with new versions.
  An alert that stops applying (only possible for events beyond the allowed lateness, or for a
  `handoff_late` whose deadline moved before its in-time to-event) gets a final resolved version
  with details.withdrawn instead of vanishing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

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
    duration_ms,
)
from operators.domain.handoffs import Handoff, SyncLatency
from operators.model import CanonicalEvent, SourceKind
from operators.records import copy_with, pickled_as_values

# Which system's ids win when events disagree: the ERP owns orders and shipping points.
_KIND_PRIORITY = {SourceKind.ERP: 0, SourceKind.WMS: 1, SourceKind.CARRIER: 2, SourceKind.SNAPSHOT: 3}

# (priority, occurred_at, event_id, value): the smallest wins, so the choice is order-independent.
Candidate = tuple[int, datetime, str, str]

_ONE_MS = timedelta(milliseconds=1)


def candidate(event: CanonicalEvent, value: str | None) -> Candidate | None:
    if not value:
        return None
    return (_KIND_PRIORITY.get(event.source_kind, 9), event.occurred_at, event.event_id, value)


def better(current: Candidate | None, new: Candidate | None) -> Candidate | None:
    if new is None:
        return current
    return new if current is None or new < current else current


def value_of(chosen: Candidate | None) -> str:
    return "" if chosen is None else chosen[3]


@pickled_as_values
@dataclass(slots=True)
class ToSighting:
    """A to-event as far as alerts need it. Never changed once built (not `frozen` only because
    that makes building one several times slower)."""

    received_at: datetime
    to_time: datetime
    event_id: str


@pickled_as_values
@dataclass(slots=True)
class HandoffTrack:
    """What one delivery has seen of one handoff, plus the rows last emitted for it.

    Mutable working state of its delivery: `record` changes it in place, and the lifecycle copies
    it (`copy_track`) before changing one a snapshot may share (operators.domain.lifecycle).

    Discarded when: its delivery is discarded (operators.domain.lifecycle.DeliveryState).
    """

    handoff: str
    version: int = 0
    from_at: datetime | None = None
    from_event_id: str = ""
    to_at: datetime | None = None
    to_event_id: str = ""
    to_seen: list[ToSighting] = field(default_factory=list)
    order: Candidate | None = None
    site: Candidate | None = None
    fact: SyncLatency | None = None  # last emitted fact
    alerts: tuple[Alert, ...] = ()  # last emitted version of each alert of this track

    def deadline(self, sla: timedelta) -> datetime | None:
        return None if self.from_at is None else self.from_at + sla


def copy_track(track: HandoffTrack) -> HandoffTrack:
    """A copy that shares nothing mutable with `track` (the rows and sightings are immutable)."""
    return HandoffTrack(
        handoff=track.handoff,
        version=track.version,
        from_at=track.from_at,
        from_event_id=track.from_event_id,
        to_at=track.to_at,
        to_event_id=track.to_event_id,
        to_seen=list(track.to_seen),
        order=track.order,
        site=track.site,
        fact=track.fact,
        alerts=track.alerts,
    )


def observe(track: HandoffTrack, handoff: Handoff, event: CanonicalEvent) -> HandoffTrack | None:
    """The track after a new (not yet seen) event, or None when the event is not part of the handoff.

    `track` itself is left as it was.
    """
    is_from, is_to = handoff.is_from(event), handoff.is_to(event)
    if not (is_from or is_to):
        return None
    updated = copy_track(track)
    record(updated, handoff, event, is_from, is_to, candidate(event, event.order_id), candidate(event, event.site))
    return updated


def record(
    track: HandoffTrack,
    handoff: Handoff,
    event: CanonicalEvent,
    is_from: bool,
    is_to: bool,
    order: Candidate | None,
    site: Candidate | None,
) -> None:
    """`observe` in place, for an event known to be a from- and/or to-event of the handoff, given
    the event's candidates for the order and the site (computed once for all of its tracks)."""
    event_id = event.event_id
    if is_from:
        at = handoff.from_time_of(event)
        if track.from_at is None or (at, event_id) < (track.from_at, track.from_event_id):
            track.from_at, track.from_event_id = at, event_id
    if is_to:
        at = handoff.to_time_of(event)
        if track.to_at is None or (at, event_id) < (track.to_at, track.to_event_id):
            track.to_at, track.to_event_id = at, event_id
        track.to_seen.append(ToSighting(event.received_at, at, event_id))
    track.version += 1
    track.order = better(track.order, order)
    track.site = better(track.site, site)


def render_fact(track: HandoffTrack, handoff: Handoff, delivery_id: str) -> SyncLatency | None:
    """The current fact, or None until a from-event is known."""
    content = fact_content(track, handoff, delivery_id)
    return None if content is None else SyncLatency(*content, version=track.version)


# (SyncLatency fields but the version, in declaration order) of the current fact.
FactContent = tuple[str, str, str, str, str, str, datetime, datetime | None, int | None, int, bool, bool]


def fact_content(track: HandoffTrack, handoff: Handoff, delivery_id: str) -> FactContent | None:
    """What `render_fact` would return, as a tuple without the version: the lifecycle compares
    it with the last emitted fact and builds the row only when it is emitted."""
    from_at = track.from_at
    if from_at is None:
        return None
    to_at, order, site, sla_ms = track.to_at, track.order, track.site, handoff.sla_ms
    latency_ms = None if to_at is None else (to_at - from_at) // _ONE_MS  # alerts.duration_ms, inlined
    return (
        handoff.name,
        delivery_id,
        "" if order is None else order[3],
        "" if site is None else site[3],
        track.from_event_id,
        track.to_event_id,
        from_at,
        to_at,
        latency_ms,
        sla_ms,
        latency_ms is not None and latency_ms > sla_ms,  # breached
        latency_ms is not None and latency_ms < 0,  # clock_skew
    )


def _human(ms: int) -> str:
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    minutes, _ = divmod(ms // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m" if minutes else f"{sign}{ms / 1000:g}s"


def _alert(
    rule: str,
    track: HandoffTrack,
    handoff: Handoff,
    delivery_id: str,
    deadline: datetime,
    resolved_at: datetime | None,
    details: str,
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


def render_alerts(
    track: HandoffTrack, handoff: Handoff, delivery_id: str, watermark: datetime | None
) -> tuple[Alert, ...]:
    """The alerts of this track as they should read now (see the module docstring)."""
    from_at = track.from_at
    if from_at is None or watermark is None:
        return ()
    deadline = from_at + handoff.sla
    if watermark < deadline:
        return ()  # W only grows and deadlines only move earlier: nothing was emitted either
    current: list[Alert] = []
    in_time = [seen for seen in track.to_seen if seen.received_at < deadline]
    first = min(in_time, key=lambda seen: (seen.to_time, seen.event_id)) if in_time else None
    if first is None or first.to_time > deadline:  # else: answered in time, no alert
        sla = _human(handoff.sla_ms)
        base = {
            "from_event_id": track.from_event_id,
            "from_at": from_at,
            "deadline": deadline,
            "sla_ms": handoff.sla_ms,
        }
        if first is None and track.to_at is None:
            details = details_json(**base, summary=f"no answer by the deadline (sla {sla})")
            current.append(_alert(HANDOFF_MISSING, track, handoff, delivery_id, deadline, None, details))
        elif first is None and track.to_at is not None:
            latency_ms = duration_ms(track.to_at - from_at)
            breached = latency_ms > handoff.sla_ms
            verdict = "breached" if breached else "within sla, but received after the deadline"
            details = details_json(
                **base,
                to_event_id=track.to_event_id,
                to_at=track.to_at,
                latency_ms=latency_ms,
                breached=breached,
                summary=f"arrived late, latency {_human(latency_ms)} (sla {sla}, {verdict})",
            )
            resolved_at = max(track.to_at, deadline)
            current.append(_alert(HANDOFF_MISSING, track, handoff, delivery_id, deadline, resolved_at, details))
        elif first is not None:
            latency_ms = duration_ms(first.to_time - from_at)
            details = details_json(
                **base,
                to_event_id=first.event_id,
                to_at=first.to_time,
                to_received_at=first.received_at,
                latency_ms=latency_ms,
                summary=f"completed late, latency {_human(latency_ms)} (sla {sla}); "
                "received before the deadline but stamped after it",
            )
            current.append(_alert(HANDOFF_LATE, track, handoff, delivery_id, deadline, first.to_time, details))
    if track.alerts:
        live = {alert.alert_id for alert in current}
        current.extend(_withdrawn(emitted, track.version) for emitted in track.alerts if emitted.alert_id not in live)
    return tuple(current)


def _withdrawn(emitted: Alert, version: int) -> Alert:
    """An alert that no longer applies: a final resolved version, kept stable across renders."""
    details = details_json(
        withdrawn=True,
        summary="no longer applies: a from-event moved the deadline, or an in-time answer arrived "
        "later than the allowed lateness",
    )
    resolved_at = emitted.resolved_at if emitted.resolved_at is not None else emitted.opened_at
    return copy_with(emitted, state=RESOLVED, resolved_at=resolved_at, details=details, version=version)
