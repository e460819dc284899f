"""Exact LR consistency: project a super-resolution onto the images whose degradation is the LR input.

The degradations are linear maps D (blur + subsampling, or antialiased bicubic), so the nearest image to x with
D(x') = y is the least-norm correction x' = x + Dᵀ (D Dᵀ)⁻¹ (y − D x). D Dᵀ acts on LR images; it is solved per
image by conjugate gradients in float64, with Dᵀ from autograd (``torch.func.vjp``), so no matrix is ever formed
and any image size or degradation works. Applied after a model, it keeps what the model adds beyond the LR image
and makes degrade(SR) equal the LR input up to float32 rounding.
"""

from __future__ import annotations

import torch

from pyro_sr.data.degradation import Degradation
from pyro_sr.models.contract import Upscaler


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1).view(-1, 1, 1, 1)


@torch.no_grad()
def project_to_lr(
    sr: torch.Tensor, lr: torch.Tensor, degradation: Degradation, max_iter: int = 200, tol: float = 1e-10
) -> torch.Tensor:
    """Least-norm correction of ``sr`` (..., N, 3, H, W) so that ``degradation(sr)`` equals ``lr`` (N, 3, h, w).

    Leading dimensions of ``sr`` (a VAE's samples) share the LR batch. The result is not clamped to [0, 1]: the
    clamp would undo part of the correction.
    """
    if sr.shape[-3] != lr.shape[-3] or tuple(sr.shape[-2:]) != tuple(degradation.scale * s for s in lr.shape[-2:]):
        raise ValueError(
            f"SR shape {tuple(sr.shape)} does not match x{degradation.scale} the LR shape {tuple(lr.shape)}"
        )
    x = sr.reshape(-1, *sr.shape[-3:]).double()
    y = lr.double().expand(*sr.shape[:-3], *lr.shape[-3:]).reshape(-1, *lr.shape[-3:])
    _, vjp = torch.func.vjp(degradation, torch.zeros_like(x))

    def adjoint(u: torch.Tensor) -> torch.Tensor:
        return vjp(u)[0]

    residual = y - degradation(x)
    u = torch.zeros_like(residual)
    r, p = residual.clone(), residual.clone()
    rs = _dot(r, r)
    for _ in range(max_iter):
        if float(rs.max()) <= tol**2 * r[0].numel():
            break
        ap = degradation(adjoint(p))
        alpha = rs / _dot(p, ap).clamp_min(1e-300)
        u += alpha * p
        r -= alpha * ap
        rs_next = _dot(r, r)
        p = r + rs_next / rs.clamp_min(1e-300) * p
        rs = rs_next
    return (x + adjoint(u)).to(sr.dtype).view(sr.shape)


def lr_consistent(upscaler: Upscaler, degradation: Degradation) -> Upscaler:
    """Wrap an upscaler (LR batch -> SR batch or samples) so its outputs are projected onto the LR input."""
    return lambda lr: project_to_lr(upscaler(lr), lr, degradation)
