"""What every service looks like to `c2c services`: a name, an address, a probe, and, for
the ones this project runs itself, how to prepare and start its process."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from services._process import ProcessSpec

__all__ = ["LocalService", "Probe", "ServiceStatus", "is_loopback"]


@dataclass(frozen=True)
class Probe:
    """The answer of one readiness check."""

    up: bool
    version: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `c2c services status`."""

    name: str
    up: bool
    address: str
    version: str | None
    local: bool
    pid: int | None
    log: str | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LocalService(Protocol):
    """A service with a probe; ``local`` ones can also be prepared, started and stopped."""

    name: str

    @property
    def address(self) -> str: ...

    @property
    def local(self) -> bool:
        """True if this project runs the service on this machine (a loopback endpoint)."""
        ...

    def probe(self, timeout_s: float) -> Probe: ...

    def prepare(self) -> None:
        """Write configuration and initialise storage; idempotent."""
        ...

    def process_spec(self) -> ProcessSpec | None:
        """How to start the process, or None for a service with no process (embedded)."""
        ...

    @property
    def pid_file(self) -> Path | None:
        """Where the local process's pid is kept; None for a service with no process."""
        ...

    @property
    def marker(self) -> str:
        """A string on the process's command line that identifies it as this service."""
        ...

    @property
    def log_file(self) -> Path | None: ...


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (127.0.0.0/8, ::1, localhost)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
