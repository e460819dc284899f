"""One draw of a VAE's latent noise over a whole image, of which any crop can be drawn on its own.

A sample of a VAE with image-shaped latents is a deterministic function of the LR image and the standard-normal
noise of each latent site (z = prior loc + temperature x prior scale x noise: Pyro's ``LocScaleReparam``). Tiled
sampling is exact when every tile gets its crop of one whole-image draw of that noise. Drawing the whole image's
noise at once would cost memory of the size of all latents of all samples (for z on the HR grid, as much as the
samples themselves), so the noise is drawn in fixed blocks of ``NOISE_BLOCK`` latent pixels a side, each from its
own generator seeded by (seed, site, sample, image, block row, block column): a crop draws only the blocks it
overlaps, and gets the same numbers whichever tile asks, in whatever order.
"""

from __future__ import annotations

import numpy as np
import torch

NOISE_BLOCK = 32  # latent pixels a side of the blocks the noise is drawn in


class LatentNoise:
    """Standard-normal noise for the latent sites ``grids`` (name -> (channels, factor of its grid over the LR
    grid)) of ``num_samples`` samples of each of ``images`` LR images, fixed by ``seed``."""

    def __init__(self, grids: dict[str, tuple[int, int]], num_samples: int, images: int, seed: int):
        if num_samples < 1 or images < 1:
            raise ValueError(f"need at least one sample and one image, got {num_samples} and {images}")
        self.grids, self.num_samples, self.images, self.seed = dict(grids), num_samples, images, seed

    def _block(self, site: int, channels: int, sample: int, image: int, row: int, col: int) -> torch.Tensor:
        entropy = [self.seed, site, sample, image, row, col]
        state = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]) & (2**63 - 1)
        return torch.randn(channels, NOISE_BLOCK, NOISE_BLOCK, generator=torch.Generator().manual_seed(state))

    def _crop(self, site: int, channels: int, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        """(K * N, C, bottom - top, right - left) in latent pixels; sample k of image n at k * N + n."""
        out = torch.empty(self.num_samples * self.images, channels, bottom - top, right - left)
        for row in range(top // NOISE_BLOCK, (bottom - 1) // NOISE_BLOCK + 1):
            y0, y1 = max(top, row * NOISE_BLOCK), min(bottom, (row + 1) * NOISE_BLOCK)
            for col in range(left // NOISE_BLOCK, (right - 1) // NOISE_BLOCK + 1):
                x0, x1 = max(left, col * NOISE_BLOCK), min(right, (col + 1) * NOISE_BLOCK)
                for k in range(self.num_samples):
                    for n in range(self.images):
                        block = self._block(site, channels, k, n, row, col)
                        by, bx = row * NOISE_BLOCK, col * NOISE_BLOCK
                        out[k * self.images + n, :, y0 - top : y1 - top, x0 - left : x1 - left] = block[
                            :, y0 - by : y1 - by, x0 - bx : x1 - bx
                        ]
        return out

    def crop(self, rows: tuple[int, int], cols: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Every site's noise under LR rows ``rows`` and columns ``cols`` ([start, stop)), on the CPU."""
        return {
            name: self._crop(i, channels, rows[0] * f, rows[1] * f, cols[0] * f, cols[1] * f)
            for i, (name, (channels, f)) in enumerate(self.grids.items())
        }
