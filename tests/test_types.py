import json

import numpy as np
import pytest

import labkit as lk
from labkit.types import as_rng, make_poisoned


def test_dataset_validates_and_freezes(tiny):
    with pytest.raises(ValueError, match="shaped"):
        lk.Dataset(np.zeros((3, 4)), np.zeros(3, int), 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lk.Dataset(np.full((2, 1, 2, 2), 2.0), np.zeros(2, int), 2)
    with pytest.raises(ValueError, match="labels must lie"):
        lk.Dataset(np.zeros((2, 1, 2, 2)), np.array([0, 5]), 2)
    with pytest.raises(ValueError):
        tiny.X[0, 0, 0, 0] = 1.0          # read-only
    assert repr(tiny) == "Dataset(name='tiny', n=40, n_classes=4)"
    assert tiny.X.dtype == np.float32 and tiny.y.dtype == np.int64


def test_dataset_copies_caller_arrays():
    X = np.zeros((2, 1, 2, 2), np.float32)
    d = lk.Dataset(X, np.array([0, 1]), 2)
    X[0] = 1.0
    assert d.X.max() == 0.0 and X.flags.writeable


def test_poisoned_dataset_carries_ground_truth(tiny):
    y = tiny.y.copy()
    y[[3, 1]] = 0
    p = make_poisoned(tiny, y=y, idx=[3, 1, 3], attack="demo", params={"rate": 0.05})
    assert p.poison_idx.tolist() == [1, 3] and p.n_poison == 2
    assert p.is_poison.sum() == 2 and p.clean is tiny
    view = p.as_dataset()
    assert type(view) is lk.Dataset and not hasattr(view, "poison_idx")
    assert "n_poison=2" in repr(p)
    with pytest.raises(ValueError, match="out of range"):
        make_poisoned(tiny, idx=[40], attack="demo", params={})


def test_detection_and_runresult():
    det = lk.Detection(scores=[0.1, 0.9, 0.5], flagged=[False, True, False], defence="d")
    assert det.flagged_idx.tolist() == [1] and det.n_flagged == 1
    with pytest.raises(ValueError):
        lk.Detection(scores=[0.1, 0.2], flagged=[True], defence="d")
    r = lk.RunResult("a", None, "digits", 0, {"rate": 0.1}, 10, 1, 0.9, 0.8, None,
                     extra={"curve": np.array([0.5, 0.25])})
    d = r.as_dict()
    assert json.loads(json.dumps(d))["extra"]["curve"] == [0.5, 0.25]
    assert "poisoned" not in d


def test_as_rng():
    assert as_rng(3).integers(100) == np.random.default_rng(3).integers(100)
    g = np.random.default_rng(1)
    assert as_rng(g) is g
    with pytest.raises(TypeError):
        as_rng("seed")
