"""The write API benchmarks' baseline: a bare aiohttp server that only produces views to Kafka.

    python -m bench.bare_views_server --bootstrap HOST:PORT --port PORT

`POST /stories/{id}/views` produces one StoryViewed record, `POST /views:batch` one per view
of its JSON body (`{"views": [{"story_id": ...}, ...]}`), and each answers 202 once the broker
has acknowledged them: no token, no rate limit, no validation, no event ids of the client's.
Records are Avro as the worker reads them, produced with the project's producer configuration
by a bare confluent-kafka producer, its delivery reports served by a thread.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from confluent_kafka import KafkaError, Message, Producer

from schemas.events import StoryViewed
from streams.client.encoder import Encoder
from streams.kafka.clients import producer_config


class Bare:
    def __init__(self, bootstrap: str) -> None:
        config = producer_config(bootstrap, **{"linger.ms": 5})
        config["delivery.report.only.error"] = False
        self.producer = Producer(config)
        self.encoder = Encoder(None)
        self.count = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            self.producer.poll(0.05)

    async def produce(self, story_ids: list[str]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        left = [len(story_ids)]
        lock = threading.Lock()

        def report(err: KafkaError | None, msg: Message) -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        now = datetime.now(UTC)
        for story_id in story_ids:
            self.count += 1
            view = StoryViewed.model_construct(
                event_id=f"bare-{self.count}", story_id=story_id, viewer_id="bench", viewed_at=now
            )
            topic, key, value, timestamp = self.encoder.encode(view)
            self.producer.produce(topic, value, key, -1, report, None, timestamp)
        await done


def app(bare: Bare) -> web.Application:
    async def one(request: web.Request) -> web.Response:
        await bare.produce([request.match_info["story_id"]])
        return web.json_response({"event_id": "bare"}, status=202)

    async def batch(request: web.Request) -> web.Response:
        body: Any = orjson.loads(await request.read())
        await bare.produce([view["story_id"] for view in body["views"]])
        return web.json_response({"event_ids": []}, status=202)

    served = web.Application(client_max_size=4 * 1024 * 1024)
    served.router.add_post("/stories/{story_id}/views", one)
    served.router.add_post("/views:batch", batch)
    return served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(app(Bare(args.bootstrap)), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
