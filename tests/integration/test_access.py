"""ClickHouse access roles, enforced by the engine: embedded chdb started with the roles'
users file, one connection per role narrowed with SET ROLE. (chdb is one engine per
process, started once: the check runs in a fresh process.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sinks.access import ROLES

pytestmark = pytest.mark.integration

# a table or view of each kind, and whether each role may read it
EXPECTED = {
    "public_outcome_college_going": {"public_reader": True, "researcher": True, "operator": True},
    "outcome_college_going": {"public_reader": False, "researcher": True, "operator": True},
    "fact_wage": {"public_reader": False, "researcher": True, "operator": True},
    "wage_current": {"public_reader": False, "researcher": True, "operator": True},
    "dim_person": {"public_reader": False, "researcher": True, "operator": True},
    "optout_audit": {"public_reader": False, "researcher": False, "operator": True},
    "optout_person": {"public_reader": False, "researcher": False, "operator": True},
    "schema_migrations": {"public_reader": False, "researcher": False, "operator": True},
}


def check_roles(path: str, config: str) -> dict[str, dict[str, str]]:
    """Migrate a database at ``path`` through chdb started with ``config``, then, per role,
    what a SELECT of each table in EXPECTED gives: 'ok', 'denied' (code 497) or the error."""
    import clickhouse_connect

    from sinks.migrate import migrate

    def client(database: str) -> Any:
        return clickhouse_connect.get_client(
            interface="chdb", path=path, database=database, chdb_options={"config-file": config}
        )

    setup = client("default")
    setup.command("CREATE DATABASE IF NOT EXISTS c2c")
    setup.close()
    admin = client("c2c")
    migrate(admin, min_cell=11)
    admin.close()
    found: dict[str, dict[str, str]] = {}
    for role in ROLES:
        found[role.name] = {}
        reader = client("c2c")
        reader.command(f"SET ROLE {role.name}")
        for table in EXPECTED:
            try:
                reader.query(f"SELECT * FROM {table} LIMIT 1")
                found[role.name][table] = "ok"
            except Exception as exc:  # chdb raises its own types
                found[role.name][table] = "denied" if "Code: 497" in str(exc) else str(exc)[:200]
        reader.close()
    return found


def test_each_role_reads_what_it_may_and_nothing_else(tmp_path: Path) -> None:
    from sinks.access import users_xml

    users = tmp_path / "users.xml"
    users.write_text(users_xml("c2c"))
    config = tmp_path / "config.xml"
    config.write_text(f"<clickhouse><users_config>{users}</users_config></clickhouse>\n")
    script = (
        "import json, sys; from tests.integration.test_access import check_roles; "
        "print(json.dumps(check_roles(sys.argv[1], sys.argv[2])))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "ch"), str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    for table, allowed in EXPECTED.items():
        for role, may in allowed.items():
            assert found[role][table] == ("ok" if may else "denied"), (role, table, found[role])
