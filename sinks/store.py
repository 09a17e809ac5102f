"""Connecting to ClickHouse (embedded chDB or a server over HTTP) and running the migrations."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import clickhouse_connect

from sinks.urls import UrlError, parse_http_url, redact_url

log = logging.getLogger(__name__)

DEFAULT_DSN = "chdb://./var/clickhouse"
DEFAULT_DATABASE = "logisync"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StoreError(RuntimeError):
    """The store cannot be reached or used; the message is one line for the CLI."""


def database_problem(name: str) -> str | None:
    """Why `name` cannot be a database name (it is spliced into DDL), or None."""
    if not _NAME.match(name):
        return f"must be a name of letters, digits and _ (not starting with a digit), got {name!r}"
    return None


def dsn_problem(dsn: str) -> str | None:
    """Why `dsn` cannot be used (chdb://PATH or http(s)://[user:password@]host[:port]), or None.

    The message shows the DSN without its password.
    """
    scheme = dsn.partition("://")[0]
    if scheme == "chdb":
        if any(ord(char) < 0x20 for char in dsn):
            return "must not contain control characters"
        return None
    if scheme not in ("http", "https"):
        return f"must be chdb://PATH or http(s)://[user:password@]host:port, got {redact_url(dsn)!r}"
    try:
        parse_http_url(dsn, "the DSN")
    except UrlError as exc:
        return exc.problem
    return None


@dataclass(frozen=True)
class StoreConfig:
    dsn: str = DEFAULT_DSN
    database: str = DEFAULT_DATABASE

    def __post_init__(self) -> None:
        problem = database_problem(self.database)
        if problem:
            raise StoreError(f"database {problem}")
        problem = dsn_problem(self.dsn)
        if problem:
            raise StoreError(f"ClickHouse DSN {problem}")

    def __repr__(self) -> str:
        return f"StoreConfig(dsn={self.redacted()!r}, database={self.database!r})"

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb://")

    @property
    def chdb_path(self) -> str:
        """The on-disk path of an embedded store (`chdb://./var/x` -> `./var/x`)."""
        return self.dsn[len("chdb://") :] or ":memory:"

    def redacted(self) -> str:
        """The DSN without a password, for logs and messages."""
        return redact_url(self.dsn)


# chDB runs one engine per process; clients on that path share it but are not safe to use
# from two threads at once, so embedded clients are shared and every call takes this lock.
_CHDB_LOCK = threading.RLock()
_CHDB_CLIENTS: dict[str, Any] = {}


def _without_pandas() -> None:
    """clickhouse-connect asks, on every insert, whether the data is a pandas DataFrame, and so
    imports pandas (~80 MiB resident) the first time. We insert Python columns only: tell it that
    pandas is absent (its lazily resolved `options.pd`), so it is never imported."""
    from clickhouse_connect.driver import options

    if "pd" not in vars(options):
        options.pd = None
        options.pd_time_test = None


def connect(config: StoreConfig) -> Any:
    """A clickhouse-connect client for the store. Raises StoreError with one line on failure."""
    _without_pandas()
    try:
        if config.embedded:
            path = config.chdb_path
            with _CHDB_LOCK:
                client = _CHDB_CLIENTS.get(path)
                if client is None:
                    if path != ":memory:":
                        Path(path).mkdir(parents=True, exist_ok=True)
                    client = clickhouse_connect.get_client(interface="chdb", path=path)
                    _CHDB_CLIENTS[path] = client
            return client
        return clickhouse_connect.get_client(dsn=config.dsn, connect_timeout=10, send_receive_timeout=120)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in () if config.embedded else parse_http_url(config.dsn, "DSN").credentials():
            first_line = first_line.replace(secret, "***")  # a driver message may quote the DSN
        raise StoreError(f"cannot reach ClickHouse at {config.redacted()}: {first_line}") from exc


def chdb_lock() -> threading.RLock:
    return _CHDB_LOCK


def command(client: Any, sql: str) -> Any:
    with _CHDB_LOCK:
        return client.command(sql)


def query_rows(client: Any, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with _CHDB_LOCK:
        return list(client.query(sql, parameters=parameters).result_rows)


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of the packaged migrations, in order."""
    found = []
    for entry in resources.files("sinks").joinpath("migrations").iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def split_statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in re.split(r";\s*(?:\n|$)", body) if statement.strip()]


def migrate(client: Any, database: str) -> list[str]:
    """Create the database and apply pending migrations; returns the names applied now."""
    command(client, f"CREATE DATABASE IF NOT EXISTS {database}")
    command(
        client,
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version",
    )
    applied = {row[0] for row in query_rows(client, f"SELECT version FROM {database}.schema_migrations FINAL")}
    done = []
    for version, name, sql in migration_files():
        if version in applied:
            continue
        for statement in split_statements(sql.replace("{db}", database)):
            command(client, statement)
        with _CHDB_LOCK:
            client.insert(f"{database}.schema_migrations", [[version, name]], column_names=["version", "name"])
        log.info("applied migration %s to %s", name, database)
        done.append(name)
    return done
