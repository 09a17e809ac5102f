"""EasyPost tracking details -> canonical milestones (design.md 2.3; README "EasyPost milestones").

Milestones from `status` / `status_detail` and the history before the detail (first matching
row wins). "Picked up" = an earlier detail of the history (by `datetime`) was a pickup or any
later movement; "out for delivery" = an earlier detail was OUT_FOR_DELIVERY.

| status | condition | milestone |
|---|---|---|
| pre_transit, in_transit | a pickup scan (below), not yet out for delivery | PICKED_UP |
| pre_transit, in_transit | status_detail `received_at_origin_facility`, not yet picked up | PICKED_UP |
| pre_transit | status_detail `received_at_origin_facility` (after pickup: an arrival scan) | IN_TRANSIT |
| pre_transit | | ACKNOWLEDGED |
| in_transit | status_detail `arrived_at_destination` | ARRIVED |
| in_transit | status_detail `out_for_delivery` | OUT_FOR_DELIVERY |
| in_transit | (incl. `received_at_origin_facility` after pickup) | IN_TRANSIT |
| out_for_delivery | | OUT_FOR_DELIVERY |
| delivered | | DELIVERED |
| available_for_pickup | | ARRIVED |
| return_to_sender | | RETURNED |
| failure | status_detail `delivery_exception` | DELIVERY_FAILED |
| failure | a failed attempt (below) | DELIVERY_FAILED |
| failure | | EXCEPTION |
| cancelled | | CANCELLED |
| unknown, error, anything else | | UNKNOWN |

A pickup scan: carrier_code `PU` (FedEx, e.g. with status_detail `arrived_at_facility`) or a
message saying "picked up" (not "to be picked up"). Why the history: real carriers bend
EasyPost's statuses. FedEx labels every "Arrived at FedEx location" scan
`received_at_origin_facility`, even at the destination station after out-for-delivery, and
reports a failed delivery attempt ("Customer not available or business closed") as `failure` /
`delayed`. A failed attempt: a message with "attempt", "not available", "business closed", "no
access", "unable to deliver" or "no one home"; or, once out for delivery, a `failure` whose
status_detail says nothing more (`delayed`, `failure`, `unknown`, none), not `damaged`, `lost`...
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from operators.model import Milestone

_STATUS_MILESTONES: Mapping[str, Milestone] = {
    "pre_transit": Milestone.ACKNOWLEDGED,
    "in_transit": Milestone.IN_TRANSIT,
    "out_for_delivery": Milestone.OUT_FOR_DELIVERY,
    "delivered": Milestone.DELIVERED,
    "available_for_pickup": Milestone.ARRIVED,
    "return_to_sender": Milestone.RETURNED,
    "failure": Milestone.EXCEPTION,
    "cancelled": Milestone.CANCELLED,
}

# Raw carrier event codes that are a pickup scan (FedEx and DHL both use `PU`).
_PICKUP_CARRIER_CODES = frozenset({"PU"})
# "Picked up", "USPS picked up item", but not "will be picked up" / "ready to be picked up".
_PICKED_UP = re.compile(r"(?<!be )\bpicked up\b", re.IGNORECASE)
# A failed delivery attempt in the carrier's words (FedEx: "Customer not available or business closed").
_FAILED_ATTEMPT = re.compile(
    r"attempt|not available|business (?:was )?closed|no access|unable to deliver|no one (?:was )?(?:home|available)",
    re.IGNORECASE,
)
# `failure` details that say nothing more: on a delivery run they are the failed attempt (FedEx
# `delayed`); `damaged`, `lost`, `refused`, `held` ... stay exceptions.
_VAGUE_FAILURES = frozenset({"delayed", "failure", "unknown", ""})
# Milestones after which the parcel has been picked up (an arrival scan is no pickup any more).
_MOVING = frozenset(
    {
        Milestone.PICKED_UP,
        Milestone.IN_TRANSIT,
        Milestone.ARRIVED,
        Milestone.OUT_FOR_DELIVERY,
        Milestone.DELIVERY_FAILED,
        Milestone.DELIVERED,
    }
)


def milestone_for(
    status: str,
    status_detail: str,
    carrier_code: str,
    message: str,
    *,
    picked_up: bool = False,
    out_for_delivery: bool = False,
) -> Milestone:
    """The canonical milestone of one tracking detail (table in the module docstring), given
    whether an earlier detail of the history had the parcel picked up / out for delivery."""
    return _milestone(status, status_detail, carrier_code, message, picked_up, out_for_delivery)


@functools.lru_cache(maxsize=4096)  # a few hundred distinct combinations; every detail asks
def _milestone(
    status: str, status_detail: str, carrier_code: str, message: str, picked_up: bool, out_for_delivery: bool
) -> Milestone:
    status, status_detail, carrier_code = status.lower(), status_detail.lower(), carrier_code.upper()
    if status in {"pre_transit", "in_transit"}:
        pickup_scan = carrier_code in _PICKUP_CARRIER_CODES or _PICKED_UP.search(message) is not None
        if pickup_scan and not out_for_delivery:
            return Milestone.PICKED_UP
        if status_detail == "received_at_origin_facility":
            # An arrival scan: the pickup only when nothing moved before it.
            return Milestone.IN_TRANSIT if picked_up or out_for_delivery else Milestone.PICKED_UP
    if status == "in_transit" and status_detail == "arrived_at_destination":
        return Milestone.ARRIVED
    if status == "in_transit" and status_detail == "out_for_delivery":
        return Milestone.OUT_FOR_DELIVERY
    if status == "failure" and (
        status_detail == "delivery_exception"
        or (out_for_delivery and status_detail in _VAGUE_FAILURES)
        or _FAILED_ATTEMPT.search(message) is not None
    ):
        return Milestone.DELIVERY_FAILED
    return _STATUS_MILESTONES.get(status, Milestone.UNKNOWN)


# A tracking detail as the adapter reads it: (occurred_at, status, status_detail, carrier_code,
# message, datetime as written, location).
Detail = tuple[datetime, str, str, str, str, str, str | None]


def history_milestones(history: Sequence[Detail]) -> list[Milestone]:
    """The milestone of every detail of a tracker's history, in the order given.

    A detail's milestone depends on the history before it: it is walked in time order (EasyPost
    lists it oldest first, but nothing guarantees that).
    """
    milestones: list[Milestone] = [Milestone.UNKNOWN] * len(history)
    picked_up = out_for_delivery = False
    order: Iterable[int] = range(len(history))
    previous = None
    for detail in history:
        if previous is not None and previous > detail[0]:
            order = sorted(order, key=lambda i: history[i][0])  # stable: equal times keep their order
            break
        previous = detail[0]
    for index in order:
        _, status, status_detail, carrier_code, message, _, _ = history[index]
        milestone = _milestone(status, status_detail, carrier_code, message, picked_up, out_for_delivery)
        milestones[index] = milestone
        picked_up = picked_up or milestone in _MOVING
        out_for_delivery = out_for_delivery or milestone is Milestone.OUT_FOR_DELIVERY
    return milestones
