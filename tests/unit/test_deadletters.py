"""The pure parts of `c2c deadletters`: filters, times, states from the audit, what a
replay sends and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from c2c.deadletter import dead_letter
from c2c.errors import C2CError
from observability.audit import decisions, operator_action
from observability.deadletters import (
    DeadLetter,
    DeadLetterFilter,
    parse_since,
    replay_plan,
    select,
)

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)


def _message(code: str = "serde.decode", topic: str = "c2c.raw.enrollment", **kw: Any) -> Any:
    return dead_letter(
        stage="identity",
        error=C2CError("bad", code=code),
        source_topic=topic,
        source_partition=1,
        source_offset=7,
        key=b"k",
        value=kw.pop("value", b"\x00\x00\x00\x00\x01raw"),
        **kw,
    )


def _row() -> Any:
    return dead_letter(
        stage="producer:edd",
        error=C2CError("line 3: bad SSN", code="row.invalid"),
        source_file="/x/edd.csv",
        source_line=3,
        value=b"EDD-2,98765X321",
    )


def test_filters_take_topic_code_prefix_stage_time_and_state() -> None:
    old = {**_message(), "failed_at": NOW - timedelta(days=2)}
    new = {**_message(code="serde.unknown_schema_id"), "failed_at": NOW}
    row = {**_row(), "failed_at": NOW}
    decided = operator_action(
        operator="ana", action="deadletter.discard", subject=row["dead_letter_id"]
    )
    letters = [DeadLetter(old, 0), DeadLetter(new, 1), DeadLetter(row, 2, decided)]

    def ids(wanted: DeadLetterFilter) -> list[int]:
        return [letter.offset for letter in select(letters, wanted)]

    assert ids(DeadLetterFilter()) == [0, 1, 2]
    assert ids(DeadLetterFilter(topic="c2c.raw.enrollment")) == [0, 1]
    assert ids(DeadLetterFilter(code="serde")) == [0, 1]
    assert ids(DeadLetterFilter(code="serde.unknown")) == []  # a prefix ends at a dot
    assert ids(DeadLetterFilter(stage="producer")) == [2]
    assert ids(DeadLetterFilter(since=NOW - timedelta(hours=1))) == [1, 2]
    assert ids(DeadLetterFilter(state="open")) == [0, 1]
    assert ids(DeadLetterFilter(state="discarded")) == [2]
    assert DeadLetterFilter(state="open").empty
    assert not DeadLetterFilter(code="x").empty


def test_since_takes_iso_times_and_durations_back_from_now() -> None:
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-12-06", NOW) == datetime(2026, 12, 6, tzinfo=UTC)
    assert parse_since("2026-12-06T10:00+01:00", NOW).utcoffset() == timedelta(hours=1)
    with pytest.raises(ValueError, match="30m, 2h, 7d"):
        parse_since("yesterday", NOW)


def test_the_latest_decision_is_the_state() -> None:
    first = operator_action(operator="a", action="deadletter.discard", subject="x", acted_at=NOW)
    later = operator_action(
        operator="b", action="deadletter.replay", subject="x", acted_at=NOW + timedelta(1)
    )
    assert decisions([later, first])["x"]["operator"] == "b"
    assert DeadLetter(_message(), 0, decisions([first, later])["x"]).state == "replayed"


def test_a_replay_sends_the_original_bytes_to_the_source_or_the_topic_named() -> None:
    record = _message()
    letter = DeadLetter(record, 0)
    assert replay_plan(letter) == ("c2c.raw.enrollment", b"k", record["original_value"])
    assert replay_plan(letter, "c2c.raw.wage")[0] == "c2c.raw.wage"
    assert letter.details()["replayable"] is True
    assert "original_value" not in letter.details()
    assert "original_value" not in letter.summary()


@pytest.mark.parametrize(
    ("record", "to", "why"),
    [
        (_row(), None, "rejected file row"),
        (_message(value=b"x" * (600 * 1024)), None, "kept in part"),
        (_message(), "c2c.raw.nothing", "unknown topic"),
    ],
)
def test_a_replay_refuses_what_it_cannot_send_whole(record: Any, to: str | None, why: str) -> None:
    with pytest.raises(C2CError, match=why) as caught:
        replay_plan(DeadLetter(record, 0), to)
    assert caught.value.code == "deadletter.not_replayable"
