"""Replay files (design.md 2.2): JSON Lines, one raw message per line.

`{"topic": ..., "key": ... | null, "received_at": "<ISO 8601 UTC>", "value": "<text>"}` or
`"value_b64"` for payloads that are not UTF-8. Partition 0, offset = 0-based line number.
A line that is not a valid envelope is not dropped: it becomes a raw message on the topic
`replay.invalid` whose payload is the line itself, and the flow dead-letters it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from operators.model import RawMessage

INVALID_TOPIC = "replay.invalid"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ReplayLineError(ValueError):
    """A replay line that is not a valid envelope."""


def parse_line(line: bytes, offset: int) -> RawMessage:
    """One replay line -> RawMessage; an invalid envelope -> a `replay.invalid` message."""
    try:
        return _parse_envelope(line, offset)
    except ReplayLineError as exc:
        return RawMessage(
            topic=INVALID_TOPIC,
            partition=0,
            offset=offset,
            key=str(exc),
            value=line.rstrip(b"\r\n"),
            received_at=_EPOCH,
        )


def _parse_envelope(line: bytes, offset: int) -> RawMessage:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ReplayLineError(f"line {offset + 1}: not JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise ReplayLineError(f"line {offset + 1}: expected a JSON object")
    topic = record.get("topic")
    if not isinstance(topic, str) or not topic:
        raise ReplayLineError(f"line {offset + 1}: missing 'topic'")
    key = record.get("key")
    if key is not None and not isinstance(key, str):
        raise ReplayLineError(f"line {offset + 1}: 'key' must be a string or null")
    received_text = record.get("received_at")
    try:
        received_at = datetime.fromisoformat(str(received_text).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ReplayLineError(f"line {offset + 1}: bad 'received_at' {received_text!r}") from exc
    if received_at.utcoffset() is None:
        raise ReplayLineError(f"line {offset + 1}: 'received_at' {received_text!r} has no UTC offset")
    if "value" in record and isinstance(record["value"], str):
        value = record["value"].encode("utf-8")
    elif "value_b64" in record and isinstance(record["value_b64"], str):
        try:
            value = base64.b64decode(record["value_b64"], validate=True)
        except binascii.Error as exc:
            raise ReplayLineError(f"line {offset + 1}: bad 'value_b64' ({exc})") from exc
    else:
        raise ReplayLineError(f"line {offset + 1}: missing 'value' or 'value_b64'")
    return RawMessage(
        topic=topic,
        partition=0,
        offset=offset,
        key=key,
        value=value,
        received_at=received_at.astimezone(UTC),
    )


def format_line(topic: str, key: str | None, received_at: datetime, value: bytes) -> bytes:
    """One replay line (with its newline) for a raw message."""
    record: dict[str, object] = {
        "topic": topic,
        "key": key,
        "received_at": received_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    try:
        record["value"] = value.decode("utf-8")
    except UnicodeDecodeError:
        record["value_b64"] = base64.b64encode(value).decode("ascii")
    return orjson.dumps(record) + b"\n"


def write_replay(out: IO[bytes], messages: Iterable[tuple[str, str | None, datetime, bytes]]) -> int:
    """Write (topic, key, received_at, value) tuples as replay lines; returns the count."""
    count = 0
    for topic, key, received_at, value in messages:
        out.write(format_line(topic, key, received_at, value))
        count += 1
    return count


def read_replay(path: Path) -> Iterator[RawMessage]:
    """All messages of a replay file, in order (for tests and tools; the flow reads in batches)."""
    with path.open("rb") as handle:
        for offset, line in enumerate(handle):
            yield parse_line(line, offset)
