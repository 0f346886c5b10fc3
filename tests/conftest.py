"""Session fixtures: the real brokers and the embedded schema registry. Every broker-facing
test runs on the embedded Tansu broker and on Apache Kafka (`--brokers` picks;
STORYSTREAM_BROKER, when set, replaces both)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import settings as hypothesis_settings

from infra.broker import EmbeddedBroker
from infra.kafka import KafkaCluster, KafkaUnavailable
from infra.schema_registry import EmbeddedSchemaRegistry
from streams.codecs.registry import topic_subjects
from streams.kafka.admin import create_topics
from streams.settings import Settings

BROKERS = ("tansu", "kafka")

# Property tests try the same examples on every run (a red CI run is a change's, not luck's);
# HYPOTHESIS_PROFILE=search draws new ones and keeps what fails in .hypothesis/.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.register_profile("search", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--brokers",
        default=",".join(BROKERS),
        help="comma-separated brokers the broker-facing tests run on (default tansu,kafka)",
    )


def _chosen(config: pytest.Config) -> list[str]:
    chosen = [name.strip() for name in str(config.getoption("--brokers")).split(",") if name]
    unknown = sorted(set(chosen) - set(BROKERS))
    if unknown:
        raise pytest.UsageError(f"--brokers: unknown {unknown}; choose from {BROKERS}")
    return chosen


def _brokers(config: pytest.Config) -> list[str]:
    """The session brokers: STORYSTREAM_BROKER alone when set, else those `--brokers` names."""
    return ["external"] if os.environ.get("STORYSTREAM_BROKER") else _chosen(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that needs the session broker runs once per broker (`[tansu]`, `[kafka]`)."""
    if "broker_impl" in metafunc.fixturenames:
        metafunc.parametrize("broker_impl", _brokers(metafunc.config), scope="session")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kafka: needs Apache Kafka (Java 17+ and Maven)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist's `--dist loadgroup`, the tests of a session broker go to two processes
    (tests starting brokers of their own go to any); tests marked `kafka` run only when
    `--brokers` includes it."""
    skip = pytest.mark.skip(reason="--brokers leaves Apache Kafka out")
    for item in items:
        # Two groups per broker, by module: each xdist process starts its own brokers.
        half = zlib.crc32(item.nodeid.split("::")[0].encode()) % 2
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "broker_impl" in callspec.params:
            item.add_marker(pytest.mark.xdist_group(f"{callspec.params['broker_impl']}-{half}"))
        elif item.get_closest_marker("kafka") is not None:
            if "kafka" in getattr(item, "fixturenames", ()):  # the session's Kafka
                item.add_marker(pytest.mark.xdist_group(f"kafka-{half}"))
            if "kafka" not in _chosen(config):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def tansu() -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker (in memory), started once for the session."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaCluster]:
    """A single-node Apache Kafka (KRaft, on disk), started once for the session; skipped,
    naming what is missing, where Java 17+ or Maven is not installed."""
    try:
        cluster = KafkaCluster().start()
    except KafkaUnavailable as exc:
        pytest.skip(f"Apache Kafka unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def bootstrap(broker_impl: str, request: pytest.FixtureRequest) -> str:
    """A running broker for the whole session: this test's `broker_impl`."""
    if broker_impl == "external":
        return os.environ["STORYSTREAM_BROKER"]
    broker: EmbeddedBroker | KafkaCluster = request.getfixturevalue(broker_impl)
    return broker.bootstrap


@pytest.fixture(scope="session")
def settings(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at the session broker, with every topic created."""
    built = Settings(broker=bootstrap, data_dir=tmp_path_factory.mktemp("data"), partitions=4)
    create_topics(built)
    return built


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """The schema registry `storystream dev` serves, started once for the session (tests that
    register a schema use subjects of their own: registrations last for the session)."""
    with EmbeddedSchemaRegistry(topic_subjects()) as registry:
        yield registry.url
