"""The SVI loop's schedule: what a resumed run continues with."""

import pytest
import torch

from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
from pyro_sr.training.svi import SVIConfig, decayed_lr, fit_vae, on_schedule

TINY = CVAEConfig(channels=8, blocks=1)


def stored_lrs(run) -> list[float]:
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    return [group["lr"] for state in checkpoint["optimizer"].values() for group in state["param_groups"]]


def test_a_run_resumed_with_more_epochs_ends_on_the_new_schedule(tmp_path):
    train = PairedImages.from_hr(load_bundled_sample()[:32], Degradation())  # 2 steps per epoch at batch 16
    short = SVIConfig(epochs=2, batch_size=16)
    fit_vae(ConditionalVAE(TINY), short, train, None, tmp_path, progress=False)
    assert stored_lrs(tmp_path) == pytest.approx([short.lr * short.final_lr_fraction] * len(stored_lrs(tmp_path)))
    longer = SVIConfig(epochs=6, batch_size=16)
    history = fit_vae(ConditionalVAE(TINY), longer, train, None, tmp_path, resume=True, progress=False)
    # 5e-5 at the end of 6 epochs, as a 6-epoch run from scratch; the old decay would have left 1.25e-7
    lrs = stored_lrs(tmp_path)
    assert lrs == pytest.approx([longer.lr * longer.final_lr_fraction] * len(lrs), rel=1e-6)
    assert history[-1]["lr"] == pytest.approx(longer.lr * longer.final_lr_fraction)
    assert history[1]["lr"] == pytest.approx(short.lr * short.final_lr_fraction)  # the first run's own record


def test_on_schedule_leaves_a_state_on_its_schedule_untouched():
    decay, lr = decayed_lr(SVIConfig(epochs=3), steps_per_epoch=10, step=7)
    assert lr == pytest.approx(1e-3 * decay**7)
    state = {"w": {"state": {}, "param_groups": [{"lr": 0.123, "lrd": decay}]}}
    assert on_schedule(state, lr, decay) == state
    moved = on_schedule({"w": {"state": {}, "param_groups": [{"lr": 0.123, "lrd": 0.5}]}}, lr, decay)
    assert moved["w"]["param_groups"][0] == {"lr": lr, "lrd": decay}
