"""The embedded object store: starts on a free loopback port, stops, leaves no process."""

from __future__ import annotations

import urllib.request

from infra.s3 import EmbeddedS3


def test_starts_answers_and_stops() -> None:
    server = EmbeddedS3()
    with server:
        assert server.running
        assert server.endpoint_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=5) as response:
            assert response.status == 200
        proc = server._proc
    assert not server.running
    assert proc is not None and proc.poll() is not None  # reaped, not orphaned
