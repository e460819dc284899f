"""Checkpoint files and loading models from them."""

import pytest
import torch

from pyro_sr.common import CheckpointError
from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
from pyro_sr.weights.checkpoint import load_checkpoint, save_checkpoint
from pyro_sr.weights.loading import lineage_history, load_model, training_stages, training_summary

TINY = CVAEConfig(channels=8, blocks=1)


def test_a_file_that_is_not_a_checkpoint_is_rejected(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a pyro-sr checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"some": "dict"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a pyro-sr checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_weights_that_do_not_fit_their_configuration_are_rejected(tmp_path):

    weights = ConditionalVAE(TINY).state_dict()
    config = CVAEConfig(channels=16, blocks=1).to_dict()
    save_checkpoint({"kind": "cvae", "model_config": config, "model": weights}, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "m.pt")


def test_a_grown_models_history_runs_on_through_the_runs_it_started_from():
    first = {"command": "fit a", "history": [{"epoch": 1, "step": 10, "val_elbo": -3.0}, {"epoch": 2, "step": 20}]}
    second = {"command": "fit b", "init": first, "history": [{"epoch": 1, "step": 5}]}
    third = {"command": "fit c", "init": {"model": "b", **second}, "history": [{"epoch": 1, "step": 7}]}
    assert [m["command"] for m in training_stages(third)] == ["fit a", "fit b", "fit c"]
    history = lineage_history(third)
    assert [(r["epoch"], r["step"]) for r in history] == [(1, 10), (2, 20), (3, 25), (4, 32)]
    assert history[0]["val_elbo"] == -3.0 and first["history"][1]["epoch"] == 2  # the metadata is not changed
    assert lineage_history({}) == [] and lineage_history({"history": None}) == []
    first["history"][0]["seconds"], third["history"][0]["seconds"], third["epochs"] = 1800.0, 5400.0, 1
    summary = training_summary(third)
    assert summary.epochs == "? + ? + 1" and summary.hours == 2.0 and summary.commands == ["fit a", "fit b", "fit c"]
