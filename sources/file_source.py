"""A bytewax source over a replay file: one partition, read in batches, resumable by offset."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from typing_extensions import override

from operators.model import RawMessage
from sources.replay import parse_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileProgress:
    """Where a replay read is; the source reports it to a callback on long runs."""

    messages: int
    bytes_read: int
    bytes_total: int


# Called with a FileProgress about once a second (and once at the end).
ProgressCallback = Callable[[FileProgress], None]


class _ReplayPartition(StatefulSourcePartition[RawMessage, tuple[int, int]]):
    def __init__(
        self, path: Path, resume: tuple[int, int] | None, batch_size: int, progress: ProgressCallback | None
    ) -> None:
        self._handle = path.open("rb")
        self._total = path.stat().st_size
        self._byte_offset, self._line = resume if resume is not None else (0, 0)
        self._handle.seek(self._byte_offset)
        self._batch_size = batch_size
        self._progress = progress
        self._last_report = time.monotonic()  # wall clock for progress display only

    @override
    def next_batch(self) -> list[RawMessage]:
        batch: list[RawMessage] = []
        readline = self._handle.readline
        for _ in range(self._batch_size):
            line = readline()
            if not line:
                break
            batch.append(parse_line(line, self._line))
            self._line += 1
        self._byte_offset = self._handle.tell()
        if not batch:
            self._report(force=True)
            raise StopIteration()
        self._report(force=False)
        return batch

    def _report(self, *, force: bool) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_report >= 1.0:
            self._last_report = now
            self._progress(FileProgress(self._line, self._byte_offset, self._total))

    @override
    def snapshot(self) -> tuple[int, int]:
        return (self._byte_offset, self._line)

    @override
    def close(self) -> None:
        self._handle.close()


class ReplayFileSource(FixedPartitionedSource[RawMessage, tuple[int, int]]):
    """Reads a replay file (design.md 2.2) to its end, then the input is exhausted."""

    def __init__(self, path: Path, batch_size: int = 2000, progress: ProgressCallback | None = None) -> None:
        self.path = path
        self.batch_size = batch_size
        self.progress = progress

    @override
    def list_parts(self) -> list[str]:
        return ["replay-0"]

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: tuple[int, int] | None) -> _ReplayPartition:
        return _ReplayPartition(self.path, resume_state, self.batch_size, self.progress)
