"""Inventory in the simulator: receipts, adjustments and the periodic stock snapshots.

Each side books movements at the time its adapter will read as occurred_at (design.md 3.4): the
ERP at goods-issue / document creation time, the WMS at the ship event, the receipt, or (X12 947,
a date only) at midnight site-local. A snapshot as of T holds the initial stock plus every
movement of that side with occurred_at <= T, so the ledger (snapshot + later movements) stays
exact, and the only unexplained deltas are the discrepancies put there on purpose:
- a 947 line the ERP never posts, an EPCIS-site count adjustment the ERP never posts,
- a short receipt (the ERP posts the advised quantity, the WMS counts fewer).
Most of them are corrected in the ERP a few days later; the rest stay open to the end.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from simulator.formats import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    EpcisFacts,
    dumps,
    lgtin,
    local,
    sgln,
    snapshot,
    to_dt,
    to_ms,
    zone,
)
from simulator.world import TOPIC_SNAPSHOTS, TOPIC_WMS_EDI, Move, Msg, SimProduct, SimSite, World, X12Doc

_REASONS_DEBIT = ("AU", "07", "AB")  # W1901: damaged in facility, dumped/destroyed, accounting error
_REASONS_CREDIT = ("51", "AB")  # unable-to-locate product located, accounting error
_SNAPSHOT_ANCHOR = (4, 30)  # local wall clock of the first extract of a day: never at midnight


def simulate_stock(world: World) -> None:
    """Receipts and adjustments per site, then the snapshots of both sides."""
    last_ship = max((move.ms for move in world.wms_moves), default=world.start_ms + DAY)
    end = last_ship + 12 * HOUR
    initial: dict[tuple[str, str], int] = {}
    for site in world.sites:
        slots = snapshot_slots(world, site, end)
        rates = _daily_rates(world, site, last_ship)
        for product in world.products:
            initial[(site.site, product.sku)] = _round_up(rates.get(product.sku, 1.0) * 2, product) + 24
        _receipts(world, site, slots, rates, initial, last_ship)
        _adjustments(world, site, slots, end)
    _reconcile(world, end)
    _avoid_negative_stock(world, initial)
    for site in world.sites:
        _snapshots(world, site, [world.start_ms, *snapshot_slots(world, site, end)], initial)
    world.facts["initial_stock_units"] = sum(initial.values())


def snapshot_slots(world: World, site: SimSite, end: int) -> list[int]:
    """Extract times: every snapshot_every from 04:30 site-local on the first day, up to `end`."""
    every = world.config.snapshot_every // timedelta(milliseconds=1)
    first_day = local(world.start_ms, site.place.timezone)
    anchor = _wall(first_day, *_SNAPSHOT_ANCHOR, site.place.timezone)
    slot = anchor + ((world.start_ms - anchor) // every + 1) * every
    slots = []
    while slot <= end:
        slots.append(slot)
        slot += every
    return slots


def _wall(day: datetime, hour: int, minute: int, tz: str) -> int:
    return to_ms(datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone(tz)))


def _round_up(quantity: float, product: SimProduct) -> int:
    case = product.case_qty or 1
    return int(-(-quantity // case) * case)


def _daily_rates(world: World, site: SimSite, last_ship: int) -> dict[str, float]:
    """Units shipped per day per sku at the site over the whole story."""
    days = max(1.0, (last_ship - world.start_ms) / DAY)
    totals: dict[str, float] = defaultdict(float)
    for move in world.wms_moves:
        if move.site == site.site and move.quantity < 0:
            totals[move.sku] -= move.quantity
    return {sku: total / days for sku, total in totals.items()}


def _receipts(
    world: World,
    site: SimSite,
    slots: list[int],
    rates: dict[str, float],
    initial: dict[tuple[str, str], int],
    last_ship: int,
) -> None:
    """Inbound replenishment every 6-12 h: skus under 1.5 days of cover, up to 3.5 days."""
    shipments = sorted((move.ms, move.sku, move.quantity) for move in world.wms_moves if move.site == site.site)
    stock = {product.sku: initial[(site.site, product.sku)] for product in world.products}
    cursor = 0
    moment = world.start_ms + world.between(2 * HOUR, 6 * HOUR)
    while moment < last_ship:
        if site.wms == "x12":
            # No receipt message from the 3PL: the WMS books it shortly before an extract, so
            # the snapshot shows it within the mismatch grace time.
            upcoming = [slot for slot in slots if slot > moment + HOUR]
            if not upcoming:
                break
            moment = upcoming[0] - world.between(15 * MINUTE, 35 * MINUTE)
        while cursor < len(shipments) and shipments[cursor][0] <= moment:
            stock[shipments[cursor][1]] += shipments[cursor][2]
            cursor += 1
        low = sorted(
            (stock[p.sku] / max(rates.get(p.sku, 0.0), 0.1), index, p)
            for index, p in enumerate(world.products)
            if stock[p.sku] < rates.get(p.sku, 0.0) * 1.5
        )[:3]
        if low:
            received = [(p, _round_up(rates.get(p.sku, 0.0) * 3.5 - stock[p.sku], p)) for _, _, p in low]
            _receipt(world, site, moment, received)
            for product, quantity in received:
                stock[product.sku] += quantity
        moment += world.between(6 * HOUR, 12 * HOUR)


def _receipt(world: World, site: SimSite, moment: int, received: list[tuple[SimProduct, int]]) -> None:
    rng = world.rng
    counted = list(received)
    if rng.random() < 0.08:  # short receipt: the ERP posts the advised quantity, the WMS counts less
        product, quantity = counted[0]
        short = world.between(1, max(1, quantity // 20))
        counted[0] = (product, quantity - short)
        world.discrepancies.append((site, product, -short, moment))
        world.facts["short_receipts"] += 1
    world.facts["receipts"] += 1
    if site.wms == "epcis":
        lot = f"S{local(moment, site.place.timezone):%y%j}"
        quantities = [(lgtin(p.gtin, lot), q, "EA") for p, q in counted]
        record = moment + world.between(SECOND, 2 * MINUTE)
        purchase_order = f"45{world.between(0, 99_999_999):08d}"
        facts = EpcisFacts(
            event_id=f"urn:uuid:{world.uuid()}",
            biz_step="receiving",
            disposition="in_progress",
            event_ms=moment,
            record_ms=record,
            timezone=site.place.timezone,
            biz_location=site.epcis_location,
            read_point=sgln(site.location_ref, "RECV1"),
            transactions=[("po", f"urn:epcglobal:cbv:bt:{site.gln}:{purchase_order}")],
            quantities=quantities,
        )
        world.epcis(site, facts, site.site, "GOODS_RECEIVED")
        world.epcis_receipts.append((site, moment, quantities))
        posted = record + world.between(2 * MINUTE, 25 * MINUTE)
    else:
        posted = moment + world.between(MINUTE, 12 * MINUTE)
    for product, quantity in counted:
        world.wms_moves.append(Move(moment, site.site, product.sku, quantity))
    world.material_document(site, posted, [(p, q, "101") for p, q in received])
    for product, quantity in received:
        world.erp_moves.append(Move(posted, site.site, product.sku, quantity))


def _adjustments(world: World, site: SimSite, slots: list[int], end: int) -> None:
    """Night cycle counts reported by 947 (3PL sites) or reflected in the next extract (EPCIS sites)."""
    rng = world.rng
    tz = site.place.timezone
    day = local(world.start_ms, tz) + timedelta(days=1)
    while True:
        midnight = _wall(day, 0, 0, tz)
        if midnight >= end:
            break
        day += timedelta(days=1)
        if site.wms == "x12":
            following = [slot for slot in slots if slot > midnight]
            if rng.random() < 0.8 and following and midnight not in slots:
                latest = min(midnight + 160 * MINUTE, following[0] - 15 * MINUTE)
                if latest > midnight + 30 * MINUTE:
                    _cycle_count_947(world, site, midnight, world.between(midnight + 20 * MINUTE, latest))
        elif rng.random() < 0.8:
            today = [slot for slot in slots if midnight + HOUR < slot < midnight + DAY]
            if today:
                counted = rng.choice(today) - world.between(10 * MINUTE, 35 * MINUTE)
                product, quantity = _counted_difference(world)
                world.wms_moves.append(Move(counted, site.site, product.sku, quantity))
                world.facts["count_adjustments"] += 1
                if rng.random() < 0.15:
                    world.discrepancies.append((site, product, quantity, counted))
                    world.facts["count_adjustments_not_posted"] += 1
                else:
                    posted = counted + world.between(MINUTE, 10 * MINUTE)
                    _post_adjustment(world, site, posted, [(product, quantity)])


def _counted_difference(world: World) -> tuple[SimProduct, int]:
    rng = world.rng
    product = rng.choice(world.products)
    quantity = world.between(1, 8) * (1 if rng.random() < 0.35 else -1)
    return product, quantity


def _cycle_count_947(world: World, site: SimSite, midnight: int, counted: int) -> None:
    """One 947 set (W15 date = the count's local date) with 1-3 W19 lines; one event per W1901."""
    rng = world.rng
    adjustment = f"{site.site}{(counted // DAY) % 100_000:05d}"
    body = [
        f"W15*{to_dt(midnight).astimezone(zone(site.place.timezone)):%Y%m%d}*{adjustment}*DA{adjustment}",
        f"N1*WH*{site.place.name}*91*{site.edi_warehouse_id}",
    ]
    lines: list[tuple[SimProduct, int]] = []
    reasons: list[str] = []
    for _ in range(world.between(1, 3)):
        product, quantity = _counted_difference(world)
        if any(product is known for known, _ in lines):
            continue
        reason = rng.choice(_REASONS_CREDIT if quantity > 0 else _REASONS_DEBIT)
        body.append(f"W19*{reason}*{quantity}*EA**UK*{product.gtin}")
        lines.append((product, quantity))
        reasons.append(reason)
        # W1501 is a date: the adapter reads midnight site-local, so the WMS books it there.
        world.wms_moves.append(Move(midnight, site.site, product.sku, quantity))
    sent = counted + world.between(10 * MINUTE, 50 * MINUTE)
    doc = X12Doc(site.partner, "AW", "947", [body], sent)
    events = tuple(("INVENTORY_ADJUSTED", f"947|{adjustment}|{reason}") for reason in dict.fromkeys(reasons))
    received = sent + world.between(2 * SECOND, 90 * SECOND) + world.lag()
    world.add(Msg(TOPIC_WMS_EDI, site.partner.sender_id, received, events=events, x12=doc))
    world.facts["adjustments_947"] += len(lines)
    posted_lines = []
    for product, quantity in lines:
        if rng.random() < 0.15:
            world.discrepancies.append((site, product, quantity, counted))
            world.facts["adjustments_947_not_posted"] += 1  # a real discrepancy, on purpose
        else:
            posted_lines.append((product, quantity))
    if posted_lines:
        _post_adjustment(world, site, sent + world.between(6 * MINUTE, 45 * MINUTE), posted_lines)


def _reconcile(world: World, end: int) -> None:
    """Most discrepancies are found and corrected in the ERP after 12 h - 4 days (701 / 702)."""
    rng = world.rng
    for site, product, difference, moment in world.discrepancies:
        if rng.random() < 0.7:
            corrected = moment + world.between(12 * HOUR, 96 * HOUR)
            if corrected < end:
                _post_adjustment(world, site, corrected, [(product, difference)])
                world.facts["discrepancies_reconciled"] += 1


def _post_adjustment(world: World, site: SimSite, posted: int, lines: list[tuple[SimProduct, int]]) -> None:
    """701 (+) / 702 (-) in one material document."""
    items = [(product, abs(quantity), "701" if quantity > 0 else "702") for product, quantity in lines]
    world.material_document(site, posted, items)
    for product, quantity in lines:
        world.erp_moves.append(Move(posted, site.site, product.sku, quantity))


def _avoid_negative_stock(world: World, initial: dict[tuple[str, str], int]) -> None:
    """Raise the opening stock where either side would dip below zero."""
    for moves in (world.erp_moves, world.wms_moves):
        running: dict[tuple[str, str], int] = defaultdict(int)
        lowest: dict[tuple[str, str], int] = defaultdict(int)
        for move in sorted(moves, key=lambda m: m.ms):
            key = (move.site, move.sku)
            running[key] += move.quantity
            lowest[key] = min(lowest[key], running[key])
        for key, low in lowest.items():
            if initial[key] + low < 0:
                initial[key] = -low + 12


def _snapshots(world: World, site: SimSite, slots: list[int], initial: dict[tuple[str, str], int]) -> None:
    for system, moves, source in (
        ("erp", world.erp_moves, "S4HCLNT100"),
        ("wms", world.wms_moves, site.wms_system),
    ):
        ordered = sorted((m.ms, m.sku, m.quantity) for m in moves if m.site == site.site)
        stock = {product.sku: initial[(site.site, product.sku)] for product in world.products}
        cursor = 0
        for slot in slots:
            while cursor < len(ordered) and ordered[cursor][0] <= slot:
                stock[ordered[cursor][1]] += ordered[cursor][2]
                cursor += 1
            snapshot_id = f"{system}-{site.site}-{to_dt(slot):%Y%m%dT%H%M%SZ}"
            document = snapshot(snapshot_id, system, source, slot, site.site, sorted(stock.items()))
            received = slot + world.between(MINUTE, 12 * MINUTE) + world.lag()
            value = dumps(document)
            world.add(
                Msg(TOPIC_SNAPSHOTS, site.site, received, value, (("INVENTORY_SNAPSHOT", f"snap:{snapshot_id}"),))
            )
            world.facts["snapshots"] += 1
