"""The shape of the keyed stages: how many buckets each has, who sends to whom, and which bytewax
key each bucket gets so that buckets spread evenly over the workers.

    input partitions ─> dedup ─┬─> resolution ─> arbiter ─┐
                               ├──────────────> arbiter   ├─> lifecycle ─> inventory
                               ├──────────────────────────┘              ↗
                               ├──────────────────────────────────────────
                               └─> tally (by input partition)

A bucket's senders are configuration, known before the first packet: every input partition for
dedup, every bucket of every upstream stage for the others (operators.domain.watermark).

bytewax places a stateful key on worker `SipHash-1-3(key bytes + 0xff) % workers` (Rust's
`DefaultHasher` over the key string; checked against bytewax 0.21.1 with 2 and 3 workers in
tests/flows/test_topology.py). With eight keys named "0".."7", two workers got six and two; so each
bucket's key is chosen, once at start, to land on worker `bucket % workers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

DEDUP = "dedup"
RESOLUTION = "resolution"
ARBITER = "arbiter"
LIFECYCLE = "lifecycle"
INVENTORY = "inventory"
TALLY = "tally"
HEALTH = "health"
ORDERED_STAGES = (RESOLUTION, ARBITER, LIFECYCLE, INVENTORY, HEALTH)
# stage -> the stages it hears from
UPSTREAM = {
    RESOLUTION: (DEDUP,),
    ARBITER: (DEDUP, RESOLUTION),
    LIFECYCLE: (DEDUP, ARBITER),
    INVENTORY: (DEDUP, LIFECYCLE),
}
# Stages that hear the input partitions directly (their raw progress: W trails it by the lateness).
FROM_SOURCES = (DEDUP, HEALTH)
# stage -> the stages it sends to
DOWNSTREAM = {
    DEDUP: (RESOLUTION, ARBITER, LIFECYCLE, INVENTORY),
    RESOLUTION: (ARBITER,),
    ARBITER: (LIFECYCLE,),
    LIFECYCLE: (INVENTORY,),
    INVENTORY: (),
    HEALTH: (),
}

_MASK = (1 << 64) - 1


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def siphash13(data: bytes) -> int:
    """SipHash-1-3 with zero keys: what Rust's `DefaultHasher::new()` computes."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    length = len(data)
    end = length - length % 8
    for index in range(0, end, 8):
        word = int.from_bytes(data[index : index + 8], "little")
        v3 ^= word
        sip_round()
        v0 ^= word
    last = ((length & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    sip_round()
    v0 ^= last
    v2 ^= 0xFF
    sip_round()
    sip_round()
    sip_round()
    return (v0 ^ v1 ^ v2 ^ v3) & _MASK


def worker_of(key: str, workers: int) -> int:
    """The worker bytewax runs a stateful key on (a str key hashes as its bytes + 0xff)."""
    return siphash13(key.encode("utf-8") + b"\xff") % workers


def balanced_key(stage: str, bucket: int, workers: int) -> str:
    """A key for the bucket that bytewax places on worker `bucket % workers`."""
    wanted = bucket % workers
    salt = 0
    while True:
        key = f"{stage}-{bucket}" if salt == 0 else f"{stage}-{bucket}.{salt}"
        if worker_of(key, workers) == wanted:
            return key
        salt += 1


@dataclass(frozen=True)
class Topology:
    """Bucket counts, input partitions and worker count of one run (every process builds the same)."""

    sources: tuple[str, ...]  # dedup's senders: input partitions, or the lanes of a replay file
    workers: int = 1  # total over all processes
    buckets: dict[str, int] = field(
        default_factory=lambda: {DEDUP: 8, RESOLUTION: 8, ARBITER: 8, LIFECYCLE: 8, INVENTORY: 8, HEALTH: 2}
    )

    def count(self, stage: str) -> int:
        return self.buckets[stage]

    def sender_id(self, stage: str, bucket: int) -> str:
        return f"{stage}/{bucket}"

    def senders(self, stage: str) -> tuple[str, ...]:
        if stage in FROM_SOURCES:
            return self.sources
        return tuple(
            self.sender_id(upstream, index) for upstream in UPSTREAM[stage] for index in range(self.count(upstream))
        )

    @cached_property
    def _keys(self) -> dict[str, tuple[str, ...]]:
        return {
            stage: tuple(balanced_key(stage, index, self.workers) for index in range(count))
            for stage, count in self.buckets.items()
        }

    def key(self, stage: str, bucket: int) -> str:
        return self._keys[stage][bucket]

    @cached_property
    def _bucket_of_key(self) -> dict[str, tuple[str, int]]:
        return {key: (stage, index) for stage, keys in self._keys.items() for index, key in enumerate(keys)}

    def bucket_of_key(self, key: str) -> tuple[str, int]:
        return self._bucket_of_key[key]
