"""Checkpoint files and loading models from them."""

import pytest
import torch
from helpers import perturbed

from pyro_sr.common import CheckpointError
from pyro_sr.models.cnn import CNNConfig, build_cnn
from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig
from pyro_sr.weights import loading
from pyro_sr.weights.checkpoint import load_checkpoint, save_checkpoint
from pyro_sr.weights.loading import (
    export_weights,
    lineage_history,
    load_model,
    training_stages,
    training_summary,
)

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


def test_bundled_weights_refer_to_the_bundled_cnn_they_refine_and_refuse_another(tmp_path, monkeypatch):
    """Bundled, an hvae's frozen base is a reference to the bundled cnn (checked by digest), not a copy: the file
    is smaller, loads to the same weights, and is refused once the installed cnn holds other weights."""
    monkeypatch.setattr(loading, "bundled_path", lambda name: tmp_path / f"bundled-{name}.pt")
    torch.manual_seed(0)

    def bundle_cnn() -> torch.nn.Module:
        cnn = perturbed(build_cnn(CNNConfig(channels=8, blocks=1)))
        save_checkpoint(
            {"kind": "cnn", "model_config": cnn.config.to_dict(), "model": cnn.state_dict()}, tmp_path / "c"
        )
        export_weights(tmp_path / "c", loading.bundled_path("cnn"))
        return cnn

    cnn = bundle_cnn()
    hvae = HierarchicalVAE.refining(cnn, HVAEConfig(channels=8, min_channels=4, lr_blocks=1))
    for name, part in hvae.named_children():
        if name != "base_cnn":  # the base stays the cnn's
            perturbed(part)
    run = {"kind": "hvae", "model_config": hvae.config.to_dict(), "model": hvae.state_dict()}
    save_checkpoint(run, tmp_path / "run.pt")
    export_weights(tmp_path / "run.pt", tmp_path / "own.pt")
    export_weights(tmp_path / "run.pt", tmp_path / "shared.pt", share_bundled=True)

    shared = load_checkpoint(tmp_path / "shared.pt")
    assert not any(key.startswith("base_cnn.") for key in shared["model"])
    assert shared["shared_weights"]["base_cnn."]["bundled"] == "cnn" and "shared_weights" not in load_checkpoint(
        tmp_path / "own.pt"
    )
    assert (tmp_path / "shared.pt").stat().st_size < (tmp_path / "own.pt").stat().st_size
    loaded = load_model(tmp_path / "shared.pt").model.state_dict()
    assert loaded.keys() == hvae.state_dict().keys()
    assert all(torch.equal(loaded[key], value) for key, value in hvae.state_dict().items())
    export_weights(tmp_path / "shared.pt", tmp_path / "copy.pt")  # calibrate's export of a bundled model: whole
    assert any(key.startswith("base_cnn.") for key in load_checkpoint(tmp_path / "copy.pt")["model"])

    bundle_cnn()  # another cnn installed under the same name
    with pytest.raises(CheckpointError, match="the installed one holds other weights"):
        load_model(tmp_path / "shared.pt")
    load_model(tmp_path / "own.pt")  # a self-contained file does not depend on the bundled cnn


def test_the_bundled_hvae_refines_the_bundled_cnn():
    base = load_model("hvae").model.base_cnn.state_dict()
    cnn = load_model("cnn").model.state_dict()
    assert base.keys() == cnn.keys() and all(torch.equal(base[key], cnn[key]) for key in cnn)


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
