"""Detached service processes: start, find again by pid file, stop.

A process we start gets its own session (so it outlives the `c2c` command and a stop signals
its whole group), writes stdout and stderr to its log file, and leaves a pid file. Its
command line carries a marker (``-Dc2c.service=NAME@DATA_DIR``) so a stale pid file that
now points to some other process is never mistaken for ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ProcessSpec", "running_pid", "start_process", "stop_process", "tail"]


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one service process."""

    name: str
    argv: Sequence[str]
    cwd: Path
    log_file: Path
    pid_file: Path
    marker: str
    env: Mapping[str, str] = field(default_factory=dict)


def start_process(spec: ProcessSpec) -> subprocess.Popen[bytes]:
    """Start ``spec`` detached; return the process (``poll()`` tells if it exited). The pid
    file is written before returning."""
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(spec.env)
    with spec.log_file.open("ab") as log:
        log.write(f"\n--- c2c: starting {spec.name} at {time.strftime('%F %T')}\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(spec.argv),
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    spec.pid_file.write_text(f"{process.pid}\n")
    return process


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and carries ``marker``, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if _is_zombie(pid):
        return None
    cmdline = _cmdline(pid)
    # An empty command line is a process between fork and exec (the java launcher may
    # re-exec itself): alive, and not yet anyone else's.
    if cmdline and marker not in cmdline:
        return None
    return pid


def stop_process(pid_file: Path, marker: str, *, timeout_s: float = 30.0) -> bool:
    """Stop the process behind ``pid_file``: SIGTERM, then SIGKILL after ``timeout_s``.

    Returns True if a live process was stopped, False if there was none. The pid file is
    removed either way.
    """
    pid = running_pid(pid_file, marker)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if running_pid(pid_file, marker) is None:
            break
        time.sleep(0.2)
    else:
        _signal_group(pid, signal.SIGKILL)
        while running_pid(pid_file, marker) is not None:
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file, for error messages ('' if unreadable)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    # Java stack frames say little to an operator: keep the messages and their causes.
    kept = [line for line in text.splitlines() if not line.lstrip().startswith(("at ", "... "))]
    return "\n".join(kept[-lines:])
