"""Liveness and readiness of a stream process, decided the same way for every stage.

Live: the process runs its loop. Ready: connected to Kafka, state recovered, and the lag
of every assigned partition below a bound, so that a load balancer or an orchestrator
sends work (or traffic) only to a process that keeps up. Pure code: each stage reports its
facts and serves the answer its own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Readiness", "readiness"]


@dataclass(frozen=True)
class Readiness:
    """The answer, with every reason it is not ready and the lag it saw per partition."""

    ready: bool
    reasons: tuple[str, ...] = ()
    lag: Mapping[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "reasons": list(self.reasons),
            "lag": dict(self.lag),
            "total_lag": sum(self.lag.values()),
        }


def readiness(
    *,
    connected: bool,
    recovering: bool,
    lag: Mapping[str, int],
    max_lag: int,
) -> Readiness:
    """Ready unless disconnected, recovering state, or some partition lags more than
    ``max_lag`` messages. ``lag`` maps "topic[partition]" to messages not yet processed."""
    reasons = []
    if not connected:
        reasons.append("not connected to Kafka (no partitions assigned)")
    if recovering:
        reasons.append("recovering state from changelog topics")
    behind = {tp: n for tp, n in lag.items() if n > max_lag}
    if behind:
        worst = max(behind, key=lambda tp: behind[tp])
        reasons.append(
            f"{len(behind)} partition(s) lag more than {max_lag} messages "
            f"(worst {worst}: {behind[worst]})"
        )
    return Readiness(not reasons, tuple(reasons), dict(lag))
