"""Whether a sampler's spread matches its error, per pixel, judged against what a perfectly calibrated sampler
with the same number K of draws would show (not against nominal levels, which a finite-K sampler misses too).

- The spread-skill ratio MSE(mean of K) / ((1 + 1/K) · mean unbiased sample variance): if the truth is one more
  draw from the sampler's distribution, the mean of K draws errs by the variance times (1 + 1/K), so the ratio is
  1; above 1 the samples are under-dispersed (too sure), below 1 over-dispersed.
- The rank histogram: the number of the K draws below the true pixel (ties broken at random), 0..K. A calibrated
  sampler makes every rank equally likely, 1/(K + 1); a hump in the middle is over-dispersion, a U (truth too
  often outside all draws) under-dispersion.
- Coverage of central intervals between the i-th smallest and the i-th largest draw, read off the ranks: a
  calibrated sampler covers (K + 1 − 2i)/(K + 1) exactly, which is the reference each coverage is shown against.
- The spread-skill ratio within quintiles of the predicted variance: where the sampler is too sure. The pixels
  are binned by the variance of the first half of the draws and the ratio is taken from the other half: binned
  and scored on the same draws, a calibrated 8-draw sampler shows a ratio of 1.8 in its lowest quintile and 0.7
  in its highest (pixels whose variance came out low by chance land in the low bins), which would read as a
  miscalibration that is not there.
- The spread-skill ratio by spatial frequency: the same ratio for each band of the images' 2-D Fourier
  transform (radial frequency in cycles per pixel, bands 1/16 wide; the last one also takes the corners above
  1/2). The transform is linear, so a calibrated sampler scores 1 in every band; and by Parseval's theorem the
  bands' errors and spreads add up to the per-pixel ones. A sampler can be calibrated overall while its draws vary
  too little in coarse structure and too much in fine detail, or the other way round, which only this shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pyro_sr.predict.figures import pyplot, save_figure

QUANTILE_BINS = 5
FREQUENCY_BANDS = 8  # radial frequency bands of width 1/16 cycle per pixel, the last one open above
BAND_WIDTH = 1 / 16
BAND_TEXT = (
    "radial frequency in bands 1/16 cycle per pixel wide, coarse first, the last one above 7/16; the bands' errors "
    "and spreads add up to the per-pixel ones"
)


@dataclass
class Calibration:
    """Per-pixel calibration of K draws per image over ``images`` images (see the module docstring)."""

    images: int
    num_samples: int
    spread_skill: float
    rank_counts: np.ndarray  # (K + 1,) pixels with j draws below the truth
    bin_std: np.ndarray  # (bins,) root mean predicted variance in each quantile bin of it, low to high
    bin_spread_skill: np.ndarray  # (bins,) from the draws the bins were not made from; empty for K < 4
    band_spread_skill: np.ndarray  # (FREQUENCY_BANDS,) by radial spatial frequency, coarse first; NaN: no image
    # was large enough to have a coefficient in the band (sides under 16 pixels)

    @property
    def band_frequencies(self) -> np.ndarray:
        """Lower edge of each frequency band, in cycles per pixel."""
        return np.arange(FREQUENCY_BANDS) * BAND_WIDTH

    @property
    def flat_level(self) -> float:
        """The share of pixels each rank gets from a calibrated sampler."""
        return 1.0 / (self.num_samples + 1)

    @property
    def rank_shares(self) -> np.ndarray:
        return self.rank_counts / self.rank_counts.sum()

    @property
    def outside_share(self) -> float:
        """Share of true pixels below or above all K draws; calibrated: 2/(K + 1)."""
        return float(self.rank_shares[0] + self.rank_shares[-1])

    @property
    def reference_levels(self) -> np.ndarray:
        """(K + 1 − 2i)/(K + 1) for i = 1 .. K/2: what a calibrated sampler's i-th central interval covers."""
        k = self.num_samples
        return np.array([(k + 1 - 2 * i) / (k + 1) for i in range(1, (k + 1) // 2 + 1)])

    @property
    def coverage(self) -> np.ndarray:
        """Share of true pixels with i <= rank <= K − i, i = 1 .. K/2: inside the interval from the i-th smallest
        to the i-th largest draw."""
        shares, k = self.rank_shares, self.num_samples
        return np.array([shares[i : k - i + 1].sum() for i in range(1, (k + 1) // 2 + 1)])

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "num_samples": self.num_samples,
            "spread_skill": self.spread_skill,
            "outside_share": self.outside_share,
            "outside_share_calibrated": 2 * self.flat_level,
            "rank_shares": self.rank_shares.tolist(),
            "reference_levels": self.reference_levels.tolist(),
            "coverage": self.coverage.tolist(),
            "bin_std": self.bin_std.tolist(),
            "bin_spread_skill": self.bin_spread_skill.tolist(),
            "band_frequencies": self.band_frequencies.tolist(),
            "band_spread_skill": [None if np.isnan(r) else r for r in self.band_spread_skill.tolist()],
        }


class CalibrationMetrics:
    """Accumulates the per-pixel squared error of the mean, the unbiased variance and the rank of the truth over
    batches of (K, N, C, H, W) draws and their (N, C, H, W) true images; ties are broken with a seeded generator."""

    def __init__(self, seed: int = 0, bins: int = QUANTILE_BINS):
        self.generator = torch.Generator().manual_seed(seed)
        self.bins = bins
        self.num_samples: int | None = None
        self.images = 0
        self.rank_counts: torch.Tensor | None = None
        self.variances: list[torch.Tensor] = []
        self.squared_errors: list[torch.Tensor] = []
        self.binning_variances: list[torch.Tensor] = []  # of the first half of the draws
        self.held_out: list[tuple[torch.Tensor, torch.Tensor]] = []  # (variance, squared error) of the second
        self.band_errors = torch.zeros(FREQUENCY_BANDS, dtype=torch.float64)  # Fourier power of the mean's error
        self.band_variances = torch.zeros(FREQUENCY_BANDS, dtype=torch.float64)  # unbiased, across the draws
        self.band_coefficients = torch.zeros(FREQUENCY_BANDS, dtype=torch.long)  # small images leave bands empty

    @torch.no_grad()
    def update(self, draws: torch.Tensor, truth: torch.Tensor) -> None:
        if draws.dim() != truth.dim() + 1 or draws.shape[1:] != truth.shape:
            raise ValueError(f"expected draws (K, *truth.shape), got {tuple(draws.shape)} for {tuple(truth.shape)}")
        k = len(draws)
        if k < 2:
            raise ValueError("calibration needs at least 2 draws per image")
        if self.num_samples not in (None, k):
            raise ValueError(f"every batch needs the same number of draws ({self.num_samples}), got {k}")
        draws, truth = draws.detach().float().cpu(), truth.detach().float().cpu()
        self.num_samples, self.images = k, self.images + len(truth)
        self.variances.append(draws.var(0, correction=1).flatten())
        self.squared_errors.append(((draws.mean(0) - truth) ** 2).flatten())
        if k >= 4:
            first, second = draws[: k // 2], draws[k // 2 :]
            self.binning_variances.append(first.var(0, correction=1).flatten())
            self.held_out.append((second.var(0, correction=1).flatten(), ((second.mean(0) - truth) ** 2).flatten()))
        self._update_bands(draws, truth)
        below = (draws < truth).sum(0)
        ties = (draws == truth).sum(0)
        rank = below + (torch.rand(ties.shape, generator=self.generator) * (ties + 1)).long().clamp_max(ties)
        counts = torch.bincount(rank.flatten(), minlength=k + 1)
        self.rank_counts = counts if self.rank_counts is None else self.rank_counts + counts

    def _update_bands(self, draws: torch.Tensor, truth: torch.Tensor) -> None:
        spectra = torch.fft.fft2(draws.double())
        mean = spectra.mean(0)
        variance = (spectra - mean).abs().square().sum(0) / (len(draws) - 1)
        error = (mean - torch.fft.fft2(truth.double())).abs().square()
        band = frequency_bands(*truth.shape[-2:]).flatten()
        self.band_coefficients += torch.bincount(band, minlength=FREQUENCY_BANDS)
        for total, power in ((self.band_errors, error), (self.band_variances, variance)):
            total += torch.bincount(band, weights=power.flatten(0, -3).sum(0).flatten(), minlength=FREQUENCY_BANDS)

    def result(self) -> Calibration:
        if self.num_samples is None:
            raise ValueError("no draws were given to the calibration")
        k = self.num_samples
        variance = torch.cat(self.variances).double().numpy()
        errors = torch.cat(self.squared_errors).double().numpy()
        bin_std, bin_ratio = np.array([]), np.array([])
        if self.held_out:
            held_variance = torch.cat([v for v, _ in self.held_out]).double().numpy()
            held_errors = torch.cat([e for _, e in self.held_out]).double().numpy()
            order = np.argsort(torch.cat(self.binning_variances).numpy(), kind="stable")
            bins = np.array_split(order, self.bins)  # equal-count bins of the first half's variance, low to high
            held_k = k - k // 2
            bin_std = np.array([np.sqrt(held_variance[b].mean()) for b in bins])
            bin_ratio = np.array([spread_skill(held_errors[b], held_variance[b], held_k) for b in bins])
        bands = zip(self.band_errors.numpy(), self.band_variances.numpy(), self.band_coefficients.numpy(), strict=True)
        return Calibration(
            images=self.images,
            num_samples=k,
            spread_skill=spread_skill(errors, variance, k),
            rank_counts=self.rank_counts.numpy().astype(np.int64),
            bin_std=bin_std,
            bin_spread_skill=bin_ratio,
            band_spread_skill=np.array([spread_skill(e, v, k) if n else np.nan for e, v, n in bands]),
        )


def frequency_bands(height: int, width: int) -> torch.Tensor:
    """(height, width) band index of each coefficient of a 2-D DFT: its radial frequency in cycles per pixel over
    ``BAND_WIDTH``, the highest band taking everything above."""
    fy, fx = torch.fft.fftfreq(height, dtype=torch.float64), torch.fft.fftfreq(width, dtype=torch.float64)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    return (radius / BAND_WIDTH).floor().long().clamp_max(FREQUENCY_BANDS - 1)


def recalibrated_by_band(draws: torch.Tensor, band_ratio: torch.Tensor) -> torch.Tensor:
    """``draws`` (K, ..., H, W) with each one's deviation from their mean scaled by the square root of
    ``band_ratio`` (a spread-skill ratio per band) in each frequency band: draws whose spread matches their error
    at every spatial frequency, where they were calibrated overall only."""
    mean = draws.mean(0)
    gain = band_ratio.sqrt()[frequency_bands(*draws.shape[-2:])]
    return mean + torch.fft.ifft2(torch.fft.fft2((draws - mean).double()) * gain).real.float()


def with_true_bands(samples: torch.Tensor, truth: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
    """``samples`` with the DFT coefficients of the frequency bands in ``bands`` (band indices) taken from
    ``truth``, clamped to [0, 1] as images: hybrids that say at which scales samples differ from real images."""
    take = torch.isin(frequency_bands(*samples.shape[-2:]), bands)
    mixed = torch.where(take, torch.fft.fft2(truth.double()), torch.fft.fft2(samples.double()))
    return torch.fft.ifft2(mixed).real.float().clamp(0, 1)


def band_power(images: torch.Tensor) -> torch.Tensor:
    """(FREQUENCY_BANDS,) mean power of the DFT coefficients in each frequency band over ``images`` (..., H, W),
    each image's mean removed (it would be all of band 0); NaN for a band with no coefficient."""
    power = torch.fft.fft2(images.double() - images.double().mean((-2, -1), keepdim=True)).abs().square()
    power = power.reshape(-1, *images.shape[-2:]).mean(0)
    bands = frequency_bands(*images.shape[-2:])
    return torch.stack([power[bands == b].mean() for b in range(FREQUENCY_BANDS)])


def spread_skill(squared_errors: np.ndarray | float, variances: np.ndarray | float, k: int) -> float:
    """MSE of the mean of ``k`` draws over (1 + 1/k) times their mean unbiased variance (1: calibrated)."""
    spread = (1 + 1 / k) * np.mean(variances)
    return float(np.mean(squared_errors) / spread) if spread > 0 else float("inf")


def format_calibration_table(calibrations: dict[str, Calibration]) -> str:
    """A Markdown table of each sampler's calibration against a calibrated sampler with as many draws."""
    cal = next(iter(calibrations.values()))
    widest, middle = 0, len(cal.reference_levels) // 2
    lines = [
        f"| draws | images | K | spread-skill ratio | truth outside all draws (calibrated {2 * cal.flat_level:.1%}) "
        f"| inside widest interval (calibrated {cal.reference_levels[widest]:.1%}) "
        f"| inside interval {middle + 1} (calibrated {cal.reference_levels[middle]:.1%}) "
        "| ratio by quintile, surest first | ratio by spatial frequency, coarse first |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, c in calibrations.items():
        if c.num_samples != cal.num_samples:
            raise ValueError("one calibration table compares samplers with the same number of draws")
        quintiles = ", ".join(f"{r:.2f}" for r in c.bin_spread_skill) or "-"
        bands = ", ".join("-" if np.isnan(r) else f"{r:.2f}" for r in c.band_spread_skill)
        lines.append(
            f"| {name} | {c.images} | {c.num_samples} | {c.spread_skill:.2f} | {c.outside_share:.1%} "
            f"| {c.coverage[widest]:.1%} | {c.coverage[middle]:.1%} | {quintiles} | {bands} |"
        )
    return "\n".join(lines)


def plot_calibration(calibrations: dict[str, Calibration], path: str | Path) -> None:
    """Four panels for one or more samplers: the rank histogram with its flat level, the coverage of central
    intervals against a calibrated K-draw sampler's, and the spread-skill ratio by quintile of predicted std and
    by spatial frequency."""
    plt = pyplot()
    fig, grid = plt.subplots(2, 2, figsize=(13, 8.5))
    axes = grid.flatten()
    width = 0.8 / max(len(calibrations), 1)
    for n, (name, cal) in enumerate(calibrations.items()):
        ranks = np.arange(cal.num_samples + 1)
        label = f"{name} (K = {cal.num_samples}, {cal.images} images)"
        axes[0].bar(ranks + (n - (len(calibrations) - 1) / 2) * width, cal.rank_shares, width, label=label)
        axes[0].axhline(cal.flat_level, color="0.3", linestyle="--", linewidth=1)
        axes[1].plot(cal.reference_levels, cal.coverage, "o-", markersize=3, label=name)
        if len(cal.bin_std):
            axes[2].plot(cal.bin_std, cal.bin_spread_skill, "o-", label=f"{name}: all pixels {cal.spread_skill:.2f}")
        axes[3].plot(cal.band_frequencies + BAND_WIDTH / 2, cal.band_spread_skill, "o-", label=name)
    axes[0].set(title="rank of the true pixel among K draws", xlabel="draws below the truth", ylabel="share of pixels")
    axes[0].legend(fontsize=7, title="dashed: calibrated (flat)", title_fontsize=7, loc="lower center")
    axes[1].plot([0, 1], [0, 1], color="0.6", linestyle="--", label="calibrated")
    axes[1].set(
        title="central intervals between order statistics",
        xlabel="share a calibrated K-draw sampler covers",
        ylabel="share of HR pixels inside",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    axes[1].legend(fontsize=7)
    _ratio_panel(
        axes[2],
        "spread-skill ratio by quintile of predicted std",
        "predicted std (binned on half the draws)",
        xscale="log",
    )
    _ratio_panel(
        axes[3],
        "spread-skill ratio by spatial frequency",
        "radial frequency, cycles per pixel (band centres; the last band takes all above 7/16)",
        yscale="log",  # a band can be many times too sure where another is calibrated
    )
    ticker = plt.matplotlib.ticker  # plain numbers at 1, 2 and 5 times a power of ten
    axes[3].yaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
    for formatter in (axes[3].yaxis.set_major_formatter, axes[3].yaxis.set_minor_formatter):
        formatter(ticker.FormatStrFormatter("%g"))
    save_figure(fig, path)


def _ratio_panel(ax, title: str, xlabel: str, **scales: str) -> None:
    """A panel of spread-skill ratios: the calibrated level, the labels and the legend."""
    ax.axhline(1.0, color="0.6", linestyle="--", label="calibrated")
    ax.set(title=title, xlabel=xlabel, ylabel="MSE(mean) / ((1 + 1/K) variance)", **scales)
    ax.legend(fontsize=7)
