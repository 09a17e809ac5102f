"""The order-to-cash story of one delivery, as each system reports it.

SAP SalesOrder.Created -> OutboundDelivery.Created (ORDER_RELEASED) -> the WMS picks, packs and
ships (EPCIS ObjectEvents at EPCIS sites, one X12 945 per delivery in a 10-minute batch at 3PL
sites) -> SAP posts the goods issue (minutes later, sometimes hours: a late sync, a few never)
-> the carrier reports (X12 214 for LTL freight, EasyPost webhooks for parcels) -> SAP bills.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.carriers import ltl_story, parcel_story, pick_ltl, pick_parcel
from simulator.formats import (
    COMPANY_PREFIX,
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    US_TIME_CODES,
    EpcisFacts,
    digital_link,
    lgtin,
    local,
    sap_time,
    sgln,
    sgtin,
    with_check,
    x12_date,
    x12_time,
)
from simulator.world import (
    EU_CUSTOMERS,
    TOPIC_WMS_EDI,
    US_CUSTOMERS,
    Move,
    Msg,
    Place,
    SimProduct,
    SimSite,
    World,
    X12Doc,
)

SALES_ORDER_CREATED = "sap.s4.beh.salesorder.v1.SalesOrder.Created.v1"
DELIVERY_CREATED = "sap.s4.beh.outbounddelivery.v1.OutboundDelivery.Created.v1"
DELIVERY_CHANGED = "sap.s4.beh.outbounddelivery.v1.OutboundDelivery.Changed.v1"
BILLING_CREATED = "sap.s4.beh.billingdocument.v1.BillingDocument.Created.v1"

EDI_BATCH = 10 * MINUTE  # a 3PL sends its 945s in batches
LTL_UNITS = 30  # at or above this many units a US order ships LTL, else parcel
# Relative order intake per local hour (0-23): quiet nights, a morning peak.
_ORDER_PROFILE = (
    0.3, 0.3, 0.3, 0.3, 0.3, 0.4, 0.6, 1.0, 1.4, 1.5, 1.5, 1.4,
    1.3, 1.3, 1.3, 1.3, 1.2, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4,
)  # fmt: skip
_QUANTITIES = (1, 2, 3, 4, 5, 6, 6, 8, 10, 12, 12, 12, 18, 24, 24, 36, 48)
_LINE_COUNTS = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4)
_BIZ_STEP_SPELLINGS = ("", "", "", "", "https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:")
SLA = {"release_to_wms": 2 * HOUR, "ship_to_erp": 15 * MINUTE, "dispatch_to_pickup": 4 * HOUR}
SLA_INVOICE = 24 * HOUR


@dataclass
class Shipment:
    """One delivery's facts shared by the systems that report it."""

    index: int
    site: SimSite
    customer: Place
    customer_id: str
    order_id: str
    delivery_id: str
    lines: list[tuple[SimProduct, int, int]]  # (product, ordered, shipped)
    release_ms: int
    pack_ms: int
    ship_ms: int
    bol: str
    tracking: str = ""
    scac: str = ""
    carrier_name: str = ""
    ltl: bool = False

    @property
    def units(self) -> int:
        return sum(shipped for _, _, shipped in self.lines)

    @property
    def weight_lb(self) -> float:
        return sum(product.weight_lb * shipped for product, _, shipped in self.lines)


def simulate_deliveries(world: World) -> None:
    """Every delivery of the scenario; orders arrive as a Poisson process that is busier by day."""
    rng = world.rng
    peak = max(_ORDER_PROFILE)
    # Thinning: candidates at the peak rate, kept with probability profile(hour) / peak, so the
    # mean stays deliveries_per_day. The profile follows the first site's local hours.
    candidate_gap = DAY / world.config.deliveries_per_day * sum(_ORDER_PROFILE) / len(_ORDER_PROFILE) / peak
    home = world.sites[0].place.timezone
    weights = [site.weight for site in world.sites]
    product_weights = [1.0 / (1 + index) ** 0.8 for index in range(len(world.products))]
    batches: dict[tuple[int, int], list[tuple[list[str], str]]] = {}
    order_ms = world.start_ms + world.between(2 * MINUTE, 20 * MINUTE)
    for index in range(world.config.deliveries):
        order_ms += int(rng.expovariate(1 / candidate_gap)) + SECOND
        while rng.random() * peak > _ORDER_PROFILE[local(order_ms, home).hour]:
            order_ms += int(rng.expovariate(1 / candidate_gap)) + SECOND
        site_index = rng.choices(range(len(world.sites)), weights)[0]
        _delivery(world, index, order_ms, world.sites[site_index], product_weights, batches)
    _flush_945(world, batches)


def _delivery(
    world: World,
    index: int,
    order_ms: int,
    site: SimSite,
    product_weights: list[float],
    batches: dict[tuple[int, int], list[tuple[list[str], str]]],
) -> None:
    rng = world.rng
    customers = US_CUSTOMERS if site.place.country == "US" else EU_CUSTOMERS
    customer_index = rng.randrange(len(customers))
    chosen: list[SimProduct] = []
    for _ in range(rng.choice(_LINE_COUNTS)):
        product = rng.choices(world.products, product_weights)[0]
        if product not in chosen:
            chosen.append(product)
    lines = []
    for product in chosen:
        quantity = rng.choice(_QUANTITIES)
        lines.append((product, quantity, quantity))
    release_ms = order_ms + world.between(3 * MINUTE, 60 * MINUTE)
    pick_ms = release_ms + world.between(10 * MINUTE, 75 * MINUTE)
    if rng.random() < 0.09:
        pick_ms += world.between(2 * HOUR, 6 * HOUR)  # a backlog at the warehouse
    pack_ms = pick_ms + world.between(5 * MINUTE, 30 * MINUTE)
    ship_ms = pack_ms + world.between(5 * MINUTE, 45 * MINUTE)
    if site.wms == "x12":
        ship_ms = max(ship_ms - ship_ms % MINUTE, pack_ms - pack_ms % MINUTE + MINUTE)  # G62 is HHMM
    if rng.random() < 0.03 and any(ordered > 1 for _, ordered, _ in lines):
        # Short ship: the warehouse ships less than ordered on one line; the GI posts what shipped.
        line = next(k for k, (_, ordered, _) in enumerate(lines) if ordered > 1)
        product, ordered, _ = lines[line]
        lines[line] = (product, ordered, ordered - world.between(1, max(1, ordered // 4)))
        world.facts["short_shipped_deliveries"] += 1
    shipment = Shipment(
        index=index,
        site=site,
        customer=customers[customer_index],
        customer_id=str((17_100_000 if site.place.country == "US" else 17_200_000) + customer_index),
        order_id=f"{1_100_000 + index}",
        delivery_id=f"{80_100_000 + index}",
        lines=lines,
        release_ms=release_ms,
        pack_ms=pack_ms,
        ship_ms=ship_ms,
        bol=with_check(f"{COMPANY_PREFIX}{index:09d}"),  # VICS BOL: 17 digits with a check digit
    )
    shipment.ltl = site.place.country == "US" and shipment.units >= LTL_UNITS
    if shipment.ltl:
        carrier = pick_ltl(rng)
        shipment.tracking, shipment.scac, shipment.carrier_name = carrier.pro(index), carrier.scac, carrier.name
    else:
        parcel = pick_parcel(rng, site.place.country)
        shipment.tracking, shipment.scac, shipment.carrier_name = parcel.tracking(index), parcel.scac, parcel.name
    world.facts["deliveries"] += 1
    world.facts[f"deliveries_{site.wms}_site"] += 1
    world.facts["ltl_shipments" if shipment.ltl else "parcel_shipments"] += 1

    _erp_order(world, shipment, order_ms)
    if site.wms == "epcis":
        first_wms_ms, confirmed_ms = _wms_epcis(world, shipment, pick_ms)
    else:
        first_wms_ms = confirmed_ms = _wms_945(world, shipment, batches)
    _handoff(world, "release_to_wms", first_wms_ms - release_ms)
    for product, _, shipped in lines:
        world.wms_moves.append(Move(ship_ms, site.site, product.sku, -shipped))
    gi_ms = _goods_issue(world, shipment, confirmed_ms)
    if gi_ms is not None:
        _invoice(world, shipment, gi_ms)
    pickup_ms = ltl_story(world, shipment) if shipment.ltl else parcel_story(world, shipment)
    _handoff(world, "dispatch_to_pickup", pickup_ms - ship_ms)


def _handoff(world: World, name: str, latency_ms: int) -> None:
    """Scenario truth for the default handoffs (design.md 3.3): how many deliveries breach."""
    world.facts[f"handoff_{name}"] += 1
    if latency_ms > SLA[name]:
        world.facts[f"breached_{name}"] += 1


def _erp_order(world: World, shipment: Shipment, order_ms: int) -> None:
    rng = world.rng
    us = shipment.site.place.country == "US"
    odata = rng.random() < 0.3  # OData v2 literals and strings, else ISO 8601 and numbers
    amount = sum(product.price * ordered for product, ordered, _ in shipment.lines)
    order = {
        "SalesOrder": shipment.order_id,
        "SalesOrderType": "OR",
        "SalesOrganization": "1710" if us else "1010",
        "DistributionChannel": "10",
        "SoldToParty": shipment.customer_id,
        "PurchaseOrderByCustomer": f"PO{shipment.index * 37 % 1_000_000:06d}",
        "CreationDateTime": sap_time(order_ms, odata),
        "TotalNetAmount": f"{amount:.2f}",
        "TransactionCurrency": "USD" if us else "EUR",
        "to_Item": [
            {
                "SalesOrderItem": f"{10 * (number + 1)}",
                "Material": product.sku,
                "RequestedQuantity": f"{ordered}" if odata else ordered,
                "RequestedQuantityUnit": "EA",
            }
            for number, (product, ordered, _) in enumerate(shipment.lines)
        ],
    }
    world.sap(SALES_ORDER_CREATED, "ORDER_CREATED", order_ms + _raise_lag(world), order, shipment.delivery_id)
    delivery = {
        "OutboundDelivery": shipment.delivery_id,
        "DeliveryDocumentType": "LF",
        "SalesOrder": shipment.order_id,
        "ShippingPoint": shipment.site.site,
        "SoldToParty": shipment.customer_id,
        "ShipToParty": shipment.customer_id,
        "CreationDateTime": sap_time(shipment.release_ms, odata),
        "PlannedGoodsIssueDate": f"{local(shipment.release_ms, shipment.site.place.timezone):%Y-%m-%d}",
        "OverallGoodsMovementStatus": "A",
        "to_DeliveryDocumentItem": [
            {
                "DeliveryDocument": shipment.delivery_id,
                "DeliveryDocumentItem": f"{10 * (number + 1):06d}",
                "Material": product.sku,
                "Plant": shipment.site.site,
                "ActualDeliveryQuantity": f"{ordered}.000" if odata else ordered,
                "DeliveryQuantityUnit": "EA",
                "ReferenceSDDocument": shipment.order_id,
                "ReferenceSDDocumentItem": f"{10 * (number + 1)}",
            }
            for number, (product, ordered, _) in enumerate(shipment.lines)
        ],
    }
    world.sap(
        DELIVERY_CREATED, "ORDER_RELEASED", shipment.release_ms + _raise_lag(world), delivery, shipment.delivery_id
    )
    world.deliveries.append({**delivery, "_release_ms": shipment.release_ms, "_ship_ms": shipment.ship_ms})


def _raise_lag(world: World) -> int:
    """S/4 raises the event a moment after the document is saved; sometimes the outbox is slow."""
    lag = world.between(300, 4 * SECOND)
    return lag + world.between(MINUTE, 10 * MINUTE) if world.rng.random() < 0.01 else lag


def _wms_epcis(world: World, shipment: Shipment, pick_ms: int) -> tuple[int, int]:
    """picking, packing, shipping ObjectEvents -> (first recordTime, shipping recordTime)."""
    rng = world.rng
    site = shipment.site
    bt = f"urn:epcglobal:cbv:bt:{site.gln}:"
    plain = rng.random() < 0.3  # some WMSs send plain ids instead of CBV URNs
    refs = [("desadv", shipment.delivery_id), ("po", shipment.order_id)]
    # A parcel has no BOL: the WMS reports the carrier's tracking number as the shipment reference.
    shipping_refs = [*refs, ("bol", shipment.bol if shipment.ltl else shipment.tracking)]
    spelling = rng.choice(_BIZ_STEP_SPELLINGS)
    digital = rng.random() < 0.1
    epcs: list[str] = []
    quantities: list[tuple[str, int, str]] = []
    if shipment.units <= 24 and rng.random() < 0.35:
        for product, _, shipped in shipment.lines:
            for serial in world.serials(product.gtin, shipped):
                epcs.append(digital_link(product.gtin, serial=serial) if digital else sgtin(product.gtin, serial))
    else:
        lot = f"L{local(pick_ms, site.place.timezone):%y%j}"
        for product, _, shipped in shipment.lines:
            epc_class = digital_link(product.gtin, lot=lot) if digital else lgtin(product.gtin, lot)
            quantities.append((epc_class, shipped, "EA"))
    steps = (
        ("picking", "in_progress", "PICK1", pick_ms, refs, "PICK_CONFIRMED"),
        ("packing", "in_progress", "PACK1", shipment.pack_ms, refs, "PACK_CONFIRMED"),
        ("shipping", "in_transit", "DOCK1", shipment.ship_ms, shipping_refs, "SHIPMENT_DISPATCHED"),
    )
    records = []
    for step, disposition, point, event_ms, step_refs, event_type in steps:
        transactions = [(kind, value if plain else bt + value) for kind, value in step_refs]
        facts = EpcisFacts(
            event_id=f"urn:uuid:{world.uuid()}",
            biz_step=spelling + step,
            disposition=disposition,
            event_ms=event_ms,
            record_ms=event_ms + _upload_lag(world),
            timezone=site.place.timezone,
            biz_location=site.epcis_location,
            read_point=sgln(site.location_ref, point),
            transactions=transactions,
            epcs=epcs,
            quantities=quantities,
        )
        world.epcis(site, facts, shipment.delivery_id, event_type)
        records.append(facts.record_ms)
    return min(records), records[-1]


def _upload_lag(world: World) -> int:
    """Event time -> repository recordTime: seconds, sometimes a WMS upload backlog."""
    if world.rng.random() < 0.03:
        return world.between(10 * MINUTE, 2 * HOUR)
    return world.between(500, 90 * SECOND)


def _wms_945(world: World, shipment: Shipment, batches: dict[tuple[int, int], list[tuple[list[str], str]]]) -> int:
    """The 945 set of the delivery, queued in its site's 10-minute batch -> the batch's GS time."""
    site = shipment.site
    shipped_at = local(shipment.ship_ms, site.place.timezone)
    customer = shipment.customer
    body = [
        f"W06*F*{shipment.delivery_id}*{x12_date(shipped_at)}*{shipment.bol}**{shipment.order_id}",
        f"N1*WH*{site.place.name}*91*{site.edi_warehouse_id}",
        f"N1*ST*{customer.name}*92*{shipment.customer_id}",
        f"N4*{customer.city}*{customer.state}*{customer.postal}*{customer.country}",
        f"N9*BM*{shipment.bol}",
        f"N9*CN*{shipment.tracking}",
        # G62*11: shipped date/time in the site's zone with its E623 code (time qualifier 8).
        f"G62*11*{x12_date(shipped_at)}*8*{x12_time(shipped_at)}*{US_TIME_CODES[site.place.timezone]}",
        f"W27*M*{shipment.scac}*{shipment.carrier_name}*PP",
    ]
    for number, (product, ordered, shipped) in enumerate(shipment.lines, 1):
        body.append(f"LX*{number}")
        body.append(f"W12*CC*{ordered}*{shipped}*{ordered - shipped}*EA**UK*{product.gtin}")
        body.append(f"G69*{product.description}")
    body.append(f"W03*{shipment.units}*{shipment.weight_lb:.0f}*LB")
    window = (shipment.ship_ms - world.start_ms) // EDI_BATCH
    site_index = world.sites.index(site)
    batches.setdefault((site_index, window), []).append((body, f"945|{shipment.delivery_id}"))
    sent = _batch_sent(world, site_index, window)
    return sent - sent % MINUTE  # recorded_at = GS04/GS05, minutes


def _batch_sent(world: World, site_index: int, window: int) -> int:
    return world.start_ms + (window + 1) * EDI_BATCH + 90 * SECOND + 53 * SECOND * site_index


def _flush_945(world: World, batches: dict[tuple[int, int], list[tuple[list[str], str]]]) -> None:
    for (site_index, window), sets in batches.items():
        site = world.sites[site_index]
        sent = _batch_sent(world, site_index, window)
        doc = X12Doc(site.partner, "SW", "945", [body for body, _ in sets], sent)
        events = tuple(("SHIPMENT_DISPATCHED", identity) for _, identity in sets)
        received = sent + world.between(2 * SECOND, 90 * SECOND) + world.lag()
        world.add(Msg(TOPIC_WMS_EDI, site.partner.sender_id, received, events=events, x12=doc))


def _goods_issue(world: World, shipment: Shipment, confirmed_ms: int) -> int | None:
    """OutboundDelivery.Changed with status C, after SAP hears of the shipment; or never."""
    rng = world.rng
    config = world.config
    site = shipment.site
    roll = rng.random()
    if roll < config.gi_missing_rate:
        world.facts["gi_never_posted"] += 1
        world.facts["missing_ship_to_erp"] += 1
        for product, _, shipped in shipment.lines:
            world.in_flight[(site.site, product.sku)] += shipped
        return None
    gi_ms = confirmed_ms + world.between(20 * SECOND, 6 * MINUTE)
    if roll < config.gi_missing_rate + config.gi_late_rate:
        gi_ms += world.between(HOUR, 8 * HOUR)  # the interface queue was stuck: a late sync
        world.facts["gi_late_sync"] += 1
    odata = rng.random() < 0.3
    data = {
        "OutboundDelivery": shipment.delivery_id,
        "DeliveryDocumentType": "LF",
        "SalesOrder": shipment.order_id,
        "ShippingPoint": site.site,
        "OverallGoodsMovementStatus": "C",
        "ActualGoodsMovementDateTime": sap_time(gi_ms, odata),
        "to_DeliveryDocumentItem": [
            {
                "DeliveryDocument": shipment.delivery_id,
                "DeliveryDocumentItem": f"{10 * (number + 1):06d}",
                "Material": product.sku,
                "Plant": site.site,
                "ActualDeliveryQuantity": f"{shipped}.000" if odata else shipped,
                "DeliveryQuantityUnit": "EA",
            }
            for number, (product, _, shipped) in enumerate(shipment.lines)
        ],
    }
    time_ms = gi_ms + world.between(200, 2500)
    world.sap(DELIVERY_CHANGED, "GOODS_ISSUE_POSTED", time_ms, data, shipment.delivery_id)
    _handoff(world, "ship_to_erp", time_ms - shipment.ship_ms)
    for product, _, shipped in shipment.lines:
        world.erp_moves.append(Move(gi_ms, site.site, product.sku, -shipped))
    return gi_ms


def _invoice(world: World, shipment: Shipment, gi_ms: int) -> None:
    rng = world.rng
    invoice_ms = gi_ms + world.between(40 * MINUTE, 20 * HOUR)
    if rng.random() < 0.06:
        invoice_ms += world.between(24 * HOUR, 60 * HOUR)  # billing block, weekend run
    time_ms = invoice_ms + world.between(200, 2500)
    amount = sum(product.price * shipped for product, _, shipped in shipment.lines)
    data = {
        "BillingDocument": f"{90_100_000 + shipment.index}",
        "BillingDocumentType": "F2",
        "ReferenceSDDocument": shipment.delivery_id,
        "SalesOrder": shipment.order_id,
        "SoldToParty": shipment.customer_id,
        "CreationDateTime": sap_time(invoice_ms, False),
        "BillingDocumentDate": f"{local(invoice_ms, shipment.site.place.timezone):%Y-%m-%d}",
        "TotalNetAmount": f"{amount:.2f}",
        "TransactionCurrency": "USD" if shipment.site.place.country == "US" else "EUR",
    }
    world.sap(BILLING_CREATED, "INVOICE_POSTED", time_ms, data, shipment.delivery_id)
    world.facts["handoff_ship_to_invoice"] += 1
    if time_ms - gi_ms > SLA_INVOICE:
        world.facts["breached_ship_to_invoice"] += 1
