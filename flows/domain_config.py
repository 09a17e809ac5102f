"""Build the domain stages' configuration (operators.domain.config.DomainConfig) from the settings.

`[inventory]` in the config file:
    tolerance = 0            # |unexplained_delta| allowed, in the sku's unit
    grace_minutes = 60       # how long out of tolerance before inventory_mismatch opens
    [inventory.sites.1020]   # overrides per site ...
    tolerance = 2
    [inventory.skus."MAT-7"] # ... per sku
    grace_minutes = 240
    [inventory.site_skus."1020/MAT-7"]  # ... per site and sku
    tolerance = 5
`[[handoffs]]` tables replace the four default handoffs (see operators/handoffs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flows.settings import Settings, SettingsError
from operators.domain.config import DomainConfig
from operators.domain.handoffs import DEFAULT_HANDOFFS, HandoffConfigError, parse_handoffs
from operators.domain.health import HealthConfig
from operators.domain.inventory_units import GraceConfig, ToleranceConfig

_KNOWN = {"tolerance", "grace_minutes", "sites", "skus", "site_skus"}


def _overrides(
    section: Mapping[str, Any], field: str
) -> tuple[dict[str, Any], dict[str, Any], dict[tuple[str, str], Any]]:
    by_site = {str(k): v[field] for k, v in section.get("sites", {}).items() if field in v}
    by_sku = {str(k): v[field] for k, v in section.get("skus", {}).items() if field in v}
    by_site_sku: dict[tuple[str, str], Any] = {}
    for key, values in section.get("site_skus", {}).items():
        site, slash, sku = str(key).partition("/")
        if not slash:
            raise SettingsError(f"inventory.site_skus key {key!r} must be 'SITE/SKU'")
        if field in values:
            by_site_sku[(site, sku)] = values[field]
    return by_site, by_sku, by_site_sku


def build_domain_config(settings: Settings) -> DomainConfig:
    section = dict(settings.inventory)
    unknown = set(section) - _KNOWN
    if unknown:
        raise SettingsError(f"[inventory]: unknown setting(s) {sorted(unknown)}; known: {sorted(_KNOWN)}")
    try:
        handoffs = parse_handoffs([dict(h) for h in settings.handoffs]) if settings.handoffs else DEFAULT_HANDOFFS
        site_t, sku_t, pair_t = _overrides(section, "tolerance")
        tolerance = ToleranceConfig(
            float(section.get("tolerance", 0.0)),
            {k: float(v) for k, v in site_t.items()},
            {k: float(v) for k, v in sku_t.items()},
            {k: float(v) for k, v in pair_t.items()},
        )
        site_g, sku_g, pair_g = _overrides(section, "grace_minutes")
        grace = GraceConfig(
            timedelta(minutes=float(section.get("grace_minutes", 60))),
            {k: timedelta(minutes=float(v)) for k, v in site_g.items()},
            {k: timedelta(minutes=float(v)) for k, v in sku_g.items()},
            {k: timedelta(minutes=float(v)) for k, v in pair_g.items()},
        )
    except (HandoffConfigError, ValueError, TypeError) as exc:
        raise SettingsError(str(exc)) from exc
    health = HealthConfig(
        silent_factor=settings.feed_silent_factor,
        silent_min_ms=int(settings.feed_silent_min_minutes * 60_000),
        dead_letter_rate=settings.dead_letter_rate_threshold,
        dead_letter_min_messages=settings.dead_letter_rate_min_messages,
    )
    return DomainConfig(
        allowed_lateness=timedelta(seconds=settings.allowed_lateness_s),
        dedup_ttl=timedelta(days=settings.dedup_ttl_days),
        xref_ttl=timedelta(days=settings.xref_ttl_days),
        retention=timedelta(days=settings.retention_days),
        handoffs=handoffs,
        tolerance=tolerance,
        grace=grace,
        health=health,
    )
