import numpy as np
import pytest
import torch
from PIL import Image

from pyro_sr.data.datasets import (
    DataError,
    ImageFolderCrops,
    PairedImages,
    load_bundled_labels,
    load_bundled_sample,
    load_cifar10,
    load_cifar10_labeled,
    load_pairs,
    train_val_split,
)
from pyro_sr.data.degradation import Degradation


def test_reads_cifar_batches_folder_or_its_parent(fake_cifar_batches):
    train = load_cifar10("train", fake_cifar_batches.parent)
    assert train.shape == (50, 3, 32, 32) and train.dtype == torch.uint8
    test = load_cifar10("test", fake_cifar_batches)
    assert test.shape == (10, 3, 32, 32)
    # The pickle stores planar RGB rows: pixel (0, 0) of channel 1 is element 1024 of the row.
    import pickle

    with (fake_cifar_batches / "test_batch").open("rb") as f:
        row = pickle.load(f)["data"][0]
    assert int(test[0, 1, 0, 0]) == int(row[1024])


def test_reads_npz_layout(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    np.savez_compressed(tmp_path / "cifar10_test.npz", images=images, labels=np.zeros(7, dtype=np.int64))
    hr = load_cifar10("test", tmp_path)
    assert torch.equal(hr.permute(0, 2, 3, 1), torch.from_numpy(images))


def test_missing_or_corrupt_data_gives_clear_errors(tmp_path, fake_cifar_batches):
    with pytest.raises(DataError, match="no CIFAR-10 found"):
        load_cifar10("train", tmp_path / "nowhere")
    (fake_cifar_batches / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a CIFAR-10 batch file"):
        load_cifar10("train", fake_cifar_batches)
    (tmp_path / "cifar10_test.npz").write_bytes(b"not an npz")
    with pytest.raises(DataError, match="is not an .npz archive of arrays"):
        load_cifar10("test", tmp_path)


def test_train_val_split_is_fixed_and_disjoint():
    train, val = train_val_split(100, val_size=20, seed=3)
    train2, val2 = train_val_split(100, val_size=20, seed=3)
    assert torch.equal(val, val2) and torch.equal(train, train2)
    assert len(val) == 20 and len(train) == 80
    assert set(train.tolist()).isdisjoint(val.tolist())
    with pytest.raises(DataError):
        train_val_split(10, val_size=10)


def test_load_pairs_splits_train_into_train_and_val(fake_cifar_batches):
    degradation = Degradation()
    train = load_pairs("cifar10", "train", degradation, fake_cifar_batches, val_size=12)
    val = load_pairs("cifar10", "val", degradation, fake_cifar_batches, val_size=12)
    assert len(train) == 38 and len(val) == 12
    assert train.lr.shape == (38, 3, 8, 8) and train.hr.dtype == torch.uint8
    torch.testing.assert_close(train.lr, degradation(train.hr.float() / 255))


def test_batches_cover_every_pair_once_in_shuffled_order():
    pairs = PairedImages.from_hr(load_bundled_sample()[:10], Degradation())
    gen = torch.Generator().manual_seed(0)
    batches = list(pairs.batches(4, shuffle=True, generator=gen))
    assert [len(hr) for _, hr in batches] == [4, 4, 2]
    seen = torch.cat([hr for _, hr in batches])
    assert sorted(seen.sum((1, 2, 3)).tolist()) == pytest.approx(
        sorted(pairs.hr.float().div(255).sum((1, 2, 3)).tolist())
    )
    lr, hr = pairs[3]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32) and hr.max() <= 1


def test_bundled_sample_is_the_first_cifar_test_images():
    sample = load_bundled_sample()
    assert sample.shape == (64, 3, 32, 32) and sample.dtype == torch.uint8


def test_image_folder_gives_fresh_random_crops(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(tmp_path / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / "too_small.png")
    (tmp_path / "notes.txt").write_text("not an image")
    crops = ImageFolderCrops(tmp_path, Degradation(scale=4), crop_size=32, crops_per_epoch=10)
    assert len(crops.images) == 2
    gen = torch.Generator().manual_seed(0)
    first = list(crops.batches(4, generator=gen))
    second = list(crops.batches(4, generator=gen))
    assert [hr.shape[0] for _, hr in first] == [4, 4, 2]
    assert first[0][0].shape == (4, 3, 8, 8) and first[0][1].shape == (4, 3, 32, 32)
    assert not torch.equal(first[0][1], second[0][1])
    with pytest.raises(DataError, match="no image"):
        ImageFolderCrops(tmp_path, Degradation(), crop_size=128)
    with pytest.raises(DataError, match="not divisible"):
        ImageFolderCrops(tmp_path, Degradation(), crop_size=30)


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            self.data = np.zeros((3, 32, 32, 3), dtype=np.uint8)
            self.targets = [4, 1, 7]  # torchvision's CIFAR10 keeps its classes as a list

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    assert load_cifar10("test", tmp_path, download=True).shape == (3, 3, 32, 32)
    assert calls == [(str(tmp_path), False, True)]
    assert load_cifar10_labeled("train", tmp_path, download=True)[1].tolist() == [4, 1, 7]


def _augmented(names, n=16):
    from pyro_sr.data.augment import AugmentedPairs

    degradation = Degradation()
    pairs = PairedImages.from_hr(load_bundled_sample()[:n], degradation)
    ((lr, hr),) = AugmentedPairs(pairs, degradation, names).batches(n, False, torch.Generator().manual_seed(0))
    torch.testing.assert_close(lr, degradation(hr))  # every pair is an exact (degrade(x), x)
    return pairs.hr.float() / 255, hr


def _same(a, b):
    return (a - b).abs().flatten(1).amax(1) == 0


def test_hflip_mirrors_some_images_and_recomputes_lr():
    original, hr = _augmented(["hflip"])
    mirrored, unchanged = _same(hr, original.flip(-1)), _same(hr, original)
    assert (mirrored | unchanged).all() and 0 < int(mirrored.sum()) < 16


def test_dihedral_and_rgb_give_each_image_one_of_its_48_variants():
    original, hr = _augmented(["dihedral", "rgb"])
    perms = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    variants = []
    for transpose in (False, True):
        for k in range(4):
            x = original.transpose(-1, -2) if transpose else original
            x = torch.rot90(x, k, (-2, -1))
            variants += [x[:, list(p)] for p in perms]
    matches = torch.stack([_same(hr, v) for v in variants])  # (48, N)
    assert (matches.sum(0) >= 1).all()
    assert len(set(matches.float().argmax(0).tolist())) > 4  # the draws differ between images


def test_shift_crops_one_lr_pixel_at_every_sampling_phase():
    original, hr = _augmented(["shift"], n=64)
    assert hr.shape[-2:] == (28, 28)  # the LR pairs are 7x7, still exact (checked in _augmented)
    offsets = []
    phases = [(dy, dx) for dy in range(4) for dx in range(4)]
    for image, source in zip(hr, original, strict=True):
        found = [(dy, dx) for dy, dx in phases if torch.equal(image, source[:, dy : dy + 28, dx : dx + 28])]
        assert len(found) == 1
        offsets += found
    assert len(set(offsets)) > 8  # each image draws its own phase


def test_bad_augmentations_are_refused():
    from pyro_sr.data.augment import augment_hr, check_augmentations

    with pytest.raises(ValueError, match="unknown augmentation 'cutout'"):
        check_augmentations(["hflip", "cutout"])
    with pytest.raises(ValueError, match="square"):
        augment_hr(torch.zeros(2, 3, 8, 12), ["dihedral"], scale=4)
    with pytest.raises(ValueError, match="larger than the scale 4"):
        augment_hr(torch.zeros(2, 3, 4, 8), ["shift"], scale=4)


def test_old_checkpoints_flips_flag_reads_as_hflip():
    from pyro_sr.training.cnn import TrainConfig

    assert TrainConfig.from_dict({"epochs": 3, "flips": True}).augment == ("hflip",)
    assert TrainConfig.from_dict({"epochs": 3, "flips": False}).augment == ()


def test_labels_come_with_the_images_in_every_layout(tmp_path, fake_cifar_batches):
    images, labels = load_cifar10_labeled("train", fake_cifar_batches)
    assert labels.tolist() == list(range(10)) * 5 and len(images) == len(labels)
    npz = tmp_path / "npz"
    npz.mkdir()
    hwc = np.zeros((3, 32, 32, 3), dtype=np.uint8)
    np.savez_compressed(npz / "cifar10_test.npz", images=hwc, labels=np.array([3, 0, 9]))
    assert load_cifar10_labeled("test", npz)[1].tolist() == [3, 0, 9]
    np.savez_compressed(npz / "cifar10_test.npz", images=hwc, labels=np.array([3, 0, 10]))
    with pytest.raises(DataError, match="one CIFAR-10 class"):
        load_cifar10_labeled("test", npz)
    np.savez_compressed(npz / "cifar10_test.npz", images=hwc)
    assert load_cifar10_labeled("test", npz)[1] is None  # images alone still serve every super-resolver
    assert load_pairs("cifar10", "test", Degradation(), npz).labels is None
    with pytest.raises(DataError, match="no 'labels' array"):
        load_cifar10_labeled("test", npz, labels_required=True)
    bundled = load_bundled_labels()
    assert bundled.shape == (64,) and bundled.dtype == torch.int64 and len(set(bundled.tolist())) == 10
