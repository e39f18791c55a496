"""Lesson 1, label flipping: the notebook's self-checking exercises.

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

import numpy as np

from .exercises import exercise, one_of, real_number, whole_number


@exercise("l1_certified_radius",
          hint="A flipped label moves one partition's vote from the winner to the runner-up. "
               "How many such moves close the gap? Mind the tie rule: on a tie the smaller "
               "class index wins.",
          hints=("Class 3 leads class 8 by 21 - 17 = 4 votes, and each flip closes that gap by 2. "
                 "After how many flips is it a tie, and which class wins that tie?",),
          answer_type="a whole number (of poisoned partitions)",
          solution="votes = [0, 0, 0, 21, 0, 0, 0, 0, 17, 12]: the winner is class 3 with 21 "
                   "votes, the strongest rival class 8 with 17 (8 > 3, so it gets no tie "
                   "bonus). radius = floor((21 - 17) / 2) = 2: two flips make it 19 vs 19, "
                   "still class 3 by the tie rule; a third makes 18 vs 20. "
                   "lk.defences.dpa.certified_radius([votes]) agrees.",
          answer=2, wrong=4)
def _l1_certified_radius(answer):
    from ..defences.dpa import certified_radius

    votes = np.array([[0, 0, 0, 21, 0, 0, 0, 0, 17, 12]])
    want = int(certified_radius(votes)[1][0])
    given, problem = whole_number(answer, what="a whole number of poisoned partitions")
    if problem:
        return False, problem
    if given == want:
        return True, f"radius {want}: {want} poisoned partitions cannot change this prediction."
    return False, f"{answer} is not it. Count how many single-vote moves from 3 to 8 it takes."


@exercise("l1_sanitiser_settings",
          hint="Small k listens to very few neighbours (noisy); a high eta demands near-"
               "unanimity (misses flips). Try k between 5 and 20 and eta between 0.4 and 0.7.",
          hints=("Measure each try: lk.metrics.detection_report(lk.defences.knn_sanitisation("
                 "poisoned.flat(), poisoned.y, k=K, eta=ETA), poisoned). Start with k about 10 "
                 "and eta about one half.",),
          answer_type="a dict {'k': a whole number, 'eta': a number between 0 and 1}",
          solution="{'k': 10, 'eta': 0.5} gives precision ~0.97 and recall ~0.90 on this set.",
          answer={"k": 10, "eta": 0.5}, wrong={"k": 3, "eta": 0.9})
def _l1_sanitiser_settings(answer):
    from ..attacks.label_flip import flip_labels
    from ..data import digits
    from ..defences.knn_sanitisation import knn_sanitisation
    from ..metrics import detection_report, fmt_rate

    if not isinstance(answer, dict) or set(answer) != {"k", "eta"}:
        return False, "answer with a dict {'k': ..., 'eta': ...}"
    k, problem = whole_number(answer["k"], what="k as a whole number")
    eta, problem_eta = real_number(answer["eta"], what="eta as a number between 0 and 1")
    if problem or problem_eta:
        return False, problem or problem_eta
    if k < 1 or k > 200 or not 0 < eta <= 1:
        return False, f"expected k from 1 to 200 and eta in (0, 1]; got k = {k}, eta = {eta:g}"
    answer = {"k": k, "eta": eta}
    poisoned = flip_labels(digits(seed=0).train, rate=0.3, rng=0)
    rep = detection_report(knn_sanitisation(poisoned.flat(), poisoned.y, **answer), poisoned)
    msg = f"precision {fmt_rate(rep['precision'])}, recall {rep['recall']:.2f}"
    ok = rep["precision"] is not None and rep["precision"] >= 0.95 and rep["recall"] >= 0.85
    return ok, msg + " (goal: >= 0.95 and >= 0.85)"


@exercise("l1_which_evades",
          hint="k-NN sanitisation trusts the neighbourhood. Which strategy changes whole "
               "neighbourhoods at once?",
          hints=("Section 5's failure mode measured it: against one strategy k-NN sanitisation's "
                 "recall was close to 0.",),
          answer_type='a strategy\'s name as a string: "random", "targeted", "class_pair" or "optimised"',
          solution="'class_pair' (and 'optimised', which grows consistent regions too): it relabels (most of) a whole class consistently, so each "
                   "flipped row's neighbours carry the same wrong label and the majority vote "
                   "agrees with the attacker.",
          answer="class_pair", wrong="random")
def _l1_which_evades(answer):
    return one_of(answer, ("class_pair", "class pair", "class-pair", "optimised", "optimized"),
                   right="yes: consistent flips make the neighbours agree with the attacker.",
                   wrong="measure it: run lk.run('label_flip', defence='knn_sanitisation', "
                         "params={'strategy': ...}) for each strategy and compare recall.")
