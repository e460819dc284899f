"""The realism judge: its network, its training run, its command and the bundled one."""

import json

import pytest
import torch

from pyro_sr.cli import main
from pyro_sr.common import CheckpointError
from pyro_sr.data.datasets import load_bundled_labels, load_bundled_sample
from pyro_sr.models.judge import CIFARJudge, JudgeConfig
from pyro_sr.training.judge import JudgeTrainConfig, augment, fit_judge, judge_accuracy, judge_lr
from pyro_sr.weights.judge import load_judge

TINY = JudgeConfig(widths=(8, 16))


def coloured(count_per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images whose class is their hue: a task a tiny judge learns in a few epochs."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat(count_per_class)
    hue = torch.stack([labels / 9, (labels % 3) / 2, (labels % 2).float()], 1).view(-1, 3, 1, 1)
    images = (hue + 0.1 * torch.randn(len(labels), 3, 32, 32, generator=gen)).clamp(0, 1)
    return (images * 255).round().to(torch.uint8), labels


def test_features_logits_and_the_flip_of_classify():
    judge = CIFARJudge(TINY).eval()
    x = torch.rand(5, 3, 32, 32)
    assert judge.features(x).shape == (5, TINY.feature_dim) and judge(x).shape == (5, 10)
    logits = judge(x) + judge(x.flip(3))
    assert torch.equal(judge.classify(x), logits.argmax(1))
    with pytest.raises(ValueError, match="RGB batches"):
        judge(torch.rand(5, 1, 32, 32))
    with pytest.raises(ValueError, match="positive widths"):
        JudgeConfig(widths=())


def test_the_schedule_is_triangular_and_augmentation_mirrors_and_shifts():
    config = JudgeTrainConfig(lr=0.2, warmup_fraction=0.2)
    lrs = [judge_lr(config, step, 100) for step in range(100)]
    assert max(lrs) == pytest.approx(0.2) and lrs.index(max(lrs)) == 19 and lrs[-1] == pytest.approx(0.2 / 80)
    x = torch.rand(64, 3, 8, 8)
    out = augment(x, 0, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(o, i.flip(2)) for o, i in zip(out, x, strict=True)]
    assert all(m or torch.equal(o, i) for m, o, i in zip(mirrored, out, x, strict=True)) and 10 < sum(mirrored) < 54
    assert augment(x, 2, torch.Generator().manual_seed(1)).shape == x.shape


def test_a_judge_learns_a_learnable_task_and_resumes(tmp_path):
    train, val = coloured(8), coloured(3, seed=1)
    config = JudgeTrainConfig(epochs=12, batch_size=16, lr=0.1)  # 8 epochs: 1.0 in bf16 on AMX, 0.8 in fp32 on AVX2
    history = fit_judge(TINY, config, train, val, tmp_path, progress=False)
    assert [r["epoch"] for r in history] == list(range(1, 13))
    assert history[-1]["val_accuracy"] >= 0.9 and history[-1]["train_loss"] < history[0]["train_loss"]
    loaded = load_judge(tmp_path)
    assert judge_accuracy(loaded.judge, *val) == max(r["val_accuracy"] for r in history)  # best.pt
    more_epochs = JudgeTrainConfig(epochs=13, batch_size=16)
    more = fit_judge(TINY, more_epochs, train, val, tmp_path, resume=True, progress=False)
    assert len(more) == 13 and len((tmp_path / "log.jsonl").read_text().splitlines()) == 13
    with pytest.raises(CheckpointError, match="exists"):
        fit_judge(TINY, config, train, val, tmp_path, progress=False)
    with pytest.raises(ValueError, match="one label per"):
        judge_accuracy(loaded.judge, val[0], val[1][:3])
    with pytest.raises(ValueError, match="needs validation images"):  # else best.pt would never be written
        fit_judge(TINY, config, train, None, tmp_path / "no-val", progress=False)


def test_the_command_trains_a_judge_and_refuses_a_second_run_in_the_folder(fake_cifar_batches, tmp_path, capsys):
    command = ["fit", "judge", "--data-dir", str(fake_cifar_batches), "--val-size", "10", "--epochs", "1"]
    command += ["--widths", "8", "16", "--batch-size", "16", "--quiet", "--out", str(tmp_path / "run")]
    assert main(command) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["epoch"] == 1 and 0 <= record["val_accuracy"] <= 1
    assert main(command) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(CheckpointError, match="not a judge"):
        load_judge(__import__("pyro_sr.weights.loading", fromlist=["bundled_path"]).bundled_path("cnn"))


def test_a_judge_run_stopped_early_resumes_to_the_same_log(fake_cifar_batches, tmp_path, capsys):
    command = ["fit", "judge", "--data-dir", str(fake_cifar_batches), "--val-size", "10", "--epochs", "2"]
    command += ["--widths", "8", "16", "--batch-size", "16", "--quiet", "--threads", "1"]
    split, straight = ["--out", str(tmp_path / "split")], ["--out", str(tmp_path / "straight")]
    assert main([*command, *split, "--stop-after", "3"]) == 2
    assert "stop after epoch 3: the schedule has epochs 1-2" in capsys.readouterr().err
    assert not (tmp_path / "split").exists()
    assert main([*command, *split, "--stop-after", "1"]) == 0
    assert "stopped after epoch 1 of 2; --resume goes on" in capsys.readouterr().err
    assert main([*command, *split, "--resume"]) == 0
    assert main([*command, *straight]) == 0
    logs = [
        [json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        for run in ("split", "straight")
    ]
    assert [(r["train_loss"], r["val_accuracy"]) for r in logs[0]] == [
        (r["train_loss"], r["val_accuracy"]) for r in logs[1]
    ]


def test_the_bundled_judge_reproduces_its_stored_accuracy():
    bundled = load_judge()
    assert bundled.metrics["cifar10_test_images"] == 1000 and bundled.metrics["cifar10_test_accuracy"] >= 0.88
    sample = judge_accuracy(bundled.judge, load_bundled_sample(), load_bundled_labels())
    assert sample == bundled.metrics["bundled_sample_accuracy"]
    assert "pyro-sr fit judge" in bundled.meta["command"]
