"""The eighth provider of tests/unit/test_eighth_provider.py through a real Kafka and schema
registry: the schemas with its code are accepted by the registry's own compatibility test
over the catalogue's, `c2c produce` (the copy's) publishes its example file, and its events
are read by a consumer that has the new code (provider 'aiccu') and by one that has not
(the enum's default, 'other'), with the same ids. The versions it registers are deleted
after, so that the stack's subjects are the catalogue's again (a consumer asking for the
latest version, as test_contracts' Confluent serializer does, finds the one it expects)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from c2c.registry import SchemaRegistry
from c2c.schemas import SchemaLibrary
from c2c.settings import Settings
from tests.conftest import read_decoded
from tests.unit.test_eighth_provider import PROVIDER, provider_added, run_in

pytestmark = pytest.mark.integration


def test_its_schemas_are_registered_its_file_published_and_read_by_old_and_new_readers(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    added = provider_added(tmp_path / "project")
    new = SchemaRegistry(stack, SchemaLibrary(added.project / "schemas" / "avro"))
    # compatible: the registry's own test (BACKWARD_TRANSITIVE) passed; registered: an
    # earlier run on this stack registered it (a deleted version is found again)
    checks = {check.subject: check for check in new.check_all()}
    assert all(c.status in ("compatible", "registered") for c in checks.values()), checks
    before = {subject: set(registry.client.get_versions(subject)) for subject in checks}
    try:
        new.register_all()
        _publish_and_read(stack, registry, new, added.project)
    finally:
        for subject, versions in before.items():
            for version in sorted(set(registry.client.get_versions(subject)) - versions):
                # soft: the messages published with it still find their writer schema by id
                registry.client.delete_version(subject, version)


def _publish_and_read(
    stack: Settings, registry: SchemaRegistry, new: SchemaRegistry, project: Path
) -> None:
    from c2c.kafka import end_offsets

    topics = ("c2c.raw.enrollment", "c2c.raw.completion")
    start = end_offsets(stack, topics)  # shared topics may hold millions: read what is new
    example = f"producers/examples/{PROVIDER}.csv"
    done = run_in(project, "-m", "cli", "produce", PROVIDER, example, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["published"], summary["rejected"]) == (6, 0)

    def ours(record: dict[str, object]) -> bool:
        return str(record["source_record_id"]).startswith("AICCU-")

    for topic, count in (("c2c.raw.enrollment", 4), ("c2c.raw.completion", 2)):
        old = read_decoded(stack, registry, topic, ours, count, start)
        now = read_decoded(stack, new, topic, ours, count, start)
        assert {str(r["event_id"]) for r, _ in old} == {str(r["event_id"]) for r, _ in now}
        assert len({str(r["event_id"]) for r, _ in now}) == count
        assert {r["provider"] for r, _ in now} == {PROVIDER}
        assert {r["provider"] for r, _ in old} == {"other"}  # a reader without the code
