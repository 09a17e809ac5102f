"""The oracle's answer for the delivery search and timeline queries (see `expected`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tests.web.oracle import Base, Filters, event_partner, minutes

Answer = dict[Any, dict[str, Any]]


def delivery_timeline(b: Base, f: Filters) -> Answer:
    out = {}
    for event_id, via in b.members(f.values["delivery"]).items():
        e = b.by_id[event_id]
        placed = b.placed_at(event_id) if via != "unresolved_reference" else None
        out[event_id] = {
            "event_type": e["event_type"],
            "linked_via": via,
            "partner": event_partner(e),
            "occurred_at": placed if placed is not None else e["occurred_at"],
            "occurred_at_reported": e["occurred_at"],
            "tz_rule": "delivery_site" if placed is not None else "",
        }
    return out


def delivery_facts(b: Base, f: Filters) -> Answer:
    return {
        handoff: {"breached": fact["breached"], "latency_min": minutes(fact["latency_ms"])}
        for (handoff, delivery), fact in b.facts.items()
        if delivery == f.values["delivery"]
    }


def delivery_alerts(b: Base, f: Filters) -> Answer:
    return {a["alert_id"]: {"state": a["state"]} for a in b.alerts if a["delivery_id"] == f.values["delivery"]}


def delivery_search(b: Base, f: Filters) -> Answer:
    q = f.values["q"].strip()
    matched: dict[str, set[str]] = defaultdict(set)
    for s in b.status.values():
        if s["delivery_id"] == q:
            matched[s["delivery_id"]].add("delivery")
        if s["order_id"] == q:
            matched[s["delivery_id"]].add("order")
    # the events of each delivery: those that name it and those resolution attached to it
    deliveries: dict[str, set[str]] = defaultdict(set)
    for e in b.events:
        if e["delivery_id"]:
            deliveries[e["event_id"]].add(e["delivery_id"])
    for link in b.links:
        deliveries[link["event_id"]].add(link["delivery_id"])
        if link["via"] == "order_id" and link["ref"] == q.upper():
            matched[link["delivery_id"]].add("order")
    for e in b.events:
        for field in ("tracking_number", "shipment_ref"):
            if e[field] and e[field].strip().upper() == q.upper():
                for delivery in deliveries[e["event_id"]]:
                    matched[delivery].add(field)
    return {d: {"matched_on": ", ".join(sorted(m))} for d, m in matched.items() if d in b.status and q}
