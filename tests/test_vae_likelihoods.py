"""The pixel likelihood heads inside the VAEs: sites, training, checkpoints, exact bits/dim and what a sample is."""

import math

import pyro
import pytest
import torch
from pyro import poutine

from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.evaluation.evaluate import score_samples
from pyro_sr.evaluation.likelihood import bits_per_dim, likelihood_rows, vae_bits_per_dim, vae_log_weights
from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig
from pyro_sr.models.likelihoods import DiscretizedLogisticMixture
from pyro_sr.predict.sampling import posterior_mean, sample_super_resolutions
from pyro_sr.training.svi import SVIConfig, fit_vae
from pyro_sr.weights.loading import load_model


@pytest.fixture(scope="module")
def pairs():
    data = PairedImages.from_hr(load_bundled_sample(), Degradation())
    return data.subset(torch.arange(48)), data.subset(torch.arange(48, 64))


def tiny(kind: str, likelihood: str):
    pyro.set_rng_seed(0)
    if kind == "vae":
        return ConditionalVAE(CVAEConfig(channels=8, blocks=1, likelihood=likelihood, mixtures=3))
    return HierarchicalVAE(
        HVAEConfig(channels=16, min_channels=8, lr_blocks=1, latent_channels=2, likelihood=likelihood)
    )


@pytest.mark.parametrize("kind", ["vae", "hvae"])
@pytest.mark.parametrize("likelihood", ["normal-pixel", "dmol"])
def test_the_hr_site_is_the_heads_distribution_over_whole_images(kind, likelihood, pairs):
    vae = tiny(kind, likelihood)
    lr, hr = pairs[1].lr[:4], pairs[1].hr[:4].float() / 255
    guide_trace = poutine.trace(vae.guide).get_trace(lr, hr)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(lr, hr)
    site = model_trace.nodes["hr"]
    assert site["is_observed"] and site["fn"].batch_shape == (4,) and site["fn"].event_shape == (3, 32, 32)
    assert isinstance(site["fn"], DiscretizedLogisticMixture) == (likelihood == "dmol") == vae.discrete_likelihood
    torch.testing.assert_close(model_trace.nodes["sr"]["value"], site["fn"].mean)
    assert set(vae.latent_sites) <= set(guide_trace.nodes) and torch.isfinite(site["fn"].log_prob(hr)).all()


@pytest.mark.parametrize("kind", ["vae", "hvae"])
def test_a_vae_with_the_logistic_mixture_fits_saves_and_reloads(kind, pairs, tmp_path):
    train, val = pairs
    vae = tiny(kind, "dmol")
    config = SVIConfig(epochs=3, batch_size=16, lr_warmup_steps=0, ema_decay=0.5)
    history = fit_vae(vae, config, train, val, tmp_path, progress=False)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_raw_elbo"] != history[-1]["val_elbo"]  # the raw weights are validated beside the EMA
    loaded = load_model(tmp_path)
    assert loaded.model.config.likelihood == "dmol" and loaded.model.config == vae.config
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    moved = [k for k, v in checkpoint["model"].items() if not torch.equal(v, checkpoint["train_model"][k])]
    assert moved and checkpoint["ema_averaged"] == 9  # the average is what is saved as the model
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, checkpoint["model"][key])


def test_bits_per_dim_of_a_discrete_likelihood_is_exact_on_the_8_bit_values(pairs):
    val = pairs[1]
    vae = tiny("hvae", "dmol").eval()
    log_weights = vae_log_weights(vae, val, num_samples=1)
    pyro.set_rng_seed(1)
    again = vae_log_weights(vae, val, num_samples=1, seed=123)  # no dequantisation: the seed of the noise is moot
    pyro.set_rng_seed(1)
    torch.testing.assert_close(vae_log_weights(vae, val, num_samples=1, seed=0), again)
    dims = val.hr[0].numel()
    exact = bits_per_dim(log_weights[:, 0], dims, discrete=True)
    assert torch.allclose(exact, -log_weights[:, 0] / (dims * math.log(2)))
    assert vae_bits_per_dim(vae, val, 1).bits_per_dim == pytest.approx(float(exact.mean()), rel=0.05)
    assert bits_per_dim(log_weights[:, 0], dims)[0] == pytest.approx(float(exact[0]) + 8)  # a density's +8


def test_likelihood_rows_say_what_each_bound_was_scored_on(pairs, tmp_path):
    train, val = pairs
    for name, likelihood in (("dmol", "dmol"), ("normal", "normal")):
        fit_vae(
            tiny("vae", likelihood), SVIConfig(epochs=1, batch_size=16), train, None, tmp_path / name, progress=False
        )
    rows = likelihood_rows([str(tmp_path / "dmol"), str(tmp_path / "normal")], val, val, Degradation(), 2)
    scored = {(r["model"], r["method"]): r["scored_on"] for r in rows}
    assert scored[("bicubic", rows[0]["method"])] == "dequantised"
    assert scored[("dmol", "ELBO")] == scored[("dmol", "IWAE, K=2")] == "exact 8-bit"
    assert scored[("normal", "ELBO")] == "dequantised"


def test_a_sample_is_the_location_unless_a_pixel_temperature_asks_for_a_draw(pairs):
    vae = tiny("hvae", "dmol").eval()
    lr = pairs[1].lr[:3]
    pyro.set_rng_seed(0)
    location = sample_super_resolutions(vae, lr, 2, temperature=0.0)
    torch.testing.assert_close(location[0], location[1])  # no noise anywhere
    pyro.set_rng_seed(0)
    draws = sample_super_resolutions(vae, lr, 2, temperature=0.0, pixel_temperature=1.0)
    assert ((draws * 255 - (draws * 255).round()).abs() < 1e-4).all()  # on the 8-bit levels
    assert (draws[0] - draws[1]).abs().max() > 0.01
    pyro.set_rng_seed(0)
    cold = sample_super_resolutions(vae, lr, 2, temperature=0.0, pixel_temperature=0.0)
    assert (cold - location).abs().mean() < (draws - location).abs().mean()
    with pytest.raises(ValueError, match="pixel temperature"):
        sample_super_resolutions(vae, lr, 1, pixel_temperature=-1.0)


def test_the_posterior_mean_integrates_the_pixel_noise_out_of_the_mean_of_samples(pairs):
    vae = tiny("hvae", "dmol").eval()
    lr = pairs[1].lr[:3]
    pyro.set_rng_seed(0)
    chunks = [sample_super_resolutions(vae, lr, k, temperature=0.7) for k in (3, 3, 1)]
    pyro.set_rng_seed(0)
    mean = posterior_mean(vae, lr, 7, temperature=0.7, draws_at_once=3)
    torch.testing.assert_close(mean, torch.cat(chunks).mean(0))  # the likelihood means of the same latent draws
    assert torch.equal(posterior_mean(vae, lr, 4, temperature=0.0), sample_super_resolutions(vae, lr, 1, 0.0)[0])
    with pytest.raises(ValueError, match="samples"):
        posterior_mean(vae, lr, 0)


def test_a_mean_row_from_latent_draws_says_so_and_beats_the_mean_of_noisy_samples(pairs):
    vae = tiny("hvae", "dmol").eval()
    pyro.set_rng_seed(0)
    noisy = score_samples(vae, pairs[1], Degradation(), 4, pixel_temperature=1.0)
    pyro.set_rng_seed(0)
    rao_blackwellised = score_samples(vae, pairs[1], Degradation(), 4, pixel_temperature=1.0, mean_samples=4)
    assert rao_blackwellised.of_mean["mean_samples"] == 4 and "mean_samples" not in noisy.of_mean
    assert rao_blackwellised.of_mean["mse"] < noisy.of_mean["mse"]  # an untrained dmol's pixel noise is wide
    assert rao_blackwellised.of_samples == noisy.of_samples  # the samples' row is untouched
    with pytest.raises(ValueError, match="latent draws"):
        score_samples(vae, pairs[1], Degradation(), 4, mean_samples=0)


def test_the_kept_mean_is_the_mean_the_mean_row_scored(pairs):
    vae = tiny("hvae", "dmol").eval()
    images = len(pairs[1])
    pyro.set_rng_seed(0)
    scores = score_samples(vae, pairs[1], Degradation(), 3, batch_size=10, keep=images, mean_samples=4)
    assert scores.kept.shape == (3, images, 3, 32, 32) and scores.kept_mean.shape == (images, 3, 32, 32)
    mse = float(((scores.kept_mean - pairs[1].hr / 255) ** 2).mean())
    assert mse == pytest.approx(scores.of_mean["mse"], rel=1e-5)  # across two batches, in order
    assert not torch.allclose(scores.kept_mean, scores.kept.mean(0))  # its own latent draws, not the samples'
