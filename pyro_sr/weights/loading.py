"""Loading a model by the one name every command and the Python API take: a bundled name, a checkpoint file or a
run folder. Bundled weights carry their metadata like torchvision's: architecture, degradation, the training
command and the metrics they scored."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyro_sr.common import CheckpointError, resolve_device
from pyro_sr.data.degradation import Degradation
from pyro_sr.models.contract import ProbabilisticSR
from pyro_sr.models.registry import build_model, model_kind
from pyro_sr.weights.checkpoint import load_checkpoint, save_checkpoint

BUNDLED_MODELS = {"cnn": "cnn.pt", "seed-cnn": "seed-cnn.pt", "vae": "vae.pt", "hvae": "hvae.pt"}
# Frozen sub-networks that bundled weights may hold as a reference to another bundled model instead of a copy
# (state-dict prefix -> bundled name): the hvae refines the bundled cnn, whose 6 MB the package need not ship twice.
SHARED_BUNDLED_PARTS = {"base_cnn.": "cnn"}
DEFAULT_MODEL = "cnn"
MODEL_HELP = f"a bundled name ({', '.join(BUNDLED_MODELS)}), a checkpoint file or a run folder"


@dataclass
class LoadedModel:
    """A model ready for inference, with what it was trained for."""

    name: str
    kind: str
    model: nn.Module
    degradation: Degradation
    meta: dict[str, Any]

    @property
    def scale(self) -> int:
        return self.degradation.scale

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def probabilistic(self) -> bool:
        """True for models of p(HR | LR) (``ProbabilisticSR``), which return samples rather than one answer."""
        return isinstance(self.model, ProbabilisticSR)


def model_from_checkpoint(checkpoint: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of a loaded checkpoint (training checkpoint or bundled weights), in eval mode."""
    try:
        model_kind(str(checkpoint.get("kind")))
    except ValueError:
        raise CheckpointError(f"checkpoint holds an unknown model kind {checkpoint.get('kind')!r}") from None
    try:
        model = build_model(checkpoint["kind"], checkpoint["model_config"])
        model.load_state_dict(checkpoint["model"])
    except (KeyError, TypeError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint weights do not fit their model configuration ({reason})") from None
    return model.to(device).eval()


def degradation_of(checkpoint: dict[str, Any]) -> Degradation:
    """The degradation a checkpoint was trained for (the paper's operator when none is recorded)."""
    spec = checkpoint.get("meta", {}).get("degradation")
    return Degradation(**spec) if spec else Degradation(scale=checkpoint["model_config"]["scale"])


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("pyro_sr.weights") / BUNDLED_MODELS[name]))


def list_models() -> list[str]:
    """The bundled models installed with this copy of pyro-sr."""
    return [name for name in BUNDLED_MODELS if bundled_path(name).is_file()]


def _display_name(path: Path) -> str:
    """How tables name a checkpoint: its run folder's name, marked when it is the run's best epoch."""
    if path.is_dir():
        return path.name
    if path.name == "checkpoint.pt":
        return path.parent.name
    return f"{path.parent.name} (best)" if path.name == "best.pt" else path.stem


def checkpoint_location(spec: str | Path) -> tuple[Path, str]:
    """The file or run folder a model name means, and how tables name it."""
    if str(spec) in BUNDLED_MODELS:
        path, name = bundled_path(str(spec)), str(spec)
        if not path.is_file():
            raise CheckpointError(f"bundled model {name!r} is not installed ({path} missing)")
        return path, name
    path = Path(spec)
    if not path.exists():
        choices = ", ".join(BUNDLED_MODELS)
        raise CheckpointError(f"no checkpoint at {path} and no bundled model of that name (bundled: {choices})")
    return path, _display_name(path)


def _state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names and raw tensor bytes: equal digests mean identical weights."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _bundled_state(name: str) -> dict[str, torch.Tensor]:
    path = bundled_path(name)
    if not path.is_file():
        raise CheckpointError(f"bundled model {name!r} is not installed ({path} missing)")
    return load_checkpoint(path)["model"]


def read_weights(path: str | Path) -> dict[str, Any]:
    """A checkpoint with every weight in it: the parts that bundled weights share with another bundled model
    (``SHARED_BUNDLED_PARTS``) are read from that model, refused if it no longer holds the same weights."""
    checkpoint = load_checkpoint(path)
    for prefix, ref in (checkpoint.get("shared_weights") or {}).items():
        part = _bundled_state(ref["bundled"])
        if _state_digest(part) != ref["sha256"]:
            raise CheckpointError(
                f"{path} refines the bundled {ref['bundled']!r} it was trained with, but the installed one holds "
                "other weights; reinstall pyro-sr or retrain"
            )
        checkpoint["model"] = {**checkpoint["model"], **{prefix + key: value for key, value in part.items()}}
    return checkpoint


def _share_bundled_parts(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``state`` without the parts identical to a bundled model's weights, and the references that replace them."""
    shared = {}
    for prefix, name in SHARED_BUNDLED_PARTS.items():
        part = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
        if not part or not bundled_path(name).is_file():
            continue
        bundled = _bundled_state(name)
        if part.keys() == bundled.keys() and all(torch.equal(part[key], bundled[key]) for key in part):
            state = {key: value for key, value in state.items() if not key.startswith(prefix)}
            shared[prefix] = {"bundled": name, "sha256": _state_digest(bundled)}
    return state, shared


def load_model(spec: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a bundled model by name, or a checkpoint file / run folder by path; ``device`` may be ``auto``."""
    device = resolve_device(device)
    path, name = checkpoint_location(spec)
    checkpoint = read_weights(path)
    model = model_from_checkpoint(checkpoint, device)
    kind = model_kind(checkpoint["kind"]).name
    return LoadedModel(name, kind, model, degradation_of(checkpoint), training_record(checkpoint))


def load_trained(spec: str | Path, flag: str, degradation: Degradation, kind: str = "cnn") -> LoadedModel:
    """A trained model of ``kind`` for ``flag`` (``--init``, ``--base``), refused unless it was trained for
    ``degradation``."""
    loaded = load_model(spec)
    if loaded.kind != kind:
        raise ValueError(f"{flag} must be a trained {kind}, but {spec} is a {loaded.kind}")
    if loaded.degradation != degradation:
        raise ValueError(f"{flag} {spec} was trained for another degradation ({loaded.degradation})")
    return loaded


def load_models(specs: Iterable[str | Path], device: str | torch.device, scale: int) -> list[LoadedModel]:
    """Load several models (all before any work, so a bad one fails fast), each checked to upscale ``scale``x."""
    loaded = [load_model(spec, device) for spec in specs]
    for model in loaded:
        if model.scale != scale:
            raise ValueError(f"model {model.name!r} upscales x{model.scale}, but the data is degraded x{scale}")
    return loaded


def training_record(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's metadata plus how it was trained (epochs, config, per-epoch history). Exported weights
    carry these in ``meta`` already, training checkpoints at the top level; this reads both."""
    training = {
        "epochs": checkpoint.get("epoch"),
        "train_config": checkpoint.get("train_config") or checkpoint.get("svi_config"),
        "history": checkpoint.get("history"),
    }
    return {**checkpoint.get("meta", {}), **{key: value for key, value in training.items() if value is not None}}


def training_stages(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The metadata of a model and of the runs it was started from (``fit --init``), first run first: a grown or
    fine-tuned model was trained by all of them."""
    stages = []
    while meta:
        stages.insert(0, meta)
        meta = meta.get("init") or {}
    return stages


@dataclass(frozen=True)
class TrainingSummary:
    """How a model was trained, through the runs it was started from: epochs per run (``"50 + 14"``), hours of
    training in all, and each run's command, first run first."""

    epochs: str
    hours: float
    commands: list[str]


def training_summary(meta: dict[str, Any]) -> TrainingSummary:
    """The training of a model with this metadata, what ``pyro-sr models`` and RESULTS.md's training table show."""
    stages = training_stages(meta)
    return TrainingSummary(
        epochs=" + ".join(str(m.get("epochs", "?")) for m in stages),
        hours=sum(r.get("seconds", 0.0) for m in stages for r in m.get("history") or []) / 3600,
        commands=[m.get("command", "") for m in stages],
    )


def continue_records(earlier: list[dict], records: list[dict]) -> list[dict]:
    """``records`` (per-epoch or per-step logs of a run started from another) numbered on from the last epoch and
    step of ``earlier``, the run it started from, so that curves run through both."""
    last = earlier[-1] if earlier else {}
    offsets = {key: last.get(key, 0) for key in ("epoch", "step")}
    return [{**r, **{key: r[key] + offset for key, offset in offsets.items() if key in r}} for r in records]


def lineage_history(meta: dict[str, Any]) -> list[dict]:
    """A model's per-epoch history through the runs it was started from, epochs and steps numbered on."""
    history: list[dict] = []
    for stage in training_stages(meta):
        history += continue_records(history, stage.get("history") or [])
    return history


def export_weights(
    checkpoint_path: str | Path,
    out_path: str | Path,
    metrics: dict[str, Any] | None = None,
    sampling: dict[str, Any] | None = None,
    share_bundled: bool = False,
) -> None:
    """Write inference-only weights (no optimizer or RNG state) with metadata and the measured metrics, and with
    ``sampling`` (``predict.sampling.Sampling.to_dict``) as how the model is sampled where the user does not say;
    without it, the checkpoint's own sampling is kept. ``share_bundled`` (for weights bundled with the package)
    stores a frozen part identical to another bundled model's weights as a reference to it."""
    checkpoint = read_weights(checkpoint_path)
    meta = {**training_record(checkpoint), "metrics": metrics or {}}
    if sampling is not None:
        meta["sampling"] = sampling
    state, shared = _share_bundled_parts(checkpoint["model"]) if share_bundled else (checkpoint["model"], {})
    payload = {"kind": checkpoint["kind"], "model_config": checkpoint["model_config"], "model": state}
    save_checkpoint({**payload, "meta": meta, **({"shared_weights": shared} if shared else {})}, out_path)
