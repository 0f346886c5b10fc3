"""The HTTP write API under load, each figure beside a bare aiohttp server that only produces
(`bench.bare_views_server`), measured in the same run.

    python -m bench.write_api [--duration 10] [--connections 32 128] [--batch-connections 8]
                              [--only single batch latency]

One broker (embedded unless STORYSTREAM_BROKER is set), one `storystream worker` (its rate
limit out of reach) with public stories posted and processed first, and beside it a
`storystream worker --api-only` of the same app (requests in one process, the engine in the
other), wrk (Debian's `wrk`) on loopback with one thread:

- single: `POST /stories/{id}/views`, one view a request, as 1,000 users, at each number of
  connections: requests/s and their p50/p99 latency (a closed loop: more connections, more
  requests in flight, more throughput and latency);
- batch: `POST /views:batch` of 500 views each: view events/s;
- latency: at a steady 5,000 views/s (an open-loop generator here: a `/views:batch` of 100
  views every 20 ms), probes (a view of a story of its own, 10 a second) timed from their 202
  until `GET /stories/{id}/views` counts them (polled every 10 ms): p50/p99. The baseline
  sends the load and the probes' views to the bare server; the same worker counts them. Each
  run starts once the worker has counted everything sent before it.

The machine's load average is printed with each run (other tenants share its cores), and the CPU
time the worker, the bare server and the broker took a request during it (from /proc): a figure
the machine's load moves less than throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import quantiles
from typing import Any

import aiohttp

from bench.harness import WorkerProcess, cpu_seconds, settled
from infra.broker import EmbeddedBroker
from infra.process import free_port, spawn, stop
from streams.api.auth import issue_token
from streams.client.sync import EventClient
from streams.kafka.admin import create_topics
from streams.settings import Settings

SECRET = "bench-secret-of-at-least-32-bytes-long"
WRK = Path(__file__).parent / "wrk"
MEDIA = [{"name": "1080", "url": "https://cdn.example/a.jpg", "width": 1080, "height": 1920,
          "content_type": "image/jpeg"}]  # fmt: skip


@contextmanager
def broker_and_pid() -> Iterator[tuple[str, int | None]]:
    """STORYSTREAM_BROKER (no pid: elsewhere), or a fresh embedded broker and its pid."""
    configured = os.environ.get("STORYSTREAM_BROKER")
    if configured:
        yield configured, None
        return
    with EmbeddedBroker() as embedded:
        yield embedded.bootstrap, embedded._proc.pid if embedded._proc else None


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def tokens(count: int) -> list[str]:
    now = datetime.now(UTC)
    return [issue_token(f"bench-u{i}", SECRET, now) for i in range(count)]


def post_stories(bootstrap: str, ids: list[str]) -> None:
    """Public stories with ready media, posted by 50 authors."""
    with EventClient(bootstrap) as client:
        futures = [client.story_posted(story_id=s, author_id=f"bench-a{i % 50}", media=MEDIA,
                                       audience="public") for i, s in enumerate(ids)]  # fmt: skip
        for future in futures:
            future.result(60)


def wait_visible(url: str, token: str, ids: list[str], seconds: float = 120) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    for story in random.Random(3).sample(ids, min(30, len(ids))):
        while True:
            request = urllib.request.Request(f"{url}/stories/{story}",
                                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=5):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"story {story} not visible") from None
                time.sleep(0.2)


PIDS: dict[str, int] = {}  # processes whose CPU time each run reports: worker, bare, broker


def wrk(
    url: str, script: str, seconds: float, connections: int, env: dict[str, str]
) -> dict[str, Any]:
    """One wrk run: its JSON summary (see bench/wrk/*.lua), with the CPU time each of `PIDS`
    took during it."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(WRK / script), url]
    before = {name: cpu_seconds(pid) for name, pid in PIDS.items()}
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **env}, check=True
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("{"))
    summary: dict[str, Any] = json.loads(line)
    summary["rate"] = summary["requests"] / (summary["duration_us"] / 1e6)
    summary["cpu"] = {name: cpu_seconds(pid) - before[name] for name, pid in PIDS.items()}
    return summary


def describe(name: str, summary: dict[str, Any], per_request: int = 1) -> str:
    errors = summary["non2xx"] + summary["socket_errors"]
    requests = max(summary["requests"], 1)
    cpu = ", ".join(
        f"{process} {seconds / requests * 1e6:,.0f}"
        for process, seconds in summary["cpu"].items()
        if seconds > 0.05
    )
    return (
        f"{name:<38} {summary['rate'] * per_request:>8,.0f}/s  p50 "
        f"{summary['p50_us'] / 1000:5.1f} ms  p99 {summary['p99_us'] / 1000:6.1f} ms  "
        f"errors {errors}  CPU us a request: {cpu}"
    )


def run_single(targets: dict[str, str], files: dict[str, str], args: argparse.Namespace) -> None:
    for connections in args.connections:
        print(f"\nsingle POST /stories/{{id}}/views, {connections} connections ({load()})")
        for name, url in targets.items():
            wrk(url, "views.lua", 2, connections, files)  # warm-up
            summary = wrk(url, "views.lua", args.duration, connections, files)
            print(describe(name, summary), f"({load()})")


def run_batch(targets: dict[str, str], files: dict[str, str], args: argparse.Namespace) -> None:
    connections = args.batch_connections
    print(f"\nPOST /views:batch of 500 views, {connections} connections: view events/s ({load()})")
    for name, url in targets.items():
        wrk(url, "views_batch.lua", 2, connections, files)
        summary = wrk(url, "views_batch.lua", args.duration, connections, files)
        print(describe(name, summary, per_request=500), f"({load()})")


def batch_bodies(path: Path, users: list[str], stories: list[str], views: int = 500) -> None:
    rng = random.Random(5)
    start = datetime.now(UTC) - timedelta(minutes=5)
    with path.open("w") as out:
        for i, token in enumerate(users[:200]):
            at = start + timedelta(seconds=i)
            body = {"views": [{"story_id": rng.choice(stories),
                               "viewed_at": (at + timedelta(milliseconds=v)).isoformat(
                                   timespec="milliseconds").replace("+00:00", "Z")}
                              for v in range(views)]}  # fmt: skip
            out.write(f"{token}\t{json.dumps(body, separators=(',', ':'))}\n")


async def steady(
    send_url: str, read_url: str, users: list[str], stories: list[str], probes: list[str],
    seconds: float, rate: int = 5000, per_request: int = 100,
) -> tuple[list[float], int, int, int]:  # fmt: skip
    """Views at `rate` a second (batches every per_request/rate s, not waiting for answers)
    and a probe view every 0.1 s: the probes' times from 202 to counted, the views accepted,
    the requests refused, the probes never counted."""
    rng = random.Random(9)
    accepted = refused = 0
    latencies: list[float] = []
    missed = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

        async def batch() -> None:
            nonlocal accepted, refused
            token = rng.choice(users)
            body = {"views": [{"story_id": rng.choice(stories)} for _ in range(per_request)]}
            async with session.post(f"{send_url}/views:batch", json=body,
                                    headers={"Authorization": f"Bearer {token}"}) as answer:  # fmt: skip
                await answer.read()
                if answer.status == 202:
                    accepted += per_request
                else:
                    refused += 1

        async def probe(story: str) -> None:
            nonlocal missed
            headers = {"Authorization": f"Bearer {users[0]}"}
            async with session.post(f"{send_url}/stories/{story}/views", headers=headers) as answer:
                await answer.read()
                if answer.status != 202:
                    missed += 1
                    return
            accepted_at = time.perf_counter()
            while time.perf_counter() - accepted_at < 10:
                async with session.get(f"{read_url}/stories/{story}/views", headers=headers) as got:
                    counts = await got.json()
                if got.status == 200 and counts["total_views"] >= 1:
                    latencies.append(time.perf_counter() - accepted_at)
                    return
                await asyncio.sleep(0.01)
            missed += 1

        tasks: list[asyncio.Task[None]] = []
        started = time.perf_counter()
        every = per_request / rate
        batches = probes_sent = 0
        while (now := time.perf_counter() - started) < seconds:
            while batches * every <= now:
                tasks.append(asyncio.create_task(batch()))
                batches += 1
            while probes_sent * 0.1 <= now and probes_sent < len(probes):
                tasks.append(asyncio.create_task(probe(probes[probes_sent])))
                probes_sent += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
    return latencies, accepted, refused, missed


def run_latency(targets: dict[str, str], worker: WorkerProcess, app_id: str, users: list[str],
                stories: list[str], bootstrap: str, args: argparse.Namespace) -> None:  # fmt: skip
    print(f"\nview accepted -> counted in GET /stories/{{id}}/views, at 5,000 views/s ({load()})")
    worker_url = worker.url
    for name, url in targets.items():
        # Each run starts with the engine caught up: the views of the runs before it (the
        # batch runs' millions) would otherwise be counted first.
        settled(worker, bootstrap, 900, app_id)
        probes = [f"probe-{uuid.uuid4().hex[:8]}-{i}" for i in range(int(args.duration * 10))]
        post_stories(bootstrap, probes)
        wait_visible(worker_url, users[0], probes)
        latencies, accepted, refused, missed = asyncio.run(
            steady(url, worker_url, users, stories, probes, args.duration)
        )
        cuts = quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
        print(f"{name:<44} p50 {cuts[49] * 1000:6.0f} ms  p99 {cuts[98] * 1000:6.0f} ms  "
              f"({len(latencies)} probes, {missed} missed; load {accepted / args.duration:,.0f} "
              f"views/s accepted, {refused} refused) ({load()})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--stories", type=int, default=2000)
    parser.add_argument("--only", nargs="*", default=["single", "batch", "latency"])
    args = parser.parse_args()
    with broker_and_pid() as (bootstrap, broker_pid), tempfile.TemporaryDirectory() as tmp:
        create_topics(Settings(broker=bootstrap, partitions=4))
        env = dict(
            STORYSTREAM_APP_ID=f"bench-wa-{uuid.uuid4().hex[:6]}",
            STORYSTREAM_API_SECRET=SECRET, STORYSTREAM_PARTITIONS="4",
            STORYSTREAM_API_WRITES_PER_SECOND="1000000", STORYSTREAM_API_WRITE_BURST="1000000",
            STORYSTREAM_S3_ENDPOINT_URL="http://127.0.0.1:9",
        )  # fmt: skip
        worker = WorkerProcess(bootstrap, f"{tmp}/worker", **env)
        # the same app's API without the engine: requests and processing in two processes
        api_only = WorkerProcess(
            bootstrap, f"{tmp}/api-only", **env, STORYSTREAM_WORKER_ENGINE="false"
        )
        port = free_port()
        with open(f"{tmp}/bare.log", "wb") as log:
            bare = spawn([sys.executable, "-m", "bench.bare_views_server", "--bootstrap",
                          bootstrap, "--port", str(port)], log=log)  # fmt: skip
        PIDS.update(worker=worker.proc.pid, api_only=api_only.proc.pid, bare=bare.pid)
        if broker_pid is not None:
            PIDS["broker"] = broker_pid
        try:
            worker.wait(worker.healthy, 120, "the worker")
            api_only.wait(api_only.healthy, 120, "the API-only worker")
            users = tokens(1000)
            stories = [f"bench-s{i}" for i in range(args.stories)]
            post_stories(bootstrap, stories)
            wait_visible(worker.url, users[0], stories)
            files = {"WRK_TOKENS": f"{tmp}/tokens", "WRK_STORIES": f"{tmp}/stories",
                     "WRK_BODIES": f"{tmp}/bodies"}  # fmt: skip
            Path(files["WRK_TOKENS"]).write_text("\n".join(users) + "\n")
            Path(files["WRK_STORIES"]).write_text("\n".join(stories) + "\n")
            batch_bodies(Path(files["WRK_BODIES"]), users, stories)
            targets = {"storystream worker": worker.url,
                       "storystream --api-only worker (engine beside)": api_only.url,
                       "bare aiohttp, produce only (baseline)": f"http://127.0.0.1:{port}"}  # fmt: skip
            print(f"{args.stories} stories, 1,000 users, {os.cpu_count()} cores, wrk -t1, "
                  f"{args.duration:g} s a run")  # fmt: skip
            if "single" in args.only:
                run_single(targets, files, args)
            if "batch" in args.only:
                run_batch(targets, files, args)
            if "latency" in args.only:
                run_latency(targets, worker, env["STORYSTREAM_APP_ID"], users, stories,
                            bootstrap, args)  # fmt: skip
        finally:
            stop(bare, 10)
            api_only.stop()
            worker.stop()


if __name__ == "__main__":
    main()
