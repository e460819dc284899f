"""Regression suite: what a user hands us never runs code, corrupts a run or fails silently (issue #18).

Every input is made here; each case must end in one clear error line and a non-zero exit, or in the right output.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pyro_sr
from pyro_sr.cli import main
from pyro_sr.data.images import check_image, load_rgb, to_uint8
from pyro_sr.predict.tiling import super_resolve, super_resolve_uint8
from pyro_sr.training.run import run_lock


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


# --- numbers and data files -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv,message",
    [
        (["upscale", "x.png", "--out", "o", "--num-samples", "0"], "--num-samples: expected a whole number >= 1"),
        (["sample", "--model", "vae", "--limit", "-1", "--out", "o"], "--limit: expected a whole number >= 1"),
        (["evaluate", "--limit", "0"], "--limit: expected a whole number >= 1"),
        (["evaluate", "--mean-samples", "0"], "--mean-samples: expected a whole number >= 1"),
        (["likelihood", "--num-samples", "0"], "--num-samples: expected a whole number >= 1"),
        (["upscale", "x.png", "--out", "o", "--tile", "0"], "--tile: expected a whole number >= 1"),
        (["upscale", "x.png", "--out", "o", "--temperature", "-1"], "--temperature: expected a number >= 0"),
        (["fit", "cnn", "--out", "o", "--lr", "nan"], "--lr: expected a number > 0"),
        (["fit", "vae", "--out", "o", "--epochs", "0"], "--epochs: expected a whole number >= 1"),
        (["fit", "hvae", "--out", "o", "--batch-size", "0"], "--batch-size: expected a whole number >= 1"),
        (["fit", "cnn", "--out", "o", "--crops-per-epoch", "0"], "--crops-per-epoch: expected a whole number >= 1"),
        (["fit", "cnn", "--out", "o", "--sigma", "0"], "--sigma: expected a number > 0"),
        (["diagnose", "--model", "vae", "--iw-samples", "8", "0"], "--iw-samples: expected a whole number >= 1"),
        (["diagnose", "--model", "vae", "--calibration-samples", "0"], "--calibration-samples: expected a whole"),
        (["evaluate", "--threads", "0"], "--threads: expected a whole number >= 1"),
        (["evaluate", "--seed", "-1"], "--seed: expected a whole number >= 0"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_a_bad_number_is_refused_when_parsed(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.endswith("--help)")  # no usage block


def test_the_bundled_sample_has_only_a_test_split(capsys):
    assert main(["evaluate", "--data", "sample", "--split", "train", "--model", "cnn", "--device", "cpu"]) == 2
    assert "the bundled sample holds 64 test images, no 'train' split" in error_line(capsys)


def _write_npz(path, case):
    good = np.zeros((4, 32, 32, 3), np.uint8)
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        np.savez(path, images=good)
        path.write_bytes(path.read_bytes()[:200])
    elif case == "not an archive":
        np.save(path.open("wb"), good)
    elif case == "no images array":
        np.savez(path, pictures=good)
    elif case == "channels first":
        np.savez(path, images=good.transpose(0, 3, 1, 2))
    elif case == "float pixels":
        np.savez(path, images=good.astype(np.float32))
    elif case == "corrupt compressed":
        np.savez_compressed(path, images=np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
        data = bytearray(path.read_bytes())
        data[200:400] = bytes(200)  # inside the deflated array
        path.write_bytes(bytes(data))
    elif case == "objects":
        np.savez(path, images=np.array([{"a": 1}], dtype=object))
    elif case == "text":
        path.write_text("images,labels\n")


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "truncated",
        "not an archive",
        "no images array",
        "channels first",
        "float pixels",
        "corrupt compressed",
        "objects",
        "text",
    ],
)
def test_a_broken_cifar_npz_is_one_line(case, tmp_path, capsys):
    _write_npz(tmp_path / "cifar10_test.npz", case)
    assert main(["evaluate", "--data-dir", str(tmp_path), "--device", "cpu"]) == 2
    line = error_line(capsys)
    assert "cifar10_test.npz" in line and "trust the file" not in line  # not numpy's advice to unpickle it


def test_an_empty_validation_split_is_one_line(capsys):
    assert main(["sample", "--model", "vae", "--split", "val", "--val-size", "0", "--out", "unused"]) == 2
    assert "--split val needs --val-size >= 1" in error_line(capsys)


# --- images -----------------------------------------------------------------------------------------------------


def test_a_checkpoint_pickled_under_numpy_1_still_loads(tmp_path):
    import zipfile

    from pyro_sr.weights.checkpoint import load_checkpoint

    torch.save({"format": "pyro-sr", "rng": {"numpy": np.random.get_state()}}, tmp_path / "new.pt")
    with zipfile.ZipFile(tmp_path / "new.pt") as new, zipfile.ZipFile(tmp_path / "old.pt", "w") as old:
        for item in new.infolist():  # NumPy 1 names its array constructor numpy.core.multiarray._reconstruct
            data = new.read(item.filename)
            old.writestr(item, data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    with zipfile.ZipFile(tmp_path / "old.pt") as old:
        assert b"numpy.core.multiarray" in old.read(next(n for n in old.namelist() if n.endswith("data.pkl")))
    keys = load_checkpoint(tmp_path / "old.pt")["rng"]["numpy"][1]
    assert np.array_equal(keys, np.random.get_state()[1])


def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    rgb = load_rgb(tmp_path / "grey16.png")
    assert rgb.shape == (3, 64, 64)
    expected = torch.from_numpy(np.rint(ramp / 257.0).astype(np.uint8))
    assert torch.equal(rgb[0], expected) and torch.equal(rgb[1], expected)


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((10, 20, 3), np.uint8)
    stored[:, :10] = 255  # the left half of the stored pixels is white
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    rgb = load_rgb(tmp_path / "rotated.jpg")
    assert rgb.shape == (3, 20, 10) and check_image(tmp_path / "rotated.jpg") == (20, 10)
    assert rgb[:, :8].float().mean() > 240 and rgb[:, 12:].float().mean() < 15  # white on top, as displayed


def test_a_folder_given_as_an_image_is_named_as_such(tmp_path, capsys):
    assert main(["upscale", str(tmp_path), "--model", "seed-cnn", "--out", str(tmp_path / "o")]) == 2
    assert error_line(capsys).endswith("is a folder, not an image")


def test_inputs_are_checked_before_the_first_output(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    args = ["upscale", str(tmp_path / "good.png"), str(tmp_path / "bad.png"), "--model", "seed-cnn", "--out", str(out)]
    assert main(args) == 2
    assert "bad.png" in error_line(capsys)
    assert not (out / "good.png").exists()


def test_an_unwritable_out_is_found_before_any_work(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "lr.png")
    (tmp_path / "taken").write_text("a file, not a folder")
    assert main(["upscale", str(tmp_path / "lr.png"), "--model", "seed-cnn", "--out", str(tmp_path / "taken")]) == 2
    assert "cannot write to --out" in error_line(capsys)
    assert main(["fit", "cnn", "--data", "sample", "--out", str(tmp_path / "taken" / "run")]) == 2
    assert "cannot write to --out" in error_line(capsys)


# --- bounded memory ---------------------------------------------------------------------------------------------


def test_uint8_tiling_equals_the_rounded_whole_image_pass():
    model = pyro_sr.load("seed-cnn", device="cpu").module
    lr = torch.rand(1, 3, 37, 50)
    whole = to_uint8(super_resolve(model.predict, lr, 4, tile=1000)[0])
    tiled = super_resolve_uint8(model.predict, lr, 4, tile=16)
    assert tiled.shape == (148, 200, 3) and np.abs(tiled.astype(int) - whole).max() <= 1  # float rounding only


def test_vae_samples_are_written_one_at_a_time_and_summarised_exactly(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(tmp_path / "lr.png")
    out = tmp_path / "out"
    assert (
        main(
            ["upscale", str(tmp_path / "lr.png"), "--model", "vae", "--num-samples", "3", "--tile", "4"]
            + ["--out", str(out), "--device", "cpu"]
        )
        == 0
    )
    samples = np.stack([np.asarray(Image.open(out / f"lr_sample{k}.png"), dtype=float) for k in range(3)])
    mean = np.asarray(Image.open(out / "lr.png"), dtype=float)
    assert samples.shape == (3, 40, 48, 3) and samples.std(0).mean() > 0.5  # distinct samples
    assert np.abs(mean - samples.mean(0)).max() <= 1.0  # the mean of the float samples, rounded once
    grey_std = samples.std(0).mean(-1)
    std_map = np.asarray(Image.open(out / "lr_std.png"), dtype=float)[..., 0]
    assert np.abs(std_map - 255 * grey_std / grey_std.max()).mean() < 2.0  # up to the samples' rounding
    assert sorted(p.name for p in out.iterdir()) == [
        "lr.png",
        "lr_sample0.png",
        "lr_sample1.png",
        "lr_sample2.png",
        "lr_std.png",
    ]


# --- divergence -------------------------------------------------------------------------------------------------


def _strict_json_lines(path):
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_a_diverging_cnn_keeps_only_finite_weights(tmp_path, capsys):
    run = tmp_path / "run"
    fit = ["fit", "cnn", "--arch", "seed", "--data", "sample", "--batch-size", "64", "--lr", "1e3", "--epochs", "8"]
    assert main([*fit, "--quiet", "--device", "cpu", "--out", str(run)]) == 2
    assert "training diverged in epoch" in error_line(capsys)
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert all(w.isfinite().all() for w in checkpoint["model"].values())
    assert len(_strict_json_lines(run / "log.jsonl")) == checkpoint["epoch"]


def test_a_diverging_vae_stops_with_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    fit = ["fit", "vae", "--data", "sample", "--lr", "1e3", "--epochs", "30", "--channels", "8", "--blocks", "1"]
    assert main([*fit, "--quiet", "--device", "cpu", "--out", str(run)]) == 2
    assert "training diverged in epoch" in error_line(capsys)
    if (run / "checkpoint.pt").exists():
        checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
        assert all(w.isfinite().all() for w in checkpoint["model"].values())
        assert len(_strict_json_lines(run / "log.jsonl")) == checkpoint["epoch"]


# --- run folders ------------------------------------------------------------------------------------------------

TINY_CNN = ["fit", "cnn", "--data", "sample", "--batch-size", "32", "--channels", "8", "--blocks", "1", "--quiet"]


def test_a_second_writer_to_a_run_folder_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    with run_lock(run):
        assert main([*TINY_CNN, "--epochs", "1", "--out", str(run)]) == 2
        assert "is in use by another training run" in error_line(capsys)
        assert not (run / "checkpoint.pt").exists()
    assert main([*TINY_CNN, "--epochs", "1", "--out", str(run)]) == 0  # free again once the holder is done


def test_resume_keeps_the_runs_epochs_rebuilds_its_logs_and_removes_stale_temp_files(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TINY_CNN, "--epochs", "2", "--out", str(run)]) == 0
    history = torch.load(run / "checkpoint.pt", weights_only=True)["history"]
    (run / "log.jsonl").write_text(json.dumps(history[0]) + "\n")  # a kill lost the last epoch's line
    (run / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # a kill left a temp file
    assert main([*TINY_CNN, "--resume", "--out", str(run)]) == 0
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["train_config"]["epochs"] == 2  # not extended to the default
    assert _strict_json_lines(run / "log.jsonl") == history
    assert not list(run.glob(".*.tmp"))
    assert main([*TINY_CNN, "--resume", "--epochs", "3", "--out", str(run)]) == 0
    assert [r["epoch"] for r in _strict_json_lines(run / "log.jsonl")] == [1, 2, 3]
