"""`c2c produce` and the direct emitter against the real broker and registry."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from c2c.examples import example_raw
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import DEAD_LETTER_TOPIC
from c2c.validation import ValidationFailed
from producers.emitter import EventEmitter
from producers.files import produce_file, rejects_path
from tests.conftest import read_decoded

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "producers" / "examples"


def _read_topic(
    stack: Settings, registry: SchemaRegistry, topic: str, want: Any, expected: int
) -> list[dict[str, Any]]:
    return [record for record, _ in read_decoded(stack, registry, topic, want, expected)]


def test_produce_file_publishes_valid_rows_and_rejects_the_rest(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex[:8]
    source = tmp_path / "edd.csv"
    with (EXAMPLES / "edd.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, good = rows[0], rows[1:]
    for row in good:
        row[0] = f"{row[0]}-{marker}"
    bad = list(good[0])
    bad[0] = f"BAD-{marker}"
    bad[header.index("SSN")] = "98765432"  # 8 digits
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([header, good[0], bad, *good[1:]])

    summary = produce_file(stack, "edd", source)
    assert (summary.read, summary.published, summary.rejected) == (4, 3, 1)
    assert summary.by_topic == {"c2c.raw.wage": 3}

    rejects = list(csv.reader(rejects_path(source).open()))
    assert rejects[0] == ["line", "reason", "row"]
    assert rejects[1][0] == "3"
    assert "SSN (person.ssn) does not match ^[0-9]{9}$" in rejects[1][1]
    # the reason names the field and the rule, never the value; the row is kept beside it
    assert "98765432" not in rejects[1][1]
    assert rejects[1][2].startswith(f"BAD-{marker},")
    assert "98765432" in rejects[1][2]

    published = _read_topic(
        stack,
        registry,
        "c2c.raw.wage",
        lambda r: r["source_record_id"].endswith(marker),
        expected=3,
    )
    assert sorted(r["source_record_id"] for r in published) == sorted(r[0] for r in good)
    assert {r["provider"] for r in published} == {"edd"}

    letters = _read_topic(
        stack, registry, DEAD_LETTER_TOPIC, lambda r: r["source_file"] == str(source), expected=1
    )
    assert [(d["source_line"], d["stage"], d["error_code"]) for d in letters] == [
        (3, "producer:edd", "row.invalid")
    ]
    assert letters[0]["original_value"].startswith(f"BAD-{marker},".encode())
    assert "98765432" not in letters[0]["error_message"]
    assert "SSN (person.ssn) does not match" in letters[0]["error_message"]

    # Producing the same file again gives the same event ids: duplicates are recognisable.
    produce_file(stack, "edd", source)
    again = _read_topic(
        stack,
        registry,
        "c2c.raw.wage",
        lambda r: r["source_record_id"].endswith(marker),
        expected=6,
    )
    assert len(again) == 6
    assert len({r["event_id"] for r in again}) == 3


def _produce(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "produce", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_produce_command_summary_and_exit_codes(stack: Settings, tmp_path: Path) -> None:
    good = tmp_path / "ctc.csv"
    shutil.copy(EXAMPLES / "ctc.csv", good)
    run = _produce("ctc", str(good))
    assert run.returncode == 0, run.stderr
    assert "read 2, published 2, rejected 0" in run.stdout

    bad = tmp_path / "k12.csv"
    text = (EXAMPLES / "k12.csv").read_text().splitlines()
    text[2] = text[2].replace("20070102", "20070230")
    bad.write_text("\n".join(text) + "\n")
    run = _produce("k12", str(bad))
    assert run.returncode == 4  # some rows rejected: the rest published
    assert "read 6, published 5, rejected 1" in run.stdout
    assert f"rejects: {rejects_path(bad)}" in run.stdout
    allowed = _produce("k12", str(bad), "--allow-rejects", "--dry-run")
    assert allowed.returncode == 0
    assert "read 6, would publish 5, rejected 1" in allowed.stdout

    wrong = _produce("csac", str(good))
    assert wrong.returncode == 1  # the file refused: nothing read
    assert "It looks like a ctc extract" in wrong.stderr

    refused = _produce("csac", str(good), "--json")
    assert refused.returncode == 1
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "extract.format"
    assert "It looks like a ctc extract" in error["message"]
    rejected = _produce("k12", str(bad), "--json", "--dry-run")
    assert rejected.returncode == 4
    assert json.loads(rejected.stdout)["rejected"] == 1


def test_emitter_validates_and_reports_delivery(stack: Settings, registry: SchemaRegistry) -> None:
    emitter = EventEmitter(stack, registry)
    event = example_raw("credential", 77)
    event["source_record_id"] = f"EMIT-{uuid.uuid4().hex[:8]}"
    del event["event_id"]
    event_id = emitter.emit("credential", event)
    bad = example_raw("credential", 78)
    bad["facts"]["issue_date"] = "2030-13-01"
    with pytest.raises(ValidationFailed, match=r"facts\.issue_date is not a date"):
        emitter.emit("credential", bad)
    report = emitter.flush()
    assert report.ok
    assert report.acknowledged == 1
    found = _read_topic(
        stack,
        registry,
        "c2c.raw.credential",
        lambda r: r["source_record_id"] == event["source_record_id"],
        expected=1,
    )
    assert [str(r["event_id"]) for r in found] == [event_id]


def test_replay_publishes_every_synth_record_in_event_time_order(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    from producers.files import replay
    from producers.formats import FORMATS, KIND_TOPICS
    from producers.mapping import RowMapper
    from producers.reader import open_extract
    from producers.synth import NoiseConfig, SynthConfig, synthesize

    synthesize(SynthConfig(people=120, seed=int(uuid.uuid4().int % 10**6)), NoiseConfig(), tmp_path)
    expected: dict[str, set[str]] = {topic: set() for topic in KIND_TOPICS.values()}
    for source, fmt in FORMATS.items():
        path = tmp_path / f"{source}.csv"
        if path.exists():
            mapper = RowMapper(source, fmt)
            for row in open_extract(path).rows:
                assert row.fields is not None
                mapped = mapper.map(row.fields, row.raw)
                expected[mapped.topic].add(mapped.event["event_id"])
    summaries = replay(stack, tmp_path)
    assert sum(s.read for s in summaries) == sum(len(ids) for ids in expected.values())
    assert all(s.rejected == 0 and s.published == s.read for s in summaries)
    for topic in ("c2c.raw.enrollment", "c2c.raw.wage"):
        ids = expected[topic]
        found = _read_topic(
            stack, registry, topic, lambda r, ids=ids: str(r["event_id"]) in ids, expected=len(ids)
        )
        assert {str(r["event_id"]) for r in found} == ids


def _wage_file(path: Path, marker: str, rows: int) -> None:
    with (EXAMPLES / "edd.csv").open(newline="") as handle:
        table = list(csv.reader(handle))
    header, body = table[0], table[1:]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(rows):
            row = list(body[i % len(body)])
            row[header.index("WageRecordID")] = f"W{i:06d}-{marker}"
            row[header.index("SSN")] = f"{900000000 + i % 50:09d}"  # 50 people, many rows each
            if i % 500 == 7:
                row[header.index("Wages")] = "lots"
            if i > 4000 and i % 37 == 0:  # quoted across lines, with quotes
                row[header.index("LastName")] = f'Smith\n"{i}",\nJones'
            if i == 3999:  # the first chunk's last line: a stray quote, then a field that
                # runs on to the next line, where counting quotes would cut
                row[header.index("FirstName")] = "STRAY"
                row[header.index("LastName")] = "multi\nline"
                text = io.StringIO()
                csv.writer(text).writerow(row)
                handle.write(text.getvalue().replace("STRAY", 'A"b'))
                continue
            writer.writerow(row)


def test_the_same_file_publishes_the_same_way_whatever_the_workers(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    runs = {}
    for workers in (1, 2):
        marker = f"{uuid.uuid4().hex[:8]}"
        path = tmp_path / f"edd-{workers}.csv"
        _wage_file(path, marker, 9000)
        summary = produce_file(stack, "edd", path, workers=workers)
        rejects = rejects_path(path).read_text().replace(marker, "M")
        published = _read_topic(
            stack,
            registry,
            "c2c.raw.wage",
            lambda r, marker=marker: r["source_record_id"].endswith(marker),
            expected=summary.published,
        )
        order: dict[str, list[str]] = {}
        for record in published:
            order.setdefault(record["person"]["ssn"], []).append(record["source_record_id"][:7])
        runs[workers] = ((summary.read, summary.published, summary.rejected), rejects, order)
    assert runs[1][0] == (9000, 9000 - 18, 18)
    assert runs[1] == runs[2]
    # rejects name the line each row ends on, counting the rows quoted across lines
    expected, line = [], 1
    for i in range(9000):
        line += 1 + (i == 3999) + 2 * (i > 4000 and i % 37 == 0)
        if i % 500 == 7:
            expected.append(line)
    assert [int(row["line"]) for row in csv.DictReader(io.StringIO(runs[2][1]))] == expected
    # One person's events keep the file's order.
    assert all(ids == sorted(ids) for ids in runs[2][2].values())


def test_failed_deliveries_are_reported_one_by_one_in_order(stack: Settings) -> None:
    from producers.publisher import Publisher

    # Nothing listens on port 1: every message times out in librdkafka and fails.
    nowhere = stack.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    failures: list[tuple[Any, str]] = []
    publisher = Publisher(
        nowhere,
        SchemaRegistry(nowhere),
        on_failure=lambda context, reason: failures.append((context, reason)),
        extra_config={"message.timeout.ms": 1000},
    )
    values = [b"same", b"other", b"same"]
    publisher.send_many(["c2c.raw.wage"] * 3, [b"k1", b"k2", b"k1"], values, "chunk-7")
    publisher.send("c2c.raw.wage", b"k3", b"single", "one")
    assert publisher.flush(30) == 0
    assert sorted(context for context, _ in failures if context != "one") == [
        ("chunk-7", 0),
        ("chunk-7", 1),
        ("chunk-7", 2),
    ]
    assert [context for context, _ in failures].count("one") == 1
    assert all(reason.startswith("Kafka did not acknowledge it: ") for _, reason in failures)
    assert (publisher.sent, publisher.failed, publisher.acknowledged) == (4, 4, 0)


def test_a_10_mb_field_is_rejected_and_its_dead_letter_fits_the_broker(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    from c2c.deadletter import MAX_ORIGINAL_VALUE

    marker = uuid.uuid4().hex[:8]
    with (EXAMPLES / "edd.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    path = tmp_path / "edd.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(6):
            row = list(body[i % len(body)])
            row[0] = f"W{i}-{marker}"
            if i == 2:
                row[header.index("LastName")] = "A" * 10_000_000
                row[header.index("Wages")] = "450.22"  # no quotes on the line
            writer.writerow(row)
    raw = path.read_bytes().splitlines()[3]
    run = _produce("edd", str(path))
    assert run.returncode == 4, run.stderr  # rows were rejected: not a traceback
    assert "Traceback" not in run.stderr
    assert "read 6, published 5, rejected 1" in run.stdout
    assert f"rejects: {rejects_path(path)}" in run.stdout
    published = _read_topic(
        stack,
        registry,
        "c2c.raw.wage",
        lambda r: r["source_record_id"].endswith(marker),
        expected=5,
    )
    assert len(published) == 5
    [letter] = _read_topic(
        stack, registry, DEAD_LETTER_TOPIC, lambda r: r["source_file"] == str(path), expected=1
    )
    assert letter["source_line"] == 4
    assert letter["error_code"] == "row.unreadable"
    assert "has column LastName over 131072 characters" in letter["error_message"]
    assert letter["original_value"] == raw[:MAX_ORIGINAL_VALUE]
    assert letter["original_value_size"] == len(raw)
    assert letter["original_value_sha256"] == hashlib.sha256(raw).hexdigest()
