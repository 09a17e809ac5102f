"""Run named queries against one store in a process of its own and print the rows as JSON.

chDB admits one engine path per process, and a test session already holds one (the `chdb_dsn`
fixture), so a test reads the store of a `logisync run` subprocess through this script:

    .venv/bin/python -m tests.store_reader chdb://PATH < queries.json > rows.json

stdin is `{"name": "SQL", ...}`; stdout is `{"name": [[value, ...], ...], ...}`. Values that JSON
has no type for (bytes, Decimal, ...) are written as their `repr`, the same in every process, so
two stores' answers compare equal exactly when their rows do.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from sinks.store import StoreConfig, connect, query_rows


def _other(value: Any) -> str:
    return repr(value)


def read_store(dsn: str, queries: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    client = connect(StoreConfig(dsn))
    return {name: query_rows(client, sql) for name, sql in queries.items()}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.store_reader DSN < queries.json", file=sys.stderr)
        return 2
    answers = read_store(argv[0], orjson.loads(sys.stdin.buffer.read()))
    sys.stdout.buffer.write(orjson.dumps(answers, default=_other, option=orjson.OPT_NON_STR_KEYS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
