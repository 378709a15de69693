"""The pace of a recovery: how many deliveries each step requeues, and how often."""

from __future__ import annotations

import pytest

from hookline.delivery.recovery import pace


@pytest.mark.parametrize(
    ("rate", "batch", "interval_s"),
    [
        (10.0, 1, 0.1),
        (5.0, 1, 0.2),
        (0.5, 1, 2.0),
        (20.0, 1, 0.05),
        (100.0, 5, 0.05),
        (30.0, 2, 1 / 15),
    ],
)
def test_pace_never_exceeds_the_rate(rate: float, batch: int, interval_s: float) -> None:
    got_batch, got_interval_s = pace(rate)
    assert got_batch == batch
    assert got_interval_s == pytest.approx(interval_s)
    assert got_batch / got_interval_s <= rate + 1e-9
