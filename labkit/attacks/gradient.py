"""Gradient-matching poisons (Witches' Brew): correctly labelled images that steer training.

The attacker picks a target test image and an adversarial class. They perturb a budget of
training images *of the adversarial class* (labels kept, each pixel moved at most ``eps``)
so that the training gradient of those poisons points the same way as the gradient that
would push the target into the adversarial class:

    minimise  1 - cos( grad_theta L(poisons + delta, their labels),
                       grad_theta L(target, adversarial class) )     s.t. |delta|_inf <= eps

on a surrogate model, with signed Adam steps, projection onto the eps-ball and [0, 1], and
restarts (the best alignment wins). A victim who then takes gradient steps on the poisons
moves the target towards the adversarial class.

Threat models (``victim=`` of :func:`run_gradient_matching`):

- ``"finetune"`` (default): the victim fine-tunes its deployed model on a new batch that
  holds the poisons (a "crucial stage of training"); the attacker knows the deployed weights.
- ``"scratch"``: the victim retrains from scratch, from an initialisation the attacker
  does not know; the attacker matches gradients on surrogates of their own.

Geiping, Fowl, Huang, Czaja, Taylor, Moeller & Goldstein 2021, "Witches' Brew:
industrial scale data poisoning via gradient matching", ICLR, arXiv:2009.02276.

See Also: notebooks/04_gradient_manipulation.ipynb
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .. import models
from ..types import Dataset, PoisonedDataset, as_rng, make_poisoned

__all__ = ["match_gradients", "noise_poisons", "choose_targets", "label_agreement",
           "alignment", "fine_tune", "linear_guard", "Brew", "brew", "train_victim", "evaluate", "audit_batches",
           "dp_sgd_curve", "try_target", "run_gradient_matching", "BASES", "OBJECTIVES"]

BASES = ("nearest", "random")
OBJECTIVES = ("sign", "cosine")


def _param_dict(net: nn.Module) -> dict:
    return {n: p.detach() for n, p in net.named_parameters()}


def _flat_grad(net, params, X, y, *, create_graph):
    loss = nn.functional.cross_entropy(functional_call(net, params, (X,)), y)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(params.values()),
                                                                 create_graph=create_graph)])


def alignment(model: nn.Module, poisoned: PoisonedDataset, test: Dataset) -> float:
    """Cosine between the poisons' training gradient and the target's adversarial gradient."""
    t, a = int(poisoned.target_idx[0]), int(np.asarray(poisoned.target_class).ravel()[0])
    params = {n: p.detach().requires_grad_(True) for n, p in _param_dict(model).items()}
    gt = _flat_grad(model, params, torch.tensor(test.X[t:t + 1]), torch.tensor([a]), create_graph=False)
    idx = poisoned.poison_idx
    gp = _flat_grad(model, params, torch.tensor(poisoned.X[idx]), torch.tensor(poisoned.y[idx]),
                    create_graph=False)
    return float(torch.nn.functional.cosine_similarity(gp, gt, dim=0))


def _choose_bases(data: Dataset, x_target: np.ndarray, target_class: int, n: int, how: str, rng):
    pool = np.flatnonzero(data.y == target_class)
    if pool.size == 0:
        raise ValueError(f"no training rows of class {target_class} to poison")
    n = min(n, pool.size)
    if how == "random":
        return np.sort(rng.choice(pool, n, replace=False))
    dist = ((data.X[pool] - x_target[None]) ** 2).reshape(pool.size, -1).sum(1)
    return np.sort(pool[np.argsort(dist, kind="stable")[:n]])


def match_gradients(data: Dataset, *, test: Dataset, target_idx: int, target_class: int,
                    surrogates, rate: float = 0.05, eps: float = 0.15, steps: int = 200,
                    restarts: int = 1, step_size: float = 0.01, bases: str = "nearest",
                    objective: str = "sign", keep_label: float = 1.0, guards=(), rng=None, progress: bool = False, history: Optional[list] = None) -> PoisonedDataset:
    """Craft Witches' Brew poisons for one target.

    Parameters
    ----------
    data : Dataset
        The training set; poisons replace ``floor(rate * len(data))`` rows of class
        ``target_class`` (capped at that class's size).
    test : Dataset
        Holds the target image ``test.X[target_idx]``.
    target_idx : int
        Index of the target *in the test set*.
    target_class : int
        The adversarial class: what the attacker wants the target to be classified as.
    surrogates : nn.Module or sequence of nn.Module
        Model(s) whose gradients are matched (an ensemble averages the losses).
    rate : float in (0, 1]
        Budget as a fraction of the training set.
    eps : float in (0, 1]
        L-inf bound on each pixel's change (pixels in [0, 1]).
    steps, restarts, step_size : crafting settings (signed Adam on the perturbation).
    objective : {"sign", "cosine"}
        ``"cosine"`` is Witches' Brew's ``1 - cos(g_poison, g_target)``. ``"sign"`` (the
        default) matches what an *Adam* victim does with the gradient: Adam's first steps
        move every weight by about ``lr * sign(g)``, so the target's loss falls by about
        ``lr * sum_i |g_target_i| * [sign(g_poison_i) = sign(g_target_i)]``; the objective
        is ``1 - sum_i g_target_i * tanh(g_poison_i / tau) / sum_i |g_target_i|`` with
        ``tau`` the mean ``|g_poison_i|`` (a smooth sign). On the lab's Adam-trained victims
        it flips far more targets than the cosine (see the notebook).
    bases : {"nearest", "random"}
        Which rows of ``target_class`` become poisons: those closest to the target in
        pixel space, or a random draw.
    keep_label : float >= 0
        Weight of a hinge penalty that keeps every poison classified as its own label by
        the surrogate with a logit margin of at least 1: the "clean label" stays plausible
        (checked independently by :func:`label_agreement`). 0 switches it off.
    guards : sequence of nn.Module
        Extra models of the attacker's own (e.g. :func:`linear_guard`) on which the same
        hinge keeps the poisons' labels plausible.
    rng : None, int or numpy Generator
    history : list, optional
        If given, receives the alignment (the objective's own measure: the cosine, or the
        weighted sign agreement, 1 = perfect) at every step of the best restart.

    Returns
    -------
    PoisonedDataset
        Only ``X`` of ``poison_idx`` rows changes (within ``eps``, labels kept);
        ``target_idx = [target_idx]``, ``target_class = [target_class]``.

    References
    ----------
    Geiping et al. 2021, "Witches' Brew: industrial scale data poisoning via gradient
    matching", ICLR, arXiv:2009.02276.

    See Also
    --------
    notebooks/04_gradient_manipulation.ipynb
    """
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    if not 0 <= target_class < data.n_classes:
        raise ValueError(f"target_class must be in [0, {data.n_classes}), got {target_class}")
    if not 0 <= target_idx < len(test):
        raise ValueError(f"target_idx must index the test set (size {len(test)}), got {target_idx}")
    if steps < 1 or restarts < 1:
        raise ValueError(f"need steps >= 1 and restarts >= 1, got {steps}, {restarts}")
    if bases not in BASES:
        raise ValueError(f"bases must be one of {BASES}, got {bases!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    rng = as_rng(rng)
    surrogates = [surrogates] if isinstance(surrogates, nn.Module) else list(surrogates)
    n_poison = max(1, int(rate * len(data) + 1e-9))         # floor: never above the budget
    idx = _choose_bases(data, test.X[target_idx], target_class, n_poison, bases, rng)
    xb = torch.tensor(data.X[idx])
    yb = torch.tensor(data.y[idx])
    xt = torch.tensor(test.X[target_idx:target_idx + 1])
    at = torch.tensor([target_class])
    nets = []
    for s in surrogates:
        s = s.cpu().eval()
        params = {n: p.detach().clone().requires_grad_(True) for n, p in s.named_parameters()}
        gt = _flat_grad(s, params, xt, at, create_graph=False).detach()
        nets.append((s, params, gt / gt.norm()))
    gen = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
    best, best_loss, best_hist = None, np.inf, []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps * restarts, desc="brewing poisons", leave=False)
    for _ in range(restarts):
        delta = ((torch.rand(xb.shape, generator=gen) * 2 - 1) * eps).requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=step_size)
        hist = []
        for _ in range(steps):
            x = (xb + delta).clamp(0, 1)
            loss, cos = 0.0, 0.0
            for s, params, gt in nets:
                gp = _flat_grad(s, params, x, yb, create_graph=True)
                if objective == "cosine":
                    align = (gp @ gt) / gp.norm().clamp_min(1e-12)
                else:
                    tau = gp.detach().abs().mean().clamp_min(1e-12)
                    align = (gt * torch.tanh(gp / tau)).sum() / gt.abs().sum()
                cos += float(align.detach()) / len(nets)
                loss = loss + 1 - align
                if keep_label:
                    loss = loss + keep_label * _hinge(functional_call(s, params, (x,)), yb)
            loss = loss / len(nets)
            for g in guards:
                loss = loss + keep_label * _hinge(g(x), yb)
            opt.zero_grad()
            loss.backward()
            delta.grad.sign_()
            opt.step()
            with torch.no_grad():
                delta.clamp_(-eps, eps)
                delta.copy_((xb + delta).clamp(0, 1) - xb)
            hist.append(cos)
            if bar is not None:
                bar.update()
        final = float(loss.detach())
        if final < best_loss:
            best, best_loss, best_hist = delta.detach().clone(), final, hist
    if bar is not None:
        bar.close()
    if history is not None:
        history.extend(best_hist)
    X = np.array(data.X, copy=True)
    X[idx] = np.clip(data.X[idx] + best.numpy(), 0, 1)
    X[idx] = np.clip(X[idx], data.X[idx] - eps, data.X[idx] + eps)     # guard float rounding
    return make_poisoned(data, X=X, idx=idx, attack="gradient_matching",
                         params={"rate": rate, "eps": eps, "steps": steps, "restarts": restarts,
                                 "bases": bases, "objective": objective,
                                 "alignment": round(_alignment_now(nets, xb + best, yb), 4)},
                         target_idx=np.array([target_idx]), target_class=np.array([target_class]))


def _hinge(z: torch.Tensor, y: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Mean of ``relu(max_{c != y} z_c - z_y + margin)``: zero once every row is classified
    as its own label with a logit margin of at least ``margin``."""
    own = z.gather(1, y[:, None])[:, 0]
    other = z.masked_fill(nn.functional.one_hot(y, z.shape[1]).bool(), -1e9).max(1).values
    return torch.relu(other - own + margin).mean()


def linear_guard(data: Dataset, *, steps: int = 300, weight_decay: float = 1e-4, seed: int = 0) -> nn.Module:
    """The attacker's own linear softmax classifier on clean pixels (full-batch Adam), used
    as a guard so poisons stay plausible to simple models too (see ``guards``)."""
    gen = torch.Generator().manual_seed(int(seed))
    net = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(data.image_shape)), data.n_classes))
    models._init_(net, gen)
    X, y = torch.tensor(data.X), torch.tensor(data.y)
    opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def _alignment_now(nets, x, yb) -> float:
    vals = []
    for s, params, gt in nets:
        gp = _flat_grad(s, params, x.clamp(0, 1), yb, create_graph=False)
        vals.append(float(gp @ gt / gp.norm().clamp_min(1e-12)))
    return float(np.mean(vals))


def noise_poisons(poisoned: PoisonedDataset, *, eps: float, rng=None) -> PoisonedDataset:
    """The control: the same rows moved by random +-eps noise (clipped to [0, 1]), labels kept."""
    rng = as_rng(rng)
    clean = poisoned.clean
    idx = poisoned.poison_idx
    X = np.array(clean.X, copy=True)
    X[idx] = np.clip(clean.X[idx] + eps * rng.choice([-1.0, 1.0], size=clean.X[idx].shape), 0, 1)
    return make_poisoned(clean, X=X, idx=idx, attack="random_noise",
                         params={"rate": poisoned.params.get("rate"), "eps": eps},
                         target_idx=poisoned.target_idx, target_class=poisoned.target_class)


def choose_targets(model: nn.Module, test: Dataset, n_targets: int, *, rng=None):
    """``n_targets`` random test rows ``model`` classifies correctly, and for each the class
    it ranks second (the adversarial class). Returns ``(target_idx, target_class)``."""
    rng = as_rng(rng)
    P = models.predict_proba(model, test.X)
    ok = np.flatnonzero(P.argmax(1) == test.y)
    if n_targets < 1 or n_targets > ok.size:
        raise ValueError(f"n_targets must be in [1, {ok.size}], got {n_targets}")
    t = np.sort(rng.choice(ok, n_targets, replace=False))
    return t, np.argsort(P[t], 1)[:, -2]


def label_agreement(poisoned: PoisonedDataset) -> float:
    """Fraction of the poisons that an independent classifier (scikit-learn logistic
    regression trained on the clean pixels) assigns their own label: the "clean label" check."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=1000).fit(poisoned.clean.flat(), poisoned.clean.y)
    idx = poisoned.poison_idx
    return float((clf.predict(poisoned.flat()[idx]) == poisoned.y[idx]).mean())


def fine_tune(deployed: nn.Module, data: Dataset, rows, *, epochs: int = 10, lr: float = 0.01,
              seed: int = 0, **train_kw) -> nn.Module:
    """The victim's fine-tuning step: a copy of ``deployed`` trained on ``data.subset(rows)``."""
    return models.train(data.subset(rows), model=copy.deepcopy(deployed), epochs=epochs, lr=lr,
                        seed=seed, **train_kw)


@dataclass(frozen=True, repr=False, eq=False)
class Brew:
    """Poisons brewed for several targets, with everything needed to test victims on them.

    ``poisons[j]`` and ``controls[j]`` (random +-eps noise on the same rows) belong to target
    ``j``; ``rows[j]`` are the rows the victim learns from (the fine-tuning batch, or the
    whole training set for ``victim="scratch"``).
    """

    split: tuple
    deployed: nn.Module
    poisons: list
    controls: list
    rows: list
    settings: dict
    craft_seconds: list
    histories: list

    def __repr__(self) -> str:
        return (f"Brew(dataset={self.split[0].name!r}, n_targets={len(self.poisons)}, "
                f"victim={self.settings['victim']!r}, n_poison={self.poisons[0].n_poison})")


def brew(split, *, n_targets: int = 10, rate: float = 0.05, eps: float = 0.15,
         victim: str = "finetune", n_clean: int = 200, finetune_epochs: int = 1,
         ensemble: int = 1, guard: bool = True, seed: int = 0, train_kw: Optional[dict] = None,
         progress: bool = False, **craft_kw) -> Brew:
    """Train (or take) the deployed model, draw ``n_targets`` targets, craft their poisons.

    Parameters
    ----------
    split : Split
        ``(train, test)``.
    n_targets : int
        Random test points the deployed model gets right; the adversarial class of each is
        the model's runner-up class.
    rate, eps : float
        Budget (fraction of the training set) and L-inf bound.
    victim : {"finetune", "scratch"}
        ``finetune``: the victim makes one pass (``finetune_epochs``) over a new batch of
        the poisons plus ``n_clean`` replayed clean rows, starting from the deployed model,
        whose weights the attacker knows. ``scratch``: the victim retrains on the whole
        poisoned training set from its own initialisation; the attacker matches gradients on
        ``ensemble`` surrogates trained with seeds the victim does not use.
    guard : bool
        Also keep the poisons' labels plausible to a linear classifier of the attacker's own
        (:func:`linear_guard`), not only to the surrogate.
    seed : int
        Seeds the deployed model, the targets, the crafting and the victims' batches.
    train_kw : dict
        Extra :func:`labkit.models.train` settings (e.g. ``model="cnn"``).
    **craft_kw
        Passed to :func:`match_gradients` (``steps``, ``restarts``, ``bases``,
        ``objective``, ``keep_label``).
    """
    if victim not in ("finetune", "scratch"):
        raise ValueError(f"victim must be 'finetune' or 'scratch', got {victim!r}")
    train, test = split
    train_kw = dict(train_kw or {})
    rng = np.random.default_rng(seed)
    deployed = models.train(train, seed=seed, **train_kw)
    if victim == "finetune":
        surrogates = [deployed]
    else:
        surrogates = [models.train(train, seed=seed + 1000 + k, **train_kw) for k in range(ensemble)]
    targets, classes = choose_targets(surrogates[0], test, n_targets, rng=rng)
    if guard:
        craft_kw["guards"] = [linear_guard(train, seed=seed)]
    poisons, controls, rows, secs, hists = [], [], [], [], []
    for j, (t, a) in enumerate(zip(targets, classes)):
        t0 = time.perf_counter()
        hist = []
        pd = match_gradients(train, test=test, target_idx=int(t), target_class=int(a),
                             surrogates=surrogates, rate=rate, eps=eps, rng=rng,
                             progress=progress, history=hist, **craft_kw)
        secs.append(time.perf_counter() - t0)
        hists.append(hist)
        poisons.append(pd)
        controls.append(noise_poisons(pd, eps=eps, rng=rng))
        if victim == "finetune":
            rest = np.setdiff1d(np.arange(len(train)), pd.poison_idx)
            extra = np.random.default_rng(seed + 7 + j).choice(rest, n_clean, replace=False)
            rows.append(np.concatenate([pd.poison_idx, np.sort(extra)]))
        else:
            rows.append(np.arange(len(train)))
    settings = {"victim": victim, "n_clean": n_clean, "finetune_epochs": finetune_epochs,
                "ensemble": ensemble, "guard": guard, "seed": seed, "train_kw": train_kw, "rate": rate,
                "eps": eps, **{k: v for k, v in craft_kw.items() if k != "guards"}}
    return Brew(split, deployed, poisons, controls, rows, settings, secs, hists)


def train_victim(b: Brew, j: int, data: Dataset, rows=None, **train_kw) -> nn.Module:
    """The victim of target ``j`` learning from ``data.subset(rows)`` (default ``b.rows[j]``)."""
    rows = b.rows[j] if rows is None else rows
    st = b.settings
    kw = {**st["train_kw"], **train_kw}
    if st["victim"] == "finetune":
        kw.pop("model", None)       # the victim fine-tunes the deployed model ...
        kw.pop("epochs", None)      # ... for finetune_epochs
        return fine_tune(b.deployed, data, rows, epochs=st["finetune_epochs"], seed=st["seed"] + j, **kw)
    return models.train(data.subset(rows), seed=st["seed"] + j, **kw)


def evaluate(b: Brew, *, control: bool = True, **train_kw) -> dict:
    """Train one victim per target (with ``train_kw``, e.g. a defence's ``aggregate``).

    Returns
    -------
    dict
        ``success`` (fraction of targets classified as their adversarial class),
        ``control_success`` (the same with the noise control; ``None`` if ``control=False``),
        ``clean_accuracy`` (victims' mean test accuracy), ``hits`` (per target),
        ``label_agreement`` (the worst target's :func:`label_agreement`).
    """
    from .. import metrics

    test = b.split[1]
    hits, accs, ctrl = [], [], []
    for j, pd in enumerate(b.poisons):
        net = train_victim(b, j, pd, **train_kw)
        hits.append(metrics.attack_success_rate(net, pd, test))
        accs.append(metrics.clean_accuracy(net, test))
        if control:
            cnet = train_victim(b, j, b.controls[j], **train_kw)
            ctrl.append(metrics.attack_success_rate(cnet, pd, test))
    return {"success": float(np.mean(hits)), "control_success": float(np.mean(ctrl)) if control else None,
            "clean_accuracy": float(np.mean(accs)), "hits": hits,
            "label_agreement": float(min(label_agreement(pd) for pd in b.poisons))}


def audit_batches(b: Brew, *, expected_rate: Optional[float] = None, **kw) -> dict:
    """Run :func:`labkit.defences.gradient_audit.gradient_audit` on every victim batch
    (per-sample gradients at the deployed model), drop what it flags, retrain the victims.

    Returns the mean detection report, ``success`` / ``clean_accuracy`` after repair, and per
    target the ``detections`` and the batches' ground truth ``is_poison`` (for plots only).
    """
    from .. import metrics
    from ..defences.gradient_audit import gradient_audit

    test = b.split[1]
    reports, hits, accs, dets, masks = [], [], [], [], []
    for j, pd in enumerate(b.poisons):
        rows = b.rows[j]
        batch = make_poisoned(pd.clean.subset(rows), X=pd.X[rows], idx=np.flatnonzero(np.isin(rows, pd.poison_idx)),
                              attack=pd.attack, params=pd.params)
        rate = expected_rate if expected_rate is not None else min(1.0, 1.5 * batch.n_poison / len(batch))
        det = gradient_audit(b.deployed, batch.X, batch.y, expected_rate=rate, **kw)
        dets.append(det)
        masks.append(batch.is_poison)
        reports.append(metrics.detection_report(det, batch))
        net = train_victim(b, j, pd, rows=rows[~det.flagged])
        hits.append(metrics.attack_success_rate(net, pd, test))
        accs.append(metrics.clean_accuracy(net, test))
    mean_report = {k: float(np.nanmean([r[k] for r in reports])) for k in reports[0]}
    return {"detection": mean_report, "success": float(np.mean(hits)),
            "clean_accuracy": float(np.mean(accs)), "detections": dets, "is_poison": masks}


def dp_sgd_curve(b: Brew, noise_multipliers: Sequence[float], *, max_norm: float = 1.0,
                 progress: bool = False) -> dict:
    """Success and clean accuracy of DP-SGD victims for each noise multiplier.

    Returns ``{"noise": [...], "success": [...], "clean_accuracy": [...]}`` (one value per
    noise multiplier; ``None`` as a multiplier means no defence at all).
    """
    from ..defences.dp_sgd import dp_sgd

    out = {"noise": [], "success": [], "clean_accuracy": []}
    it = noise_multipliers
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(list(noise_multipliers), desc="DP-SGD sweep", leave=False)
    for sigma in it:
        kw = {} if sigma is None else {"aggregate": dp_sgd(max_norm=max_norm, noise_multiplier=sigma)}
        r = evaluate(b, control=False, **kw)
        out["noise"].append(sigma)
        out["success"].append(r["success"])
        out["clean_accuracy"].append(r["clean_accuracy"])
    return out


def try_target(split, deployed: nn.Module, *, target: int = 0, rate: float = 0.05, eps: float = 0.15,
               steps: int = 60, n_clean: int = 200, seed: int = 0, **craft_kw) -> dict:
    """One quick fine-tuning trial (for widgets): craft for the ``target``-th of 10 drawn
    targets, fine-tune the deployed model on poisons and on the noise control.

    Returns ``{"poisoned", "control", "prob_deployed", "prob_victim", "prob_control"}``: the
    poisoned data, the control, and the adversarial class's probability on the target
    before, after poisoning and after the control.
    """
    train, test = split
    targets, classes = choose_targets(deployed, test, 10, rng=seed)
    t, a = int(targets[target]), int(classes[target])
    pd = match_gradients(train, test=test, target_idx=t, target_class=a, surrogates=deployed,
                         rate=rate, eps=eps, steps=steps, rng=seed, **craft_kw)
    ctrl = noise_poisons(pd, eps=eps, rng=seed)
    rest = np.setdiff1d(np.arange(len(train)), pd.poison_idx)
    rows = np.concatenate([pd.poison_idx, np.random.default_rng(seed).choice(rest, n_clean, replace=False)])
    prob = lambda net: float(models.predict_proba(net, test.X[t:t + 1])[0, a])     # noqa: E731
    return {"poisoned": pd, "control": ctrl, "prob_deployed": prob(deployed),
            "prob_victim": prob(fine_tune(deployed, pd, rows, seed=seed)),
            "prob_control": prob(fine_tune(deployed, ctrl, rows, seed=seed))}


def run_gradient_matching(*, defence=None, dataset="digits", seed=0, rate=0.05, params=None,
                          defence_params=None, train_kw=None, split=None, progress=False):
    """The ``gradient_matching`` experiment (``python -m labkit run gradient_matching``).

    :func:`brew` poisons for ``n_targets`` targets, :func:`evaluate` victims on them and on
    the noise control, then (with a defence) victims trained with a ``training`` defence
    (e.g. ``dp_sgd``) or on batches cleaned by a detector (``gradient_audit``).
    ``params`` go to :func:`brew` (``eps``, ``n_targets``, ``victim``, ``steps``, ...).

    ``clean_accuracy_no_attack``: the deployed model (trained on clean data);
    ``clean_accuracy``/``attack_success``: victims on the poisons, averaged over targets;
    ``extra``: the noise control's success, the independent classifier's label agreement on
    the poisons (minimum and mean over targets), alignment and crafting time.
    """
    from .. import data as data_mod, metrics
    from ..registry import get_defence
    from ..types import RunResult

    t0 = time.perf_counter()
    p = {"eps": 0.15, "n_targets": 10, "victim": "finetune", **(params or {})}
    split = split if split is not None else data_mod.load(dataset, seed=seed)
    b = brew(split, rate=rate, seed=seed, train_kw=train_kw, progress=progress, **p)
    res = evaluate(b)
    agree = [label_agreement(pd) for pd in b.poisons]
    out = dict(attack="gradient_matching", defence=defence, dataset=split[0].name, seed=seed,
               params={"rate": rate, **{k: v for k, v in b.settings.items() if k != "train_kw"}},
               n_train=len(split[0]), n_poison=b.poisons[0].n_poison,
               clean_accuracy_no_attack=metrics.clean_accuracy(b.deployed, split[1]),
               clean_accuracy=res["clean_accuracy"], attack_success=res["success"])
    detection = None
    if defence is not None:
        dspec = get_defence(defence)
        dkw = defence_params or {}
        if dspec.kind == "training":
            d = evaluate(b, control=False, **dspec.apply(**dkw))
        elif defence == "gradient_audit":
            d = audit_batches(b, **dkw)
            detection = d["detection"]
        else:
            raise ValueError(f"gradient_matching supports training defences and gradient_audit, got {defence!r}")
        out["clean_accuracy_defended"] = d["clean_accuracy"]
        out["attack_success_defended"] = d["success"]
    extra = {"control_success": res["control_success"], "label_agreement": float(np.min(agree)),
             "label_agreement_mean": float(np.mean(agree)),
             "alignment": float(np.mean([pd.params["alignment"] for pd in b.poisons])),
             "craft_seconds": float(np.mean(b.craft_seconds)), "hits": res["hits"],
             "target_idx": [int(pd.target_idx[0]) for pd in b.poisons],
             "target_class": [int(pd.target_class[0]) for pd in b.poisons]}
    return RunResult(**out, detection=detection, seconds=time.perf_counter() - t0, extra=extra,
                     poisoned=b.poisons[-1])
