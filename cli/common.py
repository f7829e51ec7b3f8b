"""What every `c2c` command shares: settings loaded once, errors as one paragraph, exit
codes, and the shape of --json output.

Exit codes: 0 done; 1 an error (the command could not do its work: a refused file, a
service unreachable); 2 a usage error (click); 3 a service down (`status`, `services
status`); 4 done, with problems found (`status`: lag, a stalled consumer, dead letters;
`produce`, `replay`: some rows rejected).

--json: a command prints one JSON document on stdout: an object for one thing, a list
for several; times are ISO 8601 strings. A command given --json that fails prints
``{"error": {"code": CODE, "message": MESSAGE}}`` on stdout (and the usual line on
stderr) and exits 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from c2c.errors import C2CError
from c2c.logs import setup_logging
from c2c.settings import Settings, load_settings

__all__ = [
    "EXIT_DOWN",
    "EXIT_ERROR",
    "EXIT_PROBLEMS",
    "JSON_OPTION",
    "LOG_LEVEL_KEY",
    "context_settings",
    "echo_json",
    "reports_errors",
]

EXIT_ERROR = 1
EXIT_DOWN = 3
EXIT_PROBLEMS = 4

F = TypeVar("F", bound=Callable[..., Any])

JSON_OPTION = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print the result as one JSON document on stdout (errors too: {"error": ...}).',
)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def echo_json(document: Any) -> None:
    """Print ``document`` as indented JSON (datetimes as ISO 8601, bytes as hex)."""
    click.echo(json.dumps(document, indent=2, default=_default))


def reports_errors(func: F) -> F:
    """Turn a C2CError into `c2c: error: MESSAGE [CODE]` on stderr and exit 1; with
    ``as_json`` set, also the error as JSON on stdout."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except C2CError as exc:
            if kwargs.get("as_json"):
                message = str(exc).removesuffix(f" [{exc.code}]")
                echo_json({"error": {"code": exc.code, "message": message}})
            click.echo(f"c2c: error: {exc}", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


LOG_LEVEL_KEY = "c2c.log_level"


def context_settings(ctx: click.Context) -> Settings:
    """The settings, loaded once per command (``--log-level`` over C2C_LOG_LEVEL), with
    this process's logging set up from them."""
    settings = ctx.obj
    if settings is None:
        level = ctx.meta.get(LOG_LEVEL_KEY)
        settings = ctx.obj = load_settings(**({"log_level": level} if level else {}))
        setup_logging(settings.log_level, settings.log_format)
    assert isinstance(settings, Settings)
    return settings
