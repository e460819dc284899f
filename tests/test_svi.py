"""The SVI loop's schedule: what a resumed run continues with."""

import pytest
import torch

from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
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
