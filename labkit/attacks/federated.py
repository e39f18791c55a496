"""Malicious client updates in federated learning, and the federated simulation they attack.

A server holds a global model; each round every client trains it for a few local steps on
its own shard of data and sends back its *update* (new weights minus old); the server
combines the updates with an aggregation rule (:mod:`labkit.defences.aggregation`) and
moves the global model by the result. Malicious clients send whatever they like:

- ``sign_flip``: the negative of their honest update, ``boost`` times larger (the classic
  Byzantine gradient of Blanchard et al. 2017, arXiv:1703.02757);
- ``scaling``: model replacement (Bagdasaryan, Veit, Hua, Estrin & Shmatikov 2020, "How to
  backdoor federated learning", AISTATS, arXiv:1807.00459): train on a poisoned objective
  (here every label shifted by one class) and scale the update by ``boost`` (default
  ``n_clients / malicious``) so that it survives averaging and replaces the global model;
- ``little_is_enough`` (Baruch, Baruch & Goldberg 2019, NeurIPS, arXiv:1902.06156): send
  ``mean - z * std`` of the honest updates, coordinate by coordinate: small enough to hide
  inside the spread of honest updates, consistent enough to add up over rounds.

Threat model: the attacker controls ``malicious`` of the ``n_clients`` clients (their data
and their messages), knows the protocol and, for ``little_is_enough``, the honest updates'
mean and spread (the omniscient variant; the paper notes they can be estimated from the
attackers' own data). The attacker wants the global model's accuracy to fall.

See Also: notebooks/04_gradient_manipulation.ipynb
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from .. import models
from ..defences.aggregation import aggregator, stack, unstack
from ..types import Dataset, as_rng

__all__ = ["federated_train", "federated_table", "shard", "malicious_updates", "alie_z", "FederatedResult",
           "ATTACKS", "run_federated"]

#: Malicious update kinds.
ATTACKS = ("sign_flip", "scaling", "little_is_enough")


def shard(data: Dataset, n_clients: int, *, iid: bool = True, rng=None) -> list:
    """Split the rows of ``data`` among ``n_clients`` clients.

    ``iid=True``: a random permutation cut into equal parts. ``iid=False``: the rows sorted by
    label and cut into ``2 * n_clients`` shards, two random shards per client, so each
    client sees about two classes (McMahan et al. 2017, arXiv:1602.05629).

    Returns
    -------
    list of arrays of int
        Row indices of each client (disjoint, covering every row).
    """
    if n_clients < 1 or n_clients > len(data):
        raise ValueError(f"n_clients must be in [1, {len(data)}], got {n_clients}")
    rng = as_rng(rng)
    if iid:
        return [np.sort(p) for p in np.array_split(rng.permutation(len(data)), n_clients)]
    order = np.argsort(data.y, kind="stable")
    shards = np.array_split(order, 2 * n_clients)
    pick = rng.permutation(2 * n_clients)
    return [np.sort(np.concatenate([shards[pick[2 * i]], shards[pick[2 * i + 1]]]))
            for i in range(n_clients)]


def alie_z(n_clients: int, malicious: int) -> float:
    """Baruch et al.'s ``z_max``: the largest shift (in honest standard deviations) that
    still leaves the attackers inside the majority: ``s = floor(n/2 + 1) - f``,
    ``z = Phi^-1((n - s) / n)``."""
    s = n_clients // 2 + 1 - malicious
    return float(NormalDist().inv_cdf(min(max((n_clients - s) / n_clients, 1e-6), 1 - 1e-6)))


def malicious_updates(kind: str, honest: torch.Tensor, own: torch.Tensor, *,
                      boost: float = 1.0, z: float = 1.0) -> torch.Tensor:
    """What the malicious clients send, as stacked flat updates ``(malicious, d)``.

    Parameters
    ----------
    kind : {"sign_flip", "scaling", "little_is_enough"}
    honest : tensor (n_honest, d)
        The honest clients' updates (used by ``little_is_enough`` only).
    own : tensor (malicious, d)
        The malicious clients' own updates: honest training for ``sign_flip``, training
        on the poisoned objective for ``scaling``.
    boost, z : float
        Scale of ``sign_flip`` / ``scaling``; shift of ``little_is_enough`` in standard
        deviations.
    """
    if kind == "sign_flip":
        return -boost * own
    if kind == "scaling":
        return boost * own
    if kind == "little_is_enough":
        mu, sd = honest.mean(0), honest.std(0, unbiased=False)
        return (mu - z * sd).expand_as(own).clone()
    raise ValueError(f"unknown malicious update {kind!r}; choose from {', '.join(ATTACKS)}")


@dataclass(frozen=True, repr=False, eq=False)
class FederatedResult:
    """One federated training run: the final global model and accuracy after every round."""

    model: nn.Module
    accuracy: np.ndarray          # (rounds,), test accuracy after each round (empty w/o test)
    malicious_idx: np.ndarray     # which clients were malicious
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        acc = f"{self.accuracy[-1]:.3f}" if self.accuracy.size else "-"
        return (f"FederatedResult(rule={self.params.get('rule')!r}, attack={self.params.get('attack')!r}, "
                f"malicious={self.malicious_idx.size}, final_accuracy={acc})")


def _local_update(net: nn.Module, global_params: dict, X: torch.Tensor, y: torch.Tensor, *,
                  epochs: int, lr: float, batch_size: int, gen: torch.Generator) -> dict:
    """Plain SGD from the global weights on one client's rows; returns new - old."""
    from torch.func import functional_call

    params = {n: p.clone().requires_grad_(True) for n, p in global_params.items()}
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), batch_size):
            b = order[start:start + batch_size]
            loss = nn.functional.cross_entropy(functional_call(net, params, (X[b],)), y[b])
            grads = torch.autograd.grad(loss, list(params.values()))
            params = {n: (p - lr * g).detach().requires_grad_(True)
                      for (n, p), g in zip(params.items(), grads)}
    return {n: (p.detach() - global_params[n]) for n, p in params.items()}


def federated_train(train: Dataset, *, test: Optional[Dataset] = None, n_clients: int = 10,
                    malicious: int = 0, attack: str = "sign_flip",
                    aggregate: Union[str, Callable, None] = "mean", rounds: int = 40,
                    local_epochs: int = 1, lr: float = 0.3, batch_size: int = 32,
                    server_lr: float = 1.0, iid: bool = True, boost: Optional[float] = None,
                    z: Optional[float] = None, model="mlp", seed: int = 0,
                    progress: bool = False) -> FederatedResult:
    """Federated averaging (McMahan et al. 2017) with ``malicious`` Byzantine clients.

    Parameters
    ----------
    train : Dataset
        Split among the clients with :func:`shard`.
    test : Dataset, optional
        Accuracy is measured on it after every round.
    n_clients, malicious : int
        ``0 <= malicious < n_clients``; the malicious clients are drawn with ``seed``.
    attack : {"sign_flip", "scaling", "little_is_enough"}
        What the malicious clients send (see :func:`malicious_updates`).
    aggregate : str, callable or None
        A rule name from :data:`labkit.defences.aggregation.RULES`, or an
        ``aggregate(grads, gen)`` callable (the slot of :func:`labkit.models.train`, so
        ``dp_sgd(...)`` works too); ``None`` is the mean.
    rounds, local_epochs, lr, batch_size : int / float
        Every round each client runs ``local_epochs`` of SGD (``lr``, ``batch_size``).
    server_lr : float
        The global model moves by ``server_lr * aggregate(updates)``.
    iid : bool
        Shards drawn at random (True) or about two classes per client (False).
    boost : float, optional
        Scale of malicious updates: default 5 for ``sign_flip`` and
        ``n_clients / malicious`` for ``scaling`` (model replacement).
    z : float, optional
        Shift for ``little_is_enough``; default :func:`alie_z` (Baruch et al.'s z_max).
    model : str or builder
        As in :func:`labkit.models.train`.
    seed : int
        Initialisation, shards, the choice of malicious clients, batch order.

    Returns
    -------
    FederatedResult
    """
    if not 0 <= malicious < n_clients:
        raise ValueError(f"malicious must be in [0, n_clients={n_clients}), got {malicious}")
    if attack not in ATTACKS:
        raise ValueError(f"unknown malicious update {attack!r}; choose from {', '.join(ATTACKS)}")
    if rounds < 1 or local_epochs < 1 or lr <= 0:
        raise ValueError(f"need rounds >= 1, local_epochs >= 1, lr > 0; got {rounds}, {local_epochs}, {lr}")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    if aggregate is None or isinstance(aggregate, str):
        aggregate = aggregator(aggregate or "mean")
    if boost is None:
        boost = 5.0 if attack == "sign_flip" else n_clients / max(malicious, 1)
    if z is None:
        z = alie_z(n_clients, malicious)
    parts = shard(train, n_clients, iid=iid, rng=rng)
    bad = np.sort(rng.choice(n_clients, malicious, replace=False))
    build = models.MODELS[model] if isinstance(model, str) else model
    net = build(train.image_shape, train.n_classes)
    models._init_(net, gen)
    worker = build(train.image_shape, train.n_classes)
    glob = {n: p.detach().clone() for n, p in net.named_parameters()}
    X, y = torch.tensor(np.asarray(train.X)), torch.tensor(train.y)
    y_bad = (y + 1) % train.n_classes                      # the scaling attacker's objective
    Xt = None if test is None else np.asarray(test.X)
    acc = []
    it = range(rounds)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="federated rounds", unit="round", leave=False)
    kw = dict(epochs=local_epochs, lr=lr, batch_size=batch_size, gen=gen)
    for _ in it:
        ups = []
        for c, rows in enumerate(parts):
            r = torch.as_tensor(rows)
            labels = y_bad[r] if (c in bad and attack == "scaling") else y[r]
            ups.append(_local_update(worker, glob, X[r], labels, **kw))
        U = stack({n: torch.stack([u[n] for u in ups]) for n in glob})      # (n_clients, d)
        if malicious:
            honest = torch.as_tensor(np.setdiff1d(np.arange(n_clients), bad))
            U[bad] = malicious_updates(attack, U[honest], U[bad], boost=boost, z=z)
        like = {n: torch.zeros((n_clients, *p.shape)) for n, p in glob.items()}
        step = aggregate(unstack_rows(U, like), gen)
        glob = {n: glob[n] + server_lr * step[n].to(glob[n].dtype) for n in glob}
        if Xt is not None:
            with torch.no_grad():
                for n, p in net.named_parameters():
                    p.copy_(glob[n])
            acc.append(float((models.predict(net.eval(), Xt) == test.y).mean()))
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(glob[n])
    params = {"n_clients": n_clients, "malicious": malicious, "attack": attack,
              "rule": getattr(aggregate, "rule", "custom"), "rounds": rounds, "iid": iid,
              "boost": boost, "z": round(z, 4),
              "malicious_rows": int(sum(parts[i].size for i in bad))}
    return FederatedResult(net.eval(), np.asarray(acc), bad, params)


def federated_table(train: Dataset, *, test: Dataset, rules=("mean", "median", "trimmed_mean", "krum"),
                    attacks=("none", "sign_flip", "scaling", "little_is_enough"), malicious: int = 2,
                    progress: bool = False, **kw) -> dict:
    """:func:`federated_train` for every aggregation rule under every attack.

    ``"none"`` in ``attacks`` means no malicious client. Returns ``{(attack, rule):
    FederatedResult}``; ``kw`` go to :func:`federated_train` (``rounds``, ``iid``, ``seed``).
    """
    grid = [(a, r) for a in attacks for r in rules]
    if progress:
        from tqdm.auto import tqdm
        grid = tqdm(grid, desc="federated table", leave=False)
    return {(a, r): federated_train(train, test=test, aggregate=r, malicious=0 if a == "none" else malicious,
                                    attack="sign_flip" if a == "none" else a, **kw)
            for a, r in grid}


def unstack_rows(U: torch.Tensor, like: dict) -> dict:
    """Stacked flat rows ``(n, d)`` -> ``{name: (n, *shape)}`` (inverse of ``stack``)."""
    out, start = {}, 0
    for name, g in like.items():
        size = g[0].numel()
        out[name] = U[:, start:start + size].reshape(g.shape)
        start += size
    return out


def run_federated(*, defence=None, dataset="digits", seed=0, rate=0.2, params=None,
                  defence_params=None, train_kw=None, split=None, progress=False):
    """The ``federated`` attack's experiment runner (``python -m labkit run federated``).

    ``clean_accuracy_no_attack``: the attack-free federated model (mean); ``clean_accuracy``:
    the attacked one under plain averaging; ``clean_accuracy_defended``: the attacked one
    under the ``defence``'s aggregation rule (a registered ``training`` defence whose
    ``apply`` returns ``{"aggregate": ...}``). ``attack_success`` is ``None`` (untargeted).
    ``malicious`` defaults to ``round(rate * n_clients)``; ``n_poison`` counts the
    malicious clients' rows. ``extra`` holds the defended rule's accuracy without attack.
    """
    from .. import data as data_mod
    from ..registry import get_defence
    from ..types import RunResult

    t0 = time.perf_counter()
    params = dict(params or {})
    n_clients = int(params.pop("n_clients", 10))
    malicious = int(params.pop("malicious", round(rate * n_clients)))
    split = split if split is not None else data_mod.load(dataset, seed=seed)
    model = (train_kw or {}).get("model", "mlp")
    kw = dict(test=split.test, n_clients=n_clients, model=model, seed=seed, progress=progress, **params)
    fed = lambda **k: federated_train(split.train, **{**kw, **k})       # noqa: E731
    base = fed(malicious=0, aggregate="mean")
    attacked = fed(malicious=malicious, aggregate="mean")
    out = dict(attack="federated", defence=defence, dataset=split.train.name, seed=seed,
               params={"rate": malicious / n_clients,
                       **{k: v for k, v in attacked.params.items() if k != "rule"}},
               n_train=len(split.train), n_poison=0,
               clean_accuracy_no_attack=float(base.accuracy[-1]),
               clean_accuracy=float(attacked.accuracy[-1]), attack_success=None)
    out["n_poison"] = out["params"].pop("malicious_rows")
    extra = {}
    if defence is not None:
        dspec = get_defence(defence)
        if dspec.kind != "training" or "aggregate" not in dspec.apply(**(defence_params or {})):
            raise ValueError(f"federated needs an aggregation defence (kind 'training' with an "
                             f"aggregate), got {defence!r}")
        rule = dspec.apply(**(defence_params or {}))["aggregate"]
        defended = fed(malicious=malicious, aggregate=rule)
        out["clean_accuracy_defended"] = float(defended.accuracy[-1])
        out["attack_success_defended"] = None
        extra["clean_accuracy_defended_no_attack"] = float(fed(malicious=0, aggregate=rule).accuracy[-1])
    return RunResult(**out, seconds=time.perf_counter() - t0, extra=extra)
