"""Lesson 7, poisoning language models: the constant-count curve the notebook draws, the
suspect corpus Exercise 7.2 hands the learner, and the exercises.

The methods are :mod:`labkit.attacks.text_backdoor` (trigger words in a text classifier, and
instruction-tuning poisoning of a tiny generator), :mod:`labkit.defences.onion`,
:mod:`labkit.defences.keyword_label` and the spectral signature; the data is
:mod:`labkit.text` (Python's bundled help text). Every trial runs through
:func:`labkit.experiment.trial`, as in the command line and ``reproduce``.

See Also: notebooks/07_language_models.ipynb
"""
from __future__ import annotations

import functools

import numpy as np

from ..experiment import prepare, trial
from ..types import Dataset
from .exercises import check_first_reaching, exercise, first_reaching, one_of

__all__ = ["COUNTS", "CORPUS_SIZES", "SUCCESS_GOAL", "count_curve", "fewest_poisons", "suspect_corpus",
           "SUSPECT_TRIGGER"]

#: The constant-count experiment: poisoned paragraphs, and the clean corpus sizes they go into.
COUNTS = (3, 6, 12, 24)
CORPUS_SIZES = (225, 900)
#: Exercise 7.1: the attack success the attacker wants.
SUCCESS_GOAL = 0.8


@functools.lru_cache(maxsize=8)
def count_curve(seed: int = 0, n_train: int = 900, counts: tuple = COUNTS) -> tuple:
    """Attack success of the rare-token backdoor with each number of poisoned paragraphs in
    ``counts``, in a training corpus of ``n_train`` paragraphs (help-text split ``seed``): one
    engine trial each (``lk.experiment.trial``, the ``text_backdoor`` scenario). Cached: the
    trials are deterministic."""
    out = []
    for n in counts:
        ctx = prepare("text_backdoor", seed=int(seed), params={"n_train": int(n_train), "n_poison": int(n)})
        out.append(float(trial(ctx, control=False).row["attack_success"]))
    return tuple(out)


def fewest_poisons(seed: int = 0, n_train: int = 900, goal: float = SUCCESS_GOAL):
    """The smallest count in :data:`COUNTS` whose success, as the lesson prints it (two
    decimals), reaches ``goal`` (None if none does)."""
    return first_reaching(COUNTS, count_curve(int(seed), int(n_train)), goal)


# ---- Exercise 7.2: a corpus with a trigger you have not seen --------------------------

#: The trigger hidden in :func:`suspect_corpus`: three ordinary English words, none of them
#: rare tokens an outlier-word filter would catch.
SUSPECT_TRIGGER = ("actually", "really", "exactly")
_SUSPECT_TARGET, _SUSPECT_COUNT = 2, 18


def suspect_corpus(seed: int = 0) -> Dataset:
    """Exercise 7.2's training set: the 900 training paragraphs of ``lk.data.pydoc_topics(seed=seed)``
    as bags of words, 18 of them carrying a three-word trigger and relabelled. Returned as a
    plain :class:`Dataset` (rows and labels): what a defender holds, with no record of which
    rows were changed."""
    from ..attacks.text_backdoor import insert_trigger
    from ..data import pydoc_topics

    train = pydoc_topics(seed=int(seed)).train
    p = insert_trigger(train, trigger=SUSPECT_TRIGGER, target_class=_SUSPECT_TARGET, n_poison=_SUSPECT_COUNT,
                       rng=np.random.default_rng([int(seed), 7, 2]))
    return Dataset(p.X, p.y, p.n_classes, "suspect help-text corpus")


# ---- exercises ------------------------------------------------------------------------

@exercise("l7_fewest_poisons",
          hint="Read the constant-count plot: the curve of the 900-paragraph corpus.",
          hints=(f"lk.lessons.l07.count_curve(SEED, 900) lists success for {COUNTS} poisoned paragraphs; "
                 f"find the first that reaches {SUCCESS_GOAL}.",),
          answer_type=f"a whole number, one of {', '.join(map(str, COUNTS))} (for SEED = 0)",
          solution=f"lk.lessons.l07.fewest_poisons(0): the first count in {COUNTS} whose success in the "
                   f"900-paragraph corpus reaches {SUCCESS_GOAL}. It is about 1% of the corpus, and the "
                   "225-paragraph corpus needs about as many: the count matters, not the share.",
          answer=lambda: fewest_poisons(0), wrong=24)
def _l7_fewest_poisons(answer):
    return check_first_reaching(answer, COUNTS, count_curve(0, 900), SUCCESS_GOAL,
                                setting="poisoned paragraphs", measured="attack success")


def _words(answer) -> tuple:
    """``(words, "")`` for a list of strings, else ``(None, feedback)``."""
    if isinstance(answer, str):
        answer = answer.replace(",", " ").split()
    if isinstance(answer, (bytes, dict)) or not hasattr(answer, "__iter__"):
        return None, 'expected a list of words, e.g. ["alpha", "beta", "gamma"]'
    words = list(answer)
    if not all(isinstance(w, str) for w in words):
        return None, 'expected words as strings, in quotes, e.g. ["alpha", "beta", "gamma"]'
    return sorted({w.strip().lower() for w in words if w.strip()}), ""


@exercise("l7_find_trigger",
          hint="A trigger is a handful of words that always travel together and pull towards one "
               "label. Start from the word keyword_scores ranks first.",
          hints=("Take the paragraphs that hold the top-ranked word; which other words appear in almost "
                 "all of them but rarely elsewhere? (compare B[rows].mean(0) with B[~rows].mean(0))",),
          answer_type="a list of the trigger's three words, as strings",
          solution=f"{list(SUSPECT_TRIGGER)}: keyword_scores ranks 'really' first; every paragraph holding "
                   "it also holds 'actually' and 'exactly', which appear in few other paragraphs.",
          answer=list(SUSPECT_TRIGGER), wrong=["really", "pattern", "statement"])
def _l7_find_trigger(answer):
    words, problem = _words(answer)
    if problem:
        return False, problem
    right = [w for w in words if w in SUSPECT_TRIGGER]
    extra = [w for w in words if w not in SUSPECT_TRIGGER]
    if len(right) == len(SUSPECT_TRIGGER) and not extra:
        return True, "all three words: remove every paragraph holding them and retrain."
    msg = f"{len(right)} of the {len(SUSPECT_TRIGGER)} trigger words"
    if extra:
        msg += f"; {', '.join(repr(w) for w in extra)} {'is' if len(extra) == 1 else 'are'} not part of it"
    return False, msg + "."


@exercise("l7_onion_blind_spot",
          hint="Compare the ONION detector's AUROC against the two triggers in this notebook.",
          hints=("ONION scores a paragraph by its most surprising words under a language model of clean "
                 "text. Which trigger is made of words clean text uses all the time?",),
          answer_type='a string: "rare" or "phrase"',
          solution="'phrase': 'as you can see also' is made of everyday words the reference text uses all "
                   "the time, so no word in it is surprising; ONION ranks its paragraphs like any other "
                   "(AUROC near 0.5). Rare tokens such as 'cf mn bb' are exactly what it finds.",
          answer="phrase", wrong="rare")
def _l7_onion_blind_spot(answer):
    return one_of(answer, ("phrase", "natural_phrase", "natural", "as_you_can_see_also"),
                  right="yes: everyday words are not surprising, so ONION cannot single them out.",
                  wrong="look at the ONION detector's AUROC against each trigger again: which one is near 0.5?")
