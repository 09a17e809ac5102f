"""Stress inputs: messages of a shape the simulator's scenarios never make, for poison-message
tests and `make bench` (one delivery with tens of thousands of events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson


def epcis_document(count: int, quantity: float = 1.0, delivery: str = "80004711") -> bytes:
    """One EPCIS 2.0 document of `count` ObjectEvents of one delivery (its despatch advice),
    cycling picking, packing, shipping, receiving a second apart at one site."""
    start = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
    steps = ("picking", "packing", "shipping", "receiving")
    events = [
        {
            "type": "ObjectEvent",
            "eventID": f"urn:uuid:00000000-0000-4000-8000-{index:012d}",
            "eventTime": (start + timedelta(seconds=index)).isoformat().replace("+00:00", "Z"),
            "eventTimeZoneOffset": "+00:00",
            "action": "OBSERVE",
            "bizStep": steps[index % 4],
            "disposition": "in_progress",
            "quantityList": [{"epcClass": "urn:epc:idpat:sgtin:0614141.107346.*", "quantity": quantity}],
            "bizLocation": {"id": "urn:epc:id:sgln:0614141.07346.0"},
            "bizTransactionList": [
                {"type": "desadv", "bizTransaction": f"urn:epcglobal:cbv:bt:0614141073467:{delivery}"}
            ],
        }
        for index in range(count)
    ]
    document = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2024-06-03T14:05:12.000Z",
        "epcisBody": {"eventList": events},
    }
    return orjson.dumps(document)
