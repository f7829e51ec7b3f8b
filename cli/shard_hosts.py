"""`c2c identity shard-host` processes started as children (tests and benches): the
sharded resolver's shards served over Kafka (streams/shards.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from c2c.errors import ServiceError
from c2c.kafka import ensure_topics
from c2c.settings import Settings
from streams.shards import shard_topics

__all__ = ["ShardHosts"]

_HOLDS = re.compile(r"holds shard\(s\) \[([0-9, ]*)\]")
_FROM = re.compile(r"shard (\d+) from its (\w+), at apply offset")
_STANDBY = re.compile(r"standby for shard\(s\) \[([0-9, ]*)\]")
_REBUILT = re.compile(r"rebuilt shard\(s\) \[([0-9, ]*)\] from (\d+) apply calls")


def _numbers(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def _reaped(process: subprocess.Popen[bytes], timeout_s: float) -> float:
    """Wait for ``process`` to exit (SIGKILL after ``timeout_s``); its CPU seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            process.kill()
            deadline = float("inf")
        time.sleep(0.1)


class ShardHosts:
    """``hosts`` shard hosts of ``app_id`` serving ``shards`` shards (topics created here),
    each logging to ``<logs>/host-<i>.log``. ``environment``: more variables for each."""

    def __init__(
        self,
        settings: Settings,
        app_id: str,
        shards: int,
        hosts: int,
        logs: Path,
        environment: dict[str, str] | None = None,
    ) -> None:
        ensure_topics(settings, shard_topics(app_id, shards))
        self.shards = shards
        env = {
            **os.environ,
            "C2C_DATA_DIR": str(settings.data_dir),
            **settings.kafka_environment(),
            "C2C_STREAMS_SHARDS": str(shards),
            "C2C_LOG_LEVEL": "INFO",
            **(environment or {}),
        }
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = [logs / f"host-{i}.log" for i in range(hosts)]
        self._env = env
        self._commands = [
            [*("-m", "cli", "identity", "shard-host", "--app-id", app_id, "--name", f"host-{i}")]
            for i in range(hosts)
        ]
        self.processes = [self._start(i, "w") for i in range(hosts)]
        self._read_from = [0] * hosts  # where in its log a host's current life begins
        self.cpu_seconds: list[float] = []

    def _start(self, host: int, mode: str) -> subprocess.Popen[bytes]:
        with self.logs[host].open(mode) as out:
            return subprocess.Popen(
                [sys.executable, *self._commands[host]],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def restart(self, host: int) -> None:
        """Stop host ``host`` (SIGTERM: its stores written) and start it again, the same
        name (its stores) and log."""
        self.processes[host].send_signal(signal.SIGTERM)
        _reaped(self.processes[host], timeout_s=30)
        self._read_from[host] = len(self.logs[host].read_text())
        self.processes[host] = self._start(host, "a")

    def held(self, host: int) -> list[int]:
        """The shards host ``host`` last said it holds ([] if none yet)."""
        found = _HOLDS.findall(self.logs[host].read_text()[self._read_from[host] :])
        return _numbers(found[-1]) if found else []

    def sources(self, host: int) -> dict[int, str]:
        """Where host ``host`` (this life) took each shard it rebuilt from, the last time:
        standby, store or changelog."""
        text = self.logs[host].read_text()[self._read_from[host] :]
        return {int(shard): source for shard, source in _FROM.findall(text)}

    def standbys(self, host: int) -> list[int]:
        """The shards host ``host`` last said it keeps standby copies of."""
        found = _STANDBY.findall(self.logs[host].read_text()[self._read_from[host] :])
        return _numbers(found[-1]) if found else []

    def rebuilt(self, host: int) -> list[tuple[list[int], int]]:
        """Each rebuild host ``host`` made: (the shards, the apply calls replayed)."""
        return [
            (_numbers(shards), int(calls))
            for shards, calls in _REBUILT.findall(self.logs[host].read_text())
        ]

    def wait_settled(self, timeout_s: float = 90) -> None:
        """Until every running host holds shards and together they hold each once."""
        deadline = time.monotonic() + timeout_s
        running = [i for i, p in enumerate(self.processes) if p.poll() is None]
        while True:
            held = [self.held(i) for i in running]
            if all(held) and sorted(s for h in held for s in h) == list(range(self.shards)):
                return
            exited = [i for i in running if self.processes[i].poll() is not None]
            if exited or time.monotonic() > deadline:
                raise ServiceError(
                    f"shard hosts {running} did not settle on {self.shards} shards "
                    f"(exited: {exited}; held: {held})\n{self.tails()}",
                    code="child.timeout",
                )
            time.sleep(0.3)

    def cpu_now(self) -> list[float]:
        """Each running host's CPU seconds so far (Linux /proc; 0 for one not running)."""
        tick = os.sysconf("SC_CLK_TCK")
        seconds = []
        for process in self.processes:
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                seconds.append(0.0)
                continue
            seconds.append((int(fields[11]) + int(fields[12])) / tick)  # utime, stime
        return seconds

    def peak_rss_mb(self) -> list[float]:
        """Each running host's peak resident memory so far, MB (Linux /proc VmHWM)."""
        peaks = []
        for process in self.processes:
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                peaks.append(0.0)
                continue
            kb = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM")), 0)
            peaks.append(int(kb) / 1024)
        return peaks

    def kill(self, host: int) -> None:
        """SIGKILL host ``host``: lost, not stopped."""
        self.processes[host].send_signal(signal.SIGKILL)
        self.processes[host].wait()

    def stop(self) -> list[float]:
        """Stop every host still running (SIGTERM); each one's CPU seconds (0 for a
        killed one)."""
        cpu = []
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            if process.returncode is not None:
                cpu.append(0.0)
                continue
            cpu.append(_reaped(process, timeout_s=30))
        self.cpu_seconds = cpu
        return cpu

    def wait(self, check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        """Until ``check`` holds; ServiceError with the hosts' logs if not in time."""
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"shard hosts: {what} not in {timeout_s:.0f} s\n{self.tails()}",
                    code="child.timeout",
                )
            time.sleep(0.3)

    def tails(self) -> str:
        return "\n".join(f"--- {log}\n{log.read_text()[-3000:]}" for log in self.logs)
