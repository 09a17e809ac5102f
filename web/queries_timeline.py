"""Delivery search and timeline: everything known about one delivery, in order."""

from __future__ import annotations

from web.fragments import event_partner
from web.querylib import Query, build

# The references (tracking numbers, PRO, BOL) of the events that name the delivery, normalized
# the way reference resolution normalizes them (trimmed, upper case).
_REFS = """SELECT DISTINCT upper(trim(ref)) FROM {db}.events FINAL
    ARRAY JOIN [tracking_number, shipment_ref] AS ref
    WHERE delivery_id = {delivery:String} AND ref != ''"""

# event_id -> how it belongs to the delivery: it names it ('event'), resolution linked it
# (event_links.via), or, until the pipeline fills event_links, it carries one of the delivery's
# references and names no delivery itself ('reference'). The first that applies wins.
_MEMBERS = f"""
SELECT event_id, argMin(linked_via, priority) AS linked_via
FROM
(
    SELECT event_id, 'event' AS linked_via, 1 AS priority FROM {{db}}.events FINAL
    WHERE delivery_id = {{delivery:String}}
    UNION ALL
    SELECT event_id, argMax(via, version), 2 FROM {{db}}.event_links
    WHERE delivery_id = {{delivery:String}} GROUP BY event_id
    UNION ALL
    SELECT event_id, 'reference', 3 FROM {{db}}.events FINAL
    WHERE delivery_id = '' AND (upper(trim(tracking_number)) IN ({_REFS}) OR upper(trim(shipment_ref)) IN ({_REFS}))
)
GROUP BY event_id
"""

DELIVERY_SEARCH = build(
    "delivery_search",
    "Deliveries matching a delivery, order, tracking number or BOL",
    """
SELECT d.delivery_id AS delivery_id, d.order_id AS order_id, d.site AS site, d.status AS status,
       d.released_at AS released_at, m.matched_on AS matched_on
FROM
(
    SELECT delivery_id, arrayStringConcat(arraySort(groupUniqArray(matched)), ', ') AS matched_on
    FROM
    (
        SELECT delivery_id, 'delivery' AS matched FROM {db}.delivery_status FINAL WHERE delivery_id = trim({q:String})
        UNION ALL
        SELECT delivery_id, 'order' FROM {db}.delivery_status FINAL WHERE order_id = trim({q:String})
        UNION ALL
        SELECT delivery_id, 'tracking_number' FROM {db}.events FINAL
        WHERE delivery_id != '' AND upper(trim(tracking_number)) = upper(trim({q:String}))
        UNION ALL
        SELECT delivery_id, 'shipment_ref' FROM {db}.events FINAL
        WHERE delivery_id != '' AND upper(trim(shipment_ref)) = upper(trim({q:String}))
        UNION ALL
        SELECT delivery_id, via FROM {db}.event_links FINAL WHERE ref = upper(trim({q:String}))
    )
    WHERE trim({q:String}) != ''
    GROUP BY delivery_id
) AS m
INNER JOIN (SELECT * FROM {db}.delivery_status FINAL) AS d ON d.delivery_id = m.delivery_id
ORDER BY delivery_id
LIMIT 50
""",
)

DELIVERY_HEADER = build(
    "delivery_header",
    "Delivery",
    """
SELECT delivery_id, order_id, site, status, released_at, first_wms_at, dispatched_at, gi_posted_at,
       picked_up_at, delivered_at, invoiced_at, out_of_sequence
FROM {db}.delivery_status FINAL
WHERE delivery_id = {delivery:String}
""",
)

DELIVERY_TIMELINE = build(
    "delivery_timeline",
    "Every event of the delivery, in the order it happened",
    f"""
SELECT e.occurred_at AS occurred_at, e.recorded_at AS recorded_at, e.received_at AS received_at,
       e.event_type AS event_type, e.source_kind AS source_kind, e.source_format AS source_format,
       e.source_system AS source_system, {event_partner("e.")} AS partner, e.milestone AS milestone,
       e.status_code AS status_code, e.site AS site, e.location AS location,
       e.tracking_number AS tracking_number, e.shipment_ref AS shipment_ref, m.linked_via AS linked_via,
       e.event_id AS event_id, e.raw_ref AS raw_ref
FROM ($members) AS m
INNER JOIN (SELECT * FROM {{db}}.events FINAL) AS e ON e.event_id = m.event_id
ORDER BY occurred_at, received_at, event_id
""",
    "Events that name the delivery, that reference resolution linked to it, and carrier events that "
    "carry one of its tracking numbers / BOLs.",
    members=_MEMBERS,
)

DELIVERY_FACTS = build(
    "delivery_facts",
    "Handoff facts of the delivery",
    """
SELECT handoff, from_at, to_at, round(latency_ms / 60000, 2) AS latency_min, round(sla_ms / 60000, 2) AS sla_min,
       breached, clock_skew, from_event_id, to_event_id
FROM {db}.sync_latency FINAL
WHERE delivery_id = {delivery:String}
ORDER BY from_at, handoff
""",
)

DELIVERY_ALERTS = build(
    "delivery_alerts",
    "Alerts of the delivery",
    """
SELECT rule, handoff, severity, state, opened_at, due_at, resolved_at, JSONExtractString(details, 'summary') AS summary,
       alert_id
FROM {db}.alerts FINAL
WHERE delivery_id = {delivery:String}
ORDER BY opened_at, rule, handoff
""",
)

QUERIES: tuple[Query, ...] = (DELIVERY_SEARCH, DELIVERY_HEADER, DELIVERY_TIMELINE, DELIVERY_FACTS, DELIVERY_ALERTS)
