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

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from . import models
from .defences.aggregation import aggregator, stack, unstack
from .rng import as_rng
from .types import Dataset, PoisonedDataset, make_poisoned

__all__ = ["malicious_clients", "federated_train", "shard", "malicious_updates", "alie_z",
           "FederatedResult", "MALICIOUS_UPDATES"]

#: Malicious update kinds.
MALICIOUS_UPDATES = ("sign_flip", "scaling", "little_is_enough")


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


def malicious_clients(data: Dataset, *, rate: float = 0.2, n_clients: int = 10, iid: bool = True,
                      update: str = "sign_flip", boost: Optional[float] = None,
                      z: Optional[float] = None, rng=None) -> PoisonedDataset:
    """The attack on federated learning: ``round(rate * n_clients)`` malicious clients.

    The attacker controls those clients' data and messages; what they send each round is
    ``update`` (see :func:`malicious_updates`; ``boost`` and ``z`` tune it). The data itself
    is unchanged: the returned :class:`~labkit.types.PoisonedDataset` marks the malicious
    clients' rows as ``poison_idx`` and carries the clients, the protocol's ``n_clients``
    and ``iid``, the update and ``shard_seed`` in ``params``; :func:`federated_train` with
    ``malicious_clients=`` and ``shard_seed=`` runs the rounds on the same shards.
    """
    if not 0 <= rate < 1:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    if update not in MALICIOUS_UPDATES:
        raise ValueError(f"unknown malicious update {update!r}; choose from {', '.join(MALICIOUS_UPDATES)}")
    shard_seed = int(as_rng(rng).integers(2 ** 31))
    draw = np.random.default_rng(shard_seed)           # as federated_train(shard_seed=...) draws
    parts = shard(data, n_clients, iid=iid, rng=draw)
    bad = np.sort(draw.choice(n_clients, int(round(rate * n_clients)), replace=False))
    rows = np.sort(np.concatenate([parts[i] for i in bad])) if bad.size else np.zeros(0, np.int64)
    return make_poisoned(data, idx=rows, attack="federated",
                         params={"rate": rate, "n_clients": n_clients, "iid": iid, "update": update,
                                 "malicious_clients": bad.tolist(), "boost": boost, "z": z,
                                 "shard_seed": shard_seed})


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
    raise ValueError(f"unknown malicious update {kind!r}; choose from {', '.join(MALICIOUS_UPDATES)}")


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
                    malicious: int = 0, malicious_clients=None, attack: str = "sign_flip",
                    aggregate: Union[str, Callable, None] = "mean", rounds: int = 40,
                    local_epochs: int = 1, lr: float = 0.3, batch_size: int = 32,
                    server_lr: float = 1.0, iid: bool = True, boost: Optional[float] = None,
                    z: Optional[float] = None, model="mlp", seed: int = 0,
                    shard_seed: Optional[int] = None, progress: bool = False) -> FederatedResult:
    """Federated averaging (McMahan et al. 2017) with ``malicious`` Byzantine clients.

    Parameters
    ----------
    train : Dataset
        Split among the clients with :func:`shard`.
    test : Dataset, optional
        Accuracy is measured on it after every round.
    n_clients, malicious : int
        ``0 <= malicious < n_clients``; the malicious clients are drawn with ``seed``.
    malicious_clients : sequence of int, optional
        Which clients are malicious (as :func:`malicious_clients` chose them); overrides
        ``malicious``.
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
    shard_seed : int, optional
        Draw the shards and the malicious clients from this seed instead (as
        :func:`malicious_clients` recorded it).

    Returns
    -------
    FederatedResult
    """
    if malicious_clients is not None:
        malicious = len(malicious_clients)
    if not 0 <= malicious < n_clients:
        raise ValueError(f"malicious must be in [0, n_clients={n_clients}), got {malicious}")
    if attack not in MALICIOUS_UPDATES:
        raise ValueError(f"unknown malicious update {attack!r}; choose from {', '.join(MALICIOUS_UPDATES)}")
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
    draw = rng if shard_seed is None else np.random.default_rng(shard_seed)
    parts = shard(train, n_clients, iid=iid, rng=draw)
    bad = np.sort(draw.choice(n_clients, malicious, replace=False)) if malicious_clients is None \
        else np.sort(np.asarray(malicious_clients, np.int64))
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
        step = aggregate(unstack(U, like), gen)
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
