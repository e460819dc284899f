"""Realism scores from the bundled judge, on small image sets made here."""

import pytest
import torch

from pyro_sr.data.datasets import load_bundled_labels, load_bundled_sample, to_float
from pyro_sr.evaluation.realism import RealismMetrics
from pyro_sr.training.judge import judge_accuracy
from pyro_sr.weights.judge import load_judge


@pytest.fixture(scope="module")
def bundled():
    return load_judge(), to_float(load_bundled_sample()), load_bundled_labels()


def scores(judge, hr, sr, labels):
    metrics = RealismMetrics(judge)
    metrics.update_real(hr)
    metrics.update(sr, labels)
    return metrics.result()


def test_hr_against_itself_scores_the_judges_own_accuracy_and_no_distance(bundled):
    loaded, hr, labels = bundled
    result = scores(loaded.judge, hr, hr, labels)
    assert result["classifier_accuracy"] == loaded.metrics["bundled_sample_accuracy"]
    assert result["classifier_accuracy"] == judge_accuracy(loaded.judge, hr, labels)
    assert abs(result["classifier_fid"]) < 1e-2


def test_degraded_images_score_worse_and_more_degraded_worse_still(bundled):
    loaded, hr, labels = bundled
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(hr.shape, generator=gen)
    same = scores(loaded.judge, hr, hr, labels)
    mild, strong = (scores(loaded.judge, hr, (hr + s * noise).clamp(0, 1), labels) for s in (0.1, 0.3))
    # KID's unbiased estimate of a set against itself is ~0 up to the estimator's bias at 64 images (~-0.05)
    assert strong["classifier_kid"] > mild["classifier_kid"] > 5 * abs(same["classifier_kid"])
    assert strong["classifier_fid"] > mild["classifier_fid"] > 10.0
    assert strong["classifier_accuracy"] < mild["classifier_accuracy"] <= loaded.metrics["bundled_sample_accuracy"]


def test_several_samples_per_image_and_too_few_images(bundled):
    loaded, hr, labels = bundled
    metrics = RealismMetrics(loaded.judge)
    metrics.update_real(hr)
    for _ in range(3):  # e.g. three single samples of each image
        metrics.update(hr, labels)
    assert metrics.result()["classifier_accuracy"] == loaded.metrics["bundled_sample_accuracy"]
    with pytest.raises(ValueError, match="at least 2 SR outputs and 2 HR images"):
        RealismMetrics(loaded.judge).result()
    one = RealismMetrics(loaded.judge)
    one.update_real(hr)
    one.update(hr[:1], labels[:1])
    with pytest.raises(ValueError, match="at least 2 SR outputs"):
        one.result()


def test_uint8_images_score_as_their_float_values_and_reset_keeps_the_hr_features(bundled):
    loaded, hr, labels = bundled
    noisy = (hr + 0.1 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    metrics = RealismMetrics(loaded.judge)
    metrics.update_real((hr * 255).round().to(torch.uint8))  # what the data sets hold
    metrics.update(noisy, labels)
    first = metrics.result()
    assert first == pytest.approx(scores(loaded.judge, hr, noisy, labels), rel=1e-4, abs=1e-6)
    metrics.reset()
    metrics.update(noisy, labels)
    assert metrics.result() == first  # the HR features stayed, the SR outputs were forgotten
    with pytest.raises(ValueError, match="uint8 or float"):
        metrics.update(hr.long(), labels)
