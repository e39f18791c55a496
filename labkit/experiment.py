"""One experiment, end to end: attack -> train -> (detect -> repair -> retrain) -> measure.

:func:`run` is what ``python -m labkit run`` and the notebooks call; :func:`sweep` repeats
it over one setting (the curves in every lesson).

See Also: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

import functools
import json
import time
from typing import Iterable, Optional

import numpy as np

from . import data as data_mod
from . import metrics, models
from .registry import get_attack, get_defence
from .types import Dataset, Detection, PoisonedDataset, RunResult

__all__ = ["run", "sweep", "repair", "TRAIN_DEFAULTS"]

#: Training settings every experiment uses unless ``train_kw`` overrides them.
TRAIN_DEFAULTS = {"model": "mlp"}


def repair(view: Dataset, det: Detection, how: str = "drop") -> Dataset:
    """The defender's fix: drop flagged rows, or relabel them with ``det.labels``."""
    if how == "relabel":
        if det.labels is None:
            raise ValueError(f"{det.defence} proposes no labels; use how='drop'")
        return view.replace(y=det.labels)
    return view.subset(~det.flagged)


@functools.lru_cache(maxsize=64)
def _split(dataset: str, seed: int) -> data_mod.Split:
    return data_mod.load(dataset, seed=seed)


@functools.lru_cache(maxsize=64)
def _no_attack_accuracy(dataset: str, seed: int, train_items: tuple) -> float:
    split = _split(dataset, seed)
    return metrics.clean_accuracy(models.train(split.train, seed=seed, **dict(train_items)), split.test)


_VICTIMS: dict = {}


def _attack_and_train(fn, split, rate, rng, params, seed, train_kw, progress, cache_key=None):
    """Poison ``split.train`` and train the victim; reuse the last few results for the same
    settings (a widget moving only a defence setting need not re-run the attack). Settings
    that are not plain JSON (arrays, modules) are never cached."""
    key = None
    if cache_key is not None:
        try:
            key = json.dumps([cache_key, params, train_kw], sort_keys=True)
        except TypeError:
            key = None
    if key is not None and key in _VICTIMS:
        return _VICTIMS[key]
    poisoned = fn(split.train, rate=rate, rng=rng, **params)
    victim = models.train(poisoned, seed=seed, progress=progress, **train_kw)
    if key is not None:
        if len(_VICTIMS) >= 8:
            _VICTIMS.pop(next(iter(_VICTIMS)))
        _VICTIMS[key] = (poisoned, victim)
    return poisoned, victim


def run(attack: str, *, defence: Optional[str] = None, dataset: str = "digits", seed: int = 0,
        rate: Optional[float] = None, params: Optional[dict] = None,
        defence_params: Optional[dict] = None, train_kw: Optional[dict] = None,
        split: Optional[data_mod.Split] = None, progress: bool = False) -> RunResult:
    """Run one attack (and optionally one defence) and measure everything.

    Parameters
    ----------
    attack : str
        A name from :data:`labkit.registry.ATTACKS`.
    defence : str, optional
        A name from :data:`labkit.registry.DEFENCES`.
    dataset : str
        A name from :data:`labkit.data.LOADERS`; ignored when ``split`` is given.
    seed : int
        Seeds the split, the attack and every training run.
    rate : float, optional
        The attack's budget; defaults to the attack's ``default_rate``.
    params, defence_params : dict
        Extra keyword arguments for the attack and the defence.
    train_kw : dict
        Overrides of :data:`TRAIN_DEFAULTS` passed to :func:`labkit.models.train`.
    split : Split, optional
        Use this train/test pair instead of loading ``dataset``.

    Returns
    -------
    RunResult
    """
    spec = get_attack(attack)
    dspec = get_defence(defence) if defence is not None else None
    params = {**spec.defaults, **(params or {})}
    rate = spec.default_rate if rate is None else rate
    train_kw = {**TRAIN_DEFAULTS, **(train_kw or {})}
    if spec.runner is not None:
        return spec.runner(defence=defence, dataset=dataset, seed=seed, rate=rate, params=params,
                           defence_params=defence_params or {}, train_kw=train_kw, split=split,
                           progress=progress)
    t0 = time.perf_counter()
    # the attack draws from default_rng(seed), exactly as `attack(..., rng=seed)` would; the
    # defence has its own stream, so a cached attack leaves the defence's randomness unchanged
    rng, defence_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    cached = split is None
    if cached:
        split = _split(dataset, seed)
        acc_clean = _no_attack_accuracy(dataset, seed, tuple(sorted(train_kw.items())))
    else:
        acc_clean = metrics.clean_accuracy(models.train(split.train, seed=seed, **train_kw), split.test)
    poisoned, victim = _attack_and_train(spec.fn, split, rate, rng, params, seed, train_kw, progress,
                                         cache_key=(attack, dataset, seed, rate) if cached else None)
    result = dict(
        attack=attack, defence=defence, dataset=split.train.name, seed=seed,
        params={"rate": rate, **poisoned.params}, n_train=len(poisoned), n_poison=poisoned.n_poison,
        clean_accuracy_no_attack=acc_clean, clean_accuracy=metrics.clean_accuracy(victim, split.test),
        attack_success=metrics.attack_success_rate(victim, poisoned, split.test))
    found, extra = None, {}
    if dspec is not None:
        view = poisoned.as_dataset()
        dkw = defence_params or {}
        if dspec.kind == "detector":
            found = dspec.apply(view, victim, defence_rng, **dkw)
            result["detection"] = metrics.detection_report(found, poisoned)
            defended = models.train(repair(view, found, dspec.repair), seed=seed, **train_kw)
        elif dspec.kind == "training":
            defended = models.train(view, seed=seed, **{**train_kw, **dspec.apply(**dkw)})
        elif dspec.kind == "inference":  # filters test inputs; a rejected input is never an answer
            defended = dspec.apply(view, victim, defence_rng, **dkw)
            extra = dspec.report(defended, split.test, poisoned)
        else:
            defended = dspec.apply(view, seed, **dkw)
        if dspec.report is not None and dspec.kind != "inference":
            extra = dspec.report(defended, split.test)
        result["clean_accuracy_defended"] = metrics.clean_accuracy(defended, split.test)
        result["attack_success_defended"] = metrics.attack_success_rate(defended, poisoned, split.test)
    return RunResult(**result, seconds=time.perf_counter() - t0, extra=extra,
                     poisoned=poisoned, found=found)


def sweep(attack: str, name: str, values: Iterable, *, seeds: Iterable[int] = (0,),
          progress: bool = True, **run_kw) -> list[RunResult]:
    """:func:`run` for every value of one setting and every seed.

    ``name`` is ``"rate"`` or a key of the attack's ``params``; ``run_kw`` go to :func:`run`.
    Returns the results in order (values outer, seeds inner).
    """
    from tqdm.auto import tqdm

    values, seeds = list(values), list(seeds)
    grid = [(v, s) for v in values for s in seeds]
    out = []
    for v, s in tqdm(grid, desc=f"sweep {attack} over {name}", disable=not progress, leave=False):
        kw = dict(run_kw)
        if name == "rate":
            kw["rate"] = v
        else:
            kw["params"] = {**kw.get("params", {}), name: v}
        out.append(run(attack, seed=s, **kw))
    return out
