"""What the lab measures: accuracy, the attacker's success, and how well a defence detects.

Ground truth (``PoisonedDataset.poison_idx``) meets a defence's verdict only here, in
:func:`detection_report`.

See Also: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from .models import predict, predict_proba
from .types import Dataset, Detection, PoisonedDataset

__all__ = ["clean_accuracy", "attack_success_rate", "detection_report", "auroc",
           "per_class_recall", "confusion_matrix", "label_consistency", "label_checks", "held_out",
           "precision_recall", "fmt_rate"]


def clean_accuracy(model, test: Dataset) -> float:
    """Fraction of ``test`` the model labels correctly."""
    return float((predict(model, test.X) == test.y).mean())


def target_probability(model, poisoned: PoisonedDataset, test: Dataset) -> float:
    """``model``'s probability of the attacker's class on ``poisoned``'s first target: a
    finer measure than flipped or not."""
    t, a = int(poisoned.target_idx[0]), int(np.ravel(poisoned.target_class)[0])
    return float(predict_proba(model, test.X[t:t + 1])[0, a])


def per_class_recall(model, test: Dataset) -> np.ndarray:
    """Recall of each class on ``test``, shape (n_classes,)."""
    pred = predict(model, test.X)
    return np.array([(pred[test.y == c] == c).mean() if (test.y == c).any() else np.nan
                     for c in range(test.n_classes)])


def confusion_matrix(model, test: Dataset) -> np.ndarray:
    """Counts ``C[true, predicted]``, shape (n_classes, n_classes)."""
    pred = predict(model, test.X)
    C = np.zeros((test.n_classes, test.n_classes), np.int64)
    np.add.at(C, (test.y, pred), 1)
    return C


def attack_success_rate(model, poisoned: PoisonedDataset, test: Dataset) -> Optional[float]:
    """The attacker's own goal, measured on ``test``; ``None`` for untargeted attacks.

    - backdoor (``poisoned.trigger``): fraction of triggered test inputs whose true class is
      not the target that the model assigns to ``target_class``;
    - targeted points (``poisoned.target_idx``): fraction of ``test.X[target_idx]``
      classified as ``target_class`` (one class for all, or one per target);
    - class pair (``poisoned.source_class``): fraction of ``source_class`` test points
      classified as ``target_class``.
    """
    if poisoned.trigger is not None:
        keep = test.y != poisoned.target_class
        pred = predict(model, poisoned.trigger(test.X[keep]))
        return float((pred == poisoned.target_class).mean())
    if poisoned.target_idx is not None:
        pred = predict(model, test.X[poisoned.target_idx])
        return float((pred == np.asarray(poisoned.target_class)).mean())
    if poisoned.source_class is not None:
        pred = predict(model, test.X[test.y == poisoned.source_class])
        return float((pred == poisoned.target_class).mean())
    return None


def auroc(scores, is_positive) -> float:
    """Area under the ROC curve (ties count half); ``nan`` if one class is missing.

    Equals the probability that a random positive scores above a random negative.
    """
    scores = np.asarray(scores, np.float64)
    pos = np.asarray(is_positive, bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_report(det: Detection, poisoned: PoisonedDataset) -> dict:
    """Precision, recall, F1 and AUROC of ``det`` against the true ``poison_idx``.

    Precision is ``None`` (undefined) when nothing is flagged: a detector that flags nothing
    has made no claim to be right about; print it as "n/a" (:func:`fmt_rate`). It is 0.0 when
    there are no poisons but something is flagged.
    """
    if det.scores.size != len(poisoned):
        raise ValueError(f"detection covers {det.scores.size} rows, data has {len(poisoned)}")
    truth = poisoned.is_poison
    return {**precision_recall(det.flagged, truth), "auroc": auroc(det.scores, truth),
            "n_flagged": det.n_flagged, "n_poison": int(truth.sum())}


#: The label checkers: two families the lab's attackers guard against (logistic regression,
#: 5 nearest neighbours) and one none of them trains against (an RBF support-vector machine).
CHECKERS = ("logreg", "knn", "svm")


_FITTED: dict = {}     # (family, sha256 of the reference data) -> fitted checker; a few at most


def _checker(family: str, X: np.ndarray, y: np.ndarray):
    """The ``family`` checker fitted on ``(X, y)``, fitted once per reference set (the fits
    are deterministic)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    key = (family, hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest())
    if key not in _FITTED:
        if len(_FITTED) >= 2 * len(CHECKERS):
            _FITTED.pop(next(iter(_FITTED)))
        clf = {"logreg": lambda: LogisticRegression(max_iter=2000),
               "knn": lambda: KNeighborsClassifier(n_neighbors=5),
               "svm": lambda: SVC(C=10.0, gamma="scale")}[family]()
        _FITTED[key] = clf.fit(X if family == "knn" else X.astype(np.float64), y)
    return _FITTED[key]


def _shown(poisoned: PoisonedDataset) -> np.ndarray:
    """The poisons as the checkers read them, flattened: a patch trigger's pixels are put
    back to the base's (the patch is a visible mark by design; the question is what the rest
    of the image shows). A whole-image trigger (blend) is read as it is."""
    idx = poisoned.poison_idx
    X = poisoned.X[idx].copy()
    if poisoned.trigger is not None:
        mask = trigger_mask(poisoned.trigger, poisoned.image_shape)
        if not mask.all():
            X[:, :, mask] = poisoned.clean.X[idx][:, :, mask]
    return X.reshape(len(idx), -1)


def _kept(clf, poisoned: PoisonedDataset, dtype) -> tuple:
    """(read_as_label, bases_read_as_label, kept) of one fitted checker on ``poisoned``."""
    idx = poisoned.poison_idx
    label = poisoned.y[idx]
    ok = clf.predict(_shown(poisoned).astype(dtype)) == label
    base_ok = clf.predict(poisoned.clean.flat()[idx].astype(dtype)) == label
    return float(ok.mean()), float(base_ok.mean()), float(ok[base_ok].mean()) if base_ok.any() else float("nan")


def label_checks(poisoned: PoisonedDataset, reference: Dataset, *, control: Optional[PoisonedDataset] = None) -> dict:
    """How many poisons three independent classifiers still read as their own label.

    The checkers are fitted on ``reference``, data the attacker never touched (the held-out
    split, without any target): neither the poisons' bases nor the attacker's guard data.
    Three model families on raw pixels (:data:`CHECKERS`): ``"logreg"`` (logistic
    regression) and ``"knn"`` (5 nearest neighbours), which some attackers' guards imitate,
    and ``"svm"`` (an RBF support-vector machine), which none does. For each the result holds:

    - ``read_as_label``: fraction of the poisons it gives their own label;
    - ``bases_read_as_label``: the same for the unperturbed bases (the checker's own limit:
      a base it already misreads says nothing about the perturbation);
    - ``kept``: fraction of the bases read correctly whose poison is still read correctly,
      i.e. how often the perturbation did not change the checker's reading.

    A backdoor's patch is a visible mark by design: the checkers read the poisons with the
    patch's pixels put back to the base's, i.e. what the rest of the image shows.

    With a ``control`` (the same rows changed by what is *not* the attack: same-budget random
    noise, or the trigger alone), each checker also gets ``control_kept`` (its ``kept`` on
    the control) and ``calibrated`` = ``min(1, kept + 1 - control_kept)``: a checker that
    loses readings to any change of that size is not counted against the attack for those.

    ``"worst"`` is the smallest ``calibrated`` (``kept`` without a control) over the
    checkers: the lab's honesty bar. A checker fitted on a few hundred held-out rows misreads
    some clean digits too; what the bar asks is whether the perturbation changed the
    reading, so bases the checker already misreads are left out (their numbers stay in
    ``read_as_label`` and ``bases_read_as_label``).
    """
    if poisoned.n_poison == 0:
        raise ValueError("no poisons to check")
    if reference.image_shape != poisoned.image_shape:
        raise ValueError(f"reference images are {reference.image_shape}, poisons {poisoned.image_shape}")
    if control is not None and not np.array_equal(control.poison_idx, poisoned.poison_idx):
        raise ValueError("the control must change the same rows as the poisons")
    X = np.ascontiguousarray(reference.flat(), np.float32)
    y = np.ascontiguousarray(reference.y, np.int64)
    out = {}
    for family in CHECKERS:
        clf = _checker(family, X, y)
        read, bases, kept = _kept(clf, poisoned, X.dtype)
        out[family] = {"read_as_label": read, "bases_read_as_label": bases, "kept": kept}
        if control is not None:
            ctl_kept = _kept(clf, control, X.dtype)[2]
            out[family].update(control_kept=ctl_kept, calibrated=min(1.0, kept + 1.0 - ctl_kept))
    out["worst"] = min(out[f]["calibrated" if control is not None else "kept"] for f in CHECKERS)
    return out


def label_consistency(poisoned: PoisonedDataset, reference: Dataset, *,
                      control: Optional[PoisonedDataset] = None) -> float:
    """The worst of three independent checkers' fraction of poisons still read as their own
    label where the unperturbed base was, calibrated against ``control`` when given
    (:func:`label_checks`' ``"worst"``): the "clean label" check of clean-label and
    gradient-matching poisons. ``reference`` is held-out data the attacker never touched."""
    return label_checks(poisoned, reference, control=control)["worst"]


def held_out(test: Dataset, exclude) -> Dataset:
    """``test`` without the rows ``exclude`` (the targets): the checkers' reference data."""
    keep = np.setdiff1d(np.arange(len(test)), np.asarray(exclude, np.int64).ravel())
    return test.subset(keep)


def precision_recall(flagged, truth) -> dict:
    """``precision``, ``recall`` and ``f1`` of boolean ``flagged`` against boolean ``truth``.

    Precision is ``None`` when nothing is flagged (undefined, not perfect), recall 1.0 when
    nothing is true. F1 counts an undefined precision as 0 unless nothing is true either
    (then flagging nothing was right: F1 1.0).
    """
    flagged, truth = np.asarray(flagged, bool), np.asarray(truth, bool)
    tp = int((flagged & truth).sum())
    recall = tp / truth.sum() if truth.any() else 1.0
    if not flagged.any():
        return {"precision": None, "recall": float(recall), "f1": 0.0 if truth.any() else 1.0}
    precision = tp / flagged.sum()
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def fmt_rate(value, digits: int = 2) -> str:
    """A rate for printing: ``0.97`` -> ``"0.97"``, ``None`` (undefined, e.g. the precision of a
    detector that flagged nothing) -> ``"n/a"``."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def trigger_mask(trigger, image_shape) -> np.ndarray:
    """The pixels a trigger touches, bool ``(H, W)``: where stamping a black or a white
    image changes it (any channel). Ground truth: for evaluation, never for a defence."""
    shape = (1, *tuple(image_shape))
    changed = np.zeros(shape[-2:], bool)
    for v in (0.0, 1.0):
        X = np.full(shape, v, np.float32)
        changed |= (np.abs(trigger(X) - X) > 1e-6)[0].any(0)
    return changed


def trigger_overlap(mask, true_mask) -> float:
    """The fraction of a real trigger's pixels (``true_mask``, bool ``(H, W)``) among the
    ``k`` largest pixels of a recovered ``mask``, ``k`` = the real trigger's pixel count.
    1 = the recovered mask's strongest pixels are exactly the real trigger's."""
    mask, true_mask = np.asarray(mask, float), np.asarray(true_mask, bool)
    k = int(true_mask.sum())
    if k == 0:
        raise ValueError("the real trigger has no pixels")
    best = np.argsort(-mask.ravel(), kind="stable")[:k]
    return float(true_mask.ravel()[best].mean())
