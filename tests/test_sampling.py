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


def test_temperature_zero_puts_every_latent_at_its_prior_mean():
    from pyro_sr.models.cnn import CNNConfig, build_cnn
    from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig

    torch.manual_seed(0)
    hvae = HierarchicalVAE.refining(
        build_cnn(CNNConfig(channels=8, blocks=1)), HVAEConfig(channels=16, min_channels=8, lr_blocks=1)
    )
    lr = torch.rand(2, 3, 8, 8)
    for vae in (seeded_vae(), hvae):
        zero = sample_super_resolutions(vae, lr, 3, temperature=0.0)
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # one path: the prior means
        assert not torch.equal(zero[0], sample_super_resolutions(vae, lr, 1, temperature=0.5)[0])
        with pytest.raises(ValueError, match=">= 0"):
            sample_super_resolutions(vae, lr, 2, temperature=-0.1)


def test_the_hvae_base_runs_once_per_image_and_the_samples_are_those_of_its_model():
    from pyro.infer import Predictive

    from pyro_sr.models.cnn import CNNConfig, build_cnn
    from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig

    torch.manual_seed(0)
    vae = HierarchicalVAE.refining(
        build_cnn(CNNConfig(channels=8, blocks=1)), HVAEConfig(channels=16, min_channels=8, lr_blocks=1)
    )
    seen = []
    vae.base_cnn.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    lr = torch.rand(3, 3, 8, 8)
    pyro.set_rng_seed(1)
    samples = sample_super_resolutions(vae, lr, 4)
    assert seen == [3]  # not 4 x 3
    pyro.set_rng_seed(1)
    # chunks that split the copies of an image draw in another order; near the prior mean they must agree
    cold = [sample_super_resolutions(vae, lr, 4, temperature=1e-6, chunk=chunk) for chunk in (5, 512)]
    torch.testing.assert_close(cold[0], cold[1], atol=1e-5, rtol=1e-4)
    pyro.set_rng_seed(1)
    direct = Predictive(vae.model, num_samples=1, return_sites=("sr",))(lr.repeat(4, 1, 1, 1))["sr"][0]
    torch.testing.assert_close(samples, direct.clamp(0, 1).view(4, 3, 3, 32, 32), atol=1e-5, rtol=1e-4)
