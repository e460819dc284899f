import json

import pytest
import torch

from pyro_sr.common import CheckpointError, TrainingError
from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.models.cnn import CNNConfig
from pyro_sr.training.cnn import TrainConfig, evaluate_mse, fit_cnn
from pyro_sr.training.precision import resolve_precision
from pyro_sr.weights.checkpoint import load_checkpoint
from pyro_sr.weights.loading import model_from_checkpoint

TINY = CNNConfig(arch="resnet", channels=8, blocks=1)


@pytest.fixture(scope="module")
def pairs():
    data = PairedImages.from_hr(load_bundled_sample(), Degradation())
    return data.subset(torch.arange(48)), data.subset(torch.arange(48, 64))


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_short_fit_lowers_the_loss_and_logs_each_epoch(tmp_path, pairs, precision):
    train, val = pairs
    config = TrainConfig(epochs=3, batch_size=8, lr=3e-3, schedule="constant", precision=precision)
    history = fit_cnn(TINY, config, train, val, tmp_path, device="cpu", progress=False)
    assert history[-1]["train_mse"] < history[0]["train_mse"]
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert {r["precision"] for r in lines} == {resolve_precision(precision, torch.device("cpu"))}
    model = model_from_checkpoint(load_checkpoint(tmp_path))
    assert evaluate_mse(model, val, torch.device("cpu")) == pytest.approx(history[-1]["val_mse"], rel=1e-5)
    best = min(history, key=lambda r: r["val_mse"])
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == best["epoch"]


def test_resume_gives_identical_next_epoch(tmp_path, pairs, interrupt_after_first_epoch):
    train, val = pairs
    config = TrainConfig(epochs=3, batch_size=8)
    straight = fit_cnn(TINY, config, train, val, tmp_path / "straight", device="cpu", progress=False)
    interrupted = tmp_path / "interrupted"
    interrupt_after_first_epoch()
    with pytest.raises(KeyboardInterrupt):
        fit_cnn(TINY, config, train, val, interrupted, device="cpu", progress=False)
    resumed = fit_cnn(TINY, config, train, val, interrupted, device="cpu", resume=True, progress=False)
    assert [r["train_mse"] for r in resumed[1:]] == [r["train_mse"] for r in straight[1:]]
    assert resumed[-1]["val_mse"] == straight[-1]["val_mse"]


def test_existing_run_needs_resume_and_matching_model(tmp_path, pairs):
    train, val = pairs
    fit_cnn(TINY, TrainConfig(epochs=1, batch_size=16), train, val, tmp_path, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="--resume"):
        fit_cnn(TINY, TrainConfig(epochs=1), train, val, tmp_path, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="another model"):
        fit_cnn(CNNConfig(arch="seed"), TrainConfig(epochs=2), train, val, tmp_path, device="cpu", resume=True)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, pairs):
    train, val = pairs
    fit_cnn(TINY, TrainConfig(epochs=1, batch_size=16), train, val, tmp_path, device="cpu", progress=False)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    broken = PairedImages(train.hr, train.lr.clone().fill_(float("nan")))
    with pytest.raises(TrainingError, match="loss became nan"):
        fit_cnn(
            TINY, TrainConfig(epochs=2, batch_size=16), broken, val, tmp_path, device="cpu", resume=True, progress=False
        )
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_on_cuda(tmp_path, pairs):
    train, val = pairs
    history = fit_cnn(TINY, TrainConfig(epochs=1, batch_size=16), train, val, tmp_path, device="cuda", progress=False)
    assert history[0]["val_mse"] > 0
    assert load_checkpoint(tmp_path)["model"]["head.weight"].device.type == "cpu"
