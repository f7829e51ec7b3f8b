"""Connecting to ClickHouse through clickhouse-connect: embedded chdb or a server.

Embedded mode (``chdb://PATH``) runs ClickHouse inside this process; only one process may
open a path at a time, so the sink owns it and other processes ask the sink (or use a server).
:func:`embedded_owner` tells who holds a path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from c2c.errors import ServiceError
from c2c.settings import Settings

__all__ = ["connect", "embedded_owner", "embedded_path"]


def embedded_path(settings: Settings) -> Path | None:
    """The chdb data path if ClickHouse is embedded, else None."""
    if not settings.clickhouse_embedded:
        return None
    return Path(settings.clickhouse_dsn.removeprefix("chdb://"))


def embedded_owner(path: Path) -> int | None:
    """The pid of another live process that has ``path`` open, or None.

    ClickHouse writes 'PID: N' to PATH/status while it holds the path's lock.
    """
    try:
        text = (path / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("PID:"):
            try:
                pid = int(line.split(":", 1)[1])
            except ValueError:
                return None
            if pid == os.getpid():
                return None
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            except PermissionError:
                return pid
            return pid
    return None


def _server_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dsn": settings.clickhouse_dsn}
    if settings.clickhouse_user is not None:
        kwargs["username"] = settings.clickhouse_user
    if settings.clickhouse_password is not None:
        kwargs["password"] = settings.clickhouse_password.get_secret_value()
    if settings.clickhouse_dsn.startswith("https://"):
        kwargs["secure"] = True
        kwargs["verify"] = settings.clickhouse_verify_tls
        if settings.clickhouse_ca_cert is not None:
            kwargs["ca_cert"] = str(settings.clickhouse_ca_cert)
    return kwargs


def connect(settings: Settings, *, create_database: bool = True) -> Client:
    """A clickhouse-connect client on the configured database (created if missing, on every
    node of ``C2C_CLICKHOUSE_CLUSTER`` if set).

    Raises ServiceError when the server does not answer or the embedded path is held by
    another process (naming that process).
    """
    path = embedded_path(settings)
    if path is not None:
        owner = embedded_owner(path)
        if owner is not None:
            raise ServiceError(
                f"embedded ClickHouse at {path} is open in process {owner}; chdb allows one "
                "process per path. Stop that process, ask it (for example `c2c outcomes`), "
                "or set C2C_CLICKHOUSE_URL to a ClickHouse server.",
                code="service.clickhouse.locked",
            )
        path.mkdir(parents=True, exist_ok=True)
    kwargs = _server_kwargs(settings)
    try:
        client = clickhouse_connect.get_client(**kwargs)
        if create_database:
            # on a cluster, on every node: each holds its shard's tables in it
            cluster = settings.clickhouse_cluster
            on = f" ON CLUSTER `{cluster}`" if cluster else ""
            client.command(f"CREATE DATABASE IF NOT EXISTS `{settings.clickhouse_database}`{on}")
            client.database = settings.clickhouse_database
    except Exception as exc:  # clickhouse-connect raises several unrelated types
        raise ServiceError(
            f"cannot open ClickHouse at {settings.clickhouse_dsn}: {exc}",
            code="service.clickhouse.connect",
        ) from exc
    return client
