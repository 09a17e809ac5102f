"""The oracle's answer for each panel query: {key: {column: value}} from `oracle.Base` in Python."""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tests.web import expected_delivery, expected_pipeline
from tests.web.oracle import PARTNER_KINDS, TERMINAL, Base, Filters, event_partner, minutes, percentile_row, quantile

Answer = dict[Any, dict[str, Any]]


def in_flight_by_status(b: Base, f: Filters) -> Answer:
    counts = Counter(
        s["status"]
        for s in b.status.values()
        if s["status"] not in TERMINAL and f.site_ok(s["site"]) and f.delivery_ok(s["delivery_id"])
    )
    return {status: {"deliveries": n} for status, n in counts.items()}


def open_alerts_by_rule(b: Base, f: Filters) -> Answer:
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"open_alerts": 0, "critical": 0})
    for a in b.alerts:
        if (
            a["state"] == "open"
            and f.site_ok(a["site"])
            and f.handoff_ok(a["handoff"])
            and f.delivery_ok(a["delivery_id"])
        ):
            out[a["rule"]]["open_alerts"] += 1
            out[a["rule"]]["critical"] += a["severity"] == "critical"
    return dict(out)


def order_cycle_time(b: Base, f: Filters) -> Answer:
    created: dict[str, datetime] = {}
    for e in b.events:
        if e["event_type"] == "ORDER_CREATED" and e["order_id"]:
            created[e["order_id"]] = min(created.get(e["order_id"], e["occurred_at"]), e["occurred_at"])
    cycles: dict[str, list[float]] = defaultdict(list)
    for s in b.status.values():
        delivered = s["delivered_at"]
        if delivered is None or s["order_id"] not in created or not f.in_range(delivered):
            continue
        if f.site_ok(s["site"]) and f.delivery_ok(s["delivery_id"]):
            ms = (delivered - created[s["order_id"]]).total_seconds() * 1000
            cycles[s["site"]].append(ms)
            cycles["all sites"].append(ms)
    return {
        site: {"deliveries": len(v), "p50_h": quantile(v, 0.5) / 3600000, "p95_h": quantile(v, 0.95) / 3600000}  # type: ignore[operator]
        for site, v in cycles.items()
    }


def exception_queue(b: Base, f: Filters) -> Answer:
    partners = b.delivery_partners()
    out = {}
    for a in b.alerts:
        if a["state"] != "open" or not (f.site_ok(a["site"]) and f.handoff_ok(a["handoff"])):
            continue
        if not f.delivery_ok(a["delivery_id"]):
            continue
        due = a["due_at"]
        out[a["alert_id"]] = {
            "rule": a["rule"],
            "delivery_id": a["delivery_id"],
            "partners": ", ".join(sorted(partners.get(a["delivery_id"], ()))),
            "age_min": (f.as_of - a["opened_at"]).total_seconds() / 60,
            "overdue_min": None if due is None else (f.as_of - due).total_seconds() / 60,
            "summary": json.loads(a["details"]).get("summary", ""),
        }
    return out


def resolution_time_by_rule(b: Base, f: Filters) -> Answer:
    spans: dict[tuple[datetime, str], list[float]] = defaultdict(list)
    for a in b.alerts:
        resolved = a["resolved_at"]
        if a["state"] != "resolved" or resolved is None or not f.in_range(resolved):
            continue
        if f.site_ok(a["site"]) and f.handoff_ok(a["handoff"]) and f.delivery_ok(a["delivery_id"]):
            day = resolved.replace(hour=0, minute=0, second=0, microsecond=0)
            spans[(day, a["rule"])].append((resolved - a["opened_at"]).total_seconds() * 1000)
    return {
        k: {"resolved": len(v), "p50_min": minutes(quantile(v, 0.5)), "p95_min": minutes(quantile(v, 0.95))}
        for k, v in spans.items()
    }


def _in_flight(b: Base, f: Filters) -> list[dict[str, Any]]:
    return [
        s
        for s in b.status.values()
        if s["released_at"] is not None
        and s["status"] not in TERMINAL
        and f.site_ok(s["site"])
        and f.delivery_ok(s["delivery_id"])
    ]


def order_aging(b: Base, f: Filters) -> Answer:
    labels = ["0-4h", "4-24h", "1-3d", "3-7d", "7d+"]
    bounds = [4, 24, 72, 168]
    counts: Counter[tuple[str, str]] = Counter()
    for s in _in_flight(b, f):
        age_h = (f.as_of - s["released_at"]).total_seconds() / 3600
        counts[(labels[sum(age_h >= x for x in bounds)], s["status"])] += 1
    return {k: {"deliveries": n} for k, n in counts.items()}


def oldest_in_flight(b: Base, f: Filters) -> Answer:
    return {
        s["delivery_id"]: {"status": s["status"], "age_h": (f.as_of - s["released_at"]).total_seconds() / 3600}
        for s in _in_flight(b, f)
    }


def _completed(b: Base, f: Filters) -> list[dict[str, Any]]:
    return [
        fact
        for key, fact in b.facts.items()
        if fact["latency_ms"] is not None
        and f.in_range(fact["from_at"])
        and f.site_ok(fact["site"])
        and f.handoff_ok(fact["handoff"])
        and f.fact_ok(key)
    ]


def _grouped(facts: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> Answer:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for fact in facts:
        groups[key(fact)].append(fact)
    return {k: percentile_row(v) for k, v in groups.items()}


def latency_vs_sla(b: Base, f: Filters) -> Answer:
    return _grouped(_completed(b, f), lambda x: x["handoff"])


def latency_over_time(b: Base, f: Filters) -> Answer:
    return _grouped(_completed(b, f), lambda x: (x["from_at"].replace(minute=0, second=0, microsecond=0), x["handoff"]))


def latency_by_site(b: Base, f: Filters) -> Answer:
    return _grouped(_completed(b, f), lambda x: (x["handoff"], x["site"]))


def latency_by_partner(b: Base, f: Filters) -> Answer:
    return _grouped(_completed(b, f), lambda x: (x["handoff"], b.fact_partner(x)[0]))


def _dead_letter_partner(row: dict[str, Any]) -> str:
    import base64
    import re

    text = row["payload"]
    if row["payload_b64"]:
        text = base64.b64decode(text).decode("latin-1")
    if row["adapter"] == "x12":
        parts = re.split(r"[*|]", text)
        return parts[6].strip() if len(parts) > 6 else ""
    if row["adapter"] == "easypost":
        found = re.search(r'"carrier"\s*:\s*"([^"]*)"', text)
        return found.group(1) if found else ""
    return ""


def _orphan_entity(event: dict[str, Any]) -> str:
    for space, value in (
        ("ref:", event["tracking_number"]),
        ("ref:", event["shipment_ref"]),
        ("order:", event["order_id"]),
    ):
        if value.strip():
            return space + value.strip().upper()
    return "event:" + event["event_id"]


def partner_performance(b: Base, f: Filters) -> Answer:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in b.events:
        if e["source_kind"] in PARTNER_KINDS and f.in_range(e["received_at"]):
            groups[(e["source_kind"], event_partner(e))].append(e)
    facts: Counter[tuple[str, str]] = Counter()
    breaches: Counter[tuple[str, str]] = Counter()
    for fact in b.facts.values():
        if f.in_range(fact["from_at"]):
            partner, kind = b.fact_partner(fact)
            facts[(kind, partner)] += 1
            breaches[(kind, partner)] += fact["breached"]
    dead = Counter(_dead_letter_partner(d) for d in b.dead if f.in_range(d["received_at"]))
    orphaned = {a["entity"] for a in b.alerts if a["rule"] == "orphan_carrier_event"}
    linked = {link["event_id"] for link in b.links}
    orphans = Counter(
        event_partner(e)
        for e in b.events
        if e["source_kind"] == "carrier"
        and not e["delivery_id"]
        and e["event_id"] not in linked
        and f.in_range(e["received_at"])
        and _orphan_entity(e) in orphaned
    )
    out = {}
    for (kind, partner), events in groups.items():
        if f.partner and partner != f.partner:
            continue
        messages = len({e["raw_ref"] for e in events})
        recorded = [e for e in events if e["recorded_at"] is not None]
        source = [(e["recorded_at"] - b.occurred(e)).total_seconds() * 1000 for e in recorded]
        transport = [(e["received_at"] - e["recorded_at"]).total_seconds() * 1000 for e in recorded]
        out[(kind, partner)] = {
            "events": len(events),
            "messages": messages,
            "source_lag_p95_min": minutes(quantile(source, 0.95)),
            "transport_lag_p50_min": minutes(quantile(transport, 0.5)),
            "tz_assumed_share": sum(e["tz_assumed"] for e in events) / len(events),
            "orphan_events": orphans[partner] if kind == "carrier" else 0,
            "handoff_facts": facts[(kind, partner)],
            "breaches": breaches[(kind, partner)],
            "dead_letters": dead[partner],
            "dead_letter_rate": dead[partner] / (messages + dead[partner]),
        }
    return out


def partner_breaches(b: Base, f: Filters) -> Answer:
    groups: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for fact in b.facts.values():
        partner, kind = b.fact_partner(fact)
        if kind == "erp" or not f.in_range(fact["from_at"]) or not f.handoff_ok(fact["handoff"]):
            continue
        if not f.partner or partner == f.partner:
            groups[(partner, fact["handoff"])].append(fact["breached"])
    return {k: {"facts": len(v), "breaches": sum(v), "breach_rate": sum(v) / len(v)} for k, v in groups.items()}


def partner_volume_over_time(b: Base, f: Filters) -> Answer:
    counts: Counter[tuple[datetime, str]] = Counter()
    for e in b.events:
        partner = event_partner(e)
        if (
            e["source_kind"] in PARTNER_KINDS
            and f.in_range(e["received_at"])
            and (not f.partner or partner == f.partner)
        ):
            counts[(e["received_at"].replace(minute=0, second=0, microsecond=0), partner)] += 1
    return {k: {"events": n} for k, n in counts.items()}


def ira_by_site(b: Base, f: Filters) -> Answer:
    groups: dict[str, list[float]] = defaultdict(list)
    for p in b.positions:
        if f.site_ok(p["site"]):
            groups[p["site"]].append(p["unexplained_delta"])
    return {
        site: {"positions": len(v), "accurate": sum(x == 0 for x in v), "ira": sum(x == 0 for x in v) / len(v)}
        for site, v in groups.items()
    }


def unexplained_positions(b: Base, f: Filters) -> Answer:
    return {
        (p["site"], p["sku"], p["uom"]): {
            "unexplained_delta": p["unexplained_delta"],
            "in_flight_qty": p["in_flight_qty"],
        }
        for p in b.positions
        if p["unexplained_delta"] != 0 and f.site_ok(p["site"])
    }


def goods_in_flight(b: Base, f: Filters) -> Answer:
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"positions": 0, "in_flight_total": 0.0})
    for p in b.positions:
        if p["in_flight_qty"] != 0 and f.site_ok(p["site"]):
            out[p["site"]]["positions"] += 1
            out[p["site"]]["in_flight_total"] += p["in_flight_qty"]
    return dict(out)


def ira_over_time(b: Base, f: Filters) -> Answer:
    last: dict[tuple[Any, ...], dict[str, Any]] = {}
    for d in b.deltas:
        key = (d["site"], d["at"].replace(minute=0, second=0, microsecond=0), d["sku"], d["uom"])
        if key not in last or d["version"] > last[key]["version"]:
            last[key] = d
    groups: dict[tuple[datetime, str], list[float]] = defaultdict(list)
    for (site, hour, _, _), d in last.items():
        if f.in_range(hour) and f.site_ok(site):
            groups[(hour, site)].append(d["unexplained_delta"])
    return {
        k: {"positions": len(v), "accurate": sum(x == 0 for x in v), "ira": sum(x == 0 for x in v) / len(v)}
        for k, v in groups.items()
    }


def sites(b: Base, f: Filters) -> Answer:
    found = {s["site"] for s in b.status.values()} | {p["site"] for p in b.positions}
    return {site: {} for site in found if site}


def handoffs(b: Base, f: Filters) -> Answer:
    return {handoff: {} for handoff, _ in b.facts}


def partners(b: Base, f: Filters) -> Answer:
    return {(event_partner(e), e["source_kind"]): {} for e in b.events if e["source_kind"] in PARTNER_KINDS}


EXPECTED: dict[str, Callable[[Base, Filters], Answer]] = {
    name: function
    for module in (sys.modules[__name__], expected_delivery, expected_pipeline)
    for name, function in vars(module).items()
    if callable(function) and not name.startswith("_") and getattr(function, "__module__", "") == module.__name__
}
