"""The domain stays pure: no I/O libraries, no clock reads, no random identities."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FORBIDDEN_MODULES = {
    "faust",
    "confluent_kafka",
    "aiokafka",
    "boto3",
    "botocore",
    "av",
    "rocksdict",
    "requests",
    "aiohttp",
    "socket",
    "subprocess",
}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "uuid1", "uuid4", "time", "monotonic", "random"}
MODULES = sorted((Path(__file__).parents[2] / "processors").glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_processor_module_is_pure(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in FORBIDDEN_CALLS, (
                f"{path.name}:{node.lineno} calls .{node.func.attr}(): time and identity come "
                "in through ctx"
            )
