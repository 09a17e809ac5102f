"""Where a new canonical event goes after dedup (design.md 1, 3.2-3.4).

    names its delivery           -> lifecycle (by delivery), and teaches its references
                                    -> resolution (by reference)
    needs resolution             -> the arbiter of its primary reference (registered), and one
                                    lookup per reference -> resolution (by reference)
    moves stock / is a snapshot  -> inventory (by site)

Each item carries its order key: (received ms, event_id, seq).
"""

from __future__ import annotations

from typing import Any

from operators.domain.inventory import inventory_relevant
from operators.domain.items import Pending
from operators.domain.resolution import is_carrier, lookups, needs_resolution, teachings
from operators.model import CanonicalEvent

RESOLUTION = "resolution"
ARBITER = "arbiter"
LIFECYCLE = "lifecycle"
INVENTORY = "inventory"
DOMAIN_STAGES = (RESOLUTION, ARBITER, LIFECYCLE, INVENTORY)


def route_event(event: CanonicalEvent, received_ms: int, xref_ttl_ms: int, out: list[Any]) -> None:
    """Append (stage, routing entity, order key, item) for every stage that takes the event."""
    event_id = event.event_id
    if event.delivery_id:
        out.append((LIFECYCLE, event.delivery_id, (received_ms, event_id, 0), event))
        for index, teach in enumerate(teachings(event)):
            out.append((RESOLUTION, teach.ref, (received_ms, event_id, 1 + index), teach))
    elif needs_resolution(event):
        primary, expires_ms, asks = lookups(event, received_ms, xref_ttl_ms)
        if asks or is_carrier(event):
            out.append((ARBITER, primary, (received_ms, event_id, 0), Pending(event, primary, len(asks), expires_ms)))
            for index, lookup in enumerate(asks):
                out.append((RESOLUTION, lookup.ref, (received_ms, event_id, 10 + index), lookup))
    if inventory_relevant(event):
        out.append((INVENTORY, event.site, (received_ms, event_id, 0), event))
