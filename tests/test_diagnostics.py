import arviz as az
import numpy as np
import pyro
import pytest
import torch

from pyro_sr.cli import main
from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.diagnostics.fit import active_units, pareto_k, variational_fit
from pyro_sr.diagnostics.predictive import interval_coverage
from pyro_sr.diagnostics.report import DiagnoseConfig, diagnose
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


def test_nested_bounds_grow_with_k(trained_run, pairs):
    _, vae = trained_run
    fit = variational_fit(vae, pairs.subset(torch.arange(12)), ks=(1, 8, 32), batch_size=5)
    assert fit.log_weights.shape == (12, 32) and fit.pareto_k.shape == (12,)
    assert fit.bounds[1].mean() < fit.bounds[8].mean() < fit.bounds[32].mean()
    assert np.allclose(fit.bounds[1], fit.log_weights[:, 0])  # K = 1 is the ELBO of the first draw


def test_collapsed_group_is_detected(pairs):
    """Zeroing a group's posterior head makes q equal the prior: KL 0 and no active units for that group."""
    pyro.set_rng_seed(0)
    vae = HierarchicalVAE(TINY)
    with torch.no_grad():
        for group in [g for scale in vae.groups for g in scale]:
            for p in group.posterior_head.parameters():
                p.normal_(0, 0.5)
        for p in vae.groups[1][0].posterior_head.parameters():
            p.zero_()
    units = active_units(vae, pairs.subset(torch.arange(32)))
    assert units.collapsed() == ["z3"]
    assert units.active["z3"] == 0 and units.kl["z3"] == pytest.approx(0.0, abs=1e-6)
    assert units.active["z1"] > 0 and units.units["z4"] == 2 * 32 * 32


def test_interval_coverage_is_calibrated_for_draws_from_the_truths_distribution():
    gen = torch.Generator().manual_seed(0)
    draws = torch.randn(400, 2000, generator=gen)
    truth = torch.randn(2000, generator=gen)
    coverage = interval_coverage(draws, truth, (0.5, 0.9))
    assert coverage == pytest.approx([0.5, 0.9], abs=0.04)
    assert interval_coverage(draws * 0.1, truth, (0.5,))[0] < 0.1  # an overconfident model covers far less


def test_diagnose_writes_a_readable_report_and_netcdf(trained_run, pairs, tmp_path):
    run, _ = trained_run
    summary = diagnose(
        run, pairs, tmp_path / "report", config=DiagnoseConfig(images=12, ks=(1, 4, 24), ppc_images=2, ppc_samples=8)
    )
    text = summary.read_text()
    for expected in ("## Training", "| z4 |", "Pareto k̂ per image", "## Posterior predictive calibration"):
        assert expected in text
    for figure in ("training_curves.png", "group_kl.png", "variational_fit.png", "calibration.png", "predictive.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 1000
    idata = az.from_netcdf(tmp_path / "report" / "diagnostics.nc")
    assert idata.importance_weights.log_weight.shape == (12, 24)
    assert idata.posterior_predictive.hr.shape == (1, 8, 2, 3, 32, 32)
    assert idata.observed_data.hr.shape == (2, 3, 32, 32)
    assert idata.sample_stats.elbo.shape == (1, 6)  # 2 epochs x 3 steps
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
    assert "| 5 | 7035 |" in (tmp_path / "bundled" / "summary.md").read_text()  # the bundled VAE's 5 epochs
    capsys.readouterr()
    assert main(["diagnose", "--model", str(tmp_path / "missing"), "--data", "sample"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert main([*args[:-2], "--ppc-samples", "1", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
