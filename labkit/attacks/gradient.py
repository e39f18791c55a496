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
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .. import models
from ..types import Dataset, PoisonedDataset, as_rng, make_poisoned

__all__ = ["match_gradients", "noise_poisons", "choose_targets", "label_agreement",
           "alignment", "fine_tune", "run_gradient_matching", "BASES"]

BASES = ("nearest", "random")


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
                    rng=None, progress: bool = False, history: Optional[list] = None) -> PoisonedDataset:
    """Craft Witches' Brew poisons for one target.

    Parameters
    ----------
    data : Dataset
        The training set; poisons replace ``round(rate * len(data))`` rows of class
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
    bases : {"nearest", "random"}
        Which rows of ``target_class`` become poisons: those closest to the target in
        pixel space, or a random draw.
    rng : None, int or numpy Generator
    history : list, optional
        If given, receives the mean alignment (cosine) after every step of the best restart.

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
    rng = as_rng(rng)
    surrogates = [surrogates] if isinstance(surrogates, nn.Module) else list(surrogates)
    n_poison = max(1, int(round(rate * len(data))))
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
            loss = 0.0
            for s, params, gt in nets:
                gp = _flat_grad(s, params, x, yb, create_graph=True)
                loss = loss + 1 - (gp @ gt) / gp.norm().clamp_min(1e-12)
            loss = loss / len(nets)
            opt.zero_grad()
            loss.backward()
            delta.grad.sign_()
            opt.step()
            with torch.no_grad():
                delta.clamp_(-eps, eps)
                delta.copy_((xb + delta).clamp(0, 1) - xb)
            hist.append(1 - float(loss))
            if bar is not None:
                bar.update()
        final = _alignment_now(nets, xb + delta.detach(), yb)
        if 1 - final < best_loss:
            best, best_loss, best_hist = delta.detach().clone(), 1 - final, hist
    if bar is not None:
        bar.close()
    if history is not None:
        history.extend(best_hist)
    X = np.array(data.X, copy=True)
    X[idx] = np.clip(data.X[idx] + best.numpy(), 0, 1)
    X[idx] = np.clip(X[idx], data.X[idx] - eps, data.X[idx] + eps)     # guard float rounding
    return make_poisoned(data, X=X, idx=idx, attack="gradient_matching",
                         params={"rate": rate, "eps": eps, "steps": steps, "restarts": restarts,
                                 "bases": bases, "alignment": round(1 - best_loss, 4)},
                         target_idx=np.array([target_idx]), target_class=np.array([target_class]))


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


def run_gradient_matching(*, defence=None, dataset="digits", seed=0, rate=0.05, params=None,
                          defence_params=None, train_kw=None, split=None, progress=False):
    """The ``gradient_matching`` experiment (``python -m labkit run gradient_matching``).

    For each of ``n_targets`` random correctly classified test points (adversarial class:
    the deployed model's runner-up), craft poisons, let the victim learn from them, and
    check the target; the same rows with random +-eps noise are the control.

    ``params``: ``eps`` (0.15), ``n_targets`` (10), ``victim`` ("finetune" or "scratch"),
    ``steps``, ``restarts``, ``bases``, ``ensemble`` (surrogates for "scratch"),
    ``n_clean`` (clean rows in the fine-tuning batch, 200), ``finetune_epochs`` (10).

    ``clean_accuracy_no_attack``: the deployed model (``finetune``) or a model trained on
    clean data (``scratch``); ``clean_accuracy``/``attack_success``: victims on poisoned
    data, averaged over targets; ``extra``: the noise control's success, the independent
    classifier's label agreement on the poisons, the alignment, the crafting time.
    """
    from .. import data as data_mod, metrics
    from ..experiment import repair
    from ..registry import get_defence
    from ..types import RunResult

    t0 = time.perf_counter()
    p = {"eps": 0.15, "n_targets": 10, "victim": "finetune", "steps": 200, "restarts": 1,
         "bases": "nearest", "ensemble": 1, "n_clean": 200, "finetune_epochs": 10, **(params or {})}
    if p["victim"] not in ("finetune", "scratch"):
        raise ValueError(f"victim must be 'finetune' or 'scratch', got {p['victim']!r}")
    train_kw = dict(train_kw or {})
    ft_kw = {k: v for k, v in train_kw.items() if k != "model"}
    split = split if split is not None else data_mod.load(dataset, seed=seed)
    train, test = split
    rng = np.random.default_rng(seed)
    dspec = get_defence(defence) if defence is not None else None
    dkw = defence_params or {}
    finetune = p["victim"] == "finetune"
    # the victim's deployed model; in the scratch threat model the attacker trains own surrogates
    deployed = models.train(train, seed=seed, **train_kw)
    if finetune:
        surrogates = [deployed]
    else:
        surrogates = [models.train(train, seed=seed + 1000 + k, **train_kw) for k in range(p["ensemble"])]
    targets, classes = choose_targets(surrogates[0], test, p["n_targets"], rng=rng)

    def victim(pd: PoisonedDataset, j: int, **kw):
        if finetune:
            rest = np.setdiff1d(np.arange(len(pd)), pd.poison_idx)
            rows = np.concatenate([pd.poison_idx,
                                   np.random.default_rng(seed + 7 + j).choice(rest, p["n_clean"], replace=False)])
            return fine_tune(deployed, pd, rows, epochs=p["finetune_epochs"], seed=seed + j, **{**ft_kw, **kw}), rows
        return models.train(pd, seed=seed + j, **{**train_kw, **kw}), np.arange(len(pd))

    hits, ctrl, accs, agree, align, d_hits, d_accs, dets, craft_s = ([] for _ in range(9))
    last = None
    for j, (t, a) in enumerate(zip(targets, classes)):
        tc = time.perf_counter()
        pd = match_gradients(train, test=test, target_idx=int(t), target_class=int(a),
                             surrogates=surrogates, rate=rate, eps=p["eps"], steps=p["steps"],
                             restarts=p["restarts"], bases=p["bases"], rng=rng, progress=progress)
        craft_s.append(time.perf_counter() - tc)
        net, rows = victim(pd, j)
        hits.append(metrics.attack_success_rate(net, pd, test))
        accs.append(metrics.clean_accuracy(net, test))
        cnet, _ = victim(noise_poisons(pd, eps=p["eps"], rng=rng), j)
        ctrl.append(metrics.attack_success_rate(cnet, pd, test))
        agree.append(label_agreement(pd))
        align.append(pd.params["alignment"])
        if dspec is not None:
            if dspec.kind == "training":
                dnet, _ = victim(pd, j, **dspec.apply(**dkw))
            elif dspec.kind == "detector":
                batch = make_poisoned(pd.clean.subset(rows), X=pd.X[rows], idx=np.flatnonzero(np.isin(rows, pd.poison_idx)),
                                      attack=pd.attack, params=pd.params)
                found = dspec.apply(batch.as_dataset(), net, rng, **dkw)
                dets.append(metrics.detection_report(found, batch))
                keep = rows[~found.flagged]
                if finetune:
                    dnet = fine_tune(deployed, pd, keep, epochs=p["finetune_epochs"], seed=seed + j, **ft_kw)
                else:
                    dnet = models.train(repair(batch.as_dataset(), found), seed=seed + j, **train_kw)
            else:
                raise ValueError(f"gradient_matching supports training and detector defences, got {defence!r}")
            d_hits.append(metrics.attack_success_rate(dnet, pd, test))
            d_accs.append(metrics.clean_accuracy(dnet, test))
        last = pd
    out = dict(attack="gradient_matching", defence=defence, dataset=train.name, seed=seed,
               params={"rate": rate, **p}, n_train=len(train), n_poison=last.n_poison,
               clean_accuracy_no_attack=metrics.clean_accuracy(deployed, test),
               clean_accuracy=float(np.mean(accs)), attack_success=float(np.mean(hits)))
    detection = None
    if dspec is not None:
        out["clean_accuracy_defended"] = float(np.mean(d_accs))
        out["attack_success_defended"] = float(np.mean(d_hits))
        if dets:
            detection = {k: float(np.nanmean([d[k] for d in dets])) for k in dets[0]}
    extra = {"control_success": float(np.mean(ctrl)), "label_agreement": float(np.min(agree)),
             "label_agreement_mean": float(np.mean(agree)), "alignment": float(np.mean(align)),
             "craft_seconds": float(np.mean(craft_s)), "hits": [float(h) for h in hits],
             "target_idx": targets.tolist(), "target_class": classes.tolist()}
    return RunResult(**out, detection=detection, seconds=time.perf_counter() - t0, extra=extra,
                     poisoned=last)
