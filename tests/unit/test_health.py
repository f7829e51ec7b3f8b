from __future__ import annotations

from c2c.health import readiness


def test_ready_when_connected_recovered_and_caught_up() -> None:
    answer = readiness(connected=True, recovering=False, lag={"t[0]": 5, "t[1]": 0}, max_lag=10)
    assert answer.ready
    assert answer.reasons == ()
    assert answer.as_json()["total_lag"] == 5


def test_every_reason_not_to_be_ready_is_given() -> None:
    answer = readiness(connected=False, recovering=True, lag={"t[0]": 50, "t[1]": 11}, max_lag=10)
    assert not answer.ready
    assert len(answer.reasons) == 3
    assert "2 partition(s) lag more than 10 messages (worst t[0]: 50)" in answer.reasons[2]
