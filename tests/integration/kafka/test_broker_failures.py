"""Apache Kafka brokers failing under a running worker while views flow: a single node
restarted on its data (a clean stop, then a SIGKILL), and one node of a three-node cluster
(replication factor 3, min.insync.replicas 2, acks=all) killed and brought back. Nothing is
lost, nothing is counted twice: the outputs equal the scenario's exact counts."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from infra.kafka import KafkaCluster
from streams.kafka.admin import create_topics
from streams.settings import Settings
from tests.integration.kafka.checks import Expected, histories, wait_outcome
from tests.integration.test_fault_tolerance import _env, scenario
from tests.integration.workers import Worker, publish, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _run_through(
    broker: str, tmp_path: Path, disturb: dict[int, Callable[[], None]], replication: int
) -> tuple[Expected, Expected, Worker]:
    """One worker; the scenario published chunk by chunk, `disturb[n]` called after chunk n
    (while the worker processes it). Returns what was expected and what the outputs say."""
    tag = uuid.uuid4().hex[:6]
    prefix = f"k-{tag}-"
    env = {**_env(broker, f"k-{tag}", prefix), "STORYSTREAM_REPLICATION_FACTOR": str(replication)}
    create_topics(Settings(broker=broker, partitions=4, replication_factor=replication))
    worker = Worker(tmp_path / "worker", env)
    try:
        wait_for(lambda: len(worker.partitions() or []) == 4, 120, "worker owns everything")
        chunks = scenario(tag, chunks=6, stories=48, views=3000, reactions=750)
        for number, chunk in enumerate(chunks):
            publish(broker, chunk, env={"STORYSTREAM_STORY_TTL": "1h"})
            if number in disturb:
                time.sleep(0.3)  # the chunk is being processed
                disturb[number]()
            time.sleep(0.5)
        expected = Expected.of(chunks)
        found = wait_outcome(broker, prefix, tag, expected, 180)
        # The publisher's retries across the failure left each view on its topic once.
        inputs = histories(broker, ["story-viewed"], idle=1.0)["story-viewed"]
        views = [e for chunk in chunks for e in chunk if e["type"] == "story_viewed"]
        assert sum(tag.encode() in key for key, _ in inputs) == len(views)
        return expected, found, worker
    except BaseException:
        worker.stop()
        raise


def _report(name: str, expected: Expected, found: Expected) -> None:
    views = sum(expected.total_views.values())
    counted = sum(found.total_views.values())
    lost = sum(max(0, n - found.total_views.get(s, 0)) for s, n in expected.total_views.items())
    twice = sum(max(0, n - expected.total_views.get(s, 0)) for s, n in found.total_views.items())
    print(f"{name}: {views} views checked ({counted} counted), lost {lost}, counted twice {twice}")


def test_a_single_node_restarted_mid_stream_loses_and_repeats_nothing(
    kafka_runnable: None, tmp_path: Path
) -> None:
    with KafkaCluster(data_dir=tmp_path / "kafka") as kafka:

        def clean_restart() -> None:
            kafka.stop_node(0)
            time.sleep(3)  # the worker and the next publish wait for it
            kafka.start_node(0)

        def crash() -> None:
            kafka.kill_node(0)
            time.sleep(3)
            kafka.start_node(0)

        expected, found, worker = _run_through(
            kafka.bootstrap, tmp_path, {1: clean_restart, 3: crash}, replication=1
        )
        try:
            _report("single node restarted", expected, found)
            assert found == expected
            assert worker.proc is not None and worker.proc.poll() is None
        finally:
            worker.stop()


def test_a_cluster_node_killed_and_brought_back_loses_nothing(
    kafka_runnable: None, tmp_path: Path
) -> None:
    with KafkaCluster(3, tmp_path / "kafka", settings={"min.insync.replicas": "2"}) as kafka:
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        victim: list[int] = []

        def kill_a_leader() -> None:
            # The node leading most partitions of the views topic (not the first one
            # bootstrapped, so the test does not only exercise the bootstrap list).
            topic = admin.list_topics("story-viewed", timeout=10).topics["story-viewed"]
            leaders = Counter(p.leader for p in topic.partitions.values())
            node_id = max(leaders, key=lambda n: (leaders[n], n))
            victim.append(node_id - 1)
            kafka.kill_node(node_id - 1)

        def bring_back() -> None:
            kafka.start_node(victim[0])

        expected, found, worker = _run_through(
            kafka.bootstrap, tmp_path, {1: kill_a_leader, 3: bring_back}, replication=3
        )
        try:
            _report("3-node cluster, one node killed", expected, found)
            assert found == expected
            metadata = admin.list_topics(timeout=10)
            for name in ("story-viewed", "story-view-counts"):
                for partition in metadata.topics[name].partitions.values():
                    assert len(partition.replicas) == 3, (name, partition.replicas)
            wait_for(
                lambda: all(
                    len(p.isrs) == 3
                    for t in admin.list_topics(timeout=10).topics.values()
                    for p in t.partitions.values()
                ),
                120,
                "the node back in every in-sync replica set",
            )
            resource = ConfigResource(ConfigResource.Type.TOPIC, "story-view-counts")
            configs = admin.describe_configs([resource])[resource].result()
            assert configs["min.insync.replicas"].value == "2"
            assert worker.proc is not None and worker.proc.poll() is None
        finally:
            worker.stop()
