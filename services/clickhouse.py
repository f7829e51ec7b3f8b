"""ClickHouse as a service: embedded chdb (no process to run), a local server run from chdb's
engine (C2C_CLICKHOUSE_SERVE: services/clickhouse_server.py), or a server (only probed)."""

from __future__ import annotations

import sys
from pathlib import Path

from c2c.clickhouse import connect, embedded_owner, embedded_path
from c2c.errors import ServiceError
from c2c.settings import Settings
from services._process import ProcessSpec
from services.base import Probe
from services.clickhouse_server import DEFAULT_USERS, render_config, server_home

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
        return self._settings.clickhouse_embedded or self._settings.clickhouse_serve

    @property
    def _home(self) -> Path:
        return server_home(self._settings)

    @property
    def log_file(self) -> Path | None:
        if not self._settings.clickhouse_serve:
            return None
        return self._settings.log_dir.resolve() / "clickhouse.log"

    def prepare(self) -> None:
        path = embedded_path(self._settings)
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        if self._settings.clickhouse_serve:
            (self._home / "data").mkdir(parents=True, exist_ok=True)
            (self._home / "config.xml").write_text(render_config(self._settings))
            users = self._home / "users.xml"
            if not users.exists():  # `c2c services up` writes the project's roles there
                users.write_text(DEFAULT_USERS)

    def process_spec(self) -> ProcessSpec | None:
        if not self._settings.clickhouse_serve or self.pid_file is None:
            return None
        return ProcessSpec(
            name=self.name,
            argv=[
                sys.executable,
                "-c",
                "from services.clickhouse_server import main; main()",
                str(self._home / "data"),
                self.marker,
            ],
            cwd=self._home,  # clickhouse-local reads config.xml here
            log_file=self._settings.log_dir.resolve() / "clickhouse.log",
            pid_file=self.pid_file,
            marker=self.marker,
            # the module is found from the project's root, wherever the data folder is
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )

    @property
    def pid_file(self) -> Path | None:
        if not self._settings.clickhouse_serve:
            return None
        return self._settings.run_dir.resolve() / "clickhouse.pid"

    @property
    def marker(self) -> str:
        return f"c2c.service={self.name}@{self._settings.data_dir.resolve()}"

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
