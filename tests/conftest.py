import pickle

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def fake_cifar_batches(tmp_path):
    """A tiny cifar-10-batches-py folder in the official pickle layout (10 images per batch)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(10, 3072), dtype=np.uint8)
        with (folder / name).open("wb") as f:
            pickle.dump({"data": data, "labels": list(range(10))}, f)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)
    return folder


@pytest.fixture
def interrupt_after_first_epoch(monkeypatch):
    """Call the returned function to make the next training run stop with KeyboardInterrupt right after it
    writes its first checkpoint (once; saving is normal afterwards)."""
    import pyro_sr.training.run as run_module

    real_save = run_module.save_checkpoint

    def save_then_stop(payload, path):
        real_save(payload, path)
        monkeypatch.setattr(run_module, "save_checkpoint", real_save)
        raise KeyboardInterrupt

    return lambda: monkeypatch.setattr(run_module, "save_checkpoint", save_then_stop)
