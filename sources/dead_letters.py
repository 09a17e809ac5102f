"""Stored dead letters as a source: what `logisync dlq replay` feeds through the flow again.

The store keeps every dead letter whole (`dead_letters`: payload, key, received_at, where it came
from); `dead_letter_status` (migration 0006) says which are pending: never replayed since they
were dead-lettered, or still dead after their last replay. A replay selects the pending letters
once (`select_letters`, oldest first), then the source reads their payloads batch by batch, so a
large backlog is never held in memory whole.

Each letter becomes a RawMessage on its own topic (the adapters are chosen by topic) with
`replay_of` = its raw_ref, so its events and its dead letter keep the original raw_ref and the
accounting counts it as replayed, not as a new raw message. Its offset is its position in the
replay: the replay is one input partition (`dlq:<run_id>`), whose offsets key the accounting.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from typing_extensions import override

from operators.ingest.sanity import is_sane_received
from operators.model import RawMessage
from sinks.store import StoreConfig, connect, query_rows
from sources.batch import RawBatch
from sources.stop import stop_requested

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def replay_source(run_id: str) -> str:
    """A replay run's input partition: unique per run, since ingest_stats rows are keyed by it."""
    return f"dlq:{run_id}"


@dataclass(frozen=True)
class LetterFilter:
    """Which letters: by topic, reason, received_at in [since, until); pending ones unless `every`."""

    topics: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    every: bool = False  # also letters already replayed (list --all)

    def where(self) -> tuple[str, dict[str, Any]]:
        """A WHERE clause over dead_letter_status, and its server-side parameters."""
        conditions: list[str] = []
        parameters: dict[str, Any] = {}
        if not self.every:
            conditions.append("pending")
        if self.topics:
            conditions.append("topic IN %(topics)s")
            parameters["topics"] = tuple(self.topics)
        if self.reasons:
            conditions.append("reason IN %(reasons)s")
            parameters["reasons"] = tuple(self.reasons)
        if self.since is not None:
            conditions.append("toUnixTimestamp64Milli(received_at) >= %(since)s")
            parameters["since"] = _ms(self.since)
        if self.until is not None:
            conditions.append("toUnixTimestamp64Milli(received_at) < %(until)s")
            parameters["until"] = _ms(self.until)
        return " AND ".join(conditions) or "1", parameters


def _ms(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _at(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True)
class LetterRef:
    """A letter to replay, without its payload (read when its batch is due)."""

    raw_ref: str
    topic: str
    reason: str
    received_ms: int


@dataclass(frozen=True)
class LetterInfo:
    """A letter as `dlq list` shows it."""

    raw_ref: str
    topic: str
    partition: int
    offset: int
    key: str
    received_at: datetime
    reason: str
    adapter: str
    error: str
    last_outcome: str  # "" when never replayed
    last_replayed_at: datetime | None
    pending: bool


def select_letters(client: Any, database: str, letters: LetterFilter) -> list[LetterRef]:
    """Every letter the filter selects, oldest first (the order they first arrived in)."""
    where, parameters = letters.where()
    rows = query_rows(
        client,
        f"SELECT raw_ref, topic, reason, toUnixTimestamp64Milli(received_at) AS received_ms "
        f"FROM {database}.dead_letter_status WHERE {where} ORDER BY received_ms, topic, partition, offset, raw_ref",
        parameters,
    )
    return [LetterRef(str(ref), str(topic), str(reason), int(ms)) for ref, topic, reason, ms in rows]


def describe_letters(client: Any, database: str, letters: LetterFilter, limit: int) -> list[LetterInfo]:
    """The first `limit` letters the filter selects, oldest first, with their last replay."""
    where, parameters = letters.where()
    rows = query_rows(
        client,
        "SELECT raw_ref, topic, partition, offset, key, toUnixTimestamp64Milli(received_at) AS received_ms, "
        "reason, adapter, error, last_outcome, toUnixTimestamp64Milli(last_replayed_at), pending "
        f"FROM {database}.dead_letter_status WHERE {where} ORDER BY received_ms, topic, partition, offset, raw_ref "
        "LIMIT %(limit)s",
        {**parameters, "limit": limit},
    )
    return [
        LetterInfo(
            str(ref), str(topic), int(partition), int(offset), str(key), _at(int(received)), str(reason),
            str(adapter), str(error), str(outcome), _at(int(replayed)) if outcome else None, bool(pending),
        )
        for ref, topic, partition, offset, key, received, reason, adapter, error, outcome, replayed, pending in rows
    ]  # fmt: skip


def load_messages(client: Any, database: str, letters: Sequence[LetterRef], first_offset: int) -> list[RawMessage]:
    """The letters as raw messages to replay, in the given order, at offsets from `first_offset`.
    A letter no longer in the store (dropped meanwhile) is skipped with a warning."""
    stored: dict[str, tuple[str, str, bool]] = {}
    for start in range(0, len(letters), _REFS_PER_QUERY):
        chunk = letters[start : start + _REFS_PER_QUERY]
        rows = query_rows(
            client,
            f"SELECT raw_ref, key, payload, payload_b64 FROM {database}.dead_letters FINAL "
            "WHERE topic IN %(topics)s AND raw_ref IN %(refs)s",
            {"topics": tuple({letter.topic for letter in chunk}), "refs": tuple(letter.raw_ref for letter in chunk)},
        )
        stored.update((str(ref), (str(key), str(payload), bool(b64))) for ref, key, payload, b64 in rows)
    messages = []
    for index, letter in enumerate(letters):
        found = stored.get(letter.raw_ref)
        if found is None:
            log.warning("dead letter %s is no longer in %s.dead_letters; not replayed", letter.raw_ref, database)
            continue
        key, payload, b64 = found
        messages.append(
            RawMessage(
                topic=letter.topic,
                partition=0,
                offset=first_offset + index,
                key=key or None,  # the store keeps a missing key as ""
                value=base64.b64decode(payload) if b64 else payload.encode("utf-8"),
                received_at=_at(letter.received_ms),
                replay_of=letter.raw_ref,
            )
        )
    return messages


_REFS_PER_QUERY = 1000  # raw_refs are inlined in the query text: stay well under max_query_size


class _LetterPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(
        self, store: StoreConfig, letters: Sequence[LetterRef], source: str, resume: int | None, batch_size: int
    ) -> None:
        self._client = connect(store)
        self._database = store.database
        self._letters = letters
        self._source = source
        self._next = resume or 0
        self._batch_size = batch_size
        self._promise: int | None = None
        self._finished = False

    @override
    def next_batch(self) -> list[RawBatch]:
        if self._finished or stop_requested():
            raise StopIteration()
        start = self._next
        chunk = self._letters[start : start + self._batch_size]
        if not chunk:
            self._finished = True
            return [RawBatch(self._source, [], self._promise, True)]
        self._next = start + len(chunk)
        messages = load_messages(self._client, self._database, chunk, start)
        for letter in chunk:
            if is_sane_received(letter.received_ms) and (self._promise is None or letter.received_ms > self._promise):
                self._promise = letter.received_ms
        return [RawBatch(self._source, messages, self._promise)]

    @override
    def snapshot(self) -> int:
        return self._next


class DeadLetterSource(FixedPartitionedSource[RawBatch, int]):
    """The selected letters, oldest first, as one input partition named `source`."""

    def __init__(self, store: StoreConfig, letters: Sequence[LetterRef], source: str, batch_size: int = 2000) -> None:
        self.store = store
        self.letters = letters
        self.source = source
        self.batch_size = batch_size

    @property
    def senders(self) -> tuple[str, ...]:
        return (self.source,)

    @override
    def list_parts(self) -> list[str]:
        return ["dead_letters"]

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LetterPartition:
        return _LetterPartition(self.store, self.letters, self.source, resume_state, self.batch_size)
