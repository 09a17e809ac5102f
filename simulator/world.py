"""The simulator's world: master data, trading partners, and the internal message record.

`World` is the shared context of one simulation run: the seeded `random.Random`, the master
data, the messages produced so far (with what each one must count as, design.md section 4)
and the stock movements each side books (for snapshots consistent with the story).
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulator.formats import (
    MINUTE,
    SECOND,
    EpcisFacts,
    X12Partner,
    dumps,
    epcis_document,
    epcis_event,
    gln13,
    gtin14,
    iso_ms,
    sap_event,
    sgln,
    to_ms,
)

if TYPE_CHECKING:
    from simulator.scenario import SimConfig

# design.md 2.1 default topics, plus one topic no adapter reads (its messages dead-letter `unsupported`).
TOPIC_SAP = "erp.sap.events"
TOPIC_EPCIS = "wms.epcis"
TOPIC_WMS_EDI = "wms.edi"
TOPIC_CARRIER_EDI = "carrier.edi"
TOPIC_WEBHOOKS = "carrier.webhooks"
TOPIC_SNAPSHOTS = "stock.snapshots"
TOPIC_UNKNOWN = "wms.unknown_feed"
TOPICS = (TOPIC_SAP, TOPIC_EPCIS, TOPIC_WMS_EDI, TOPIC_CARRIER_EDI, TOPIC_WEBHOOKS, TOPIC_SNAPSHOTS, TOPIC_UNKNOWN)

# Accounting outcome of a message before dedup decides normalized vs duplicate.
EVENTS, IGNORED, DEAD = "events", "ignored", "dead"
OUR_EDI_ID = "LOGISYNCERP"


@dataclass(frozen=True, slots=True)
class Place:
    """A customer, a carrier hub or a site's address."""

    name: str
    city: str
    state: str
    postal: str
    country: str
    timezone: str


@dataclass(frozen=True, slots=True)
class SimSite:
    site: str  # ERP plant / shipping point
    place: Place
    gln: str
    epcis_location: str
    edi_warehouse_id: str
    location_ref: int
    wms: str  # "epcis": the WMS sends EPCIS events; "x12": a 3PL sends 945/947
    partner: X12Partner  # the 3PL's EDI habits (x12 sites)
    weight: float  # share of the order volume

    @property
    def wms_system(self) -> str:
        """The source system of the site's WMS messages (EPCIS `sender`, snapshot source_system)."""
        return f"WMS-{self.site}" if self.wms == "epcis" else f"3PL-{self.partner.sender_id}"


@dataclass(frozen=True, slots=True)
class SimProduct:
    sku: str
    gtin: str
    description: str
    case_qty: int  # 0: sold by the each only
    weight_lb: float
    price: float


# Sites: US sites alternate between an EPCIS-capable WMS and a 3PL on EDI; EU sites use EPCIS.
_SITES = (
    ("1010", Place("Chicago DC", "CHICAGO", "IL", "60638", "US", "America/Chicago")),
    ("1020", Place("Newark DC", "NEWARK", "NJ", "07114", "US", "America/New_York")),
    ("1030", Place("Reno DC", "RENO", "NV", "89502", "US", "America/Los_Angeles")),
    ("1040", Place("Dallas DC", "DALLAS", "TX", "75241", "US", "America/Chicago")),
    ("1050", Place("Atlanta DC", "ATLANTA", "GA", "30336", "US", "America/New_York")),
    ("1060", Place("Denver DC", "DENVER", "CO", "80239", "US", "America/Denver")),
    ("2010", Place("Venlo DC", "VENLO", "", "5928 LZ", "NL", "Europe/Amsterdam")),
    ("2020", Place("Duisburg DC", "DUISBURG", "", "47229", "DE", "Europe/Berlin")),
)
US_CUSTOMERS = (
    Place("Harbor Foods", "COLUMBUS", "OH", "43217", "US", "America/New_York"),
    Place("Bluebird Grocers", "CHARLOTTE", "NC", "28273", "US", "America/New_York"),
    Place("Summit Outdoor Supply", "BOSTON", "MA", "02210", "US", "America/New_York"),
    Place("Sunrise Pharmacy", "MIAMI", "FL", "33166", "US", "America/New_York"),
    Place("Prairie Market", "MINNEAPOLIS", "MN", "55413", "US", "America/Chicago"),
    Place("Lone Star Home", "HOUSTON", "TX", "77032", "US", "America/Chicago"),
    Place("Riverbend Hardware", "MEMPHIS", "TN", "38118", "US", "America/Chicago"),
    Place("Gateway Office Supply", "ST LOUIS", "MO", "63132", "US", "America/Chicago"),
    Place("Canyon Provisions", "PHOENIX", "AZ", "85043", "US", "America/Phoenix"),
    Place("Wasatch Sports", "SALT LAKE CITY", "UT", "84104", "US", "America/Denver"),
    Place("Evergreen Naturals", "SEATTLE", "WA", "98108", "US", "America/Los_Angeles"),
    Place("Pacific Coast Mart", "LOS ANGELES", "CA", "90058", "US", "America/Los_Angeles"),
    Place("Rose City Goods", "PORTLAND", "OR", "97218", "US", "America/Los_Angeles"),
)
EU_CUSTOMERS = (
    Place("Maasstad Retail", "ROTTERDAM", "", "3045 AP", "NL", "Europe/Amsterdam"),
    Place("Rhone Distribution", "LYON", "", "69007", "FR", "Europe/Paris"),
    Place("Lombardia Casa", "MILANO", "", "20138", "IT", "Europe/Rome"),
    Place("Iberia Hogar", "MADRID", "", "28042", "ES", "Europe/Madrid"),
    Place("Isar Handel", "MUENCHEN", "", "81829", "DE", "Europe/Berlin"),
    Place("Wisla Sklep", "WARSZAWA", "", "02-222", "PL", "Europe/Warsaw"),
)
US_HUBS = (
    Place("hub", "INDIANAPOLIS", "IN", "46241", "US", "America/Indiana/Indianapolis"),
    Place("hub", "LOUISVILLE", "KY", "40209", "US", "America/Kentucky/Louisville"),
    Place("hub", "MEMPHIS", "TN", "38118", "US", "America/Chicago"),
    Place("hub", "DALLAS", "TX", "75261", "US", "America/Chicago"),
    Place("hub", "OMAHA", "NE", "68110", "US", "America/Chicago"),
    Place("hub", "SALT LAKE CITY", "UT", "84116", "US", "America/Denver"),
    Place("hub", "HARRISBURG", "PA", "17111", "US", "America/New_York"),
    Place("hub", "SACRAMENTO", "CA", "95837", "US", "America/Los_Angeles"),
)
EU_HUBS = (
    Place("hub", "LEIPZIG", "", "04435", "DE", "Europe/Berlin"),
    Place("hub", "KOELN", "", "51147", "DE", "Europe/Berlin"),
    Place("hub", "BRUSSEL", "", "1930", "BE", "Europe/Brussels"),
    Place("hub", "PARIS", "", "95700", "FR", "Europe/Paris"),
)
_PRODUCTS = (
    ("Cold Brew Coffee 12oz Can", 24, 0.9, 2.10),
    ("Sparkling Water Lime 500ml", 24, 1.2, 0.95),
    ("Oat Granola Bar 6-pack", 12, 0.8, 4.50),
    ("Organic Peanut Butter 16oz", 12, 1.1, 5.25),
    ("Stainless Water Bottle 24oz", 6, 0.9, 18.00),
    ("Trail Running Sock", 0, 0.2, 12.50),
    ("LED Headlamp 300lm", 6, 0.4, 24.90),
    ("Nitrile Gloves Box of 100", 10, 1.3, 11.75),
    ("Hand Soap Refill 1L", 12, 2.3, 6.40),
    ("Copy Paper Ream A4", 5, 5.5, 7.80),
    ("USB-C Cable 2m", 0, 0.2, 9.99),
    ("Thermal Labels Roll 4x6", 8, 1.6, 14.20),
    ("Espresso Beans 1kg", 6, 2.3, 21.00),
    ("Bamboo Cutting Board", 4, 2.0, 16.50),
    ("Yoga Mat 6mm", 4, 2.6, 29.00),
    ("Ceramic Mug 12oz", 12, 0.9, 7.25),
)
_EDI_HABITS = (("~\n", ">", False), ("~", ":", True), ("\n", ">", False))


def build_sites(count: int) -> tuple[SimSite, ...]:
    sites = []
    for index in range(count):
        code, place = _SITES[index % len(_SITES)]
        if index >= len(_SITES):
            code = f"{3000 + index}"
            place = Place(f"{place.name} {index}", place.city, place.state, place.postal, place.country, place.timezone)
        location_ref = 10_100 + 10 * index
        terminator, component, miscount = _EDI_HABITS[index % len(_EDI_HABITS)]
        partner = X12Partner(f"TPL{code}", OUR_EDI_ID, terminator, component, se_miscount=miscount)
        sites.append(
            SimSite(
                site=code,
                place=place,
                gln=gln13(location_ref),
                epcis_location=sgln(location_ref),
                edi_warehouse_id=f"{place.city[:3]}{code}",
                location_ref=location_ref,
                wms="x12" if place.country == "US" and index % 2 == 1 else "epcis",
                partner=partner,
                weight=1.0 / (1.0 + 0.35 * index),
            )
        )
    return tuple(sites)


def build_products(count: int) -> tuple[SimProduct, ...]:
    products = []
    for index in range(count):
        name, case_qty, weight, price = _PRODUCTS[index % len(_PRODUCTS)]
        if index >= len(_PRODUCTS):
            name = f"{name} Variant {index // len(_PRODUCTS) + 1}"
        products.append(SimProduct(f"TG{10001 + index}", gtin14(10001 + index), name, case_qty, weight, price))
    return tuple(products)


def products_csv(products: tuple[SimProduct, ...]) -> str:
    """products.csv (design.md 2.4); `conversions` = how many EA one case is (`CS=12`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["sku", "gtin", "uom", "description", "conversions"])
    for product in products:
        conversions = f"CS={product.case_qty}" if product.case_qty else ""
        writer.writerow([product.sku, product.gtin, "EA", product.description, conversions])
    return out.getvalue()


def sites_csv(sites: tuple[SimSite, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["site", "gln", "epcis_location", "edi_warehouse_id", "timezone"])
    for site in sites:
        writer.writerow([site.site, site.gln, site.epcis_location, site.edi_warehouse_id, site.place.timezone])
    return out.getvalue()


@dataclass(slots=True)
class X12Doc:
    """An interchange whose control numbers are assigned once every message is known."""

    partner: X12Partner
    functional_id: str
    set_id: str
    sets: list[list[str]]
    sent_ms: int


@dataclass(slots=True, eq=False)
class Msg:
    """One raw message with what it must count as (design.md section 4).

    `events` are (event type, identity) pairs: two events with the same identity are the same
    event for dedup (design.md 2.5). `outcome` is EVENTS (normalized or duplicate, decided by
    the order of arrival), IGNORED or DEAD with `reason`.
    """

    topic: str
    key: str | None
    received_ms: int
    value: bytes = b""
    events: tuple[tuple[str, str], ...] = ()
    outcome: str = EVENTS
    reason: str = ""
    x12: X12Doc | None = None  # rendered later (control numbers follow arrival order)
    copy_of: Msg | None = None  # same bytes as another message (then `corrupt` may apply)
    corrupt: str = ""
    corrupt_at: float = 0.0
    epcis_event: dict[str, Any] | None = None  # for a re-export in a new document
    epcis_sender: str = ""


@dataclass(frozen=True, slots=True)
class Move:
    """A stock movement one side books: effective time as its adapter will read occurred_at."""

    ms: int
    site: str
    sku: str
    quantity: int


@dataclass
class World:
    config: SimConfig
    rng: random.Random
    sites: tuple[SimSite, ...]
    products: tuple[SimProduct, ...]
    start_ms: int
    msgs: list[Msg] = field(default_factory=list)
    erp_moves: list[Move] = field(default_factory=list)
    wms_moves: list[Move] = field(default_factory=list)
    facts: Counter[str] = field(default_factory=Counter)
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # OutboundDelivery data, for noise
    epcis_receipts: list[tuple[SimSite, int, list[tuple[str, int, str]]]] = field(default_factory=list)
    in_flight: Counter[tuple[str, str]] = field(default_factory=Counter)  # shipped, no goods issue ever
    # (site, product, wms - erp, since): differences put there on purpose (simulator.stock)
    discrepancies: list[tuple[SimSite, SimProduct, int, int]] = field(default_factory=list)
    end_ms: int = 0
    _serials: dict[str, int] = field(default_factory=dict)
    _material_documents: int = 0

    @classmethod
    def create(cls, config: SimConfig) -> World:
        return cls(
            config=config,
            rng=random.Random(config.seed),
            sites=build_sites(config.sites),
            products=build_products(config.skus),
            start_ms=to_ms(config.start),
        )

    def between(self, low: int, high: int) -> int:
        """A uniform integer in [low, high]: `randint` without its argument checks (hot path)."""
        return low + int(self.rng.random() * (high - low + 1))

    def lag(self) -> int:
        """Producer -> Kafka lag: under a second or two, sometimes a backlog of minutes."""
        if self.rng.random() < 0.02:
            return self.between(30 * SECOND, 20 * MINUTE)
        return 40 + int(self.rng.expovariate(1 / 700))

    def uuid(self) -> str:
        """A random (version 4, RFC 4122 variant) UUID drawn from the seeded generator."""
        bits = f"{self.rng.getrandbits(128):032x}"
        variant = "89ab"[int(bits[16], 16) & 3]
        return f"{bits[:8]}-{bits[8:12]}-4{bits[13:16]}-{variant}{bits[17:20]}-{bits[20:]}"

    def hex_id(self, prefix: str) -> str:
        return f"{prefix}{self.rng.getrandbits(128):032x}"

    def serials(self, gtin: str, count: int) -> range:
        first = self._serials.get(gtin, 100_000)
        self._serials[gtin] = first + count
        return range(first, first + count)

    def next_material_document(self) -> str:
        self._material_documents += 1
        return f"{4_900_000_000 + self._material_documents}"

    def add(self, msg: Msg) -> Msg:
        self.msgs.append(msg)
        self.end_ms = max(self.end_ms, msg.received_ms)
        return msg

    def sap(self, ce_type: str, event_type: str | None, time_ms: int, data: dict[str, Any], key: str) -> str:
        """A CloudEvent on erp.sap.events; `event_type` None = a type the adapter ignores."""
        ce_id = self.uuid()
        value = dumps(sap_event(ce_type, ce_id, time_ms, data))
        if event_type is None:
            self.add(Msg(TOPIC_SAP, key, time_ms + self.lag(), value, outcome=IGNORED))
        else:
            self.add(Msg(TOPIC_SAP, key, time_ms + self.lag(), value, ((event_type, f"sap:{ce_id}"),)))
        return ce_id

    def material_document(self, site: SimSite, time_ms: int, items: list[tuple[SimProduct, int, str]]) -> None:
        """MaterialDocument.Created with one item per (product, quantity, movement type).

        The adapter makes one event per movement type (one plant here), so the identities
        follow its rule: `sap:<id>` alone, or `sap:<id>#<type>/<plant>` when there are several.
        """
        document = self.next_material_document()
        ce_id = self.uuid()
        data = {
            "MaterialDocument": document,
            "MaterialDocumentYear": iso_ms(time_ms)[:4],
            "PostingDate": iso_ms(time_ms)[:10],
            "CreationDateTime": iso_ms(time_ms),  # = CE time: the adapter's occurred_at
            "items": [
                {
                    "MaterialDocumentItem": f"{index + 1:04d}",
                    "Material": product.sku,
                    "Plant": site.site,
                    "StorageLocation": "0001",
                    "GoodsMovementType": movement,
                    "QuantityInEntryUnit": f"{quantity}.000",  # OData v2 Edm.Decimal
                    "EntryUnit": "EA",
                }
                for index, (product, quantity, movement) in enumerate(items)
            ],
        }
        types = list(dict.fromkeys(movement for _, _, movement in items))
        events: tuple[tuple[str, str], ...]
        kinds = {"101": "GOODS_RECEIVED", "701": "INVENTORY_ADJUSTED", "702": "INVENTORY_ADJUSTED"}
        if len(types) == 1:
            events = ((kinds[types[0]], f"sap:{ce_id}"),)
        else:
            events = tuple((kinds[kind], f"sap:{ce_id}#{kind}/{site.site}") for kind in types)
        value = dumps(sap_event("sap.s4.beh.materialdocument.v1.MaterialDocument.Created.v1", ce_id, time_ms, data))
        self.add(Msg(TOPIC_SAP, f"MD{site.site}", time_ms + self.lag(), value, events))

    def epcis(self, site: SimSite, facts: EpcisFacts, key: str | None, event_type: str | None) -> None:
        """One event in an EPCISDocument (or, one in ten, bare); `event_type` None = ignored bizStep."""
        event = epcis_event(facts)
        creation_ms = facts.record_ms + self.between(0, 800)
        value = epcis_document(event, creation_ms, site.wms_system, bare=self.rng.random() < 0.1)
        received = creation_ms + self.lag()
        if event_type is None:
            self.add(Msg(TOPIC_EPCIS, key, received, value, outcome=IGNORED))
            return
        events = ((event_type, f"epcis:{facts.event_id}"),)
        self.add(Msg(TOPIC_EPCIS, key, received, value, events, epcis_event=event, epcis_sender=site.wms_system))
