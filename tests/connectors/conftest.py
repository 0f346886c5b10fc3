"""Session fixtures: the embedded S3-compatible store (moto's server), and store factories."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from connectors.memory_store import InMemoryObjectStore
from connectors.object_store import ObjectStore
from connectors.s3_store import S3ObjectStore
from infra.s3 import EmbeddedS3
from processors.media import PUBLIC_PREFIXES

_buckets = itertools.count()


@pytest.fixture(scope="session")
def embedded_s3() -> Iterator[EmbeddedS3]:
    """moto's S3 server, started once for the session."""
    with EmbeddedS3() as server:
        yield server


def s3_store(server: EmbeddedS3, bucket: str | None = None, **kwargs: object) -> S3ObjectStore:
    """A real S3 adapter on the embedded server, in a fresh bucket by default."""
    return S3ObjectStore(
        bucket or f"test-bucket-{next(_buckets)}",
        endpoint_url=server.endpoint_url,
        region=server.region,
        credentials=server.credentials,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["s3", "memory"])
def make_store(
    request: pytest.FixtureRequest, embedded_s3: EmbeddedS3
) -> Callable[..., ObjectStore]:
    """A factory of empty stores: the real S3 adapter and the in-memory fake, in turn."""

    def make(create_bucket: bool = True) -> ObjectStore:
        if request.param == "s3":
            return s3_store(
                embedded_s3, create_bucket=create_bucket, public_prefixes=PUBLIC_PREFIXES
            )
        return InMemoryObjectStore(
            f"test-bucket-{next(_buckets)}",
            endpoint_url=embedded_s3.endpoint_url,
            create_bucket=create_bucket,
        )

    make.kind = request.param  # type: ignore[attr-defined]
    return make


@pytest.fixture
def store(make_store: Callable[..., ObjectStore]) -> ObjectStore:
    return make_store()
