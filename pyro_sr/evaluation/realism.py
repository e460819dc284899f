"""Realism scores of super-resolutions from the bundled judge (``pyro_sr.models.judge``), offline: how often it names
the true CIFAR-10 class of the SR outputs, and classifier-KID / classifier-FID between its penultimate features of
the SR outputs and of the HR images, computed by torchmetrics' ``KernelInceptionDistance`` and
``FrechetInceptionDistance`` with the judge as their feature extractor. They are *not* Inception KID/FID and
compare only with each other; the judge knows CIFAR-10 and nothing else.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from pyro_sr.data.datasets import to_float
from pyro_sr.models.judge import JUDGE_IMAGE_SIZE, CIFARJudge

KID_SUBSET_SIZE = 1000  # images per KID subset (fewer when fewer were scored)
KID_SUBSETS = 100


class JudgeFeatures(nn.Module):
    """The judge's penultimate features in the interface torchmetrics asks of a custom feature extractor."""

    def __init__(self, judge: CIFARJudge):
        super().__init__()
        self.judge = judge
        self.num_features = judge.config.feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.judge.features(images).float()


class RealismMetrics:
    """Accumulates, over batches, the judge's accuracy on SR outputs and its features of SR and HR images; HR
    images are given once each (``update_real``), SR outputs any number of times per image (``update``: e.g. every
    single sample of a VAE). ``reset`` forgets the SR outputs and keeps the HR features, so that one instance
    scores one model after another against the same HR images."""

    def __init__(self, judge: CIFARJudge, seed: int = 0):
        from torchmetrics.image.fid import FrechetInceptionDistance  # imported on use: it takes seconds
        from torchmetrics.image.kid import KernelInceptionDistance

        judge.eval()
        features = JudgeFeatures(judge)
        self.judge, self.seed, self.correct, self.scored = judge, seed, 0, 0
        self.device = next(judge.parameters()).device
        # With a custom feature extractor torchmetrics passes images through as given (``normalize`` is not
        # applied), so ``_images`` makes them float in [0, 1] first; ``input_img_size`` is its probe's shape.
        self.fid = FrechetInceptionDistance(
            feature=features, input_img_size=(3, *JUDGE_IMAGE_SIZE), reset_real_features=False
        ).to(self.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance` will save", UserWarning)
            self.kid = KernelInceptionDistance(
                feature=features, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, reset_real_features=False
            ).to(self.device)

    def _images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images as float in [0, 1], float ones clamped to it, on the judge's device."""
        if images.dtype == torch.uint8:
            images = to_float(images)
        elif not images.is_floating_point():
            raise ValueError(f"realism takes uint8 or float images in [0, 1], got {images.dtype}")
        return images.to(self.device).clamp(0, 1)

    def reset(self) -> None:
        """Forget the SR outputs scored so far; the HR images' features stay."""
        self.correct, self.scored = 0, 0
        self.fid.reset()
        self.kid.reset()

    @torch.no_grad()
    def update_real(self, hr: torch.Tensor) -> None:
        """HR images (uint8, or float in [0, 1]), each once."""
        hr = self._images(hr)
        self.fid.update(hr, real=True)
        self.kid.update(hr, real=True)

    @torch.no_grad()
    def update(self, sr: torch.Tensor, labels: torch.Tensor) -> None:
        """SR outputs (uint8, or float clamped to [0, 1]) and the classes of their HR images."""
        sr = self._images(sr)
        self.correct += int((self.judge.classify(sr).cpu() == labels.cpu()).sum())
        self.scored += len(sr)
        self.fid.update(sr, real=False)
        self.kid.update(sr, real=False)

    def result(self) -> dict[str, float]:
        """``classifier_accuracy``, ``classifier_fid``, ``classifier_kid`` and the spread of KID over its
        subsets (0 when fewer than ``KID_SUBSET_SIZE`` images make every subset the whole set)."""
        real = sum(len(f) for f in self.kid.real_features)
        if self.scored < 2 or real < 2:
            raise ValueError(f"realism needs at least 2 SR outputs and 2 HR images, got {self.scored} and {real}")
        self.kid.subset_size = min(KID_SUBSET_SIZE, real, self.scored)
        with torch.random.fork_rng(devices=[]):  # KID draws its subsets from the CPU's global generator
            torch.random.default_generator.manual_seed(self.seed)  # not torch.manual_seed: it reseeds CUDA too
            kid, kid_std = self.kid.compute()
        return {
            "classifier_accuracy": self.correct / self.scored,
            "classifier_fid": float(self.fid.compute()),
            "classifier_kid": float(kid),
            "classifier_kid_std": float(kid_std),
        }
