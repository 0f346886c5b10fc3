"""Where a running `storystream dev` tells other commands its addresses (data_dir/dev.json)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from streams.settings import Settings

FILE_NAME = "dev.json"


def write(data_dir: Path, **addresses: Any) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FILE_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **addresses}))
    tmp.replace(path)
    return path


def clear(data_dir: Path) -> None:
    (data_dir / FILE_NAME).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _embedded_keys(state: dict[str, Any]) -> tuple[str, str] | None:
    """The keys of dev's embedded object store; None when dev used an external one."""
    keys = state.get("s3_credentials")
    if isinstance(keys, list) and len(keys) == 2:
        return str(keys[0]), str(keys[1])
    return None


def running(data_dir: Path) -> dict[str, Any] | None:
    """What the `storystream dev` running with `data_dir` wrote, or None if none runs there."""
    try:
        state = json.loads((data_dir / FILE_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not _alive(int(state.get("pid", 0))):
        return None
    return state


def api_url(settings: Settings) -> str | None:
    """The API of the running `storystream dev` whose broker `settings` uses, or None."""
    state = running(settings.data_dir)
    if state is None or state.get("broker") != settings.broker or not state.get("api"):
        return None
    return str(state["api"])


def resolve(settings: Settings) -> Settings:
    """Fill in what a running `storystream dev` started, for what is unset: its broker, and
    (when the broker is unset or is dev's) its schema registry, its S3 endpoint, the embedded
    store's keys, its story TTL and expiry grace (so `publish` and `post` default
    `expires_at`, and `replay` expires and purges, as dev's workers do)."""
    state = running(settings.data_dir)
    if state is None:
        return settings
    update: dict[str, Any] = {}
    if not settings.broker:
        update["broker"] = state.get("broker")
    elif settings.broker != state.get("broker"):
        return settings  # another system: dev's object store is not its store
    if not settings.schema_registry_url and state.get("schema_registry_url"):
        update["schema_registry_url"] = state["schema_registry_url"]
    for field in ("story_ttl", "expiry_grace"):  # how dev's workers expire and purge
        seconds = state.get(f"{field}_seconds")
        if (
            field not in settings.model_fields_set
            and isinstance(seconds, int | float)
            and seconds > 0
        ):
            update[field] = timedelta(seconds=seconds)
    if not settings.s3_endpoint_url and state.get("s3_endpoint_url"):
        update["s3_endpoint_url"] = state["s3_endpoint_url"]
    endpoint = update.get("s3_endpoint_url", settings.s3_endpoint_url)
    keys = _embedded_keys(state)
    if (
        keys
        and endpoint
        and endpoint == state.get("s3_endpoint_url")
        and not (settings.s3_access_key_id or settings.s3_secret_access_key)
    ):
        update["s3_access_key_id"], update["s3_secret_access_key"] = keys[0], SecretStr(keys[1])
    return settings.model_copy(update=update)
