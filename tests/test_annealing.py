"""KL weight schedules."""

import pytest

from pyro_sr.training.annealing import KLSchedule


def test_kl_schedules():
    assert KLSchedule("constant", 0.5).factor(100) == 0.5
    linear = KLSchedule("linear", 1.0, warmup_steps=10)
    assert [linear.factor(s) for s in (0, 5, 10, 50)] == [0.0, 0.5, 1.0, 1.0]
    cyclical = KLSchedule("cyclical", 1.0, cycle_steps=10, ramp=0.5)
    assert [cyclical.factor(s) for s in (0, 2, 5, 9, 10, 12)] == [0.0, 0.4, 1.0, 1.0, 0.0, 0.4]
    with pytest.raises(ValueError):
        KLSchedule("linear", 1.0)
