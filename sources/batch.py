"""The unit the sources emit: one batch of one input partition, with its promise."""

from __future__ import annotations

from typing import Any

import msgspec

from operators.model import RawMessage

_ENCODER = msgspec.msgpack.Encoder()


class RawBatch(msgspec.Struct, gc=False, array_like=True):
    """One input batch of one input partition (or replay lane). `promise`: every later message of
    this partition has received_at at or above it (its newest so far, or a live partition's clock
    when caught up); `done`: the partition has ended (its last batch)."""

    source: str
    messages: list[RawMessage]
    promise: int | None
    done: bool = False
    # Live mode: a received_at at or above this (the clock + a day) is absurd (operators.ingest.sanity).
    horizon_ms: int | None = None

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_decode_raw, (_ENCODER.encode(self),))


_RAW = msgspec.msgpack.Decoder(RawBatch)


def _decode_raw(data: bytes) -> RawBatch:
    return _RAW.decode(data)
