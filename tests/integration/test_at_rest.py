"""The at-rest scan: after a synth population has gone through the whole pipeline, no SSN,
SSID or ITIN of the input, and no name, rests in clear anywhere but the places declared for
them: the identity zone's topics (raw topics, intakes, review, dead letters: c2c/topics.py).
Everything else is read: every topic of the broker (the worker's changelogs included), every
file of the worker's state (RocksDB read through RocksDB too, since its files may be
compressed), every log, every ClickHouse table. streams/README.md, "What is kept where",
lists the places; tests/unit/test_at_rest.py shows the scanner finds what it looks for."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from rocksdict import AccessType, Options, Rdict

from c2c.clickhouse import connect
from c2c.kafka import read_to_end
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import CATALOGUE
from cli.sink_process import SinkProcess
from cli.worker_process import WorkerProcess
from producers.files import mapped_events, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from tests.at_rest import Found, Wanted, vocabulary
from tests.conftest import free_port_pair

pytestmark = pytest.mark.integration

# Where identifiers and names of the input may rest in clear: the identity zone's topics
# (what the providers sent, and what the resolver keeps of it to review or re-read).
DECLARED = [
    *(f"topic:{re.escape(t.name)}" for t in CATALOGUE if t.zone == "identity"),
    r"topic:c2c\.identity\.intake\..*",  # each worker's own intake (tests, benches)
]


def test_no_identifier_or_name_rests_in_clear_outside_the_identity_zone(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # possible matches held for review, so that the worker's third table (operators'
    # decisions: each review's identity, sealed) holds something to scan
    monkeypatch.setenv("C2C_IDENTITY_REVIEW_MIN_WEIGHT", "10")
    synth = tmp_path / "synth"
    synthesize(SynthConfig(people=200, seed=int(uuid.uuid4().int % 10**6)), NoiseConfig(), synth)
    events = [e for _s, e in mapped_events(synth)]
    # (Jackson: a surname, and the registry's JSON library, which its log names)
    wanted = Wanted.of([e["person"] for e in events], vocabulary=vocabulary() | {"jackson"})
    assert len(wanted.identifiers) > 300
    assert len(wanted.names) > 20

    settings = stack.model_copy(
        update={"clickhouse_url": f"chdb://{tmp_path / 'ch'}", "clickhouse_database": "rest"}
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    sink = SinkProcess(settings, logs / "sink.log", port=free_port_pair())
    worker = WorkerProcess(stack, logs / "worker.log", port=free_port_pair(), split=True)
    try:
        sink.start()
        worker.start()
        replay(stack, synth)
        # opt-outs too (their audit must hold no PII either): what was withheld of an
        # opted-out person is not for the sink to write
        sink.caught_up(int(worker.drained(len(events))["linked"]))
        sink.stop()
        worker.stop()
    finally:
        worker.kill()
        sink.kill()

    found = Found()
    # every topic of the broker, keys, values and headers; but other workers' own topics
    # (other tests' intakes and tables: synth draws names from one list, and the upgrade
    # test writes a changelog as a worker before sealing did)
    topics = sorted(
        t
        for t in AdminClient(stack.kafka_config()).list_topics(timeout=10).topics
        if not t.startswith(("c2c-identity-", "c2c.identity.intake."))
        or t.startswith(worker.app_id)
        or t == worker.intake
    )
    changelogs = [t for t in topics if t.startswith(worker.app_id) and t.endswith("changelog")]
    assert len(changelogs) == 3, topics  # persons, sources, operators' decisions
    for message in read_to_end(stack, topics):
        place = f"topic:{message.topic()}"
        found.add(place, message.key() or b"", wanted)
        found.add(place, message.value() or b"", wanted)
        for _name, header in message.headers() or ():
            found.add(place, header or b"", wanted)
    # the worker's state: every file as it is, and each RocksDB's keys and values
    state = stack.data_dir / "streams" / worker.app_id
    files = [p for p in state.rglob("*") if p.is_file()]
    assert files, state
    for path in files:
        found.add(f"state:{path.relative_to(state)}", path.read_bytes(), wanted)
    databases = [p.parent for p in state.rglob("CURRENT")]
    assert databases, state
    for path in databases:
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            for key, value in db.items():
                found.add(f"rocksdb:{path.relative_to(state)}", key + value, wanted)
        finally:
            db.close()
    # every log: the worker's and the sink's, and the local services'
    for folder in (logs, stack.log_dir):
        for path in folder.rglob("*"):
            if path.is_file():
                found.add(f"log:{path.name}", path.read_bytes(), wanted)
    # every ClickHouse table of the sink's database, and what ClickHouse logged of queries
    client = connect(settings)
    try:
        tables = client.query(
            "SELECT name FROM system.tables WHERE database = 'rest' AND engine NOT LIKE '%View'"
        ).result_rows
        assert len(tables) > 10
        for (table,) in tables:
            rows = client.query(f"SELECT * FROM rest.`{table}`").result_rows
            found.add(f"clickhouse:{table}", repr(rows).encode(), wanted)
        logged = client.query(
            "SELECT name FROM system.tables WHERE database = 'system' AND name LIKE '%log'"
        ).result_rows
        for (table,) in logged:
            rows = client.query(f"SELECT * FROM system.`{table}`").result_rows
            found.add(f"clickhouse:system.{table}", repr(rows).encode(), wanted)
    finally:
        client.close()

    # The scan sees what it looks for where it is declared (else it could pass by reading
    # nothing): most of the input's identifiers and names are on the raw topics.
    on_raw = set().union(
        *(v for k, v in found.identifiers.items() if k.startswith("topic:c2c.raw"))
    )
    assert len(on_raw) > 0.9 * len(wanted.identifiers)
    named = set().union(*(v for k, v in found.names.items() if k.startswith("topic:c2c.raw")))
    assert named == wanted.names
    for changelog in changelogs:
        assert found.scanned[f"topic:{changelog}"] > 0
    assert found.outside(DECLARED) == {}
