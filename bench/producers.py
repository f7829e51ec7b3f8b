"""Rows/s from an extract file to acknowledged by the broker, for the k12 and edd adapters,
side by side in the same run with:

  ours    `c2c produce` as the command runs it (validation, rejects, telemetry as set up
          from settings), with --workers N (default: one per core) and with --workers 1;
  naive   (b) the straightforward way: csv.DictReader, a hand-written mapping,
          confluent-kafka's AvroSerializer and produce per row, without validation;
  limit   (a) confluent-kafka producing the same number of pre-serialized messages of the
          same size (the client's limit here, with the same producer settings).

    .venv/bin/python -m bench.producers [--rows N] [--repeats R] [--workers N] [--replay PEOPLE]

With --replay, it also runs `c2c replay` of a synthetic population of PEOPLE people (all
providers merged in event-time order) beside the reference path it replaced (mapper,
validator and encoder per row, merged by in_time_order), interleaved, and prints
records/s and CPU time a record of each.

Needs the services (`c2c services up`). Medians of interleaved repeats. Beside rows/s it
prints the CPU time each spent per row (this process and its workers; the broker's apart),
which a machine shared with other work disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import decimal
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bench._harness import print_table
from c2c.kafka import PRODUCER_CONFIG, ensure_topics
from c2c.registry import SchemaRegistry
from c2c.schemas import SchemaLibrary
from c2c.serde import AvroEncoder
from c2c.settings import Settings, load_settings
from c2c.telemetry import setup_telemetry
from c2c.topics import CATALOGUE, Topic, get_topic
from producers.chunks import default_workers
from producers.files import in_time_order, open_folder, produce_file, replay
from producers.formats import FORMATS, KIND_TOPICS
from producers.mapping import MappedRow, RowMapper, event_id_for
from producers.publisher import Publisher
from producers.reader import open_extract
from producers.row_encoder import compile_row_encoder
from producers.synth import NoiseConfig, SynthConfig, synthesize

EXAMPLES = Path(__file__).resolve().parents[1] / "producers" / "examples"
# The limit run writes opaque bytes: into a topic of its own, never a pipeline topic.
LIMIT_TOPIC = Topic(
    name="bench.producer-limit",
    schema="",
    zone="operations",
    description="bench/producers.py: pre-serialized messages",
    partitions=6,
    config={"retention.ms": str(3600 * 1000)},
)


def make_file(source: str, rows: int, folder: Path) -> Path:
    """An extract of ``rows`` rows: the example rows again and again with fresh ids."""
    with (EXAMPLES / f"{source}.csv").open(newline="") as handle:
        table = list(csv.reader(handle))
    header, body = table[0], table[1:]
    id_columns = [
        header.index(c)
        for c in ("RecordID", "LocalStudentID", "WageRecordID", "SSN")
        if c in header
    ]
    path = folder / f"{source}-{rows}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(rows):
            row = list(body[i % len(body)])
            for column in id_columns:
                value = row[column]
                row[column] = f"{int(value) + i:09d}"[-9:] if value.isdigit() else f"{value}-{i}"
            writer.writerow(row)
    return path


def _date(text: str) -> datetime.date | None:
    if not text:
        return None
    for pattern in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


def naive_edd(row: dict[str, str]) -> tuple[str, dict[str, Any]]:
    year, quarter = int(row["YearQuarter"][:4]), int(row["YearQuarter"][-1])
    event = {
        "event_time": datetime.datetime(year, quarter * 3, 28, tzinfo=datetime.UTC),
        "provider": "edd",
        "source_record_id": row["WageRecordID"],
        "person": {
            "source_person_id": row["SSN"],
            "ssn": row["SSN"],
            "first_name": row["FirstName"] or None,
            "last_name": row["LastName"] or None,
        },
        "demographics": None,
        "facts": {
            "employer_id": row["EmployerAccountNo"],
            "naics": row["NAICS"] or None,
            "year": year,
            "quarter": quarter,
            "wages": decimal.Decimal(row["Wages"].replace(",", "")),
        },
    }
    event["event_id"] = event_id_for("edd", row["WageRecordID"], repr(sorted(row.items())))
    return "c2c.raw.wage", event


def naive_k12(row: dict[str, str]) -> tuple[str, dict[str, Any]]:
    enrollment = row["RecordType"] == "ENRL"
    facts: dict[str, Any]
    if enrollment:
        facts = {
            "institution_id": row["SchoolCode"],
            "district_id": row["DistrictCode"] or None,
            "academic_year": int(row["AcademicYearID"][:4]),
            "term": "ANNUAL",
            "term_start_date": _date(row["EnrollmentStartDate"]),
            "grade_level": row["GradeLevelCode"] or None,
        }
    else:
        facts = {
            "award_level": "HS_DIPLOMA"
            if row["CompletionStatusCode"] == "100"
            else "HS_CERTIFICATE",
            "completion_date": _date(row["CompletionDate"]),
            "institution_id": row["SchoolCode"],
        }
    when = facts.get("term_start_date") or facts.get("completion_date")
    event = {
        "event_time": datetime.datetime(when.year, when.month, when.day, tzinfo=datetime.UTC),
        "provider": "k12",
        "source_record_id": row["RecordID"],
        "person": {
            "source_person_id": row["LocalStudentID"],
            "ssid": row["SSID"] or None,
            "first_name": row["StudentLegalFirstName"],
            "middle_name": row["StudentLegalMiddleName"] or None,
            "last_name": row["StudentLegalLastName"],
            "birth_date": _date(row["StudentBirthDate"]),
            "sex": {"F": "FEMALE", "M": "MALE"}.get(row["StudentGenderCode"]),
            "zip": row["ResidentialZipCode"] or None,
        },
        "demographics": None,
        "facts": facts,
    }
    event["event_id"] = event_id_for("k12", row["RecordID"], repr(sorted(row.items())))
    return ("c2c.raw.enrollment" if enrollment else "c2c.raw.completion"), event


def naive(
    settings: Settings,
    registry: SchemaRegistry,
    path: Path,
    mapping: Callable[[dict[str, str]], tuple[str, dict[str, Any]]],
) -> int:
    producer = Producer(settings.kafka_config(**PRODUCER_CONFIG))
    serializers: dict[str, AvroSerializer] = {}
    count = 0
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            topic, event = mapping(row)
            serializer = serializers.get(topic)
            if serializer is None:
                serializer = serializers[topic] = AvroSerializer(
                    registry.client,
                    registry.library.resolve_text(get_topic(topic).schema),
                    conf={
                        "auto.register.schemas": False,
                        "use.latest.version": True,
                        "subject.name.strategy": topic_subject_name_strategy,
                    },
                )
            value = serializer(event, SerializationContext(topic, MessageField.VALUE))
            while True:
                try:
                    producer.produce(
                        topic, key=event["person"]["source_person_id"].encode(), value=value
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            count += 1
    assert producer.flush(120) == 0
    return count


def limit(settings: Settings, rows: int, size: int) -> int:
    producer = Producer(settings.kafka_config(**PRODUCER_CONFIG))
    payload = b"x" * size
    for i in range(rows):
        while True:
            try:
                producer.produce(LIMIT_TOPIC.name, key=str(i).encode(), value=payload)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0
    return rows


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (pool workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _broker_cpu_seconds(settings: Settings) -> float | None:
    """CPU time of the local broker so far, when this machine runs it."""
    pid_file = settings.data_dir / "run" / "kafka.pid"
    try:
        fields = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text().rsplit(")", 1)[1]
    except (OSError, ValueError):
        return None
    ticks = fields.split()
    return (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")


def _measure(
    settings: Settings, runs: dict[str, Callable[[], int]], repeats: int
) -> dict[str, tuple[float, float, float | None]]:
    """Median (rows/s, CPU us a row here, broker CPU us a row) of each run, interleaved
    round by round so that the machine's noise falls on every contender alike."""
    seen: dict[str, list[tuple[float, float, float | None]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            broker, cpu, started = (
                _broker_cpu_seconds(settings),
                _cpu_seconds(),
                time.perf_counter(),
            )
            count = run()
            wall = time.perf_counter() - started
            used = _cpu_seconds() - cpu
            after = _broker_cpu_seconds(settings)
            broker_us = None if broker is None or after is None else (after - broker) / count * 1e6
            seen[name].append((count / wall, used / count * 1e6, broker_us))
    result = {}
    for name, values in seen.items():
        brokers = [b for _, _, b in values if b is not None]
        result[name] = (
            statistics.median(r for r, _, _ in values),
            statistics.median(c for _, c, _ in values),
            statistics.median(brokers) if brokers else None,
        )
    return result


def phases(source: str, path: Path, repeats: int) -> list[str]:
    """CPU microseconds a row of each step of `c2c produce` in this process, without Kafka
    (least of ``repeats``): reading the file into rows, the compiled row encoder (parse,
    check, encode), and, for comparison, the reference path it replaces (mapper with the
    compiled validator, then the Avro encoder)."""
    library = SchemaLibrary()
    extract = open_extract(path)
    fmt = FORMATS[source]
    topics = {KIND_TOPICS[t.kind] for t in fmt.record_types.values()}
    schemas = {t: library.resolve(get_topic(t).schema) for t in topics}
    ids = {t: 1 for t in topics}
    encoders = {t: AvroEncoder(schemas[t], 1) for t in topics}
    rows = list(extract.rows)
    fast = compile_row_encoder(fmt, extract.columns, schemas, ids)
    mapper = RowMapper(source, fmt)
    assert fast is not None

    def read() -> None:
        for _ in extract.rows:
            pass

    def compiled() -> None:
        for row in rows:
            fast(row.cells, row.raw)

    def reference() -> None:
        for row in rows:
            mapped = mapper.for_columns(row.columns)(row.cells, row.raw)
            encoders[mapped.topic].encode(mapped.event)

    timings = []
    for run in (read, compiled, reference):
        best = float("inf")
        for _ in range(repeats):
            started = time.process_time()
            run()
            best = min(best, time.process_time() - started)
        timings.append(f"{best / len(rows) * 1e6:.1f}")
    return [source, *timings]


def reference_replay(settings: Settings, registry: SchemaRegistry, folder: Path) -> int:
    """`c2c replay` as it was: every row mapped to its event, validated and encoded by the
    reference path, merged by in_time_order, sent one by one."""

    def failed(_context: Any, reason: str) -> None:
        raise AssertionError(reason)

    publisher = Publisher(settings, registry, on_failure=failed)
    count = 0
    for _item, row, outcome in in_time_order(open_folder(folder, dry_run=False)):
        if isinstance(outcome, MappedRow):
            value = publisher.encode(outcome.topic, outcome.event)
            publisher.send(outcome.topic, outcome.key, value, row.line)
            count += 1
    assert publisher.flush(120) == 0
    return count


def replay_table(settings: Settings, registry: SchemaRegistry, people: int, repeats: int) -> None:
    """Records/s and CPU us a record of `c2c replay` and of the reference replay."""
    with tempfile.TemporaryDirectory() as folder:
        synthesize(SynthConfig(people=people, seed=1), NoiseConfig(), Path(folder))

        def ours() -> int:
            return sum(s.published for s in replay(settings, Path(folder)))

        measured = _measure(
            settings,
            {"ours": ours, "reference": lambda: reference_replay(settings, registry, Path(folder))},
            repeats,
        )
        records = ours()
    print(
        f"\nc2c replay of {people:,} people ({records:,} records, all providers merged in "
        f"event-time order), median of {repeats} interleaved runs"
    )
    print_table(
        ["replay", "records/s", "CPU us a record (+ broker)"],
        [
            [name, f"{rate:,.0f}", f"{cpu:.1f}" + ("" if broker is None else f" + {broker:.1f}")]
            for name, (rate, cpu, broker) in measured.items()
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--replay", type=int, default=0, metavar="PEOPLE")
    args = parser.parse_args()
    settings = load_settings()
    ensure_topics(settings, [*CATALOGUE, LIMIT_TOPIC])
    registry = SchemaRegistry(settings)
    registry.register_all()
    telemetry = setup_telemetry(settings, "producer")  # as `c2c produce` does
    load_before = os.getloadavg()[0]

    rates_table, cpu_table, phase_table = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for source, mapping in (("k12", naive_k12), ("edd", naive_edd)):
            path = make_file(source, args.rows, Path(folder))
            phase_table.append(phases(source, path, args.repeats))
            sample = produce_file(settings, source, path, telemetry=telemetry)
            assert sample.rejected == 0
            assert sample.published == args.rows
            size = max(
                1,
                sum(
                    len(registry.encoder(get_topic(t)).encode(e))
                    for t, e in (mapping(r) for r in _first_rows(path, 100))
                )
                // 100,
            )

            def ours(workers: int, path: Path = path, source: str = source) -> int:
                summary = produce_file(settings, source, path, telemetry=telemetry, workers=workers)
                return summary.published

            measured = _measure(
                settings,
                {
                    "ours": lambda: ours(args.workers),
                    "ours1": lambda: ours(1),
                    "naive": lambda path=path, mapping=mapping: naive(
                        settings, registry, path, mapping
                    ),
                    "limit": lambda size=size: limit(settings, args.rows, size),
                },
                repeats=args.repeats,
            )
            rates = {name: rate for name, (rate, _, _) in measured.items()}
            rates_table.append(
                [
                    source,
                    f"{args.rows:,}",
                    f"{size}",
                    f"{rates['ours']:,.0f}",
                    f"{rates['ours1']:,.0f}",
                    f"{rates['naive']:,.0f}",
                    f"{rates['limit']:,.0f}",
                    f"{rates['ours'] / rates['naive']:.2f}x",
                    f"{rates['ours'] / rates['limit']:.2f}",
                    f"{rates['ours'] / rates['ours1']:.2f}x",
                ]
            )
            cpu_table.append(
                [source]
                + [
                    f"{cpu:.1f}" + ("" if broker is None else f" + {broker:.1f}")
                    for _, cpu, broker in (measured[n] for n in ("ours", "ours1", "naive", "limit"))
                ]
                # what one core of its own would do: every step of a row costs CPU here
                + [f"{1e6 / measured['ours1'][1]:,.0f}", f"{2e6 / measured['ours'][1]:,.0f}"]
            )
    telemetry.shutdown()
    print(
        f"rows/s from file to acknowledged (acks=all, idempotent), median of {args.repeats} "
        "interleaved runs; ours validates every row, naive does not"
    )
    print_table(
        [
            "source",
            "rows",
            "bytes/msg",
            f"ours ({args.workers} workers)",
            "ours (1)",
            "naive (b)",
            "limit (a)",
            "ours/naive",
            "ours/limit",
            f"{args.workers}/1",
        ],
        rates_table,
    )
    print()
    print(
        "CPU microseconds a row: this process and its workers + the local broker; and the "
        "rows/s that CPU time makes on cores of its own (broker apart)"
    )
    print_table(
        [
            "source",
            f"ours ({args.workers} workers)",
            "ours (1)",
            "naive (b)",
            "limit (a)",
            "ours (1): 1 core",
            f"ours ({args.workers}): 2 cores",
        ],
        cpu_table,
    )
    print(
        "\nCPU microseconds a row of each step in one process, without Kafka (least of the "
        "repeats); publishing costs about what the limit (a) does"
    )
    print_table(["source", "read", "row encoder", "reference path"], phase_table)
    print(
        f"\nload average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} cores"
    )
    if args.replay:
        replay_table(settings, registry, args.replay, args.repeats)


def _first_rows(path: Path, count: int) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return [row for _, row in zip(range(count), reader, strict=False)]


if __name__ == "__main__":
    main()
