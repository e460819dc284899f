"""Exact tiled prediction: a tile's margin is its model's receptive radius, and a VAE's tiles share one whole-image
draw of the latent noise, so a tiled output or sample equals a whole-image pass to float tolerance."""

import pyro
import pytest
import torch
from helpers import perturbed

from pyro_sr.models.cnn import CNNConfig, build_cnn
from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig
from pyro_sr.predict.noise import NOISE_BLOCK, LatentNoise
from pyro_sr.predict.sampling import Sampling, sample_super_resolutions
from pyro_sr.predict.tiling import super_resolve
from pyro_sr.predict.upscalers import NoiseFieldSampler

SMALL_CNN = CNNConfig(channels=8, blocks=3)


def _cnn(config=SMALL_CNN):
    torch.manual_seed(0)
    return perturbed(build_cnn(config).eval())


def _hvae(likelihood="normal", output_blocks=0, upsample="shuffle"):
    pyro.set_rng_seed(0)
    config = HVAEConfig(
        channels=8,
        min_channels=4,
        lr_blocks=1,
        latent_channels=2,
        likelihood=likelihood,
        mixtures=2,
        output_blocks=output_blocks,
        upsample=upsample,
    )
    return perturbed(HierarchicalVAE.refining(_cnn(), config).eval())


def _probed_radius(upscale, scale: int, size: int = 41) -> int:
    """The farthest LR pixel (Chebyshev distance) from the centre pixel on which the centre's output depends."""
    lr = torch.rand(1, 3, size, size, requires_grad=True)
    c = size // 2
    upscale(lr)[..., c * scale : (c + 1) * scale, c * scale : (c + 1) * scale].sum().backward()
    rows, cols = torch.nonzero(lr.grad.abs().sum((0, 1)), as_tuple=True)
    return int(torch.maximum((rows - c).abs(), (cols - c).abs()).max())


@pytest.mark.parametrize("config", [SMALL_CNN, CNNConfig(arch="seed"), CNNConfig(channels=4, blocks=0, scale=2)])
def test_a_cnns_receptive_radius_bounds_what_its_output_depends_on(config):
    cnn = _cnn(config)
    assert 0 < _probed_radius(cnn, config.scale) <= cnn.receptive_radius


# 16 output blocks reach 24 LR pixels, past the 23 that the same VAE without them is bounded by
@pytest.mark.parametrize("output_blocks,upsample", [(0, "shuffle"), (16, "shuffle"), (0, "bilinear")])
def test_an_hvaes_receptive_radius_bounds_what_a_sample_depends_on(output_blocks, upsample):
    vae = _hvae(output_blocks=output_blocks, upsample=upsample)
    noise = LatentNoise(vae.latent_grids, 1, 1, seed=3).crop((0, 61), (0, 61))

    def sample(lr):
        with torch.enable_grad():
            from pyro_sr.predict.sampling import _with_noise

            model = _with_noise(vae.model, noise, dict.fromkeys(vae.latent_sites, 1.0))
            return pyro.poutine.trace(model).get_trace(lr).nodes["sr"]["value"]

    assert 0 < _probed_radius(sample, 4, size=61) <= vae.receptive_radius


def test_noise_crops_are_the_same_numbers_whichever_window_asks():
    noise = LatentNoise({"a": (2, 1), "b": (3, 4)}, num_samples=2, images=3, seed=7)
    whole = noise.crop((0, 20), (0, 45))
    part = noise.crop((5, 17), (9, 40))
    assert whole["b"].shape == (6, 3, 80, 180) and part["a"].shape == (6, 2, 12, 31)
    torch.testing.assert_close(part["a"], whole["a"][..., 5:17, 9:40], rtol=0, atol=0)
    torch.testing.assert_close(part["b"], whole["b"][..., 20:68, 36:160], rtol=0, atol=0)
    assert 80 > NOISE_BLOCK  # the crops above cross block edges
    other = LatentNoise({"a": (2, 1), "b": (3, 4)}, num_samples=2, images=3, seed=8).crop((0, 20), (0, 45))
    assert not torch.equal(other["a"], whole["a"])
    samples = whole["b"].view(2, 3, -1)
    assert abs(float(samples.mean())) < 0.01 and abs(float(samples.std()) - 1) < 0.01


@pytest.mark.parametrize(
    "likelihood,output_blocks,upsample",
    [("normal", 0, "shuffle"), ("dmol", 0, "shuffle"), ("dmol", 2, "shuffle"), ("dmol", 2, "bilinear")],
)
def test_a_tiled_sample_equals_the_whole_image_pass_with_the_same_noise(likelihood, output_blocks, upsample):
    vae = _hvae(likelihood, output_blocks, upsample)
    lr = torch.rand(2, 3, 22, 27)  # 4 x 5 tiles of 6 LR pixels
    sampler = NoiseFieldSampler(vae, num_samples=2, sampling=Sampling((1.0, 0.5, 0.0, 0.8)), seed=11)
    whole = sampler(lr).clamp(0, 1)
    tiled = super_resolve(sampler, lr, 4, tile=6, margin=vae.receptive_radius)
    assert tiled.shape == (2, 2, 3, 88, 108)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)
    assert (whole[0] - whole[1]).abs().max() > 0.01  # two different samples
    too_small = super_resolve(sampler, lr, 4, tile=6, margin=2)  # what an own-margin tile misses
    assert (too_small - whole).abs().max() > 1e-3


def test_the_same_noise_gives_the_same_sample_and_temperature_zero_needs_none():
    vae = _hvae()
    lr = torch.rand(1, 3, 5, 6)
    a, b = (NoiseFieldSampler(vae, 3, Sampling(1.0), seed=5)(lr) for _ in range(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    cold = sample_super_resolutions(vae, lr, 2, temperature=0.0)
    torch.testing.assert_close(NoiseFieldSampler(vae, 2, Sampling(0.0), seed=5)(lr), cold)
    with pytest.raises(ValueError, match="one temperature per latent group"):
        NoiseFieldSampler(vae, 1, Sampling((1.0, 1.0)), seed=5)(lr)


def test_a_cvae_tiles_exactly_and_a_linear_prior_has_no_latent_grid():
    pyro.set_rng_seed(0)
    vae = ConditionalVAE(CVAEConfig(channels=8, blocks=1, latent_channels=2)).eval()
    lr = torch.rand(1, 3, 14, 9)
    sampler = NoiseFieldSampler(vae, 2, Sampling(1.0), seed=1)
    tiled = super_resolve(sampler, lr, 4, tile=4, margin=vae.receptive_radius)
    torch.testing.assert_close(tiled, sampler(lr).clamp(0, 1), rtol=0, atol=1e-5)
    linear = ConditionalVAE(CVAEConfig(prior="linear", channels=8, blocks=1))
    assert linear.latent_grids is None and linear.receptive_radius is None


def test_the_bundled_cnns_radius_bounds_what_its_output_depends_on():
    from pyro_sr.weights.loading import load_model

    cnn = load_model("cnn").model
    probed = _probed_radius(cnn, 4, size=91)
    assert cnn.receptive_radius == 37 and 16 < probed <= 37  # the old fixed margin of 16 was too small
