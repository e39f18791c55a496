"""Lesson 5, defence in depth: the capstone (``lk.challenge``) and the exercises.

The capstone: defend one pipeline against a hidden mix of poisoning attacks.

``data = lk.challenge.mystery(seed)`` is a digits training set poisoned by several attack
families at hidden rates, with hidden settings (target classes, trigger position). The
learner flags rows; ``lk.challenge.score(flags, seed=seed)`` reports precision, recall and
F1 overall and per family. The answer key is never handed out: ``score`` rebuilds the
poisoning from the seed inside the function, so the learner's namespace only ever holds a
plain :class:`~labkit.types.Dataset`.

:func:`reference_defence` is a layered pipeline built from the lab's own defences; it
shows what "good" looks like and sets the bar.

See Also: notebooks/05_defence_in_depth.ipynb
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from .exercises import exercise, one_of
from ..metrics import fmt_rate, precision_recall
from ..rng import as_rng
from ..types import Dataset, Detection, PoisonedDataset

__all__ = ["mystery", "score", "reference_defence", "FAMILIES", "task"]


def _engine_seed(rng) -> int:
    return int(rng.integers(2 ** 31))


def _label_flips(data: Dataset, test: Dataset, rng) -> PoisonedDataset:
    from ..attacks.label_flip import flip_labels

    return flip_labels(data, rate=float(rng.uniform(0.05, 0.15)), rng=rng)


def _backdoor(data: Dataset, test: Dataset, rng) -> PoisonedDataset:
    from ..attacks.backdoor import add_backdoor

    corner = ["top-left", "top-right", "bottom-left", "bottom-right"][int(rng.integers(4))]
    return add_backdoor(data, trigger="patch", position=corner, target_class=int(rng.integers(10)),
                        rate=float(rng.uniform(0.02, 0.06)), rng=rng)


def _clean_label(data: Dataset, test: Dataset, rng) -> PoisonedDataset:
    """Lesson 3's attack, trial 0 of the engine's ``clean_label`` on this data (bullseye
    polytope, transfer-learning threat model, one target)."""
    from ..data import Split
    from ..experiment import craft, prepare

    n_poisons = int(rng.integers(10, 31))
    ctx = prepare("clean_label", split=Split(data, test), seed=_engine_seed(rng),
                  params={"n_targets": 1, "n_poisons": n_poisons})
    return craft(ctx, 0)


def _gradient_matching(data: Dataset, test: Dataset, rng) -> PoisonedDataset:
    """Lesson 4's attack, trial 0 of the engine's ``gradient_matching`` on this data (one
    target, 100 crafting steps, eps 0.15)."""
    from ..data import Split
    from ..experiment import craft, prepare

    rate = float(rng.uniform(0.01, 0.03))
    ctx = prepare("gradient_matching", split=Split(data, test), seed=_engine_seed(rng), rate=rate,
                  params={"n_targets": 1, "eps": 0.15, "steps": 100})
    return craft(ctx, 0)


#: Family name -> ``attack(data, test, rng) -> PoisonedDataset`` with hidden, seeded settings.
FAMILIES: dict[str, Callable] = {"label flipping": _label_flips, "backdoor": _backdoor,
                                 "clean-label": _clean_label, "gradient matching": _gradient_matching}
#: The lesson that teaches each family (the half-day agenda says which ones its learners miss).
FAMILY_LESSON = {"label flipping": 1, "backdoor": 2, "clean-label": 3, "gradient matching": 4}
#: The reference answer's layers (:func:`reference_defence`) and the lesson that teaches each.
REFERENCE_LAYERS = {"knn_sanitisation": 1, "activation_clustering": 2}


@functools.lru_cache(maxsize=4)
def _build(seed: int):
    """The poisoned dataset and, per row, the family that last changed it ("" = clean).

    Families are applied in order, each to the previous one's output; a row changed twice
    counts for the later family. Cached: ``mystery`` and ``score`` share one build.
    """
    from ..data import digits

    rng = as_rng(np.random.default_rng([seed, 2026]))
    data, test = digits(seed=seed)
    family = np.full(len(data), "", dtype=object)
    current = data
    for name, attack in FAMILIES.items():
        poisoned = attack(current, test, rng)
        family[poisoned.poison_idx] = name
        current = poisoned.as_dataset()
    family.setflags(write=False)
    return current.replace(name=f"mystery-{seed}"), family


def mystery(seed: int) -> Dataset:
    """The capstone's training set for ``seed`` (a plain Dataset: no ground truth inside)."""
    return _build(int(seed))[0]


def task(seed: int) -> str:
    """The learner's brief, as printed by ``python -m labkit challenge --seed N``."""
    data = mystery(seed)
    return (f"Capstone challenge, seed {seed}\n"
            f"You received {len(data)} labelled 8x8 digits for training (lk.challenge.mystery({seed})).\n"
            f"Some rows were poisoned by a hidden mix of these families: {', '.join(FAMILIES)}.\n"
            "Rates, target classes and trigger positions are hidden. Flag the rows you would remove.\n"
            f"Score in Python: lk.challenge.score(flags, seed={seed})  (flags: bool mask or row indices)\n"
            f"or from a file of row indices, one per line: python -m labkit challenge --seed {seed} --score FILE")


def _as_mask(flags, n: int) -> np.ndarray:
    flags = np.asarray(flags)
    if flags.dtype == bool:
        if flags.shape != (n,):
            raise ValueError(f"a boolean mask must have {n} entries, got {flags.shape}")
        return flags
    if flags.size and (not np.issubdtype(flags.dtype, np.integer) or flags.min() < 0 or flags.max() >= n):
        raise ValueError(f"flags must be a boolean mask or row indices in [0, {n})")
    mask = np.zeros(n, bool)
    mask[flags.astype(int)] = True
    return mask


def score(flags, *, seed: int) -> dict:
    """Precision, recall and F1 of ``flags`` (boolean mask or row indices), overall and per family.

    Per family, only recall is meaningful (a flag cannot say which family it suspects).
    Scoring prints nothing: a workshop's completion code comes from checking an answer,
    ``lk.checks.check("l5_capstone", flags)`` or ``python -m labkit challenge --score FILE``.
    """
    data, family = _build(int(seed))
    mask = _as_mask(flags, len(data))
    truth = family != ""
    pr = precision_recall(mask, truth)
    precision, recall, f1 = pr["precision"], pr["recall"], pr["f1"]
    per_family = {name: {"n_poison": int((family == name).sum()),
                         "recall": float(mask[family == name].mean()) if (family == name).any() else None}
                  for name in FAMILIES}
    return {"precision": precision, "recall": recall, "f1": f1, "n_flagged": int(mask.sum()),
            "n_poison": int(truth.sum()), "per_family": per_family}


def reference_defence(data: Dataset, *, seed: int = 0) -> Detection:
    """A layered defence built from the lab's own tools; flags the union of:

    1. k-NN label sanitisation in pixel space (mislabelled rows: flips, and backdoor poisons,
       whose clean-looking neighbours carry their true class);
    2. activation clustering on the penultimate features of a model trained on the data
       (a backdoor's poisons form their own cluster inside the target class, and it does
       not need to know the poison rate).

    Both run through :func:`labkit.experiment.detect`, the engine's detector step on data
    alone.

    ``scores`` is the largest of the layers' suspicions, each scaled to [0, 1].

    It finds nearly all flipped and backdoor rows and few clean-label or gradient-matching
    poisons (correct labels, small perturbations): adding deep k-NN catches a few more of
    those but flags many clean rows, which costs more precision than it gains recall.
    """
    from ..experiment import detect

    settings = {"knn_sanitisation": {"k": 10, "eta": 0.5}, "activation_clustering": {}}
    layers = [detect(data, name, seed=seed, **settings[name]) for name in REFERENCE_LAYERS]
    norm = lambda s: (s - s.min()) / (np.ptp(s) or 1.0)
    return Detection(np.max([norm(d.scores) for d in layers], axis=0),
                     np.any([d.flagged for d in layers], axis=0), "reference_defence",
                     {"layers": [d.defence for d in layers]})


# ---- exercises ------------------------------------------------------------------------

@exercise("l5_blind_spot",
          hint="A backdoor leaves clean behaviour untouched. Which checks look at clean inputs only?",
          hints=("Clean traffic carries no trigger. Run lk.defences.monitoring.monitor with "
                 "traffic=incoming.X and read which alerts fire, if any.",),
          answer_type='a check\'s name as a string, or "none"',
          solution="'none': the canary compares clean accuracy and confidence, which a backdoor "
                   "keeps; traffic drift and the STRIP screen need triggered inputs in the traffic. "
                   "A backdoor stays invisible to monitoring until someone uses the trigger.",
          answer="none", wrong="traffic_drift")
def _l5_blind_spot(answer):
    return one_of(answer, ("none", "no check", "nothing"),
                   right="yes: monitoring sees a backdoor only once triggered inputs arrive.",
                   wrong="run lk.defences.monitoring.monitor with clean traffic and read the alerts.")


@exercise("l5_capstone",
          hint="Layer the lab's defences: label checks find flipped and backdoor rows (their "
               "neighbours disagree), feature-space clustering finds a backdoor's cluster. "
               "Combine flags with | and check the precision: every clean row you flag costs you.",
          hints=("One layered answer: lk.defences.knn_sanitisation(data.flat(), data.y).flagged "
                 "| lk.defences.activation_clustering(feats, data.y, rng=SEED).flagged, with "
                 "feats = lk.models.embed(lk.models.train(data, seed=SEED), data.X).",),
          answer_type="a boolean mask over the mystery data's rows, or a list of row indices (checked with your SEED)",
          solution="flags = lk.challenge.reference_defence(data, seed=SEED).flagged  (k-NN "
                   "sanitisation OR activation clustering; F1 above 0.8 on every seed tried).",
          answer=lambda: (reference_defence(mystery(0), seed=0).flagged, 0),
          wrong=lambda: (np.arange(10), 0))
def _l5_capstone(answer):
    flags, seed = answer if isinstance(answer, tuple) else (answer, 0)
    result = score(flags, seed=seed)
    return capstone_verdict(result)


#: The capstone's goal: F1 of the flagged rows.
CAPSTONE_GOAL = 0.8


def capstone_verdict(result: dict) -> tuple[bool, str]:
    """``(passed, message)`` for a :func:`score` result (the exercise and the CLI agree)."""
    per = ", ".join(f"{k} {v['recall']:.2f}" for k, v in result["per_family"].items() if v["recall"] is not None)
    msg = (f"precision {fmt_rate(result['precision'])}, recall {result['recall']:.2f}, F1 {result['f1']:.2f} "
           f"(per family recall: {per}); goal F1 >= {CAPSTONE_GOAL}")
    return result["f1"] >= CAPSTONE_GOAL, msg
