"""`c2c services up|down|status`: the three services together, in dependency order.

Kafka is one node, or with C2C_KAFKA_BROKERS > 1 a local cluster of nodes "kafka",
"kafka-2", ... (`--only kafka` names them all); the nodes are started together, since none
is ready before a majority of the controller quorum is up.

A service whose endpoint is on this machine (loopback, or embedded chdb) is run by this
project when it does not already answer; a remote endpoint is only probed. `up` returns the
names of the services it started, so that a caller (`make test`) can stop exactly those.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from c2c.errors import ServiceError
from c2c.settings import Settings
from services._process import running_pid, start_process, stop_process, tail
from services.base import LocalService, Probe, ServiceStatus
from services.clickhouse import ClickHouseService
from services.fetch import fetch_artifacts
from services.kafka import KafkaService, kafka_nodes
from services.principals import apply_acls, local_secured
from services.registry import RegistryService

__all__ = [
    "SERVICE_NAMES",
    "all_services",
    "services_down",
    "services_status",
    "services_up",
    "started_nodes",
]

SERVICE_NAMES = ("kafka", "schema_registry", "clickhouse")
_PROBE_TIMEOUT_S = 3.0


def all_services(settings: Settings) -> list[LocalService]:
    """The services in start order (the registry stores its schemas in Kafka)."""
    return [*kafka_nodes(settings), RegistryService(settings), ClickHouseService(settings)]


def _service_name(service: LocalService) -> str:
    """The name `--only` selects a service by: "kafka" for every node of a cluster."""
    return "kafka" if isinstance(service, KafkaService) else service.name


def _nodes_record(settings: Settings) -> Path:
    # how many Kafka nodes `up` last started from this data folder
    return settings.run_dir.resolve() / "kafka.nodes"


def _record_nodes(settings: Settings) -> None:
    record = _nodes_record(settings)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(f"{settings.kafka_brokers}\n")


def started_nodes(settings: Settings) -> int | None:
    """The number of Kafka nodes that `up` last started from this data folder, None if it
    started none (or `down` has stopped them since)."""
    try:
        return int(_nodes_record(settings).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _with_started_nodes(settings: Settings) -> Settings:
    """``settings`` widened to every Kafka node that `up` started here, when it started more
    than C2C_KAFKA_BROKERS (or `--brokers`) names: `down` and `status` without the same
    number then still find the extra nodes."""
    started = started_nodes(settings)
    if started is None or started <= settings.kafka_brokers:
        return settings
    return settings.with_kafka_brokers(started)


def _select(settings: Settings, only: Iterable[str] | None) -> list[LocalService]:
    services = all_services(settings)
    if only is None:
        return services
    wanted = set(only)
    # a node's own name ("kafka-2") too: `up` stops what it started by name when one fails
    unknown = wanted - set(SERVICE_NAMES) - {service.name for service in services}
    if unknown:
        raise ServiceError(
            f"unknown service(s) {sorted(unknown)}; choose from {', '.join(SERVICE_NAMES)}",
            code="service.unknown",
        )
    return [
        service
        for service in services
        if _service_name(service) in wanted or service.name in wanted
    ]


def _pid(service: LocalService) -> int | None:
    if not service.local or service.pid_file is None:
        return None
    return running_pid(service.pid_file, service.marker)


def _status(service: LocalService, probe: Probe) -> ServiceStatus:
    pid = _pid(service)
    log = service.log_file
    return ServiceStatus(
        name=service.name,
        up=probe.up,
        address=service.address,
        version=probe.version,
        local=service.local,
        pid=pid,
        log=str(log) if log is not None else None,
        detail=probe.detail,
    )


def services_status(settings: Settings, only: Iterable[str] | None = None) -> list[ServiceStatus]:
    """Probe each service once (every Kafka node `up` started, see `started_nodes`); never
    raises for a service that is down."""
    rows = []
    for service in _select(_with_started_nodes(settings), only):
        try:
            probe = service.probe(_PROBE_TIMEOUT_S)
        except ServiceError as exc:
            probe = Probe(up=False, detail=str(exc))
        rows.append(_status(service, probe))
    return rows


def _wait_ready(
    service: LocalService, *, process: subprocess.Popen[bytes] | None, timeout_s: float
) -> Probe:
    deadline = time.monotonic() + timeout_s
    probe = Probe(up=False, detail="not probed yet")
    while (remaining := deadline - time.monotonic()) > 0:
        # Never probe past the deadline: a slow probe must not hide a late start.
        probe = service.probe(min(_PROBE_TIMEOUT_S, max(remaining, 0.1)))
        if probe.up:
            return probe
        if process is not None and process.poll() is not None:
            raise ServiceError(
                f"{service.name} exited (code {process.returncode}) while starting; see "
                f"{service.log_file}:\n"
                f"{tail(service.log_file) if service.log_file else ''}",
                code=f"service.{service.name}.exited",
            )
        time.sleep(0.5)
    raise ServiceError(
        f"{service.name} at {service.address} was not ready within {timeout_s:.0f} s "
        f"(last check: {probe.detail}); see its log {service.log_file}"
        + (f":\n{tail(service.log_file)}" if service.log_file else ""),
        code=f"service.{service.name}.timeout",
    )


def services_up(
    settings: Settings,
    only: Iterable[str] | None = None,
    *,
    providers: Mapping[str, Iterable[str]] | None = None,
) -> list[str]:
    """Start what is local and not answering, wait until each is ready; return what started.

    On a secured local broker (C2C_KAFKA_ACLS) the principals of c2c/acls.py and their ACLs
    are created once the broker is ready, with a producer per provider of ``providers``
    (provider -> the kinds it sends; `c2c services up` gives producers.formats'), none if None.

    Raises ServiceError naming the service and its log when one is not ready in time, or
    when a remote service does not answer.
    """
    selected = _select(settings, only)
    if any(service.local and service.pid_file is not None for service in selected):
        fetch_artifacts(settings)
    started: list[str] = []
    try:
        _start_each(settings, selected, started, providers or {})
    except BaseException:
        # Leave nothing half-started behind: stop what this call started, then re-raise.
        services_down(settings, started)
        raise
    return started


def _start_each(
    settings: Settings,
    selected: list[LocalService],
    started: list[str],
    providers: Mapping[str, Iterable[str]],
) -> None:
    nodes = [service for service in selected if isinstance(service, KafkaService)]
    if nodes:
        # every node first: a node is ready only once a majority of the quorum runs
        if any(node.local for node in nodes):
            _record_nodes(settings)
        launched = [(node, _launch(node, started)) for node in nodes]
        for node, (needed, process) in launched:
            if needed:
                _wait_ready(node, process=process, timeout_s=settings.service_start_timeout_s)
        if local_secured(settings):
            apply_acls(settings, providers)
    for service in selected:
        if not isinstance(service, KafkaService):
            needed, process = _launch(service, started)
            if needed:
                _wait_ready(service, process=process, timeout_s=settings.service_start_timeout_s)


def _launch(
    service: LocalService, started: list[str]
) -> tuple[bool, subprocess.Popen[bytes] | None]:
    """Start ``service`` if it is local, not answering and not running; (whether to wait
    for it, the process started if any)."""
    if service.probe(_PROBE_TIMEOUT_S).up:
        return False, None
    if not service.local:
        return True, None
    service.prepare()
    spec = service.process_spec()
    process = None
    if spec is not None and _pid(service) is None:
        process = start_process(spec)
        started.append(service.name)
    return True, process


def services_down(settings: Settings, only: Iterable[str] | None = None) -> list[str]:
    """Stop the local processes this project started (reverse start order), every Kafka node
    that `up` started among them (`started_nodes`); return their names."""
    settings = _with_started_nodes(settings)
    stopped = []
    selected = _select(settings, only)
    for service in reversed(selected):
        if not service.local or service.pid_file is None:
            continue
        if stop_process(service.pid_file, service.marker):
            stopped.append(service.name)
    nodes = [service for service in selected if isinstance(service, KafkaService)]
    if len(nodes) == settings.kafka_brokers and not any(_pid(node) for node in nodes):
        _nodes_record(settings).unlink(missing_ok=True)
    return stopped
