"""The `logisync` command line: run, simulate, query, serve, dlq.

Errors a user can fix (a bad flag, a missing file, an unreachable store) are one line on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from flows.cli_dlq import add_dlq_commands, cmd_dlq
from flows.settings import Settings, SettingsError, build_settings
from operators.formats.master_csv import MasterDataError
from sinks.store import StoreConfig, StoreError, connect, query_rows
from sources.kafka_client import KafkaUnavailableError

EXIT_USAGE = 2


class UserError(Exception):
    """An error the user can fix; printed as one line."""


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clickhouse",
        metavar="DSN",
        help="chdb://PATH (default chdb://./var/clickhouse) or http(s)://user:pass@host:port",
    )
    parser.add_argument("--database", help="ClickHouse database (default logisync)")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logisync",
        description="Normalize ERP, warehouse and carrier feeds into canonical events in ClickHouse.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the pipeline (default: the built-in simulator into the embedded store)",
        description="Run the pipeline to the end of its input and print a summary. Without --source "
        "the built-in simulator feeds it (a seeded scenario written under var/simulator/).",
    )
    run.add_argument("--source", help="simulator (default), file:PATH (a replay file), or kafka")
    run.add_argument("--master", type=Path, dest="master_dir", metavar="DIR", help="products.csv + sites.csv")
    run.add_argument("--workers", type=int, help="bytewax workers in each process (default 1)")
    run.add_argument("--processes", type=int, help="bytewax processes on this machine (default 1)")
    run.add_argument("--process-id", type=int, help="this process's index in --addresses (multi-machine cluster)")
    run.add_argument("--addresses", metavar="H:P;H:P", help="every cluster process's host:port, in order")
    run.add_argument("--run-id", help="the run's id (give every process of a cluster the same)")
    run.add_argument(
        "--no-create-topics",
        dest="create_topics",
        action="store_false",
        default=None,
        help="Kafka: do not create missing output topics (dead letters, alerts)",
    )
    run.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (with --source kafka)")
    run.add_argument(
        "--until-end", action="store_true", default=None, help="Kafka: stop at the end offsets seen at start"
    )
    run.add_argument("--seed", type=int, dest="sim_seed", help="simulator seed (default 7)")
    run.add_argument("--deliveries", type=int, dest="sim_deliveries", help="simulator deliveries (default 300)")
    run.add_argument("--recovery-dir", type=Path, metavar="DIR", help="bytewax recovery store: resume after a crash")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="also serve the dashboards from this run (host default 127.0.0.1); after a replay, until Ctrl-C",
    )
    _add_store_flags(run)

    simulate = commands.add_parser(
        "simulate",
        help="write the simulator's scenario as a replay file",
        description="Write a coherent, seeded scenario in all raw formats as a replay file (JSON Lines).",
    )
    simulate.add_argument("--out", type=Path, metavar="FILE", help="replay file to write")
    simulate.add_argument("--master-out", type=Path, metavar="DIR", help="also write products.csv and sites.csv")
    simulate.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    simulate.add_argument("--deliveries", type=int, default=300, help="number of deliveries (default 300)")
    simulate.add_argument("--to-kafka", action="store_true", help="produce onto the Kafka topics instead of a file")
    simulate.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (with --to-kafka)")
    simulate.add_argument("--partitions", type=int, default=3, help="partitions of topics it creates (default 3)")
    simulate.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file (Kafka client settings)")

    query = commands.add_parser(
        "query",
        help="run SQL against the configured store",
        description="Run one SQL statement against the configured ClickHouse store and print the rows.",
    )
    query.add_argument("sql", help='for example "SELECT event_type, count() FROM logisync.events FINAL GROUP BY 1"')
    query.add_argument("--format", choices=("table", "json", "tsv"), default="table")
    _add_store_flags(query)

    serve = commands.add_parser(
        "serve",
        help="serve the dashboards (web page, JSON API, /metrics) of a store",
        description="Serve the dashboards of a store no run holds (an embedded store admits one process: "
        "use `logisync run --serve` to watch a running pipeline).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    _add_store_flags(serve)
    add_dlq_commands(commands, _add_store_flags)
    return parser


def _settings(args: argparse.Namespace, names: Sequence[str]) -> Settings:
    values: dict[str, Any] = {name: getattr(args, name, None) for name in names}
    return build_settings(getattr(args, "config", None), values)


def cmd_run(args: argparse.Namespace) -> int:
    from flows.domain_config import build_domain_config
    from flows.run import resolve_simulator, run_pipeline
    from flows.summary import format_summary, read_summary

    settings = _settings(
        args,
        (
            "source",
            "clickhouse",
            "database",
            "master_dir",
            "workers",
            "processes",
            "process_id",
            "addresses",
            "run_id",
            "create_topics",
            "bootstrap",
            "until_end",
            "sim_seed",
            "sim_deliveries",
            "recovery_dir",
        ),
    )
    build_domain_config(settings)  # [inventory] and [[handoffs]] are checked before any work too
    if settings.source == "simulator":
        print(f"simulating {settings.sim_deliveries} deliveries (seed {settings.sim_seed}) ...", file=sys.stderr)
        settings = resolve_simulator(settings, Path("var/simulator"))
    store = StoreConfig(settings.clickhouse, settings.database)
    print(f"running {settings.source} -> {store.redacted()} (database {store.database})", file=sys.stderr)
    address = _serve_address(args.serve) if args.serve else None
    result = run_pipeline(settings, progress=not args.quiet, serve=address)
    summary = read_summary(result.store, result.run_id, result.seconds)
    print(format_summary(summary))
    if result.web is not None:
        print(f"run finished; still serving {result.web.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        # bytewax's run leaves its own SIGINT handler installed; Ctrl-C must reach Python again
        signal.signal(signal.SIGINT, signal.default_int_handler)
        while result.web.thread.is_alive():
            result.web.thread.join(timeout=1.0)
    return 0 if summary.balanced else 1


def _serve_address(text: str) -> tuple[str, int]:
    from web.server import ServeError, parse_address

    try:
        return parse_address(text)
    except ServeError as exc:
        raise UserError(str(exc)) from exc


def cmd_serve(args: argparse.Namespace) -> int:
    from web.server import ServeError, check_not_locked, serve_forever

    settings = _settings(args, ("clickhouse", "database"))
    store = StoreConfig(settings.clickhouse, settings.database)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be from 0 to 65535, got {args.port}")
    check_not_locked(store)
    client = connect(store)
    tables = query_rows(
        client,
        "SELECT count() FROM system.tables WHERE database = %(db)s AND name IN ('events', 'stage_watermarks')",
        {"db": store.database},
    )
    if tables[0][0] < 2:
        raise UserError(
            f"database {store.database} at {store.redacted()} has no (current) logisync tables: "
            "run `logisync run` against it first"
        )
    print(f"serving {store.redacted()} (database {store.database}) at http://{args.host}:{args.port}/", file=sys.stderr)
    try:
        serve_forever(client, store.database, args.host, args.port)
    except ServeError as exc:
        raise UserError(str(exc)) from exc
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from flows.simulate import write_scenario

    if args.deliveries < 1:
        raise UserError(f"--deliveries must be >= 1, got {args.deliveries}")
    if args.to_kafka:
        from flows.simulate import produce_scenario

        settings = _settings(args, ("bootstrap",))
        if not settings.bootstrap:
            raise UserError("--to-kafka needs --bootstrap HOST:PORT (or LOGISYNC_KAFKA_BOOTSTRAP)")
        count = produce_scenario(
            settings.bootstrap,
            seed=args.seed,
            deliveries=args.deliveries,
            partitions=args.partitions,
            config=settings.kafka_config,
        )
        print(f"produced {count:,} messages to {settings.bootstrap}")
        return 0
    if args.out is None:
        raise UserError("give --out FILE (a replay file) or --to-kafka --bootstrap HOST:PORT")
    count = write_scenario(args.out, args.master_out, seed=args.seed, deliveries=args.deliveries)
    where = f" and master data to {args.master_out}" if args.master_out else ""
    print(f"wrote {count:,} messages to {args.out}{where}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    settings = _settings(args, ("clickhouse", "database"))
    store = StoreConfig(settings.clickhouse, settings.database)
    client = connect(store)
    try:
        result = client.query(args.sql)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"query failed: {message}") from exc
    names = list(result.column_names)
    rows = [list(row) for row in result.result_rows]
    if args.format == "json":
        for row in rows:
            print(orjson.dumps(dict(zip(names, row, strict=True)), default=str).decode())
    elif args.format == "tsv":
        print("\t".join(names))
        for row in rows:
            print("\t".join(str(value) for value in row))
    else:
        _print_table(names, rows)
    return 0


def _print_table(names: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(names)]
    print("  ".join(name.ljust(width) for name, width in zip(names, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    for row in cells:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)))
    print(f"({len(rows)} rows)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = {"run": cmd_run, "simulate": cmd_simulate, "query": cmd_query, "serve": cmd_serve, "dlq": cmd_dlq}
    try:
        return handlers[args.command](args)
    except (UserError, SettingsError, StoreError, KafkaUnavailableError, MasterDataError) as exc:
        print(f"logisync {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"logisync {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
