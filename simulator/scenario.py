"""The built-in simulator: a coherent, seeded logistics scenario in all six raw formats.

`simulate(SimConfig(...))` returns every raw message of the scenario (sorted by when it reaches
Kafka), the master data CSVs that map its ids, and `Expected`: the exact accounting the pipeline
must report (design.md section 4), known because the simulator injected every duplicate,
malformed and ignorable message itself. Pure: no clock, no I/O, all randomness from
`random.Random(seed)`; the same config gives byte-identical records.

The story (simulator.story, sim_carriers, sim_stock): orders -> deliveries -> WMS pick/pack/ship
(EPCIS or X12 945) -> SAP goods issue (sometimes late, a few never) -> carrier status (X12 214 or
EasyPost) -> invoice; receipts, adjustments (SAP 101/701/702, X12 947, EPCIS receiving) and
ERP/WMS stock snapshots consistent with all of it. Then noise: redeliveries, X12 retransmissions
with new control numbers, EPCIS re-exports, malformed copies, ignorable messages, and messages on
a topic no adapter reads.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from simulator.formats import (
    HOUR,
    MINUTE,
    SECOND,
    EpcisFacts,
    dumps,
    epcis_document,
    iso_ms,
    sgln,
    to_dt,
    x12_interchange,
)
from simulator.stock import simulate_stock
from simulator.story import DELIVERY_CHANGED, simulate_deliveries
from simulator.world import (
    DEAD,
    EVENTS,
    IGNORED,
    TOPIC_CARRIER_EDI,
    TOPIC_EPCIS,
    TOPIC_SAP,
    TOPIC_SNAPSHOTS,
    TOPIC_UNKNOWN,
    TOPIC_WEBHOOKS,
    TOPIC_WMS_EDI,
    TOPICS,
    Msg,
    World,
    X12Doc,
    products_csv,
    sites_csv,
)

__all__ = ["TOPICS", "Expected", "Scenario", "SimConfig", "SimRecord", "iter_records", "simulate"]

OUTCOMES = ("raw_in", "normalized", "duplicates", "dead_lettered", "ignored")
# Malformed copies per topic: how each is broken, and the dead-letter reason an adapter gives it.
_CORRUPTIONS = {
    TOPIC_SAP: ("truncate", "missing_id", "latin1"),
    TOPIC_EPCIS: ("truncate", "latin1"),
    TOPIC_WMS_EDI: ("fragment", "latin1"),
    TOPIC_CARRIER_EDI: ("fragment", "latin1"),
    TOPIC_WEBHOOKS: ("truncate", "latin1"),
    TOPIC_SNAPSHOTS: ("abc_quantity", "truncate"),
}
_REASONS = {
    "truncate": "parse_error",  # JSON cut off mid-document
    "fragment": "parse_error",  # the middle of an interchange: no ISA, GS or ST
    "latin1": "decode_error",  # an ISO-8859-1 byte in a name
    "missing_id": "schema_error",  # a CloudEvent without `id`
    "abc_quantity": "schema_error",  # a snapshot line with quantity "abc"
}


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Rates are per story message (duplicates, malformed copies) or a share
    of the story's message count (ignorable messages)."""

    seed: int = 7
    deliveries: int = 200
    start: datetime = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    sites: int = 3
    skus: int = 12
    duplicate_rate: float = 0.03
    malformed_rate: float = 0.01
    ignorable_rate: float = 0.02
    snapshot_every: timedelta = timedelta(hours=6)
    deliveries_per_day: float = 72.0
    gi_late_rate: float = 0.07  # goods issue posted 1-8 h after the WMS shipped
    gi_missing_rate: float = 0.02  # goods issue never posted
    unsupported_messages: int | None = None  # on wms.unknown_feed; None = max(3, deliveries // 40)

    def __post_init__(self) -> None:
        if self.start.utcoffset() is None:
            raise ValueError(f"SimConfig.start must be timezone-aware, got {self.start!r}")
        if self.deliveries < 0 or self.sites < 1 or self.skus < 1:
            raise ValueError(f"SimConfig: deliveries >= 0, sites >= 1, skus >= 1 (got {self})")
        rates = (self.duplicate_rate, self.malformed_rate, self.ignorable_rate, self.gi_late_rate, self.gi_missing_rate)
        if not all(0.0 <= rate <= 1.0 for rate in rates) or self.gi_late_rate + self.gi_missing_rate > 1.0:
            raise ValueError(f"SimConfig: rates must be within [0, 1] (got {self})")
        if self.snapshot_every <= timedelta(0) or self.deliveries_per_day <= 0:
            raise ValueError(f"SimConfig: snapshot_every and deliveries_per_day must be positive (got {self})")


@dataclass(frozen=True)
class SimRecord:
    """One raw message as a producer hands it to Kafka (design.md 2.1)."""

    topic: str
    key: str | None
    received_at: datetime
    value: bytes


@dataclass(frozen=True)
class Expected:
    """The accounting the pipeline must report for the scenario, exactly.

    per_topic: topic -> {raw_in, normalized, duplicates, dead_lettered, ignored} (design.md 4).
    dead_letter_reasons: reason -> count. events_by_type: distinct canonical events per type.
    inventory_unexplained: site -> sku -> final unexplained delta (wms - erp + in-flight), only
    the discrepancies put there on purpose. facts: story counts (deliveries, late syncs, SLA
    breaches as the scenario's truth, ...), for dashboards and tests.
    """

    per_topic: dict[str, dict[str, int]]
    dead_letter_reasons: dict[str, int]
    events_by_type: dict[str, int]
    inventory_unexplained: dict[str, dict[str, int]] = field(default_factory=dict)
    facts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    records: list[SimRecord]  # sorted by received_at; ties keep generation order
    products_csv: str
    sites_csv: str
    expected: Expected


def simulate(config: SimConfig) -> Scenario:
    """The whole scenario for `config`: deterministic in `config` (byte-identical records)."""
    # A large run holds about a million long-lived objects and makes no reference cycles: the
    # cyclic collector would only rescan them (a quarter of the run time), so it pauses meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _simulate(config)
    finally:
        if collecting:
            gc.enable()


def _simulate(config: SimConfig) -> Scenario:
    world = World.create(config)
    simulate_deliveries(world)
    simulate_stock(world)
    story = list(world.msgs)
    _ignorable(world, round(config.ignorable_rate * len(story)))
    _unsupported(world, config.unsupported_messages)
    _noise(world, story)
    _render(world)
    world.msgs.sort(key=lambda msg: msg.received_ms)
    per_topic, reasons, by_type = _account(world.msgs)
    expected = Expected(
        per_topic=per_topic,
        dead_letter_reasons=reasons,
        events_by_type=by_type,
        inventory_unexplained=_unexplained(world),
        facts=dict(sorted(world.facts.items())),
    )
    records = [SimRecord(msg.topic, msg.key, to_dt(msg.received_ms), msg.value) for msg in world.msgs]
    return Scenario(records, products_csv(world.products), sites_csv(world.sites), expected)


def iter_records(config: SimConfig) -> Iterator[SimRecord]:
    """The records of `simulate(config)` one by one. Not a streaming generator: the exact
    accounting needs the whole scenario, so memory is that of `simulate`."""
    yield from simulate(config).records


def _ignorable(world: World, count: int) -> None:
    """Valid messages without logistics meaning: BusinessPartner.Changed, OutboundDelivery.Changed
    with goods-movement status A / B, EPCIS bizStep `storing` (design.md 2.3: ignored)."""
    rng = world.rng
    end = max(world.end_ms, world.start_ms + HOUR)
    for _ in range(count):
        roll = rng.random()
        if roll < 0.4 and world.deliveries:
            delivery = rng.choice(world.deliveries)
            moment = world.between(delivery["_release_ms"] + MINUTE, delivery["_ship_ms"])
            data = {key: value for key, value in delivery.items() if not key.startswith("_")}
            data["OverallGoodsMovementStatus"] = rng.choice("AB")
            world.sap(DELIVERY_CHANGED, None, moment, data, data["OutboundDelivery"])
        elif roll < 0.7 and world.epcis_receipts:
            site, received, quantities = rng.choice(world.epcis_receipts)
            moment = received + world.between(10 * MINUTE, 3 * HOUR)
            facts = EpcisFacts(
                event_id=f"urn:uuid:{world.uuid()}",
                biz_step="storing",  # putaway: stock moves inside the site only
                disposition="sellable_accessible",
                event_ms=moment,
                record_ms=moment + world.between(SECOND, MINUTE),
                timezone=site.place.timezone,
                biz_location=site.epcis_location,
                read_point=sgln(site.location_ref, "STOR1"),
                transactions=(),
                quantities=quantities,
            )
            world.epcis(site, facts, site.site, None)
        else:
            moment = world.between(world.start_ms, end)
            partner = {"BusinessPartner": f"{1_000_000 + rng.randrange(10_000)}"}  # thin notification
            world.sap("sap.s4.beh.businesspartner.v1.BusinessPartner.Changed.v1", None, moment, partner, "BP")
        world.facts["ignorable_messages"] += 1


def _unsupported(world: World, configured: int | None) -> None:
    """A feed nobody mapped yet (labor productivity): dead letters `unsupported`."""
    rng = world.rng
    count = configured if configured is not None else max(3, world.config.deliveries // 40)
    end = max(world.end_ms, world.start_ms + HOUR)
    for _ in range(count):
        site = rng.choice(world.sites)
        moment = world.between(world.start_ms, end)
        payload = {
            "feed": "labor.productivity",
            "site": site.site,
            "shift": rng.choice("ABC"),
            "as_of": iso_ms(moment),
            "picks_per_hour": round(rng.uniform(60, 160), 1),
            "headcount": world.between(4, 40),
        }
        world.add(Msg(TOPIC_UNKNOWN, None, moment + world.lag(), dumps(payload), outcome=DEAD, reason="unsupported"))


def _noise(world: World, story: list[Msg]) -> None:
    rng = world.rng
    config = world.config
    for msg in story:
        if msg.outcome != EVENTS:
            continue
        if rng.random() < config.duplicate_rate:
            world.add(_redelivery(world, msg))
        if rng.random() < config.malformed_rate:
            kind = rng.choice(_CORRUPTIONS[msg.topic])
            received = max(world.start_ms, msg.received_ms + world.between(-2 * MINUTE, 2 * MINUTE))
            corrupted = Msg(msg.topic, msg.key, received, outcome=DEAD, reason=_REASONS[kind])
            corrupted.copy_of, corrupted.corrupt, corrupted.corrupt_at = msg, kind, rng.random()
            world.add(corrupted)
            world.facts[f"malformed_{kind}"] += 1


def _redelivery(world: World, msg: Msg) -> Msg:
    """The same facts again: an X12 retransmission with new control numbers, an EPCIS re-export
    in a new document, or (else) the very same bytes redelivered."""
    rng = world.rng
    if msg.x12 is not None and rng.random() < 0.5:
        doc = msg.x12
        world.facts["x12_retransmissions"] += 1
        retransmitted = X12Doc(doc.partner, doc.functional_id, doc.set_id, doc.sets, doc.sent_ms)
        received = msg.received_ms + world.between(10 * MINUTE, 6 * HOUR)
        return Msg(msg.topic, msg.key, received, events=msg.events, x12=retransmitted)
    if msg.epcis_event is not None and rng.random() < 0.4:
        world.facts["epcis_reexports"] += 1
        creation = msg.received_ms + world.between(10 * MINUTE, 6 * HOUR)
        value = epcis_document(msg.epcis_event, creation, msg.epcis_sender, bare=False)
        return Msg(msg.topic, msg.key, creation + world.lag(), value, msg.events)
    world.facts["exact_redeliveries"] += 1
    copy = Msg(msg.topic, msg.key, msg.received_ms + world.between(SECOND, 3 * HOUR), events=msg.events)
    copy.copy_of = msg
    return copy


def _render(world: World) -> None:
    """X12 control numbers per sender in arrival order, then copies, then corruptions."""
    by_sender: dict[str, list[tuple[Msg, X12Doc]]] = {}
    for msg in world.msgs:
        if msg.x12 is not None:
            by_sender.setdefault(msg.x12.partner.sender_id, []).append((msg, msg.x12))
    for number, pending in enumerate(by_sender.values()):
        control = 1_000 * (number + 1)
        for msg, doc in sorted(pending, key=lambda item: item[0].received_ms):
            control += 1
            msg.value = x12_interchange(doc.partner, doc.functional_id, doc.set_id, doc.sets, doc.sent_ms, control)
    for msg in world.msgs:
        if msg.copy_of is not None:
            msg.value = msg.copy_of.value
        if msg.corrupt:
            msg.value = _corrupt(msg.value, msg.corrupt, msg.corrupt_at)


def _corrupt(value: bytes, kind: str, at: float) -> bytes:
    if kind == "truncate":
        return value[: max(1, int(len(value) * (0.15 + 0.7 * at)))]
    if kind == "latin1":
        if value.startswith(b"{"):
            index = value.find(b'":"') + 3
        else:
            index = value.find(b"N1*") + 6  # inside the N1 name: `N1*WH*Newark DC` -> `N\xe9ewark`
        return value[:index] + b"\xe9" + value[index:]
    if kind == "missing_id":
        document = orjson.loads(value)
        del document["id"]
        return dumps(document)
    if kind == "abc_quantity":
        document = orjson.loads(value)
        document["lines"][0]["quantity"] = "abc"
        return dumps(document)
    # fragment: from inside the first segment after ST, no envelope left to read.
    starts = [value.find(tag) for tag in (b"B10*", b"W06*", b"W15*")]
    begin = min(start for start in starts if start >= 0) + 4
    return value[begin : begin + max(20, int((len(value) - begin) * (0.3 + 0.5 * at)))]


def _account(msgs: list[Msg]) -> tuple[dict[str, dict[str, int]], dict[str, int], dict[str, int]]:
    """Replays design.md section 4 over the arrival order: first sighting of an event wins."""
    per_topic = {topic: dict.fromkeys(OUTCOMES, 0) for topic in TOPICS}
    reasons: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    seen: set[str] = set()
    for msg in msgs:
        counts = per_topic[msg.topic]
        counts["raw_in"] += 1
        if msg.outcome == DEAD:
            counts["dead_lettered"] += 1
            reasons[msg.reason] += 1
        elif msg.outcome == IGNORED:
            counts["ignored"] += 1
        else:
            new = False
            for event_type, identity in msg.events:
                if identity not in seen:
                    seen.add(identity)
                    by_type[event_type] += 1
                    new = True
            counts["normalized" if new else "duplicates"] += 1
    return per_topic, dict(sorted(reasons.items())), dict(sorted(by_type.items()))


def _unexplained(world: World) -> dict[str, dict[str, int]]:
    """Final wms - erp + in-flight per (site, sku): zero except the discrepancies on purpose."""
    delta: Counter[tuple[str, str]] = Counter()
    for move in world.wms_moves:
        delta[(move.site, move.sku)] += move.quantity
    for move in world.erp_moves:
        delta[(move.site, move.sku)] -= move.quantity
    for key, quantity in world.in_flight.items():
        delta[key] += quantity
    result: dict[str, dict[str, int]] = {}
    for (site, sku), value in sorted(delta.items()):
        if value:
            result.setdefault(site, {})[sku] = value
    return result
