"""A model's own sampling (``Sampling``), fitting the latent temperature that calibrates it, ``pyro-sr calibrate``."""

import json
import math

import pytest
import torch

from pyro_sr import api
from pyro_sr.cli import main
from pyro_sr.data.datasets import load_pairs
from pyro_sr.evaluation import recalibration
from pyro_sr.evaluation.recalibration import fit_temperature, spread_skill_at
from pyro_sr.predict.sampling import MEAN, Sampling
from pyro_sr.weights.loading import load_model


def test_a_sampling_is_the_checkpoints_unless_the_user_gives_one():
    stored = Sampling.of({"sampling": {"temperature": [1.0, 0.5], "pixel_temperature": 1.0, "calibration": {"x": 1}}})
    assert stored.temperature == (1.0, 0.5) and stored.pixel_temperature == 1.0
    assert stored.given() == stored
    assert stored.given(pixel_temperature=MEAN) == Sampling((1.0, 0.5), None)  # no longer the calibrated one
    assert stored.given(temperature=0.7).temperature == 0.7 and stored.given(temperature=0.7).pixel_temperature == 1.0
    assert Sampling.of({}) == Sampling(1.0, None)
    assert Sampling.of({"sampling": stored.to_dict()}) == stored


def test_the_spread_skill_ratio_falls_as_the_temperature_grows_and_the_fit_finds_1():
    loaded = load_model("vae")
    pairs = load_pairs("sample", "test", loaded.degradation).first(12)
    cold, warm = (spread_skill_at(loaded.model, pairs, t, 4) for t in (0.5, 2.0))
    assert cold > 1 > warm
    fit = fit_temperature(loaded.model, pairs, num_samples=4)
    assert 0.5 < fit.temperature < 2.0 and abs(math.log(fit.spread_skill)) < 0.1
    assert fit.trials[0][0] == 1.0 and len(fit.trials) >= 7  # bracketing from 1, then 6 bisections
    assert spread_skill_at(loaded.model, pairs, fit.temperature, 4) == pytest.approx(fit.spread_skill)


def test_a_model_no_temperature_can_calibrate_is_refused(monkeypatch):
    monkeypatch.setattr(recalibration, "spread_skill_at", lambda *args: 3.0)
    loaded = load_model("vae")
    with pytest.raises(ValueError, match="stays above 1 at temperature 16.*retraining"):
        fit_temperature(loaded.model, load_pairs("sample", "test", loaded.degradation).first(2), 2)


def test_calibrate_writes_weights_that_sample_at_the_fitted_temperature(tmp_path, capsys):
    out = tmp_path / "vae-calibrated.pt"
    args = ["calibrate", "--model", "vae", "--data", "sample", "--limit", "8", "--num-samples", "4"]
    assert main([*args, "--pixel-temperature", "1", "--out", str(out), "--device", "cpu"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["images"] == 8 and record["split"] == "test" and abs(math.log(record["spread_skill"])) < 0.1
    sampling = api.load(out, device="cpu").sampling
    assert sampling.temperature == record["temperature"] and sampling.pixel_temperature == 1.0
    assert sampling.calibration["command"].startswith("pyro-sr calibrate")
    assert load_model(out).meta["metrics"] == {}  # measured with the old sampling: not carried over

    table = tmp_path / "table.json"
    evaluate = [
        "evaluate",
        "--model",
        str(out),
        "--data",
        "sample",
        "--limit",
        "4",
        "--num-samples",
        "2",
        "--no-realism",
    ]
    assert main([*evaluate, "--out", str(table)]) == 0
    row = json.loads(table.read_text())["results"][-1]
    assert row["temperature"] == record["temperature"] and row["pixel_temperature"] == 1.0
    assert main([*evaluate, "--temperature", "0.5", "--pixel-temperature", "mean", "--out", str(table)]) == 0
    row = json.loads(table.read_text())["results"][-1]
    assert row["temperature"] == 0.5 and "pixel_temperature" not in row

    lr = torch.rand(1, 3, 8, 8)
    torch.manual_seed(0)
    drawn = api.load(out, device="cpu").sample(lr, 2)
    torch.manual_seed(0)
    explicit = api.load("vae", device="cpu").sample(lr, 2, record["temperature"], pixel_temperature=1.0)
    torch.testing.assert_close(drawn, explicit)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "cnn", "--out", "x.pt"], "is deterministic; calibrate needs a VAE"),
        (["--model", "vae", "--out", "x.png"], "--out must name a .pt file"),
        (["--model", "vae", "--out", "x.pt", "--num-samples", "1"], "calibration needs --num-samples >= 2"),
    ],
)
def test_calibrate_mistakes_are_one_clear_line(tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    assert main(["calibrate", "--data", "sample", "--limit", "2", *extra]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"pyro-sr: error: {err.strip().split('error: ', 1)[1]}" and message in err
    assert not list(tmp_path.iterdir())


def test_a_pixel_temperature_is_mean_or_a_number(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["calibrate", "--model", "vae", "--out", str(tmp_path / "x.pt"), "--pixel-temperature", "hot"])
    assert exit_.value.code == 2 and "expected 'mean' or a number >= 0, got 'hot'" in capsys.readouterr().err
