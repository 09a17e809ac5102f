"""Delivery search and timeline: everything known about one delivery, in order."""

from __future__ import annotations

from web.fragments import event_partner
from web.querylib import Query, build

# The references (tracking numbers, PRO, BOL) of the events that name the delivery, normalized
# the way reference resolution normalizes them (trimmed, upper case): what it could match.
_REFS = """SELECT DISTINCT upper(trim(ref)) FROM {db}.events FINAL
    ARRAY JOIN [tracking_number, shipment_ref] AS ref
    WHERE delivery_id = {delivery:String} AND ref != ''"""

# event_id -> how it belongs to the delivery, and the time the lifecycle used for it:
#   'event'                  it names the delivery itself
#   tracking_number | shipment_ref | order_id
#                            reference resolution attached it (event_links.via)
#   'unresolved_reference'   it names no delivery, carries one of the delivery's references, and
#                            resolution attached it to no delivery (orphaned before the reference
#                            was learned, or still waiting): shown, but not part of the lifecycle
# The first that applies wins. `placed_at` / `tz_rule`: an event_links row with a tz_rule placed
# the event's local time in the delivery's site zone (also for events that name the delivery).
_MEMBERS = f"""
SELECT event_id, argMin(linked_via, priority) AS linked_via,
       max(rule) AS tz_rule, anyIf(placed, rule != '') AS placed_at
FROM
(
    SELECT event_id, 'event' AS linked_via, 1 AS priority, '' AS rule, toDateTime64(0, 3, 'UTC') AS placed
    FROM {{db}}.events FINAL
    WHERE delivery_id = {{delivery:String}}
    UNION ALL
    SELECT event_id, via, 2, tz_rule, occurred_at FROM {{db}}.event_links FINAL
    WHERE delivery_id = {{delivery:String}}
    UNION ALL
    SELECT event_id, 'unresolved_reference', 3, '', toDateTime64(0, 3, 'UTC') FROM {{db}}.events FINAL
    WHERE delivery_id = '' AND (upper(trim(tracking_number)) IN ({_REFS}) OR upper(trim(shipment_ref)) IN ({_REFS}))
      AND event_id NOT IN (SELECT event_id FROM {{db}}.event_links)
)
GROUP BY event_id
"""

# Events carrying the searched reference, with the field it is in.
_REF_HITS = """SELECT event_id, delivery_id, field FROM {db}.events FINAL
    ARRAY JOIN [tracking_number, shipment_ref] AS ref, ['tracking_number', 'shipment_ref'] AS field
    WHERE ref != '' AND upper(trim(ref)) = upper(trim({q:String}))"""

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
        SELECT delivery_id, 'order' FROM {db}.event_links FINAL
        WHERE via = 'order_id' AND ref = upper(trim({q:String}))
        UNION ALL
        -- a reference of an event of the delivery: one that names it, or one resolution attached
        SELECT delivery_id, field FROM ($hits) WHERE delivery_id != ''
        UNION ALL
        SELECT l.delivery_id, h.field
        FROM (SELECT delivery_id, event_id FROM {db}.event_links FINAL) AS l
        INNER JOIN ($hits) AS h ON h.event_id = l.event_id
    )
    WHERE trim({q:String}) != ''
    GROUP BY delivery_id
) AS m
INNER JOIN (SELECT * FROM {db}.delivery_status FINAL) AS d ON d.delivery_id = m.delivery_id
ORDER BY delivery_id
LIMIT 50
""",
    "A delivery id, an order id (of the delivery, or of an order event resolution attached to it), or a "
    "tracking number / PRO / BOL carried by an event that names the delivery or that resolution attached "
    "to it (event_links), whatever field it is in; case and surrounding spaces do not matter.",
    hits=_REF_HITS,
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
SELECT if(m.tz_rule != '', m.placed_at, e.occurred_at) AS occurred_at, e.event_type AS event_type,
       m.linked_via AS linked_via, m.tz_rule AS tz_rule, {event_partner("e.")} AS partner,
       e.source_kind AS source_kind, e.source_format AS source_format, e.milestone AS milestone,
       e.status_code AS status_code, e.site AS site, e.location AS location,
       e.tracking_number AS tracking_number, e.shipment_ref AS shipment_ref,
       e.occurred_at AS occurred_at_reported, e.recorded_at AS recorded_at, e.received_at AS received_at,
       e.source_system AS source_system, e.event_id AS event_id, e.raw_ref AS raw_ref
FROM ($members) AS m
INNER JOIN (SELECT * FROM {{db}}.events FINAL) AS e ON e.event_id = m.event_id
ORDER BY occurred_at, received_at, event_id
""",
    "Events that name the delivery (linked_via 'event') and events reference resolution attached to it "
    "(event_links: 'tracking_number', 'shipment_ref', 'order_id'); occurred_at is the time the lifecycle "
    "used (a local time placed in the delivery's site zone when tz_rule is 'delivery_site'; "
    "occurred_at_reported is the adapter's reading). 'unresolved_reference': events that carry one of the "
    "delivery's tracking numbers / BOLs but that resolution attached to no delivery (orphaned before the "
    "reference was learned, or still waiting); not part of the delivery's status or handoff facts.",
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
