"""Where a running `storystream dev` tells other commands its addresses (data_dir/dev.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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


def resolve(settings: Settings) -> Settings:
    """Fill in the broker (and S3 endpoint) of a running `storystream dev` when unset."""
    if settings.broker:
        return settings
    path = settings.data_dir / FILE_NAME
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return settings
    if not _alive(int(state.get("pid", 0))):
        return settings
    update = {"broker": state.get("broker")}
    if not settings.s3_endpoint_url and state.get("s3_endpoint_url"):
        update["s3_endpoint_url"] = state["s3_endpoint_url"]
    return settings.model_copy(update=update)
