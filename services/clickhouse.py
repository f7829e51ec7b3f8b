"""ClickHouse as a service: embedded chdb (no process to run) or a server (only probed)."""

from __future__ import annotations

from pathlib import Path

from c2c.clickhouse import connect, embedded_owner, embedded_path
from c2c.errors import ServiceError
from c2c.settings import Settings
from services._process import ProcessSpec
from services.base import Probe

__all__ = ["ClickHouseService"]


class ClickHouseService:
    """Embedded ClickHouse is 'up' when its path opens (or another live process holds it)."""

    name = "clickhouse"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def address(self) -> str:
        return self._settings.clickhouse_dsn

    @property
    def local(self) -> bool:
        return self._settings.clickhouse_embedded

    @property
    def log_file(self) -> Path | None:
        return None

    def prepare(self) -> None:
        path = embedded_path(self._settings)
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)

    def process_spec(self) -> ProcessSpec | None:
        return None

    @property
    def pid_file(self) -> Path | None:
        return None

    @property
    def marker(self) -> str:
        return ""

    def probe(self, timeout_s: float) -> Probe:
        path = embedded_path(self._settings)
        if path is not None:
            owner = embedded_owner(path)
            if owner is not None:
                return Probe(up=True, detail=f"embedded, open in process {owner}")
        try:
            client = connect(self._settings, create_database=False)
        except ServiceError as exc:
            return Probe(up=False, detail=str(exc))
        try:
            version = str(client.server_version)
        finally:
            client.close()
        mode = "embedded chdb" if path is not None else "server"
        return Probe(up=True, version=version, detail=mode)
