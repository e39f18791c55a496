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

Threat models (the ``finetune`` and ``scratch`` scenarios of :mod:`labkit.scenarios`):

- ``"finetune"`` (default): the victim fine-tunes its deployed model on a new batch that
  holds the poisons (a "crucial stage of training"); the attacker knows the deployed weights.
- ``"scratch"``: the victim retrains from scratch, from an initialisation the attacker
  does not know; the attacker matches gradients on surrogates of their own.

Geiping, Fowl, Huang, Czaja, Taylor, Moeller & Goldstein 2021, "Witches' Brew:
industrial scale data poisoning via gradient matching", ICLR, arXiv:2009.02276.

See Also: notebooks/04_gradient_manipulation.ipynb
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .. import models
from ..optim import Adam
from ..rng import as_rng
from ..types import Dataset, PoisonedDataset, make_poisoned

__all__ = ["match_gradients", "linear_guard", "BASES", "OBJECTIVES"]

BASES = ("nearest", "random", "aligned")
LABEL_RULES = ("margin", "loss")
OBJECTIVES = ("sign", "cosine")


def _param_dict(net: nn.Module) -> dict:
    return {n: p.detach() for n, p in net.named_parameters()}


def _flat_grad(net, params, X, y, *, create_graph):
    loss = nn.functional.cross_entropy(functional_call(net, params, (X,)), y)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(params.values()),
                                                                 create_graph=create_graph)])


def _row_alignment(net: nn.Module, X: np.ndarray, y: np.ndarray, g_target: torch.Tensor) -> np.ndarray:
    """Each row's own training gradient at ``net``, scored as the sign objective scores a
    batch: ``sum_i g_target_i * tanh(g_row_i / tau) / sum_i |g_target_i|``."""
    from torch.func import grad, vmap

    params = {n: p.detach() for n, p in net.named_parameters()}

    def row_loss(p, x, t):
        return nn.functional.cross_entropy(functional_call(net, p, (x[None],)), t[None])

    out = []
    for start in range(0, len(X), 64):
        g = vmap(grad(row_loss), in_dims=(None, 0, 0))(params, torch.tensor(X[start:start + 64]),
                                                      torch.tensor(y[start:start + 64]))
        flat = torch.cat([g[n].reshape(len(g[n]), -1) for n in params], 1)
        tau = flat.abs().mean(1, keepdim=True).clamp_min(1e-12)
        out.append(((g_target * torch.tanh(flat / tau)).sum(1) / g_target.abs().sum()).numpy())
    return np.concatenate(out)


def _choose_bases(data: Dataset, x_target: np.ndarray, target_class: int, n: int, how: str, rng,
                  aligned_with=None):
    pool = np.flatnonzero(data.y == target_class)
    if pool.size == 0:
        raise ValueError(f"no training rows of class {target_class} to poison")
    n = min(n, pool.size)
    if how == "random":
        return np.sort(rng.choice(pool, n, replace=False))
    if how == "aligned":
        net, g_target = aligned_with
        score = _row_alignment(net, data.X[pool], data.y[pool], g_target)
        return np.sort(pool[np.argsort(-score, kind="stable")[:n]])
    dist = ((data.X[pool] - x_target[None]) ** 2).reshape(pool.size, -1).sum(1)
    return np.sort(pool[np.argsort(dist, kind="stable")[:n]])


def match_gradients(data: Dataset, *, test: Dataset, target_idx: int, target_class: int,
                    surrogates, rate: float = 0.05, eps: float = 0.15, steps: int = 200,
                    restarts: int = 1, step_size: float = 0.01, bases: str = "random",
                    objective: str = "sign", keep_label: float = 1.0, label_rule: str = "margin",
                    loss_quantile: float = 0.9, guards=(), batch_clean: int = 0, minibatch: int = 0,
                    rng=None, progress: bool = False, history: Optional[list] = None) -> PoisonedDataset:
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
    bases : {"random", "aligned", "nearest"}
        Which rows of ``target_class`` become poisons. ``"random"`` (default): a random
        draw. ``"aligned"``: those whose
        own training gradient at the first surrogate (the deployed model) already agrees
        most with the target's, as the sign objective scores it: what the attacker can
        compute, and a head start the optimisation builds on (the random control perturbs
        the same rows, so it measures what the choice alone does). ``"nearest"``: those closest to the target in pixel space; nearest bases make
        even random noise flip targets (they already sit near the target) and are the ones
        an independent classifier misreads most, so they measure the base choice, not the
        gradient.
    keep_label : float >= 0
        Weight of the label penalty that keeps every poison plausible as its own label on
        the surrogate (checked independently by :func:`labkit.metrics.label_consistency`).
        0 switches it off. On development seeds, at 1.0 (default) the penalty more than the
        matching decides where the poisons go: 0.2 doubles success (0.20 to 0.42 with random
        bases, to 0.52 with ``bases="aligned"`` and no linear guard) with the label checks
        unchanged, for 1-3 points of clean accuracy; at 0 the poisons become adversarial
        examples of the deployed model and fine-tuning on them costs about 8 points.
    label_rule : {"margin", "loss"}
        The penalty: ``"margin"``, a hinge that holds each poison's logit margin above 1;
        ``"loss"``, a cap on each poison's cross-entropy at the ``loss_quantile`` of the
        attacker's own rows (no poison lossier than most clean rows, which is what a
        defender can see). On development seeds the loss cap at 0.9 or 0.99 left 0.10
        success: the poisons that work are the ones the deployed model finds hard.
    loss_quantile : float in (0, 1]
        See ``label_rule="loss"``.
    guards : sequence of nn.Module
        Extra models of the attacker's own (e.g. :func:`linear_guard`) on which the same
        hinge keeps the poisons' labels plausible.
    batch_clean : int >= 0
        How many clean rows the attacker expects the victim to train on alongside the
        poisons (the fine-tuning scenario says). The poisons then match the gradient of the
        whole batch: theirs plus that of ``batch_clean`` clean rows of the attacker's own
        (a random draw from ``data`` outside the bases), weighted by count. Without it the
        clean rows dilute a gradient matched on the poisons alone.
    minibatch : int >= 0
        If set, each crafting step matches the gradient of one random mini-batch of this
        many rows (poisons and the attacker's clean rows in the batch's proportions) instead
        of the whole batch: an expectation over the victim's unknown batch order. On
        development seeds it did not help (0.07 against 0.20), so it is off by default.
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
    if keep_label < 0 or minibatch < 0 or not 0 < loss_quantile <= 1:
        raise ValueError(f"need keep_label >= 0, minibatch >= 0 and loss_quantile in (0, 1]; got "
                         f"{keep_label}, {minibatch}, {loss_quantile}")
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
    aligned_with = None
    if bases == "aligned":              # what the attacker can compute: the deployed model's gradients
        s0 = surrogates[0].cpu().eval()
        p0 = {n: p.detach().clone().requires_grad_(True) for n, p in s0.named_parameters()}
        aligned_with = (s0, _flat_grad(s0, p0, torch.tensor(test.X[target_idx:target_idx + 1]),
                                       torch.tensor([target_class]), create_graph=False).detach())
    idx = _choose_bases(data, test.X[target_idx], target_class, n_poison, bases, rng, aligned_with)
    xb = torch.tensor(data.X[idx])
    yb = torch.tensor(data.y[idx])
    xt = torch.tensor(test.X[target_idx:target_idx + 1])
    at = torch.tensor([target_class])
    if batch_clean < 0:
        raise ValueError(f"batch_clean must be >= 0, got {batch_clean}")
    rest = np.setdiff1d(np.arange(len(data)), idx)
    clean_rows = rng.choice(rest, min(int(batch_clean), rest.size), replace=False) if batch_clean else rest[:0]
    w_poison = len(idx) / (len(idx) + clean_rows.size)
    if label_rule not in LABEL_RULES:
        raise ValueError(f"label_rule must be one of {LABEL_RULES}, got {label_rule!r}")
    xc, yc = torch.tensor(data.X[clean_rows]), torch.tensor(data.y[clean_rows])
    nets = []
    for s in surrogates:
        s = s.cpu().eval()
        params = {n: p.detach().clone().requires_grad_(True) for n, p in s.named_parameters()}
        gt = _flat_grad(s, params, xt, at, create_graph=False).detach()
        gc = (_flat_grad(s, params, xc, yc, create_graph=False).detach() * (1 - w_poison)
              if clean_rows.size else 0.0)
        cap = None
        if label_rule == "loss":          # no poison lossier than most of the attacker's clean rows
            with torch.no_grad():
                own = torch.cat([xb, xc]) if clean_rows.size else xb
                ys = torch.cat([yb, yc]) if clean_rows.size else yb
                losses = nn.functional.cross_entropy(functional_call(s, params, (own,)), ys, reduction="none")
            cap = float(torch.quantile(losses, loss_quantile))
        nets.append((s, params, gt / gt.norm(), gc, cap))
    gen = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
    best, best_loss, best_hist = None, np.inf, []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps * restarts, desc="brewing poisons", leave=False)
    for _ in range(restarts):
        delta = ((torch.rand(xb.shape, generator=gen) * 2 - 1) * eps).requires_grad_(True)
        opt = Adam([delta], lr=step_size)
        hist = []
        for _ in range(steps):
            x = (xb + delta).clamp(0, 1)
            loss, cos = 0.0, 0.0
            if minibatch:                 # one of the victim's mini-batches, drawn at random
                pick = torch.randperm(len(xb), generator=gen)[:max(1, round(minibatch * w_poison))]
                cpick = torch.randperm(len(xc), generator=gen)[:minibatch - len(pick)] if clean_rows.size else None
            for s, params, gt, gc, cap in nets:
                if minibatch:
                    n_p = len(pick)
                    n_c = 0 if cpick is None else len(cpick)
                    gp = n_p / (n_p + n_c) * _flat_grad(s, params, x[pick], yb[pick], create_graph=True)
                    if n_c:
                        gp = gp + n_c / (n_p + n_c) * _flat_grad(s, params, xc[cpick], yc[cpick], create_graph=False)
                else:
                    gp = w_poison * _flat_grad(s, params, x, yb, create_graph=True) + gc
                if objective == "cosine":
                    align = (gp @ gt) / gp.norm().clamp_min(1e-12)
                else:
                    tau = gp.detach().abs().mean().clamp_min(1e-12)
                    align = (gt * torch.tanh(gp / tau)).sum() / gt.abs().sum()
                cos += float(align.detach()) / len(nets)
                loss = loss + 1 - align
                if keep_label and cap is not None:
                    ce = nn.functional.cross_entropy(functional_call(s, params, (x,)), yb, reduction="none")
                    loss = loss + keep_label * torch.relu(ce - cap).mean()
                elif keep_label:
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
                                 "bases": bases, "objective": objective, "keep_label": keep_label,
                                 "label_rule": label_rule,
                                 "batch_clean": int(clean_rows.size),
                                 "alignment": round(_alignment_now(nets, xb + best, yb, w_poison), 4)},
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
    opt = Adam(net.parameters(), lr=0.01, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def _alignment_now(nets, x, yb, w_poison) -> float:
    vals = []
    for s, params, gt, gc, _ in nets:
        gp = w_poison * _flat_grad(s, params, x.clamp(0, 1), yb, create_graph=False) + gc
        vals.append(float(gp @ gt / gp.norm().clamp_min(1e-12)))
    return float(np.mean(vals))
