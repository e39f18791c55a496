"""How to combine gradients: one slot for robust aggregation rules and gradient shaping.

A federated server combines the updates of its clients; a training step combines the
per-sample gradients of its batch. Both are the same question, "many gradient vectors in,
one update out", so the lab answers it once. Every rule here is a plain function of a
stacked tensor ``U`` shaped ``(n, d)`` (one row per client or per sample) returning ``(d,)``:

============== ============================================ ==============================
rule           what it does                                 reference
============== ============================================ ==============================
mean           plain average (breakdown point 0)            McMahan et al. 2017
median         coordinate-wise median                       Yin et al. 2018 (1803.01498)
trimmed_mean   per coordinate, drop the ``b`` largest and    Yin et al. 2018 (1803.01498)
               ``b`` smallest values, average the rest
krum           the row closest to its ``n - f - 2`` nearest  Blanchard et al. 2017
               neighbours; multi-Krum averages the best m    (1703.02757)
norm_clip      clip every row to L2 norm ``max_norm``, then  Sun et al. 2019 (1911.07963)
               average
============== ============================================ ==============================

:func:`aggregator` turns a rule into the ``aggregate(grads, gen)`` callable that
:func:`labkit.models.train` and :func:`labkit.federated.federated_train` accept, where
``grads`` maps parameter names to tensors shaped ``(n, *param.shape)``. DP-SGD
(:mod:`labkit.defences.dp_sgd`) is ``norm_clip`` plus Gaussian noise in the same slot.

See Also: notebooks/04_gradient_manipulation.ipynb
"""
from __future__ import annotations

import inspect

from typing import Callable

import torch

__all__ = ["mean", "median", "trimmed_mean", "krum", "krum_select", "norm_clip", "clip_rows", "RULES",
           "aggregator", "stack", "unstack"]


def _check(U: torch.Tensor) -> torch.Tensor:
    if U.ndim != 2 or U.shape[0] == 0:
        raise ValueError(f"U must be shaped (n, d) with n >= 1, got {tuple(U.shape)}")
    return U


def mean(U: torch.Tensor) -> torch.Tensor:
    """Plain average of the rows of ``U`` (n, d) -> (d,). One outlier can move it anywhere."""
    return _check(U).mean(0)


def median(U: torch.Tensor) -> torch.Tensor:
    """Coordinate-wise median (the average of the two middle values when ``n`` is even).

    Yin, Chen, Ramchandran & Bartlett 2018, "Byzantine-robust distributed learning: towards
    optimal statistical rates", arXiv:1803.01498. Robust while fewer than half the rows are
    outliers in each coordinate.
    """
    S = _check(U).sort(0).values
    n = S.shape[0]
    return 0.5 * (S[(n - 1) // 2] + S[n // 2])


def trimmed_mean(U: torch.Tensor, *, trim: float = 0.2) -> torch.Tensor:
    """Coordinate-wise trimmed mean: drop the ``b = floor(trim * n)`` largest and smallest.

    Yin et al. 2018 (arXiv:1803.01498). With ``b`` at least the number of outliers, every
    output coordinate lies between the smallest and largest honest value.

    Parameters
    ----------
    U : tensor, shape (n, d)
    trim : float in [0, 0.5)
        Fraction trimmed from *each* end.
    """
    _check(U)
    if not 0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim}")
    n = U.shape[0]
    b = int(trim * n + 1e-9)
    return U.sort(0).values[b:n - b].mean(0)


def krum(U: torch.Tensor, *, f: int = 2, m: int = 1) -> torch.Tensor:
    """(Multi-)Krum: average the ``m`` rows with the smallest Krum scores.

    The score of row ``i`` is the sum of squared distances to its ``n - f - 2`` nearest
    other rows; an outlier is far from everyone and scores high. Blanchard, El Mhamdi,
    Guerraoui & Stainer 2017, "Machine learning with adversaries: Byzantine tolerant
    gradient descent", NeurIPS, arXiv:1703.02757. Needs ``n >= 2 f + 3``.

    Parameters
    ----------
    U : tensor, shape (n, d)
    f : int
        Number of Byzantine rows the rule is built to tolerate.
    m : int
        ``1`` is Krum; ``m > 1`` is multi-Krum.

    Notes
    -----
    The plain loop: ``for i: d = sorted(|U_i - U_j|^2 for j != i); score[i] = sum(d[:n-f-2])``.
    """
    _check(U)
    n = U.shape[0]
    if f < 0 or n < 2 * f + 3:
        raise ValueError(f"krum needs n >= 2f + 3 and f >= 0, got n={n}, f={f}")
    if not 1 <= m <= n:
        raise ValueError(f"m must be in [1, n={n}], got {m}")
    return U[krum_select(U, f=f, m=m)].mean(0)


def krum_select(U: torch.Tensor, *, f: int = 2, m: int = 1) -> torch.Tensor:
    """Indices of the ``m`` rows Krum would pick (lowest scores first)."""
    n = U.shape[0]
    D = torch.cdist(U.double(), U.double()).pow(2)                     # (n, n)
    D.fill_diagonal_(float("inf"))
    scores = D.sort(1).values[:, :n - f - 2].sum(1)                   # (n,)
    return torch.argsort(scores, stable=True)[:m]


def clip_rows(U: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale every row of ``U`` down to L2 norm at most ``max_norm`` (shorter rows unchanged)."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    norms = _check(U).norm(dim=1, keepdim=True)
    return U * (max_norm / norms.clamp_min(1e-12)).clamp(max=1.0)


def norm_clip(U: torch.Tensor, *, max_norm: float = 1.0) -> torch.Tensor:
    """Clip every row to L2 norm ``max_norm``, then average.

    Sun, Kairouz, Suresh & McMahan 2019, "Can you really backdoor federated learning?",
    arXiv:1911.07963. Bounds what any one row can contribute, but keeps its direction.
    """
    return clip_rows(U, max_norm).mean(0)


#: Rule name -> function ``(U, **params) -> (d,)``.
RULES: dict[str, Callable] = {"mean": mean, "median": median, "trimmed_mean": trimmed_mean,
                              "krum": krum, "norm_clip": norm_clip}


def stack(grads: dict) -> torch.Tensor:
    """``{name: (n, *shape)}`` -> one tensor (n, d) (parameters concatenated in dict order)."""
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], 1)


def unstack(v: torch.Tensor, like: dict) -> dict:
    """Inverse of :func:`stack`: ``v`` shaped ``(d,)`` or ``(n, d)`` -> ``{name: (*lead, *shape)}``,
    where ``like[name]`` is shaped ``(batch, *shape)`` (only its shape is read)."""
    out, start = {}, 0
    for name, g in like.items():
        size = g[0].numel()
        out[name] = v[..., start:start + size].reshape(*v.shape[:-1], *g.shape[1:])
        start += size
    return out


def aggregator(rule="mean", **params) -> Callable:
    """The ``aggregate(grads, gen)`` callable for :func:`labkit.models.train` and federated rounds.

    Parameters
    ----------
    rule : str or callable
        A name from :data:`RULES`, or a rule ``(U, **params) -> (d,)`` over stacked rows
        ``U`` (n, d); a rule that takes ``gen`` gets the training's random generator
        (e.g. :func:`labkit.defences.dp_sgd.clip_and_noise`).
    **params
        The rule's settings (``trim``, ``f``, ``m``, ``max_norm``, ...).

    Examples
    --------
    >>> model = lk.models.train(data, aggregate=aggregator("median"))   # doctest: +SKIP
    """
    if isinstance(rule, str):
        if rule not in RULES:
            raise ValueError(f"unknown aggregation rule {rule!r}; choose from {', '.join(RULES)}")
        fn, name = RULES[rule], rule
    else:
        fn, name = rule, getattr(rule, "__name__", "custom")
    takes_gen = "gen" in inspect.signature(fn).parameters
    probe = {"gen": torch.Generator().manual_seed(0)} if takes_gen else {}
    fn(torch.zeros(2 * params.get("f", 2) + 3, 1), **params, **probe)   # fail early on bad settings

    def aggregate(grads: dict, gen=None) -> dict:
        U = stack(grads)
        return unstack(fn(U, gen=gen, **params) if takes_gen else fn(U, **params), grads)

    aggregate.rule = name
    aggregate.params = dict(params)
    return aggregate
