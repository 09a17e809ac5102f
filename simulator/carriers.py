"""Carrier reporting in the simulator: X12 214 files from LTL carriers, EasyPost webhooks for parcels.

LTL carriers differ the way real ones do: the E623 time code they write (`ET`, `CT`, `PT`, or `LT`
= local time of the event location), whether they echo our delivery number (`L11*..*DO`) or only
PRO/BOL, and whether each file carries only the new status or every status so far (cumulative
files repeat earlier AT7s: duplicates by content, design.md 2.5).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulator.formats import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    Tracker,
    TrackingDetail,
    X12Partner,
    dumps,
    easypost_event,
    local,
    to_dt,
    to_ms,
    tracker_json,
    x12_date,
    x12_time,
    zone,
)
from simulator.world import EU_HUBS, TOPIC_CARRIER_EDI, TOPIC_WEBHOOKS, US_HUBS, Msg, Place, World, X12Doc

if TYPE_CHECKING:
    from simulator.story import Shipment

_TMS_ID = "LOGISYNCTMS"
_ZONE_OF_CODE = {"ET": "America/New_York", "CT": "America/Chicago", "MT": "America/Denver", "PT": "America/Los_Angeles"}
_TRANSIT_DAYS = (1, 1, 2, 2, 2, 3, 3, 4)


@dataclass(frozen=True, slots=True)
class LtlCarrier:
    scac: str
    name: str
    time_code: str  # AT707
    delivery_ref: bool  # sends L11*<delivery>*DO
    cumulative: bool  # every file repeats the statuses sent before
    partner: X12Partner
    pro_prefix: str

    def pro(self, index: int) -> str:
        return f"{self.pro_prefix}{index:07d}"


LTL_CARRIERS = (
    LtlCarrier("ODFL", "Old Dominion Freight Line", "ET", True, False, X12Partner("ODFL", _TMS_ID, "~", ">"), "0771"),
    LtlCarrier("SAIA", "Saia LTL Freight", "CT", False, False, X12Partner("SAIA", _TMS_ID, "\n", ">", True), "1021"),
    LtlCarrier("EXLA", "Estes Express Lines", "LT", True, True, X12Partner("EXLA", _TMS_ID, "~\n", ":"), "20"),
    LtlCarrier("FXFE", "FedEx Freight", "PT", False, True, X12Partner("FXFE", _TMS_ID, "~", ":"), "54"),
)
_LTL_BY_SCAC = {carrier.scac: carrier for carrier in LTL_CARRIERS}


@dataclass(frozen=True, slots=True)
class ParcelCarrier:
    name: str  # EasyPost `carrier`
    scac: str
    service: str
    pickup_detail: str  # status_detail of the pickup scan
    codes: Mapping[str, tuple[str, str]]  # step -> (carrier_code, message)

    def tracking(self, index: int) -> str:
        """Carrier-shaped tracking numbers, unique per delivery (7919 is prime to 10)."""
        if self.name == "UPS":
            return f"1Z8V4R2703{index:08d}"
        if self.name == "FedEx":
            return f"7{(index * 7919 + 104_729) % 10**11:011d}"
        if self.name == "USPS":
            return f"9400111899{index:012d}"
        if self.name == "DHLExpress":
            return f"{(index * 7919 + 3_000_000_000) % 10**10:010d}"
        return f"0{(index * 7919 + 5_000_000) % 10**13:013d}"


def _codes(*pairs: tuple[str, str]) -> dict[str, tuple[str, str]]:
    steps = ("label", "pickup", "departed", "arrived", "delayed", "ofd", "attempted", "delivered")
    return dict(zip(steps, pairs, strict=True))


PARCEL_CARRIERS = {
    "UPS": ParcelCarrier(
        "UPS", "UPSN", "Ground", "received_at_origin_facility",
        _codes(("MP", "Shipper created a label, UPS has not received the package yet."), ("OR", "Pickup Scan"),
               ("DP", "Departed from Facility"), ("AR", "Arrived at Facility"),
               ("DY", "Delay: adverse weather conditions"), ("OT", "Out For Delivery Today"),
               ("UR", "Delivery attempted - receiver not available"), ("KB", "Delivered")),
    ),
    "FedEx": ParcelCarrier(
        "FedEx", "FDEG", "FEDEX_GROUND", "arrived_at_facility",
        _codes(("OC", "Shipment information sent to FedEx"), ("PU", "Picked up"),
               ("DP", "Departed FedEx location"), ("AR", "Arrived at FedEx location"),
               ("SE", "Delay - weather"), ("OD", "On FedEx vehicle for delivery"),
               ("DE", "Delivery exception - customer not available"), ("DL", "Delivered")),
    ),
    "USPS": ParcelCarrier(
        "USPS", "USPS", "GroundAdvantage", "received_at_origin_facility",
        _codes(("GX", "Shipping Label Created, USPS Awaiting Item"), ("03", "USPS picked up item"),
               ("EF", "Departed USPS Regional Facility"), ("10", "Arrived at USPS Regional Facility"),
               ("SD", "Weather delay"), ("OF", "Out for Delivery"),
               ("53", "Notice Left (No Authorized Recipient Available)"), ("01", "Delivered, In/At Mailbox")),
    ),
    "DHLExpress": ParcelCarrier(
        "DHLExpress", "DHLX", "ExpressWorldwide", "received_at_origin_facility",
        _codes(("PL", "Shipment information received"), ("PU", "Shipment picked up"),
               ("DF", "Departed Facility"), ("AF", "Arrived at Sort Facility"),
               ("HP", "Delay due to weather"), ("WC", "With delivery courier"),
               ("NH", "Delivery attempted; consignee not at home"), ("OK", "Delivered")),
    ),
    "DPD": ParcelCarrier(
        "DPD", "DPDE", "Classic", "received_at_origin_facility",
        _codes(("03", "Parcel data received"), ("10", "Picked up by DPD"), ("05", "Departed depot"),
               ("02", "At parcel delivery centre"), ("09", "Delay"), ("04", "Out for delivery"),
               ("08", "Delivery attempt unsuccessful"), ("13", "Delivered")),
    ),
}  # fmt: skip
_PARCEL_BY_SCAC = {carrier.scac: carrier for carrier in PARCEL_CARRIERS.values()}


def pick_ltl(rng: random.Random) -> LtlCarrier:
    return rng.choices(LTL_CARRIERS, (0.35, 0.3, 0.2, 0.15))[0]


def pick_parcel(rng: random.Random, country: str) -> ParcelCarrier:
    names = ("UPS", "FedEx", "USPS") if country == "US" else ("DHLExpress", "UPS", "DPD")
    return PARCEL_CARRIERS[rng.choices(names, (0.45, 0.35, 0.2))[0]]


def _pickup(world: World, ship_ms: int) -> int:
    pickup = ship_ms + world.between(15 * MINUTE, 210 * MINUTE)
    if world.rng.random() < 0.06:
        pickup += world.between(4 * HOUR, 10 * HOUR)  # missed pickup: the truck came late
    return pickup


def _wall_clock(day: datetime, hour: int, minute: int, tz: str) -> int:
    return to_ms(datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone(tz)))


# --- LTL: X12 214 ---------------------------------------------------------------------------

# (appointment?, AT701 or AT703 code, AT702 or AT704 reason, time, where)
_Status = tuple[bool, str, str, int, Place]


def ltl_story(world: World, shipment: Shipment) -> int:
    """The carrier's 214 files for one LTL shipment -> when it picked the freight up (AF)."""
    rng = world.rng
    carrier = _LTL_BY_SCAC[shipment.scac]
    origin, dest = shipment.site.place, shipment.customer
    pickup = _pickup(world, shipment.ship_ms)
    pickup = max(pickup - pickup % MINUTE, shipment.ship_ms - shipment.ship_ms % MINUTE + MINUTE)
    day = local(pickup, dest.timezone) + timedelta(days=rng.choice(_TRANSIT_DAYS))
    deliver = _wall_clock(day, world.between(8, 15), rng.choice((0, 15, 30, 45)), dest.timezone)
    groups: list[list[_Status]] = [[(False, "AF", "NS", pickup, origin)]]
    if rng.random() < 0.2:  # a delivery appointment (AT703 AB) with the pickup report
        groups[0].append((True, "AB", "NA", deliver, dest))
    hubs = [rng.choice(US_HUBS) for _ in range(4)]
    transit_days = (deliver - pickup) // DAY
    for number in range(1, transit_days + 1):
        moment = pickup + number * DAY - world.between(0, 6 * HOUR)
        if moment < deliver - 2 * HOUR:
            groups.append([(False, "X6", "NS", moment, hubs[number % 4])])
    last = max(status[3] for group in groups for status in group if not status[0])
    if rng.random() < 0.04:  # weather: AT701 SD with reason AO, a day late
        groups.append([(False, "SD", "AO", last + (deliver - last) // 2, hubs[0])])
        deliver += DAY
        world.facts["ltl_delayed"] += 1
    if rng.random() < 0.02:  # AH attempted, AT702 B1 consignee closed; delivered the next day
        groups.append([(False, "AH", "B1", deliver, dest)])
        deliver += DAY
        world.facts["ltl_attempted"] += 1
    arrival = (False, "X1", "NS", deliver - world.between(5, 40) * MINUTE, dest)
    delivered = (False, "D1", "NS", deliver, dest)
    groups.extend([[arrival, delivered]] if rng.random() < 0.6 else [[arrival], [delivered]])
    groups = _increasing_minutes(groups)
    header = [f"B10*{shipment.tracking}*{shipment.bol}*{carrier.scac}"]
    if carrier.delivery_ref:
        header.append(f"L11*{shipment.delivery_id}*DO")
    header += [
        f"N1*SH*{origin.name}*UL*{shipment.site.gln}",  # our site by GLN: the LT fallback zone
        f"N4*{origin.city}*{origin.state}*{origin.postal}*{origin.country}",
        f"N1*CN*{dest.name}",
        f"N4*{dest.city}*{dest.state}*{dest.postal}*{dest.country}",
    ]
    trailer = f"AT8*G*L*{shipment.weight_lb:.0f}*{len(shipment.lines)}"
    sets: list[tuple[list[str], list[tuple[str, str]]]] = []
    sent = 0
    for group in groups:
        body = [*header, "LX*1"]
        identities: list[tuple[str, str]] = []
        for appointment, code, reason, moment, place in group:
            tz = place.timezone if carrier.time_code == "LT" else _ZONE_OF_CODE[carrier.time_code]
            when = local(moment, tz)
            date, clock = x12_date(when), x12_time(when)
            if appointment:
                body.append(f"AT7***{code}*{reason}*{date}*{clock}*{carrier.time_code}")
            else:
                body.append(f"AT7*{code}*{reason}***{date}*{clock}*{carrier.time_code}")
            body.append(f"MS1*{place.city}*{place.state}*{place.country}")
            kind = "APPOINTMENT" if appointment else "CARRIER_STATUS"
            identities.append((kind, f"214|{shipment.tracking}|{kind}|{code}|{date}{clock}"))
        body.append(trailer)
        sets.append((body, identities))
        latest = max(status[3] for status in group if not status[0])
        sent = max(sent + MINUTE, latest + world.between(10, 150) * MINUTE)
        _send_214(world, carrier, shipment, sets if carrier.cumulative else sets[-1:], sent)
    if carrier.cumulative and rng.random() < 0.1:  # the whole history again, nothing new
        _send_214(world, carrier, shipment, sets, sent + world.between(6 * HOUR, 30 * HOUR))
        world.facts["carrier_edi_resends_without_news"] += 1
    return pickup


def _increasing_minutes(groups: list[list[_Status]]) -> list[list[_Status]]:
    """Status times on whole minutes, strictly increasing (AT706 is HHMM): one fact per minute."""
    previous = 0
    result = []
    for group in groups:
        fixed = []
        for appointment, code, reason, planned, place in group:
            moment = planned - planned % MINUTE
            if not appointment:
                moment = max(moment, previous + MINUTE)
                previous = moment
            fixed.append((appointment, code, reason, moment, place))
        result.append(fixed)
    return result


def _send_214(
    world: World,
    carrier: LtlCarrier,
    shipment: Shipment,
    sets: list[tuple[list[str], list[tuple[str, str]]]],
    sent: int,
) -> None:
    doc = X12Doc(carrier.partner, "QM", "214", [body for body, _ in sets], sent)
    events = tuple(identity for _, identities in sets for identity in identities)
    received = sent + world.between(2 * SECOND, 90 * SECOND) + world.lag()
    world.add(Msg(TOPIC_CARRIER_EDI, shipment.tracking, received, events=events, x12=doc))


# --- parcel: EasyPost webhooks -----------------------------------------------------------------


def parcel_story(world: World, shipment: Shipment) -> int:
    """Tracking details and the webhooks that resend the growing history -> the pickup scan time."""
    rng = world.rng
    carrier = _PARCEL_BY_SCAC[shipment.scac]
    origin, dest = shipment.site.place, shipment.customer
    hubs = US_HUBS if origin.country == "US" else EU_HUBS
    pickup = _pickup(world, shipment.ship_ms)
    day = local(pickup, dest.timezone) + timedelta(days=rng.choice(_TRANSIT_DAYS))
    deliver = _wall_clock(day, world.between(10, 17), world.between(0, 59), dest.timezone)
    out_for_delivery = _wall_clock(day, world.between(6, 8), world.between(0, 59), dest.timezone)
    departed = pickup + world.between(HOUR, 4 * HOUR)
    steps: list[tuple[int, str, str, str, Place]] = [
        (shipment.pack_ms + world.between(1, 15) * MINUTE, "pre_transit", "label_created", "label", origin),
        (pickup, "in_transit", carrier.pickup_detail, "pickup", origin),
        (departed, "in_transit", "departed_facility", "departed", origin),
    ]
    hub_scans = world.between(0, 2)
    for number in range(hub_scans):
        moment = departed + (out_for_delivery - departed) * (number + 1) // (hub_scans + 2)
        steps.append((moment, "in_transit", "arrived_at_facility", "arrived", rng.choice(hubs)))
    if rng.random() < 0.04:
        steps.append((out_for_delivery - 3 * HOUR, "in_transit", "weather_delay", "delayed", rng.choice(hubs)))
        world.facts["parcel_delayed"] += 1
    if rng.random() < 0.02:
        steps.append((out_for_delivery, "out_for_delivery", "out_for_delivery", "ofd", dest))
        steps.append((deliver, "failure", "delivery_exception", "attempted", dest))
        out_for_delivery, deliver = out_for_delivery + DAY, deliver + DAY
        world.facts["parcel_attempted"] += 1
    steps.append((out_for_delivery, "out_for_delivery", "out_for_delivery", "ofd", dest))
    steps.append((deliver, "delivered", "arrived_at_destination", "delivered", dest))
    details: list[TrackingDetail] = []
    previous = 0
    for planned, status, status_detail, step, place in steps:
        moment = max(planned - planned % SECOND, previous + SECOND)  # whole seconds, increasing
        previous = moment
        code, message = carrier.codes[step]
        details.append(
            TrackingDetail(moment, status, status_detail, message, code, place.city, place.state, place.country,
                           place.postal)
        )  # fmt: skip
    _send_webhooks(world, carrier, shipment, details, deliver)
    return details[1].ms


def _send_webhooks(
    world: World, carrier: ParcelCarrier, shipment: Shipment, details: list[TrackingDetail], deliver: int
) -> None:
    rng = world.rng
    visible: list[int] = []  # when EasyPost has polled each detail from the carrier
    for detail in details:
        visible.append(max(visible[-1] + SECOND if visible else 0, detail.ms + world.between(1, 40) * MINUTE))
    history = [detail.as_json(carrier.name) for detail in details]
    identities = [
        ("CARRIER_STATUS", f"ep|{carrier.name}|{shipment.tracking}|{d.ms}|{d.status}|{d.status_detail}|{d.message}")
        for d in details
    ]
    origin, dest = shipment.site.place, shipment.customer
    tracker = Tracker(
        tracker_id=world.hex_id("trk_"),
        tracking_code=shipment.tracking,
        carrier=carrier.name,
        created_ms=visible[0] - 2 * SECOND,
        weight_oz=round(shipment.weight_lb * 16, 1),
        est_delivery_ms=deliver,
        origin=f"{origin.city} {origin.state} {origin.country}".replace("  ", " "),
        destination=f"{dest.city} {dest.state} {dest.country}".replace("  ", " "),
        service=carrier.service,
    )
    template = tracker_json(tracker)
    first = True
    last_status = ""
    for index, detail in enumerate(details):
        if index + 1 < len(details) and visible[index + 1] - visible[index] < 2 * MINUTE:
            continue  # EasyPost saw the next scan before it sent: one webhook for both
        previous: dict[str, Any] = {"status": last_status} if last_status and last_status != detail.status else {}
        _webhook(world, template, history[: index + 1], identities[: index + 1], visible[index], first, previous)
        first, last_status = False, detail.status
        if rng.random() < 0.08:  # tracker.updated for an ETA change only: the same history again
            resend = visible[index] + world.between(5 * MINUTE, 3 * HOUR)
            if index + 1 == len(details) or resend < visible[index + 1]:
                eta = {"est_delivery_date": f"{to_dt(deliver - DAY):%Y-%m-%d}T00:00:00Z"}
                _webhook(world, template, history[: index + 1], identities[: index + 1], resend, False, eta)
                world.facts["webhook_resends_without_news"] += 1


def _webhook(
    world: World,
    template: dict[str, Any],
    history: list[dict[str, Any]],
    identities: list[tuple[str, str]],
    created_ms: int,
    created: bool,
    previous: dict[str, Any],
) -> None:
    event = easypost_event(template, history, world.hex_id("evt_"), created_ms, created, previous)
    msg = Msg(TOPIC_WEBHOOKS, template["tracking_code"], created_ms + world.lag(), dumps(event), tuple(identities))
    world.add(msg)
