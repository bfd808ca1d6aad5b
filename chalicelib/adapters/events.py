"""Events on the stage's EventBridge bus."""
from __future__ import annotations

from typing import Any

from chalicelib.domain.webhooks import Event


class EventBridgeBus:
    """Puts every event on the stage's EventBridge bus (source `crowd`, detail-type = type)."""

    def __init__(self, events: Any, bus_name: str, source: str = "crowd") -> None:
        self._events = events
        self._bus = bus_name
        self._source = source

    def put(self, event: Event) -> None:
        """One PutEvents entry; a refused entry raises (the caller's retry repeats it)."""
        response = self._events.put_events(Entries=[{
            "Source": self._source, "DetailType": event.event_type, "Detail": event.body(),
            "EventBusName": self._bus, "Resources": []}])
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused event {event.event_id}")
