"""The model contract and the registry: code asks a model what it can do, so a new kind needs no other change."""

from dataclasses import asdict, dataclass

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.evaluation.evaluate import evaluate_models
from pyro_sr.evaluation.likelihood import likelihood_rows
from pyro_sr.models import MODEL_KINDS, DeterministicSR, ModelKind, ProbabilisticSR, VariationalSR, register
from pyro_sr.models.blocks import bicubic_upscale
from pyro_sr.models.likelihoods import per_channel_normal
from pyro_sr.models.registry import build_model, kind_of, model_kind
from pyro_sr.models.traces import paired_traces, sample_sites
from pyro_sr.predict.upscalers import upscaler_for
from pyro_sr.weights.checkpoint import save_checkpoint
from pyro_sr.weights.loading import load_model


@pytest.mark.parametrize("kind", ["cnn", "vae", "hvae"])
def test_every_kind_declares_its_capabilities(kind):
    model = build_model(kind, {})
    assert kind_of(model) == kind
    if kind == "cnn":
        assert isinstance(model, DeterministicSR) and not isinstance(model, ProbabilisticSR)
        return
    assert isinstance(model, VariationalSR) and not isinstance(model, DeterministicSR)
    lr = torch.rand(2, 3, 8, 8)
    guide_trace, model_trace = paired_traces(model, lr, torch.rand(2, 3, 32, 32))
    assert tuple(name for name, _ in sample_sites(guide_trace)) == model.latent_sites
    assert model_trace.nodes["sr"]["type"] == "sample" and model_trace.nodes["hr"]["is_observed"]


def test_legacy_and_unknown_kind_names():
    assert model_kind("cvae").name == "vae"
    with pytest.raises(ValueError, match="unknown model kind 'flow'"):
        model_kind("flow")


@dataclass(frozen=True)
class NoiseConfig:
    scale: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


class BicubicPlusNoise(nn.Module):
    """A probabilistic super-resolver without a guide: bicubic plus a latent per-pixel offset."""

    latent_sites = ("offset",)

    def __init__(self, config: NoiseConfig = NoiseConfig()):
        super().__init__()
        self.config = config
        self.log_scale = nn.Parameter(torch.full((3,), -3.0))

    def model(self, lr, hr=None, beta=1.0, temperature=1.0):
        with pyro.plate("images", lr.shape[0]):
            loc = bicubic_upscale(lr, self.config.scale)
            offset = pyro.sample("offset", dist.Normal(torch.zeros_like(loc), 0.01 * temperature).to_event(3))
            sr = pyro.deterministic("sr", loc + offset, event_dim=3)
            return pyro.sample("hr", per_channel_normal(sr, self.log_scale), obs=hr)


@pytest.fixture
def noise_kind(tmp_path):
    register(ModelKind("noise", NoiseConfig, BicubicPlusNoise))
    model = BicubicPlusNoise()
    path = tmp_path / "noise.pt"
    save_checkpoint({"kind": "noise", "model_config": model.config.to_dict(), "model": model.state_dict()}, path)
    yield path
    MODEL_KINDS.pop("noise")


def test_a_new_kind_is_sampled_scored_and_refused_where_it_lacks_a_guide(noise_kind):
    loaded = load_model(noise_kind)
    assert loaded.probabilistic and loaded.kind == "noise"
    pairs = PairedImages.from_hr(load_bundled_sample()[:8], Degradation())
    samples = upscaler_for(loaded, num_samples=3)(pairs.lr)
    assert samples.shape == (3, 8, 3, 32, 32) and not torch.equal(samples[0], samples[1])
    rows = evaluate_models([noise_kind], pairs, Degradation(), num_samples=3)
    assert [r["model"] for r in rows[2:]] == ["noise: mean of 3", "noise: one sample"]
    with pytest.raises(ValueError, match="has no guide"):
        likelihood_rows([str(noise_kind)], pairs, pairs, Degradation(), 2)
