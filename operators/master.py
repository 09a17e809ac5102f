"""Master data (design.md 2.4): products and sites, used to map raw ids to skus and sites.

An identifier that cannot be mapped is never dropped: the event keeps `UNMAPPED:<raw>` and the
adapter reports a mapping warning, which the flow counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNMAPPED = "UNMAPPED:"


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    gtin: str  # GTIN-14, digits only ("" when the sku has none)
    uom: str
    description: str = ""
    # Optional unit conversions: alternative unit -> how many base `uom` one of it is.
    conversions: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Site:
    site: str
    gln: str = ""
    epcis_location: str = ""
    edi_warehouse_id: str = ""
    timezone: str = "UTC"  # IANA name
    name: str = ""  # optional: how partners name the site (an X12 N102), matched case-insensitively


@dataclass(frozen=True)
class MasterData:
    """Products and sites with the lookup indexes the adapters need. Immutable once built."""

    products: tuple[Product, ...] = ()
    sites: tuple[Site, ...] = ()
    _by_gtin: dict[str, Product] = field(default_factory=dict, repr=False, compare=False)
    _by_sku: dict[str, Product] = field(default_factory=dict, repr=False, compare=False)
    _site_by_id: dict[str, Site] = field(default_factory=dict, repr=False, compare=False)
    _site_by_alias: dict[str, Site] = field(default_factory=dict, repr=False, compare=False)
    _site_by_name: dict[str, Site] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for product in self.products:
            self._by_sku[product.sku] = product
            if product.gtin:
                self._by_gtin[product.gtin.zfill(14)] = product
        for site in self.sites:
            self._site_by_id[site.site] = site
            for alias in (site.gln, site.epcis_location, site.edi_warehouse_id):
                if alias:
                    self._site_by_alias[alias] = site
            for name in (site.name, site.site):
                if name:
                    self._site_by_name.setdefault(name_key(name), site)

    @property
    def empty(self) -> bool:
        return not self.products and not self.sites

    def product(self, sku: str) -> Product | None:
        return self._by_sku.get(sku)

    def sku_for_gtin(self, gtin: str) -> str | None:
        product = self.product_for_gtin(gtin)
        return product.sku if product else None

    def product_for_gtin(self, gtin: str) -> Product | None:
        return self._by_gtin.get(gtin.zfill(14)) if gtin.isdigit() else None

    def site_for(self, raw_id: str) -> str | None:
        """Site for a plant code, GLN, EPCIS location id (SGLN URN or URI) or EDI warehouse id."""
        if raw_id in self._site_by_id:
            return raw_id
        site = self._site_by_alias.get(raw_id)
        return site.site if site else None

    def site_named(self, name: str) -> str | None:
        """Site whose `name` (or site id) is `name`, ignoring case, spaces and punctuation."""
        site = self._site_by_name.get(name_key(name))
        return site.site if site else None

    def timezone_of(self, site: str | None) -> str | None:
        found = self._site_by_id.get(site) if site else None
        return found.timezone if found else None


def name_key(name: str) -> str:
    """A name compared loosely: `Bedford Park DC` = `BEDFORD-PARK D.C.`."""
    return "".join(char for char in name.casefold() if char.isalnum())


def unmapped(raw_id: str) -> str:
    return f"{UNMAPPED}{raw_id}"


EMPTY_MASTER = MasterData()
