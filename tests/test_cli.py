import json
import math
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from pyro_sr.cli import main
from pyro_sr.data.images import load_rgb
from pyro_sr.predict.tiling import super_resolve
from pyro_sr.training.run import stored_progress
from pyro_sr.weights.loading import load_model

TINY = ["--channels", "8", "--blocks", "1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    assert (
        main(
            [
                "fit",
                "cnn",
                "--data",
                "sample",
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--quiet",
                "--device",
                "cpu",
                "--out",
                str(run),
                *TINY,
            ]
        )
        == 0
    )
    return run


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(folder / "gray.jpg")
    Image.fromarray(rng.integers(0, 256, (5, 7, 4), dtype=np.uint8), "RGBA").save(folder / "alpha.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert("P").save(folder / "palette.gif")
    return folder


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("pyro-sr: error: ")
    return err[0]


def test_fit_writes_log_and_checkpoint(tiny_run):
    assert (tiny_run / "checkpoint.pt").is_file()
    assert json.loads((tiny_run / "log.jsonl").read_text().splitlines()[0])["epoch"] == 1


def test_evaluate_prints_and_writes_a_table(tiny_run, tmp_path, capsys):
    out = tmp_path / "table.json"
    assert main(["evaluate", "--data", "sample", "--limit", "16", "--model", str(tiny_run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| bicubic |" in printed and f"| {tiny_run.name} |" in printed
    report = json.loads(out.read_text())
    assert [r["model"] for r in report["results"]] == ["HR (the judge's ceiling)", "nearest", "bicubic", tiny_run.name]
    assert report["images"] == 16
    hr, bicubic = report["results"][0], report["results"][2]
    assert 0.005 < bicubic["mse"] < 0.02 and bicubic["ssim"] > 0.4
    assert "classifier-KID" in printed and "mse" not in hr  # the HR row has only the judge's scores
    assert hr["classifier_accuracy"] > bicubic["classifier_accuracy"]
    assert bicubic["classifier_kid"] > hr["classifier_kid"] and bicubic["classifier_fid"] > hr["classifier_fid"]
    assert main(["evaluate", "--data", "sample", "--limit", "4", "--model", str(tiny_run), "--no-realism"]) == 0
    assert "classifier" not in capsys.readouterr().out


def test_evaluate_reports_a_vaes_calibration_and_realism(tmp_path, capsys):
    out, plot = tmp_path / "table.json", tmp_path / "calibration.png"
    args = ["evaluate", "--model", "vae", "--data", "sample", "--limit", "12", "--num-samples", "4"]
    assert main([*args, "--out", str(out), "--calibration-plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "spread-skill ratio" in printed and plot.stat().st_size > 10_000
    report = json.loads(out.read_text())
    calibration = report["calibration"]["vae"]
    assert calibration["images"] == 12 and calibration["num_samples"] == 4 and len(calibration["rank_shares"]) == 5
    rows = {r["model"]: r for r in report["results"]}
    for row in ("vae: mean of 4", "vae: one sample"):
        assert rows[row]["sample_std"] > 0 and 0 <= rows[row]["classifier_accuracy"] <= 1


def test_evaluate_scores_the_mean_from_latent_draws_when_asked(tmp_path):
    out = tmp_path / "table.json"
    args = ["evaluate", "--model", "vae", "--data", "sample", "--limit", "4", "--num-samples", "2", "--no-realism"]
    assert main([*args, "--mean-samples", "8", "--out", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["vae: mean of 8 (likelihood means)"]["mean_samples"] == 8 and "vae: one sample" in rows


def test_upscale_converts_any_image_mode(tiny_run, photos, tmp_path):
    out = tmp_path / "sr"
    inputs = sorted(photos.iterdir())
    assert main(["upscale", *map(str, inputs), "--model", str(tiny_run / "checkpoint.pt"), "--out", str(out)]) == 0
    for path in inputs:
        with Image.open(path) as im:
            w, h = im.size
        with Image.open(out / f"{path.stem}.png") as sr:
            assert sr.size == (4 * w, 4 * h) and sr.mode == "RGB"


def test_tiled_upscaling_equals_one_pass(tiny_run):
    model = load_model(tiny_run).model
    lr = torch.rand(1, 3, 37, 50)
    torch.testing.assert_close(super_resolve(model, lr, 4, tile=16), super_resolve(model, lr, 4, tile=1000))


def test_alpha_is_composited_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_rgb(tmp_path / "clear.png").eq(255).all()


def test_missing_data_dir_is_one_clear_line(tmp_path, capsys):
    assert main(["fit", "cnn", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "no CIFAR-10 found" in error_line(capsys)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("content,name", [(b"plain text", "notes.txt"), (None, "broken.png")])
def test_bad_images_are_one_clear_line(tiny_run, tmp_path, capsys, content, name):
    path = tmp_path / name
    if content is None:  # a PNG cut off half way
        Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(path)
        content = path.read_bytes()[:40]
    path.write_bytes(content)
    out = tmp_path / "out"
    assert main(["upscale", str(path), "--model", str(tiny_run), "--out", str(out)]) == 2
    assert "not a readable image" in error_line(capsys)
    assert not out.exists() or not list(out.iterdir())


def test_wrong_checkpoint_is_one_clear_line(tmp_path, photos, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["upscale", str(photos / "rgb.png"), "--model", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not a pyro-sr checkpoint" in error_line(capsys)
    assert main(["evaluate", "--data", "sample", "--model", "no-such-model"]) == 2
    assert "no bundled model of that name" in error_line(capsys)


def test_wrong_scale_is_refused(tiny_run, photos, tmp_path, capsys):
    assert (
        main(
            ["upscale", str(photos / "rgb.png"), "--model", str(tiny_run), "--scale", "2", "--out", str(tmp_path / "o")]
        )
        == 2
    )
    assert "upscales x4, not x2" in error_line(capsys)


def test_console_entry_point_exits_non_zero_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pyro_sr", "upscale", str(tmp_path / "missing.png"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"pyro-sr: error: image not found: {tmp_path / 'missing.png'}"


def test_sigterm_stops_a_fit_in_one_line_and_resume_goes_on_from_its_last_epoch(tmp_path):
    run = tmp_path / "run"
    fit = [sys.executable, "-m", "pyro_sr", "fit", "cnn", "--data", "sample", "--channels", "8", "--blocks", "1"]
    fit += ["--threads", "1", "--quiet", "--out", str(run)]
    process = subprocess.Popen(
        [*fit, "--epochs", "10000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "log.jsonl").is_file() or not (run / "log.jsonl").read_text().strip():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert err.strip() == "pyro-sr: terminated"
    assert not list(run.glob(".*.tmp"))  # no half-written checkpoint or log left behind
    _, trained = stored_progress(run)
    resumed = subprocess.run([*fit, "--resume", "--epochs", str(trained + 1)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epoch"] == trained + 1


def test_demo_writes_grid_and_metrics_and_bundled_models_beat_bicubic(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert "| cnn |" in capsys.readouterr().out
    with Image.open(tmp_path / "demo_grid.png") as grid:
        assert grid.width > 1000 and grid.height > 600  # the CNN and each bundled VAE's columns
    rows = {r["model"]: r for r in json.loads((tmp_path / "metrics.json").read_text())["results"]}
    assert rows["cnn"]["mse"] < rows["bicubic"]["mse"] < rows["nearest"]["mse"]
    for vae in ("vae", "hvae"):
        mean = rows[f"{vae}: mean of 16 (likelihood means)"]  # the posterior mean, as SuperResolver.upscale
        assert mean["mse"] < rows["bicubic"]["mse"] and mean["lr_psnr"] > 35  # no pixel noise in it
        # a calibrated draw carries the likelihood's pixel noise, independent across pixels: 30-37 dB here
        assert rows[f"{vae}: one sample"]["lr_psnr"] > 25 and rows[f"{vae}: one sample"]["sample_std"] > 0


FOLDER_FIT_SIZES = {
    "cnn": TINY,
    "vae": ["--channels", "8", "--blocks", "1", "--batch-size", "16"],
    "hvae": ["--channels", "8", "--lr-blocks", "1", "--latent-channels", "2", "--batch-size", "16"],
}


@pytest.mark.parametrize("kind", FOLDER_FIT_SIZES)
def test_fit_on_a_folder_of_photos(kind, tmp_path):
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    run = tmp_path / "run"
    fit = ["fit", kind, "--data", "folder", "--data-dir", str(photos), "--epochs", "1", "--crops-per-epoch", "64"]
    assert main([*fit, "--quiet", "--device", "cpu", "--out", str(run), *FOLDER_FIT_SIZES[kind]]) == 0
    record = json.loads((run / "log.jsonl").read_text())
    assert (record["val_mse"] > 0) if kind == "cnn" else math.isfinite(record["val_elbo"])


def test_vae_scores_are_reproducible_with_the_seed(capsys):
    args = ["evaluate", "--model", "vae", "--data", "sample", "--limit", "4", "--num-samples", "2"]
    tables = []
    for seed in ("0", "0", "1"):
        assert main([*args, "--seed", seed]) == 0
        tables.append(capsys.readouterr().out)
    assert tables[0] == tables[1] != tables[2]


def test_fit_stop_after_ends_early_on_the_full_schedule_and_resume_goes_on(tmp_path, capsys):
    fit = ["fit", "cnn", "--data", "sample", "--batch-size", "32", "--quiet", *TINY]
    split, straight = str(tmp_path / "split"), str(tmp_path / "straight")
    assert main([*fit, "--out", split, "--epochs", "2", "--stop-after", "3"]) == 2
    assert "stop after epoch 3: the schedule has epochs 1-2" in error_line(capsys)
    assert not (tmp_path / "split").exists()
    assert main([*fit, "--out", split, "--epochs", "2", "--stop-after", "1"]) == 0
    assert "stopped after epoch 1 of 2; --resume goes on" in capsys.readouterr().err
    checkpoint = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["train_config"]["epochs"]) == (1, 2)
    assert main([*fit, "--out", split, "--resume", "--stop-after", "1"]) == 2
    assert "the run has already trained epochs 1-1" in error_line(capsys)
    assert main([*fit, "--out", split, "--resume"]) == 0  # to the 2 epochs the run was started for
    assert main([*fit, "--out", straight, "--epochs", "2"]) == 0
    logs = [
        [json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        for run in ("split", "straight")
    ]
    assert [(r["train_mse"], r["lr"]) for r in logs[0]] == [(r["train_mse"], r["lr"]) for r in logs[1]]


def test_fit_cnn_augment_choices_reach_the_checkpoint(tmp_path, capsys):
    fit = ["fit", "cnn", "--data", "sample", "--epochs", "1", "--batch-size", "32", "--quiet", *TINY]
    assert main([*fit, "--augment", "dihedral", "rgb", "shift", "--out", str(tmp_path / "a")]) == 0
    assert torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["train_config"]["augment"] == (
        "dihedral",
        "rgb",
        "shift",
    )
    assert main([*fit, "--augment", "none", "--out", str(tmp_path / "b")]) == 0
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["train_config"]["augment"] == ()
    assert main([*fit, "--augment", "none", "rgb", "--out", str(tmp_path / "c")]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_self_ensemble_is_scored_and_written_for_cnns_and_refused_for_vaes(tiny_run, photos, tmp_path, capsys):
    assert main(["evaluate", "--data", "sample", "--limit", "8", "--model", str(tiny_run), "--self-ensemble"]) == 0
    assert f"| {tiny_run.name} + self-ensemble (12) |" in capsys.readouterr().out
    image = str(photos / "rgb.png")
    assert main(["upscale", image, "--model", str(tiny_run), "--self-ensemble", "--out", str(tmp_path / "a")]) == 0
    with Image.open(tmp_path / "a" / "rgb.png") as sr:
        assert sr.size == (52, 36)
    capsys.readouterr()
    assert main(["upscale", image, "--model", "vae", "--self-ensemble", "--out", str(tmp_path / "b")]) == 2
    assert "applies to deterministic CNNs" in error_line(capsys)
    assert not (tmp_path / "b").exists()


def test_fit_cnn_init_with_more_blocks_deepens_the_network(tiny_run, tmp_path):
    blocks = load_model(tiny_run).model.config.blocks
    fit = ["fit", "cnn", "--data", "sample", "--epochs", "1", "--batch-size", "32", "--quiet", "--lr", "1e-12"]
    assert main([*fit, "--init", str(tiny_run), "--blocks", str(blocks + 2), "--out", str(tmp_path / "deep")]) == 0
    deep, start = load_model(tmp_path / "deep").model, load_model(tiny_run).model
    assert deep.config == replace(start.config, blocks=blocks + 2)
    lr = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(deep(lr), start(lr), atol=1e-6, rtol=0)


def test_fit_cnn_init_starts_from_the_weights_and_refuses_mismatches(tiny_run, tmp_path, capsys):
    fit = ["fit", "cnn", "--data", "sample", "--epochs", "1", "--batch-size", "32", "--quiet", "--init"]
    assert main([*fit, str(tiny_run), "--lr", "1e-12", "--out", str(tmp_path / "warm")]) == 0
    start = load_model(tiny_run).model.state_dict()
    warm = load_model(tmp_path / "warm")
    assert warm.model.config == load_model(tiny_run).model.config
    assert all(torch.allclose(start[k], v, atol=1e-8) for k, v in warm.model.state_dict().items())
    lineage = warm.meta["init"]  # how the starting weights were trained travels with the new run
    assert lineage["model"] == str(tiny_run) and lineage["epochs"] == 1 and "--channels 8" in lineage["command"]
    capsys.readouterr()
    assert main([*fit, str(tiny_run), "--channels", "16", "--out", str(tmp_path / "c")]) == 2
    assert "--channels 16 contradicts --init" in error_line(capsys)
    assert main([*fit, "cnn", "--blocks", "8", "--out", str(tmp_path / "c")]) == 2
    assert "can be deepened, not made shallower" in error_line(capsys)
    assert main([*fit, "vae", "--out", str(tmp_path / "d")]) == 2
    assert "--init must be a trained cnn" in error_line(capsys)
    assert main([*fit, str(tiny_run), "--scale", "2", "--out", str(tmp_path / "e")]) == 2
    assert "trained for another degradation" in error_line(capsys)


def test_models_lists_the_bundled_models_and_describes_a_run(tiny_run, capsys):
    assert main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line and line[0] != " "}
    assert set(rows) >= {"model", "cnn", "seed-cnn", "vae", "hvae"}
    hvae = load_model("hvae")
    assert f"{hvae.meta['metrics']['one_sample']['psnr']:.2f}" in rows["hvae"]
    assert "(calibrated)" in rows["hvae"] and "latent temperature" not in rows["cnn"]
    assert main(["models", str(tiny_run)]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(tiny_run.name)]
    parameters = sum(p.numel() for p in load_model(tiny_run).model.parameters())
    assert row.split()[1:8] == ["cnn", f"{parameters:,}", "x4", "gaussian", "sigma", "1", "1"]
    assert main(["models", "cnn", "no-such-model"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and "no-such-model" in captured.err


def test_a_reader_that_stops_reading_ends_a_command_quietly():
    command = subprocess.Popen(
        [sys.executable, "-m", "pyro_sr", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    command.stdout.close()  # `pyro-sr models | head -1` once head has its line; long before the table is printed
    assert command.wait(timeout=120) == 128 + signal.SIGPIPE
    assert command.stderr.read() == b""
