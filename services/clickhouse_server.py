"""A local ClickHouse server from the engine of the installed chdb (C2C_CLICKHOUSE_SERVE).

No current ClickHouse server binary comes from the registries this project may use (see
services/README.md, "A ClickHouse server here"). chdb's library carries clickhouse-local,
which since ClickHouse 26.6 can open the server's listeners (`SYSTEM START LISTEN HTTP`,
ClickHouse/ClickHouse#101143). They serve for as long as the query that opened them runs, so
this process runs one query that opens them and then sleeps, for years. Each client is then
served by ClickHouse's own HTTP and TCP handlers, in this process, on one data folder: several
sinks as separate processes share one ClickHouse.

clickhouse-local reads ``config.xml`` in its working folder: the listeners (loopback only) and
the users file ``users.xml`` beside it. clickhouse-local keeps no writable user storage, so
roles come from that file, as for embedded chdb: `c2c services up` writes the project's
(sinks.access.users_xml) there first; without it the file has the one user ``default``.

Run as :func:`main` with arguments DATA_DIR MARKER in the folder holding ``config.xml``
(services.clickhouse.ClickHouseService starts it so).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

from c2c.settings import Settings

__all__ = [
    "DEFAULT_USERS",
    "SERVE_QUERY",
    "main",
    "render_config",
    "serve",
    "server_home",
    "server_ports",
]

# Opens the listeners, then holds them: 2^31 rows of one second each, one row a block.
SERVE_QUERY = (
    "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; "
    "SELECT sleepEachRow(1) FROM numbers(2147483647) "
    "SETTINGS function_sleep_max_microseconds_per_block = 0, max_block_size = 1 FORMAT Null"
)


def server_ports(settings: Settings) -> tuple[str, int, int]:
    """(host, HTTP port, native TCP port) of the local server: C2C_CLICKHOUSE_URL's, TCP next."""
    parts = urlsplit(settings.clickhouse_dsn)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{settings.clickhouse_dsn!r} names no host and port")
    return parts.hostname, parts.port, parts.port + 1


def render_config(settings: Settings) -> str:
    """config.xml of the local server: loopback listeners and the users file beside it."""
    host, http_port, tcp_port = server_ports(settings)
    return "\n".join(
        [
            "<clickhouse>",
            f"  <listen_host>{host}</listen_host>",
            f"  <http_port>{http_port}</http_port>",
            f"  <tcp_port>{tcp_port}</tcp_port>",
            "  <users_config>users.xml</users_config>",
            "</clickhouse>",
            "",
        ]
    )


# users.xml when none was written: the one user, with every right, no roles
DEFAULT_USERS = (
    "<clickhouse><profiles><default/></profiles><quotas><default/></quotas>"
    "<users><default><password></password><networks><ip>::/0</ip></networks>"
    "<profile>default</profile><quota>default</quota></default></users></clickhouse>\n"
)


def server_home(settings: Settings) -> Path:
    """The local server's folder: config.xml, users.xml, and its data under data/."""
    return settings.data_dir.resolve() / "clickhouse-server"


def serve(data: Path) -> int:
    """Open the listeners on ``data`` and hold them; returns only when the query ends (an
    error, printed to the log by the engine): the exit status."""
    import chdb._chdb as engine  # chdb's clickhouse-local, not its embedded connection

    # TabSeparated: the default output format of the HTTP interface is the one given here
    result = engine.query(SERVE_QUERY, "TabSeparated", path=str(data))  # type: ignore[attr-defined]
    return 1 if result.has_error() else 0


def main() -> None:
    """The process: argv is DATA_DIR and the marker that `c2c services` finds it by."""
    sys.exit(serve(Path(sys.argv[1])))
