import numpy as np
import pyro
import pytest
import torch
from helpers import perturbed
from PIL import Image
from pyro import poutine
from pyro.infer import Predictive, Trace_ELBO, TraceMeanField_ELBO

from pyro_sr.cli import main
from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.evaluation.likelihood import (
    bits_per_dim,
    dequantize,
    gaussian_bits_per_dim,
    iwae_log_likelihood,
    vae_bits_per_dim,
)
from pyro_sr.models.blocks import bicubic_upscale
from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig, load_grown
from pyro_sr.predict.consistency import project_to_lr
from pyro_sr.predict.sampling import sample_super_resolutions
from pyro_sr.training.svi import SVIConfig, elbo_terms, fit_vae
from pyro_sr.weights.checkpoint import load_checkpoint

TINY = HVAEConfig(channels=16, min_channels=8, lr_blocks=1, latent_channels=2)


def seeded_hvae(config=TINY, seed=0):
    pyro.set_rng_seed(seed)
    return HierarchicalVAE(config)


@pytest.fixture(scope="module")
def pairs():
    data = PairedImages.from_hr(load_bundled_sample(), Degradation())
    return data.subset(torch.arange(48)), data.subset(torch.arange(48, 64))


def traces(vae, lr, hr, beta=1.0):
    guide_trace = poutine.trace(vae.guide).get_trace(lr, hr, beta)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(lr, hr, beta)
    return model_trace, guide_trace


@pytest.mark.parametrize("scale,size", [(2, (5, 3)), (4, (2, 3)), (8, (3, 2))])
def test_sites_shapes_and_event_dims_at_every_scale_and_size(scale, size):
    config = HVAEConfig(scale=scale, channels=16, min_channels=8, lr_blocks=1, latent_channels=2)
    vae = HierarchicalVAE(config)
    lr, hr = torch.rand(4, 3, *size), torch.rand(4, 3, size[0] * scale, size[1] * scale)
    model_trace, guide_trace = traces(vae, lr, hr, beta=0.5)
    latents = list(vae.latent_sites)
    assert len(latents) == config.num_groups >= 3
    guide_sites = [n for n, s in guide_trace.nodes.items() if s["type"] == "sample" and n != "images"]
    model_sites = [n for n, s in model_trace.nodes.items() if s["type"] == "sample" and n != "images"]
    assert guide_sites == latents and model_sites == [*latents, "sr", "hr"]
    # groups sit at increasing resolution: 2 groups on the LR grid, then one per 2x step
    sides = [(size[0] * 2**r, size[1] * 2**r) for r, n in enumerate(config.groups_per_scale) for _ in range(n)]
    for name, side in zip(latents, sides, strict=True):
        for trace in (model_trace, guide_trace):
            site = trace.nodes[name]
            assert site["fn"].batch_shape == (4,) and site["fn"].event_shape == (2, *side)
            assert site["scale"] == 0.5 and site["cond_indep_stack"][0].name == "images"
    hr_site = model_trace.nodes["hr"]
    assert hr_site["is_observed"] and hr_site["fn"].event_shape == hr.shape[1:] and hr_site["scale"] == 1.0


def test_bad_shapes_and_group_weights_are_rejected():
    vae = HierarchicalVAE(TINY)
    with pytest.raises(ValueError, match="HR batch of shape"):
        vae.guide(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="one KL weight per latent group"):
        vae.model(torch.rand(2, 3, 4, 4), None, (1.0, 1.0))
    with pytest.raises(ValueError, match="one entry per resolution"):
        HVAEConfig(scale=4, groups_per_scale=(1, 1))
    assert HVAEConfig(scale=8).groups_per_scale == (2, 1, 1, 1)


def test_per_group_weight_scales_exactly_that_groups_kl(pairs):
    """Trace_ELBO's loss with weights (1, .., w_l, .., 1) differs from the unweighted one by exactly
    (1 - w_l) times group l's log q - log p, on the same draws."""
    vae = seeded_hvae()
    lr, hr = pairs[0].lr[:4], pairs[0].hr[:4].float() / 255
    pyro.set_rng_seed(1)
    model_trace, guide_trace = traces(vae, lr, hr)
    group_terms = {}
    for name in list(vae.latent_sites):
        log_q = guide_trace.nodes[name]["fn"].log_prob(guide_trace.nodes[name]["value"]).sum()
        log_p = model_trace.nodes[name]["fn"].log_prob(guide_trace.nodes[name]["value"]).sum()
        group_terms[name] = float((log_q - log_p).detach())
    pyro.set_rng_seed(1)
    unweighted = Trace_ELBO().loss(vae.model, vae.guide, lr, hr, 1.0)
    for index, name in enumerate(list(vae.latent_sites)):
        weights = [1.0] * len(list(vae.latent_sites))
        weights[index] = 0.25
        pyro.set_rng_seed(1)
        weighted = Trace_ELBO().loss(vae.model, vae.guide, lr, hr, weights)
        assert weighted == pytest.approx(unweighted - 0.75 * group_terms[name], rel=1e-5, abs=1e-2)


def test_meanfield_elbo_is_the_analytic_per_group_kl(pairs):
    """TraceMeanField_ELBO on the top-down guide equals -(log-lik - sum of per-group analytic KLs given the
    sampled parents) exactly, and agrees with Trace_ELBO on average."""
    vae = seeded_hvae()
    lr, hr = pairs[0].lr[:8], pairs[0].hr[:8].float() / 255
    pyro.set_rng_seed(5)
    loss = TraceMeanField_ELBO().loss(vae.model, vae.guide, lr, hr, 1.0)
    pyro.set_rng_seed(5)
    terms = elbo_terms(vae, lr, hr)
    assert {f"kl_{n}" for n in list(vae.latent_sites)} <= set(terms)
    assert -loss == pytest.approx(float(terms["elbo"].sum()), rel=1e-5)
    per_group = sum(terms[f"kl_{n}"] for n in list(vae.latent_sites))
    assert torch.allclose(per_group, terms["kl"])
    pyro.set_rng_seed(6)
    mc = [Trace_ELBO().loss(vae.model, vae.guide, lr, hr, 1.0) for _ in range(200)]
    pyro.set_rng_seed(6)
    analytic = [TraceMeanField_ELBO().loss(vae.model, vae.guide, lr, hr, 1.0) for _ in range(200)]
    spread = torch.tensor(mc).std() / 200**0.5
    assert abs(sum(mc) / 200 - sum(analytic) / 200) < 4 * spread


def test_svi_lowers_the_loss_logs_group_kls_and_samples(tmp_path, pairs):
    train, val = pairs
    vae = seeded_hvae()
    config = SVIConfig(epochs=3, batch_size=16, lr=3e-3, lr_warmup_steps=0)  # a few steps: at full lr
    history = fit_vae(vae, config, train, val, tmp_path, progress=False)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(f"val_kl_{n}" in history[-1] for n in list(vae.latent_sites))
    samples = sample_super_resolutions(vae, val.lr[:3], num_samples=5)
    assert samples.shape == (5, 3, 3, 32, 32)
    assert (samples[0] - samples[1]).abs().max() > 0
    cold = sample_super_resolutions(vae, val.lr[:3], num_samples=5, temperature=0.1)
    assert cold.std(0).mean() < samples.std(0).mean()


def test_predictive_on_a_larger_image_than_trained():
    vae = seeded_hvae()
    out = Predictive(vae.model, num_samples=2, return_sites=("sr", "z1"))(torch.rand(1, 3, 12, 20))
    assert out["sr"].shape == (2, 1, 3, 48, 80) and out["z1"].shape == (2, 1, 2, 12, 20)


def test_iwae_bound_is_above_the_elbo_and_grows_with_k(pairs):
    vae = seeded_hvae()
    lr, hr = pairs[1].lr, dequantize(pairs[1].hr, torch.Generator().manual_seed(0))
    bounds = {}
    for k in (1, 4, 32):
        pyro.set_rng_seed(0)
        bounds[k] = float(iwae_log_likelihood(vae, lr, hr, k).mean())
    pyro.set_rng_seed(0)
    elbo = float(elbo_terms(vae, lr, hr)["elbo"].mean())
    assert bounds[1] == pytest.approx(elbo, rel=0.05)
    assert bounds[1] < bounds[4] < bounds[32]


def test_bits_per_dim_of_models_and_the_gaussian_baseline(pairs):
    fit, test = pairs
    assert float(bits_per_dim(torch.tensor(0.0), 10)) == 8.0  # a density of 1 on [0,1)^D: 8 bits per 8-bit pixel
    vae = seeded_hvae()
    result = vae_bits_per_dim(vae, test, num_samples=2, batch_size=7)
    assert result.images == len(test) and result.standard_error > 0
    baseline, sigma = gaussian_bits_per_dim(lambda lr: bicubic_upscale(lr, 4), fit, test)
    assert 0.02 < sigma < 0.3 and 3 < baseline.bits_per_dim < 8


def test_cli_fits_an_hvae_and_uses_it_everywhere(tmp_path, capsys, fake_cifar_batches):
    run = tmp_path / "run"
    fit = ["fit", "hvae", "--data", "sample", "--epochs", "1", "--channels", "16"]
    assert main([*fit, "--lr-blocks", "1", "--latent-channels", "2", "--out", str(run), "--quiet"]) == 0
    assert (
        main(
            [
                "sample",
                "--model",
                str(run),
                "--data",
                "sample",
                "--limit",
                "2",
                "--num-samples",
                "3",
                "--lr-consistent",
                "--out",
                str(tmp_path / "samples"),
            ]
        )
        == 0
    )
    assert (tmp_path / "samples" / "sample_test_00001_sample2.png").is_file()
    Image.fromarray(np.full((6, 10, 3), 128, dtype=np.uint8)).save(tmp_path / "flat.png")
    assert (
        main(
            [
                "upscale",
                str(tmp_path / "flat.png"),
                "--model",
                str(run),
                "--num-samples",
                "2",
                "--lr-consistent",
                "--out",
                str(tmp_path / "up"),
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "up" / "flat_sample1.png") as image:
        assert image.size == (40, 24)
    per_group = ["sample", "--model", str(run), "--data", "sample", "--limit", "1", "--num-samples", "2"]
    assert main([*per_group, "--temperature", "1", "0.5", "0", "1", "--out", str(tmp_path / "groups")]) == 0
    assert (tmp_path / "groups" / "sample_test_00000_sample1.png").is_file()
    capsys.readouterr()
    assert main([*per_group, "--temperature", "1", "0.5", "--out", str(tmp_path / "bad")]) != 0
    assert "one temperature per latent group (4), got 2" in capsys.readouterr().err
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(run),
                "cnn",
                "--data",
                "sample",
                "--limit",
                "8",
                "--num-samples",
                "2",
                "--lr-consistent",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "run + projection: mean of 2" in table and "cnn + projection" in table
    likelihood = [
        "likelihood",
        "--model",
        str(run),
        "cnn",
        "--data-dir",
        str(fake_cifar_batches),
        "--val-size",
        "20",
        "--limit",
        "10",
        "--num-samples",
        "3",
    ]
    assert main(likelihood) == 0
    table = capsys.readouterr().out
    assert "IWAE, K=3" in table and "ELBO" in table and "Normal around the prediction" in table
    rows = [[cell.strip() for cell in line.split("|")] for line in table.splitlines()]
    header = next(r for r in rows if "bits/dim" in r)
    bits = {r[2]: float(r[header.index("bits/dim")]) for r in rows if len(r) > 4 and r[2] in ("ELBO", "IWAE, K=3")}
    assert all(r[3] == "dequantised" for r in rows if len(r) > 4 and r[1] == "run")
    assert bits["ELBO"] >= bits["IWAE, K=3"] > 3  # both from the same draws: the IWAE bound is the tighter
    assert main(likelihood) == 0
    assert capsys.readouterr().out == table  # seeded: the same draws every run


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_sample_project_and_score_on_cuda(tmp_path, pairs):
    train, val = pairs
    vae = seeded_hvae()
    history = fit_vae(
        vae,
        SVIConfig(epochs=1, batch_size=16, elbo="meanfield"),
        train,
        val,
        tmp_path,
        device="cuda",
        progress=False,
    )
    assert history[0]["val_elbo"] == history[0]["val_elbo"]
    lr = val.lr[:2].cuda()
    samples = sample_super_resolutions(vae, lr, 3)
    assert samples.device.type == "cuda" and samples.shape == (3, 2, 3, 32, 32)
    projected = project_to_lr(samples, lr, Degradation())
    assert (Degradation()(projected.flatten(0, 1)) - lr.repeat(3, 1, 1, 1)).abs().max() < 1e-5
    assert iwae_log_likelihood(vae, lr, val.hr[:2].cuda().float() / 255, 4).device.type == "cuda"


def test_group_kl_weights_reach_each_group_and_are_checked(tmp_path, pairs, monkeypatch):
    seen = []
    real_model = HierarchicalVAE.model

    def recording_model(self, lr, hr=None, beta=1.0, temperature=1.0):
        seen.append(beta)
        return real_model(self, lr, hr, beta, temperature)

    monkeypatch.setattr(HierarchicalVAE, "model", recording_model)
    config = SVIConfig(epochs=1, batch_size=24, group_kl_weights=(1, 1, 0.5, 2))
    fit_vae(seeded_hvae(), config, pairs[0], None, tmp_path / "run", progress=False)
    assert seen[0] == (1.0, 1.0, 0.5, 2.0)
    assert config.kl_weight(0) == (1.0, 1.0, 0.5, 2.0) and SVIConfig().kl_weight(0) == 1.0
    with pytest.raises(ValueError, match="one KL weight per latent group"):
        fit_vae(
            seeded_hvae(),
            SVIConfig(epochs=1, group_kl_weights=(1, 2)),
            pairs[0],
            None,
            tmp_path / "bad",
            progress=False,
        )
    assert not (tmp_path / "bad").exists()


def test_a_cnn_base_is_refined_frozen_and_survives_the_checkpoint(tmp_path, pairs, recwarn):
    from pyro_sr.models.cnn import CNNConfig, build_cnn
    from pyro_sr.weights.loading import load_model

    train, val = pairs
    torch.manual_seed(0)
    cnn = build_cnn(CNNConfig(channels=8, blocks=1))
    pyro.set_rng_seed(0)
    vae = HierarchicalVAE.refining(cnn, TINY)
    assert vae.config.base == cnn.config.to_dict()
    base_before = {k: v.clone() for k, v in vae.base_cnn.state_dict().items()}
    lr = val.lr[:2]
    with torch.no_grad():  # with a zero output layer the mean is exactly the CNN's prediction
        vae.output.weight.zero_()
        vae.output.bias.zero_()
    model_trace, guide_trace = traces(vae, lr, val.hr[:2].float() / 255)
    torch.testing.assert_close(model_trace.nodes["sr"]["value"], cnn(lr).detach())
    assert [n for n in guide_trace.nodes if n.startswith("z")] == list(vae.latent_sites)
    fit_vae(vae, SVIConfig(epochs=1, batch_size=16), train, val, tmp_path, progress=False)
    assert not any("param store" in str(w.message) for w in recwarn)  # frozen on purpose, not warned about
    assert all(torch.equal(base_before[k], v) for k, v in vae.base_cnn.state_dict().items())
    assert not any("base_cnn" in name for name in pyro.get_param_store().keys())
    loaded = load_model(tmp_path)
    torch.testing.assert_close(loaded.model.base(lr), cnn(lr).detach())
    with pytest.raises(ValueError, match="base CNN upscales x2"):
        HVAEConfig(base=CNNConfig(scale=2).to_dict())


def test_cli_base_must_be_a_cnn_of_the_same_degradation(tmp_path, capsys):
    fit = ["fit", "hvae", "--data", "sample", "--epochs", "1", "--out", str(tmp_path / "run")]
    assert main([*fit, "--base", "vae"]) == 2
    assert main([*fit, "--base", "cnn", "--sigma", "1.5"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "must be a trained cnn" in errors[0] and "another degradation" in errors[1]
    assert not (tmp_path / "run").exists()


def test_the_base_cnn_runs_once_per_svi_step_and_never_gives_a_stale_output(pairs):
    from pyro_sr.models.cnn import CNNConfig, build_cnn

    _, val = pairs
    torch.manual_seed(0)
    vae = HierarchicalVAE.refining(build_cnn(CNNConfig(channels=8, blocks=1)), TINY)
    calls = []
    vae.base_cnn.register_forward_hook(lambda *_: calls.append(1))
    lr, hr = val.lr[:4].clone(), val.hr[:4].float() / 255
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), TraceMeanField_ELBO())
    svi.step(lr, hr)
    assert len(calls) == 1  # guide and model share one CNN forward
    before = vae.base(lr)
    lr.mul_(0.5)  # changed in place: recomputed
    torch.testing.assert_close(vae.base(lr), vae.base_cnn(lr).detach())
    assert not torch.equal(vae.base(lr), before) and len(calls) == 3
    state = {k: v.clone() for k, v in vae.state_dict().items()}
    state["base_cnn.tail.bias"] += 1.0  # new weights: recomputed
    vae.load_state_dict(state)
    torch.testing.assert_close(vae.base(lr), vae.base_cnn(lr).detach())


@pytest.mark.parametrize("elbo", [Trace_ELBO, TraceMeanField_ELBO])
@pytest.mark.parametrize("groups", [None, (1, 0, 2)])
def test_the_model_reusing_the_guides_walk_gives_the_same_loss_and_gradients(pairs, elbo, groups, monkeypatch):
    lr, hr = next(pairs[0].batches(8))
    vae = seeded_hvae(HVAEConfig(**{**TINY.to_dict(), "groups_per_scale": groups}))
    results = []
    for reuse in (True, False):
        if not reuse:  # the model computes the whole top-down path itself
            monkeypatch.setattr(HierarchicalVAE, "_reusable_walk", lambda self, lr: None)
        pyro.set_rng_seed(1)
        vae.zero_grad()
        loss = elbo().differentiable_loss(vae.model, vae.guide, lr, hr, 0.5)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in vae.named_parameters() if p.grad is not None}))
    (reused_loss, reused), (own_loss, own) = results
    torch.testing.assert_close(reused_loss, own_loss)
    assert reused.keys() == own.keys()
    for name in own:
        torch.testing.assert_close(reused[name], own[name], rtol=1e-4, atol=1e-5 * own[name].abs().max())


def test_a_walk_is_not_reused_for_other_latents_or_changed_weights(pairs):
    lr, hr = next(pairs[0].batches(8))
    vae = seeded_hvae()
    with torch.no_grad():
        vae.guide(lr, hr)
        walk = vae._walk
        assert vae._reusable_walk(lr) is walk and vae._walk is None  # taken by one model run
        vae.guide(lr, hr)
        next(vae.parameters()).add_(0.0)  # an optimizer step bumps the weights' versions
        assert vae._reusable_walk(lr) is None
        vae.guide(lr, hr)
        assert vae._reusable_walk(lr.clone()) is None
        prior_samples = Predictive(vae.model, num_samples=2, return_sites=("sr",))(lr)["sr"]
    assert prior_samples.shape == (2, *hr.shape) and not torch.equal(prior_samples[0], prior_samples[1])


def latent_noise(vae, lr, num_samples, seed=6):
    """Standard-normal noise for each latent site of ``vae``, drawn site after site, as sample_super_resolutions
    takes it: VAEs whose first sites agree get the same noise there."""
    generator = torch.Generator().manual_seed(seed)
    h, w = lr.shape[-2:]
    return {
        name: torch.randn(num_samples * len(lr), channels, h * factor, w * factor, generator=generator)
        for name, (channels, factor) in vae.latent_grids.items()
    }


def assert_same_function(first, second, lr, hr):
    """``first`` and ``second`` give the same ELBO terms and the same samples from the same random numbers;
    latent groups that only ``second`` has (drawn after ``first``'s) must have no KL. The samples take their
    latent noise as an argument: Predictive runs the model once more to find its sites, so with other sites the
    random stream it leaves for the samples differs."""

    def samples(vae):
        return sample_super_resolutions(vae, lr, 2, noise=latent_noise(vae, lr, 2))

    for seed, run in ((5, lambda vae: elbo_terms(vae, lr, hr)), (6, samples)):
        outputs = []
        for vae in (first, second):
            pyro.set_rng_seed(seed)
            outputs.append(run(vae))
        if isinstance(outputs[0], dict):
            for key in outputs[1].keys() - outputs[0].keys():
                assert key.startswith("kl_z") and torch.equal(outputs[1][key], torch.zeros(len(lr))), key
            outputs[1] = {key: outputs[1][key] for key in outputs[0]}
        torch.testing.assert_close(outputs[1], outputs[0])


def test_an_output_stage_grows_a_trained_hvae_into_the_same_function_and_then_learns(tmp_path, pairs):
    train, val = pairs
    lr, hr = val.lr[:4], val.hr[:4].float() / 255
    trained = perturbed(seeded_hvae(HVAEConfig(**{**TINY.to_dict(), "output_blocks": 1})))
    grown = seeded_hvae(HVAEConfig(**{**TINY.to_dict(), "output_blocks": 3}), seed=1)
    load_grown(grown, trained.state_dict())
    assert_same_function(trained, grown, lr, hr)
    model_trace, _ = traces(grown, lr, hr)
    assert model_trace.nodes["hr"]["fn"].event_shape == hr.shape[1:]
    before = {k: v.clone() for k, v in grown.output_stage.state_dict().items()}
    fit_vae(grown, SVIConfig(epochs=1, batch_size=16, lr_warmup_steps=0), train, val, tmp_path, progress=False)
    moved = [k for k, v in grown.output_stage.state_dict().items() if not torch.equal(v, before[k])]
    assert "blocks.2.conv2.weight" in moved and "read_base.weight" in moved  # the new parts learn


@pytest.mark.parametrize("output_blocks", [0, 1])
def test_new_channels_widen_a_trained_hvae_into_the_same_function_and_then_learn(tmp_path, pairs, output_blocks):
    """Widths 16, 8, 8 become 32, 16, 8: the LR grid and the first 2x step widen, the HR grid keeps its width."""
    train, val = pairs
    lr, hr = val.lr[:4], val.hr[:4].float() / 255
    narrow = HVAEConfig(**{**TINY.to_dict(), "output_blocks": output_blocks, "likelihood": "dmol", "mixtures": 2})
    trained = perturbed(seeded_hvae(narrow))
    wide = seeded_hvae(HVAEConfig(**{**narrow.to_dict(), "channels": 32}), seed=1)
    load_grown(wide, trained.state_dict())
    assert_same_function(trained, wide, lr, hr)
    inject = wide.groups[0][0].inject.weight
    assert inject.shape[0] == 32 and inject[16:].abs().min() > 0  # new channels are written to, randomly
    before = wide.state_dict()["groups.0.0.prior_head.weight"].clone()
    assert torch.equal(before[:, 16:], torch.zeros_like(before[:, 16:]))  # and read by nothing trained, at first
    fit_vae(wide, SVIConfig(epochs=1, batch_size=16, lr_warmup_steps=0), train, val, tmp_path, progress=False)
    assert wide.groups[0][0].prior_head.weight[:, 16:].abs().max() > 0  # until they learn


def test_new_latent_groups_grow_a_trained_hvae_into_the_same_function_and_then_learn(tmp_path, pairs):
    """One group per resolution becomes 1, 2, 1: a second group on the middle grid and a first on the HR grid."""
    train, val = pairs
    lr, hr = val.lr[:4], val.hr[:4].float() / 255
    trained_config = HVAEConfig(**{**TINY.to_dict(), "groups_per_scale": (1, 1, 0), "output_blocks": 1})
    trained = perturbed(seeded_hvae(trained_config))
    grown = seeded_hvae(HVAEConfig(**{**trained_config.to_dict(), "groups_per_scale": (1, 2, 1)}), seed=1)
    load_grown(grown, trained.state_dict())
    assert grown.latent_sites == ("z1", "z2", "z3", "z4")
    assert_same_function(trained, grown, lr, hr)
    new_groups = {"z3": grown.groups[1][1], "z4": grown.groups[2][0]}
    before = {name: {k: v.clone() for k, v in g.state_dict().items()} for name, g in new_groups.items()}
    fit_vae(grown, SVIConfig(epochs=2, batch_size=16, lr_warmup_steps=0), train, val, tmp_path, progress=False)
    for name, group in new_groups.items():
        moved = {k for k, v in group.state_dict().items() if not torch.equal(v, before[name][k])}
        assert {"inject.weight", "posterior_head.2.weight", "blocks.0.conv2.weight"} <= moved, name
    assert float(elbo_terms(grown, lr, hr)["kl_z4"].mean()) > 0  # the new HR-grid latent is used


def test_growing_refuses_weights_of_another_architecture():
    wider = seeded_hvae(HVAEConfig(**{**TINY.to_dict(), "channels": 32}))
    deeper = seeded_hvae(HVAEConfig(**{**TINY.to_dict(), "output_blocks": 2}))
    with pytest.raises(ValueError, match="do not fit this HVAE's architecture"):
        load_grown(seeded_hvae(), wider.state_dict())
    with pytest.raises(ValueError, match="do not fit this HVAE's architecture"):
        load_grown(seeded_hvae(HVAEConfig(**{**TINY.to_dict(), "latent_channels": 3})), seeded_hvae().state_dict())
    with pytest.raises(ValueError, match=r"unexpected output_stage\.blocks\.1"):
        load_grown(seeded_hvae(HVAEConfig(**{**TINY.to_dict(), "output_blocks": 1})), deeper.state_dict())
    with pytest.raises(ValueError, match="output_blocks must be >= 0"):
        HVAEConfig(output_blocks=-1)


def test_a_shuffle_trained_hvae_converts_to_bilinear_steps_by_its_mean_sub_pixel_kernel(pairs):
    """PixelShuffle reads channel 4c + k as channel c at sub-pixel k: with the four sub-kernels of each channel tied,
    a shuffle step is the coarse conv's output repeated over each 2x2 block, and its conv is what the converted
    (bilinear resize, then conv) step starts from; everything else loads unchanged."""
    trained = perturbed(seeded_hvae())
    conv = trained.upsample[0][0]
    with torch.no_grad():
        for tensor in (conv.weight, conv.bias):
            tensor.copy_(
                tensor.unflatten(0, (-1, 4)).mean(1, keepdim=True).expand_as(tensor.unflatten(0, (-1, 4))).flatten(0, 1)
            )
    state = torch.randn(2, conv.in_channels, 3, 5)
    blocks = trained.upsample[0](state)
    torch.testing.assert_close(blocks, blocks[..., ::2, ::2].repeat_interleave(2, -2).repeat_interleave(2, -1))
    resized = seeded_hvae(HVAEConfig(**{**TINY.to_dict(), "upsample": "bilinear"}), seed=1)
    load_grown(resized, trained.state_dict())
    for r, step in enumerate(resized.upsample):
        assert isinstance(step[0], torch.nn.Upsample)
        torch.testing.assert_close(step[1].weight, trained.upsample[r][0].weight.unflatten(0, (-1, 4)).mean(1))
    kept = {k: v for k, v in trained.state_dict().items() if not k.startswith("upsample.")}
    assert all(torch.equal(resized.state_dict()[k], v) for k, v in kept.items())
    lr, hr = pairs[1].lr[:2], pairs[1].hr[:2].float() / 255
    model_trace, guide_trace = traces(resized, lr, hr)
    assert model_trace.nodes["hr"]["fn"].event_shape == hr.shape[1:]
    assert torch.isfinite(model_trace.log_prob_sum() - guide_trace.log_prob_sum())
    with pytest.raises(ValueError, match="unknown upsample 'nearest'"):
        HVAEConfig(upsample="nearest")


def test_cli_init_grows_a_trained_hvae_and_refuses_what_it_cannot(tmp_path, capsys):
    run, grown = tmp_path / "run", tmp_path / "grown"
    fit = ["fit", "hvae", "--data", "sample", "--epochs", "1", "--quiet"]
    assert main([*fit, "--channels", "16", "--lr-blocks", "1", "--latent-channels", "2", "--out", str(run)]) == 0
    grow = ["--init", str(run), "--output-blocks", "2", "--channels", "24", "--upsample", "bilinear"]
    grow += ["--groups-per-scale", "2", "1", "2", "--kl", "constant"]
    assert main([*fit, *grow, "--out", str(grown)]) == 0
    checkpoint = load_checkpoint(grown / "checkpoint.pt")
    config = checkpoint["model_config"]
    assert config["output_blocks"] == 2 and config["upsample"] == "bilinear" and config["channels"] == 24
    assert tuple(config["groups_per_scale"]) == (2, 1, 2)
    assert checkpoint["meta"]["init"]["model"] == str(run)
    diagnose = ["diagnose", "--model", str(grown), "--data", "sample", "--images", "4", "--iw-samples", "1"]
    assert main([*diagnose, "--ppc-samples", "2", "--out", str(tmp_path / "report")]) == 0
    summary = (tmp_path / "report" / "summary.md").read_text()  # the grown run's epoch follows the one it grew from
    assert "| 2 | 2 | 1.000 |" in summary and "Epochs 1-1 are those of the run(s) this model was started" in summary
    capsys.readouterr()
    for extra, message in [
        (["--init", str(run), "--lr-blocks", "2"], "--groups-per-scale and --upsample may change it (--lr-blocks)"),
        (["--init", str(grown), "--groups-per-scale", "2", "1", "1"], "would remove latent groups of"),
        (["--init", str(grown), "--groups-per-scale", "2", "2"], "groups_per_scale needs one entry per resolution"),
        (["--init", str(grown), "--channels", "16"], "--channels 16 would shrink"),
        (["--init", str(grown), "--upsample", "shuffle"], "--upsample shuffle cannot convert"),
        (["--init", str(run), "--base", "cnn"], "(--base)"),
        (["--init", str(grown), "--output-blocks", "1"], "--output-blocks 1 would shrink"),
        (["--init", "cnn"], "--init must be a trained hvae, but cnn is a cnn"),
    ]:
        assert main([*fit, *extra, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "bad").exists()
