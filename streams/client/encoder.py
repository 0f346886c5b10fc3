"""Events to Kafka records: the topic and key the catalog routes them to, Avro with the registry's
ids, and the event time as the record's timestamp."""

from __future__ import annotations

from schemas.events import Event
from schemas.types import millis
from streams.codecs.avro import AvroCodec
from streams.codecs.registry import make_registry
from streams.topics import route

Encoded = tuple[str, bytes, bytes, int]  # topic, key, value, timestamp (ms)


class Encoder:
    """Encodes events with the registry's ids, keyed and routed as the topic catalog says."""

    def __init__(self, registry_url: str | None) -> None:
        self.registry = make_registry(registry_url)
        self._codecs: dict[str, AvroCodec] = {}

    def encode(self, event: Event) -> Encoded:
        spec, key = route(event)
        codec = self._codecs.get(spec.name)
        if codec is None:
            codec = self._codecs[spec.name] = AvroCodec(spec.record, self.registry, spec.subject)
        return spec.name, key.encode(), codec.encode(event), millis(event.occurred_at)
