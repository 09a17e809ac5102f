"""The query layer's machinery: named, parameterized, read-only queries and how they are run.

Every panel of the web page, its JSON API and the Grafana dashboards is one `Query`. Its SQL is
fixed text written here; the only things that vary per request are ClickHouse server-side
parameters (`{site:String}`), bound by clickhouse-connect through `parameters=`, so no request
text ever becomes SQL. `{db}` is the configured database name, an identifier that `StoreConfig`
validated, substituted once per store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from string import Template
from typing import Any, Literal

from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks.store import chdb_lock

DT = "DateTime64(3, 'UTC')"

# The parameters a panel may take, with their ClickHouse types. Empty strings mean "all".
PARAM_TYPES: Mapping[str, str] = {
    "start": DT,  # range start (inclusive), event time unless the query says otherwise
    "end": DT,  # range end (exclusive)
    "as_of": DT,  # the data's clock: ages and overdue times are measured to it
    "site": "String",
    "handoff": "String",
    "partner": "String",
    "delivery": "String",  # delivery timeline
    "q": "String",  # delivery search: a delivery, order, tracking number or BOL
}
_PLACEHOLDER = re.compile(r"\{([a-z_]+):([^{}]+)\}")

ChartKind = Literal["bar", "line", "table", "stat"]


class ParamError(ValueError):
    """A request parameter that cannot be used; the message names it (HTTP 400)."""


class StoreReadError(RuntimeError):
    """A query failed in the store (unreachable, missing table); one line naming the query."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class Chart:
    """How a panel draws its rows: the web page and the Grafana generator both read this.

    `x` is the category or time column, `y` the value columns, `series` a column whose values
    become one line / bar group each (long format), `link` a column linking to the delivery page.
    """

    kind: ChartKind
    x: str = ""
    y: tuple[str, ...] = ()
    series: str = ""
    unit: str = ""
    link: str = ""
    stacked: bool = False


@dataclass(frozen=True)
class Query:
    name: str
    title: str
    sql: str
    description: str = ""
    params: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        found: dict[str, str] = {}
        for name, kind in _PLACEHOLDER.findall(self.sql):
            expected = PARAM_TYPES.get(name)
            if expected is None or kind != expected:
                raise ValueError(f"query {self.name}: placeholder {{{name}:{kind}}} is not a known parameter type")
            found[name] = kind
        object.__setattr__(self, "params", frozenset(found))

    def render(self, database: str) -> str:
        """The SQL for one database (a validated identifier, never request text)."""
        return self.sql.replace("{db}", database)


def build(name: str, title: str, sql: str, description: str = "", **fragments: str) -> Query:
    """A Query whose `$fragment` markers are replaced by shared SQL pieces (filters, partner CTEs).

    Fragments are static text from this package; string.Template's `$` leaves ClickHouse's
    `{name:Type}` placeholders and `{db}` untouched.
    """
    return Query(name, title, Template(sql).substitute(fragments).strip(), description)


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def run_query(client: Any, query: Query, database: str, values: Mapping[str, Any]) -> QueryResult:
    """Run one query with the parameters it declares, read-only, under the chDB lock.

    `SETTINGS readonly = 2` in the statement makes ClickHouse itself refuse anything but reads.
    It is a clause, not a client setting: chDB applies client settings with SET on the shared
    session and cannot SET them back once readonly, which would break the pipeline's inserts.
    Embedded clients are shared with the pipeline's sink, so the lock serializes with its inserts.
    """
    missing = sorted(query.params - values.keys())
    if missing:
        raise ParamError(f"query {query.name} needs parameter(s) {', '.join(missing)}")
    parameters = {name: values[name] for name in query.params}
    try:
        with chdb_lock():
            result = client.query(f"{query.render(database)}\nSETTINGS readonly = 2", parameters=parameters)
            return QueryResult(list(result.column_names), [list(row) for row in result.result_rows])
    except ClickHouseError as exc:
        raise StoreReadError(f"query {query.name} failed: {first_line(exc)}") from exc


def parse_time(name: str, text: str) -> datetime:
    """An ISO 8601 time parameter as aware UTC (naive input is read as UTC)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ParamError(f"parameter {name}: {text!r} is not an ISO 8601 time") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def clean_text(name: str, text: str, limit: int = 200) -> str:
    """A free-text filter value: trimmed, bounded, printable (it is bound, never spliced)."""
    value = text.strip()
    if len(value) > limit:
        raise ParamError(f"parameter {name}: longer than {limit} characters")
    if any(not char.isprintable() for char in value):
        raise ParamError(f"parameter {name}: contains control characters")
    return value


def placeholders(sql: str) -> Sequence[tuple[str, str]]:
    """(name, type) of every server-side placeholder in a SQL text, in order."""
    return [(name, kind) for name, kind in _PLACEHOLDER.findall(sql)]
