"""What every `c2c` command shares: settings loaded once, and errors as one paragraph."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from c2c.errors import C2CError
from c2c.settings import Settings, load_settings

__all__ = ["context_settings", "reports_errors"]

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except C2CError as exc:
            click.echo(f"c2c: error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def context_settings(ctx: click.Context) -> Settings:
    settings = ctx.obj
    if settings is None:
        settings = ctx.obj = load_settings()
    assert isinstance(settings, Settings)
    return settings
