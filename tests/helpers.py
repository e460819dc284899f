"""Helpers shared by test modules (pytest puts this folder on the import path)."""

import torch
from torch import nn


def perturbed(module: nn.Module, scale: float = 0.05) -> nn.Module:
    """``module`` with every weight moved by Gaussian noise, so that zero-initialised heads and identity-like
    residual blocks neither hide a difference nor shorten how far an output reaches."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module
