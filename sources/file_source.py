"""A bytewax source over a replay file: one partition, read in batches, resumable by offset.

Each batch is one `RawBatch` item. A replay file is one input partition, so with several
workers or processes its batches are dealt round-robin to `lanes` (`<file>#<lane>`): each lane
is a sender of its own (its batches reach their worker in order), and the flow spreads the lanes
over the workers, so that normalizing a backfill uses every worker. At the end of the file every
lane gets a last, empty batch marked done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from typing_extensions import override

from operators.formats.timeparse import to_epoch_ms
from operators.ingest.sanity import is_sane_received
from sources.batch import RawBatch
from sources.replay import parse_line
from sources.stop import stop_requested

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileProgress:
    """Where a replay read is; the source reports it to a callback on long runs."""

    messages: int
    bytes_read: int
    bytes_total: int


# Called with a FileProgress about once a second (and once at the end).
ProgressCallback = Callable[[FileProgress], None]


def lane_names(source: str, lanes: int) -> tuple[str, ...]:
    return (source,) if lanes <= 1 else tuple(f"{source}#{lane}" for lane in range(lanes))


def accounting_source(sender: str) -> str:
    """The input partition a lane belongs to (ingest_stats counts the file, not its lanes)."""
    return sender.partition("#")[0]


# (byte offset, line, batches read)
ReplayPosition = tuple[int, int, int]


class _ReplayPartition(StatefulSourcePartition[RawBatch, ReplayPosition]):
    def __init__(
        self,
        path: Path,
        source: str,
        lanes: int,
        resume: ReplayPosition | None,
        batch_size: int,
        progress: ProgressCallback | None,
        deal: tuple[int, ...] = (),
    ) -> None:
        self._handle = path.open("rb")
        self._total = path.stat().st_size
        self._byte_offset, self._line, self._batches = resume if resume is not None else (0, 0, 0)
        self._handle.seek(self._byte_offset)
        self._lanes = lane_names(source, lanes)
        self._deal = deal or tuple(range(len(self._lanes)))
        self._batch_size = batch_size
        self._progress = progress
        self._finished = False
        self._last_report = time.monotonic()  # wall clock for progress display only

    @override
    def next_batch(self) -> list[RawBatch]:
        if self._finished or stop_requested():
            raise StopIteration()
        messages = []
        readline = self._handle.readline
        for _ in range(self._batch_size):
            line = readline()
            if not line:
                break
            messages.append(parse_line(line, self._line))
            self._line += 1
        self._byte_offset = self._handle.tell()
        if not messages:
            self._finished = True
            self._report(force=True)
            return [RawBatch(lane, [], None, True) for lane in self._lanes]
        promise = None
        for message in messages:
            received_ms = to_epoch_ms(message.received_at)
            if is_sane_received(received_ms) and (promise is None or received_ms > promise):
                promise = received_ms
        lane = self._lanes[self._deal[self._batches % len(self._deal)]]
        self._batches += 1
        self._report(force=False)
        return [RawBatch(lane, messages, promise)]

    def _report(self, *, force: bool) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_report >= 1.0:
            self._last_report = now
            self._progress(FileProgress(self._line, self._byte_offset, self._total))

    @override
    def snapshot(self) -> ReplayPosition:
        return (self._byte_offset, self._line, self._batches)

    @override
    def close(self) -> None:
        self._handle.close()


class ReplayFileSource(FixedPartitionedSource[RawBatch, ReplayPosition]):
    """Reads a replay file (design.md 2.2) to its end, then the input is exhausted."""

    def __init__(
        self,
        path: Path,
        batch_size: int = 2000,
        progress: ProgressCallback | None = None,
        *,
        lanes: int = 1,
        source: str | None = None,
        lane_weights: tuple[int, ...] = (),
    ) -> None:
        self.path = path
        self.batch_size = batch_size
        self.progress = progress
        self.lanes = lanes
        self.deal = deal_order(lane_weights) if lane_weights and lanes > 1 else ()
        if self.deal and len(lane_weights) != lanes:
            raise ValueError(f"{len(lane_weights)} lane weights for {lanes} lanes")
        self.source = source or replay_source(path)

    @property
    def senders(self) -> tuple[str, ...]:
        return lane_names(self.source, self.lanes)

    @override
    def list_parts(self) -> list[str]:
        return ["replay"]

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: ReplayPosition | None) -> _ReplayPartition:
        return _ReplayPartition(
            self.path, self.source, self.lanes, resume_state, self.batch_size, self.progress, self.deal
        )


def deal_order(weights: tuple[int, ...]) -> tuple[int, ...]:
    """The lanes in the order batches are dealt to them, lane i getting weights[i] batches per
    round, interleaved (weights (1, 2) -> (0, 1, 1); (1, 1, 2, 2) -> (0, 1, 2, 3, 2, 3))."""
    order: list[int] = []
    for turn in range(max(weights)):
        order.extend(lane for lane, weight in enumerate(weights) if weight > turn)
    return tuple(order)


def replay_source(path: Path) -> str:
    """A replay file's input-partition name: `file:<name>` (ingest_stats blocks are keyed by it)."""
    return f"file:{path.name}"
