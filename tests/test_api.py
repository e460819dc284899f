"""The Python API: the README's example runs, and ``upscale`` gives the command line's pixels."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pyro_sr
from pyro_sr.cli import main
from pyro_sr.data import load_bundled_sample
from pyro_sr.data.images import to_uint8

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs(capsys):
    section = README.read_text().split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["x"].shape == (4, 3, 32, 32)
    assert namespace["s"].shape == (16, 4, 3, 32, 32)
    assert namespace["b"].shape == (4,) and torch.isfinite(namespace["b"]).all()
    assert "['cnn', 'seed-cnn', 'vae', 'hvae']" in capsys.readouterr().out


def test_upscale_equals_the_command_line_output(tmp_path):
    hr = load_bundled_sample()[:1].float() / 255
    lr = pyro_sr.degrade(torch.cat([hr, hr], -1))  # a non-square 8x16 input
    Image.fromarray(to_uint8(lr[0])).save(tmp_path / "in.png")
    out = tmp_path / "out"
    assert main(["upscale", str(tmp_path / "in.png"), "--model", "cnn", "--device", "cpu", "--out", str(out)]) == 0
    with Image.open(out / "in.png") as written:
        cli = np.asarray(written)
    with Image.open(tmp_path / "in.png") as given:
        stored = torch.from_numpy(np.asarray(given).copy()).permute(2, 0, 1).float() / 255
    api = pyro_sr.load("cnn", device="cpu").upscale(stored[None])
    assert api.shape == (1, 3, 32, 64) and np.array_equal(to_uint8(api[0]), cli)


def test_a_vae_upscales_to_its_posterior_mean_not_a_mean_of_noisy_draws():
    hr = load_bundled_sample()[:8].float() / 255
    lr = pyro_sr.degrade(hr)
    sr = pyro_sr.load("hvae", device="cpu")
    sr.meta["sampling"] = {**sr.meta["sampling"], "pixel_temperature": 1.0}  # its own samples: likelihood draws
    assert sr.sampling.pixel_temperature == 1.0
    torch.manual_seed(0)
    default = sr.upscale(lr, num_samples=8)
    torch.manual_seed(0)
    assert torch.equal(default, sr.upscale(lr, num_samples=8, pixel_temperature="mean"))
    torch.manual_seed(0)
    noisy = sr.upscale(lr, num_samples=8, pixel_temperature=1.0)
    assert ((default - hr) ** 2).mean() < ((noisy - hr) ** 2).mean()


def test_deterministic_models_refuse_to_sample_and_need_sigma_for_bits():
    sr = pyro_sr.load("cnn", device="cpu")
    hr = load_bundled_sample()[:2].float() / 255
    lr = pyro_sr.degrade(hr)
    assert not sr.probabilistic and sr.scale == 4 and sr.kind == "cnn"
    with pytest.raises(ValueError, match="deterministic"):
        sr.sample(lr)
    with pytest.raises(ValueError, match="sigma"):
        sr.bits_per_dim(hr, lr)
    bits = sr.bits_per_dim(hr, lr, sigma=0.08)
    assert bits.shape == (2,) and (bits > 0).all()
    with pytest.raises(ValueError, match=r"\(N, 3, h, w\)"):
        sr.upscale(lr[0])


def test_unknown_names_fail_with_one_clear_error():
    with pytest.raises(ValueError, match="no bundled model of that name"):
        pyro_sr.load("no-such-model")
    with pytest.raises(AttributeError):
        pyro_sr.no_such_function  # noqa: B018
