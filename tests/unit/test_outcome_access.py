"""Where the sink's web port listens: loopback unless configured, in compose too."""

from __future__ import annotations

from pathlib import Path

from c2c.settings import Settings
from sinks.outcomes import OUTCOMES, PUBLIC_OUTCOMES, unsuppressed

ROOT = Path(__file__).resolve().parents[2]


def test_the_sink_web_port_binds_loopback_by_default_and_in_compose() -> None:
    assert Settings().sink_web_host == "127.0.0.1"
    assert Settings().sink_web_token is None
    lines = (ROOT / "compose.yaml").read_text().splitlines()
    set_here = [line for line in lines if line.strip().startswith("C2C_SINK_WEB_HOST")]
    assert all(line.split(":", 1)[1].strip() == "127.0.0.1" for line in set_here), set_here


def test_only_public_views_are_served_without_credentials() -> None:
    assert {name for name in OUTCOMES if not unsuppressed(name)} == set(PUBLIC_OUTCOMES)
    assert all(name.startswith("public_") for name in PUBLIC_OUTCOMES)
    assert unsuppressed("outcome_earnings")
    assert not unsuppressed("no_such_table")
