"""The project's root exception and the errors the shared package raises.

Every error a user can see derives from :class:`C2CError`. Its message says what was wrong,
where (file, line, topic, offset, service) and what to do about it; ``code`` is a short
stable identifier; README.md#troubleshooting says what each one means and what to do.
"""

from __future__ import annotations

__all__ = ["C2CError", "ConfigError", "ServiceError"]


class C2CError(Exception):
    """Root of every error this project raises on purpose."""

    code: str = "c2c"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{super().__str__()} [{self.code}]"


class ConfigError(C2CError):
    """The settings (environment variables) are invalid; the message lists every problem."""

    code = "config"


class ServiceError(C2CError):
    """A local or remote service (Kafka, schema registry, ClickHouse) is not usable."""

    code = "service"
