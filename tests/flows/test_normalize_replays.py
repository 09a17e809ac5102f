"""normalize_batch with replayed dead letters: they reach dedup and the tally as replays, and the
health stage does not count them again (they were counted when they first arrived)."""

from __future__ import annotations

from flows.packets import StagePacket, TallyPacket
from flows.pipeline import normalize_batch
from flows.stages import TALLY
from flows.topology import HEALTH, Topology
from operators.domain.health import TopicMinute
from operators.ingest.accounting import Finished
from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS, Normalizer
from operators.master import EMPTY_MASTER
from operators.model import RawMessage
from sources.batch import RawBatch
from tests.conftest import RECEIVED


def minutes(routed: list[tuple[str, str, object]]) -> list[TopicMinute]:
    packets = [packet for dest, _, packet in routed if dest == HEALTH and isinstance(packet, StagePacket)]
    return [item for packet in packets for _, item in packet.items if isinstance(item, TopicMinute)]


def test_replays_are_tallied_as_replays_and_not_counted_by_the_health_stage() -> None:
    topology = Topology(sources=("wms.x:0",))
    normalize = normalize_batch(Normalizer(DEFAULT_TOPIC_ADAPTERS, EMPTY_MASTER), topology, lambda sender: sender)
    new = RawMessage("wms.x", 0, 7, None, b"{}", RECEIVED)
    replay = RawMessage("wms.x", 0, 8, None, b"{}", RECEIVED, replay_of="wms.x:0:3")
    routed = normalize(RawBatch("wms.x:0", [new, replay], 1))
    assert [(m.topic, m.messages, m.dead) for m in minutes(routed)] == [("wms.x", 1, 1)]
    (tally,) = [packet for dest, _, packet in routed if dest == TALLY and isinstance(packet, TallyPacket)]
    assert [(item.offset, item.replay_of) for item in tally.items if isinstance(item, Finished)] == [
        (7, ""),
        (8, "wms.x:0:3"),
    ]
    # Without the domain stages (a replay run) nothing goes to the health stage at all.
    quiet = normalize_batch(Normalizer(DEFAULT_TOPIC_ADAPTERS, EMPTY_MASTER), topology, lambda s: s, health_stage=False)
    assert minutes(quiet(RawBatch("wms.x:0", [new], 1))) == []
