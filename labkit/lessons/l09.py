"""Lesson 9, a model you were handed: the models the notebook's exercises hand the learner,
and the exercises.

The methods are :mod:`labkit.defences.neural_cleanse` (Neural Cleanse, NC unlearning,
fine-pruning, clean fine-tuning: the registry's ``model_repair`` defences, run through
:func:`labkit.experiment.defend`) and :mod:`labkit.defences.meta_classifier` (the population
detector); populations come from :func:`labkit.experiment.model_population`.

See Also: notebooks/09_model_inspection.ipynb
"""
from __future__ import annotations

import functools

import numpy as np

from ..experiment import model_population, prepare, trial
from ..metrics import fmt_rate, precision_recall
from .exercises import exercise, one_of, whole_number

__all__ = ["MYSTERY_TARGET", "mystery", "HANDED_START", "N_HANDED", "N_SHADOW", "N_QUERIES", "handed_models",
           "shadow_population", "handed_verdict", "reference_flags", "CAPSTONE_GOAL"]

#: Exercise 9.1's attacker's class (seed 0): one that Neural Cleanse does not rank first.
MYSTERY_TARGET = 3


@functools.lru_cache(maxsize=2)
def mystery(seed: int = 0):
    """Exercise 9.1's suspect: ``lk.experiment.trial`` of the default backdoor with target
    class :data:`MYSTERY_TARGET` on digits split ``seed``. Returns ``(model, clean)``: the
    backdoored model and 200 clean held-out rows (``lk.data.subset(test, 200, rng=seed)``),
    all a defender of a handed model holds. Cached: the build is deterministic."""
    from ..data import subset

    ctx = prepare("backdoor", seed=int(seed), params={"target_class": MYSTERY_TARGET})
    return trial(ctx, control=False).victim, subset(ctx.test, 200, rng=int(seed))


# ---- the population capstone (Exercise 9.3) -------------------------------------------------

#: The handed models are numbers HANDED_START .. HANDED_START + N_HANDED - 1 of the seed's
#: population (patch and blend triggers), far from the defender's own shadow models (0 ..).
HANDED_START, N_HANDED = 1000, 10
#: The notebook's shadow population (patch triggers only) and its number of random queries.
N_SHADOW, N_QUERIES = 40, 50
#: Exercise 9.3's goal: F1 of the models flagged as backdoored.
CAPSTONE_GOAL = 0.8


def _order(seed: int) -> np.ndarray:
    """The shuffled order in which the handed models are presented (so parity tells nothing)."""
    return np.random.default_rng([int(seed), 9, 3]).permutation(N_HANDED)


@functools.lru_cache(maxsize=2)
def _handed(seed: int):
    from ..experiment import POPULATION_TRAIN

    models, flags, specs = model_population(N_HANDED, seed=int(seed), start=HANDED_START,
                                            triggers=("patch", "blend"), train_kw=POPULATION_TRAIN)
    order = _order(seed)
    return tuple(models[j] for j in order), flags[order], tuple(specs[j] for j in order)


def handed_models(seed: int = 0) -> list:
    """The ten models of Exercise 9.3 (trained on digits split ``seed``), shuffled; no ground
    truth is returned. Some are clean, some carry a patch or a blended backdoor."""
    return list(_handed(int(seed))[0])


def shadow_population(seed: int = 0, *, n: int = N_SHADOW, start: int = 0) -> tuple:
    """The defender's own population: ``lk.experiment.model_population(n, seed=seed,
    start=start)`` with patch triggers and the population training settings. Returns
    ``(models, is_backdoored)`` (the defender built them, so it knows which is which)."""
    from ..experiment import POPULATION_TRAIN

    models, flags, _ = model_population(n, seed=int(seed), start=start, train_kw=POPULATION_TRAIN)
    return models, flags


def reference_flags(seed: int = 0) -> list:
    """The notebook's answer to Exercise 9.3: the handed models whose meta-classifier score
    (trained on :func:`shadow_population`, :data:`N_QUERIES` random queries) is above 0.5."""
    from ..defences.meta_classifier import meta_classifier, meta_scores, query_outputs, random_queries

    shadow, is_bd = shadow_population(seed)
    queries = random_queries(shadow_shape(seed), n=N_QUERIES, rng=int(seed))
    clf = meta_classifier(query_outputs(shadow, queries), is_bd)
    scores = meta_scores(clf, query_outputs(handed_models(seed), queries))
    return [int(i) for i in np.flatnonzero(scores > 0.5)]


def shadow_shape(seed: int = 0) -> tuple:
    """The image shape of the digits split ``seed`` (the queries' shape)."""
    from ..data import digits

    return tuple(digits(seed=int(seed)).train.X.shape[1:])


def handed_verdict(indices, seed: int = 0) -> tuple:
    """``(passed, message)`` for the model indices flagged as backdoored (the exercise)."""
    truth = _handed(int(seed))[1]
    flagged = np.zeros(N_HANDED, bool)
    flagged[np.asarray(indices, np.int64)] = True
    pr = precision_recall(flagged, truth)
    msg = (f"you flagged {int(flagged.sum())} of {N_HANDED} models: precision {fmt_rate(pr['precision'])}, "
           f"recall {pr['recall']:.2f}, F1 {pr['f1']:.2f} (goal F1 >= {CAPSTONE_GOAL})")
    return pr["f1"] >= CAPSTONE_GOAL, msg


def _indices(answer) -> tuple:
    """``(indices, "")`` for a list of whole numbers in [0, N_HANDED), else ``(None, feedback)``."""
    if isinstance(answer, (str, bytes, dict, set)) or not hasattr(answer, "__len__"):
        return None, f"expected a list of model indices (whole numbers 0-{N_HANDED - 1}), e.g. [0, 4]"
    out = []
    for a in list(answer):
        i, problem = whole_number(a, what=f"model indices, whole numbers 0-{N_HANDED - 1}")
        if problem:
            return None, problem
        if not 0 <= i < N_HANDED:
            return None, f"model indices run from 0 to {N_HANDED - 1}; got {i}"
        out.append(i)
    return sorted(set(out)), ""


# ---- exercises ------------------------------------------------------------------------

@exercise("l9_which_class",
          hint="Neural Cleanse's top class is not always the attacker's: on this data it also "
               "flags a class in models trained without any poison. Compare the suspect's "
               "anomaly indices with those of a model you trust.",
          hints=("Run lk.defences.neural_cleanse.neural_cleanse on the suspect model and on the "
                 "clean baseline with the same clean rows. Which class is anomalous in the "
                 "suspect but not in the clean model?",),
          answer_type="a whole number (a class, 0-9)",
          solution="Class 3. On seed 0 the suspect's anomaly indices put class 1 first and class 3 "
                   "close behind; the clean baseline also puts class 1 far above the rest (a thin "
                   "digit needs few pixels in every model) but not class 3. The class that is "
                   "anomalous only in the suspect is the attacker's.",
          answer=MYSTERY_TARGET, wrong=1)
def _l9_which_class(answer):
    c, problem = whole_number(answer, what="a whole number (a class, 0-9)")
    if problem:
        return False, problem
    if c == MYSTERY_TARGET:
        return True, f"class {c}: anomalous in the suspect, ordinary in the clean model."
    if c == 1:
        return False, "class 1 is anomalous in the clean model too: a false alarm, not the backdoor."
    if not 0 <= c <= 9:
        return False, f"the digits have classes 0-9; got {c}"
    return False, f"class {c} does not stand out in the suspect's anomaly indices."


@exercise("l9_which_repair",
          hint="Compare attack success after each repair in this notebook, at the same 200 clean rows.",
          hints=("Fine-pruning and plain fine-tuning leave the backdoor working on many triggered "
                 "inputs here; only one repair uses the trigger Neural Cleanse recovered.",),
          answer_type='a string: "unlearning", "fine_pruning" or "fine_tuning"',
          solution="'unlearning': stamping the recovered trigger on clean rows with their true labels "
                   "and fine-tuning brings attack success near zero on the default patch; fine-pruning "
                   "a 64-unit MLP and plain fine-tuning (1-20 epochs) leave the backdoor in place.",
          answer="unlearning", wrong="fine_tuning")
def _l9_which_repair(answer):
    return one_of(answer, ("unlearning", "nc_unlearning", "nc_unlearn", "neural_cleanse", "nc"),
                  right="yes: unlearning removes what NC found; the blind repairs leave the backdoor.",
                  wrong="look at attack success after each repair again: which one falls near zero?")


@exercise("l9_handed_models",
          hint="Train a meta-classifier on your own shadow models (lk.lessons.l09.shadow_population), "
               "score the handed models with it, and flag the ones it calls backdoored.",
          hints=("scores = meta_scores(clf, query_outputs(lk.lessons.l09.handed_models(SEED), queries)); "
                 "flag the indices where the score is above 0.5: [int(i) for i in np.flatnonzero(scores > 0.5)].",),
          answer_type=f"a list of model indices (whole numbers 0-{N_HANDED - 1}) for SEED = 0",
          solution="lk.lessons.l09.reference_flags(0): the models whose meta-classifier score is above 0.5 "
                   "(40 shadow models with patch triggers, 50 random queries).",
          answer=lambda: reference_flags(0), wrong=[0, 1, 2, 3, 4])
def _l9_handed_models(answer):
    idx, problem = _indices(answer)
    if problem:
        return False, problem
    return handed_verdict(idx, seed=0)
