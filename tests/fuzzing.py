"""What the fuzz suites share: their settings, and the ways a message can be damaged."""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence

from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from c2c.serde import frame

__all__ = ["FUZZ", "mutated"]

# 40 examples a test in `make test`; C2C_FUZZ_EXAMPLES=2000 runs more
FUZZ = hsettings(
    max_examples=int(os.environ.get("C2C_FUZZ_EXAMPLES", "40")),
    deadline=datetime.timedelta(seconds=20),  # a stall fails the example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


@st.composite
def mutated(
    draw: st.DrawFn, data: bytes, schema_ids: Sequence[int], *, unchanged: int = 1
) -> bytes:
    """``data`` as it came (``unchanged`` chances in ``unchanged`` + 7), or damaged in one of
    the seven ways a message can be; ``schema_ids``: the ids another frame may name."""
    how = draw(st.integers(0, unchanged + 6)) - unchanged
    if how < 0 or not data:
        return data
    if how == 0:  # bytes flipped
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            out[draw(st.integers(0, len(out) - 1))] ^= draw(st.integers(1, 255))
        return bytes(out)
    if how == 1:  # cut short
        return data[: draw(st.integers(0, len(data) - 1))]
    if how == 2:  # too long
        return data + draw(st.binary(min_size=1, max_size=12))
    if how == 3:  # framed with another schema's id, an unknown one, or not framed
        schema_id = draw(st.one_of(st.sampled_from(schema_ids), st.integers(0, 2**32 - 1)))
        return frame(schema_id, data[5:]) if draw(st.booleans()) else data[5:]
    if how == 4:  # bytes inserted
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
    if how == 5:  # bytes removed
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + data[at + draw(st.integers(1, 6)) :]
    return bytes([draw(st.integers(1, 255))]) + data[1:]  # the magic byte changed
