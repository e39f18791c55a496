"""Lesson 8, poisoning what a RAG system retrieves: the curves the notebook draws and the
exercises.

The methods are :mod:`labkit.rag` (retriever, voting reader, certificate),
:mod:`labkit.attacks.rag_poison` and :mod:`labkit.defences.rag`; every number comes from
:func:`labkit.experiment.run` / ``trial``, as in the command line and ``reproduce``.

See Also: notebooks/08_rag_poisoning.ipynb
"""
from __future__ import annotations

import functools

from ..experiment import run
from .exercises import check_first_reaching, exercise, first_reaching, one_of

__all__ = ["PER_QUESTION", "WINDOWS", "HIJACK_GOAL", "CERTIFIED_GOAL", "hijack_curve", "fewest_passages",
           "certified_curve", "smallest_window"]

#: Passages per target question the lesson measures, and the retrieval windows it compares.
PER_QUESTION = (1, 2, 3, 5)
WINDOWS = (5, 15, 25, 50, 75)
#: Exercise 8.1: the hijack rate the attacker wants.
HIJACK_GOAL = 0.8
#: Exercise 8.2: the share of questions the defender wants right *and* certified against 2 passages.
CERTIFIED_GOAL = 0.3


@functools.lru_cache(maxsize=4)
def hijack_curve(seed: int = 0, style: str = "blackbox") -> tuple:
    """Hijack rate for each number of passages per target question in :data:`PER_QUESTION`
    (``lk.run("rag_poison", ...)`` at the default top-5 window). Cached: deterministic."""
    return tuple(float(run("rag_poison", seed=int(seed), params={"per_question": n, "style": style}).attack_success)
                 for n in PER_QUESTION)


def fewest_passages(seed: int = 0, goal: float = HIJACK_GOAL):
    """The smallest count in :data:`PER_QUESTION` whose hijack rate, printed to two decimals,
    reaches ``goal`` (None if none does)."""
    return first_reaching(PER_QUESTION, hijack_curve(int(seed)), goal)


@functools.lru_cache(maxsize=4)
def certified_curve(seed: int = 0, radius: int = 2) -> tuple:
    """Per window in :data:`WINDOWS`: ``(accuracy, certified accuracy at radius)`` of the
    isolate-then-aggregate reader on the poisoned knowledge base (``robust_rag``)."""
    out = []
    for k in WINDOWS:
        r = run("rag_poison", seed=int(seed), defence="robust_rag", defence_params={"top_k": k})
        out.append((float(r.clean_accuracy_defended), float(r.extra["certified_accuracy"][int(radius)])))
    return tuple(out)


def smallest_window(seed: int = 0, radius: int = 2, goal: float = CERTIFIED_GOAL):
    """The smallest window in :data:`WINDOWS` whose certified accuracy at ``radius``, printed
    to two decimals, reaches ``goal`` (None if none does)."""
    return first_reaching(WINDOWS, [c for _, c in certified_curve(int(seed), int(radius))], goal)


@exercise("l8_fewest_passages",
          hint="Read the curve of hijack rate against passages per question.",
          hints=(f"lk.lessons.l08.hijack_curve(SEED) lists the hijack rate for {PER_QUESTION} passages per "
                 f"question; find the first that reaches {HIJACK_GOAL}.",),
          answer_type=f"a whole number, one of {', '.join(map(str, PER_QUESTION))} (for SEED = 0)",
          solution=f"lk.lessons.l08.fewest_passages(0): the first count in {PER_QUESTION} whose hijack rate "
                   f"at the top-5 window reaches {HIJACK_GOAL}. Once the attacker's passages are the "
                   "majority of what the reader reads, the answer is theirs.",
          answer=lambda: fewest_passages(0), wrong=1)
def _l8_fewest_passages(answer):
    return check_first_reaching(answer, PER_QUESTION, hijack_curve(0), HIJACK_GOAL,
                                setting="passages per question", measured="hijack rate")


@exercise("l8_smallest_window",
          hint="A wider window lets more honest passages vote, so the winner's lead, and its certificate, grow.",
          hints=("lk.lessons.l08.certified_curve(SEED) gives, per window in "
                 f"{WINDOWS}, (accuracy, share right and certified against 2 passages); find the first "
                 f"window whose certified share reaches {CERTIFIED_GOAL}.",),
          answer_type=f"a whole number, one of {', '.join(map(str, WINDOWS))} (for SEED = 0)",
          solution="lk.lessons.l08.smallest_window(0): the narrowest window whose answers are right *and* "
                   f"certified against two inserted passages for at least {CERTIFIED_GOAL} of the questions. "
                   "Every extra passage read costs time (and, in a real system, the language model's "
                   "context), and past some width plain accuracy falls: the extra passages are about "
                   "other topics.",
          answer=lambda: smallest_window(0), wrong=WINDOWS[0])
def _l8_smallest_window(answer):
    return check_first_reaching(answer, WINDOWS, [c for _, c in certified_curve(0)], CERTIFIED_GOAL,
                                setting="window (top k)", measured="share right and certified against 2 passages")


@exercise("l8_split_view",
          hint="Split-view poisons are not new passages: they are reviewed passages edited afterwards.",
          hints=("Which defence compares each passage with what was reviewed, rather than with the other "
                 "passages or the question?",),
          answer_type='a defence\'s name as a string: "near_duplicates", "signed_passages" or "robust_rag"',
          solution="'signed_passages': the digest of an edited passage no longer matches the signed manifest, "
                   "so it is dropped. Near-duplicate filtering sees ordinary-looking passages, and a wider "
                   "window only dilutes them.",
          answer="signed_passages", wrong="near_duplicates")
def _l8_split_view(answer):
    return one_of(answer, ("signed_passages", "provenance", "signed"),
                  right="yes: only a check against what was reviewed sees an edit made after review.",
                  wrong="compare the defences' hijack rates against the split-view poisons again.")
