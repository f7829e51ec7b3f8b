"""What every command shares: the data folder found as git finds its repository, logs as
JSON lines, progress lines off a terminal, --json documents and errors."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from c2c.logs import JsonFormatter, logging_config
from c2c.settings import find_data_dir, load_settings
from cli import cli
from cli.progress import Progress


def test_the_data_folder_is_the_nearest_c2c_above_the_current_one(tmp_path: Path) -> None:
    (tmp_path / ".c2c").mkdir()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_data_dir(deep) == tmp_path.resolve() / ".c2c"
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    (alone / ".c2c").mkdir()
    assert find_data_dir(alone / ".c2c" / "..") == alone.resolve() / ".c2c"


def test_without_any_c2c_above_it_is_made_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("C2C_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert not any((p / ".c2c").is_dir() for p in tmp_path.resolve().parents)
    assert load_settings().data_dir == tmp_path.resolve() / ".c2c"


def test_json_logs_are_one_object_a_line_with_time_level_logger_message() -> None:
    record = logging.LogRecord("c2c.sink", logging.WARNING, __file__, 1, "late %s", ("x",), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "WARNING"
    assert line["logger"] == "c2c.sink"
    assert line["message"] == "late x"
    assert line["time"].endswith("+00:00")
    config = logging_config("info", "json")
    assert config["root"]["level"] == "INFO"
    assert config["formatters"]["c2c"]["()"].endswith("JsonFormatter")
    assert "format" in logging_config("DEBUG", "text")["formatters"]["c2c"]


def test_progress_off_a_terminal_is_a_plain_line_and_nothing_when_quiet() -> None:
    out = io.StringIO()
    with Progress("replay x", stream=out, interval_s=0.0) as progress:
        progress.update(1000)
    assert out.getvalue().startswith("replay x: 1,000 rows (")
    assert out.getvalue().endswith("/s)\n")
    quiet = io.StringIO()
    with Progress("replay x", stream=quiet, interval_s=0.0, quiet=True) as progress:
        progress.update(1000)
    assert quiet.getvalue() == ""


def test_json_output_is_one_document_and_an_error_is_json_too(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["topics", "list", "--json"])
    assert listed.exit_code == 0
    topics = json.loads(listed.output)
    assert {"name", "partitions", "zone", "schema"} <= set(topics[0])
    extract = tmp_path / "ctc.csv"
    extract.write_text("Nothing,Here\n1,2\n")
    refused = runner.invoke(cli, ["produce", "ctc", str(extract), "--json", "--dry-run"])
    assert refused.exit_code == 1
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "extract.format"
    assert str(extract) in error["message"]


def test_every_option_of_every_command_has_help() -> None:
    import click

    def walk(command: click.Command, path: str) -> list[str]:
        missing = [
            f"{path} {p.name}"
            for p in command.params
            if isinstance(p, click.Option) and not p.help and p.name not in ("version",)
        ]
        for name, sub in getattr(command, "commands", {}).items():
            missing += walk(sub, f"{path} {name}")
        return missing

    assert walk(cli, "c2c") == []
