import arviz as az
import numpy as np
import pyro
import pytest
import torch

from pyro_sr.cli import main
from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.diagnostics.fit import active_units, variational_fit
from pyro_sr.diagnostics.report import DiagnoseConfig, diagnose
from pyro_sr.evaluation.importance import (
    effective_sample_size,
    format_pareto_k,
    largest_weight_share,
    pareto_k,
    weight_diagnostics,
)
from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig
from pyro_sr.training.svi import SVIConfig, fit_vae

TINY = HVAEConfig(channels=16, min_channels=8, lr_blocks=1, latent_channels=2)


@pytest.fixture(scope="module")
def pairs():
    return PairedImages.from_hr(load_bundled_sample(), Degradation())


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, pairs):
    run = tmp_path_factory.mktemp("run")
    pyro.set_rng_seed(0)
    vae = HierarchicalVAE(TINY)
    fit_vae(
        vae,
        SVIConfig(epochs=2, batch_size=16),
        pairs.subset(torch.arange(48)),
        pairs.subset(torch.arange(48, 64)),
        run,
        progress=False,
    )
    return run, vae


def test_pareto_k_is_computed_per_image():
    """Two images with very different weight tails get very different k̂; a batch-joint fit would not."""
    rng = np.random.default_rng(0)
    light = rng.normal(size=200)  # log-normal weights with a small sigma: a light tail
    heavy = 1 / rng.uniform(size=200) ** 1.2  # weights ~ Pareto(shape 1/1.2): k near 1.2
    khat = pareto_k(np.stack([light, np.log(heavy)]))
    assert khat.shape == (2,)
    assert khat[0] < 0.5 < 0.9 < khat[1]
    swapped = pareto_k(np.stack([np.log(heavy), light]))
    assert swapped == pytest.approx(khat[::-1])
    assert np.isnan(pareto_k(np.zeros((3, 5)))).all()  # too few draws for a tail fit


def test_weight_diagnostics_say_how_many_draws_count_and_cap_k_hat():
    equal = torch.zeros(3, 64)
    one = torch.full((3, 64), -50.0)
    one[:, 7] = 0.0  # one weight holds all the mass
    assert effective_sample_size(equal) == pytest.approx(torch.full((3,), 64.0))
    assert effective_sample_size(one) == pytest.approx(torch.ones(3), abs=1e-6)
    assert largest_weight_share(one) == pytest.approx(torch.ones(3), abs=1e-6)
    rng = np.random.default_rng(0)
    heavy = torch.from_numpy(np.log(1 / rng.uniform(size=(4, 200)) ** 1.5))  # k near 1.5: "very bad"
    summary = weight_diagnostics(heavy)
    assert summary["share_k_above_1"] > 0.5 and summary["pareto_k_median"] <= 1.0 + 1e-6
    assert format_pareto_k(1.4) == "> 1" and format_pareto_k(0.53) == "0.53" and format_pareto_k(float("nan")) == "-"
    assert np.isnan(weight_diagnostics(equal[:, :5])["pareto_k_median"])  # too few draws


def test_nested_bounds_grow_with_k(trained_run, pairs):
    _, vae = trained_run
    fit = variational_fit(vae, pairs.subset(torch.arange(12)), ks=(1, 8, 32), batch_size=5)
    assert fit.log_weights.shape == (12, 32) and fit.pareto_k.shape == (12,)
    assert fit.bounds[1].mean() < fit.bounds[8].mean() < fit.bounds[32].mean()
    assert np.allclose(fit.bounds[1], fit.log_weights[:, 0])  # K = 1 is the ELBO of the first draw


def _posteriors_away_from_priors() -> HierarchicalVAE:
    """A tiny hvae whose every group's posterior differs from its prior (heads start at zero: posterior = prior)."""
    pyro.set_rng_seed(0)
    vae = HierarchicalVAE(TINY)
    with torch.no_grad():
        for group in [g for scale in vae.groups for g in scale]:
            for p in group.posterior_head.parameters():
                p.normal_(0, 0.5)
    return vae


def test_collapsed_group_is_detected(pairs):
    """Zeroing a group's posterior head makes q equal the prior: KL 0 and no active units for that group."""
    vae = _posteriors_away_from_priors()
    with torch.no_grad():
        for p in vae.groups[1][0].posterior_head.parameters():
            p.zero_()
    units = active_units(vae, pairs.subset(torch.arange(32)))
    assert units.collapsed() == ["z3"]
    assert units.active["z3"] == 0 and units.informative["z3"] == 0 and units.kl["z3"] == pytest.approx(0.0, abs=1e-6)
    assert units.active["z1"] > 0 and units.units["z4"] == 2 * 32 * 32
    assert units.used_channels("z3") == 0 and units.used_channels("z1") == TINY.latent_channels


def test_a_collapsed_channel_inside_a_used_group_is_counted(pairs):
    """Zeroing one latent channel's rows of a group's posterior head (its shift and its scale) makes that channel's
    posterior its prior: its KL is 0 while the group's other channel carries the group's whole KL."""
    vae = _posteriors_away_from_priors()
    with torch.no_grad():
        last = vae.groups[0][0].posterior_head[-1]
        for row in (1, 1 + TINY.latent_channels):  # channel 1's shift and raw scale
            last.weight[row].zero_()
            last.bias[row].zero_()
    units = active_units(vae, pairs.subset(torch.arange(32)))
    name = next(iter(units.units))
    kl_0, kl_1 = units.channel_kl[name]
    assert kl_1 == pytest.approx(0.0, abs=1e-6) and kl_0 > 1.0
    assert sum(units.channel_kl[name]) == pytest.approx(units.kl[name], rel=1e-6)
    assert units.collapsed() == [] and set(units.channel_kl) == set(units.units)
    assert units.used_channels(name) == 1


def test_diagnose_writes_a_readable_report_and_netcdf(trained_run, pairs, tmp_path):
    run, _ = trained_run
    summary = diagnose(
        run,
        pairs,
        tmp_path / "report",
        config=DiagnoseConfig(images=12, ks=(1, 4, 24), ppc_images=2, ppc_samples=8, calibration_samples=6),
    )
    text = summary.read_text()
    for expected in (
        "## Training",
        "| z4 |",
        "| channels with 1% of the group's KL | KL per channel (nats/image) |",
        "Pareto k̂ per image",
        "Effective sample size",
        "## Calibration",
        "`sr` at temperature 1",
        "`sample` and `upscale` draw as the weights say (latent temperature 1, the likelihood's mean)",
    ):
        assert expected in text
    for figure in ("training_curves.png", "group_kl.png", "variational_fit.png", "calibration.png", "predictive.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 1000
    idata = az.from_netcdf(tmp_path / "report" / "diagnostics.nc")
    assert idata.importance_weights.log_weight.shape == (12, 24)
    assert idata.posterior_predictive.hr.shape == (1, 8, 2, 3, 32, 32)
    assert idata.observed_data.hr.shape == (2, 3, 32, 32)
    assert idata.sample_stats.elbo.shape == (1, 6)  # 2 epochs x 3 steps
    assert idata.calibration.samples_rank_share.shape == (7,) and idata.calibration.attrs["images"] == 12
    assert float(idata.calibration.predictive_rank_share.sum()) == pytest.approx(1.0)
    assert np.allclose(idata.importance_weights.iwae_k1.values, idata.importance_weights.log_weight.values[:, 0])


def test_cli_diagnose_and_its_errors(trained_run, tmp_path, capsys):
    run, _ = trained_run
    args = [
        "diagnose",
        "--model",
        str(run),
        "--data",
        "sample",
        "--images",
        "6",
        "--iw-samples",
        "1",
        "2",
        "--ppc-samples",
        "3",
    ]
    assert main([*args, "--out", str(tmp_path / "r")]) == 0
    assert "Pareto k̂ was not computed" in (tmp_path / "r" / "summary.md").read_text()
    assert (
        main(
            [
                "diagnose",
                "--model",
                "vae",
                "--data",
                "sample",
                "--images",
                "4",
                "--iw-samples",
                "1",
                "--ppc-samples",
                "2",
                "--out",
                str(tmp_path / "bundled"),
            ]
        )
        == 0
    )
    assert "| 5 | 3520 |" in (tmp_path / "bundled" / "summary.md").read_text()  # the bundled VAE's 5 epochs
    capsys.readouterr()
    assert main(["diagnose", "--model", str(tmp_path / "missing"), "--data", "sample"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert main([*args[:-2], "--ppc-samples", "1", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
