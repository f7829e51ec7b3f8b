"""`c2c replay` encodes rows with the compiled row encoder, as `c2c produce` does: the very
messages, event ids and order the reference path (mapper, validator, encoder) gives, and
the same rejects, on a synthetic population's extracts with bad rows added."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from c2c.schemas import SchemaLibrary
from c2c.serde import AvroEncoder
from c2c.topics import get_topic
from producers.chunks import ChunkPlan, Reject
from producers.files import encoded_in_time_order, in_time_order, open_folder
from producers.formats import KIND_TOPICS
from producers.mapping import MappedRow
from producers.synth import NoiseConfig, SynthConfig, synthesize

LIBRARY = SchemaLibrary()
SCHEMAS = {
    t: (LIBRARY.resolve(get_topic(t).schema), 500 + n) for n, t in enumerate(KIND_TOPICS.values())
}


def _folder(tmp_path: Path) -> Path:
    synthesize(SynthConfig(people=150, seed=7), NoiseConfig(), tmp_path)
    edd = tmp_path / "edd.csv"
    lines = edd.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    good = lines[1].rstrip("\n").split(",")
    bad = dict(zip(header, good, strict=True))
    bad["Wages"] = "lots"  # rejected
    quoted = dict(zip(header, good, strict=True))
    quoted["WageRecordID"] += "-q"
    quoted["LastName"] = '"Smith\nJones ""Jr"""'  # a quoted field across lines
    rows = [",".join(bad[h] for h in header) + "\n", ",".join(quoted[h] for h in header) + "\n"]
    edd.write_text("".join([lines[0], *rows, *lines[1:], "short,row\n"]))
    return tmp_path


def test_replay_publishes_what_the_reference_path_publishes_in_the_same_order(
    tmp_path: Path,
) -> None:
    folder = _folder(tmp_path)
    encoders = {t: AvroEncoder(schema, sid) for t, (schema, sid) in SCHEMAS.items()}
    expected: list[tuple[Any, ...]] = []
    expected_rejects: Counter[tuple[str, int, str]] = Counter()
    for item, row, outcome in in_time_order(open_folder(folder)):
        if isinstance(outcome, MappedRow):
            value = encoders[outcome.topic].encode(outcome.event)
            expected.append(
                (
                    item.source,
                    outcome.topic,
                    outcome.key,
                    value,
                    outcome.event["event_id"],
                    row.line,
                )
            )
        else:
            expected_rejects[(item.source, row.line, outcome.args[0])] += 1

    inputs = open_folder(folder)
    plans = [
        ChunkPlan(item.source, item.extract.kind, item.extract.columns, SCHEMAS, True, True)
        for item in inputs
    ]
    got: list[tuple[Any, ...]] = []
    rejects: Counter[tuple[str, int, str]] = Counter()
    for item, encoded, what in encoded_in_time_order(inputs, plans):
        if isinstance(what, Reject):
            rejects[(item.source, what.line, what.reason)] += 1
        else:
            got.append(
                (
                    item.source,
                    encoded.topics[what],
                    encoded.keys[what],
                    encoded.values[what],
                    encoded.event_ids[what],
                    encoded.lines[what],
                )
            )
    assert len(expected) > 1000
    assert got == expected
    assert rejects == expected_rejects
    assert any(b'Smith\nJones "Jr"' in value for _, _, _, value, _, _ in got)
    assert any("Wages is not an amount" in reason for _, _, reason in rejects)
    assert not any("lots" in reason for _, _, reason in rejects)
    assert sum(item.summary.read for item in inputs) == len(got) + sum(rejects.values())
