"""A Python client for services that produce events: typed calls over the event models, sync
(`EventClient`) and asyncio (`AsyncEventClient`), on one idempotent keyed producer.

    from streams.client import EventClient

    with EventClient("localhost:9092") as client:
        client.story_viewed(story_id="s1", viewer_id="bob").result(timeout=10)

Names are imported when first used, so `storystream publish` (which needs only the producer)
does not load asyncio.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "AsyncEventClient": "streams.client.aio",
    "EventClient": "streams.client.sync",
    "Delivered": "streams.client.producer",
    "DeliveryError": "streams.client.producer",
    "KeyedProducer": "streams.client.producer",
    "QueueFull": "streams.client.producer",
    "Encoder": "streams.client.encoder",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
