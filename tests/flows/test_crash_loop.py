"""Issue 10: a crash loop of the real `logisync run` process gives the tables of a clean run.

A simulated scenario goes onto prefixed topics of the session's broker. A clean run (never
killed) consumes them into one embedded store. Then the same command, with the same run id, runs
on another store and recovery dir again and again, each time killed with SIGKILL after a delay a
seeded random.Random draws, until enough kills landed while it ran; a last run goes to the end.
Its tables must equal the clean run's exactly (alerts included), and `ingest_stats` must count
every produced message once.

The delays come from the clean run: its flow time (the summary's seconds) is the work W, the rest
of its wall time the start-up S (interpreter, chDB, migrations, broker metadata). Each delay is
drawn from [0.5 s, S + 2 W' / (k + 1)], W' the work not yet committed in the recovery store and k
the kills still to come: kills land in start-up and mid-flow, the committed input moves forward,
and the last kill still leaves work for the final run.

Both stores belong to other processes (chDB admits one engine path per process, and this session
holds `chdb_dsn`): they are read through `tests/store_reader.py` in a process of its own (tests/cli_runs.py). The
recovery store is bytewax's SQLite files, read here for the progress figures only.

`make soak` runs the long version (LOGISYNC_SOAK=1): a larger scenario and at least 50 kills.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import signal
import sqlite3
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simulator.scenario import SimConfig, simulate
from tests.cli_runs import LOGISYNC, child_env, read_store, write_run_config
from tests.flows.test_kafka_pipeline import Message, produce

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

DATABASE = "logisync_crash"
RUN_ID = "crash-loop"
RUN_TIMEOUT_S = 600.0
COUNTS = ("raw_in", "normalized", "duplicates", "dead_lettered", "ignored", "events_out")

# Every column but the wall clock of the insert; one row per entity (FINAL), in a total order.
TABLES = {
    "events": "SELECT * EXCEPT (ingested_at) FROM {db}.events FINAL ORDER BY event_id",
    "dead_letters": "SELECT * EXCEPT (ingested_at) FROM {db}.dead_letters FINAL ORDER BY topic, raw_ref",
    "delivery_status": "SELECT * FROM {db}.delivery_status FINAL ORDER BY delivery_id",
    "sync_latency": "SELECT * FROM {db}.sync_latency FINAL ORDER BY handoff, delivery_id",
    "alerts": "SELECT * FROM {db}.alerts FINAL ORDER BY rule, alert_id",
    "inventory_positions": "SELECT * FROM {db}.inventory_positions FINAL ORDER BY site, sku, uom",
}
# ingest_stats: the counts summed over the blocks (FINAL: each block's fullest version), per topic.
ACCOUNTING = {
    "counts": "SELECT topic, " + ", ".join(f"sum({name})" for name in COUNTS) + " "
    "FROM {db}.ingest_stats FINAL GROUP BY topic ORDER BY topic",
}


@dataclass(frozen=True)
class LoopSize:
    deliveries: int
    kills: int  # kills that must land while the process runs
    partitions: int = 3
    seed: int = 10


@dataclass
class LoopReport:
    """What the crash loop did, for the assertions and the report printed at the end."""

    messages: int = 0
    clean_wall_s: float = 0.0
    clean_flow_s: float = 0.0
    startup_s: float = 0.0  # the clean run's wall time outside its flow
    starts: int = 0
    kills: int = 0
    finished_before_kill: int = 0
    delays: list[float] = field(default_factory=list)
    committed: list[int] = field(default_factory=list)  # input messages committed after each kill
    final_wall_s: float = 0.0
    resume_epochs: list[int] = field(default_factory=list)  # of every bytewax execution recorded

    @property
    def moved_forward(self) -> int:
        """Kills after which the recovery store held more committed input than before."""
        return sum(1 for before, after in zip([0, *self.committed], self.committed, strict=False) if after > before)

    def summary(self) -> str:
        moved = self.moved_forward
        return (
            f"crash loop: {self.messages:,} messages; clean run {self.clean_wall_s:.1f} s "
            f"(flow {self.clean_flow_s:.1f} s); {self.starts} starts, {self.kills} kills "
            f"({sum(delay < self.startup_s for delay in self.delays)} before {self.startup_s:.1f} s, in start-up), "
            f"{self.finished_before_kill} runs finished before their kill; delays "
            f"{min(self.delays, default=0):.2f}-{max(self.delays, default=0):.2f} s; committed input after each kill "
            f"{self.committed} (of {self.messages}, moved forward at {moved} kills); final run "
            f"{self.final_wall_s:.1f} s; {len(self.resume_epochs)} bytewax executions, resume epochs "
            f"{self.resume_epochs}"
        )


@dataclass(frozen=True)
class RunCommand:
    bootstrap: str
    config: Path
    master: Path

    def argv(self, store: Path, recovery: Path) -> list[str]:
        return [
            str(LOGISYNC),
            "run",
            "--source",
            "kafka",
            "--until-end",
            "--bootstrap",
            self.bootstrap,
            "--config",
            str(self.config),
            "--master",
            str(self.master),
            "--recovery-dir",
            str(recovery),
            "--run-id",
            RUN_ID,
            "--clickhouse",
            f"chdb://{store}",
            "--database",
            DATABASE,
            "--quiet",
        ]


def run_to_end(command: list[str], log: Path) -> tuple[float, str]:
    """Run to completion; (wall seconds, stdout). The run must exit 0 (its accounting balanced)."""
    started = time.monotonic()
    with log.open("wb") as err:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=err, env=child_env(), timeout=RUN_TIMEOUT_S, check=False
        )
    wall = time.monotonic() - started
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
    return wall, done.stdout.decode()


def flow_seconds(summary: str) -> float:
    """The flow's own time from the run's summary line (`... raw messages in 3.2 s ...`)."""
    found = re.search(r"raw messages in ([0-9.]+) s", summary)
    assert found, summary
    return float(found.group(1))


def _recovery_rows(recovery: Path, sql: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for part in sorted(recovery.glob("part-*.sqlite3")):
        with sqlite3.connect(part) as db:
            rows += db.execute(sql).fetchall()
    return rows


def resume_epoch(recovery: Path) -> int:
    """The epoch a restart resumes from, as bytewax computes it: the last execution's frontier
    (its resume epoch, or where its workers' progress got to), the least over its workers."""
    starts = _recovery_rows(recovery, "SELECT ex_num, worker_count, resume_epoch FROM exs")
    if not starts:
        return 1
    last, workers, epoch = max(starts)
    frontier = dict.fromkeys(range(workers), epoch)
    for ex_num, worker, reached in _recovery_rows(recovery, "SELECT ex_num, worker_index, worker_frontier FROM fronts"):
        if ex_num == last:
            frontier[worker] = max(frontier[worker], reached)
    return min(frontier.values())


def committed_messages(recovery: Path) -> int:
    """Input messages a restart would not read again: the sum over input partitions of the offset
    in their latest snapshot before the resume epoch (bytewax snapshots a partition's next offset)."""
    resume = resume_epoch(recovery)
    offsets: dict[str, int | None] = {}
    snaps = _recovery_rows(recovery, "SELECT snap_epoch, state_key, ser_change FROM snaps WHERE step_id LIKE '%.input'")
    for epoch, key, change in sorted(snaps):
        if epoch < resume:
            offsets[key] = pickle.loads(change) if change is not None else None  # bytewax pickles them
    return sum(offset or 0 for offset in offsets.values())


def executions(recovery: Path) -> list[int]:
    """The resume epoch of every bytewax execution the recovery store recorded."""
    started = _recovery_rows(recovery, "SELECT ex_num, worker_count, resume_epoch FROM exs")
    return [epoch for _, _, epoch in sorted(started)]


def scenario_on_topics(bootstrap: str, size: LoopSize, tmp_path: Path) -> tuple[list[Message], RunCommand]:
    scenario = simulate(SimConfig(seed=size.seed, deliveries=size.deliveries))
    records = [(r.topic, r.key, r.received_at, r.value) for r in scenario.records]
    prefix = f"t{uuid.uuid4().hex[:8]}"
    mapping = produce(bootstrap, records, prefix, partitions=size.partitions)
    master = tmp_path / "master"
    master.mkdir()
    (master / "products.csv").write_text(scenario.products_csv)
    (master / "sites.csv").write_text(scenario.sites_csv)
    config = write_run_config(tmp_path / "logisync.toml", prefix, mapping, epoch_interval_s=0.2, epoch_max_messages=100)
    return records, RunCommand(bootstrap, config, master)


def start_and_kill(command: list[str], delay: float, log: Path) -> int:
    """Start the run and SIGKILL it after `delay` seconds unless it ended before; its exit code
    (-SIGKILL when the kill ended it; a run that ended on its own must have exited 0)."""
    with log.open("wb") as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=child_env())
        try:
            code = process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            code = process.wait(timeout=RUN_TIMEOUT_S)
    assert code in (0, -signal.SIGKILL), f"{command} exited {code}:\n{log.read_text(errors='replace')[-3000:]}"
    return code


def crash_loop(bootstrap: str, tmp_path: Path, size: LoopSize) -> LoopReport:
    records, command = scenario_on_topics(bootstrap, size, tmp_path)
    report = LoopReport(messages=len(records))
    clean = command.argv(tmp_path / "clean-store", tmp_path / "clean-recovery")
    report.clean_wall_s, summary = run_to_end(clean, tmp_path / "clean.log")
    report.clean_flow_s = flow_seconds(summary)

    report.startup_s = startup = max(report.clean_wall_s - report.clean_flow_s, 0.5)
    crashed_store, recovery = tmp_path / "crashed-store", tmp_path / "crashed-recovery"
    crashing = command.argv(crashed_store, recovery)
    rng = random.Random(size.seed)
    while report.kills < size.kills:
        assert not report.finished_before_kill, f"the work was done before enough kills: {report.summary()}"
        # Start-up, then the flow time still to go shared among the kills still to come (twice
        # over, so that kills late in their range move the committed input forward, and never all
        # of it: the last kill leaves work for the final run).
        work_left = report.clean_flow_s * (1 - (report.committed or [0])[-1] / report.messages)
        delay = rng.uniform(0.5, startup + 2 * work_left / (size.kills - report.kills + 1))
        report.starts += 1
        code = start_and_kill(crashing, delay, tmp_path / f"start-{report.starts:03d}.log")
        if code == -signal.SIGKILL:
            report.kills += 1
            report.delays.append(delay)
            report.committed.append(committed_messages(recovery))
        else:  # it finished before its kill (or in the instant between the timeout and the kill)
            report.finished_before_kill += 1
    report.final_wall_s, _ = run_to_end(crashing, tmp_path / "final.log")
    report.resume_epochs = executions(recovery)
    print(report.summary())

    expected = read_store(tmp_path / "clean-store", {**TABLES, **ACCOUNTING}, DATABASE)
    got = read_store(crashed_store, {**TABLES, **ACCOUNTING}, DATABASE)
    assert sum(row[1] for row in got["counts"]) == report.messages  # raw_in: every message once
    assert got["counts"] == expected["counts"]  # and every outcome, per topic, as in the clean run
    for name in TABLES:
        assert len(got[name]) == len(expected[name]), name
        assert got[name] == expected[name], name
    assert all(expected[name] for name in TABLES), "the scenario fills every compared table"
    assert report.committed[-1] < report.messages, "the last kill left work for the final run"
    assert report.moved_forward >= 2, f"kills landed mid-flow: {report.summary()}"
    return report


def test_crash_loop_gives_the_clean_run_s_tables(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`make test`: 20,084 messages, 20 kills (about 50 s on 2 shared cores)."""
    report = crash_loop(kafka_bootstrap, tmp_path, LoopSize(deliveries=1500, kills=20))
    assert report.kills == 20


@pytest.mark.soak
@pytest.mark.skipif(os.environ.get("LOGISYNC_SOAK") != "1", reason="the soak runs with LOGISYNC_SOAK=1 (make soak)")
def test_soak_crash_loop_gives_the_clean_run_s_tables(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`make soak`: a scenario of 5,000 deliveries, 60 kills."""
    report = crash_loop(kafka_bootstrap, tmp_path, LoopSize(deliveries=5000, kills=60, seed=11))
    assert report.kills == 60
