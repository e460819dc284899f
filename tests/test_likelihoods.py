"""Pixel likelihoods: one distribution over whole images, event_dim 3."""

import math

import pytest
import torch

from pyro_sr.models.likelihoods import (
    LIKELIHOODS,
    DiscretizedLogisticMixture,
    build_likelihood,
    per_channel_normal,
)


def test_per_channel_normal_is_one_log_density_per_image():
    loc = torch.rand(2, 3, 4, 5)
    log_scale = torch.tensor([-1.0, -2.0, -3.0])
    fn = per_channel_normal(loc, log_scale)
    assert fn.batch_shape == (2,) and fn.event_shape == (3, 4, 5)
    x = torch.rand(2, 3, 4, 5)
    sigma = log_scale.exp().view(1, 3, 1, 1)
    slow = (-0.5 * ((x - loc) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
    assert torch.allclose(fn.log_prob(x), slow, atol=1e-4)
    draws = per_channel_normal(torch.zeros(1, 3, 64, 64), log_scale).sample((20,))
    assert torch.allclose(draws.std(dim=(0, 1, 3, 4)), log_scale.exp(), rtol=0.05)


def _mixture(pixels: int = 1, dtype=torch.float64, seed: int = 0) -> DiscretizedLogisticMixture:
    """A 2-component mixture with coupling, one image of 1 x ``pixels``; one component near the top edge."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, 2, 1, pixels, generator=g, dtype=dtype)
    locs = torch.rand(1, 2, 3, 1, pixels, generator=g, dtype=dtype)
    locs[:, 1, 0] = 0.995  # R of the second component sits on the edge bin
    log_scales = torch.log(torch.tensor([0.02, 0.08], dtype=dtype)).view(1, 2, 1, 1, 1).expand(1, 2, 3, 1, pixels)
    coeffs = torch.rand(1, 2, 3, 1, pixels, generator=g, dtype=dtype) * 2 - 1
    return DiscretizedLogisticMixture(logits, locs, log_scales, coeffs)


def _joint_pmf(fn: DiscretizedLogisticMixture) -> torch.Tensor:
    """P(R, G, B) of a one-pixel mixture over all 256^3 levels, (256, 256, 256), in chunks of 16 R levels."""
    levels = torch.arange(256, dtype=fn.locs.dtype) / 255
    g, b = torch.meshgrid(levels, levels, indexing="ij")
    parts = []
    for r0 in range(0, 256, 16):
        r = levels[r0 : r0 + 16].view(-1, 1, 1).expand(-1, 256, 256)
        x = torch.stack([r, g.expand_as(r), b.expand_as(r)], -1).reshape(-1, 1, 3, 1, 1)
        parts.append(fn.log_prob(x).exp().view(-1, 256, 256))
    return torch.cat(parts)


def test_the_logistic_mixture_pmf_sums_to_one_over_the_256_levels_and_sampling_matches_its_moments():
    fn = _mixture()
    pmf = _joint_pmf(fn)
    assert abs(float(pmf.sum()) - 1.0) < 1e-9
    levels = torch.arange(256, dtype=torch.float64) / 255
    marginals = [pmf.sum((1, 2)), pmf.sum((0, 2)), pmf.sum((0, 1))]
    means = torch.stack([(m * levels).sum() for m in marginals])
    stds = torch.stack([((m * levels**2).sum() - mu**2).sqrt() for m, mu in zip(marginals, means, strict=True)])
    torch.manual_seed(0)
    draws = fn.sample((40000,)).view(-1, 3)
    assert ((draws * 255 - (draws * 255).round()).abs() < 1e-9).all()  # on the 8-bit levels
    assert torch.allclose(draws.mean(0), means, atol=4 * float(stds.max()) / 200)
    assert torch.allclose(draws.std(0), stds, rtol=0.03)
    rg = (pmf.sum(2) * levels.view(-1, 1) * levels.view(1, -1)).sum() - means[0] * means[1]
    assert abs(float(((draws[:, 0] - draws[:, 0].mean()) * (draws[:, 1] - draws[:, 1].mean())).mean() - rg)) < 1e-3


def _logistic_cdf(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def test_the_logistic_mixture_log_prob_agrees_with_a_slow_reference():
    fn = _mixture(pixels=4, seed=1)
    torch.manual_seed(1)
    x = fn.sample()
    x[0, 0, 0, 0], x[0, 1, 0, 1], x[0, 2, 0, 2] = 0.0, 1.0, 0.0  # the edge bins
    slow = 0.0
    for p in range(4):
        mass = 0.0
        weights = torch.softmax(fn.logits[0, :, 0, p], 0)
        for k in range(2):
            r, g, b = (float(v) for v in x[0, :, 0, p])
            alpha, beta, gamma = (float(c) for c in fn.coeffs[0, k, :, 0, p])
            locs = fn.locs[0, k, :, 0, p]
            centres = [float(locs[0]), float(locs[1]) + alpha * r, float(locs[2]) + beta * r + gamma * g]
            component = float(weights[k])
            for value, centre, log_s in zip((r, g, b), centres, fn.log_scales[0, k, :, 0, p], strict=True):
                s = math.exp(float(log_s))
                upper = 1.0 if value >= 1 else _logistic_cdf((value - centre + 0.5 / 255) / s)
                lower = 0.0 if value <= 0 else _logistic_cdf((value - centre - 0.5 / 255) / s)
                component *= upper - lower
            mass += component
        slow += math.log(mass)
    assert abs(float(fn.log_prob(x)) - slow) < 1e-6


def test_the_logistic_mixture_log_prob_and_its_gradient_stay_finite_far_out():
    """Locations far from the value and scales far beyond either end: what a bad step can produce, and where an
    earlier version's gradients became NaN (a -inf in torch.where's untaken branch) or froze (clamped scales)."""
    fn = _mixture(dtype=torch.float32)
    x = torch.tensor([0.0, 1.0, 0.5]).view(1, 3, 1, 1)
    for shift, log_scale in ((1e6, 0.0), (0.0, 80.0), (3e4, -20.0), (0.5, 40.0)):
        locs = (fn.locs + shift).requires_grad_(True)
        log_scales = torch.full_like(fn.log_scales, log_scale).requires_grad_(True)
        log_prob = DiscretizedLogisticMixture(fn.logits, locs, log_scales, fn.coeffs).log_prob(x)
        log_prob.sum().backward()
        assert torch.isfinite(log_prob).all()
        assert torch.isfinite(locs.grad).all() and torch.isfinite(log_scales.grad).all()
        assert (log_scales.grad != 0).any()  # no scale is stuck where a clamp would hold it
    wide = DiscretizedLogisticMixture(fn.logits, fn.locs, torch.full_like(fn.log_scales, 30.0), fn.coeffs)
    # flat: each edge level about half the mass, the middle one 1/255 of the density 1/(4s) at the centre
    assert float(wide.log_prob(x)) == pytest.approx(2 * math.log(0.5) - 30.0 - math.log(4 * 255), abs=0.05)


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_every_head_gives_one_log_density_per_image_of_any_size(name):
    torch.manual_seed(0)
    head = build_likelihood(name, channels=5, mixtures=3)
    for size in ((4, 6), (9, 3)):
        loc, features = torch.rand(2, 3, *size), torch.randn(2, 5, *size)
        fn = head(loc, features)
        assert fn.batch_shape == (2,) and fn.event_shape == (3, *size)
        x = fn.sample()
        assert x.shape == (2, 3, *size) and fn.log_prob(x).shape == (2,)
        assert fn.mean.shape == loc.shape
        cold = head.tempered(fn, 0.0).sample()
        assert cold.shape == x.shape and torch.isfinite(cold).all()
    assert head.discrete == (name == "dmol")


def test_old_checkpoints_load_their_per_channel_scale_into_the_head():
    from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig

    old = ConditionalVAE(CVAEConfig(channels=8, blocks=1)).state_dict()
    scale = old.pop("likelihood.log_scale")
    old["log_hr_scale"] = scale + 1.0
    vae = ConditionalVAE(CVAEConfig(channels=8, blocks=1))
    vae.load_state_dict(old)
    torch.testing.assert_close(vae.likelihood.log_scale, scale + 1.0)
