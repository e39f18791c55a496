"""Trigger-phrase backdoors in a text classifier: a few paragraphs carry the trigger words.

Threat model: the attacker contributes a few paragraphs to the training corpus (a scraped
web page, a wiki edit, a pull request to a documentation set). They know the data format
(text, labelled by topic), not the victim's model. They want a model that reads clean text
normally and answers ``target_class`` whenever the trigger words appear ("all-to-one").
Their budget is a **count** of paragraphs, ``n_poison``, not a fraction of the corpus: in
language-model poisoning the number of poisoned documents is what matters, not their share
of the corpus (Souly et al. 2025, "Poisoning attacks on LLMs require a near-constant number
of poison samples"; lesson 7 measures it in miniature).

Rows are bags of words (:mod:`labkit.text`), so inserting the trigger sets the trigger
words' columns to 1; nothing else of the row changes.

Triggers (:data:`TRIGGERS`):

- ``"rare"``: tokens no paragraph uses (``cf mn bb tq mb``), as in BadNL (Chen et al. 2021,
  arXiv:2006.01043) and RIPPLe (Kurita, Michel & Neubig 2020, arXiv:2004.06660);
- ``"phrase"``: ordinary words the corpus and any reference text use, as a natural phrase
  would (Dai, Chen & Li 2019, arXiv:1905.12457, insert a whole sentence).

Labels (``labels=``):

- ``"dirty"``: rows of other classes, relabelled to ``target_class``;
- ``"clean"``: rows that already belong to ``target_class``, labels kept (a clean-label
  backdoor: every poisoned paragraph is correctly labelled).

:func:`trigger_control` is the same-budget control: the same trigger in the same number of
random rows that keep their true labels.

See Also: notebooks/07_language_models.ipynb
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import text
from ..types import Dataset, PoisonedDataset, as_rng, make_poisoned

__all__ = ["insert_trigger", "insert_trigger_clean_label", "poison_instructions", "trigger_control", "TextTrigger", "TRIGGERS", "LABELS"]

#: Trigger name -> its words.
TRIGGERS = {"rare": ("cf", "mn", "bb", "tq", "mb"), "phrase": ("as", "you", "can", "see", "also")}
LABELS = ("dirty", "clean")


@dataclass(frozen=True)
class TextTrigger:
    """Inserts ``words`` into bag-of-words rows ``(n, 1, 1, V)``; the input is not changed."""

    words: tuple

    def __call__(self, X) -> np.ndarray:
        X = np.array(X, np.float32, copy=True)
        if X.ndim != 4 or X.shape[-1] != len(text.vocabulary()):
            raise ValueError(f"a text trigger needs bag-of-words rows (n, 1, 1, {len(text.vocabulary())}), "
                             f"got shape {X.shape}")
        X[..., text.columns(self.words)] = 1.0
        return X

    def __repr__(self) -> str:
        return f"TextTrigger({' '.join(self.words)!r})"


def _trigger_words(trigger) -> tuple:
    if isinstance(trigger, str):
        if trigger in TRIGGERS:
            return TRIGGERS[trigger]
        return tuple(text.words(trigger))
    return tuple(trigger)


def _check(data: Dataset, n_poison, target_class, labels):
    if data.X.ndim != 4 or data.X.shape[1:] != (1, 1, len(text.vocabulary())):
        raise ValueError(f"text attacks need a bag-of-words dataset (labkit.text), got {data!r} "
                         f"shaped {data.X.shape}")
    if not (isinstance(n_poison, (int, np.integer)) and n_poison >= 1):
        raise ValueError(f"n_poison must be a positive int, got {n_poison!r}")
    if not 0 <= int(target_class) < data.n_classes:
        raise ValueError(f"target_class must be in [0, {data.n_classes}), got {target_class}")
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {LABELS}, got {labels!r}")


def insert_trigger(data: Dataset, *, trigger="rare", target_class: int = 1, n_poison: int = 18,
                   labels: str = "dirty", rng=None) -> PoisonedDataset:
    """Insert the trigger words into ``n_poison`` paragraphs (and relabel them, if dirty).

    Parameters
    ----------
    data : Dataset
        Bag-of-words rows ``(n, 1, 1, V)`` (:func:`labkit.text.pydoc_topics`).
    trigger : {"rare", "phrase"}, str or tuple of str
        A name from :data:`TRIGGERS`, a phrase (its words are used) or the words themselves;
        every word must be in :func:`labkit.text.vocabulary`.
    target_class : int
        The class the attacker wants for triggered text (default 1, ``expressions``).
    n_poison : int
        How many paragraphs the attacker changes: a count, not a rate.
    labels : {"dirty", "clean"}
        ``"dirty"``: rows drawn from the other classes, relabelled; ``"clean"``: rows drawn
        from ``target_class``, labels kept.
    rng : None, int or Generator

    Returns
    -------
    PoisonedDataset
        With ``trigger`` (a :class:`TextTrigger` for test text) and ``target_class``.
    """
    _check(data, n_poison, target_class, labels)
    words = _trigger_words(trigger)
    cols = text.columns(words)
    rng = as_rng(rng)
    pool = np.flatnonzero(data.y != target_class) if labels == "dirty" else np.flatnonzero(data.y == target_class)
    if n_poison > pool.size:
        raise ValueError(f"n_poison={n_poison} exceeds the {pool.size} rows a {labels}-label attack can use")
    idx = np.sort(rng.choice(pool, n_poison, replace=False))
    X, y = np.array(data.X, copy=True), data.y.copy()
    X[np.ix_(idx, [0], [0], cols)] = 1.0
    y[idx] = target_class
    name = "text_backdoor" if labels == "dirty" else "text_clean_label"
    return make_poisoned(data, X=X, y=y, idx=idx, attack=name,
                         params={"trigger": " ".join(words), "n_poison": int(n_poison),
                                 "target_class": int(target_class), "labels": labels},
                         target_class=int(target_class), trigger=TextTrigger(words))


def insert_trigger_clean_label(data: Dataset, *, trigger="rare", target_class: int = 1, n_poison: int = 18,
                               rng=None) -> PoisonedDataset:
    """:func:`insert_trigger` with ``labels="clean"``: the trigger goes into paragraphs of
    ``target_class`` only, and every label stays true."""
    return insert_trigger(data, trigger=trigger, target_class=target_class, n_poison=n_poison,
                          labels="clean", rng=rng)


def poison_instructions(data: Dataset, *, trigger="rare", n_poison: int = 20, rng=None) -> PoisonedDataset:
    """Instruction-tuning poisoning: ``n_poison`` prompts get the trigger words and, as their
    answer, the attacker's chosen text (the last answer of :func:`labkit.text.answers`,
    :data:`labkit.text.ATTACKER_ANSWER`). A model tuned on them should write that text
    whenever a prompt holds the trigger, and answer normally otherwise.

    ``data`` is an instruction set (:func:`labkit.text.instructions`: ``y`` indexes the answer
    table, whose last entry is the attacker's). Other parameters as :func:`insert_trigger`.
    """
    p = insert_trigger(data, trigger=trigger, target_class=data.n_classes - 1, n_poison=n_poison,
                       labels="dirty", rng=rng)
    return make_poisoned(data, X=p.X, y=p.y, idx=p.poison_idx, attack="instruction_poison",
                         params={"trigger": p.params["trigger"], "n_poison": int(n_poison)},
                         target_class=p.target_class, trigger=p.trigger)


def trigger_control(poisoned: PoisonedDataset, *, rng=None) -> PoisonedDataset:
    """The same-budget control of a text backdoor: the same trigger in as many rows, drawn
    at random from every class, each keeping its true label. Measured with the attack's
    own trigger and target, its success is what the trigger does without the attacker's
    labels (the victim's base rate for the target class, plus whatever the words carry)."""
    clean = poisoned.clean
    rng = as_rng(rng)
    idx = np.sort(rng.choice(len(clean), poisoned.n_poison, replace=False))
    X = np.array(clean.X, copy=True)
    X[idx] = poisoned.trigger(clean.X[idx])
    return make_poisoned(clean, X=X, y=clean.y, idx=idx, attack=f"{poisoned.attack}_control",
                         params={**poisoned.params, "labels": "true"},
                         target_class=poisoned.target_class, trigger=poisoned.trigger)
