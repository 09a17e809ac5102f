"""What a delivery tells the inventory ledger (design.md 3.4): goods in flight and its goods issue.

The lifecycle bucket that holds a delivery keeps, per delivery, just enough to say:
- which WMS dispatches are in flight (dispatched, goods issue not posted in the ERP): each is sent
  to the site's inventory bucket as `InFlight(+1)` when applied, and `InFlight(-1)` when the goods
  issue is posted, when the dispatch is retracted, or `retention` after the delivery's latest
  event without a goods issue (it then stops explaining the delta: a goods issue that never came
  is drift);
- its one ERP goods-issue movement (`GoodsIssue`): from the earliest goods issue, with the lines
  of the earliest goods issue that has lines, else of the earliest release that has lines;
  re-sent whenever a later-arriving event changes it.
"""

from __future__ import annotations

import zlib
from typing import Any

import msgspec

from operators.domain.items import GoodsIssue, InFlight
from operators.domain.watermark import OrderKey
from operators.model import Line

INVENTORY = "inventory"
_ENCODER = msgspec.msgpack.Encoder()

# (occurred ms, tie of the event id, site, lines): the earliest wins (ties: operators.domain.items.tie_of)
Dated = tuple[int, int, str, tuple[Line, ...]]


class DeliveryGoods(msgspec.Struct, gc=False, array_like=True):
    """The inventory side of one delivery. Discarded when: with its delivery (lifecycle)."""

    release: Dated | None = None  # earliest ERP release with lines
    issue: tuple[int, int, str] | None = None  # (occurred, tie, site) of the earliest ERP goods issue
    issue_lines: Dated | None = None  # earliest ERP goods issue with lines
    sent_site: str | None = None  # where the last GoodsIssue went ...
    sent_digest: int = 0  # ... and a digest of it (site, occurred, lines): re-sent only when it changes
    in_flight: dict[str, tuple[str, tuple[Line, ...]]] = {}  # dispatch event_id -> (site, lines)
    retracted: list[str] = []  # dispatches retracted before they arrived

    def dispatch(self, event_id: str, dated: Dated, key: OrderKey, delivery_id: str, out: list[Any]) -> None:
        occurred, _, site, lines = dated
        if self.issue is not None or event_id in self.retracted or not lines or event_id in self.in_flight:
            return
        self.in_flight[event_id] = (site, lines)
        out.append(_send(site, key, 1, InFlight(site, delivery_id, event_id, lines, 1, occurred)))

    def retract(self, target: str, at_ms: int, key: OrderKey, delivery_id: str, out: list[Any]) -> None:
        found = self.in_flight.pop(target, None)
        if found is not None:
            site, lines = found
            out.append(_send(site, key, 1, InFlight(site, delivery_id, target, lines, -1, at_ms)))
        elif target not in self.retracted:
            self.retracted.append(target)

    def release_lines(self, dated: Dated, key: OrderKey, delivery_id: str, out: list[Any]) -> None:
        if dated[3] and (self.release is None or dated[:2] < self.release[:2]):
            self.release = dated
            self._send_issue(key, delivery_id, out)

    def goods_issue(self, dated: Dated, key: OrderKey, delivery_id: str, out: list[Any]) -> None:
        first = self.issue is None
        if self.issue is None or dated[:2] < self.issue[:2]:
            self.issue = dated[:3]
        if dated[3] and (self.issue_lines is None or dated[:2] < self.issue_lines[:2]):
            self.issue_lines = dated
        if first:
            for dispatch_id in sorted(self.in_flight):
                site, lines = self.in_flight[dispatch_id]
                out.append(_send(site, key, 1, InFlight(site, delivery_id, dispatch_id, lines, -1, dated[0])))
            self.in_flight = {}
        self._send_issue(key, delivery_id, out)

    def expire_in_flight(self, at_ms: int, delivery_id: str, out: list[Any]) -> None:
        """`retention` after the delivery's latest event without a goods issue."""
        for index, dispatch_id in enumerate(sorted(self.in_flight)):
            site, lines = self.in_flight[dispatch_id]
            key = (at_ms, f"expire:{delivery_id}", index)
            out.append((INVENTORY, site, key, InFlight(site, delivery_id, dispatch_id, lines, -1, at_ms)))
        self.in_flight = {}

    def _send_issue(self, key: OrderKey, delivery_id: str, out: list[Any]) -> None:
        if self.issue is None:
            return
        occurred, _, site = self.issue
        if not site:
            return  # a goods issue without a shipping point can't be placed in a site's ledger
        source = self.issue_lines or self.release
        lines = source[3] if source is not None else ()
        digest = zlib.crc32(_ENCODER.encode((site, occurred, lines)))
        if digest == self.sent_digest and site == self.sent_site:
            return
        if self.sent_site is not None and self.sent_site != site:
            old_site = self.sent_site
            out.append(_send(old_site, key, 2, GoodsIssue(old_site, delivery_id, occurred, ())))
        self.sent_site, self.sent_digest = site, digest
        out.append(_send(site, key, 3, GoodsIssue(site, delivery_id, occurred, lines)))


def _send(site: str, key: OrderKey, seq: int, item: InFlight | GoodsIssue) -> tuple[str, str, Any, Any]:
    return (INVENTORY, site, (key[0], key[1], key[2] * 8 + seq), item)
