"""Contract checkers: what every attack and every detector must satisfy.

``check_attack`` and ``check_detector`` raise ``AssertionError`` with a readable message on
the first broken promise; the test suite runs them over every registered method.

See Also: labkit.registry, tests/test_registry.py
"""
from __future__ import annotations

import numpy as np

from .types import Dataset, Detection, PoisonedDataset

__all__ = ["check_attack", "check_detector"]


def _same(a: PoisonedDataset, b: PoisonedDataset) -> bool:
    return (np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
            and np.array_equal(a.poison_idx, b.poison_idx))


def check_attack(fn, data: Dataset, *, changes_rows: bool = True, **kw) -> PoisonedDataset:
    """Run ``fn(data, rng=0, **kw)`` twice and check the attack contract.

    - returns a :class:`PoisonedDataset` whose ``clean`` is ``data``'s rows, with the same rows
      or with poisons inserted after them (every inserted row a poison);
    - rows outside ``poison_idx`` are unchanged (pixels and labels), every row in it differs
      from its clean version (pixels, labels or both; an inserted row has none) unless
      ``changes_rows=False`` (an attack that marks the rows it controls without changing
      them: malicious federated clients);
    - ``data`` is not mutated; the same seed gives the same poisons.
    """
    X0, y0 = data.X.copy(), data.y.copy()
    out = fn(data, rng=0, **kw)
    assert isinstance(out, PoisonedDataset), f"{fn.__name__} must return a PoisonedDataset"
    n = len(data)
    assert out.X.shape[1:] == data.X.shape[1:] and len(out) >= n, "row shape changed or rows lost"
    assert np.array_equal(data.X, X0) and np.array_equal(data.y, y0), "input was mutated"
    assert np.array_equal(out.clean.X, data.X) and np.array_equal(out.clean.y, data.y), \
        "clean must be the untouched input"
    assert out.is_poison[n:].all(), "an inserted row is not marked as a poison"
    outside = ~out.is_poison[:n]
    assert np.array_equal(out.X[:n][outside], data.X[outside]), "pixels changed outside poison_idx"
    assert np.array_equal(out.y[:n][outside], data.y[outside]), "labels changed outside poison_idx"
    changed = np.concatenate([(out.X[:n] != data.X).reshape(n, -1).any(1) | (out.y[:n] != data.y),
                              np.ones(len(out) - n, bool)])
    if changes_rows:
        assert changed[out.poison_idx].all(), "a row in poison_idx is identical to its clean version"
    assert out.n_poison > 0, "the attack changed nothing"
    assert _same(out, fn(data, rng=0, **kw)), "same seed gave different poisons"
    return out


def check_detector(detect, features, labels, **kw) -> Detection:
    """Run ``detect(features, labels, **kw)`` twice and check the detector contract.

    - returns a :class:`Detection` with one finite score and one flag per row;
    - inputs are not mutated; the result is deterministic;
    - "higher = more suspicious": flagged rows' mean score is not below the unflagged
      rows' mean.
    """
    f0, l0 = np.array(features, copy=True), np.array(labels, copy=True)
    det = detect(features, labels, **kw)
    assert isinstance(det, Detection), "a detector must return a Detection"
    assert det.scores.shape == (len(labels),), "one score per row"
    assert np.isfinite(det.scores).all(), "scores must be finite"
    assert np.array_equal(features, f0) and np.array_equal(labels, l0), "input was mutated"
    again = detect(features, labels, **kw)
    assert np.array_equal(det.scores, again.scores) and np.array_equal(det.flagged, again.flagged), \
        "not deterministic"
    if 0 < det.n_flagged < len(labels):
        assert det.scores[det.flagged].mean() >= det.scores[~det.flagged].mean(), \
            "flagged rows must be the more suspicious ones (higher score)"
    return det
