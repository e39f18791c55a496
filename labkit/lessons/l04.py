"""Lesson 4, gradient manipulation: the widget callbacks and the federated table, through
the engine (:mod:`labkit.experiment`), and the exercises.

The notebook prepares ``lk.experiment.prepare("gradient_matching", ...)`` and measures it
with ``lk.experiment.measure``: the same trials, poisons, controls and victims as
``lk.run("gradient_matching", ...)`` and ``python -m labkit run gradient_matching``. The
methods are :func:`labkit.attacks.match_gradients` (crafting) and
:mod:`labkit.federated` (malicious clients); the defences are the registry's.

See Also: notebooks/04_gradient_manipulation.ipynb
"""
from __future__ import annotations

import numpy as np
import torch

from ..experiment import Context, defend, prepare, trial
from ..metrics import target_probability
from ..federated import FederatedResult
from .exercises import exercise, real_number, whole_number

__all__ = ["explore", "federated_table", "KRUM_UPDATES"]


def explore(ctx: Context, *, target: int = 0, rate: float = 0.05, eps: float = 0.15, steps: int = 40) -> dict:
    """One engine trial of ``ctx`` (the widget): craft for target number ``target`` with
    ``rate``, ``eps`` and ``steps``, fine-tune on the poisons and on the random control.

    Returns ``{"trial", "poisoned", "control", "prob_deployed", "prob_victim",
    "prob_control"}``: the trial, its poisons and control, and the adversarial class's
    probability on the target before, after poisoning and after the control.
    """
    t = trial(ctx.using(rate=rate, eps=eps, steps=steps), int(target))
    return {"trial": t, "poisoned": t.poisoned, "control": t.control,
            "prob_deployed": target_probability(ctx.baseline, t.poisoned, ctx.test),
            "prob_victim": t.row["target_prob"], "prob_control": t.row["control_prob"]}


def federated_table(split, *, rules=("mean", "median", "trimmed_mean", "krum"),
                    attacks=("none", "sign_flip", "scaling", "little_is_enough"), malicious: int = 2,
                    rounds: int = 20, iid: bool = True, seed: int = 0, progress: bool = False) -> dict:
    """``lk.run("federated", ...)`` for every attack, defended by every aggregation rule.

    Per attack one engine trial (``malicious`` of 10 clients send that update; ``"none"``:
    no malicious client) trains the plain mean; every other rule defends the same trial.
    Returns ``{(attack, rule): FederatedResult}`` whose ``accuracy`` is the global model's
    test accuracy after each round.
    """
    it = attacks
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(list(attacks), desc="federated table", leave=False)
    table = {}
    for a in it:
        ctx = prepare("federated", split=split, seed=seed, rate=0.0 if a == "none" else malicious / 10,
                      params={"update": "sign_flip" if a == "none" else a, "rounds": rounds, "iid": iid})
        t = trial(ctx)
        bad = np.asarray(t.poisoned.params["malicious_clients"], np.int64)
        for r in rules:
            model = t.victim if r == "mean" else defend(ctx, t, r).model
            table[a, r] = FederatedResult(model, np.asarray(model.round_accuracy), bad,
                                          {"rule": r, "attack": a, "rounds": rounds, "iid": iid})
    return table


# ---- exercises ------------------------------------------------------------------------

KRUM_UPDATES = [[1.0, 1.2], [0.9, 1.0], [1.1, 0.8], [1.0, 1.0], [6.0, -4.0]]


@exercise("l4_krum_pick",
          hint="Krum with f = 1 and n = 5 scores each update by the sum of squared distances to "
               "its n - f - 2 = 2 nearest other updates, and picks the lowest score. Answer with "
               "the index (0-4) into lk.lessons.l04.KRUM_UPDATES.",
          hints=("Updates 0-3 sit around (1, 1); update 4, (6, -4), is far from all of them. "
                 "Among 0-3, which one has the two closest neighbours?",),
          answer_type="a whole number: an index from 0 to 4",
          solution="3: (1.0, 1.0) sits in the middle of the honest cluster; its two nearest "
                   "neighbours are 0.04 and 0.01 away (squared), score 0.05. "
                   "lk.defences.aggregation.krum_select(torch.tensor(KRUM_UPDATES), f=1) agrees.",
          answer=3, wrong=4)
def _l4_krum_pick(answer):
    from ..defences.aggregation import krum_select

    right = int(krum_select(torch.tensor(KRUM_UPDATES), f=1, m=1)[0])
    given, problem = whole_number(answer, what="a whole number from 0 to 4")
    if problem:
        return False, problem
    if not 0 <= given < len(KRUM_UPDATES):
        return False, f"expected an index from 0 to {len(KRUM_UPDATES) - 1}, got {given}"
    ok = given == right
    return ok, ("yes: the update closest to its neighbours wins; the outlier (index 4) scores worst."
                if ok else "compute the squared distances between the five updates by hand.")


@exercise("l4_median_breakdown",
          hint="Coordinate-wise median over n = 10 clients: how many may lie arbitrarily while the "
               "median is still pinned between two honest values?",
          hints=("Sort 10 values with f of them at +1e6. The median is the mean of the 5th and "
                 "6th values: what is the largest f for which both are still honest?",),
          answer_type="a whole number (of clients)",
          solution="4: with f <= 4 liars the middle values (5th and 6th of 10) are bounded by honest "
                   "values; with 5 the attackers own one of the middle positions and can move the "
                   "median anywhere. The breakdown point is just under one half.",
          answer=4, wrong=5)
def _l4_median_breakdown(answer):
    given, problem = whole_number(answer, what="a whole number of clients")
    if problem:
        return False, problem
    ok = given == 4
    return ok, ("yes: fewer than half." if ok else "try 10 values with f of them at +1e6 and sort.")


@exercise("l4_clip_update",
          hint="DP-SGD with max_norm C = 1 and no noise: every per-sample gradient is scaled down to "
               "norm <= 1 (shorter ones unchanged), then the batch is averaged. Four gradients point "
               "the same way with norms 0.5, 2, 3 and 0.2: what is the norm of the update?",
          hints=("After clipping at C = 1 the norms are 0.5, 1, 1 and 0.2. They all point the "
                 "same way, so the norm of their mean is the mean of their norms.",),
          answer_type="a number (decimals allowed, within 0.001)",
          solution="(0.5 + 1 + 1 + 0.2) / 4 = 0.675: the two big gradients count as 1 each. "
                   "lk.defences.dp_sgd.clip_and_noise agrees.",
          answer=0.675, wrong=1.425)
def _l4_clip_update(answer):
    given, problem = real_number(answer, what="a number such as 0.5")
    if problem:
        return False, problem
    ok = abs(given - 0.675) < 1e-3
    return ok, ("yes: clipping caps each sample's say at C." if ok
                else "clip each norm at 1 first, then take the mean.")
