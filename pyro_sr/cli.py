"""The ``pyro-sr`` command line: it parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pyro_sr.data.augment import AUGMENTATION_HELP, AUGMENTATIONS
from pyro_sr.data.degradation import DEGRADATIONS, SUPPORTED_SCALES, Degradation
from pyro_sr.diagnostics.report import DiagnoseConfig as DiagnoseDefaults
from pyro_sr.inference.self_ensemble import ENSEMBLE_HELP
from pyro_sr.models.cnn import CNN_ARCHS, CNNConfig
from pyro_sr.models.hvae import HVAEConfig
from pyro_sr.training.cnn import TrainingError
from pyro_sr.training.device import DEVICE_CHOICES

if TYPE_CHECKING:
    from pyro_sr.pretrained import LoadedModel

DEFAULT_SAMPLES = 16
DATA_HELP = (
    "cifar10 (needs --data-dir or --download), sample (the 64 bundled test images), or folder (--data-dir of images)"
)


def _add_data_args(p: argparse.ArgumentParser, splits: tuple[str, ...], default_split: str, sources: tuple[str, ...]):
    p.add_argument("--data", default="cifar10", choices=sources, help=DATA_HELP)
    if len(splits) > 1:
        p.add_argument("--split", default=default_split, choices=splits, help="data split (default: %(default)s)")
    p.add_argument("--data-dir", type=Path, help="folder with cifar10_{train,test}.npz or cifar-10-batches-py")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision into --data-dir")
    p.add_argument("--val-size", type=int, default=5000, help="images held out from train for validation")


def _add_degradation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scale", type=int, default=4, choices=SUPPORTED_SCALES, help="upscaling factor (default: %(default)s)"
    )
    p.add_argument(
        "--degradation",
        default="gaussian",
        choices=DEGRADATIONS,
        help="gaussian: the paper's blur (sigma) + subsampling at offset scale//2; bicubic: antialiased",
    )
    p.add_argument("--sigma", type=float, default=1.0, help="Gaussian blur sigma (default: %(default)s)")


def _degradation(args: argparse.Namespace) -> Degradation:
    return Degradation(args.degradation, args.scale, args.sigma)


def _run_meta(args: argparse.Namespace, degradation: Degradation) -> dict:
    """What a checkpoint records about its run: the degradation, the data and the command that made it."""
    return {"degradation": vars(degradation), "data": args.data, "command": args.command_line}


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def _seed(seed: int) -> None:
    """Seed the VAEs' sampling, so that a command's samples and scores are the same on every run."""
    import pyro

    pyro.set_rng_seed(seed)


def _augmentations(names: list[str] | None) -> tuple[str, ...] | None:
    """``--augment`` as a tuple; ``none`` turns augmentation off; unset keeps the recipe's."""
    if names is None:
        return None
    if "none" in names and len(names) > 1:
        raise ValueError("--augment none cannot be combined with other augmentations")
    return tuple(name for name in names if name != "none")


def _trained_cnn(spec: str, flag: str, degradation: Degradation) -> LoadedModel:
    """A trained CNN for ``flag`` (bundled name or checkpoint), refused unless it was trained for ``degradation``."""
    from pyro_sr.pretrained import load_model

    loaded = load_model(spec)
    if loaded.kind != "cnn":
        raise ValueError(f"{flag} must be a CNN, but {spec} is a {loaded.kind}")
    if loaded.degradation != degradation:
        raise ValueError(f"{flag} {spec} was trained for another degradation ({loaded.degradation})")
    return loaded


def _cnn_config(args: argparse.Namespace, init_config: CNNConfig | None) -> CNNConfig:
    """The architecture from the flags, or from ``--init``'s checkpoint; flags that contradict it are refused,
    except more ``--blocks`` for a resnet, which deepens it (``load_deepened``)."""
    given = {"arch": args.arch, "channels": args.channels, "blocks": args.blocks}
    if init_config is None:
        defaults = CNNConfig()
        given = {key: getattr(defaults, key) if value is None else value for key, value in given.items()}
        return CNNConfig(scale=args.scale, **given)
    deepen = init_config.arch == "resnet" and (args.blocks or 0) > init_config.blocks
    for key, value in given.items():
        if value is not None and value != getattr(init_config, key) and not (key == "blocks" and deepen):
            hint = " (a resnet can be deepened, not made shallower)" if key == "blocks" else ""
            raise ValueError(
                f"--{key} {value} contradicts --init {args.init}, which has {key} {getattr(init_config, key)}{hint}"
            )
    return replace(init_config, blocks=args.blocks) if deepen else init_config


def cmd_fit_cnn(args: argparse.Namespace) -> int:
    from pyro_sr.training.cnn import TRAIN_PRESETS, fit_cnn
    from pyro_sr.training.data import training_data

    _set_threads(args.threads)
    degradation = _degradation(args)
    init = _trained_cnn(args.init, "--init", degradation) if args.init else None
    model_config = _cnn_config(args, init and init.model.config)
    preset = TRAIN_PRESETS[args.recipe or ("paper" if model_config.arch == "seed" else "default")]
    overrides = {
        k: v
        for k, v in (
            ("epochs", args.epochs),
            ("batch_size", args.batch_size),
            ("lr", args.lr),
            ("seed", args.seed),
            ("precision", args.precision),
            ("augment", _augmentations(args.augment)),
        )
        if v is not None
    }
    train_config = replace(preset, **overrides)
    train, val = training_data(
        args.data, degradation, args.data_dir, args.download, args.val_size, args.crops_per_epoch
    )
    history = fit_cnn(
        model_config,
        train_config,
        train,
        val,
        args.out,
        device=args.device,
        resume=args.resume,
        meta={**_run_meta(args, degradation), **({"init": {"model": args.init, **init.meta}} if init else {})},
        degradation=degradation,
        progress=not args.quiet,
        init_weights=init and init.model.state_dict(),
    )
    if history:
        print(json.dumps(history[-1]))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pyro_sr.data.datasets import load_pairs
    from pyro_sr.data.images import atomic_write
    from pyro_sr.evaluation.evaluate import evaluate_models, format_table

    _set_threads(args.threads)
    _seed(args.seed)
    degradation = _degradation(args)
    pairs = load_pairs(args.data, args.split, degradation, args.data_dir, args.download, args.val_size)
    if args.limit:
        pairs = pairs.subset(torch.arange(min(args.limit, len(pairs))))
    num_samples = args.num_samples or DEFAULT_SAMPLES
    rows = evaluate_models(
        args.checkpoints,
        pairs,
        degradation,
        args.device,
        num_samples,
        args.temperature,
        args.lr_consistent,
        args.self_ensemble,
    )
    print(format_table(rows))
    if args.out:
        report = {
            "data": args.data,
            "split": args.split,
            "images": len(pairs),
            "degradation": vars(degradation),
            "results": rows,
        }
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
        print(f"wrote {args.out}")
    return 0


def _fit_svi(args: argparse.Namespace, vae_factory, kind: str) -> int:
    """Shared by ``fit vae`` and ``fit hvae``: the one SVI loop, with the model built by ``vae_factory``."""
    import pyro

    from pyro_sr.inference.annealing import KLSchedule
    from pyro_sr.inference.distributed import from_environment
    from pyro_sr.inference.svi import SVIConfig, fit_vae
    from pyro_sr.training.data import training_data

    _set_threads(args.threads)
    degradation = _degradation(args)
    kl = KLSchedule(args.kl, args.beta, warmup_steps=args.warmup_steps, cycle_steps=args.cycle_steps)
    config = SVIConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        elbo=args.elbo,
        kl=kl,
        seed=args.seed,
        group_kl_weights=getattr(args, "group_kl_weights", None),
    )
    train, val = training_data(
        args.data, degradation, args.data_dir, args.download, args.val_size, args.crops_per_epoch
    )
    pyro.set_rng_seed(config.seed)  # the initial weights
    history = fit_vae(
        vae_factory(),
        kind,
        config,
        train,
        val,
        args.out,
        device=args.device,
        resume=args.resume,
        meta=_run_meta(args, degradation),
        progress=not args.quiet,
    )
    if history and from_environment().is_main:
        print(json.dumps(history[-1]))
    return 0


def _overrides(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def cmd_fit_vae(args: argparse.Namespace) -> int:
    from pyro_sr.models.cvae import CVAE_PRESETS, ConditionalVAE

    overrides = _overrides(args, ("latent_channels", "channels", "blocks"))
    model_config = replace(CVAE_PRESETS[args.preset], scale=args.scale, **overrides)
    return _fit_svi(args, lambda: ConditionalVAE(model_config), "cvae")


def cmd_fit_hvae(args: argparse.Namespace) -> int:
    from pyro_sr.models.hvae import HierarchicalVAE

    model_config = HVAEConfig(
        scale=args.scale,
        channels=args.channels,
        lr_blocks=args.lr_blocks,
        latent_channels=args.latent_channels,
        groups_per_scale=args.groups_per_scale,
        blocks_per_group=args.blocks_per_group,
    )
    if args.base is None:
        return _fit_svi(args, lambda: HierarchicalVAE(model_config), "hvae")
    base = _trained_cnn(args.base, "--base", _degradation(args))
    return _fit_svi(args, lambda: HierarchicalVAE.refining(base.model, model_config), "hvae")


def cmd_sample(args: argparse.Namespace) -> int:
    from pyro_sr.data.datasets import load_pairs, to_float
    from pyro_sr.data.images import load_rgb
    from pyro_sr.inference.upscale import sample_to_files
    from pyro_sr.pretrained import load_model
    from pyro_sr.training.device import resolve_device

    _set_threads(args.threads)
    _seed(args.seed)
    dev = resolve_device(args.device)
    loaded = load_model(args.checkpoint, dev)
    num_samples = args.num_samples or DEFAULT_SAMPLES
    if args.images:
        for path in args.images:
            lr = to_float(load_rgb(path)).unsqueeze(0).to(dev)
            sample_to_files(
                loaded,
                lr,
                [path.stem],
                args.out,
                num_samples,
                args.temperature,
                tile=args.tile,
                lr_consistent=args.lr_consistent,
            )
    else:
        pairs = load_pairs(args.data, args.split, loaded.degradation, args.data_dir, args.download, args.val_size)
        pairs = pairs.subset(torch.arange(min(args.limit, len(pairs))))
        names = [f"{args.data}_{args.split}_{i:05d}" for i in range(len(pairs))]
        lr, hr = next(pairs.batches(len(pairs), device=dev))
        sample_to_files(
            loaded,
            lr,
            names,
            args.out,
            num_samples,
            args.temperature,
            hr=hr,
            tile=args.tile,
            lr_consistent=args.lr_consistent,
        )
    print(f"wrote samples to {args.out}")
    return 0


def cmd_upscale(args: argparse.Namespace) -> int:
    from pyro_sr.inference.upscale import upscale_files

    _set_threads(args.threads)
    _seed(args.seed)
    for path in upscale_files(
        args.images,
        args.model,
        args.out,
        scale=args.scale,
        device=args.device,
        tile=args.tile,
        num_samples=args.num_samples,
        temperature=args.temperature,
        lr_consistent=args.lr_consistent,
        ensemble=args.self_ensemble,
    ):
        print(path)
    return 0


def cmd_likelihood(args: argparse.Namespace) -> int:
    from pyro_sr.data.datasets import load_pairs
    from pyro_sr.data.images import atomic_write
    from pyro_sr.evaluation.likelihood import format_likelihood_table, likelihood_rows

    _set_threads(args.threads)
    _seed(args.seed)
    degradation = _degradation(args)
    pairs = load_pairs("cifar10", "test", degradation, args.data_dir, args.download, args.val_size)
    fit_pairs = load_pairs("cifar10", "val", degradation, args.data_dir, args.download, args.val_size)
    if args.limit:
        pairs = pairs.subset(torch.arange(min(args.limit, len(pairs))))
    rows = likelihood_rows(args.checkpoints, pairs, fit_pairs, degradation, args.num_samples, args.device)
    print(format_likelihood_table(rows))
    if args.out:
        report = {"data": "cifar10 test", "images": len(pairs), "degradation": vars(degradation), "results": rows}
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
        print(f"wrote {args.out}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from pyro_sr.data.datasets import load_pairs
    from pyro_sr.diagnostics.report import DiagnoseConfig, diagnose, diagnosed_checkpoint, is_bundled_name
    from pyro_sr.pretrained import load_model
    from pyro_sr.training.device import resolve_device

    _set_threads(args.threads)
    dev = resolve_device(args.device)
    degradation = load_model(args.checkpoint or diagnosed_checkpoint(args.run_dir)).degradation
    pairs = load_pairs(args.data, args.split, degradation, args.data_dir, args.download, args.val_size)
    config = DiagnoseConfig(
        images=args.images,
        ks=tuple(args.iw_samples),
        ppc_images=args.ppc_images,
        ppc_samples=args.ppc_samples,
        seed=args.seed,
    )
    default_out = Path(f"{args.run_dir}-diagnostics") if is_bundled_name(args.run_dir) else args.run_dir / "diagnostics"
    out = args.out or default_out
    print(f"wrote {diagnose(args.run_dir, pairs, out, args.checkpoint, config, dev)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pyro_sr.demo import run_demo

    _set_threads(args.threads)
    print(run_demo(args.out, device=args.device))
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something: not for unset options, flags, or helps that name their own."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyro-sr", description="Probabilistic image super-resolution in Pyro.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="auto uses CUDA when available")
    common.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")

    fit_common = argparse.ArgumentParser(add_help=False)
    _add_data_args(fit_common, ("train",), "train", ("cifar10", "sample", "folder"))
    _add_degradation_args(fit_common)
    fit_common.add_argument("--crops-per-epoch", type=int, default=10000, help="--data folder: random crops per epoch")
    fit_common.add_argument("--out", type=Path, required=True, help="run folder: log.jsonl and checkpoint.pt")
    fit_common.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    fit_common.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")

    fit = sub.add_parser("fit", help="train a model")
    fit_sub = fit.add_subparsers(dest="model", required=True, metavar="MODEL")
    cnn = fit_sub.add_parser(
        "cnn",
        parents=[common, fit_common],
        help="train a CNN super-resolver with MSE",
        formatter_class=_HelpFormatter,
    )
    cnn.add_argument("--arch", choices=CNN_ARCHS, help="seed: the paper's CNN; resnet: ours (default: resnet)")
    cnn.add_argument(
        "--recipe", choices=("paper", "default"), help="training preset (default: paper for seed, default for resnet)"
    )
    cnn.add_argument("--epochs", type=int, help="override the recipe's epochs")
    cnn.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    cnn.add_argument("--lr", type=float, help="override the recipe's learning rate")
    cnn.add_argument("--seed", type=int, help="override the recipe's seed")
    cnn.add_argument(
        "--augment",
        nargs="+",
        choices=("none", *AUGMENTATIONS),
        metavar="NAME",
        help=f"exact augmentations, LR recomputed ({AUGMENTATION_HELP}; none: off); "
        "default: hflip for the default recipe, none for paper",
    )
    cnn.add_argument("--precision", choices=("fp32", "bf16"), help="bf16: mixed-precision autocast (default: fp32)")
    cnn.add_argument("--channels", type=int, help=f"resnet width (default: {CNNConfig.channels})")
    cnn.add_argument("--blocks", type=int, help=f"resnet residual blocks (default: {CNNConfig.blocks})")
    cnn.add_argument(
        "--init",
        metavar="CNN",
        help="start from this trained CNN's weights (bundled name or checkpoint; its architecture), "
        "with a fresh optimizer and schedule: fine-tuning, or a warm restart; more --blocks "
        "deepens a resnet with identity blocks (same function at the start)",
    )
    cnn.set_defaults(func=cmd_fit_cnn)

    svi = argparse.ArgumentParser(add_help=False)
    svi.add_argument(
        "--elbo",
        default="trace",
        choices=("trace", "meanfield"),
        help="trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL)",
    )
    svi.add_argument("--kl", default="constant", choices=("constant", "linear", "cyclical"), help="KL schedule")
    svi.add_argument("--beta", type=float, default=1.0, help="KL weight (the paper: 0.5); the schedule's maximum")
    svi.add_argument("--warmup-steps", type=int, default=0, help="linear: steps from 0 to beta; cyclical: ramp")
    svi.add_argument("--cycle-steps", type=int, default=0, help="cyclical: steps per cycle")
    svi.add_argument("--epochs", type=int, default=20)
    svi.add_argument("--batch-size", type=int, default=32)
    svi.add_argument("--lr", type=float, default=1e-3, help="ClippedAdam learning rate, decayed to 5%% by the end")
    svi.add_argument("--seed", type=int, default=0)

    vae = fit_sub.add_parser(
        "vae",
        parents=[common, fit_common, svi],
        help="fit the conditional VAE with SVI",
        formatter_class=_HelpFormatter,
    )
    vae.add_argument(
        "--preset",
        default="default",
        choices=("default", "paper"),
        help="paper: the paper's VAE (linear 192-d prior, decoder from z alone, sigma 0.01)",
    )
    vae.add_argument("--latent-channels", type=int, help="override the preset's latent channels per LR pixel")
    vae.add_argument("--channels", type=int, help="override the preset's network width")
    vae.add_argument("--blocks", type=int, help="override the preset's residual blocks")
    vae.set_defaults(func=cmd_fit_vae)

    hvae = fit_sub.add_parser(
        "hvae",
        parents=[common, fit_common, svi],
        help="fit the hierarchical VAE (spatial latent groups, coarse to fine) with SVI",
        formatter_class=_HelpFormatter,
    )
    hvae.add_argument("--channels", type=int, default=HVAEConfig.channels, help="LR-grid width, halved per 2x step")
    hvae.add_argument("--lr-blocks", type=int, default=HVAEConfig.lr_blocks, help="residual blocks of the LR encoder")
    hvae.add_argument("--latent-channels", type=int, default=HVAEConfig.latent_channels, help="latent channels/group")
    hvae.add_argument(
        "--groups-per-scale",
        type=int,
        nargs="+",
        metavar="N",
        help="latent groups per resolution, LR grid first; unset: 2, then 1 per 2x step",
    )
    hvae.add_argument(
        "--blocks-per-group", type=int, default=HVAEConfig.blocks_per_group, help="residual blocks after each group"
    )
    hvae.add_argument(
        "--group-kl-weights",
        type=float,
        nargs="+",
        metavar="W",
        help="multiply each latent group's KL factor (z1 first), e.g. 1 1 1 2; unset: all 1",
    )
    hvae.add_argument(
        "--base",
        metavar="CNN",
        help="refine this trained CNN's prediction (bundled name or checkpoint; kept frozen) instead "
        "of bicubic upsampling",
    )
    hvae.set_defaults(func=cmd_fit_hvae)

    sample_args = argparse.ArgumentParser(add_help=False)
    sample_args.add_argument("--num-samples", type=int, help=f"VAE samples per image (default: {DEFAULT_SAMPLES})")
    sample_args.add_argument("--temperature", type=float, default=1.0, help="scale of the prior (default: 1.0)")
    sample_args.add_argument("--seed", type=int, default=0, help="random seed of the samples (default: 0)")
    sample_args.add_argument(
        "--lr-consistent",
        action="store_true",
        help="project every output onto the images whose degradation is the LR input",
    )

    sm = sub.add_parser("sample", parents=[common, sample_args], help="draw super-resolutions from a VAE")
    sm.add_argument("checkpoint", help="VAE run folder, checkpoint file or bundled name")
    sm.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="LR images (else --data images)")
    _add_data_args(sm, ("train", "val", "test"), "test", ("cifar10", "sample"))
    sm.add_argument("--limit", type=int, default=8, help="with --data: the first N images (default: %(default)s)")
    sm.add_argument("--tile", type=int, default=128, help="LR tile size that bounds memory (default: %(default)s)")
    sm.add_argument("--out", type=Path, required=True, help="writes <name>.png (mean), _sample<k>, _std, _grid")
    sm.set_defaults(func=cmd_sample)

    ev = sub.add_parser(
        "evaluate", parents=[common, sample_args], help="score bicubic, nearest and checkpoints on a data set"
    )
    ev.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT", help="run folders, .pt files or bundled names")
    _add_data_args(ev, ("train", "val", "test"), "test", ("cifar10", "sample"))
    _add_degradation_args(ev)
    ev.add_argument("--limit", type=int, help="only the first N images")
    ev.add_argument("--out", type=Path, help="also write the table as JSON here")
    ev.add_argument(
        "--self-ensemble",
        action="store_true",
        help=f"score CNNs averaged over the degradation's exact symmetries ({ENSEMBLE_HELP})",
    )
    ev.set_defaults(func=cmd_evaluate)

    up = sub.add_parser("upscale", parents=[common, sample_args], help="super-resolve image files")
    up.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    up.add_argument("--model", default="cnn", help="checkpoint path or bundled name (default: %(default)s)")
    up.add_argument("--scale", type=int, choices=SUPPORTED_SCALES, help="expected model scale")
    up.add_argument("--tile", type=int, default=128, help="LR tile size that bounds memory (default: %(default)s)")
    up.add_argument("--out", type=Path, required=True, help="output folder; writes OUT/<stem>.png")
    up.add_argument(
        "--self-ensemble",
        action="store_true",
        help=f"CNNs: average over the degradation's exact symmetries ({ENSEMBLE_HELP})",
    )
    up.set_defaults(func=cmd_upscale)

    lk = sub.add_parser(
        "likelihood",
        parents=[common],
        help="conditional bits/dim -log2 p(HR | LR) on the CIFAR-10 test images",
        description="Bits per HR dimension on dequantised 8-bit CIFAR-10 test images: VAEs by the ELBO and the "
        "importance-weighted bound with K samples; CNNs (and bicubic) as a Normal around their prediction whose "
        "scale is fitted on the validation split.",
    )
    lk.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT", help="run folders, .pt files or bundled names")
    lk.add_argument("--data-dir", type=Path, help="folder with cifar10_{train,test}.npz or cifar-10-batches-py")
    lk.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision into --data-dir")
    lk.add_argument("--val-size", type=int, default=5000, help="validation images (default: %(default)s)")
    _add_degradation_args(lk)
    lk.add_argument("--num-samples", type=int, default=64, help="importance samples K (default: %(default)s)")
    lk.add_argument("--limit", type=int, help="only the first N test images")
    lk.add_argument("--seed", type=int, default=0, help="random seed of the guide's draws (default: %(default)s)")
    lk.add_argument("--out", type=Path, help="also write the table as JSON here")
    lk.set_defaults(func=cmd_likelihood)

    dg = sub.add_parser(
        "diagnose",
        parents=[common],
        help="ELBO diagnostics of a fitted VAE: curves, per-group KL, IWAE gap, Pareto k-hat, calibration",
        description="Write a report folder (summary.md, PNG figures, diagnostics.nc for ArviZ) for a VAE run.",
    )
    dg.add_argument(
        "run_dir",
        type=Path,
        metavar="RUN_DIR",
        help="a VAE run folder (log.jsonl, steps.jsonl, checkpoint.pt) or a bundled VAE name",
    )
    dg.add_argument("--checkpoint", type=Path, help="checkpoint to diagnose (default: RUN_DIR/checkpoint.pt)")
    _add_data_args(dg, ("train", "val", "test"), "test", ("cifar10", "sample"))
    dg.add_argument(
        "--images",
        type=int,
        default=DiagnoseDefaults.images,
        help="images for the variational fit and active units (default: %(default)s)",
    )
    dg.add_argument(
        "--iw-samples",
        type=int,
        nargs="+",
        default=list(DiagnoseDefaults.ks),
        metavar="K",
        help="importance sample sizes (default: %(default)s)",
    )
    dg.add_argument(
        "--ppc-images",
        type=int,
        default=DiagnoseDefaults.ppc_images,
        help="images for predictive checks (default: %(default)s)",
    )
    dg.add_argument(
        "--ppc-samples",
        type=int,
        default=DiagnoseDefaults.ppc_samples,
        help="predictive draws per image (default: %(default)s)",
    )
    dg.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    dg.add_argument("--out", type=Path, help="report folder (default: RUN_DIR/diagnostics, or NAME-diagnostics)")
    dg.set_defaults(func=cmd_diagnose)

    demo = sub.add_parser("demo", parents=[common], help="bundled model on bundled images: a PNG grid and metrics")
    demo.add_argument("--out", type=Path, default=Path("pyro-sr-demo"), help="output folder (default: %(default)s)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = "pyro-sr " + " ".join(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, TrainingError) as err:
        print(f"pyro-sr: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pyro-sr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
