"""Data-parallel SVI on CPU: two gloo processes on localhost, compared with one process."""

import os
import socket

import pyro
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from pyro.infer import TraceMeanField_ELBO

from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
from pyro_sr.training.distributed import Distributed, from_environment, setup
from pyro_sr.training.step import ELBOStep
from pyro_sr.training.svi import SVIConfig, fit_vae

TINY = CVAEConfig(channels=8, blocks=1)
BATCH = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join(rank: int, world_size: int, port: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)


def sharp_vae() -> ConditionalVAE:
    """A tiny VAE whose guide scale is pinned near zero, so gradients barely depend on the latent noise and a
    two-process step can be compared with a one-process step on the same images."""
    pyro.set_rng_seed(0)
    vae = ConditionalVAE(TINY)
    with torch.no_grad():
        last = vae.posterior_net[-1]
        last.bias[TINY.latent_channels :] = -30.0  # softplus(-30) + 1e-4: scale 1e-4
    return vae


def pairs() -> PairedImages:
    return PairedImages.from_hr(load_bundled_sample(), Degradation())


def gradient_worker(rank: int, world_size: int, port: int, out: str) -> None:
    join(rank, world_size, port)
    torch_dist.init_process_group("gloo")
    vae = sharp_vae()
    lr, hr = next(pairs().batches(BATCH, shard=(rank, world_size)))
    result = gradient_step(vae, distributed=True)(lr, hr, 1.0)
    grads = {name: p.grad for name, p in vae.named_parameters()}
    torch.save({**grads, "norm": torch.tensor(result.grad_norm)}, f"{out}/grad{rank}.pt")
    torch_dist.destroy_process_group()


def gradient_step(vae: ConditionalVAE, distributed: bool) -> ELBOStep:
    """The training step with clipping and skipping out of the way: its gradients stay in ``.grad``."""
    return ELBOStep(vae, TraceMeanField_ELBO(), 1e-9, clip_norm=1e9, skip_factor=1e9, distributed=distributed)


def fit_tiny_vae(out: str, train_images: int, val_images: int) -> ConditionalVAE:
    """One epoch of the tiny VAE on the first bundled images, in batches of 4 per process, into ``out/run``."""
    data = pairs()
    pyro.set_rng_seed(0)
    vae = ConditionalVAE(TINY)
    train, val = torch.arange(train_images), torch.arange(train_images, train_images + val_images)
    fit_vae(
        vae,
        SVIConfig(epochs=1, batch_size=4),
        data.subset(train),
        data.subset(val),
        f"{out}/run",
        device="cpu",
        progress=False,
    )
    return vae


def fit_worker(rank: int, world_size: int, port: int, out: str) -> None:
    join(rank, world_size, port)
    vae = fit_tiny_vae(out, 40, 8)
    torch.save(vae.state_dict(), f"{out}/params{rank}.pt")
    torch_dist.destroy_process_group()


def diverging_validation_worker(rank: int, world_size: int, port: int, out: str) -> None:
    import pyro_sr.training.svi as svi_module
    from pyro_sr.common import TrainingError

    join(rank, world_size, port)
    svi_module.validate = lambda *args, **kwargs: {"val_elbo": float("nan")}  # only rank 0 validates
    try:
        fit_tiny_vae(out, 16, 4)
        outcome = "finished"
    except TrainingError as err:
        outcome = str(err)
    torch.save(outcome, f"{out}/outcome{rank}.pt")
    torch_dist.destroy_process_group()


def test_when_rank_0_stops_every_rank_stops(tmp_path):
    # Rank 0 refuses an epoch whose validation ELBO is NaN; rank 1 must stop too, not wait at a barrier forever.
    mp.spawn(diverging_validation_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    outcomes = [torch.load(tmp_path / f"outcome{r}.pt") for r in range(2)]
    assert "training diverged in epoch 1: val_elbo is nan" in outcomes[0]
    assert outcomes[1].startswith("rank 0 stopped the run in epoch 1")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def cli_fit_worker(rank: int, world_size: int, port: int, out: str, data: tuple[str, ...] = ("sample",)) -> None:
    from pyro_sr.cli import main

    join(rank, world_size, port)
    fit = ["fit", "vae", "--data", *data, "--kl", "linear", "--warmup-steps", "4", "--epochs", "1"]
    code = main(
        [
            *fit,
            "--batch-size",
            "4",
            "--channels",
            "8",
            "--blocks",
            "1",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            f"{out}/run",
        ]
    )
    torch.save(code, f"{out}/rc{rank}.pt")
    torch_dist.destroy_process_group()


def test_two_process_cli_fit_with_a_kl_warm_up_from_zero(tmp_path):
    # At beta = 0 the prior network is masked out of the loss; DDP used to fail on the step after it.
    out = tmp_path / "run"
    mp.spawn(cli_fit_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    assert [torch.load(tmp_path / f"rc{r}.pt") for r in range(2)] == [0, 0]
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 8 and checkpoint["kind"] == "vae"  # 64 images in global batches of 2 x 4


def test_two_process_fit_on_a_folder_of_photos(tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = torch.Generator().manual_seed(0)
    for i in range(2):
        pixels = torch.randint(0, 256, (40, 48, 3), generator=rng, dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(photos / f"{i}.png")
    data = ("folder", "--data-dir", str(photos), "--crops-per-epoch", "24")
    mp.spawn(cli_fit_worker, args=(2, free_port(), str(tmp_path), data), nprocs=2, join=True)
    assert [torch.load(tmp_path / f"rc{r}.pt") for r in range(2)] == [0, 0]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 3  # 24 crops, batches 2 x 4


def test_two_process_gradient_equals_one_process_on_the_union(tmp_path):
    mp.spawn(gradient_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    grads = [torch.load(tmp_path / f"grad{r}.pt") for r in range(2)]
    vae = sharp_vae()
    lr, hr = next(pairs().batches(BATCH))
    gradient_step(vae, distributed=False)(lr, hr, 1.0)
    assert grads[0]["norm"] == grads[1]["norm"]  # so both ranks make the same skip decision
    for name, p in vae.named_parameters():
        assert torch.equal(grads[0][name], grads[1][name]), name  # all-reduced: the same on both ranks
        # equal up to the latent noise (scale 1e-4, amplified by the decoder): within 2% of the largest entry
        assert torch.allclose(grads[0][name], p.grad, rtol=0, atol=2e-2 * p.grad.abs().max()), name


def test_two_process_fit_keeps_ranks_identical_and_resumes_in_one_process(tmp_path):
    mp.spawn(fit_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    params = [torch.load(tmp_path / f"params{r}.pt") for r in range(2)]
    assert all(torch.equal(params[0][k], params[1][k]) for k in params[0])
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [".lock", "best.pt", "checkpoint.pt", "log.jsonl", "steps.jsonl"]
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 5  # 40 images in global batches of 2 x 4
    assert all(torch.equal(checkpoint["train_model"][k], params[0][k]) for k in params[0])  # "model": the EMA
    data = pairs()
    vae = ConditionalVAE(TINY)
    history = fit_vae(
        vae,
        SVIConfig(epochs=2, batch_size=4),
        data.subset(torch.arange(40)),
        data.subset(torch.arange(40, 48)),
        run,
        resume=True,
        progress=False,
    )
    assert [r["epoch"] for r in history] == [1, 2] and history[-1]["step"] == 15  # one process: batches of 4


def test_environment_is_read_like_torchrun_sets_it(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not from_environment().active
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    dist = from_environment()
    assert dist.active and dist.rank == 2 and not dist.is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="bad torchrun environment"):
        from_environment()


def test_a_process_without_a_gpu_of_its_own_is_refused_before_joining():
    rank = Distributed(rank=1, world_size=2, local_rank=torch.cuda.device_count())  # one more than there are
    with pytest.raises(ValueError, match="has no GPU"):
        setup(rank, torch.device("cuda"))
