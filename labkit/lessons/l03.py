"""Lesson 3, clean-label poisoning: the notebook's context, the budget curve and the widget
callback, all through the engine (:mod:`labkit.experiment`).

The methods are :func:`labkit.attacks.bullseye_polytope` (``"clean_label"``) and
:func:`labkit.attacks.collide_features` (``"feature_collision"``); the victim is the
``transfer`` scenario's head on a public, frozen extractor. The lesson's trials are
``lk.experiment.trial(ctx, i)``, exactly what ``lk.run("clean_label", seed=seed)`` runs.

See Also: notebooks/03_clean_label.ipynb
"""
from __future__ import annotations

import functools

import torch

from ..experiment import Context, craft, prepare, random_control, trial
from ..types import Dataset, PoisonedDataset
from .exercises import exercise, one_of, whole_number

__all__ = ["METHODS", "setting", "feature_distance", "budget_curve", "explore"]

#: What the budget curve and the widget compare: the two crafting methods and the
#: same-budget random control of the bullseye's rows.
METHODS = {"bullseye": "clean_label", "collision": "feature_collision", "random": None}


@functools.lru_cache(maxsize=3)
def setting(seed: int = 0) -> Context:
    """The lesson's prepared context: ``lk.run("clean_label", seed=seed)``'s digits split,
    public extractor, clean transfer victim (``ctx.baseline``), the attacker's guard and
    its 10 targets (``ctx.targets``). Kept for the last few seeds: a context is fixed
    before any attack, and no trial's random draw depends on it being kept."""
    return prepare("clean_label", seed=seed)


def feature_distance(poisoned: PoisonedDataset, test: Dataset, extractor) -> dict:
    """How close the poisons came to their target (a row of ``test``) in the feature space of
    ``extractor`` (the public one: ``ctx.setting.extras["extractor"]``), relative to ``||f(t)||``.

    Returns ``{"each": mean_j ||f(x_j) - f(t)|| / ||f(t)||, "mean": ||mean_j f(x_j) - f(t)||
    / ||f(t)||, "before": the same "each" for the unperturbed bases}``.
    """
    with torch.no_grad():
        f_t = extractor(torch.tensor(test.X[poisoned.target_idx[:1]]))
        f_p = extractor(torch.tensor(poisoned.X[poisoned.poison_idx]))
        f_b = extractor(torch.tensor(poisoned.clean.X[poisoned.poison_idx]))
    n = f_t.norm()
    return {"each": float(((f_p - f_t).norm(dim=1) / n).mean()),
            "mean": float((f_p.mean(0) - f_t[0]).norm() / n),
            "before": float(((f_b - f_t).norm(dim=1) / n).mean())}


def _reference(ctx: Context) -> Dataset:
    from ..metrics import held_out

    return held_out(ctx.test, [t for t, _ in ctx.targets])


def budget_curve(ctx: Context, target: int, *, eps_values=(0.05, 0.1, 0.2, 0.3), n_poisons: int = 20) -> dict:
    """Crafting only (no victim): how close each method gets, and how visible, per budget,
    for the context's target number ``target``.

    For every ``eps``: the bullseye's and feature collision's poisons (``lk.experiment.craft``)
    and the random control of the bullseye's rows (``lk.experiment.random_control``); for each the
    feature distance ("mean" for bullseye, the quantity it optimises; "each" otherwise) and
    the label consistency (:func:`labkit.metrics.label_consistency`). Returns ``{"x":
    eps_values, "distance": {method: list}, "label_consistency": {method: list}}``.
    """
    from ..metrics import label_consistency

    eps_values, ref = list(eps_values), _reference(ctx)
    out = {"x": eps_values, "distance": {m: [] for m in METHODS}, "label_consistency": {m: [] for m in METHODS}}
    for eps in eps_values:
        bullseye = craft(ctx.using(eps=eps, n_poisons=n_poisons), target)
        made = {"bullseye": bullseye,
                "collision": craft(ctx.using("feature_collision", eps=eps, n_poisons=n_poisons), target),
                "random": random_control(ctx, bullseye, target)}
        for method, p in made.items():
            d = feature_distance(p, ctx.test, ctx.setting.extras["extractor"])
            out["distance"][method].append(d["mean"] if method == "bullseye" else d["each"])
            out["label_consistency"][method].append(label_consistency(p, ref))
    return out


def explore(*, method: str = "bullseye", n_poisons: int = 30, eps: float = 0.25, opacity: float = 0.0,
            target: int = 0, steps: int = 60, seed: int = 0) -> dict:
    """One engine trial on target number ``target`` (0-9) of :func:`setting` (the widget).

    ``method`` is ``"bullseye"`` or ``"collision"`` (``opacity`` applies to collision).
    Returns ``{"trial": Trial, "success": bool, "control_success": bool,
    "label_consistency": float}``.
    """
    if method not in ("bullseye", "collision"):
        raise ValueError(f"method must be 'bullseye' or 'collision', got {method!r}")
    ctx = setting(seed)
    kw = {"opacity": opacity} if method == "collision" else {}
    t = trial(ctx.using(METHODS[method], n_poisons=n_poisons, eps=eps, steps=steps, **kw), int(target))
    return {"trial": t, "success": bool(t.row["attack_success"]),
            "control_success": bool(t.row.get("control_success")),
            "label_consistency": t.row["label_consistency"]}


# ---- exercises ------------------------------------------------------------------------

@exercise("l3_knn_k",
          hint="A poison's k nearest neighbours (itself excluded) include the other poisons, "
               "all labelled like it. Deep k-NN flags it only when another label wins the vote "
               "outright. Suppose every other neighbour is of the target's class.",
          hints=("Of a poison's k neighbours, 19 are fellow poisons (they vote for the base "
                 "class) and k - 19 are of the target's class. For which smallest k is "
                 "k - 19 larger than 19?",),
          answer_type="a whole number (k)",
          solution="19 of the k neighbours are fellow poisons (label = base class); the other "
                   "k - 19 are target-class rows. The target class wins outright when "
                   "k - 19 > 19, i.e. k >= 39. Peri et al.'s rule of thumb: k at least about "
                   "twice the number of poisons. In this lesson the poisons also sit closer to "
                   "their own class than to the target, which is why k = 50 is not always enough.",
          answer=39, wrong=38)
def _l3_knn_k(answer):
    k, problem = whole_number(answer, what="a whole number k")
    if problem:
        return False, problem
    if k == 39:
        return True, "k = 39: 20 target-class votes beat 19 fellow poisons."
    if k == 38:
        return False, "with k = 38 it is 19 against 19: a tie is not an outright win."
    return False, f"k = {k} is not the smallest k where the fellow poisons are outvoted."


@exercise("l3_threat_model",
          hint="Which part of the victim does the attacker optimise against, and does the victim "
               "change that part when it trains on the poisons?",
          hints=("The poisons are placed in the public, frozen extractor's feature space. Which "
                 "victim keeps that feature space as it is: one that retrains only its head, or "
                 "one that retrains everything?",),
          answer_type='a string: "transfer" or "end to end"',
          solution="'transfer': the poisons are crafted in the feature space of the public, frozen "
                   "extractor. A victim that only retrains its linear head keeps that feature "
                   "space, so the poisons' position there is what the head sees. Retraining end "
                   "to end (with augmentation) changes the features, and the carefully placed "
                   "poisons land somewhere else: the attack mostly stops working (lk.run with "
                   "defence='augmentation').",
          answer="transfer", wrong="end to end")
def _l3_threat_model(answer):
    if not isinstance(answer, str):
        return False, 'expected a string in quotes: "transfer" or "end to end"'
    text = answer.strip().lower()
    if text in ("transfer", "transfer learning", "frozen", "frozen features", "head only"):
        return True, "the attack relies on the victim keeping the attacker's feature space."
    if "end" in text or "scratch" in text:
        return False, "end-to-end training moves the features the poisons were placed in."
    return False, "answer 'transfer' or 'end to end'."


@exercise("l3_cluster_sees",
          hint="Run the command in the exercise and read the recall it prints next to the one "
               "for the hardened poisons.",
          hints=("The stamped-only images are ordinary images of their class plus four bright "
                 "corner squares. What do they share with each other and with no clean row?",),
          answer_type='a string: "yes" or "no"',
          solution="'yes': activation clustering removes the stamped-only images as well as the "
                   "hardened ones. What it sees is the trigger: four bright corners no clean image "
                   "has put the poisons' activations in a cluster of their own, hardened or not. The "
                   "hardening is what makes the attack work, not what gives it away.",
          answer="yes", wrong="no")
def _l3_cluster_sees(answer):
    return one_of(answer, ("yes", "y", "it does", "true"),
                  right="yes: the trigger, not the hardening, is what the cluster is made of.",
                  wrong="run the command and compare the recall with the hardened poisons'.")

