"""`make bench`: the whole pipeline (1 and 2 processes) vs a plain read+normalize loop (the
ceiling), on the same generated replay, and the live state the domain keeps per delivery.

Each part runs in its own process so its peak memory is its own:
  ceiling      read the replay file and normalize every message in a plain Python loop
  pipeline     `run_pipeline` on the replay into a fresh embedded ClickHouse store, 1 process
  pipeline x2  the same with `processes=2` (a local bytewax cluster; chDB written by process 0)
  state        the first STATE_MESSAGES messages with bytewax recovery on: the bytes of the last
               snapshot of every domain-stage key (resolution, arbiter, lifecycle, inventory),
               divided by the deliveries the lifecycle holds at the end
  big delivery one delivery of 2,500 / 10,000 / 40,000 events in one EPCIS document (1 process):
               a delivery's cost must grow linearly with its events (issue 10: it was quadratic)
and one markdown table is printed (`--readme` also writes it into README.md's benchmark section).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STATE_MESSAGES = 100_000
BIG_DELIVERY_EVENTS = (2_500, 10_000, 40_000)
DOMAIN_STEPS = ("resolution", "arbiter", "lifecycle", "inventory")
TARGETS = {"ceiling": 25_000, "pipeline_1": 8_000, "speedup": 1.6, "state_bytes": 1_000, "rss_mib": 500}
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def ensure_replay(deliveries: int, seed: int) -> tuple[Path, Path]:
    from flows.simulate import write_scenario

    workdir = REPO / "var" / "bench" / f"d{deliveries}-s{seed}"
    replay, master = workdir / "scenario.jsonl", workdir / "master"
    if not replay.exists():
        started = time.perf_counter()
        count = write_scenario(replay, master, seed=seed, deliveries=deliveries)
        print(f"generated {count:,} messages in {time.perf_counter() - started:.1f} s -> {replay}", file=sys.stderr)
    return replay, master


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_ceiling(replay: Path, master_dir: Path) -> dict[str, Any]:
    from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS, Normalizer
    from sources.master_files import load_master
    from sources.replay import parse_line

    normalizer = Normalizer(DEFAULT_TOPIC_ADAPTERS, load_master(master_dir))
    started = time.perf_counter()
    messages = events = 0
    with replay.open("rb") as handle:
        for offset, line in enumerate(handle):
            result = normalizer(parse_line(line, offset))
            messages += 1
            events += len(result.events)
    seconds = time.perf_counter() - started
    return {"messages": messages, "events": events, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}


def part_pipeline(replay: Path, master_dir: Path, processes: int, recovery: Path | None = None) -> dict[str, Any]:
    from flows.run import run_pipeline
    from flows.settings import Settings
    from flows.summary import read_summary

    with tempfile.TemporaryDirectory(prefix="logisync-bench-") as store_dir:
        settings = Settings(
            source=f"file:{replay}",
            clickhouse=f"chdb://{store_dir}",
            master_dir=master_dir,
            processes=processes,
            recovery_dir=recovery,
        )
        result = run_pipeline(settings, progress=False)
        summary = read_summary(result.store, result.run_id, result.seconds)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the other processes
    return {
        "messages": summary.total("raw_in"),
        "events": summary.total("events_out"),
        "seconds": result.seconds,
        "peak_rss_mib": max(peak_rss_mib(), children),
        "inserts": result.sink.inserts,
        "rows": result.sink.rows,
        "insert_seconds": result.sink.seconds,
        "balanced": summary.balanced,
    }


def part_state(replay: Path, master_dir: Path) -> dict[str, Any]:
    """Snapshot bytes of the domain stages per delivery held, after STATE_MESSAGES messages."""
    with tempfile.TemporaryDirectory(prefix="logisync-bench-state-") as workdir:
        head = Path(workdir) / "head.jsonl"
        with replay.open("rb") as source, head.open("wb") as out:
            for index, line in enumerate(source):
                if index >= STATE_MESSAGES:
                    break
                out.write(line)
        recovery = Path(workdir) / "recovery"
        measured = part_pipeline(head, master_dir, 1, recovery)
        per_step: dict[str, int] = {}
        for part in sorted(recovery.glob("part-*.sqlite3")):
            with sqlite3.connect(part) as db:
                rows = db.execute(
                    "SELECT step_id, state_key, length(ser_change) FROM snaps AS s "
                    "WHERE snap_epoch = (SELECT max(snap_epoch) FROM snaps WHERE step_id = s.step_id "
                    "AND state_key = s.state_key) AND ser_change IS NOT NULL"
                ).fetchall()
            for step_id, _, size in rows:
                step = str(step_id).split(".")[1] if "." in str(step_id) else str(step_id)
                per_step[step] = per_step.get(step, 0) + int(size or 0)
        deliveries = _held_deliveries(per_step, recovery)
    domain = sum(size for step, size in per_step.items() if step in DOMAIN_STEPS)
    return {
        "messages": measured["messages"],
        "per_step": per_step,
        "domain_bytes": domain,
        "deliveries": deliveries,
        "bytes_per_delivery": domain / deliveries if deliveries else None,
    }


def part_big_delivery() -> dict[str, Any]:
    """Seconds of the flow for one delivery of N events in one EPCIS document, per N."""
    from flows.run import run_pipeline
    from flows.settings import Settings
    from simulator.stress import epcis_document
    from sources.replay import write_replay

    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="logisync-bench-big-") as workdir:
        for count in BIG_DELIVERY_EVENTS:
            replay = Path(workdir) / f"d{count}.jsonl"
            with replay.open("wb") as out:
                received = datetime(2024, 6, 3, 14, 6, tzinfo=UTC)
                write_replay(out, [("wms.epcis", "80004711", received, epcis_document(count, quantity=0.1))])
            settings = Settings(source=f"file:{replay}", clickhouse=f"chdb://{workdir}/store", database=f"big{count}")
            seconds[str(count)] = run_pipeline(settings, progress=False).seconds
    return {"seconds": seconds}


def _held_deliveries(per_step: dict[str, int], recovery: Path) -> int:
    """Deliveries in the lifecycle snapshots (each bucket's state lists its deliveries)."""
    import msgspec

    from flows.snapshots import Envelope
    from flows.stages import BucketSnapshot
    from operators.domain.lifecycle import LifecycleState

    held = 0
    for part in sorted(recovery.glob("part-*.sqlite3")):
        with sqlite3.connect(part) as db:
            rows = db.execute(
                "SELECT ser_change FROM snaps AS s WHERE step_id LIKE '%lifecycle%' AND snap_epoch = "
                "(SELECT max(snap_epoch) FROM snaps WHERE step_id = s.step_id AND state_key = s.state_key) "
                "AND ser_change IS NOT NULL"
            ).fetchall()
        for (blob,) in rows:
            import pickle

            change = pickle.loads(blob)
            payload = change if isinstance(change, bytes) else getattr(change, "state", change)
            if not isinstance(payload, bytes) or not payload:
                continue
            envelope = msgspec.msgpack.decode(payload, type=Envelope)
            bucket = msgspec.msgpack.decode(envelope.state, type=BucketSnapshot)
            state = msgspec.msgpack.decode(bucket.logic_state, type=LifecycleState)
            held += len(state.deliveries)
    return held


def run_part(part: str, replay: Path, master: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--part", part, "--replay", str(replay), "--master", str(master)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model}), {memory:.0f} GiB, Python {platform.python_version()}"


def table(
    ceiling: dict[str, Any], one: dict[str, Any], two: dict[str, Any], state: dict[str, Any], big: dict[str, Any]
) -> str:
    c_rate = ceiling["messages"] / ceiling["seconds"]
    one_rate = one["messages"] / one["seconds"]
    two_rate = two["messages"] / two["seconds"]

    def mark(ok: bool) -> str:
        return "met" if ok else "missed"

    per_delivery = state["bytes_per_delivery"]
    rows = [
        "| run | msg/s | time | peak RSS | ratio | target |",
        "|---|---:|---:|---:|---:|---|",
        f"| ceiling: read + normalize loop | {c_rate:,.0f} | {ceiling['seconds']:.1f} s | "
        f"{ceiling['peak_rss_mib']:,.0f} MiB | 1.00 | ≥ {TARGETS['ceiling']:,} msg/s: "
        f"{mark(c_rate >= TARGETS['ceiling'])} |",
        f"| pipeline, 1 process | {one_rate:,.0f} | {one['seconds']:.1f} s | {one['peak_rss_mib']:,.0f} MiB | "
        f"{one_rate / c_rate:.2f} of ceiling | ≥ {TARGETS['pipeline_1']:,} msg/s: "
        f"{mark(one_rate >= TARGETS['pipeline_1'])}; RSS ≤ {TARGETS['rss_mib']} MiB: "
        f"{mark(one['peak_rss_mib'] <= TARGETS['rss_mib'])} |",
        f"| pipeline, 2 processes | {two_rate:,.0f} | {two['seconds']:.1f} s | {two['peak_rss_mib']:,.0f} MiB "
        f"(largest process) | {two_rate / one_rate:.2f} × 1 process | ≥ {TARGETS['speedup']} ×: "
        f"{mark(two_rate / one_rate >= TARGETS['speedup'])} |",
    ]
    state_line = (
        f"Live domain state: {per_delivery:,.0f} bytes per delivery held "
        f"({state['domain_bytes']:,} bytes of resolution, arbiter, lifecycle and inventory snapshots for "
        f"{state['deliveries']:,} deliveries, after {state['messages']:,} messages); target ≤ "
        f"{TARGETS['state_bytes']:,}: {mark(per_delivery is not None and per_delivery <= TARGETS['state_bytes'])}."
        if per_delivery is not None
        else "Live domain state: not measured (no lifecycle snapshot found)."
    )
    times = {int(count): seconds for count, seconds in big["seconds"].items()}
    smallest, largest = min(times), max(times)
    growth = (times[largest] / times[smallest]) / (largest / smallest)
    big_line = (
        "One delivery of N events in one EPCIS document: "
        + ", ".join(
            f"{count:,} events {seconds:.2f} s ({seconds / count * 1e6:,.0f} µs/event)"
            for count, seconds in sorted(times.items())
        )
        + f"; time per event at {largest:,} is {growth:.2f} × that at {smallest:,} "
        f"(linear ≤ 1.5: {mark(growth <= 1.5)})."
    )
    header = (
        f"`make bench` on {datetime.now(UTC):%Y-%m-%d}, {machine()}: {ceiling['messages']:,} messages, "
        f"{ceiling['events']:,} events (simulator, {one['inserts']:,} inserts of "
        f"{one['rows'] / max(one['inserts'], 1):,.0f} rows on average, {one['insert_seconds']:.1f} s inserting "
        f"in the 1-process run; accounting balanced: {bool(one['balanced']) and bool(two['balanced'])})."
    )
    return "\n".join([header, "", *rows, "", state_line, "", big_line])


def write_readme(text: str) -> None:
    readme = REPO / "README.md"
    content = readme.read_text(encoding="utf-8")
    start, end = content.find(README_START), content.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"README.md has no {README_START} ... {README_END} section")
    readme.write_text(content[: start + len(README_START)] + "\n" + text + "\n" + content[end:], encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=25_000, help="simulator deliveries (default 25000)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--readme", action="store_true", help="also write the table into README.md")
    parser.add_argument(
        "--part",
        choices=("generate", "ceiling", "pipeline", "pipeline2", "state", "big_delivery"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--replay", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--master", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "generate":
        ensure_replay(args.deliveries, args.seed)
        return 0
    if args.part is not None:
        parts = {
            "ceiling": lambda: part_ceiling(args.replay, args.master),
            "pipeline": lambda: part_pipeline(args.replay, args.master, 1),
            "pipeline2": lambda: part_pipeline(args.replay, args.master, 2),
            "state": lambda: part_state(args.replay, args.master),
            "big_delivery": part_big_delivery,
        }
        print(json.dumps(parts[args.part]()))
        return 0

    subprocess.run([sys.executable, __file__, "--part", "generate", "--deliveries", str(args.deliveries),
                    "--seed", str(args.seed)], check=True, cwd=REPO)  # fmt: skip
    replay, master = ensure_replay(args.deliveries, args.seed)
    results = {}
    for part in ("ceiling", "pipeline", "pipeline2", "state", "big_delivery"):
        started = time.perf_counter()
        results[part] = run_part(part, replay, master)
        print(f"  {part}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    text = table(
        results["ceiling"], results["pipeline"], results["pipeline2"], results["state"], results["big_delivery"]
    )
    print(text)
    if args.readme:
        write_readme(text)
    for name in ("pipeline", "pipeline2"):
        if results[name]["messages"] != results["ceiling"]["messages"]:
            print(f"ERROR: {name} accounted for a different number of messages than were read", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
