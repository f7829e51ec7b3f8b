"""The differencing auditor (sinks/disclosure.py) against the public views of synth
populations of several sizes and seeds: no suppressed cell may be recovered.

The facts are synth's lives under their true person ids (no linkage: what is audited is
the suppression, not the matching), written as the sink writes linked events."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.suppression import load_population
from c2c.clickhouse import connect
from c2c.settings import Settings
from producers.synth import SynthConfig
from sinks.disclosure import audit
from sinks.migrate import migrate
from sinks.outcomes import read_outcome
from sinks.public import PUBLIC_VIEWS

pytestmark = pytest.mark.integration
MIN_CELL = 11


@pytest.mark.parametrize(("people", "seed"), [(300, 1), (1000, 2), (3000, 3)])
def test_no_suppressed_cell_is_recovered_from_the_public_views(
    tmp_path: Path, people: int, seed: int
) -> None:
    settings = Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="d")
    client = connect(settings)
    try:
        migrate(client, min_cell=MIN_CELL)
        load_population(client, SynthConfig(people=people, seed=seed, optout_rate=0.0))
        public = {v.name: read_outcome(client, v.name).to_dict() for v in PUBLIC_VIEWS}
        truth = {v.name: read_outcome(client, v.outcome).to_dict() for v in PUBLIC_VIEWS}
    finally:
        client.close()
    hidden = sum(1 for t in public.values() for r in t["rows"] for v in r if v is None)
    assert hidden > 0  # there is something to attack
    findings = audit(public, truth, MIN_CELL)
    assert not findings, "\n".join(str(f) for f in findings[:20]) + f"\n({len(findings)} in all)"
