"""Recovery snapshots (flows.snapshots, flows.stages): every state of every stage logic
round-trips through msgpack to an equal state that goes on exactly as the original, and a
snapshot of another kind or schema version is refused."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from flows.packets import DedupPacket, StagePacket, TallyPacket
from flows.snapshots import SCHEMA_VERSION, Envelope, SnapshotError, freeze, thaw
from flows.stages import DedupLogic, StageLogic, TallyLogic
from flows.topology import LIFECYCLE, UPSTREAM, Topology
from operators.domain.arbiter import ArbiterLogic, ArbiterState
from operators.domain.inventory import InventoryLogic
from operators.domain.inventory_units import InventoryState
from operators.domain.items import Candidate, DomainItem, InFlight, Lookup, Pending, Teach
from operators.domain.lifecycle import LifecycleLogic, LifecycleState
from operators.domain.resolution import ResolutionLogic, ResolutionState
from operators.domain.watermark import OrderKey
from operators.ingest.accounting import (
    IGNORED,
    Claim,
    DedupState,
    EventDedup,
    Expect,
    Finished,
    Judged,
    SourceTally,
    TallyState,
)
from operators.master import MasterData, Product, Site
from operators.model import CanonicalEvent, EventType, Line, Milestone
from tests.operators.eventkit import Driver, Keyed, at, carrier, erp, key_of, ms, released, wms

DAY_MS = 86_400_000
E, M = EventType, Milestone
SITE = "1710"
MASTER = MasterData(products=(Product("MAT1", "", "EA"),), sites=(Site(SITE, timezone="Europe/Berlin"),))
LINES = (Line("MAT1", 5.0, "EA"),)
STATE_MODULES = [
    "operators.domain.resolution",
    "operators.domain.arbiter",
    "operators.domain.lifecycle",
    "operators.domain.delivery_status",
    "operators.domain.handoff_tracks",
    "operators.domain.delivery_goods",
    "operators.domain.inventory_units",
    "operators.ingest.accounting",
]


def scan(event_id: str, tracking: str | None, minute: float) -> CanonicalEvent:
    return carrier(M.IN_TRANSIT, event_id, delivery_id=None, tracking_number=tracking, received=at(minute))


def lined(event: CanonicalEvent) -> CanonicalEvent:
    return msgspec.structs.replace(event, lines=LINES, site=SITE)


def stock_snapshot() -> CanonicalEvent:
    """The WMS's stock of the site at T0 (the snapshot adapter's event, kind aside)."""
    made = erp(E.INVENTORY_SNAPSHOT, "snapshot:w0", delivery_id=None, site=SITE, occurred=at(0))
    return msgspec.structs.replace(made, attributes={"system": "wms"}, lines=(Line("MAT1", 9.0, "EA"),))


# Each case: a logic built from a state (None: fresh), what brings it to a well-filled state, and
# what comes next (inputs, then a watermark).
Case = tuple[Callable[[Any], Any], type, list[CanonicalEvent | Keyed], int, list[CanonicalEvent | Keyed], int]

CASES: dict[str, Case] = {
    "resolution": (
        lambda state: ResolutionLogic(30 * DAY_MS, state),
        ResolutionState,
        [
            ((ms(0), "t", 1), Teach("ref:A", "D1", "SO1")),
            ((ms(1), "s1", 10), Lookup("s1", "ref:B", "tracking_number", "ref:B", ms(0, days=7))),
            ((ms(2), "s2", 10), Lookup("s2", "ref:C", "shipment_ref", "ref:C", ms(3))),
        ],
        ms(5),  # s2 expires: ref:C is remembered as expired
        [((ms(6), "t2", 1), Teach("ref:B", "D2", "")), ((ms(7), "t3", 1), Teach("ref:C", "D3", "SO3"))],
        ms(0, days=40),
    ),
    "arbiter": (
        lambda state: ArbiterLogic(30 * DAY_MS, state),
        ArbiterState,
        [
            ((ms(0), "s1", 0), Pending(scan("s1", "1Z1", 0), "ref:1Z1", 1, ms(60))),
            ((ms(0), "s2", 0), Pending(scan("s2", "1Z2", 0), "ref:1Z2", 1, ms(60))),
            ((ms(1), "s2", 1), Candidate("s2", "ref:1Z2", "D2", "SO2", "tracking_number", "ref:1Z2", ms(1))),
            ((ms(2), "bare", 0), Pending(scan("bare", None, 2), "event:bare", 0, ms(2))),
        ],
        ms(3),
        [((ms(4), "s1", 1), Candidate("s1", "ref:1Z1", "D1", "", "tracking_number", "ref:1Z1", ms(4)))],
        ms(0, days=40),
    ),
    "lifecycle": (
        lambda state: LifecycleLogic(master=MASTER, state=state),
        LifecycleState,
        [
            lined(released(occurred=at(0), order_id="SO1")),
            lined(wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(30), tracking_number="1Z1")),
            carrier(M.IN_TRANSIT, "it", occurred=at(40), delivery_id="D2"),
            carrier(M.DELIVERED, "dl", occurred=at(50), delivery_id="D2"),
        ],
        ms(200),  # release_to_wms answered, ship_to_erp missing: alerts in the tracks
        [lined(erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(210))), erp(E.INVOICE_POSTED, "inv", occurred=at(300))],
        ms(0, days=100),
    ),
    "inventory": (
        lambda state: InventoryLogic(MASTER, state=state),
        InventoryState,
        [
            stock_snapshot(),
            lined(wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(30), delivery_id="D1")),
            ((ms(30), "disp", 1), InFlight(SITE, "D1", "disp", LINES, 1, ms(30))),
            lined(wms(E.INVENTORY_ADJUSTED, "adj", occurred=at(40), delivery_id=None)),
        ],
        ms(0, days=2),  # the adjustment is out of tolerance beyond the grace: an open alert
        [lined(erp(E.GOODS_RECEIVED, "gr", occurred=at(0, days=3), delivery_id=None))],
        ms(0, days=40),
    ),
}


def filled(case: str) -> Driver[Any]:
    make, _, first, watermark, _, _ = CASES[case]
    driver = Driver(make(None))
    driver.feed(*first)
    driver.advance(watermark)
    return driver


def structs_in(value: Any, found: set[type]) -> set[type]:
    """Every msgspec Struct type reachable in a value."""
    if isinstance(value, msgspec.Struct):
        found.add(type(value))
        for field in value.__struct_fields__:
            structs_in(getattr(value, field), found)
    elif isinstance(value, dict):
        for item in value.values():
            structs_in(item, found)
    elif isinstance(value, list | tuple | set):
        for item in value:
            structs_in(item, found)
    return found


def dedup_state() -> DedupState:
    dedup = EventDedup(1000)
    dedup.offer(released("a"), "p0", 1, 10)
    dedup.offer(released("b"), "p0", 2, 2000)
    dedup.decide(1500)  # "a" decided, "b" still a candidate
    return dedup.state


def tally_state() -> TallyState:
    tally = SourceTally("p0", "run")
    tally.add(Judged(3, 1, ("CARRIER_STATUS",)))  # before its Expect: an open message
    tally.add(Expect(4, "carrier.edi", 2, ("mapping",)))
    tally.add(Judged(4, 2, ("CARRIER_STATUS",)))
    tally.add(Finished(5, "wms.edi", IGNORED, "", ()))
    tally.rows()
    return tally.state


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_filled_state_round_trips_and_goes_on_as_the_original(case: str) -> None:
    make, state_type, _, _, rest, until = CASES[case]
    original = filled(case)
    thawed = thaw(freeze(f"{case}-bucket", original.logic.state, True), f"{case}-bucket", state_type)
    assert thawed is not None and thawed == original.logic.state
    assert thawed is not original.logic.state
    resumed = Driver(make(thawed))
    expected = original.feed(*rest) + original.advance(until)
    assert expected  # the continuation says something worth comparing
    assert resumed.feed(*rest) + resumed.advance(until) == expected
    assert resumed.logic.state == original.logic.state


def test_the_ingest_states_round_trip() -> None:
    for kind, state in (("dedup", dedup_state()), ("tally", tally_state())):
        assert state != type(state)()
        assert thaw(freeze(kind, state, True), kind, type(state)) == state


def test_the_filled_states_reach_every_state_struct() -> None:
    """Every mutable Struct of the stage logics (state; rows and items are frozen) is in one of the
    states round-tripped above, so each of them is shown to round-trip."""
    declared = {
        cls
        for name in STATE_MODULES
        for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass)
        if issubclass(cls, msgspec.Struct) and cls.__module__ == name and not cls.__struct_config__.frozen
    }
    reached: set[type] = set()
    for case in CASES:
        structs_in(filled(case).logic.state, reached)
    structs_in(dedup_state(), reached)
    structs_in(tally_state(), reached)
    assert len(declared) >= 19
    assert declared - reached == set()


def test_a_snapshot_of_another_kind_or_version_is_refused() -> None:
    state = filled("arbiter").logic.state
    frozen = freeze("arbiter-bucket", state, True)
    with pytest.raises(
        SnapshotError,
        match=f"holds arbiter-bucket v{SCHEMA_VERSION}, this logisync reads lifecycle-bucket v{SCHEMA_VERSION}",
    ):
        thaw(frozen, "lifecycle-bucket", LifecycleState)
    other_version = msgspec.msgpack.encode(
        Envelope("arbiter-bucket", SCHEMA_VERSION + 1, msgspec.Raw(msgspec.msgpack.encode(state)))
    )
    with pytest.raises(SnapshotError, match="fresh --recovery-dir"):
        thaw(other_version, "arbiter-bucket", ArbiterState)
    with pytest.raises(SnapshotError, match="not a logisync snapshot"):
        thaw(msgspec.msgpack.encode({"a": 1}), "arbiter-bucket", ArbiterState)
    with pytest.raises(SnapshotError, match="not a logisync snapshot"):
        thaw(b"\x93\xa1", "arbiter-bucket", ArbiterState)


def test_without_recovery_a_snapshot_is_empty_and_means_a_fresh_start() -> None:
    assert freeze("arbiter-bucket", filled("arbiter").logic.state, False) == b""
    assert thaw(b"", "arbiter-bucket", ArbiterState) is None
    assert thaw(None, "arbiter-bucket", ArbiterState) is None


# -- the bytewax wrappers -----------------------------------------------------------------------

TOPOLOGY = Topology(sources=("p0",), workers=1)


def lifecycle_stage(resume: bytes | None, recovery: bool = True) -> StageLogic:
    return StageLogic(
        LIFECYCLE,
        TOPOLOGY,
        lambda state: LifecycleLogic(state=state),
        LifecycleState,
        "run",
        recovery,
        resume,
    )


def packets(promise: int, items: list[CanonicalEvent], done: bool = False) -> list[StagePacket]:
    """One packet from every sender of lifecycle bucket 3: the items from dedup/0."""
    senders = [f"{upstream}/{index}" for upstream in UPSTREAM[LIFECYCLE] for index in range(8)]
    keyed: list[tuple[OrderKey, DomainItem]] = [(key_of(item), item) for item in items]
    return [StagePacket(sender, 3, promise, done, keyed if sender == "dedup/0" else []) for sender in senders]


def test_a_stage_bucket_resumes_from_its_snapshot_with_what_waits_for_w() -> None:
    stage = lifecycle_stage(None)
    waiting = [wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(60))]
    stage.on_batch(packets(ms(10), [released(occurred=at(0)), *waiting]))  # W = 10 min: the dispatch waits
    assert len(stage.bucket.reorder) == 1
    resumed = lifecycle_stage(stage.snapshot())
    assert (resumed.index, resumed.sender, resumed.bucket.watermark) == (3, "lifecycle/3", ms(10))
    assert resumed.bucket.logic.state == stage.bucket.logic.state
    assert len(resumed.bucket.reorder) == 1
    rest = packets(ms(300), [erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(61), recorded=at(100))], done=True)
    assert resumed.on_batch(rest) == stage.on_batch(rest)
    assert resumed.snapshot() == stage.snapshot()
    assert lifecycle_stage(None, recovery=False).snapshot() == b""


def test_dedup_and_tally_buckets_resume_from_their_snapshots() -> None:
    def dedup_stage(resume: bytes | None) -> DedupLogic:
        return DedupLogic(TOPOLOGY, DAY_MS, 300_000, 7 * DAY_MS, lambda sender: sender, "run", True, resume)

    def claims(offset: int, *event_ids: str) -> DedupPacket:
        events = [released(event_id, received=at(offset)) for event_id in event_ids]
        batch = [Claim(event, "p0", offset, ms(offset)) for event in events]
        return DedupPacket("p0", 2, ms(offset), False, batch)

    stage = dedup_stage(None)
    stage.on_batch([claims(1, "a", "b")])
    resumed = dedup_stage(stage.snapshot())
    assert resumed.dedup.state == stage.dedup.state and resumed.index == 2
    nxt = [claims(2, "b", "c")]
    assert resumed.on_batch(nxt) == stage.on_batch(nxt)

    tally = TallyLogic(TOPOLOGY, "run", True, None)
    tally.on_batch([TallyPacket("p0", [Expect(0, "t", 2, ()), Judged(0, 1, ("ORDER_RELEASED",))])])
    again = TallyLogic(TOPOLOGY, "run", True, tally.snapshot())
    assert again.tally is not None and tally.tally is not None and again.tally.state == tally.tally.state
    rest = [TallyPacket("p0", [Judged(0, 1, ())])]
    assert again.on_batch(rest) == tally.on_batch(rest)
