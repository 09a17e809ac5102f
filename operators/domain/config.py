"""Everything time- and rule-dependent in the domain stages (design.md 3.1-3.4), with the
design's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from operators.domain.handoffs import DEFAULT_HANDOFFS, Handoff
from operators.domain.health import HealthConfig
from operators.domain.inventory_units import GraceConfig, ToleranceConfig


def _ms(value: timedelta) -> int:
    return value // timedelta(milliseconds=1)


@dataclass(frozen=True)
class DomainConfig:
    allowed_lateness: timedelta = timedelta(minutes=5)
    dedup_ttl: timedelta = timedelta(days=30)
    xref_ttl: timedelta = timedelta(days=7)
    retention: timedelta = timedelta(days=30)
    idle_retention: timedelta = timedelta(days=90)
    handoffs: tuple[Handoff, ...] = DEFAULT_HANDOFFS
    tolerance: ToleranceConfig = field(default_factory=ToleranceConfig)
    grace: GraceConfig = field(default_factory=GraceConfig)
    health: HealthConfig = field(default_factory=HealthConfig)

    @property
    def lateness_ms(self) -> int:
        return _ms(self.allowed_lateness)

    @property
    def dedup_ttl_ms(self) -> int:
        return _ms(self.dedup_ttl)

    @property
    def xref_ttl_ms(self) -> int:
        return _ms(self.xref_ttl)

    @property
    def retention_ms(self) -> int:
        return _ms(self.retention)

    @property
    def idle_retention_ms(self) -> int:
        return _ms(self.idle_retention)
