"""Handoffs: which event of one system answers which event of another, and within what SLA.

A handoff is configuration (design.md 3.3): `{name, from, to, from_time, to_time, sla}`. Per
(handoff, delivery) the lifecycle keeps the earliest from-time and the earliest to-time and emits a
`SyncLatency` fact (a row of `sync_latency`); see `operators.domain.handoff_tracks` for that state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import msgspec

from operators.domain.alerts import duration_ms
from operators.model import CanonicalEvent, EventType, Milestone, SourceKind

OCCURRED_AT = "occurred_at"
RECORDED_AT = "recorded_at"
TIME_FIELDS = (OCCURRED_AT, RECORDED_AT)


class HandoffConfigError(ValueError):
    """A handoff definition in a config file that cannot be used."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Handoff:
    """One handoff. Empty `*_kinds` / `*_milestones` sets mean "any"."""

    name: str
    from_types: frozenset[EventType]
    from_kinds: frozenset[SourceKind] = field(default_factory=frozenset)
    from_milestones: frozenset[Milestone] = field(default_factory=frozenset)
    to_types: frozenset[EventType]
    to_kinds: frozenset[SourceKind] = field(default_factory=frozenset)
    to_milestones: frozenset[Milestone] = field(default_factory=frozenset)
    from_time: str = OCCURRED_AT
    to_time: str = RECORDED_AT
    sla: timedelta
    # `sla` in whole milliseconds, computed once: every rendered fact and alert carries it.
    sla_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise HandoffConfigError("handoff: name must not be empty")
        if not self.from_types or not self.to_types:
            raise HandoffConfigError(f"handoff {self.name!r}: 'from' and 'to' need at least one event type")
        for side, value in (("from_time", self.from_time), ("to_time", self.to_time)):
            if value not in TIME_FIELDS:
                raise HandoffConfigError(f"handoff {self.name!r}: {side} must be one of {TIME_FIELDS}, got {value!r}")
        if self.sla <= timedelta(0):
            raise HandoffConfigError(f"handoff {self.name!r}: sla must be positive, got {self.sla}")
        object.__setattr__(self, "sla_ms", duration_ms(self.sla))

    def is_from(self, event: CanonicalEvent) -> bool:
        return _matches(event, self.from_types, self.from_kinds, self.from_milestones)

    def is_to(self, event: CanonicalEvent) -> bool:
        return _matches(event, self.to_types, self.to_kinds, self.to_milestones)


def _matches(
    event: CanonicalEvent,
    types: frozenset[EventType],
    kinds: frozenset[SourceKind],
    milestones: frozenset[Milestone],
) -> bool:
    if event.event_type not in types:
        return False
    if kinds and event.source_kind not in kinds:
        return False
    return not milestones or event.milestone in milestones


# (index in the configuration, handoff, is a from-event, is a to-event)
HandoffMatch = tuple[int, Handoff, bool, bool]


class HandoffMatcher:
    """The handoffs an event takes part in, in configuration order.

    `is_from` / `is_to` read only (event_type, source_kind, milestone), so the answer is cached
    per such triple: most events match none or one of the handoffs, and the lifecycle then
    touches only those tracks. The cache is bounded by the enums' sizes.
    """

    __slots__ = ("_cache", "handoffs")

    def __init__(self, handoffs: tuple[Handoff, ...]) -> None:
        self.handoffs = handoffs
        self._cache: dict[tuple[EventType, SourceKind, Milestone | None], tuple[HandoffMatch, ...]] = {}

    def __call__(self, event: CanonicalEvent) -> tuple[HandoffMatch, ...]:
        key = (event.event_type, event.source_kind, event.milestone)
        found = self._cache.get(key)
        if found is None:
            matches = ((i, h, h.is_from(event), h.is_to(event)) for i, h in enumerate(self.handoffs))
            found = self._cache[key] = tuple(match for match in matches if match[2] or match[3])
        return found


# design.md 3.3, default handoffs.
DEFAULT_HANDOFFS: tuple[Handoff, ...] = (
    Handoff(
        name="release_to_wms",
        from_types=frozenset({EventType.ORDER_RELEASED}),
        from_kinds=frozenset({SourceKind.ERP}),
        to_types=frozenset({EventType.PICK_CONFIRMED, EventType.PACK_CONFIRMED, EventType.SHIPMENT_DISPATCHED}),
        to_kinds=frozenset({SourceKind.WMS}),
        from_time=OCCURRED_AT,
        to_time=RECORDED_AT,
        sla=timedelta(hours=2),
    ),
    Handoff(
        name="ship_to_erp",
        from_types=frozenset({EventType.SHIPMENT_DISPATCHED}),
        from_kinds=frozenset({SourceKind.WMS}),
        to_types=frozenset({EventType.GOODS_ISSUE_POSTED}),
        to_kinds=frozenset({SourceKind.ERP}),
        from_time=OCCURRED_AT,
        to_time=RECORDED_AT,
        sla=timedelta(minutes=15),
    ),
    Handoff(
        name="dispatch_to_pickup",
        from_types=frozenset({EventType.SHIPMENT_DISPATCHED}),
        from_kinds=frozenset({SourceKind.WMS}),
        to_types=frozenset({EventType.CARRIER_STATUS}),
        to_kinds=frozenset({SourceKind.CARRIER}),
        to_milestones=frozenset({Milestone.PICKED_UP, Milestone.IN_TRANSIT}),
        from_time=OCCURRED_AT,
        to_time=OCCURRED_AT,
        sla=timedelta(hours=4),
    ),
    Handoff(
        name="ship_to_invoice",
        from_types=frozenset({EventType.GOODS_ISSUE_POSTED}),
        from_kinds=frozenset({SourceKind.ERP}),
        to_types=frozenset({EventType.INVOICE_POSTED}),
        to_kinds=frozenset({SourceKind.ERP}),
        from_time=OCCURRED_AT,
        to_time=RECORDED_AT,
        sla=timedelta(hours=24),
    ),
)


class SyncLatency(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One version of a (handoff, delivery) fact, a row of `sync_latency`.

    Emitted once the from-time is known; `to_*` and `latency_ms` stay empty/None until a to-event
    is known. Strings are "" when unknown; times are epoch ms.
    """

    handoff: str
    delivery_id: str
    order_id: str
    site: str
    from_event_id: str
    to_event_id: str
    from_at: int
    to_at: int | None
    latency_ms: int | None
    sla_ms: int
    breached: bool
    clock_skew: bool  # latency_ms < 0: the to-system's clock says it answered before it was asked
    version: int


# ---------------------------------------------------------------------------------------------
# Config parsing
# ---------------------------------------------------------------------------------------------

_KEYS = {
    "name",
    "from",
    "from_types",
    "from_kinds",
    "from_milestones",
    "to",
    "to_types",
    "to_kinds",
    "to_milestones",
    "from_time",
    "to_time",
    "sla",
}
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d)")
_ISO = re.compile(r"P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?")


def parse_duration(value: object, *, where: str = "sla") -> timedelta:
    """A duration from config: seconds (number), "2h", "15min", "1h30m", "500ms" or ISO 8601 "PT2H"."""
    if isinstance(value, bool):
        raise HandoffConfigError(f"{where}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if not isinstance(value, str) or not value.strip():
        raise HandoffConfigError(f"{where}: expected a duration like '2h' or 'PT2H', got {value!r}")
    text = value.strip()
    iso = _ISO.fullmatch(text.upper())
    if iso is not None and text.upper() not in ("P", "PT") and any(iso.groups()):
        days, hours, minutes, seconds = (float(part) if part else 0.0 for part in iso.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    compact = text.lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact:
        raise HandoffConfigError(f"{where}: cannot read duration {value!r} (use e.g. '2h', '15min', 'PT2H')")
    return sum((float(number) * _UNITS[unit] for number, unit in parts), timedelta(0))


def _names(value: object, enum: type[EventType] | type[SourceKind] | type[Milestone], where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise HandoffConfigError(f"{where}: expected a name or a list of names, got {value!r}")
    known = {member.value for member in enum}
    names = []
    for item in items:
        if not isinstance(item, str) or item not in known:
            raise HandoffConfigError(f"{where}: unknown value {item!r} (known: {', '.join(sorted(known))})")
        names.append(item)
    return names


def _side(entry: Mapping[str, object], short: str, where: str) -> object:
    long = f"{short}_types"
    if short in entry and long in entry:
        raise HandoffConfigError(f"{where}: give either {short!r} or {long!r}, not both")
    if short not in entry and long not in entry:
        raise HandoffConfigError(f"{where}: missing {short!r} (event types)")
    return entry[short] if short in entry else entry[long]


def parse_handoff(entry: Mapping[str, object], where: str = "handoff") -> Handoff:
    """One handoff from a config mapping; errors name the entry and the offending key."""
    if not isinstance(entry, Mapping):
        raise HandoffConfigError(f"{where}: expected a mapping, got {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HandoffConfigError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    where = f"{where} ({name!r})"
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise HandoffConfigError(f"{where}: unknown key(s) {unknown} (allowed: {', '.join(sorted(_KEYS))})")
    if "sla" not in entry:
        raise HandoffConfigError(f"{where}: missing 'sla'")

    def names(key: str, enum: type[EventType] | type[SourceKind] | type[Milestone]) -> list[str]:
        return _names(entry.get(key, []), enum, f"{where}.{key}")

    from_time = entry.get("from_time", OCCURRED_AT)
    to_time = entry.get("to_time", RECORDED_AT)
    for key, value in (("from_time", from_time), ("to_time", to_time)):
        if value not in TIME_FIELDS:
            raise HandoffConfigError(f"{where}.{key}: must be one of {TIME_FIELDS}, got {value!r}")
    return Handoff(
        name=name.strip(),
        from_types=frozenset(EventType(n) for n in _names(_side(entry, "from", where), EventType, f"{where}.from")),
        from_kinds=frozenset(SourceKind(n) for n in names("from_kinds", SourceKind)),
        from_milestones=frozenset(Milestone(n) for n in names("from_milestones", Milestone)),
        to_types=frozenset(EventType(n) for n in _names(_side(entry, "to", where), EventType, f"{where}.to")),
        to_kinds=frozenset(SourceKind(n) for n in names("to_kinds", SourceKind)),
        to_milestones=frozenset(Milestone(n) for n in names("to_milestones", Milestone)),
        from_time=str(from_time),
        to_time=str(to_time),
        sla=parse_duration(entry["sla"], where=f"{where}.sla"),
    )


def parse_handoffs(entries: Sequence[Mapping[str, object]]) -> tuple[Handoff, ...]:
    """Handoffs from a config file's list; names must be unique. An empty list is an error."""
    if isinstance(entries, str | bytes) or not isinstance(entries, Sequence):
        raise HandoffConfigError(f"handoffs: expected a list of mappings, got {type(entries).__name__}")
    if not entries:
        raise HandoffConfigError("handoffs: the list is empty (omit it to use the defaults)")
    handoffs = tuple(parse_handoff(entry, f"handoffs[{index}]") for index, entry in enumerate(entries))
    seen: set[str] = set()
    for handoff in handoffs:
        if handoff.name in seen:
            raise HandoffConfigError(f"handoffs: name {handoff.name!r} is defined twice")
        seen.add(handoff.name)
    return handoffs
