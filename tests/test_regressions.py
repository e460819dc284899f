"""Regression suite: what a user hands us never runs code, corrupts a run or fails silently (issue #18).

Every input is made here; each case must end in one clear error line and a non-zero exit, or in the right output.
"""

import pytest
import torch

from pyro_sr.cli import main


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


class _OpensAFile:
    """A pickle payload that creates ``path`` when unpickled: the shape of a checkpoint that runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def malicious_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    run = tmp_path / "evil_run"
    run.mkdir()
    torch.save({"format": "pyro-sr", "kind": "cnn", "payload": _OpensAFile(marker)}, run / "checkpoint.pt")
    return run / "checkpoint.pt", marker


@pytest.mark.parametrize(
    "argv",
    [
        ["upscale", "{image}", "--model", "{ckpt}", "--out", "{out}"],
        ["evaluate", "--model", "{ckpt}", "--data", "sample", "--limit", "2"],
        ["sample", "--model", "{ckpt}", "--data", "sample", "--limit", "1", "--out", "{out}"],
        ["likelihood", "--model", "{ckpt}", "--data-dir", "{cifar}", "--val-size", "10", "--limit", "2"],
        ["diagnose", "--model", "{ckpt}", "--data", "sample", "--out", "{out}"],
        ["fit", "cnn", "--data", "sample", "--init", "{ckpt}", "--out", "{out}"],
        ["fit", "hvae", "--data", "sample", "--base", "{ckpt}", "--out", "{out}"],
        ["fit", "cnn", "--data", "sample", "--resume", "--out", "{run}"],
        ["fit", "vae", "--data", "sample", "--resume", "--out", "{run}"],
    ],
    ids=lambda argv: " ".join(a for a in argv[:3] if not a.startswith("{")),
)
def test_a_checkpoint_that_would_run_code_is_refused(argv, malicious_checkpoint, fake_cifar_batches, tmp_path, capsys):
    ckpt, marker = malicious_checkpoint
    image = tmp_path / "lr.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    values = {"ckpt": ckpt, "run": ckpt.parent, "image": image, "out": tmp_path / "out", "cifar": fake_cifar_batches}
    assert main([a.format(**values) for a in argv] + ["--device", "cpu"]) == 2
    assert "refusing to load" in error_line(capsys)
    assert not marker.exists()
