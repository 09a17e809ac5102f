"""An independent answer for every panel: plain Python over the base tables' raw rows.

Nothing here uses the query layer's SQL, FINAL or its fragments: rows are read as inserted and
the latest version of each entity is picked in Python; percentiles follow ClickHouse's
`quantileExact` (the element at floor(level * n) of the sorted values).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TERMINAL = {"DELIVERED", "RETURNED", "CANCELLED"}
PARTNER_KINDS = {"wms", "carrier"}
Row = dict[str, Any]


def _rows(client: Any, sql: str) -> list[Row]:
    result = client.query(sql)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def _latest(rows: Iterable[Row], key: Callable[[Row], Any], order: str = "version") -> dict[Any, Row]:
    best: dict[Any, Row] = {}
    for row in rows:
        k = key(row)
        if k not in best or row[order] >= best[k][order]:
            best[k] = row
    return best


def quantile(values: list[float], level: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(int(level * len(ordered)), len(ordered) - 1)])


def naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def event_partner(event: Row) -> str:
    return (
        str(event["carrier"]) if event["source_kind"] == "carrier" and event["carrier"] else str(event["source_system"])
    )


@dataclass
class Base:
    events: list[Row]
    by_id: dict[str, Row]
    dead: list[Row]
    stats: list[Row]
    status: dict[str, Row]
    facts: dict[tuple[str, str], Row]
    alerts: list[Row]
    positions: list[Row]
    deltas: list[Row]
    links: list[Row]
    # event_id -> the time the lifecycle placed its local time at (an event_links row's tz_rule)
    placed: dict[str, datetime]
    watermarks: list[Row]

    @classmethod
    def load(cls, client: Any, db: str) -> Base:
        events = list(
            _latest(
                _rows(client, f"SELECT *, attributes['orphan'] AS orphan FROM {db}.events"),
                lambda r: (r["event_type"], r["event_id"]),
                "ingested_at",
            ).values()
        )
        dead = list(
            _latest(
                _rows(client, f"SELECT * FROM {db}.dead_letters"), lambda r: (r["topic"], r["raw_ref"]), "ingested_at"
            ).values()
        )
        links = list(
            _latest(
                _rows(client, f"SELECT * FROM {db}.event_links"), lambda r: (r["delivery_id"], r["event_id"])
            ).values()
        )
        return cls(
            events=events,
            by_id={e["event_id"]: e for e in events},
            dead=dead,
            stats=list(
                _latest(
                    _rows(client, f"SELECT * FROM {db}.ingest_stats"),
                    lambda r: (r["source"], r["block"], r["topic"]),
                    "messages",
                ).values()
            ),
            status=_latest(_rows(client, f"SELECT * FROM {db}.delivery_status"), lambda r: r["delivery_id"]),
            facts=_latest(
                _rows(client, f"SELECT * FROM {db}.sync_latency"), lambda r: (r["handoff"], r["delivery_id"])
            ),
            alerts=list(
                _latest(_rows(client, f"SELECT * FROM {db}.alerts"), lambda r: (r["rule"], r["alert_id"])).values()
            ),
            positions=list(
                _latest(
                    _rows(client, f"SELECT * FROM {db}.inventory_positions"), lambda r: (r["site"], r["sku"], r["uom"])
                ).values()
            ),
            deltas=list(
                _latest(
                    _rows(client, f"SELECT * FROM {db}.inventory_deltas"),
                    lambda r: (r["site"], r["sku"], r["uom"], r["version"]),
                ).values()
            ),
            links=links,
            placed={link["event_id"]: link["occurred_at"] for link in links if link["tz_rule"]},
            watermarks=list(
                _latest(
                    _rows(client, f"SELECT * FROM {db}.stage_watermarks"),
                    lambda r: (r["run_id"], r["stage"], r["bucket"]),
                    "updated_at",
                ).values()
            ),
        )

    # --- partners -------------------------------------------------------------------------
    def fact_partner(self, fact: Row) -> tuple[str, str]:
        """(partner, kind) on the fact's non-ERP side."""
        to, frm = self.by_id.get(fact["to_event_id"]), self.by_id.get(fact["from_event_id"])
        if to and to["source_kind"] in PARTNER_KINDS:
            return event_partner(to), to["source_kind"]
        if frm and frm["source_kind"] in PARTNER_KINDS:
            return event_partner(frm), frm["source_kind"]
        if to and event_partner(to):
            return event_partner(to), "erp"
        return (event_partner(frm) if frm else ""), "erp"

    def delivery_partners(self) -> dict[str, set[str]]:
        """The partners of a delivery's events: those that name it and those event_links attach."""
        partners: dict[str, set[str]] = defaultdict(set)
        for event in self.events:
            if event["delivery_id"] and event["source_kind"] in PARTNER_KINDS:
                partners[event["delivery_id"]].add(event_partner(event))
        for link in self.links:
            linked = self.by_id.get(link["event_id"])
            if linked and linked["source_kind"] in PARTNER_KINDS:
                partners[link["delivery_id"]].add(event_partner(linked))
        return partners

    # --- which events belong to a delivery ----------------------------------------------------
    def placed_at(self, event_id: str) -> datetime | None:
        return self.placed.get(event_id)

    def occurred(self, event: Row) -> datetime:
        """The time the lifecycle used for an event: placed in its delivery's zone, else its own."""
        placed = self.placed.get(event["event_id"])
        return placed if placed is not None else event["occurred_at"]

    def members(self, delivery: str) -> dict[str, str]:
        """event_id -> how it belongs to the delivery: 'event', the event_links via, or
        'unresolved_reference' (carries one of the delivery's references, attached to no delivery)."""
        out = {e["event_id"]: "event" for e in self.events if e["delivery_id"] == delivery}
        for link in self.links:
            if link["delivery_id"] == delivery:
                out.setdefault(link["event_id"], link["via"])
        refs = {
            ref.strip().upper()
            for e in self.events
            if e["delivery_id"] == delivery
            for ref in (e["tracking_number"], e["shipment_ref"])
            if ref
        }
        linked = {link["event_id"] for link in self.links}
        for e in self.events:
            carried = {ref.strip().upper() for ref in (e["tracking_number"], e["shipment_ref"]) if ref}
            if not e["delivery_id"] and e["event_id"] not in linked and carried & refs:
                out.setdefault(e["event_id"], "unresolved_reference")
        return out


class Filters:
    """The request parameters, as predicates."""

    def __init__(self, base: Base, values: dict[str, Any]) -> None:
        self.values = values
        self.start, self.end, self.as_of = (naive(values[k]) for k in ("start", "end", "as_of"))
        self.site, self.handoff, self.partner = values["site"], values["handoff"], values["partner"]
        partners = base.delivery_partners()
        self._deliveries = {d for d, names in partners.items() if self.partner in names}
        self._facts = {k for k, f in base.facts.items() if base.fact_partner(f)[0] == self.partner}

    def in_range(self, value: datetime | None) -> bool:
        return value is not None and self.start <= value < self.end

    def site_ok(self, site: str) -> bool:
        return not self.site or site == self.site

    def handoff_ok(self, handoff: str) -> bool:
        return not self.handoff or handoff == self.handoff

    def delivery_ok(self, delivery_id: str) -> bool:
        return not self.partner or delivery_id in self._deliveries

    def fact_ok(self, key: tuple[str, str]) -> bool:
        return not self.partner or key in self._facts


def minutes(ms: float | None) -> float | None:
    return None if ms is None or math.isnan(ms) else ms / 60000


def percentile_row(facts: list[Row]) -> dict[str, Any]:
    latencies = [f["latency_ms"] for f in facts]
    return {
        "facts": len(facts),
        "breaches": sum(1 for f in facts if f["breached"]),
        "p50_min": minutes(quantile(latencies, 0.5)),
        "p95_min": minutes(quantile(latencies, 0.95)),
        "p99_min": minutes(quantile(latencies, 0.99)),
        "sla_min": max(f["sla_ms"] for f in facts) / 60000,
    }


def counter_rows(counts: Counter[Any]) -> dict[Any, int]:
    return dict(counts)
