"""The bundled realism judge (``pyro_sr.models.judge``): where it is, and loading it or one trained by
``pyro-sr fit judge``. It is kept beside the bundled super-resolvers but is not one of them."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from pyro_sr.common import CheckpointError, resolve_device
from pyro_sr.models.judge import CIFARJudge, JudgeConfig
from pyro_sr.weights.checkpoint import load_checkpoint

JUDGE_FILE = "judge.pt"


def bundled_judge_path() -> Path:
    return Path(str(resources.files("pyro_sr.weights") / JUDGE_FILE))


@dataclass
class LoadedJudge:
    """A judge in eval mode and what its checkpoint says of it (``metrics``: its measured accuracies)."""

    judge: CIFARJudge
    meta: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics", {})


def load_judge(spec: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedJudge:
    """The bundled judge (``spec`` None), or the judge of a run folder (its ``best.pt``) or checkpoint file."""
    path = bundled_judge_path() if spec is None else Path(spec)
    if path.is_dir():
        path = path / "best.pt"
    checkpoint = load_checkpoint(path)
    if checkpoint.get("kind") != "judge":
        raise CheckpointError(f"{path} holds a {checkpoint.get('kind')!r} model, not a judge")
    try:
        judge = CIFARJudge(JudgeConfig(**checkpoint["model_config"]))
        judge.load_state_dict(checkpoint["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise CheckpointError(f"{path}: the judge's weights do not fit its configuration ({reason})") from None
    return LoadedJudge(judge.to(resolve_device(device)).eval(), checkpoint.get("meta", {}))
