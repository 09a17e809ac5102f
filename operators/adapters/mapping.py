"""The one master-data mapping context every adapter uses (design.md 2.4, style.md "One adapter
contract"), and the warnings it collects for the message being adapted.

An identifier that cannot be mapped is never dropped: the event keeps `UNMAPPED:<raw>` (sites,
GTINs) or the raw sku, and a `mapping` warning says which id, from which field, was unknown.
Without master data (an empty master) ids are kept as they came, without warnings.
"""

from __future__ import annotations

from collections.abc import Callable

from operators.master import MasterData, Product, unmapped
from operators.model import AdapterWarning, WarningKind


class MasterMapping:
    """Master-data lookups for one raw message, plus the warnings found while adapting it.

    Discarded when: with its message (one per `adapt_*` call).
    """

    __slots__ = ("master", "warnings")

    def __init__(self, master: MasterData) -> None:
        self.master = master
        self.warnings: list[AdapterWarning] = []

    def warn(self, kind: WarningKind, message: str) -> None:
        """Record a warning; the same finding twice in one message is one warning."""
        warning = AdapterWarning(kind, message)
        if warning not in self.warnings:
            self.warnings.append(warning)

    def site(self, raw_id: str, where: str, alias: Callable[[str], str | None] | None = None) -> str:
        """A plant code, GLN, EPCIS location or EDI warehouse id -> site.

        `alias` derives a second id to try (an SGLN's GLN). Unknown -> `UNMAPPED:<raw>` + warning.
        """
        master = self.master
        if master.empty:
            return raw_id
        site = master.site_for(raw_id)
        if site is None and alias is not None:
            other = alias(raw_id)
            site = master.site_for(other) if other is not None else None
        if site is None:
            self.warn(WarningKind.MAPPING, f"site {raw_id!r} ({where}) not in the site master")
            return unmapped(raw_id)
        return site

    def product_for_gtin(self, gtin: str, where: str) -> tuple[str, Product | None]:
        """A GTIN -> (sku, its product); unknown -> (`UNMAPPED:<gtin>`, None) + warning."""
        master = self.master
        if master.empty:
            return gtin, None
        product = master.product_for_gtin(gtin)
        if product is None:
            self.warn(WarningKind.MAPPING, f"GTIN {gtin} ({where}) not in the product master")
            return unmapped(gtin), None
        return product.sku, product

    def sku(self, sku: str, where: str | Callable[[], str]) -> str:
        """A material number / sku: kept as it is (skus are ERP material numbers, design.md 2.4);
        one that is not in the product master is reported. `where` may be a function: a snapshot
        has hundreds of lines, and the field's path is only needed for a warning."""
        if not self.master.empty and self.master.product(sku) is None:
            field = where() if callable(where) else where
            self.warn(WarningKind.MAPPING, f"sku {sku!r} ({field}) not in the product master")
        return sku
