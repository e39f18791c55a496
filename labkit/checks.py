"""Self-checking exercises for the notebooks: ``check(name, answer)``, ``hint(name)``, ``solution(name)``.

An exercise is registered once with :func:`exercise`; its checker receives the learner's
answer and returns ``(passed, message)``. ``check`` prints the message and returns the
verdict; an unanswered exercise (``None`` or ``...``) prints "not answered yet" and returns
False, so a notebook still runs top to bottom before the learner has solved anything.

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["check", "hint", "solution", "exercise", "EXERCISES"]


@dataclass(frozen=True)
class Exercise:
    name: str
    checker: Callable[[object], tuple]
    hint: str
    solution: str


EXERCISES: dict[str, Exercise] = {}


def exercise(name: str, *, hint: str, solution: str):
    """Decorator registering ``checker(answer) -> (passed, message)`` as exercise ``name``."""
    def wrap(checker):
        EXERCISES[name] = Exercise(name, checker, hint, solution)
        return checker
    return wrap


def _get(name: str) -> Exercise:
    if name not in EXERCISES:
        raise KeyError(f"unknown exercise {name!r}; known: {', '.join(sorted(EXERCISES))}")
    return EXERCISES[name]


def check(name: str, answer) -> bool:
    """Check ``answer`` for exercise ``name``; prints a verdict and returns True/False."""
    ex = _get(name)
    if answer is None or answer is Ellipsis:
        print(f"[{name}] not answered yet: replace the placeholder, then run this cell again. "
              f"Stuck? lk.checks.hint({name!r})")
        return False
    passed, message = ex.checker(answer)
    print(f"[{name}] {'correct' if passed else 'not yet'}: {message}")
    if passed:
        from .progress import announce   # prints a completion code in a workshop, else nothing
        announce(name)
    return bool(passed)


def hint(name: str) -> None:
    """Print a hint for exercise ``name``."""
    print(f"[{name}] hint: {_get(name).hint}")


def solution(name: str) -> None:
    """Print the solution of exercise ``name``."""
    print(f"[{name}] solution: {_get(name).solution}")


def _one_of(answer, accepted, *, right: str, wrong: str) -> tuple:
    """A checker for a named-choice answer: case, spaces and underscores do not matter."""
    norm = lambda text: str(text).strip().lower().replace(" ", "_")
    ok = norm(answer) in {norm(a) for a in accepted}
    return ok, right if ok else wrong


# ---- lesson 0: welcome ----------------------------------------------------------------------

@exercise("l0_which_metric",
          hint="One number is computed on ordinary test inputs, another on inputs the attacker "
               "has prepared. Which one can an attack keep unchanged?",
          solution="'attack_success': a backdoored model keeps its clean accuracy; only the "
                   "attack success rate on triggered inputs shows the attack.")
def _l0_which_metric(answer):
    return _one_of(answer, ("attack_success", "attack_success_rate"),
                   right="yes: clean accuracy can stay at 0.96 while the attacker's goal is met.",
                   wrong="clean accuracy would look perfectly normal here; try another metric.")


# ---- lesson 1: label flipping ---------------------------------------------------------------

@exercise("l1_certified_radius",
          hint="A flipped label moves one partition's vote from the winner to the runner-up. "
               "How many such moves close the gap? Mind the tie rule: on a tie the smaller "
               "class index wins.",
          solution="votes = [0, 0, 0, 21, 0, 0, 0, 0, 17, 12]: the winner is class 3 with 21 "
                   "votes, the strongest rival class 8 with 17 (8 > 3, so it gets no tie "
                   "bonus). radius = floor((21 - 17) / 2) = 2: two flips make it 19 vs 19, "
                   "still class 3 by the tie rule; a third makes 18 vs 20. "
                   "lk.defences.dpa.certified_radius([votes]) agrees.")
def _l1_certified_radius(answer):
    from .defences.dpa import certified_radius

    votes = np.array([[0, 0, 0, 21, 0, 0, 0, 0, 17, 12]])
    want = int(certified_radius(votes)[1][0])
    if int(answer) == want:
        return True, f"radius {want}: {want} poisoned partitions cannot change this prediction."
    return False, f"{answer} is not it. Count how many single-vote moves from 3 to 8 it takes."


@exercise("l1_sanitiser_settings",
          hint="Small k listens to very few neighbours (noisy); a high eta demands near-"
               "unanimity (misses flips). Try k between 5 and 20 and eta between 0.4 and 0.7.",
          solution="{'k': 10, 'eta': 0.5} gives precision ~0.97 and recall ~0.90 on this set.")
def _l1_sanitiser_settings(answer):
    from .attacks.label_flip import flip_labels
    from .data import digits
    from .defences.knn_sanitisation import knn_sanitisation
    from .metrics import detection_report

    if not isinstance(answer, dict) or set(answer) != {"k", "eta"}:
        return False, "answer with a dict {'k': ..., 'eta': ...}"
    poisoned = flip_labels(digits(seed=0).train, rate=0.3, rng=0)
    rep = detection_report(knn_sanitisation(poisoned.flat(), poisoned.y, **answer), poisoned)
    msg = f"precision {rep['precision']:.2f}, recall {rep['recall']:.2f}"
    return rep["precision"] >= 0.95 and rep["recall"] >= 0.85, msg + " (goal: >= 0.95 and >= 0.85)"


@exercise("l1_which_evades",
          hint="k-NN sanitisation trusts the neighbourhood. Which strategy changes whole "
               "neighbourhoods at once?",
          solution="'optimised': it relabels (most of) a whole class consistently, so each "
                   "flipped row's neighbours carry the same wrong label and the majority vote "
                   "agrees with the attacker.")
def _l1_which_evades(answer):
    return _one_of(answer, ("optimised", "optimized"),
                   right="yes: consistent flips make the neighbours agree with the attacker.",
                   wrong="measure it: run lk.run('label_flip', defence='knn_sanitisation', "
                         "params={'strategy': ...}) for each strategy and compare recall.")


# ---- lesson 2: backdoors --------------------------------------------------------------------

@exercise("l2_cheap_backdoor",
          hint="The poison rate is capped at 0.03; the trigger is yours to design. A bigger, "
               "brighter patch is easier to learn. Answer with the params of "
               "lk.run('backdoor', ...), e.g. {'rate': 0.03, 'size': 2}.",
          solution="{'rate': 0.03} already gives about 0.96 with the default 2x2 patch (seed 0); "
                   "{'rate': 0.02, 'size': 3} is cheaper still.")
def _l2_cheap_backdoor(answer):
    from .experiment import run

    if not isinstance(answer, dict) or "rate" not in answer:
        return False, "answer with a dict holding at least 'rate', e.g. {'rate': 0.03, 'size': 2}"
    params = {k: v for k, v in answer.items() if k != "rate"}
    if float(answer["rate"]) > 0.03:
        return False, f"rate {answer['rate']} is above the budget of 0.03"
    r = run("backdoor", seed=0, rate=float(answer["rate"]), params=params)
    msg = f"attack success {r.attack_success:.2f}, clean accuracy {r.clean_accuracy:.2f}"
    return r.attack_success >= 0.9, msg + " (goal: attack success >= 0.90)"


@exercise("l2_rows_to_drop",
          hint="You hold the poisoned training set and the model trained on it. Embed the "
               "rows (lk.models.embed), run a detector, and answer with the indices it flags "
               "(Detection.flagged_idx). At most 100 rows.",
          solution="feats = lk.models.embed(victim, poisoned.X); "
                   "lk.defences.activation_clustering(feats, poisoned.y, rng=0).flagged_idx "
                   "(the poisoned set of lk.attacks.add_backdoor(lk.data.digits(seed=0).train, rng=0), "
                   "victim = lk.models.train(poisoned, seed=0)).")
def _l2_rows_to_drop(answer):
    from .attacks.backdoor import add_backdoor
    from .data import digits
    from .metrics import attack_success_rate, clean_accuracy
    from .models import train

    idx = np.unique(np.asarray(answer, dtype=np.int64).ravel())
    split = digits(seed=0)
    poisoned = add_backdoor(split.train, rng=0)
    if idx.size > 100 or (idx.size and (idx.min() < 0 or idx.max() >= len(poisoned))):
        return False, f"give at most 100 row indices in [0, {len(poisoned)}); got {idx.size}"
    keep = np.setdiff1d(np.arange(len(poisoned)), idx)
    model = train(poisoned.as_dataset().subset(keep), seed=0)
    asr, acc = attack_success_rate(model, poisoned, split.test), clean_accuracy(model, split.test)
    caught = np.isin(poisoned.poison_idx, idx).sum()
    msg = (f"you dropped {idx.size} rows ({caught} of {poisoned.n_poison} poisons); after retraining "
           f"attack success {asr:.2f}, clean accuracy {acc:.2f}")
    return asr <= 0.10 and acc >= 0.94, msg + " (goal: attack success <= 0.10, accuracy >= 0.94)"


@exercise("l2_which_breaks_at_high_rate",
          hint="At rate 0.10 the poisons are half of class 0. Which rule assumes they are a "
               "minority of their class?",
          solution="'activation_clustering': its 'smaller cluster' rule needs the poisons to be the "
                   "smaller group; at half the class neither cluster is small.")
def _l2_which_breaks(answer):
    return _one_of(answer, ("activation_clustering", "ac"),
                   right="yes: with poisons as half the class, the 'smaller cluster' is no longer the poison.",
                   wrong="look at the recall-vs-rate curve again: which one drops to 0 at 0.10?")


# ---- lesson 5: defence in depth ------------------------------------------------------------

@exercise("l5_blind_spot",
          hint="A backdoor leaves clean behaviour untouched. Which checks look at clean inputs only?",
          solution="'none': the canary compares clean accuracy and confidence, which a backdoor "
                   "keeps; traffic drift and the STRIP screen need triggered inputs in the traffic. "
                   "A backdoor stays invisible to monitoring until someone uses the trigger.")
def _l5_blind_spot(answer):
    return _one_of(answer, ("none", "no check", "nothing"),
                   right="yes: monitoring sees a backdoor only once triggered inputs arrive.",
                   wrong="run lk.defences.monitoring.monitor with clean traffic and read the alerts.")


@exercise("l5_capstone",
          hint="Layer the lab's defences: label checks find flipped and backdoor rows (their "
               "neighbours disagree), feature-space clustering finds a backdoor's cluster. "
               "Combine flags with | and check the precision: every clean row you flag costs you.",
          solution="flags = lk.challenge.reference_defence(data, seed=SEED).flagged  (k-NN "
                   "sanitisation OR activation clustering; F1 above 0.8 on every seed tried).")
def _l5_capstone(answer):
    from .challenge import score

    flags, seed = answer if isinstance(answer, tuple) else (answer, 0)
    result = score(flags, seed=seed)
    per = ", ".join(f"{k} {v['recall']:.2f}" for k, v in result["per_family"].items() if v["recall"] is not None)
    msg = (f"precision {result['precision']:.2f}, recall {result['recall']:.2f}, F1 {result['f1']:.2f} "
           f"(per family recall: {per}); goal F1 >= 0.8")
    return result["f1"] >= 0.8, msg


# ---- lesson 4: gradient manipulation ------------------------------------------------------

#: Five client updates (2-D) for the Krum exercise: four honest ones near (1, 1), one far off.
L4_KRUM_UPDATES = [[1.0, 1.2], [0.9, 1.0], [1.1, 0.8], [1.0, 1.0], [6.0, -4.0]]


@exercise("l4_krum_pick",
          hint="Krum with f = 1 and n = 5 scores each update by the sum of squared distances to "
               "its n - f - 2 = 2 nearest other updates, and picks the lowest score. Answer with "
               "the index (0-4) into lk.checks.L4_KRUM_UPDATES.",
          solution="3: (1.0, 1.0) sits in the middle of the honest cluster; its two nearest "
                   "neighbours are 0.04 and 0.01 away (squared), score 0.05. "
                   "lk.defences.aggregation.krum_select(torch.tensor(L4_KRUM_UPDATES), f=1) agrees.")
def _l4_krum_pick(answer):
    import torch

    from .defences.aggregation import krum_select

    right = int(krum_select(torch.tensor(L4_KRUM_UPDATES), f=1, m=1)[0])
    ok = isinstance(answer, (int, np.integer)) and int(answer) == right
    return ok, ("yes: the update closest to its neighbours wins; the outlier (index 4) scores worst."
                if ok else "compute the squared distances between the five updates by hand.")


@exercise("l4_median_breakdown",
          hint="Coordinate-wise median over n = 10 clients: how many may lie arbitrarily while the "
               "median is still pinned between two honest values?",
          solution="4: with f <= 4 liars the middle values (5th and 6th of 10) are bounded by honest "
                   "values; with 5 the attackers own one of the middle positions and can move the "
                   "median anywhere. The breakdown point is just under one half.")
def _l4_median_breakdown(answer):
    ok = isinstance(answer, (int, np.integer)) and int(answer) == 4
    return ok, ("yes: fewer than half." if ok else "try 10 values with f of them at +1e6 and sort.")


@exercise("l4_clip_update",
          hint="DP-SGD with max_norm C = 1 and no noise: every per-sample gradient is scaled down to "
               "norm <= 1 (shorter ones unchanged), then the batch is averaged. Four gradients point "
               "the same way with norms 0.5, 2, 3 and 0.2: what is the norm of the update?",
          solution="(0.5 + 1 + 1 + 0.2) / 4 = 0.675: the two big gradients count as 1 each. "
                   "lk.defences.dp_sgd.clip_and_noise agrees.")
def _l4_clip_update(answer):
    ok = isinstance(answer, (int, float, np.floating)) and abs(float(answer) - 0.675) < 1e-3
    return ok, ("yes: clipping caps each sample's say at C." if ok
                else "clip each norm at 1 first, then take the mean.")


# ---- lesson 3: clean-label poisoning --------------------------------------------------------

@exercise("l3_knn_k",
          hint="A poison's k nearest neighbours (itself excluded) include the other poisons, "
               "all labelled like it. Deep k-NN flags it only when another label wins the vote "
               "outright. Suppose every other neighbour is of the target's class.",
          solution="19 of the k neighbours are fellow poisons (label = base class); the other "
                   "k - 19 are target-class rows. The target class wins outright when "
                   "k - 19 > 19, i.e. k >= 39. Peri et al.'s rule of thumb: k at least about "
                   "twice the number of poisons. In this lesson the poisons also sit closer to "
                   "their own class than to the target, which is why k = 50 is not always enough.")
def _l3_knn_k(answer):
    try:
        k = int(answer)
    except (TypeError, ValueError):
        return False, "answer with a whole number k"
    if k == 39:
        return True, "k = 39: 20 target-class votes beat 19 fellow poisons."
    if k == 38:
        return False, "with k = 38 it is 19 against 19: a tie is not an outright win."
    return False, f"k = {k} is not the smallest k where the fellow poisons are outvoted."


@exercise("l3_threat_model",
          hint="Which part of the victim does the attacker optimise against, and does the victim "
               "change that part when it trains on the poisons?",
          solution="'transfer': the poisons are crafted in the feature space of the public, frozen "
                   "extractor. A victim that only retrains its linear head keeps that feature "
                   "space, so the poisons' position there is what the head sees. Retraining end "
                   "to end (with augmentation) changes the features, and the carefully placed "
                   "poisons land somewhere else: the attack mostly stops working (lk.run with "
                   "defence='augmentation').")
def _l3_threat_model(answer):
    text = str(answer).strip().lower()
    if text in ("transfer", "transfer learning", "frozen", "frozen features", "head only"):
        return True, "the attack relies on the victim keeping the attacker's feature space."
    if "end" in text or "scratch" in text:
        return False, "end-to-end training moves the features the poisons were placed in."
    return False, "answer 'transfer' or 'end to end'."
