"""What travels between the bytewax steps: batches, never single events.

Every item that may cross a bytewax process (a keyed exchange, `redistribute`, a keyed sink) is
one of these packets, carrying many records for one destination, and pickles as one msgpack
string (`__reduce__`): bytewax pickles every item that crosses a process, and a pickle of a
model per event cost 35-100 us where msgpack costs ~1-5 us (bytewax guide 6.1). Within a process
nothing is serialized at all.

Each packet carries its sender's *promise* (operators.domain.watermark): the receiving bucket
knows that no item with an order time at or below it will follow from that sender.
"""

from __future__ import annotations

from typing import Any

import msgspec

from operators.domain.items import DomainItem
from operators.domain.watermark import OrderKey
from operators.ingest.accounting import Claim, TallyItem
from operators.model import DeadLetter
from sources.batch import RawBatch  # noqa: F401  (re-exported for the flow)

_ENCODER = msgspec.msgpack.Encoder()


class DedupPacket(msgspec.Struct, gc=False, array_like=True):
    """Claims of one input batch for one dedup bucket."""

    sender: str  # the input partition (or replay lane)
    to: int  # the dedup bucket it is for (a bytewax logic does not know its own key)
    promise: int | None
    done: bool
    claims: list[Claim]

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_decode_dedup, (_ENCODER.encode(self),))


class TallyPacket(msgspec.Struct, gc=False, array_like=True):
    """Accounting facts about messages of one input partition."""

    source: str
    items: list[TallyItem]

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_decode_tally, (_ENCODER.encode(self),))


class StagePacket(msgspec.Struct, gc=False, array_like=True):
    """Ordered items for one bucket of a domain stage, with the sender's promise."""

    sender: str
    to: int  # the bucket it is for (a bytewax logic does not know its own key)
    promise: int | None
    done: bool
    items: list[tuple[OrderKey, DomainItem]]

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_decode_stage, (_ENCODER.encode(self),))


class SinkPacket(msgspec.Struct, gc=False, array_like=True):
    """Rows for the ClickHouse sink: table name -> rows (tuples in the table's column order)."""

    tables: dict[str, list[tuple[Any, ...]]]

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_decode_sink, (_ENCODER.encode(self),))


class DeadLetterPacket(msgspec.Struct, gc=False, array_like=True):
    """Dead letters for the dead-letter topic."""

    letters: list[DeadLetter]

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_decode_letters, (_ENCODER.encode(self),))


_DEDUP = msgspec.msgpack.Decoder(DedupPacket)
_TALLY = msgspec.msgpack.Decoder(TallyPacket)
_STAGE = msgspec.msgpack.Decoder(StagePacket)
_SINK = msgspec.msgpack.Decoder(SinkPacket)
_LETTERS = msgspec.msgpack.Decoder(DeadLetterPacket)


def _decode_dedup(data: bytes) -> DedupPacket:
    return _DEDUP.decode(data)


def _decode_tally(data: bytes) -> TallyPacket:
    return _TALLY.decode(data)


def _decode_stage(data: bytes) -> StagePacket:
    return _STAGE.decode(data)


def _decode_sink(data: bytes) -> SinkPacket:
    return _SINK.decode(data)


def _decode_letters(data: bytes) -> DeadLetterPacket:
    return _LETTERS.decode(data)
