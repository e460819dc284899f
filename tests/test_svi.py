"""The SVI loop's schedule: what a resumed run continues with, and free bits."""

import json

import pyro
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO

from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
from pyro_sr.models.traces import paired_traces
from pyro_sr.training.elbo import ELBOS, make_elbo
from pyro_sr.training.svi import SVIConfig, decayed_lr, fit_vae

TINY = CVAEConfig(channels=8, blocks=1)


def stored_lrs(run) -> list[float]:
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    return [group["lr"] for group in checkpoint["optimizer"]["adam"]["param_groups"]]


def test_a_run_resumed_with_more_epochs_ends_on_the_new_schedule(tmp_path):
    train = PairedImages.from_hr(load_bundled_sample()[:32], Degradation())  # 2 steps per epoch at batch 16
    short = SVIConfig(epochs=2, batch_size=16, lr_warmup_steps=0)
    fit_vae(ConditionalVAE(TINY), short, train, None, tmp_path, progress=False)
    assert stored_lrs(tmp_path) == pytest.approx([decayed_lr(short, 2, 3)])  # the lr of the last of 4 steps
    longer = SVIConfig(epochs=6, batch_size=16, lr_warmup_steps=0)
    history = fit_vae(ConditionalVAE(TINY), longer, train, None, tmp_path, resume=True, progress=False)
    # the last of 12 steps, as in a 6-epoch run from scratch, not a continuation of the 2-epoch decay
    assert stored_lrs(tmp_path) == pytest.approx([decayed_lr(longer, 2, 11)], rel=1e-6)
    assert decayed_lr(longer, 2, 12) == pytest.approx(longer.lr * longer.final_lr_fraction)
    assert history[-1]["lr"] == pytest.approx(longer.lr * longer.final_lr_fraction)
    assert history[1]["lr"] == pytest.approx(short.lr * short.final_lr_fraction)  # the first run's own record


def test_a_run_stopped_early_and_resumed_matches_one_straight_run(tmp_path):
    def seeded_vae() -> ConditionalVAE:
        pyro.set_rng_seed(0)  # the same initial weights for both runs
        return ConditionalVAE(TINY)

    train = PairedImages.from_hr(load_bundled_sample()[:32], Degradation())
    config = SVIConfig(epochs=3, batch_size=16, lr_warmup_steps=0)
    straight = fit_vae(seeded_vae(), config, train, None, tmp_path / "straight", progress=False)
    split = tmp_path / "split"
    first = fit_vae(seeded_vae(), config, train, None, split, progress=False, stop_after=1)
    assert [r["epoch"] for r in first] == [1]
    assert first[0]["lr"] == pytest.approx(straight[0]["lr"])  # on the 3-epoch schedule, not a 1-epoch one
    with pytest.raises(ValueError, match="already trained epochs 1-1"):
        fit_vae(seeded_vae(), config, train, None, split, resume=True, progress=False, stop_after=1)
    with pytest.raises(ValueError, match="epochs 1-3"):
        fit_vae(seeded_vae(), config, train, None, split, resume=True, progress=False, stop_after=4)
    resumed = fit_vae(seeded_vae(), config, train, None, split, resume=True, progress=False)
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    assert [r["train_loss"] for r in resumed] == pytest.approx([r["train_loss"] for r in straight], rel=1e-5)
    assert stored_lrs(split) == pytest.approx(stored_lrs(tmp_path / "straight"))


def test_the_learning_rate_warms_up_linearly_then_decays_and_old_runs_had_no_warm_up():
    config = SVIConfig(epochs=1, lr=1e-3, lr_warmup_steps=10)
    lrs = [decayed_lr(config, 100, step) for step in range(100)]
    decay = [config.lr * config.final_lr_fraction ** (step / 100) for step in range(100)]
    assert lrs[:10] == pytest.approx([(step + 1) / 10 * decay[step] for step in range(10)])
    assert lrs[10:] == pytest.approx(decay[10:])
    assert max(lrs) == lrs[9]
    assert decayed_lr(SVIConfig(lr_warmup_steps=0), 100, 0) == pytest.approx(SVIConfig().lr)
    written_before = {k: v for k, v in SVIConfig().to_dict().items() if k != "lr_warmup_steps"}
    assert SVIConfig.from_dict(written_before).lr_warmup_steps == 0  # a resumed old run keeps its schedule
    with pytest.raises(ValueError, match="lr_warmup_steps"):
        SVIConfig(lr_warmup_steps=-1)


def _tiny_hvae_batch(seed=0):
    from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig

    pyro.set_rng_seed(seed)
    vae = HierarchicalVAE(HVAEConfig(channels=16, min_channels=8, lr_blocks=1, latent_channels=2))
    with torch.no_grad():  # posteriors away from their priors, so that every group has a KL
        for group in vae.groups.modules():
            if hasattr(group, "posterior_head"):
                group.posterior_head[-1].bias.normal_(0, 0.5)
    hr = load_bundled_sample()[:6]
    return vae, PairedImages.from_hr(hr, Degradation()).lr, hr.float() / 255


def _loss_and_grads(vae, estimator, lr, hr, beta=1.0, seed=3):
    vae.zero_grad()
    pyro.set_rng_seed(seed)
    loss = estimator.differentiable_loss(vae.model, vae.guide, lr, hr, beta)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in vae.named_parameters() if p.grad is not None}


def test_the_analytic_kl_estimator_is_pyros_and_free_bits_change_only_the_groups_below_them():
    vae, lr, hr = _tiny_hvae_batch()
    pyros, grads = _loss_and_grads(vae, TraceMeanField_ELBO(), lr, hr)
    ours, our_grads = _loss_and_grads(vae, make_elbo("meanfield"), lr, hr)
    assert ours == pytest.approx(pyros, rel=1e-6)
    low, low_grads = _loss_and_grads(vae, make_elbo("meanfield", free_bits=1e-6), lr, hr)  # below every KL
    assert low == pytest.approx(pyros, rel=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(our_grads[name], grad)
        torch.testing.assert_close(low_grads[name], grad)
    # above every KL: each group's term is the constant floor, so the gradient is the likelihood's alone, which is
    # what a KL weight of 0 gives, and the loss is that plus the floors
    floor = 1e6
    free, free_grads = _loss_and_grads(vae, make_elbo("meanfield", free_bits=floor), lr, hr, beta=0.5)
    masked, masked_grads = _loss_and_grads(vae, make_elbo("meanfield"), lr, hr, beta=0.0)
    assert free == pytest.approx(masked + 0.5 * floor * len(lr) * len(vae.latent_sites), rel=1e-6)
    for name, grad in masked_grads.items():
        torch.testing.assert_close(free_grads[name], grad)
    with pytest.raises(ValueError, match="analytic KL"):
        make_elbo("trace", free_bits=1.0)
    with pytest.raises(ValueError, match="analytic KL"):
        SVIConfig(free_bits=1.0, elbo="trace")


@pytest.mark.parametrize("elbo", ELBOS)
def test_the_kl_free_bits_read_is_each_groups_kl_in_the_elbo(elbo):
    from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig

    vae = HierarchicalVAE(HVAEConfig(channels=16, min_channels=8, lr_blocks=1, latent_channels=2))
    hr = load_bundled_sample()[:6]
    data = PairedImages.from_hr(hr, Degradation())
    lr, hr = data.lr, hr.float() / 255
    estimator = make_elbo(elbo)
    pyro.set_rng_seed(3)
    estimator.differentiable_loss(vae.model, vae.guide, lr, hr, 0.0)  # the weights do not enter the KL read
    pyro.set_rng_seed(3)
    guide_trace, model_trace = paired_traces(vae, lr, hr)
    for name in vae.latent_sites:
        q, p = guide_trace.nodes[name], model_trace.nodes[name]
        if elbo == "meanfield":
            expected = torch.distributions.kl_divergence(q["fn"], p["fn"]).mean()
        else:
            expected = (q["fn"].log_prob(q["value"]) - p["fn"].log_prob(p["value"])).mean()
        torch.testing.assert_close(estimator.site_kl[name], expected, rtol=1e-4, atol=1e-4)


def test_the_loop_logs_the_steps_in_which_a_groups_kl_was_free(tmp_path):
    from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig

    train = PairedImages.from_hr(load_bundled_sample()[:32], Degradation())
    vae = HierarchicalVAE(HVAEConfig(channels=16, min_channels=8, lr_blocks=1, latent_channels=2))
    config = SVIConfig(epochs=1, batch_size=8, elbo="meanfield", free_bits=1e6)  # every group below the floor
    history = fit_vae(vae, config, train, None, tmp_path, progress=False)
    assert history[-1]["free_bits_steps"] == dict.fromkeys(vae.latent_sites, 4)
    steps = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert all(step["free"] == list(vae.latent_sites) for step in steps)
    with pytest.raises(ValueError, match="free bits"):
        SVIConfig(free_bits=-1.0)
