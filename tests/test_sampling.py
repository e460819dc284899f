"""Drawing super-resolutions with Predictive."""

import pyro
import pytest
import torch

from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
from pyro_sr.predict.sampling import sample_super_resolutions, summarize_samples


def seeded_vae():
    pyro.set_rng_seed(0)
    return ConditionalVAE(CVAEConfig(channels=8, blocks=1))


def test_sampling_is_chunked_and_temperature_controls_diversity():
    vae = seeded_vae()
    lr = torch.rand(3, 3, 8, 8)
    pyro.set_rng_seed(1)
    whole = sample_super_resolutions(vae, lr, 4, chunk=1000)
    pyro.set_rng_seed(1)
    chunked = sample_super_resolutions(vae, lr, 4, chunk=5)
    assert whole.shape == chunked.shape == (4, 3, 3, 32, 32)
    assert 0 <= float(whole.min()) and float(whole.max()) <= 1
    cold = summarize_samples(sample_super_resolutions(vae, lr, 6, temperature=0.01))[1].mean()
    warm = summarize_samples(sample_super_resolutions(vae, lr, 6, temperature=1.0))[1].mean()
    assert cold < 0.1 * warm
    with pytest.raises(ValueError, match="samples"):
        sample_super_resolutions(vae, lr, 0)
