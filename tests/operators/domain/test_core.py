"""The domain core driven by hand: ticks make the watermark, events wait in the reorder buffer
until W passes them, deadlines fire when W crosses them, and an idle live feed still fires."""

from __future__ import annotations

from datetime import timedelta

from operators.domain.alerts import Alert
from operators.domain.core import CoreConfig, DomainCore, DomainOutput
from operators.domain.handoffs import SyncLatency
from operators.domain.watermark import Tick, Watermark
from operators.formats.timeparse import to_epoch_ms
from operators.master import EMPTY_MASTER
from operators.model import CanonicalEvent, EventType
from tests.operators.eventkit import at, erp, wms

BUCKETS = 2
LATENESS = timedelta(minutes=5)


def ticks(minutes: float, source: str = "p0") -> list[Tick]:
    return [Tick(source, str(bucket), to_epoch_ms(at(minutes))) for bucket in range(BUCKETS)]


def core() -> DomainCore:
    return DomainCore(CoreConfig(allowed_lateness=LATENESS), EMPTY_MASTER, BUCKETS)


def dispatched(minute: float) -> CanonicalEvent:
    return wms(EventType.SHIPMENT_DISPATCHED, f"ship-{minute}", occurred=at(minute), received=at(minute))


def goods_issue(minute: float) -> CanonicalEvent:
    return erp(EventType.GOODS_ISSUE_POSTED, f"gi-{minute}", occurred=at(minute), received=at(minute))


def missing(outputs: list[DomainOutput], handoff: str = "ship_to_erp") -> list[Alert]:
    return [o for o in outputs if isinstance(o, Alert) and o.rule == "handoff_missing" and o.handoff == handoff]


def test_watermark_waits_for_every_bucket_of_every_partition() -> None:
    mark = Watermark(lateness_ms=0, buckets=2)
    mark.observe(Tick("p0", "0", 100))
    assert mark.current_ms() is None  # bucket 1 has not forwarded p0's progress yet
    mark.observe(Tick("p0", "1", 90))
    assert mark.current_ms() == 90
    mark.observe(Tick("p1", "0", 50))
    assert mark.current_ms() is None  # a new partition must report through every bucket too
    mark.observe(Tick("p1", "1", 60))
    assert mark.current_ms() == 50
    assert mark.final_ms() == 100


def test_events_wait_for_the_watermark_and_are_applied_in_received_order() -> None:
    domain = core()
    # The goods issue arrives first but was received later: nothing is applied before W passes it.
    assert domain.on_items([goods_issue(3), dispatched(1)]) == []
    outputs = domain.on_items(ticks(3 + 5))  # W = 3 min
    facts = [o for o in outputs if isinstance(o, SyncLatency) and o.handoff == "ship_to_erp"]
    assert facts[-1].latency_ms == 2 * 60_000 and not facts[-1].breached
    assert domain.state.pending == []


def test_missing_handoff_opens_exactly_when_w_crosses_the_deadline() -> None:
    domain = core()
    domain.on_items([dispatched(0), *ticks(5)])
    assert missing(domain.on_items(ticks(5 + 14.99))) == []  # W = 14.99 min < deadline 15 min
    (alert,) = missing(domain.on_items(ticks(5 + 15)))
    assert (alert.state, alert.due_at, alert.version) == ("open", at(15), 1)
    late = domain.on_items([goods_issue(40), *ticks(45)])
    (resolved,) = missing(late)
    assert (resolved.state, resolved.resolved_at, resolved.version) == ("resolved", at(40), 2)


def test_an_idle_live_feed_still_fires_the_deadline() -> None:
    domain = core()
    domain.on_items([dispatched(0), *ticks(1)])  # newest received 1 min, W = -4 min
    assert missing(domain.idle(timedelta(minutes=10))) == []  # W = 1 - 5 + 10 = 6 min
    (alert,) = missing(domain.idle(timedelta(minutes=19)))  # W = 15 min: the deadline
    assert alert.due_at == at(15)


def test_end_of_replay_releases_everything_and_moves_w_to_the_newest_received() -> None:
    domain = core()
    domain.on_items([dispatched(0), *ticks(10)])  # W = 5 min: dispatch applied, deadline 15 min
    outputs = domain.finish()  # W = 10 min: no alert yet
    assert missing(outputs) == [] and domain.watermark_at == at(10)


def test_state_survives_a_snapshot_round_trip() -> None:
    domain = core()
    domain.on_items([dispatched(0), *ticks(5)])
    restored = DomainCore(CoreConfig(allowed_lateness=LATENESS), EMPTY_MASTER, BUCKETS, domain.snapshot())
    (alert,) = missing(restored.on_items(ticks(20)))
    assert alert.due_at == at(15)


def test_a_quiet_partition_stops_holding_w_back_only_in_live_mode() -> None:
    mark = Watermark(lateness_ms=0, buckets=1)
    mark.observe(Tick("snapshots:0", "0", 10), now_ms=0)  # a daily feed, quiet since
    mark.observe(Tick("carrier.edi:0", "0", 100), now_ms=1_000)
    assert mark.current_ms() == 10  # replay: the data alone decide, the quiet feed holds W
    assert mark.current_ms(now_ms=1_000, idle_ms=500) == 100  # live: idle for 1 s > 0.5 s
    assert mark.current_ms(now_ms=400, idle_ms=500) == 10  # not idle long enough yet
