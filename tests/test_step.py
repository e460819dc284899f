"""The fast SVI step: the same objective as Pyro's, an optimiser that clips by the global norm and skips spikes,
bf16 autocast with fp32 densities, and the base prediction computed once per image."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO

from pyro_sr.common import TrainingError
from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig
from pyro_sr.models.traces import paired_traces, sample_sites
from pyro_sr.training import precision as precision_module
from pyro_sr.training.elbo import AnalyticKLELBO, make_elbo
from pyro_sr.training.precision import resolve_precision
from pyro_sr.training.step import LEVEL_SHIFT, MAX_SKIPPED_IN_A_ROW, MIN_HISTORY, ELBOStep
from pyro_sr.training.svi import SVIConfig, fit_vae, precompute_inputs, training_batches
from pyro_sr.weights.loading import load_model

CPU = torch.device("cpu")
TINY = CVAEConfig(channels=8, blocks=1)


@pytest.fixture(scope="module")
def pairs() -> PairedImages:
    return PairedImages.from_hr(load_bundled_sample(), Degradation())


def tiny_hvae() -> HierarchicalVAE:
    pyro.set_rng_seed(0)
    return HierarchicalVAE.refining(load_model("cnn", "cpu").model, HVAEConfig(channels=16, lr_blocks=1))


def params_of(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_the_analytic_kl_elbo_is_pyros_meanfield_elbo(pairs):
    lr, hr = next(pairs.batches(8))
    for vae in (tiny_hvae(), ConditionalVAE(TINY)):
        losses = []
        for elbo in (AnalyticKLELBO(), TraceMeanField_ELBO()):
            pyro.set_rng_seed(3)
            losses.append(elbo.loss(vae.model, vae.guide, lr, hr, 0.5))
        assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_the_analytic_kl_elbo_falls_back_on_log_densities_where_no_kl_is_known():
    data = torch.tensor([0.5, 1.5])

    def model():
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0).expand([2]).to_event(1), obs=data)

    def guide():
        pyro.sample("z", dist.StudentT(4.0, pyro.param("loc", torch.tensor(0.3)), 0.8))  # no KL to a Normal

    losses = []
    for elbo in (AnalyticKLELBO(), TraceMeanField_ELBO()):
        pyro.set_rng_seed(1)
        losses.append(elbo.loss(model, guide))
    assert math.isfinite(losses[0]) and losses[0] == pytest.approx(losses[1])


def test_the_step_reports_the_loss_it_optimises_and_moves_the_weights(pairs):
    vae = ConditionalVAE(TINY)
    lr, hr = next(pairs.batches(8))
    step = ELBOStep(vae, make_elbo("meanfield"), 1e-3, clip_norm=1e9, skip_factor=10.0, device=CPU)
    pyro.set_rng_seed(5)
    expected = make_elbo("meanfield").loss(vae.model, vae.guide, lr, hr, 0.5)
    before = params_of(vae)
    pyro.set_rng_seed(5)
    result = step(lr, hr, 0.5)
    assert result.skipped is None
    assert result.loss == pytest.approx(expected, rel=1e-5)  # nats, summed over the batch: not the scaled objective
    assert any(not torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=True))


def test_the_step_skips_the_param_store_which_plain_svi_still_fills(pairs):
    lr, hr = next(pairs.batches(4))
    for vae in (tiny_hvae(), ConditionalVAE(TINY)):
        pyro.clear_param_store()
        ELBOStep(vae, make_elbo("meanfield"), 1e-3, clip_norm=20.0, skip_factor=10.0, device=CPU)(lr, hr, 0.5)
        assert not list(pyro.get_param_store().keys())  # its optimiser holds the parameters itself
        svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), TraceMeanField_ELBO())
        svi.step(lr, hr, 0.5)
        trainable = {p for p in vae.parameters() if p.requires_grad}
        assert {p for _, p in pyro.get_param_store().named_parameters()} == trainable


def test_the_gradient_is_clipped_by_its_global_norm(pairs):
    vae = ConditionalVAE(TINY)
    lr, hr = next(pairs.batches(8))
    step = ELBOStep(vae, make_elbo("trace"), 1e-3, clip_norm=1e-3, skip_factor=10.0, device=CPU)
    result = step(lr, hr, 1.0)
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in vae.parameters()]))
    assert result.grad_norm > 1e-2  # the norm before clipping is reported
    assert clipped == pytest.approx(1e-3, rel=1e-3)


def test_a_non_finite_step_is_skipped_and_leaves_the_weights_alone(pairs):
    vae = ConditionalVAE(TINY)
    lr, hr = next(pairs.batches(8))
    step = ELBOStep(vae, make_elbo("meanfield"), 1e-3, clip_norm=1.0, skip_factor=10.0, device=CPU)
    before = params_of(vae)
    result = step(lr, hr * math.nan, 1.0)
    assert result.skipped == "nonfinite"
    assert all(torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=True))
    assert step(lr, hr, 1.0).skipped is None  # and the next good step is taken


def test_a_gradient_spike_is_skipped_after_the_running_level_is_known(pairs):
    vae = ConditionalVAE(TINY)
    lr, hr = next(pairs.batches(8))
    step = ELBOStep(vae, make_elbo("meanfield"), 1e-5, clip_norm=1e9, skip_factor=10.0, device=CPU)
    assert all(step(lr, hr, 1.0).skipped is None for _ in range(MIN_HISTORY))
    with torch.no_grad():
        vae.likelihood.log_scale.fill_(-9.0)  # a 400x sharper likelihood: the gradient explodes
    before = params_of(vae)
    result = step(lr, hr, 1.0)
    assert result.skipped == "grad_spike"
    assert all(torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=True))
    # the model stays where it is, so the "spike" repeats: after LEVEL_SHIFT of them it is the new level
    results = [step(lr, hr, 1.0) for _ in range(LEVEL_SHIFT)]
    assert [r.skipped for r in results] == ["grad_spike"] * (LEVEL_SHIFT - 1) + [None]
    assert [r.new_level for r in results] == [False] * (LEVEL_SHIFT - 1) + [True]
    assert not all(torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=True))
    assert all(step(lr, hr, 1.0).skipped is None for _ in range(MIN_HISTORY))  # learnt anew, from this level


def test_a_run_whose_every_step_is_skipped_stops_with_one_line_and_no_checkpoint(pairs, tmp_path):
    vae = ConditionalVAE(TINY)
    with torch.no_grad():
        vae.likelihood.log_scale.fill_(math.nan)
    with pytest.raises(TrainingError, match=f"the last {MAX_SKIPPED_IN_A_ROW} steps were all skipped") as err:
        fit_vae(vae, SVIConfig(epochs=1, batch_size=1), pairs, None, tmp_path, progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_skips_are_counted_in_the_epoch_log(pairs, tmp_path):
    history = fit_vae(ConditionalVAE(TINY), SVIConfig(epochs=1, batch_size=16), pairs, None, tmp_path, progress=False)
    assert history[-1]["skipped_steps"] == 0 and history[-1]["grad_norm_median"] > 0


def test_a_checkpoint_of_the_earlier_clippedadam_loop_is_refused_on_resume(pairs, tmp_path):
    fit_vae(ConditionalVAE(TINY), SVIConfig(epochs=1, batch_size=32), pairs, None, tmp_path, progress=False)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    checkpoint["optimizer"] = {"cvae$$$lr_encoder.0.weight": {"state": {}, "param_groups": [{"lr": 1e-3}]}}
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    with pytest.raises(TrainingError, match="earlier pyro-sr"):
        fit_vae(ConditionalVAE(TINY), SVIConfig(epochs=2, batch_size=32), pairs, None, tmp_path, resume=True)


def test_auto_precision_is_bf16_exactly_where_the_cpu_has_native_bf16(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda native=native: native)
        assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", CPU) == "fp32"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp16", CPU)


def test_a_batch_elbo_under_bf16_autocast_agrees_with_fp32(pairs):
    """The bundled HVAE on 32 images, the same latent draws: bf16 networks, fp32 densities. Tolerance 0.1% of the
    per-image ELBO's magnitude (measured: 0.3 nats of 6,676, 5e-5)."""
    vae = load_model("hvae", "cpu").model
    lr, hr = next(pairs.batches(32))
    elbos = []
    for enabled in (False, True):
        pyro.set_rng_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled), torch.no_grad():
            elbos.append(-AnalyticKLELBO().loss(vae.model, vae.guide, lr, hr) / len(lr))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # every site's value and density are fp32
        traces = paired_traces(vae, lr, hr)
    for trace in traces:
        for _, site in sample_sites(trace):
            assert site["value"].dtype == site["fn"].log_prob(site["value"]).dtype == torch.float32
    assert elbos[1] == pytest.approx(elbos[0], rel=1e-3)


def test_the_base_prediction_is_computed_once_per_image_and_matches_the_models_own(pairs):
    vae = tiny_hvae()
    table = precompute_inputs(vae, pairs, CPU)
    assert set(table) == {"base"} and table["base"].shape == pairs.hr.shape
    batches = training_batches(vae, pairs, table, 16, torch.Generator().manual_seed(0), CPU, (0, 1))
    lr, hr, inputs = next(batches)
    torch.testing.assert_close(inputs["base"], vae.base(lr))
    pyro.set_rng_seed(0)
    given = make_elbo("meanfield").loss(vae.model, vae.guide, lr, hr, 1.0, **inputs)
    pyro.set_rng_seed(0)
    assert make_elbo("meanfield").loss(vae.model, vae.guide, lr, hr, 1.0) == pytest.approx(given, rel=1e-6)
    assert precompute_inputs(ConditionalVAE(TINY), pairs, CPU) is None  # nothing to precompute
