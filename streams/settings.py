"""Configuration: one pydantic model, each field also `STORYSTREAM_<NAME>` in the environment.

A plain model reading its environment itself, not pydantic-settings: that package took 70-90 ms
of every command's start (a quarter of `storystream publish`'s imports) for one prefix.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """`90s`, `15m`, `24h`, `2d`, `500ms` (or a number of seconds) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"invalid duration {value!r}: use a number and a unit, e.g. 90s, 15m, 24h")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ENV_PREFIX = "STORYSTREAM_"
# RocksDB's budget for a process's state (block cache and memtables); why this much: the
# README's expiry burst, measured with `bench/expiry.py`.
DEFAULT_STATE_MEMORY_MB = 1024


class Settings(BaseModel):
    """Everything configurable; every field is also `STORYSTREAM_<NAME>` in the environment
    (any case), and values given to the constructor win over the environment's."""

    model_config = ConfigDict(extra="ignore")

    broker: str | None = Field(None, description="Kafka bootstrap servers; unset = embedded broker")
    schema_registry_url: str | None = Field(
        None, description="Confluent registry; unset = embedded"
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint; unset = embedded (moto)")
    s3_bucket: str = "storystream-media"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_public_url: str | None = Field(None, description="CDN base URL for renditions")
    media_max_bytes: int = Field(200 * 1024 * 1024, ge=1)
    media_max_video: Duration = timedelta(seconds=60)
    transcode_workers: int = Field(1, ge=1, le=64)
    story_ttl: Duration = timedelta(hours=24)
    expiry_grace: Duration = timedelta(hours=2)
    celebrity_followers: int = Field(100_000, ge=1)
    api_secret: SecretStr = SecretStr("storystream-dev-secret-change-me")
    api_audience: str | None = Field(
        None,
        min_length=1,
        description="when set, API tokens must name it in `aud` (`storystream token` adds it); "
        "unset = any `aud` is accepted",
    )
    data_dir: Path = Path("./data")
    api_port: int = Field(6066, ge=0, le=65535)
    state_memory_mb: int = Field(
        DEFAULT_STATE_MEMORY_MB,
        ge=16,
        description="MiB RocksDB may use for a worker's state: block cache and memtables",
    )
    api_bind: str = "127.0.0.1"
    api_url: str | None = Field(None, description="URL other workers reach this one at")
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1, le=16)
    input_retention: Duration = timedelta(days=7)
    app_id: str = "storystream"
    output_prefix: str = Field(
        "", description="prefix of the output topics this group writes (isolated runs)"
    )
    hll_lg_k: int = Field(12, ge=4, le=21)
    standby_interval: Duration | None = Field(
        None,
        description="keep a warm copy of the partitions this worker does not own, at most "
        "this old (e.g. 10s); unset = no standby replicas",
    )
    archive_bucket: str | None = Field(
        None, description="bucket of the input topics' archive; unset = S3_BUCKET"
    )
    archive_flush_records: int = Field(
        50_000, ge=1, description="an archive file is written once it holds this many records"
    )
    archive_flush_interval: Duration = Field(
        timedelta(minutes=5), description="or once it has been open this long"
    )
    archive_retention: Duration | None = Field(
        None, description="archive files of hours older than this are deleted; unset = kept"
    )
    archive_codec: Literal["deflate", "null"] = "deflate"
    worker_engine: bool = Field(
        True,
        description="the worker runs the stream engine and the media service; false: it serves "
        "the HTTP API only (writes produce, reads go to the workers owning the partitions), so "
        "requests and stream processing can take separate processes",
    )
    worker_processes: int = Field(
        1,
        ge=1,
        le=256,
        description="`worker`: processes to run on this host, each a member of the group on "
        "API_PORT + its index, DATA_DIR/process-<index>, with 1/N of STATE_MEMORY_MB",
    )
    archive_in_worker: bool = Field(
        False, description="workers also run the archive connector (`storystream dev` does)"
    )
    broker_impl: Literal["tansu", "kafka"] = Field(
        "tansu",
        description="the broker `storystream dev` starts when BROKER is unset: tansu (embedded, "
        "in memory) or kafka (Apache Kafka, on disk under DATA_DIR; needs Java 17+ and Maven)",
    )
    api_writes_per_second: float = Field(
        20.0, gt=0, description="write requests a user may make a second, on each worker"
    )
    api_write_burst: int = Field(
        40, ge=1, description="write requests a user may make at once, on each worker"
    )
    api_producer_queue: int = Field(
        100_000, ge=1, description="records the API's producer holds for the broker (then 503)"
    )
    api_producer_linger_ms: int = Field(5, ge=0, le=1000)
    upload_expiry: Duration = Field(
        timedelta(hours=24), description="an upload untouched this long is dropped"
    )
    upload_sweep_interval: Duration = timedelta(minutes=10)
    upload_part_bytes: int = Field(8 * 1024 * 1024, ge=5 * 1024 * 1024)
    upload_chunk_max_bytes: int = Field(64 * 1024 * 1024, ge=1)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="exactly_once wraps each batch in a Kafka transaction (needs a broker "
        "with transactions; not the embedded one)",
    )

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, given: Any) -> Any:
        if not isinstance(given, dict):
            return given
        start = len(ENV_PREFIX)
        found = {
            name[start:].lower(): value
            for name, value in os.environ.items()
            if name[:start].upper() == ENV_PREFIX
        }
        return {name: found[name] for name in cls.model_fields if name in found} | given

    @field_validator("archive_flush_interval", "archive_retention")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    def advertised_api_url(self) -> str:
        """The URL other workers forward requests to."""
        host = "127.0.0.1" if self.api_bind in ("0.0.0.0", "") else self.api_bind
        return self.api_url or f"http://{host}:{self.api_port}"

    def bootstrap(self) -> str:
        """The broker address; fails clearly when no broker is configured or started."""
        if not self.broker:
            raise RuntimeError(
                "no broker configured: set STORYSTREAM_BROKER (or run `storystream dev`)"
            )
        return self.broker
