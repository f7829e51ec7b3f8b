"""The sink's outcome pages: public views for anyone, the unsuppressed outcome_* tables and
horizon declarations only with the researcher's or operator's token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from cli.sink_process import SinkProcess
from tests.conftest import free_port_pair
from tests.integration.outcome_pages import TOKEN, with_token

pytestmark = pytest.mark.integration


def _ask(port: int, page: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{page}",
        data=None if body is None else json.dumps(body).encode(),
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_unsuppressed_tables_and_horizons_need_the_token(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = stack.model_copy(
        update={"clickhouse_url": f"chdb://{tmp_path / 'ch'}", "clickhouse_database": "pages"}
    )
    with_token(monkeypatch)
    sink = SinkProcess(settings, tmp_path / "sink.log", port=free_port_pair())
    try:
        sink.start()
        port = sink.port
        assert _ask(port, "/outcomes/public_outcome_completion")[0] == 200
        for token in (None, "wrong", TOKEN[:-1]):
            status, answer = _ask(port, "/outcomes/outcome_completion", token)
            assert status == 401, answer
            assert "credentials" in answer["error"]
        assert _ask(port, "/outcomes/outcome_completion", TOKEN)[0] == 200
        assert _ask(port, "/outcomes/no_such_table")[0] == 404  # unknown is not refused
        declared = {"complete_through": "2025-12-31", "declared_by": "test"}
        assert _ask(port, "/horizons/edd", None, declared)[0] == 401
        assert _ask(port, "/horizons/edd", "wrong", declared)[0] == 401
        assert _ask(port, "/horizons")[1] == {}
        assert _ask(port, "/horizons/edd", TOKEN, declared) == (200, {"edd": "2025-12-31"})
        assert _ask(port, "/horizons/edd", TOKEN, {"complete_through": "soon"})[0] == 400
        assert _ask(port, "/horizons")[1] == {"edd": "2025-12-31"}
        sink.stop()
    finally:
        sink.kill()

    # a sink without a token serves the unsuppressed tables to nobody
    monkeypatch.delenv("C2C_SINK_WEB_TOKEN")
    bare = SinkProcess(settings, tmp_path / "bare.log", port=free_port_pair())
    try:
        bare.start()
        status, answer = _ask(bare.port, "/outcomes/outcome_completion", TOKEN)
        assert status == 403, answer
        assert _ask(bare.port, "/outcomes/public_outcome_completion")[0] == 200
        bare.stop()
    finally:
        bare.kill()
