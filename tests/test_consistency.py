"""Exact LR consistency by least-norm projection."""

import pytest
import torch

from pyro_sr.data.degradation import Degradation
from pyro_sr.predict.consistency import project_to_lr


@pytest.mark.parametrize("degradation", [Degradation(), Degradation("bicubic"), Degradation(scale=2)])
def test_projection_makes_the_degradation_equal_the_lr_input(degradation):
    gen = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 3, 16, 24, generator=gen)
    lr = degradation(hr)
    samples = torch.rand(4, 3, 3, 16, 24, generator=gen)
    projected = project_to_lr(samples, lr, degradation)
    assert projected.shape == samples.shape
    assert (degradation(projected.flatten(0, 1)) - lr.repeat(4, 1, 1, 1)).abs().max() < 1e-5
    # least-norm: an image that is already consistent does not move, and the correction is orthogonal to it
    assert torch.allclose(project_to_lr(hr, lr, degradation), hr, atol=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        project_to_lr(samples[..., :8], lr, degradation)
