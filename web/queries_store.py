"""Inventory and filter-option queries."""

from __future__ import annotations

from web.fragments import EVENT_PARTNER, in_range, site_is
from web.querylib import Query, build

IRA_BY_SITE = build(
    "ira_by_site",
    "Inventory record accuracy per site",
    """
SELECT site, count() AS positions, countIf(unexplained_delta = 0) AS accurate, round(accurate / positions, 4) AS ira
FROM {db}.inventory_positions FINAL
WHERE $site
GROUP BY site
ORDER BY site
""",
    "Share of current (site, sku, unit) positions with no unexplained delta (tolerance 0).",
    site=site_is("site"),
)

UNEXPLAINED_POSITIONS = build(
    "unexplained_positions",
    "Positions with unexplained deltas, largest first",
    """
SELECT site, sku, uom, erp_qty, wms_qty, in_flight_qty, delta, unexplained_delta, unit_mismatch, erp_as_of, wms_as_of
FROM {db}.inventory_positions FINAL
WHERE unexplained_delta != 0 AND $site
ORDER BY abs(unexplained_delta) DESC, site, sku, uom
LIMIT 200
""",
    site=site_is("site"),
)

GOODS_IN_FLIGHT = build(
    "goods_in_flight",
    "Goods in flight per site (dispatched, goods issue not posted yet)",
    """
SELECT site, count() AS positions, sum(in_flight_qty) AS in_flight_total
FROM {db}.inventory_positions FINAL
WHERE in_flight_qty != 0 AND $site
GROUP BY site
ORDER BY site
""",
    site=site_is("site"),
)

IRA_OVER_TIME = build(
    "ira_over_time",
    "Inventory record accuracy per site over time (positions changed in each hour)",
    """
SELECT hour, site, positions, accurate, round(ira, 4) AS ira
FROM {db}.inventory_accuracy_hourly
WHERE $hour_range AND $site
ORDER BY hour, site
""",
    "From the inventory_accuracy_hourly view: of the positions that changed in an hour, the share "
    "whose last state in that hour had no unexplained delta.",
    hour_range=in_range("hour"),
    site=site_is("site"),
)

SITES = build(
    "sites",
    "Sites",
    """
SELECT DISTINCT site FROM
(
    SELECT site FROM {db}.delivery_status FINAL
    UNION ALL
    SELECT site FROM {db}.inventory_positions FINAL
)
WHERE site != ''
ORDER BY site
""",
)

HANDOFFS = build(
    "handoffs",
    "Handoffs",
    "SELECT DISTINCT handoff FROM {db}.sync_latency ORDER BY handoff",
)

PARTNERS = build(
    "partners",
    "Partners",
    f"""
SELECT DISTINCT {EVENT_PARTNER} AS partner, source_kind AS kind
FROM {{db}}.events
WHERE source_kind IN ('wms', 'carrier')
ORDER BY kind, partner
""",
)

QUERIES: tuple[Query, ...] = (
    IRA_BY_SITE,
    UNEXPLAINED_POSITIONS,
    GOODS_IN_FLIGHT,
    IRA_OVER_TIME,
    SITES,
    HANDOFFS,
    PARTNERS,
)
