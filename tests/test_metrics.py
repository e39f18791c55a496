import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import labkit as lk
from labkit import metrics
from labkit.types import make_poisoned


class Const:
    """A stand-in model predicting a fixed label per row."""

    def __init__(self, fn):
        self.fn = fn

    def predict(self, X):
        return self.fn(X)


def test_auroc_matches_sklearn():
    rng = np.random.default_rng(0)
    s = rng.normal(size=200).round(1)          # with ties
    t = rng.random(200) < 0.3
    assert metrics.auroc(s, t) == pytest.approx(roc_auc_score(t, s))
    assert np.isnan(metrics.auroc(s, np.zeros(200, bool)))


def test_detection_report_hand_worked(tiny):
    p = make_poisoned(tiny, y=np.where(np.arange(40) < 4, (tiny.y + 1) % 4, tiny.y),
                      idx=[0, 1, 2, 3], attack="demo", params={})
    flagged = np.zeros(40, bool)
    flagged[[0, 1, 10]] = True
    scores = flagged.astype(float)
    rep = metrics.detection_report(lk.Detection(scores, flagged, "d"), p)
    assert rep["precision"] == pytest.approx(2 / 3) and rep["recall"] == pytest.approx(0.5)
    assert rep["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))


def test_attack_success_variants(tiny):
    test = tiny
    always0 = Const(lambda X: np.zeros(len(X), int))
    p = make_poisoned(tiny, idx=[0], attack="demo", params={}, target_class=0, source_class=2)
    assert metrics.attack_success_rate(always0, p, test) == 1.0
    p = make_poisoned(tiny, idx=[0], attack="demo", params={}, target_class=1, target_idx=[0, 5])
    assert metrics.attack_success_rate(always0, p, test) == 0.0
    p = make_poisoned(tiny, idx=[0], attack="demo", params={}, target_class=0,
                      trigger=lambda X: X)
    assert metrics.attack_success_rate(always0, p, test) == 1.0
    p = make_poisoned(tiny, idx=[0], attack="demo", params={})
    assert metrics.attack_success_rate(always0, p, test) is None


def test_confusion_and_recall(tiny):
    m = Const(lambda X: np.where(np.arange(len(X)) < 5, 1, 0))
    C = metrics.confusion_matrix(m, tiny)
    assert C.sum() == 40 and C[0, 1] == 5 and C[0, 0] == 5
    assert metrics.per_class_recall(m, tiny)[0] == 0.5


def test_a_detector_that_flags_nothing_has_no_precision(tiny):
    p = make_poisoned(tiny, y=np.where(np.arange(40) < 4, (tiny.y + 1) % 4, tiny.y),
                      idx=[0, 1, 2, 3], attack="demo", params={})
    none = np.zeros(40, bool)
    rep = metrics.detection_report(lk.Detection(np.zeros(40), none, "d"), p)
    assert rep["precision"] is None and rep["recall"] == 0.0 and rep["f1"] == 0.0
    assert rep["n_flagged"] == 0
    # flagging nothing when nothing is poisoned was right; precision is still undefined
    assert metrics.precision_recall(none, none) == {"precision": None, "recall": 1.0, "f1": 1.0}
    # one wrong flag is a measured precision of 0, not an undefined one
    one = none.copy()
    one[20] = True
    assert metrics.precision_recall(one, p.is_poison)["precision"] == 0.0
    assert metrics.fmt_rate(None) == "n/a" and metrics.fmt_rate(0.974) == "0.97"
    assert metrics.fmt_rate(0.5, 3) == "0.500"
