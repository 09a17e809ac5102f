"""The one query layer: every panel of the web page, its JSON API and the Grafana dashboards.

Each query is named, read-only, and parameterized only through ClickHouse server-side
parameters (see `web.querylib`). This module is the registry; the SQL lives beside it by topic.
"""

from __future__ import annotations

from collections.abc import Mapping

from web import queries_ops, queries_pipeline, queries_store, queries_sync, queries_timeline
from web.querylib import Query

QUERIES: Mapping[str, Query] = {
    query.name: query
    for query in (
        *queries_ops.QUERIES,
        *queries_sync.QUERIES,
        *queries_store.QUERIES,
        *queries_pipeline.QUERIES,
        *queries_timeline.QUERIES,
    )
}


def get(name: str) -> Query:
    """The query called `name`; KeyError names it when there is none."""
    try:
        return QUERIES[name]
    except KeyError:
        raise KeyError(f"no query named {name!r}") from None
