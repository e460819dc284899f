"""KL weight schedules: the factor that ``poutine.scale`` applies to the latent sites at each SVI step.

- constant: β throughout (the paper used β = 0.5);
- linear: warm-up from ``start`` to β over ``warmup_steps`` (Bowman et al. 2016), then β;
- cyclical: repeat a linear ramp over the first ``ramp`` fraction of every ``cycle_steps`` (Fu et al. 2019).
"""

from __future__ import annotations

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
