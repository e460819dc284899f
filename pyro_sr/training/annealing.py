"""KL weight schedules: the factor that ``poutine.scale`` applies to the latent sites at each SVI step.

- constant: β throughout (the paper used β = 0.5);
- linear: warm-up from ``start`` to β over ``warmup_steps`` (Bowman et al. 2016), then β;
- cyclical: repeat a linear ramp over the first ``ramp`` fraction of every ``cycle_steps`` (Fu et al. 2019).

On top of any of them, free bits (Kingma et al. 2016, per group of latents) let a group's KL cost nothing while it
is below a floor: the gradient of max(KL, λ) is 0 there, which is ``poutine.scale``'s weight 0 (a mask) for that
group in that step, decided from the group's KL in the step before (:func:`with_free_bits`). A group the model
ignores costs nothing to use, so the decoder learns to read it instead of the group collapsing onto its prior.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SCHEDULES = ("constant", "linear", "cyclical")


@dataclass(frozen=True)
class KLSchedule:
    kind: str = "constant"
    beta: float = 1.0
    start: float = 0.0
    warmup_steps: int = 0
    cycle_steps: int = 0
    ramp: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown KL schedule {self.kind!r}; choose from {SCHEDULES}")
        if self.beta < 0 or self.start < 0:
            raise ValueError("KL factors must be non-negative")
        if self.kind == "linear" and self.warmup_steps < 1:
            raise ValueError("a linear KL warm-up needs warmup_steps >= 1")
        if self.kind == "cyclical" and (self.cycle_steps < 1 or not 0 < self.ramp <= 1):
            raise ValueError("a cyclical KL schedule needs cycle_steps >= 1 and 0 < ramp <= 1")

    def factor(self, step: int) -> float:
        """The KL factor in force at SVI step ``step`` (counting from 0)."""
        if self.kind == "constant":
            return self.beta
        if self.kind == "linear":
            progress = min(step / self.warmup_steps, 1.0)
        else:
            progress = min((step % self.cycle_steps) / (self.ramp * self.cycle_steps), 1.0)
        return self.start + (self.beta - self.start) * progress


def with_free_bits(
    beta: float | Sequence[float], site_kl: Mapping[str, float] | None, sites: Sequence[str], free_bits: float
) -> float | tuple[float, ...]:
    """The per-group KL weights: ``beta`` (one factor, or one per group of ``sites``) with the weight of every group
    whose KL (nats per image, last step's) was below ``free_bits`` set to 0. Unchanged without a last step or
    with ``free_bits`` 0."""
    if not free_bits or not site_kl:
        return beta
    betas = [float(beta)] * len(sites) if isinstance(beta, int | float) else [float(b) for b in beta]
    weights = tuple(
        0.0 if site_kl.get(name, free_bits) < free_bits else b for name, b in zip(sites, betas, strict=True)
    )
    return weights[0] if len(weights) == 1 else weights
