"""``pyro-sr fit cnn|vae|hvae``: train a model into a run folder."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from pyro_sr.cli.args import (
    HelpFormatter,
    add_cifar_dir_args,
    add_data_args,
    add_degradation_args,
    count,
    degradation,
    natural,
    nonnegative,
    positive,
)
from pyro_sr.common import check_writable_dir, seed_everything, set_threads
from pyro_sr.data.augment import AUGMENTATION_HELP, AUGMENTATIONS, augmentations_from_names
from pyro_sr.data.datasets import load_cifar10_labeled, train_val_split
from pyro_sr.models.cnn import CNN_ARCHS, CNNConfig
from pyro_sr.models.cvae import CVAE_PRESETS, ConditionalVAE
from pyro_sr.models.hvae import UPSAMPLE_MODES, HierarchicalVAE, HVAEConfig, load_grown
from pyro_sr.models.judge import JudgeConfig
from pyro_sr.models.likelihoods import DEFAULT_MIXTURES, LIKELIHOODS
from pyro_sr.training.annealing import SCHEDULES
from pyro_sr.training.cnn import cnn_config_for, fit_cnn, train_config_for
from pyro_sr.training.data import training_data
from pyro_sr.training.distributed import from_environment
from pyro_sr.training.elbo import ELBOS
from pyro_sr.training.judge import JudgeTrainConfig, fit_judge
from pyro_sr.training.precision import PRECISION_HELP, PRECISIONS
from pyro_sr.training.run import final_epoch, run_meta, stored_progress
from pyro_sr.training.svi import SVIConfig, fit_vae
from pyro_sr.weights.loading import load_trained

SVI_DEFAULTS = SVIConfig()


def _fit_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    add_data_args(parent, ("train",), "train", ("cifar10", "sample", "folder"))
    add_degradation_args(parent)
    parent.add_argument("--crops-per-epoch", type=count, default=10000, help="--data folder: random crops per epoch")
    parent.add_argument("--out", type=Path, required=True, help="run folder: log.jsonl and checkpoint.pt")
    parent.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint, to its own epochs unless --epochs is given",
    )
    _add_stop_after(parent)
    parent.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    return parent


def _add_stop_after(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stop-after",
        type=count,
        metavar="EPOCH",
        help="stop after this epoch while the learning rate keeps the schedule of --epochs; --resume goes on as if "
        "the run had never stopped (a run split across sessions)",
    )


def _svi_parent() -> argparse.ArgumentParser:
    d = SVI_DEFAULTS
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--elbo",
        choices=ELBOS,
        help=f"trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL) (default: {d.elbo})",
    )
    parent.add_argument("--kl", choices=SCHEDULES, help=f"KL schedule (default: {d.kl.kind})")
    parent.add_argument(
        "--beta",
        type=nonnegative,
        help=f"KL weight (the paper: 0.5); the schedule's maximum (default: {d.kl.beta})",
    )
    parent.add_argument("--warmup-steps", type=natural, help="KL warm-up: linear: steps from 0 to beta; cyclical: ramp")
    parent.add_argument("--cycle-steps", type=count, help="cyclical: steps per cycle")
    parent.add_argument("--epochs", type=count, help=f"default: {d.epochs}")
    parent.add_argument("--batch-size", type=count, help=f"default: {d.batch_size}")
    parent.add_argument(
        "--lr",
        type=positive,
        help=f"Adam learning rate (objective per image and dimension), decayed to {100 * d.final_lr_fraction:.0f}%% "
        f"by the end (default: {d.lr})",
    )
    parent.add_argument(
        "--lr-warmup-steps",
        type=natural,
        help=f"first steps, over which the learning rate rises linearly to --lr (default: {d.lr_warmup_steps})",
    )
    parent.add_argument(
        "--free-bits",
        type=nonnegative,
        help="nats per image: a latent group's KL below this costs nothing, so no group collapses; needs "
        f"--elbo meanfield (default: {d.free_bits})",
    )
    parent.add_argument(
        "--ema-decay",
        type=float,
        help=f"decay of the weights' moving average that is validated and saved; 0: none (default: {d.ema_decay})",
    )
    parent.add_argument("--precision", choices=PRECISIONS, help=f"{PRECISION_HELP} (default: {d.precision})")
    parent.add_argument("--seed", type=natural, help=f"default: {d.seed}")
    parent.add_argument(
        "--likelihood",
        choices=LIKELIHOODS,
        help="pixel likelihood: normal (one scale per channel), normal-pixel (a scale per pixel), dmol (discretised "
        "mixture of logistics on the 8-bit values) (default: normal)",
    )
    parent.add_argument("--mixtures", type=count, help=f"dmol: components per pixel (default: {DEFAULT_MIXTURES})")
    return parent


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, sampling) -> None:
    fit = sub.add_parser("fit", help="train a model")
    fit_sub = fit.add_subparsers(dest="model", required=True, metavar="MODEL")
    fit_common, svi = _fit_parent(), _svi_parent()

    cnn = fit_sub.add_parser(
        "cnn", parents=[common, fit_common], help="train a CNN super-resolver with MSE", formatter_class=HelpFormatter
    )
    cnn.add_argument("--arch", choices=CNN_ARCHS, help="seed: the paper's CNN; resnet: ours (default: resnet)")
    cnn.add_argument(
        "--recipe", choices=("paper", "default"), help="training preset (default: paper for seed, default for resnet)"
    )
    cnn.add_argument("--epochs", type=count, help="override the recipe's epochs")
    cnn.add_argument("--batch-size", type=count, help="override the recipe's batch size")
    cnn.add_argument("--lr", type=positive, help="override the recipe's learning rate")
    cnn.add_argument("--seed", type=natural, help="override the recipe's seed")
    cnn.add_argument(
        "--augment",
        nargs="+",
        choices=("none", *AUGMENTATIONS),
        metavar="NAME",
        help=f"exact augmentations, LR recomputed ({AUGMENTATION_HELP}; none: off); "
        "default: hflip for the default recipe, none for paper",
    )
    cnn.add_argument("--precision", choices=PRECISIONS, help=f"{PRECISION_HELP} (default: fp32)")
    cnn.add_argument("--channels", type=count, help=f"resnet width (default: {CNNConfig.channels})")
    cnn.add_argument("--blocks", type=natural, help=f"resnet residual blocks (default: {CNNConfig.blocks})")
    cnn.add_argument(
        "--init",
        metavar="MODEL",
        help="start from this trained CNN's weights (bundled name, checkpoint file or run folder; its architecture), "
        "with a fresh optimizer and schedule: fine-tuning, or a warm restart; more --blocks "
        "deepens a resnet with identity blocks (same function at the start)",
    )
    cnn.set_defaults(func=run_fit_cnn)

    vae = fit_sub.add_parser(
        "vae", parents=[common, fit_common, svi], help="fit the conditional VAE with SVI", formatter_class=HelpFormatter
    )
    vae.add_argument(
        "--preset",
        default="default",
        choices=tuple(CVAE_PRESETS),
        help="paper: the paper's VAE (linear 192-d prior, decoder from z alone, sigma 0.01)",
    )
    vae.add_argument("--latent-channels", type=count, help="override the preset's latent channels per LR pixel")
    vae.add_argument("--channels", type=count, help="override the preset's network width")
    vae.add_argument("--blocks", type=natural, help="override the preset's residual blocks")
    vae.set_defaults(func=run_fit_vae)

    hvae = fit_sub.add_parser(
        "hvae",
        parents=[common, fit_common, svi],
        help="fit the hierarchical VAE (spatial latent groups, coarse to fine) with SVI",
        formatter_class=HelpFormatter,
    )
    hvae.add_argument(
        "--channels", type=count, help=f"LR-grid width, halved per 2x step (default: {HVAEConfig.channels})"
    )
    hvae.add_argument(
        "--lr-blocks", type=natural, help=f"residual blocks of the LR encoder (default: {HVAEConfig.lr_blocks})"
    )
    hvae.add_argument(
        "--latent-channels", type=count, help=f"latent channels per group (default: {HVAEConfig.latent_channels})"
    )
    hvae.add_argument(
        "--groups-per-scale",
        type=natural,
        nargs="+",
        metavar="N",
        help="latent groups per resolution, LR grid first; unset: 2, then 1 per 2x step",
    )
    hvae.add_argument(
        "--blocks-per-group",
        type=natural,
        help=f"residual blocks after each group (default: {HVAEConfig.blocks_per_group})",
    )
    hvae.add_argument(
        "--output-blocks",
        type=natural,
        help="residual blocks on the HR grid before the output heads, which also read the base prediction "
        f"(default: {HVAEConfig.output_blocks})",
    )
    hvae.add_argument(
        "--upsample",
        choices=UPSAMPLE_MODES,
        help="how the top-down path doubles its grid: shuffle (conv, pixel shuffle) or bilinear (resize, conv); "
        f"with --init, bilinear converts a shuffle-trained VAE (default: {HVAEConfig.upsample})",
    )
    hvae.add_argument(
        "--group-kl-weights",
        type=nonnegative,
        nargs="+",
        metavar="W",
        help="multiply each latent group's KL factor (z1 first), e.g. 1 1 1 2; unset: all 1",
    )
    hvae.add_argument(
        "--base",
        metavar="MODEL",
        help="refine this trained CNN's prediction (bundled name, checkpoint file or run folder; kept frozen) instead "
        "of bicubic upsampling",
    )
    hvae.add_argument(
        "--init",
        metavar="MODEL",
        help="start from this trained HVAE's weights (bundled name, checkpoint file or run folder; its architecture "
        "and base), with a fresh optimizer and schedule: fine-tuning, or a warm restart; more --output-blocks "
        "grows it with identity blocks, more --channels widens it with channels nothing reads yet, and more "
        "--groups-per-scale adds latent groups (after a resolution's trained ones) that start at the prior and "
        "change nothing (all three: the same function at the start); --upsample bilinear resizes its 2x steps",
    )
    hvae.set_defaults(func=run_fit_hvae)

    judge = fit_sub.add_parser(
        "judge",
        parents=[common],
        help="train the CIFAR-10 classifier that judges super-resolutions (accuracy, classifier-KID/FID)",
        formatter_class=HelpFormatter,
    )
    add_cifar_dir_args(judge)
    judge.add_argument("--out", type=Path, required=True, help="run folder: log.jsonl and checkpoint.pt")
    judge.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    _add_stop_after(judge)
    judge.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    judge.add_argument("--epochs", type=count, help=f"default: {JudgeTrainConfig.epochs}")
    judge.add_argument("--batch-size", type=count, help=f"default: {JudgeTrainConfig.batch_size}")
    judge.add_argument("--lr", type=positive, help=f"peak of the triangular schedule (default: {JudgeTrainConfig.lr})")
    judge.add_argument("--precision", choices=PRECISIONS, help=f"{PRECISION_HELP} (default: auto)")
    judge.add_argument("--seed", type=natural, help=f"default: {JudgeTrainConfig.seed}")
    judge.add_argument(
        "--widths", type=count, nargs="+", metavar="W", help=f"stem and stage widths (default: {JudgeConfig.widths})"
    )
    judge.set_defaults(func=run_fit_judge)


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` that were given (not None)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _prepare_run(args: argparse.Namespace) -> int:
    """Before any work: the run folder must be writable, and ``--resume`` without ``--epochs`` continues to the
    epochs the run was started for (not to the default). Returns the epochs a resumed run has trained, which only
    ``--stop-after`` needs (0 for a new run, and when the checkpoint need not be read before training loads it)."""
    check_writable_dir(args.out)
    if not args.resume or (args.epochs is not None and getattr(args, "stop_after", None) is None):
        return 0
    epochs, trained = stored_progress(args.out)
    if args.epochs is None:
        args.epochs = epochs
    return trained


def _report_end(history: list[dict], stop_after: int | None, epochs: int) -> None:
    """The last epoch's record on stdout; on stderr, how to go on when ``--stop-after`` ended the run early."""
    if not history:
        return
    print(json.dumps(history[-1]))
    if stop_after is not None and history[-1]["epoch"] < epochs:
        print(f"stopped after epoch {history[-1]['epoch']} of {epochs}; --resume goes on", file=sys.stderr)


def run_fit_cnn(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    trained = _prepare_run(args)
    deg = degradation(args)
    init = load_trained(args.init, "--init", deg) if args.init else None
    model_config = cnn_config_for(args.scale, args.arch, args.channels, args.blocks, init and init.model.config)
    train_config = train_config_for(
        model_config.arch,
        args.recipe,
        augment=augmentations_from_names(args.augment),
        **_given(args, "epochs", "batch_size", "lr", "seed", "precision"),
    )
    final_epoch(train_config.epochs, args.stop_after, trained)  # a bad --stop-after fails before the data loads
    train, val = training_data(args.data, deg, args.data_dir, args.download, args.val_size, args.crops_per_epoch)
    meta = run_meta(deg, args.data, args.command_line)
    if init is not None:
        meta["init"] = {"model": args.init, **init.meta}
    history = fit_cnn(
        model_config,
        train_config,
        train,
        val,
        args.out,
        device=args.device,
        resume=args.resume,
        meta=meta,
        degradation=deg,
        progress=not args.quiet,
        init_weights=init and init.model.state_dict(),
        stop_after=args.stop_after,
    )
    _report_end(history, args.stop_after, train_config.epochs)
    return 0


def _svi_config(args: argparse.Namespace) -> SVIConfig:
    kl_given = {"kind": args.kl, "beta": args.beta, "warmup_steps": args.warmup_steps, "cycle_steps": args.cycle_steps}
    kl = replace(SVI_DEFAULTS.kl, **{key: value for key, value in kl_given.items() if value is not None})
    given = _given(
        args, "epochs", "batch_size", "lr", "lr_warmup_steps", "elbo", "seed", "precision", "free_bits", "ema_decay"
    )
    return SVIConfig(**given, kl=kl, group_kl_weights=getattr(args, "group_kl_weights", None))


def _fit_svi(args: argparse.Namespace, build_vae, init_meta: dict | None = None) -> int:
    """Shared by ``fit vae`` and ``fit hvae``: the one SVI loop, with the model built by ``build_vae``."""
    set_threads(args.threads)
    trained = _prepare_run(args)
    deg = degradation(args)
    config = _svi_config(args)
    final_epoch(config.epochs, args.stop_after, trained)  # a bad --stop-after fails before the data loads
    train, val = training_data(args.data, deg, args.data_dir, args.download, args.val_size, args.crops_per_epoch)
    meta = run_meta(deg, args.data, args.command_line)
    if init_meta is not None:
        meta["init"] = init_meta
    seed_everything(config.seed)  # the initial weights
    history = fit_vae(
        build_vae(),
        config,
        train,
        val,
        args.out,
        device=args.device,
        resume=args.resume,
        meta=meta,
        progress=not args.quiet,
        stop_after=args.stop_after,
    )
    if from_environment().is_main:
        _report_end(history, args.stop_after, config.epochs)
    return 0


def run_fit_vae(args: argparse.Namespace) -> int:
    given = _given(args, "latent_channels", "channels", "blocks", "likelihood", "mixtures")
    config = replace(CVAE_PRESETS[args.preset], scale=args.scale, **given)
    return _fit_svi(args, lambda: ConditionalVAE(config))


# the architecture flags of fit hvae that --init fixes (the trained VAE's); --init may grow the rest
HVAE_GROWABLE = ("channels", "output_blocks", "groups_per_scale", "upsample")
HVAE_LAYOUT = (
    "lr_blocks",
    "latent_channels",
    "blocks_per_group",
    "likelihood",
    "mixtures",
)


def run_fit_hvae(args: argparse.Namespace) -> int:
    if args.init is not None:
        return _grow_hvae(args)
    config = HVAEConfig(
        scale=args.scale,
        **_given(args, *HVAE_LAYOUT, *HVAE_GROWABLE),
    )
    if args.base is None:
        return _fit_svi(args, lambda: HierarchicalVAE(config))
    base = load_trained(args.base, "--base", degradation(args))
    return _fit_svi(args, lambda: HierarchicalVAE.refining(base.model, config))


def _grow_hvae(args: argparse.Namespace) -> int:
    """``fit hvae --init``: the trained HVAE's architecture and weights, grown by more ``--output-blocks``,
    ``--channels`` or latent groups (``--groups-per-scale``), or with its 2x steps resized (``--upsample
    bilinear``)."""
    fixed = _given(args, *HVAE_LAYOUT, "base")
    if fixed:
        flag = "--" + next(iter(fixed)).replace("_", "-")
        raise ValueError(
            f"--init takes the architecture of {args.init}; only --output-blocks, --channels, --groups-per-scale "
            f"and --upsample may change it ({flag})"
        )
    init = load_trained(args.init, "--init", degradation(args), "hvae")
    trained = init.model.config
    config = replace(trained, **_given(args, *HVAE_GROWABLE))
    for name in ("output_blocks", "channels"):
        if getattr(config, name) < getattr(trained, name):
            raise ValueError(
                f"--{name.replace('_', '-')} {getattr(config, name)} would shrink {args.init} "
                f"({getattr(trained, name)} {name.replace('_', ' ')})"
            )
    if any(new < old for new, old in zip(config.groups_per_scale, trained.groups_per_scale, strict=True)):
        raise ValueError(
            f"--groups-per-scale {' '.join(map(str, config.groups_per_scale))} would remove latent groups of "
            f"{args.init} ({' '.join(map(str, trained.groups_per_scale))})"
        )
    if (trained.upsample, config.upsample) == ("bilinear", "shuffle"):
        raise ValueError(f"--upsample shuffle cannot convert {args.init}, whose 2x steps resize (bilinear)")

    def build() -> HierarchicalVAE:
        vae = HierarchicalVAE(config)
        load_grown(vae, init.model.state_dict())
        return vae

    return _fit_svi(args, build, {"model": args.init, **init.meta})


def run_fit_judge(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    trained = _prepare_run(args)
    config = JudgeTrainConfig(**_given(args, "epochs", "batch_size", "lr", "precision", "seed"))
    final_epoch(config.epochs, args.stop_after, trained)  # a bad --stop-after fails before the data loads
    model_config = JudgeConfig(**({"widths": tuple(args.widths)} if args.widths else {}))
    images, labels = load_cifar10_labeled("train", args.data_dir, args.download, labels_required=True)
    train_idx, val_idx = train_val_split(len(images), args.val_size)
    meta = {"data": "cifar10 train", "val_size": args.val_size, "command": args.command_line}
    history = fit_judge(
        model_config,
        config,
        (images[train_idx], labels[train_idx]),
        (images[val_idx], labels[val_idx]),
        args.out,
        device=args.device,
        resume=args.resume,
        meta=meta,
        progress=not args.quiet,
        stop_after=args.stop_after,
    )
    _report_end(history, args.stop_after, config.epochs)
    return 0
