"""The access roles rendered as server SQL and as chdb's users file."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sinks.access import ROLES, definer_statements, role_statements, users_xml


def test_server_statements_create_each_role_with_its_grants() -> None:
    statements = role_statements("c2c")
    assert statements[0] == "CREATE ROLE IF NOT EXISTS public_reader"
    assert "GRANT SELECT ON c2c.public_* TO public_reader" in statements
    public = [s for s in statements if s.endswith(" TO public_reader")]
    assert public == ["GRANT SELECT ON c2c.public_* TO public_reader"]  # nothing else
    researcher = {s for s in statements if s.endswith(" TO researcher")}
    assert "GRANT SELECT ON c2c.fact_* TO researcher" in researcher
    assert "GRANT SELECT ON c2c.wage_current TO researcher" in researcher
    assert not any("optout" in s or "system" in s for s in researcher)
    assert "GRANT SELECT ON system.* TO operator" in statements
    assert sum(s.startswith("CREATE ROLE") for s in statements) == len(ROLES) == 3


def test_views_run_with_their_definers_rights() -> None:
    assert definer_statements(["public_x"]) == ["ALTER TABLE public_x MODIFY SQL SECURITY DEFINER"]


def test_the_users_file_grants_every_role_to_chdbs_user() -> None:
    root = ET.fromstring(users_xml("c2c"))
    roles = root.find("roles")
    assert roles is not None
    assert [r.tag for r in roles] == ["admin", "public_reader", "researcher", "operator"]
    queries = [q.text for q in roles.iter("query") if q.text and "public_reader" not in q.text]
    assert "GRANT SELECT ON c2c.public_*" in queries
    granted = root.find("users/default/grants/query")
    assert granted is not None
    assert granted.text == "GRANT admin, public_reader, researcher, operator"
