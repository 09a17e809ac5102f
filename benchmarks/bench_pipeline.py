"""`make bench`: the whole pipeline vs. a plain read+normalize loop (the ceiling), same messages.

Generates a replay of at least 200k messages with the simulator (cached under var/bench/),
then runs, each in its own process so peak memory is its own:
  ceiling   read the replay file and normalize every message in a plain Python loop
  pipeline  `logisync run --source file:...` into a fresh embedded ClickHouse store
and prints messages/s for both, their ratio, and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def ensure_replay(deliveries: int, seed: int) -> tuple[Path, Path]:
    from flows.simulate import write_scenario

    workdir = REPO / "var" / "bench" / f"d{deliveries}-s{seed}"
    replay, master = workdir / "scenario.jsonl", workdir / "master"
    if not replay.exists():
        started = time.perf_counter()
        count = write_scenario(replay, master, seed=seed, deliveries=deliveries)
        print(f"generated {count:,} messages in {time.perf_counter() - started:.1f} s -> {replay}", file=sys.stderr)
    return replay, master


def generate(deliveries: int, seed: int) -> tuple[Path, Path]:
    """The replay, generated in a child process so this one stays small."""
    command = [sys.executable, __file__, "--part", "generate", "--deliveries", str(deliveries), "--seed", str(seed)]
    subprocess.run(command, check=True, cwd=REPO)
    return ensure_replay(deliveries, seed)


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_ceiling(replay: Path, master_dir: Path) -> dict[str, float]:
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


def part_pipeline(replay: Path, master_dir: Path, workers: int) -> dict[str, float]:
    from flows.run import run_pipeline
    from flows.settings import Settings
    from flows.summary import read_summary

    with tempfile.TemporaryDirectory(prefix="logisync-bench-") as store_dir:
        settings = Settings(
            source=f"file:{replay}", clickhouse=f"chdb://{store_dir}", master_dir=master_dir, workers=workers
        )
        result = run_pipeline(settings, progress=False)
        summary = read_summary(result.store, result.run_id, result.seconds)
    return {
        "messages": summary.total("raw_in"),
        "events": summary.total("events_out"),
        "seconds": result.seconds,
        "peak_rss_mib": peak_rss_mib(),
        "inserts": result.sink.inserts,
        "rows": result.sink.rows,
        "insert_seconds": result.sink.seconds,
        "balanced": summary.balanced,
    }


def run_part(part: str, replay: Path, master: Path, workers: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--part", part, "--replay", str(replay), "--master", str(master)]
    command += ["--workers", str(workers)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=25_000, help="simulator deliveries (default 25000)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--part", choices=("generate", "ceiling", "pipeline"), help=argparse.SUPPRESS)
    parser.add_argument("--replay", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--master", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "generate":
        ensure_replay(args.deliveries, args.seed)
        return 0
    if args.part == "ceiling":
        print(json.dumps(part_ceiling(args.replay, args.master)))
        return 0
    if args.part == "pipeline":
        print(json.dumps(part_pipeline(args.replay, args.master, args.workers)))
        return 0

    replay, master = generate(args.deliveries, args.seed)
    ceiling = run_part("ceiling", replay, master, args.workers)
    pipeline = run_part("pipeline", replay, master, args.workers)
    c_rate = ceiling["messages"] / ceiling["seconds"]
    p_rate = pipeline["messages"] / pipeline["seconds"]
    print(f"replay: {replay} ({ceiling['messages']:,.0f} messages, {ceiling['events']:,.0f} events)")
    print(
        f"ceiling  (read + normalize loop): {c_rate:>10,.0f} msg/s  {ceiling['seconds']:6.1f} s  "
        f"peak RSS {ceiling['peak_rss_mib']:,.0f} MiB"
    )
    print(
        f"pipeline (flow -> ClickHouse):    {p_rate:>10,.0f} msg/s  {pipeline['seconds']:6.1f} s  "
        f"peak RSS {pipeline['peak_rss_mib']:,.0f} MiB  workers {args.workers}"
    )
    print(
        f"pipeline / ceiling: {p_rate / c_rate:.2f}   inserts {pipeline['inserts']:,.0f} "
        f"({pipeline['rows'] / max(pipeline['inserts'], 1):,.0f} rows each, "
        f"{pipeline['insert_seconds']:.1f} s inserting)   accounting balanced: {bool(pipeline['balanced'])}"
    )
    if pipeline["messages"] != ceiling["messages"]:
        print("ERROR: the pipeline accounted for a different number of messages than were read", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
