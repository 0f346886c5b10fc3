"""Every route of a live worker against its own `/openapi.json`, with schemathesis: a bounded
number of generated requests per operation and mode (valid requests, and requests the
description does not allow), stateless, as a user with a valid token; every answer must be documented and conform to its schema, and none is a 5xx."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.s3 import EmbeddedS3
from streams.api.openapi import openapi
from streams.settings import Settings
from tests.integration import worker_fixture
from tests.integration.test_write_api import s3_env
from tests.integration.worker_fixture import WorkerProcess, launch_worker
from tests.integration.workers import SECRET
from tests.integration.write_client import user_token

pytestmark = pytest.mark.integration
embedded_s3 = worker_fixture.embedded_s3
EXAMPLES = 25  # per operation: raise it to search longer
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(
    settings: Settings, embedded_s3: EmbeddedS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    tag = uuid.uuid4().hex[:6]
    started = launch_worker(
        settings, Path(tmp_path_factory.mktemp("openapi")), app_id=f"oa-{tag}",
        api_secret=SECRET, api_writes_per_second=100_000, api_write_burst=100_000,
        **s3_env(embedded_s3, f"oa-{tag}"),
    )  # fmt: skip
    yield started
    started.stop()


@pytest.fixture(scope="module")
def api_schema(live: WorkerProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


# The operations, from the description as built here (the live one must be the same); one
# test each. schemathesis' own pytest loader (`from_fixture`) does not run on this pytest.
OPERATIONS = [(method, path) for path, ops in openapi()["paths"].items() for method in ops]


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize(
    ("method", "path"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p in OPERATIONS]
)
def test_every_answer_conforms_to_the_description(
    api_schema: schemathesis.BaseSchema,
    live: WorkerProcess,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    described = openapi()["paths"][path][method]
    if mode == GenerationMode.NEGATIVE and not {"parameters", "requestBody"} & set(described):
        pytest.skip("no parameter or body to make invalid")
    operation = api_schema[path][method]
    token = user_token(live, "schemathesis")

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    check()
