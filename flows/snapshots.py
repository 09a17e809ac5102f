"""State snapshots for bytewax recovery, with an explicit, versioned schema.

bytewax asks every stateful step for a snapshot at the end of each epoch, with or without a
recovery store (bytewax guide 2.2), for every key touched in the epoch. With recovery the
snapshot is msgpack bytes of the bucket's state Structs (operators/*: every state class is a
msgspec Struct, so the schema is the code, not a pickled class layout), behind a header naming the
state and its schema version; a snapshot of another version is refused with a clear error
instead of being misread. Without recovery nothing reads it, so it is empty and costs nothing.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

SCHEMA_VERSION = 3  # 2: dedup holds its undecided copies (candidates); 3: exact inventory totals
State = TypeVar("State")

_ENCODER = msgspec.msgpack.Encoder()


class SnapshotError(RuntimeError):
    """A recovery snapshot that this version of logisync cannot read."""


class Envelope(msgspec.Struct, array_like=True):
    kind: str
    version: int
    state: msgspec.Raw


def freeze(kind: str, state: Any, recovery: bool) -> bytes:
    if not recovery:
        return b""
    return _ENCODER.encode(Envelope(kind, SCHEMA_VERSION, msgspec.Raw(_ENCODER.encode(state))))


def thaw(resume: bytes | None, kind: str, state_type: type[State]) -> State | None:
    """The state a snapshot holds, or None for a fresh start."""
    if not resume:
        return None
    try:
        envelope = msgspec.msgpack.decode(resume, type=Envelope)
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"recovery snapshot of {kind} is not a logisync snapshot: {exc}") from exc
    if envelope.kind != kind or envelope.version != SCHEMA_VERSION:
        raise SnapshotError(
            f"recovery snapshot holds {envelope.kind} v{envelope.version}, this logisync reads {kind} "
            f"v{SCHEMA_VERSION}: start with a fresh --recovery-dir"
        )
    return msgspec.msgpack.decode(envelope.state, type=state_type)
