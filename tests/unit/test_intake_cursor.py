"""The resolve agent's cursor in the intake (streams/cursor.py): it resolves the next
message or a replay, never one beyond a hole Faust left, asks for the hole again, and stops
the worker when asking does not fill it."""

from __future__ import annotations

import pytest

from streams.cursor import REFETCH_AFTER_S, REFETCHES, IntakeCursor, IntakeGap

INTAKE = ("c2c.identity.intake", 0)


def test_a_message_beyond_the_next_is_a_hole_and_a_replay_is_not() -> None:
    """Faust once delivered intake offsets 104-167 and then 170 (test_failover)."""
    cursor = IntakeCursor()
    assert cursor.hole(INTAKE, 104) is None  # nothing known since the rebalance
    for offset in range(104, 168):
        assert cursor.hole(INTAKE, offset) is None
        cursor.resolved(INTAKE, offset)
    assert cursor.hole(INTAKE, 170) == 168
    assert cursor.hole(INTAKE, 171) == 168  # what follows waits too
    assert cursor.holes == 2
    assert cursor.hole(INTAKE, 120) is None  # a replay
    cursor.resolved(INTAKE, 120)
    assert cursor.resolved_up_to(INTAKE) == 168  # a replay moves nothing back
    assert cursor.hole(("c2c.identity.intake", 1), 3) is None  # its own position
    cursor.resolved(INTAKE, 168)
    cursor.resolved(INTAKE, 169)
    assert cursor.hole(INTAKE, 170) is None
    assert cursor.resolved_up_to(INTAKE) == 170


def test_after_a_seek_the_committed_offset_comes_first() -> None:
    """A hole right after the seek: Faust would commit over a one-message one."""
    cursor = IntakeCursor()
    cursor.resolved(INTAKE, 300)
    cursor.forget()  # a rebalance
    assert cursor.resolved_up_to(INTAKE) is None
    cursor.sought({INTAKE: 30})
    assert cursor.resolved_up_to(INTAKE) == 30
    assert cursor.hole(INTAKE, 31) == 30
    assert cursor.hole(INTAKE, 30) is None


def test_a_hole_is_asked_for_again_until_filled_then_stops_the_worker() -> None:
    """In CI the first read asked for was lost (Faust's read offset moved past the hole
    again with the messages it still held): a timer asks again, and gives up at the last."""
    cursor = IntakeCursor()
    cursor.sought({INTAKE: 30})
    assert cursor.refetch(INTAKE, 30, 31, now=0.0)
    assert not cursor.refetch(INTAKE, 30, 40, now=1.0)  # asked already: the timer's now
    assert cursor.due(now=REFETCH_AFTER_S / 2) == []
    for times in range(2, REFETCHES + 1):
        assert cursor.due(now=times * REFETCH_AFTER_S) == [(INTAKE, 30)]
        assert cursor.due(now=times * REFETCH_AFTER_S + 0.1) == []  # given its time
    with pytest.raises(IntakeGap, match=r"delivered offset 31 where 30 was next") as caught:
        cursor.due(now=(REFETCHES + 1) * REFETCH_AFTER_S)
    assert caught.value.code == "worker.intake_gap"


def test_a_hole_filled_is_no_longer_asked_for() -> None:
    cursor = IntakeCursor()
    cursor.sought({INTAKE: 30})
    assert cursor.refetch(INTAKE, 30, 31, now=0.0)
    cursor.resolved(INTAKE, 30)
    assert cursor.due(now=100.0) == []
    assert cursor.refetch(INTAKE, 31, 35, now=100.0)  # a new hole later: asked afresh
    cursor.forget()  # a rebalance: nothing pending
    assert cursor.due(now=1000.0) == []


def test_the_counts_page_says_how_many_messages_came_beyond_a_hole() -> None:
    """``/metrics/counts`` (``WorkerState.all_counts``) counts the messages delivered
    beyond a hole, and keeps counting across a rebalance (which forgets positions only)."""
    from streams.app import WorkerState

    state = WorkerState()
    assert state.all_counts()["intake.beyond_hole"] == 0
    cursor = state.cursor
    cursor.sought({INTAKE: 10})
    assert cursor.hole(INTAKE, 12) == 10
    assert cursor.hole(INTAKE, 13) == 10
    cursor.forget()
    cursor.sought({INTAKE: 10})
    assert cursor.hole(INTAKE, 10) is None
    assert state.all_counts()["intake.beyond_hole"] == 2
