"""`logisync dlq list` and `logisync dlq replay`: flags and output (flows/dlq.py does the work).

A bad flag is a SettingsError: one line and exit code 2, like every CLI error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.settings import Settings, SettingsError, build_settings
from operators.model import DeadLetterReason
from sources.dead_letters import LetterFilter

StoreFlags = Callable[[argparse.ArgumentParser], None]


def _settings(args: argparse.Namespace, names: Sequence[str]) -> Settings:
    values: dict[str, Any] = {name: getattr(args, name, None) for name in names}
    return build_settings(getattr(args, "config", None), values)


def add_dlq_commands(commands: Any, store_flags: StoreFlags) -> None:
    dlq = commands.add_parser(
        "dlq",
        help="list and replay stored dead letters",
        description="Dead letters kept in the store: list the pending ones, or replay them through the same "
        "adapters and flow after the master data or an adapter was fixed.",
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="the pending dead letters, with counts by reason and topic",
        description="Dead letters not replayed yet, or still dead after their last replay (--all: every one).",
    )
    _add_letter_filters(listing)
    listing.add_argument("--all", action="store_true", dest="every", help="also letters a replay took care of")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.add_argument("--limit", type=int, default=100, help="letters shown (default 100); counts cover all")
    store_flags(listing)
    replay = actions.add_parser(
        "replay",
        help="feed the pending dead letters through the flow again",
        description="Replay the pending dead letters (the filters select which) through the same adapters and "
        "flow: locally, or in Kafka mode (--bootstrap, or source = kafka) produced back onto their topics for "
        "the running pipeline. A replayed message keeps its raw_ref; the accounting moves it from "
        "dead-lettered to its new outcome.",
    )
    _add_letter_filters(replay)
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed; change nothing")
    replay.add_argument(
        "--master",
        type=Path,
        dest="master_dir",
        metavar="DIR",
        help="products.csv + sites.csv, fixed (a local replay; in Kafka mode the pipeline uses its own)",
    )
    replay.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka mode: produce onto the source topics")
    replay.add_argument("--quiet", action="store_true", help="no progress output")
    store_flags(replay)


def _add_letter_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", action="append", dest="topics", metavar="TOPIC", help="only this topic (repeat)")
    parser.add_argument(
        "--reason",
        action="append",
        dest="reasons",
        choices=[str(reason) for reason in DeadLetterReason],
        help="only this reason (repeat)",
    )
    parser.add_argument("--since", metavar="TIME", help="received at or after (ISO 8601; UTC if no offset)")
    parser.add_argument("--until", metavar="TIME", help="received before (ISO 8601; UTC if no offset)")


def _time(flag: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(
            f"{flag} must be an ISO 8601 time (2026-03-02 or 2026-03-02T09:00:00Z), got {text!r}"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _letter_filter(args: argparse.Namespace) -> LetterFilter:
    return LetterFilter(
        topics=tuple(args.topics or ()),
        reasons=tuple(args.reasons or ()),
        since=_time("--since", args.since),
        until=_time("--until", args.until),
        every=getattr(args, "every", False),
    )


def cmd_dlq(args: argparse.Namespace) -> int:
    from flows import dlq
    from sources.dead_letters import select_letters

    letters = _letter_filter(args)
    if args.dlq_command == "list":
        if args.limit < 0:
            raise SettingsError(f"--limit must be >= 0, got {args.limit}")
        settings = _settings(args, ("clickhouse", "database"))
        store, client = dlq.open_store(settings)
        listing = dlq.list_letters(client, store.database, letters, args.limit)
        print(dlq.format_listing(listing, letters, args.format == "json"))
        return 0
    settings = _settings(args, ("clickhouse", "database", "master_dir", "bootstrap"))
    kafka = dlq.kafka_mode(settings, args.bootstrap)
    if kafka and not settings.bootstrap:
        raise SettingsError("Kafka mode needs --bootstrap HOST:PORT (or LOGISYNC_BOOTSTRAP)")
    store, client = dlq.open_store(settings)
    selected = select_letters(client, store.database, letters)
    target = f"onto their topics at {settings.bootstrap}" if kafka else "through the flow in this process"
    if args.dry_run or not selected:
        print(dlq.format_plan(selected, target))
        return 0
    if kafka:
        print(f"replaying {len(selected):,} dead letters {target} ...", file=sys.stderr)
        done = dlq.replay_to_kafka(settings, client, store.database, selected, not args.quiet)
        print(
            f"logisync dlq replay {done.run_id}: produced {done.produced:,} dead letters back onto their topics "
            f"(header logisync.replay_of); the running pipeline records their outcome as it reads them"
        )
        for raw_ref, why in done.failed[:20]:
            print(f"  not produced: {raw_ref}: {why}")
        if len(done.failed) > 20:
            print(f"  ... and {len(done.failed) - 20:,} more not produced")
        return 0 if not done.failed else 1
    from flows.run import run_pipeline
    from flows.summary import format_accounting, read_summary

    replay = dlq.replay_settings(settings)
    print(f"replaying {len(selected):,} dead letters {target} (run {replay.run_id}) ...", file=sys.stderr)
    result = run_pipeline(replay, progress=not args.quiet, letters=selected)
    summary = read_summary(result.store, result.run_id, result.seconds, domain=False)
    print(f"logisync dlq replay {result.run_id}: {summary.total('replayed'):,} dead letters in {result.seconds:.1f} s")
    print("\n".join(format_accounting(summary)))
    print(f"  dead letters still pending: {dlq.pending_count(client, store.database):,} (logisync dlq list)")
    return 0 if summary.balanced else 1
