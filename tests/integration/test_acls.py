"""Who can read what, on a real secured stack: a second local Kafka and registry (own ports
and data folder) run by `c2c services up` with C2C_KAFKA_ACLS (SASL/SCRAM and the
StandardAuthorizer), its principals and ACLs made from c2c/acls.py. Each refusal the issue
names is tried as the principal it concerns, beside the same action by the role that may do
it; then the pipeline runs end to end with every process its role's principal."""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from c2c.acls import producer_role
from c2c.errors import ServiceError
from c2c.kafka import read_to_end
from c2c.kinds import get_kind
from c2c.settings import Settings
from c2c.topics import DEAD_LETTER_TOPIC
from cli.sink_process import SinkProcess
from cli.worker_process import WorkerProcess
from producers.files import mapped_events, produce_file
from producers.formats import provider_kinds
from producers.synth import NoiseConfig, SynthConfig, synthesize
from services import services_down
from services.principals import as_role
from tests.conftest import free_port_pair, private_stack_env, run_c2c

pytestmark = pytest.mark.integration


def _c2c(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_c2c(env, *args, check=False, timeout_s=600)


@pytest.fixture(scope="module")
def secured(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A secured stack of its own (Kafka with C2C_KAFKA_ACLS and a registry on it), started
    by `c2c services up`; topics created and schemas registered as the admin. Yields
    settings that reach it with no principal (each test takes its role with ``as_role``)."""
    for _attempt in range(3):
        data = tmp_path_factory.mktemp("secured")
        env = private_stack_env(data, settings)
        env.update(
            {
                "C2C_CLICKHOUSE_URL": f"chdb://{data / 'ch'}",
                "C2C_KAFKA_ACLS": "true",
                "C2C_KAFKA_HEAP": "512m",
            }
        )
        up = _c2c(env, "services", "up")
        # a free port may be taken by another process before the service binds it (`up`
        # stops what it started when one fails): take other ports
        if "Address already in use" not in up.stderr:
            break
    assert up.returncode == 0, up.stderr
    secured = Settings(
        **{k.removeprefix("C2C_").lower(): v for k, v in env.items() if k[:4] == "C2C_"}
    )
    try:
        # a client with no principal is told the broker is secured, and what to do
        refused = _c2c(env, "topics", "create")
        assert refused.returncode != 0
        assert "[service.kafka.unreachable]" in refused.stderr
        assert "c2c services credentials admin" in refused.stderr
        admin_env = {**env, **_exports(_c2c(env, "services", "credentials", "admin").stdout)}
        for command in (("topics", "create"), ("schemas", "register")):
            done = _c2c(admin_env, *command)
            assert done.returncode == 0, done.stderr
        yield secured
    finally:
        services_down(secured)


def _exports(text: str) -> dict[str, str]:
    """The variables of `c2c services credentials` output (``export NAME=VALUE`` lines)."""
    pairs = [
        shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in text.splitlines()
    ]
    return {name: value for name, value in pairs}


def _send(settings: Settings, topic: str) -> KafkaError | None:
    """Send one message to ``topic``; the broker's error, or None if it took it."""
    errors: list[KafkaError | None] = []
    producer = Producer(settings.kafka_config(**{"message.timeout.ms": 10_000}))
    producer.produce(topic, b"probe", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(15)
    assert errors, f"no delivery report for {topic}"
    return errors[0]


def _refused_write(settings: Settings, topic: str) -> bool:
    error = _send(settings, topic)
    return error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def _refused_read(settings: Settings, topic: str) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        list(read_to_end(settings, [topic], timeout_s=20))
    assert refused.value.code == "kafka.not_authorized"
    return refused.value


def test_a_client_without_a_principal_is_not_let_in(secured: Settings) -> None:
    admin = AdminClient(secured.kafka_config(**{"socket.timeout.ms": 2000}))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    wrong = as_role(secured, "sink").model_copy(
        update={"kafka_sasl_password": as_role(secured, "reader").kafka_sasl_password}
    )
    with pytest.raises(KafkaException):
        AdminClient(wrong.kafka_config()).list_topics(timeout=5)


def test_the_sinks_principal_cannot_read_a_raw_topic(secured: Settings) -> None:
    raw = get_kind("enrollment").raw_topic
    assert _send(as_role(secured, producer_role("k12")), raw) is None
    refused = _refused_read(as_role(secured, "sink"), raw)
    assert "User:c2c-sink" in str(refused)
    assert raw in str(refused)
    # the resolver, whose input it is, reads it
    assert list(read_to_end(as_role(secured, "resolver"), [raw], timeout_s=20))


def test_a_provider_cannot_write_another_providers_topic(secured: Settings) -> None:
    edd = as_role(secured, producer_role("edd"))
    assert _send(edd, get_kind("wage").raw_topic) is None
    for other in ("credential", "enrollment", "optout"):
        assert _refused_write(edd, get_kind(other).raw_topic)
    # nor anything downstream of the resolver
    assert _refused_write(edd, get_kind("wage").linked_topic)


def test_a_deidentified_reader_cannot_read_dead_letters(secured: Settings) -> None:
    assert _send(as_role(secured, "resolver"), DEAD_LETTER_TOPIC) is None
    assert _send(as_role(secured, "resolver"), get_kind("wage").linked_topic) is None
    reader = as_role(secured, "reader")
    refused = _refused_read(reader, DEAD_LETTER_TOPIC)
    assert "User:c2c-reader" in str(refused)
    for raw in ("wage", "optout"):
        _refused_read(reader, get_kind(raw).raw_topic)
    assert list(read_to_end(reader, [get_kind("wage").linked_topic], timeout_s=20))
    # the operator reads them
    assert list(read_to_end(as_role(secured, "operator"), [DEAD_LETTER_TOPIC], timeout_s=20))


def test_the_operator_sees_status_and_dead_letters(secured: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("C2C_")}
    operator = as_role(secured, "operator")
    env.update({**operator.kafka_environment(), "C2C_DATA_DIR": str(secured.data_dir)})
    env["C2C_CLICKHOUSE_URL"] = secured.clickhouse_dsn
    status = _c2c(env, "status")
    # 4: a problem found, every service up (a test's probe on the dead letters is no
    # DeadLetter record); what matters is that the operator read them and everything else
    assert status.returncode in (0, 4), status.stdout + status.stderr
    assert "dead letters:" in status.stdout
    assert "c2c.raw.wage" in status.stdout
    assert "not_authorized" not in status.stdout


def test_a_reader_cannot_run_as_the_sink(secured: Settings, tmp_path: Path) -> None:
    """The de-identified reader may read what the sink reads, but not in the sink's
    consumer group: `c2c sink run` stops at once, naming the principal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("C2C_")}
    env.update(
        {
            **as_role(secured, "reader").kafka_environment(),
            "C2C_DATA_DIR": str(tmp_path / "data"),
            "C2C_CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}",
            "C2C_SINK_WEB_PORT": str(free_port_pair()),
        }
    )
    run = run_c2c(env, "sink", "run", "--group", "c2c-sink-acl-test", check=False, timeout_s=180)
    assert run.returncode != 0
    assert "[kafka.not_authorized]" in run.stderr
    assert "User:c2c-reader" in run.stderr


def test_the_pipeline_runs_with_each_role_its_own_principal(
    secured: Settings, tmp_path: Path
) -> None:
    """Each provider's extract produced by that provider's principal, the identity worker as
    the resolver, the sink as the sink: every event resolved, every linked event written."""
    synth = tmp_path / "synth"
    synthesize(SynthConfig(people=60, seed=int(uuid.uuid4().int % 10**6)), NoiseConfig(), synth)
    events = [e for _s, e in mapped_events(synth)]
    linked = sum(1 for e in events if "request_id" not in e)
    sink_settings = as_role(secured, "sink").model_copy(
        update={"clickhouse_url": f"chdb://{tmp_path / 'ch'}", "clickhouse_database": "acls"}
    )
    sink = SinkProcess(sink_settings, tmp_path / "sink.log", port=free_port_pair())
    worker = WorkerProcess(
        as_role(secured, "resolver"), tmp_path / "worker.log", port=free_port_pair()
    )
    # a provider's extract sent by another provider's principal: every row refused, each
    # reject naming that principal (its rows are in the rejects file, not on any topic)
    wages = produce_file(as_role(secured, producer_role("ctc")), "edd", synth / "edd.csv")
    assert wages.published == 0
    assert wages.rejected == wages.read > 0
    assert wages.rejects_file is not None
    rejects = Path(wages.rejects_file).read_text()
    assert "User:c2c-producer-ctc" in rejects
    assert "[kafka.not_authorized]" in rejects
    Path(wages.rejects_file).unlink()
    try:
        sink.start()
        worker.start()
        # the opt-out requests last, once the rest is resolved: the worker withholds an
        # event resolved after its person's opt-out (CI once lost 3 uc events that way,
        # "uc" sorting after "optout"), so every linked event is published only in that order
        produced = 0
        sources = sorted(provider_kinds(), key=lambda source: source == "optout")
        for source in sources:
            extract = synth / f"{source}.csv"
            if extract.exists():
                if source == "optout":
                    worker.drained(produced)
                summary = produce_file(as_role(secured, producer_role(source)), source, extract)
                produced += summary.published
        assert produced == len(events)
        worker.drained(len(events))
        sink.caught_up(linked)
    finally:
        worker.kill()
        sink.kill()
