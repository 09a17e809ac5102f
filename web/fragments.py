"""SQL pieces shared by the panel queries: filters and who the partner of a row is.

A partner is the system outside the ERP that a row depends on: a carrier (EasyPost's carrier
name, else the SCAC of an X12 214) or a 3PL / WMS (the events' `source_system`). A delivery's
partners are those of its events: the events that name it and those reference resolution
attached to it (`event_links`, the source of truth for which events belong to a delivery; a
parcel's carrier events carry only a tracking number). The events of its handoff facts are among
them, so the facts add no partner.
"""

from __future__ import annotations


def event_partner(alias: str = "") -> str:
    """The partner an event comes from (`alias` is a table alias with its dot, or empty)."""
    return f"multiIf({alias}source_kind = 'carrier' AND {alias}carrier != '', {alias}carrier, {alias}source_system)"


EVENT_PARTNER = event_partner()
TERMINAL = "('DELIVERED', 'RETURNED', 'CANCELLED')"

# event_id -> (kind, partner), for joins.
EVENT_PARTNERS = f"SELECT event_id, source_kind AS kind, {EVENT_PARTNER} AS partner FROM {{db}}.events FINAL"

# One row per handoff fact (latest version) with the partner on its non-ERP side: the to-event's
# system when it is a WMS or carrier, else the from-event's (ship_to_erp measures the ERP after a
# WMS dispatch), else whichever system recorded the fact (ship_to_invoice is ERP to ERP).
FACT_PARTNERS = f"""
SELECT s.handoff AS handoff, s.delivery_id AS delivery_id,
       multiIf(t.kind IN ('wms', 'carrier'), t.partner,
               f.kind IN ('wms', 'carrier'), f.partner,
               t.partner != '', t.partner, f.partner) AS partner,
       multiIf(t.kind IN ('wms', 'carrier'), t.kind, f.kind IN ('wms', 'carrier'), f.kind, 'erp') AS partner_kind
FROM (SELECT handoff, delivery_id, from_event_id, to_event_id FROM {{db}}.sync_latency FINAL) AS s
LEFT JOIN ({EVENT_PARTNERS}) AS t ON t.event_id = s.to_event_id
LEFT JOIN ({EVENT_PARTNERS}) AS f ON f.event_id = s.from_event_id
"""

DELIVERY_PARTNERS = f"""
SELECT DISTINCT delivery_id, partner FROM (
    SELECT delivery_id, {EVENT_PARTNER} AS partner FROM {{db}}.events FINAL
    WHERE delivery_id != '' AND source_kind IN ('wms', 'carrier')
    UNION ALL
    SELECT l.delivery_id, e.partner
    FROM (SELECT delivery_id, event_id FROM {{db}}.event_links FINAL) AS l
    INNER JOIN ({EVENT_PARTNERS}) AS e ON e.event_id = l.event_id
    WHERE e.kind IN ('wms', 'carrier')
)
"""

# event_id -> the time the lifecycle used when it placed the event's local time in its delivery's
# site zone (event_links.tz_rule): the adapter's occurred_at for such an event read the wall time
# as UTC. Every other event's occurred_at is its own.
PLACED_TIMES = (
    "SELECT event_id, any(occurred_at) AS placed_at FROM {db}.event_links FINAL WHERE tz_rule != '' GROUP BY event_id"
)


def site_is(column: str) -> str:
    return f"({{site:String}} = '' OR {column} = {{site:String}})"


def handoff_is(column: str) -> str:
    return f"({{handoff:String}} = '' OR {column} = {{handoff:String}})"


def partner_of_delivery(column: str) -> str:
    """The delivery in `column` involves the chosen partner (all when none is chosen)."""
    return (
        f"({{partner:String}} = '' OR {column} IN "
        f"(SELECT delivery_id FROM ({DELIVERY_PARTNERS}) WHERE partner = {{partner:String}}))"
    )


def in_range(column: str) -> str:
    """`column` within [start, end)."""
    return f"({column} >= {{start:DateTime64(3, 'UTC')}} AND {column} < {{end:DateTime64(3, 'UTC')}})"


def minutes(expression: str) -> str:
    return f"round({expression} / 60000, 2)"
