"""Synth's truth beside what the pipeline published: who is behind each record, and
which true persons the linkage merged falsely (a count of persons the truth and the
outcome tables should agree on can differ by those alone)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from c2c.settings import Settings
from producers.files import mapped_events


def truth_persons(synth: Path) -> dict[tuple[str, str], str]:
    """(source, source record id) -> the true person behind it."""
    with (synth / "truth" / "records.csv").open(newline="") as handle:
        return {
            (r["source"], r["source_record_id"]): r["person_id"] for r in csv.DictReader(handle)
        }


def falsely_merged(client: Any, synth: Path, settings: Settings) -> set[str]:
    """The true persons (synth's truth) whose facts ClickHouse holds under one person with
    another true person's: the linkage's false merges. Synth shares some SSNs between
    people, and a record with one student's SSN and another's SSID joins the two. Each
    such person can move any count of persons by one; found from the facts and the truth,
    never from the resolver."""
    secret = settings.identity_secret.get_secret_value().encode()
    true_person = truth_persons(synth)
    person_of_event = {
        str(e["event_id"]): true_person[(source, str(e["source_record_id"]))]
        for source, e in mapped_events(synth, secret=secret)
    }
    views = ("enrollment", "completion", "financial_aid", "wage", "credential")
    held: dict[str, set[str]] = {}  # the pipeline's person -> true persons
    for event_id, key in client.query(
        " UNION ALL ".join(
            f"SELECT toString(event_id), person_key FROM {view}_current" for view in views
        )
    ).result_rows:
        held.setdefault(key, set()).add(person_of_event[event_id])
    merged = {person for persons in held.values() if len(persons) > 1 for person in persons}
    everyone = set().union(*held.values())
    print(f"persons the linkage merged falsely: {len(merged)} of {len(everyone)}")
    return merged
