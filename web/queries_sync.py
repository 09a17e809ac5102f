"""Synchronization latency and partner performance queries."""

from __future__ import annotations

from web.fragments import EVENT_PARTNER, FACT_PARTNERS, PLACED_TIMES, handoff_is, in_range, site_is
from web.querylib import Query, build

# The fact (handoff, delivery_id) of the outer query is on the chosen partner's side.
_FACT_OF_PARTNER = f"""({{partner:String}} = '' OR (handoff, delivery_id) IN
    (SELECT handoff, delivery_id FROM ({FACT_PARTNERS}) WHERE partner = {{partner:String}}))"""

_PERCENTILES = """count() AS facts, countIf(breached) AS breaches,
       round(quantileExact(0.5)(latency_ms) / 60000, 2) AS p50_min,
       round(quantileExact(0.95)(latency_ms) / 60000, 2) AS p95_min,
       round(quantileExact(0.99)(latency_ms) / 60000, 2) AS p99_min,
       round(max(sla_ms) / 60000, 2) AS sla_min"""

# Completed facts (latest version) whose from_at is in the range, with the filters.
_COMPLETED = """SELECT * FROM {db}.sync_latency FINAL
    WHERE latency_ms IS NOT NULL AND $from_range AND $site AND $handoff AND $fact_partner"""

_FILTERS = {
    "from_range": in_range("from_at"),
    "site": site_is("site"),
    "handoff": handoff_is("handoff"),
    "fact_partner": _FACT_OF_PARTNER,
}

LATENCY_VS_SLA = build(
    "latency_vs_sla",
    "Sync latency p95 per handoff against its SLA",
    f"""
SELECT handoff, {_PERCENTILES}
FROM ({_COMPLETED})
GROUP BY handoff
ORDER BY handoff
""",
    "Completed handoff facts whose from-time is in the range (latest version of each fact).",
    **_FILTERS,
)

LATENCY_OVER_TIME = build(
    "latency_over_time",
    "Sync latency per handoff over time (hour of the from-time)",
    f"""
SELECT toStartOfHour(from_at) AS hour, handoff, {_PERCENTILES}
FROM ({_COMPLETED})
GROUP BY hour, handoff
ORDER BY hour, handoff
""",
    **_FILTERS,
)

LATENCY_BY_SITE = build(
    "latency_by_site",
    "Sync latency per handoff and site",
    f"""
SELECT handoff, site, {_PERCENTILES}
FROM ({_COMPLETED})
GROUP BY handoff, site
ORDER BY handoff, site
""",
    **_FILTERS,
)

LATENCY_BY_PARTNER = build(
    "latency_by_partner",
    "Sync latency per handoff and partner",
    f"""
SELECT c.handoff AS handoff, p.partner AS partner, {_PERCENTILES.replace("breached", "c.breached")}
FROM ({_COMPLETED}) AS c
INNER JOIN ($fact_partners) AS p ON p.handoff = c.handoff AND p.delivery_id = c.delivery_id
GROUP BY handoff, partner
ORDER BY handoff, partner
""",
    "The partner of a fact is the system on its non-ERP side (the carrier of dispatch_to_pickup, "
    "the WMS of release_to_wms and ship_to_erp).",
    fact_partners=FACT_PARTNERS,
    **_FILTERS,
)

# The entity of a carrier event's orphan alert: its most specific reference (resolution's keys).
_ORPHAN_ENTITY = """multiIf(
        trim(tracking_number) != '', concat('ref:', upper(trim(tracking_number))),
        trim(shipment_ref) != '', concat('ref:', upper(trim(shipment_ref))),
        trim(order_id) != '', concat('order:', upper(trim(order_id))),
        concat('event:', event_id))"""

# Dead letters name their partner only in the payload: the X12 interchange sender (ISA06) or the
# EasyPost tracker's carrier. Decode-error payloads are stored base64; a best-effort read.
_DEAD_LETTER_PARTNER = r"""multiIf(
        adapter = 'x12', trim(arrayElement(splitByRegexp('[*|]', text), 7)),
        adapter = 'easypost', extract(text, '"carrier"\\s*:\\s*"([^"]*)"'),
        '')"""

PARTNER_PERFORMANCE = build(
    "partner_performance",
    "Partner performance: carriers and 3PL / WMS",
    f"""
SELECT e.kind AS kind, e.partner AS partner, e.events AS events, e.messages AS messages,
       e.source_lag_p50_min AS source_lag_p50_min, e.source_lag_p95_min AS source_lag_p95_min,
       e.transport_lag_p50_min AS transport_lag_p50_min, e.transport_lag_p95_min AS transport_lag_p95_min,
       e.tz_assumed_share AS tz_assumed_share, if(e.kind = 'carrier', o.orphans, 0) AS orphan_events,
       f.facts AS handoff_facts, f.breaches AS breaches,
       round(if(f.facts = 0, 0, f.breaches / f.facts), 4) AS breach_rate,
       d.dead AS dead_letters, round(d.dead / (e.messages + d.dead), 4) AS dead_letter_rate
FROM
(
    SELECT source_kind AS kind, {EVENT_PARTNER} AS partner, count() AS events, uniqExact(raw_ref) AS messages,
           round(quantileExact(0.5)(source_lag_ms) / 60000, 2) AS source_lag_p50_min,
           round(quantileExact(0.95)(source_lag_ms) / 60000, 2) AS source_lag_p95_min,
           round(quantileExact(0.5)(transport_lag_ms) / 60000, 2) AS transport_lag_p50_min,
           round(quantileExact(0.95)(transport_lag_ms) / 60000, 2) AS transport_lag_p95_min,
           round(countIf(tz_assumed) / count(), 4) AS tz_assumed_share
    FROM
    (
        -- source lag from the time the lifecycle used (a local time placed in the delivery's zone)
        SELECT ev.*, dateDiff('millisecond', if(p.event_id != '', p.placed_at, ev.occurred_at), ev.recorded_at)
                   AS source_lag_ms,
               dateDiff('millisecond', ev.recorded_at, ev.received_at) AS transport_lag_ms
        FROM (SELECT * FROM {{db}}.events FINAL WHERE source_kind IN ('wms', 'carrier') AND $received) AS ev
        LEFT JOIN ($placed) AS p ON p.event_id = ev.event_id
    )
    GROUP BY kind, partner
) AS e
LEFT JOIN
(
    SELECT p.partner_kind AS kind, p.partner AS partner, count() AS facts, countIf(s.breached) AS breaches
    FROM (SELECT handoff, delivery_id, breached FROM {{db}}.sync_latency FINAL WHERE $from_range) AS s
    INNER JOIN ($fact_partners) AS p ON p.handoff = s.handoff AND p.delivery_id = s.delivery_id
    GROUP BY kind, partner
) AS f ON f.kind = e.kind AND f.partner = e.partner
LEFT JOIN
(
    SELECT partner, count() AS dead
    FROM
    (
        SELECT {_DEAD_LETTER_PARTNER} AS partner
        FROM (SELECT adapter, if(payload_b64, tryBase64Decode(payload), payload) AS text
              FROM {{db}}.dead_letters FINAL WHERE $received)
    )
    WHERE partner != ''
    GROUP BY partner
) AS d ON d.partner = e.partner
LEFT JOIN
(
    -- carrier events received in the range that resolution attached to no delivery and that were
    -- declared orphans (an orphan_carrier_event alert of their primary reference, in any state)
    SELECT {EVENT_PARTNER} AS partner, count() AS orphans
    FROM {{db}}.events FINAL
    WHERE source_kind = 'carrier' AND delivery_id = '' AND $received
      AND event_id NOT IN (SELECT event_id FROM {{db}}.event_links)
      AND {_ORPHAN_ENTITY} IN (SELECT entity FROM {{db}}.alerts WHERE rule = 'orphan_carrier_event')
    GROUP BY partner
) AS o ON o.partner = e.partner
WHERE ({{partner:String}} = '' OR e.partner = {{partner:String}})
ORDER BY kind, events DESC, partner
""",
    "Events received in the range per partner; lags in minutes (source lag from the time the lifecycle "
    "used: a local time placed in the delivery's site zone, event_links.tz_rule); breaches of the handoff facts on the "
    "partner's side; dead letters whose payload names the partner (X12 ISA06, EasyPost carrier); "
    "orphaned carrier events received in the range (attached to no delivery, an orphan_carrier_event "
    "alert of their reference).",
    received=in_range("received_at"),
    from_range=in_range("from_at"),
    fact_partners=FACT_PARTNERS,
    placed=PLACED_TIMES,
)

PARTNER_BREACHES = build(
    "partner_breaches",
    "Breach rate per partner and handoff",
    """
SELECT p.partner AS partner, s.handoff AS handoff, count() AS facts, countIf(s.breached) AS breaches,
       round(breaches / facts, 4) AS breach_rate
FROM (SELECT handoff, delivery_id, breached FROM {db}.sync_latency FINAL WHERE $from_range AND $handoff) AS s
INNER JOIN ($fact_partners) AS p ON p.handoff = s.handoff AND p.delivery_id = s.delivery_id
WHERE p.partner_kind != 'erp' AND ({partner:String} = '' OR p.partner = {partner:String})
GROUP BY partner, handoff
ORDER BY partner, handoff
""",
    from_range=in_range("from_at"),
    handoff=handoff_is("handoff"),
    fact_partners=FACT_PARTNERS,
)

PARTNER_VOLUME = build(
    "partner_volume_over_time",
    "Events per partner over time (hour received)",
    f"""
SELECT toStartOfHour(received_at) AS hour, {EVENT_PARTNER} AS partner, count() AS events
FROM {{db}}.events FINAL
WHERE source_kind IN ('wms', 'carrier') AND $received AND ({{partner:String}} = '' OR partner = {{partner:String}})
GROUP BY hour, partner
ORDER BY hour, partner
""",
    received=in_range("received_at"),
)

QUERIES: tuple[Query, ...] = (
    LATENCY_VS_SLA,
    LATENCY_OVER_TIME,
    LATENCY_BY_SITE,
    LATENCY_BY_PARTNER,
    PARTNER_PERFORMANCE,
    PARTNER_BREACHES,
    PARTNER_VOLUME,
)
