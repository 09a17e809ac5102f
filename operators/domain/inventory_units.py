"""Building blocks of the inventory ledger (design.md 3.4): units of measure, tolerances, the
output rows and the ledger's keyed state. The state machine itself is `operators.domain.inventory`.

Every state class below is a plain dataclass of dicts, sets and tuples (no pydantic, no events)
so that the flow can snapshot it cheaply; each says when its entries are discarded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import msgspec

from operators.domain.alerts import (
    INVENTORY_MISMATCH,
    OPEN,
    RESOLVED,
    WARNING,
    Alert,
    alert_id,
    details_json,
    iso,
    with_alert,
)
from operators.master import MasterData
from operators.model import Line

ERP = "erp"
WMS = "wms"
SIDES = (ERP, WMS)
# Quantities are rounded to this many decimals on output so that float noise (0.1 + 0.2 - 0.3)
# never reads as drift; every sum is math.fsum, which does not depend on the order of its terms.
DECIMALS = 9

Quantities = dict[str, float]  # position key ("sku\x1fuom", see position_key) -> quantity


# -- units of measure ---------------------------------------------------------------------------


def normalize_uom(uom: str) -> str:
    """Unit codes compare case-insensitively (X12 `EA`, UN/ECE Rec 20 `KGM`, SAP `PC` / `pc`)."""
    return uom.strip().upper()


def base_uom(master: MasterData, sku: str) -> str | None:
    """The sku's base unit from the product master; None for an unknown sku (or one without a unit)."""
    product = master.product(sku)
    if product is None or not product.uom.strip():
        return None
    return normalize_uom(product.uom)


def in_position_unit(line: Line, master: MasterData) -> tuple[str, float]:
    """(sku, uom) of the position a line belongs to, and its quantity in that position's unit.

    The base unit when the line is in it or the master gives a factor for the line's unit
    (Product.conversions: one alternative unit = factor base units); otherwise the line's own
    unit, which makes a separate position flagged unit_mismatch: never summed silently.
    An unknown sku keeps the line's unit as is.
    """
    uom = normalize_uom(line.uom)
    base = base_uom(master, line.sku)
    if base is None or uom == base:
        return position_key(line.sku, uom), line.quantity
    product = master.product(line.sku)
    for alternative, factor in product.conversions if product else ():
        if normalize_uom(alternative) == uom:
            return position_key(line.sku, base), line.quantity * factor
    return position_key(line.sku, uom), line.quantity


def is_unit_mismatch(master: MasterData, sku: str, uom: str) -> bool:
    base = base_uom(master, sku)
    return base is not None and uom != base


def line_quantities(lines: Iterable[Line], master: MasterData) -> Quantities:
    """Lines summed per position (an event may list one sku twice)."""
    parts: dict[str, list[float]] = {}
    for line in lines:
        key, quantity = in_position_unit(line, master)
        parts.setdefault(key, []).append(quantity)
    return {key: math.fsum(values) for key, values in parts.items()}


def tidy(quantity: float) -> float:
    """Rounded for output; `+ 0.0` turns -0.0 into 0.0."""
    if quantity.is_integer():
        # Most quantities are whole: nothing to round, and round(x, n) costs a trip through a
        # decimal string (dtoa and strtod).
        return quantity + 0.0
    return round(quantity, DECIMALS) + 0.0


# -- configuration ------------------------------------------------------------------------------

_T = TypeVar("_T")


def _most_specific(
    site: str,
    sku: str,
    default: _T,
    by_site: Mapping[str, _T],
    by_sku: Mapping[str, _T],
    by_site_sku: Mapping[tuple[str, str], _T],
) -> _T:
    # (site, sku) beats sku beats site: a tolerance is in the sku's unit, so the sku is the
    # more natural override; a site override is for a whole warehouse's habits.
    if (site, sku) in by_site_sku:
        return by_site_sku[(site, sku)]
    if sku in by_sku:
        return by_sku[sku]
    return by_site.get(site, default)


@dataclass(frozen=True)
class ToleranceConfig:
    """|unexplained_delta| allowed per position, in the sku's unit (design.md 3.4: default 0)."""

    default: float = 0.0
    by_site: Mapping[str, float] = field(default_factory=dict)
    by_sku: Mapping[str, float] = field(default_factory=dict)
    by_site_sku: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = [self.default, *self.by_site.values(), *self.by_sku.values(), *self.by_site_sku.values()]
        if any(not value >= 0 for value in values):  # `not >=` also catches NaN
            raise ValueError(f"inventory tolerance: must be >= 0, got {values}")

    def for_position(self, site: str, sku: str) -> float:
        return _most_specific(site, sku, self.default, self.by_site, self.by_sku, self.by_site_sku)


@dataclass(frozen=True)
class GraceConfig:
    """How long (of W) a position may stay out of tolerance before the alert opens (default 1 h)."""

    default: timedelta = timedelta(hours=1)
    by_site: Mapping[str, timedelta] = field(default_factory=dict)
    by_sku: Mapping[str, timedelta] = field(default_factory=dict)
    by_site_sku: Mapping[tuple[str, str], timedelta] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = [self.default, *self.by_site.values(), *self.by_sku.values(), *self.by_site_sku.values()]
        if any(value < timedelta(0) for value in values):
            raise ValueError(f"inventory grace: must be >= 0, got {values}")

    def for_position(self, site: str, sku: str) -> timedelta:
        return _most_specific(site, sku, self.default, self.by_site, self.by_sku, self.by_site_sku)


# -- output rows --------------------------------------------------------------------------------


class InventoryPosition(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One row of `inventory_positions` (ReplacingMergeTree(version) keyed by site, sku, uom).
    Times are epoch ms."""

    site: str
    sku: str
    uom: str
    erp_qty: float
    wms_qty: float
    delta: float  # wms_qty - erp_qty
    in_flight_qty: float  # dispatched by the WMS, goods issue not yet posted in the ERP (>= 0)
    unexplained_delta: float  # delta - expected_delta, expected_delta = -in_flight_qty
    erp_as_of: int | None  # as_of of the ERP snapshot the position starts from
    wms_as_of: int | None
    unit_mismatch: bool  # quantities in a unit the product master cannot convert to the base unit
    version: int


class InventoryDelta(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One row of `inventory_deltas`: the position as it became at `at` (the change's event time)."""

    site: str
    sku: str
    uom: str
    erp_qty: float
    wms_qty: float
    delta: float
    in_flight_qty: float
    unexplained_delta: float
    erp_as_of: int | None
    wms_as_of: int | None
    unit_mismatch: bool
    version: int
    at: int


def mismatch_entity(site: str, sku: str, uom: str, apart: bool) -> str:
    """`site/sku` for the position in the sku's base unit. Any other position (a unit-mismatch one,
    or one of a sku whose base unit the master does not know, which may have positions in several
    units) is out of tolerance on its own, so its alert has its own entity (and id): `site/sku/uom`."""
    return f"{site}/{sku}/{uom}" if apart else f"{site}/{sku}"


def delta_row(row: InventoryPosition, at: int) -> InventoryDelta:
    return InventoryDelta(
        row.site,
        row.sku,
        row.uom,
        row.erp_qty,
        row.wms_qty,
        row.delta,
        row.in_flight_qty,
        row.unexplained_delta,
        row.erp_as_of,
        row.wms_as_of,
        row.unit_mismatch,
        row.version,
        at,
    )


def _details(row: InventoryPosition, tolerance: float, since: int | None) -> str:
    return details_json(
        uom=row.uom,
        unexplained_delta=row.unexplained_delta,
        erp_qty=row.erp_qty,
        wms_qty=row.wms_qty,
        in_flight_qty=row.in_flight_qty,
        tolerance=tolerance,
        unit_mismatch=row.unit_mismatch,
        out_of_tolerance_since=iso(since),
    )


def open_alert(
    row: InventoryPosition, due_at: int, since: int | None, tolerance: float, previous: Alert | None, apart: bool
) -> Alert:
    """The open version of a position's alert. opened_at = due_at (since + grace), not W: the same
    events give the same alert however often the flow advances the watermark. Reopening after a
    resolution continues the versions of the same alert_id (3 = open again, 4 = resolved ...)."""
    entity = mismatch_entity(row.site, row.sku, row.uom, apart)
    return Alert(
        alert_id=alert_id(INVENTORY_MISMATCH, entity),
        rule=INVENTORY_MISMATCH,
        handoff="",
        severity=WARNING,
        entity=entity,
        delivery_id="",
        site=row.site,
        sku=row.sku,
        state=OPEN,
        due_at=due_at,
        opened_at=due_at,
        resolved_at=None,
        details=_details(row, tolerance, since),
        version=(previous.version if previous else 0) + 1,
    )


def resolve_alert(alert: Alert, row: InventoryPosition, at: int, tolerance: float) -> Alert:
    """resolved_at = event time of the change that brought the position back within tolerance
    (deterministic, unlike the watermark's cadence), but never before the alert opened: a late
    event may be dated earlier."""
    return with_alert(
        alert,
        state=RESOLVED,
        resolved_at=max(at, alert.opened_at),
        details=_details(row, tolerance, None),
        version=alert.version + 1,
    )


# -- keyed state --------------------------------------------------------------------------------


class SideLedger(msgspec.Struct, gc=False, array_like=True):
    """One side (erp / wms) of one position: the movements after that side's latest snapshot.

    `movements`: movement id (the event_id, or `goods_issue:<delivery>` for a delivery's goods
    issue) -> (occurred ms, signed quantity). Discarded when: a snapshot of the same site and
    side with as_of >= occurred_at is kept (the snapshot contains it), or, without snapshots,
    `retention` of W after occurred_at, when it is folded (it stays in `total`, leaves the dict).

    `total`: the exact sum of the movements and of those folded, as non-overlapping float
    partials (Shewchuk; math.fsum's own representation). A movement costs a constant to add or
    take back however many the position holds (a 10,000-event delivery is linear, not
    quadratic), and `math.fsum(total)` is the correctly rounded sum: the same whatever the order
    of the movements or the moment of a fold. Quantities are bounded (operators.ingest.sanity),
    so no partial overflows.
    """

    movements: dict[str, tuple[int, float]] = {}
    total: list[float] = []

    def put(self, movement_id: str, occurred_ms: int, quantity: float) -> None:
        previous = self.movements.get(movement_id)
        if previous is not None:
            exact_add(self.total, -previous[1])
        self.movements[movement_id] = (occurred_ms, quantity)
        exact_add(self.total, quantity)

    def take_back(self, movement_id: str) -> bool:
        """Remove a movement (retracted, or a goods issue replaced); False if it is not here."""
        previous = self.movements.pop(movement_id, None)
        if previous is None:
            return False
        exact_add(self.total, -previous[1])
        return True

    def fold(self, movement_id: str) -> None:
        """Forget a movement's id and time; its quantity stays in the total."""
        del self.movements[movement_id]

    def restart_after(self, as_of: int) -> None:
        """A snapshot as of `as_of` holds every movement up to it and every folded one."""
        self.movements = {mid: move for mid, move in self.movements.items() if move[0] > as_of}
        self.total = []
        for _, quantity in self.movements.values():
            exact_add(self.total, quantity)

    def quantity(self, base: float) -> float:
        return tidy(math.fsum([base, *self.total])) if self.total else tidy(base)


def exact_add(partials: list[float], value: float) -> None:
    """Add `value` to the exact sum held as non-overlapping partials (the msum recipe behind
    math.fsum: each step splits x + y into the rounded sum and its exact error)."""
    x = value
    kept = 0
    for partial in partials:
        y = partial
        if abs(x) < abs(y):
            x, y = y, x
        high = x + y
        low = y - (high - x)
        if low:
            partials[kept] = low
            kept += 1
        x = high
    partials[kept:] = [x]


class PositionState(msgspec.Struct, gc=False, array_like=True):
    """One (site, sku, uom) position. Discarded when: never while the flow runs; positions are
    bounded by sites x skus (x the few units without a conversion) and their rows must keep
    their version. What grows inside is bounded: see SideLedger and `in_flight`.
    """

    unit_mismatch: bool
    erp: SideLedger = msgspec.field(default_factory=SideLedger)
    wms: SideLedger = msgspec.field(default_factory=SideLedger)
    # "<delivery>/<dispatch event>" -> quantity dispatched, goods issue not posted yet.
    # Discarded when: the lifecycle sends InFlight(-1) (goods issue, retraction, expiry).
    in_flight: dict[str, float] = {}
    in_flight_total: list[float] = []  # their exact sum (SideLedger.total)
    version: int = 0  # changes of its content so far
    content: tuple[float, float, float, int | None, int | None] | None = None  # as last changed
    out_since: int | None = None  # event time of the change that pushed it out of tolerance
    alert: Alert | None = None  # the latest alert row of this position (open or resolved)

    def side(self, name: str) -> SideLedger:
        return self.erp if name == ERP else self.wms

    def fly(self, entry: str, quantity: float) -> None:
        previous = self.in_flight.get(entry)
        if previous is not None:
            exact_add(self.in_flight_total, -previous)
        self.in_flight[entry] = quantity
        exact_add(self.in_flight_total, quantity)

    def land(self, entry: str) -> None:
        previous = self.in_flight.pop(entry, None)
        if previous is not None:
            exact_add(self.in_flight_total, -previous)


class SnapshotState(msgspec.Struct, gc=False, array_like=True):
    """The latest kept snapshot of one side of one site. Discarded when: a newer one is kept."""

    snapshot_id: str
    as_of: int
    quantities: dict[str, float]  # "sku\x1fuom" -> quantity


class SiteState(msgspec.Struct, gc=False, array_like=True):
    """Everything of one site. Discarded when: never (a site is configuration-sized)."""

    positions: dict[str, PositionState] = {}  # "sku\x1fuom" -> position
    snapshots: dict[str, SnapshotState] = {}  # side -> latest kept
    # side -> movements up to here may have been folded: an older snapshot can't be applied.
    floor: dict[str, int] = {}
    # delivery_id -> position keys its goods-issue movement is in. Discarded when: it is taken back.
    issues: dict[str, list[str]] = {}


class InventoryState(msgspec.Struct, gc=False):
    """The ledger's state for one key bucket (a set of sites)."""

    sites: dict[str, SiteState] = {}
    # retracted event_id -> when (ms); a movement arriving after its retraction is not applied.
    # Discarded when: `retention` of W later.
    retracted: dict[str, int] = {}
    # "site\x1fsku\x1fuom" -> when the alert is due (out_since + grace). Discarded when: the alert
    # opens or the position is back within tolerance.
    pending_alerts: dict[str, int] = {}
    next_housekeeping: int | None = None
    now: int = -(2**62)


def position_key(sku: str, uom: str) -> str:
    return f"{sku}\x1f{uom}"


def split_key(key: str) -> tuple[str, str]:
    sku, _, uom = key.partition("\x1f")
    return sku, uom


def position_row(site_state: SiteState, site: str, key: str, position: PositionState) -> InventoryPosition:
    """The current row of a position: the latest snapshot of each side + the movements after it."""
    snapshots = site_state.snapshots
    erp_snapshot, wms_snapshot = snapshots.get(ERP), snapshots.get(WMS)
    erp_qty = _side_quantity(erp_snapshot, position.erp, key)
    wms_qty = _side_quantity(wms_snapshot, position.wms, key)
    in_flight = tidy(math.fsum(position.in_flight_total)) if position.in_flight else 0.0
    delta = tidy(wms_qty - erp_qty)
    sku, uom = split_key(key)
    return InventoryPosition(
        site=site,
        sku=sku,
        uom=uom,
        erp_qty=erp_qty,
        wms_qty=wms_qty,
        delta=delta,
        in_flight_qty=in_flight,
        unexplained_delta=tidy(delta + in_flight),  # delta - expected_delta, expected = -in_flight
        erp_as_of=None if erp_snapshot is None else erp_snapshot.as_of,
        wms_as_of=None if wms_snapshot is None else wms_snapshot.as_of,
        unit_mismatch=position.unit_mismatch,
        version=position.version,
    )


def _side_quantity(snapshot: SnapshotState | None, ledger: SideLedger, key: str) -> float:
    return ledger.quantity(0.0 if snapshot is None else snapshot.quantities.get(key, 0.0))
