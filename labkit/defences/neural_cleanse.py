"""Model-level defences: inspect and repair a model you were handed, with a little clean data.

The defender holds the trained model and a small clean set; never the training set.

- :func:`reverse_trigger`: for one class, the smallest mask + pattern that sends clean inputs
  to that class (Neural Cleanse; Wang et al. 2019, IEEE S&P, "Neural Cleanse: Identifying
  and Mitigating Backdoor Attacks in Neural Networks").
- :func:`neural_cleanse`: a trigger per class, the anomaly index of each mask's L1 norm
  (median absolute deviation), the flagged class (or none).
- :func:`nc_unlearn`: stamp the recovered trigger on part of the clean set, keep the true
  labels, fine-tune (NC's unlearning repair).
- :func:`fine_pruning`: prune the hidden units that are dormant on clean data, then
  fine-tune (Liu, Dolan-Gavitt & Garg 2018, arXiv:1805.12185).
- :func:`clean_finetune`: plain fine-tuning on the clean set (the "won't it wash out?" baseline).

Every repair returns a :class:`Repair`: the repaired model and a dict of what the defence
found. How close a recovered trigger is to the real one is measured outside the defence
(:func:`labkit.metrics.trigger_overlap`, where the ground truth is allowed).

See Also: notebooks/02_backdoors.ipynb (the backdoor these defences face), labkit.defences.strip
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ..types import Dataset, as_rng

__all__ = ["reverse_trigger", "anomaly_index", "neural_cleanse", "NCResult", "Repair",
           "nc_unlearn", "fine_pruning", "clean_finetune", "stamp"]


@dataclass(frozen=True, eq=False)
class NCResult:
    """What Neural Cleanse found.

    Attributes
    ----------
    norms : array (n_classes,), L1 norm of each class's recovered mask.
    anomaly : array (n_classes,), :func:`anomaly_index` of the log norms (calibrated: of
        the log ratio to a reference model's norms); higher = a smaller trigger than the
        other classes = more suspicious.
    masks : array (n_classes, H, W) in [0, 1].
    patterns : array (n_classes, C, H, W) in [0, 1].
    flagged : int or None, the class whose anomaly index exceeds ``threshold`` (the largest).
    threshold : float
    """

    norms: np.ndarray
    anomaly: np.ndarray
    masks: np.ndarray
    patterns: np.ndarray
    flagged: object
    threshold: float

    def __repr__(self) -> str:
        return (f"NCResult(flagged={self.flagged}, max_anomaly={float(self.anomaly.max()):.2f}, "
                f"threshold={self.threshold})")

    def trigger(self, c: int) -> tuple:
        """``(mask (H, W), pattern (C, H, W))`` recovered for class ``c``."""
        return self.masks[c], self.patterns[c]


@dataclass(frozen=True, eq=False)
class Repair:
    """A repaired model and what the defence found (``report``: plain numbers, no arrays)."""

    model: object
    report: dict = field(default_factory=dict)
    inspection: object = None

    def __repr__(self) -> str:
        return f"Repair(report={self.report})"


def stamp(X, mask, pattern) -> np.ndarray:
    """``(1 - mask) * X + mask * pattern``: inputs ``(n, C, H, W)`` with a trigger applied."""
    X = np.asarray(X, np.float32)
    return ((1 - mask) * X + mask * pattern).astype(np.float32)


def reverse_trigger(model, X, target: int, *, steps: int = 200, lam: float = 0.02, lr: float = 0.1,
                    seed: int = 0) -> tuple:
    """The smallest mask and a pattern that send clean inputs ``X`` to class ``target``.

    Minimises ``mean CE(model((1 - m) * x + m * p), target) + lam * |m|_1`` over
    ``m = sigmoid(a)`` (H, W) and ``p = sigmoid(b)`` (C, H, W) with Adam, full batch.

    Returns
    -------
    (mask (H, W), pattern (C, H, W), success): success is the fraction of ``X`` sent to
    ``target`` by the final trigger.
    """
    import torch
    from torch import nn

    from ..optim import Adam

    X = torch.tensor(np.asarray(X, np.float32))
    C, H, W = X.shape[1:]
    gen = torch.Generator().manual_seed(int(seed))
    a = (torch.randn(H, W, generator=gen) * 0.1 - 2.0).requires_grad_(True)
    b = (torch.randn(C, H, W, generator=gen) * 0.1).requires_grad_(True)
    opt = Adam([a, b], lr=lr)
    t = torch.full((len(X),), int(target), dtype=torch.long)
    model = model.cpu().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            m, pat = torch.sigmoid(a), torch.sigmoid(b)
            loss = nn.functional.cross_entropy(model((1 - m) * X + m * pat), t) + lam * m.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            m, pat = torch.sigmoid(a), torch.sigmoid(b)
            success = float((model((1 - m) * X + m * pat).argmax(1) == t).float().mean())
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return m.detach().numpy(), pat.detach().numpy(), success


def anomaly_index(norms) -> np.ndarray:
    """``(median - norm) / (1.4826 * MAD)`` per class (higher = anomalously small trigger).

    The 1.4826 makes the MAD a consistent estimate of a normal standard deviation; Wang et
    al. flag a class whose index exceeds 2.
    """
    norms = np.asarray(norms, float)
    med = np.median(norms)
    mad = 1.4826 * np.median(np.abs(norms - med))
    return (med - norms) / max(mad, 1e-12)


def neural_cleanse(model, clean: Dataset, *, steps: int = 300, lam: float = 0.1, threshold: float = 2.0,
                   calibrate: bool = True, n_probe: int = 200, rng=None) -> NCResult:
    """Neural Cleanse over every class of ``model``, using only ``clean`` (the defender's data).

    Parameters
    ----------
    model : nn.Module, the model under suspicion.
    clean : Dataset, clean labelled images the defender holds.
    steps, lam : optimisation steps and L1 weight of :func:`reverse_trigger`.
    threshold : float, anomaly index above which a class is flagged (Wang et al.: 2).
    calibrate : bool
        ``False``: the paper's rule, the MAD of the raw mask norms. On 8x8 digits it flags
        naturally thin classes (a "1" needs only a few pixels) in clean models. ``True``:
        the defender also trains a reference model on its own clean set and scores
        ``log(norm / reference norm)`` per class, so a class cheap in every model is not
        anomalous; only a class cheap in *this* model is.
    n_probe : int, at most this many clean images are used (drawn with ``rng``).
    rng : None, int or Generator

    Returns
    -------
    NCResult

    References
    ----------
    Wang, Yao, Shan, Li, Viswanath, Zheng & Zhao 2019, IEEE S&P (Neural Cleanse).
    """
    if steps < 1 or lam <= 0:
        raise ValueError(f"need steps >= 1 and lam > 0, got {steps}, {lam}")
    rng = as_rng(rng)
    rows = rng.permutation(len(clean))[:n_probe]
    X = clean.X[np.sort(rows)]
    seed = int(rng.integers(2**31))
    masks, patterns, norms = [], [], []
    for c in range(clean.n_classes):
        m, p, _ = reverse_trigger(model, X[clean.y[np.sort(rows)] != c], c, steps=steps, lam=lam, seed=seed + c)
        masks.append(m)
        patterns.append(p)
        norms.append(float(m.sum()))
    norms = np.array(norms)
    score = np.log(norms)
    if calibrate:
        from ..models import train

        ref = train(clean, seed=seed, device="cpu")
        ref_norms = [float(reverse_trigger(ref, X[clean.y[np.sort(rows)] != c], c, steps=steps, lam=lam,
                                           seed=seed + c)[0].sum()) for c in range(clean.n_classes)]
        score = score - np.log(ref_norms)
    anomaly = anomaly_index(score)
    flagged = int(np.argmax(anomaly)) if anomaly.max() > threshold else None
    return NCResult(norms, anomaly, np.stack(masks), np.stack(patterns), flagged, float(threshold))


def _finetune(model, X, y, *, epochs: int, lr: float, seed: int, n_classes: int):
    from ..models import train

    data = Dataset(np.asarray(X, np.float32), np.asarray(y, np.int64), n_classes, "clean")
    return train(data, model=copy.deepcopy(model), epochs=epochs, lr=lr, batch_size=32, seed=seed, device="cpu")


def clean_finetune(model, clean: Dataset, *, epochs: int = 5, lr: float = 0.01, rng=None) -> Repair:
    """Plain fine-tuning of a copy of ``model`` on ``clean`` (no trigger search)."""
    rng = as_rng(rng)
    out = _finetune(model, clean.X, clean.y, epochs=epochs, lr=lr, seed=int(rng.integers(2**31)),
                    n_classes=clean.n_classes)
    return Repair(out, {"n_clean": len(clean), "epochs": epochs})


def nc_unlearn(model, clean: Dataset, *, epochs: int = 20, lr: float = 0.005, stamp_fraction: float = 0.3,
               steps: int = 300, lam: float = 0.1, threshold: float = 2.0, always: bool = False,
               rng=None) -> Repair:
    """Neural Cleanse, then unlearning: if a class is flagged, stamp its recovered trigger on
    ``stamp_fraction`` of the clean rows, keep their true labels, and fine-tune a copy of the
    model on the lot. If nothing is flagged the model is returned unchanged, unless
    ``always``: then the most anomalous class's trigger is unlearned anyway (cheap insurance:
    on clean inputs stamped with a non-trigger, true labels are what the model says already).

    ``report``: ``flagged_class`` (-1 for none), ``suspect_class`` (the most anomalous
    class, flagged or not), ``anomaly_index`` (the largest),
    ``mask_l1`` (the flagged class's, or the smallest), ``n_clean``.
    """
    if not 0 < stamp_fraction <= 1:
        raise ValueError(f"stamp_fraction must be in (0, 1], got {stamp_fraction}")
    rng = as_rng(rng)
    nc = neural_cleanse(model, clean, steps=steps, lam=lam, threshold=threshold, rng=rng)
    report = {"flagged_class": -1 if nc.flagged is None else nc.flagged,
              "suspect_class": int(np.argmax(nc.anomaly)),
              "anomaly_index": round(float(nc.anomaly.max()), 4),
              "mask_l1": round(float(nc.norms[nc.flagged if nc.flagged is not None else nc.norms.argmin()]), 4),
              "n_clean": len(clean)}
    if nc.flagged is None and not always:
        return Repair(model, report, nc)
    suspect = nc.flagged if nc.flagged is not None else int(np.argmax(nc.anomaly))
    X = clean.X.copy()
    rows = rng.permutation(len(clean))[:max(1, int(round(stamp_fraction * len(clean))))]
    X[rows] = stamp(X[rows], *nc.trigger(suspect))
    out = _finetune(model, X, clean.y, epochs=epochs, lr=lr, seed=int(rng.integers(2**31)),
                    n_classes=clean.n_classes)
    return Repair(out, report, nc)


def fine_pruning(model, clean: Dataset, *, prune_fraction: float = 0.8, epochs: int = 10, lr: float = 0.01,
                 rng=None) -> Repair:
    """Fine-pruning: zero the ``prune_fraction`` of last hidden units least active on the
    clean set (their incoming weights and bias, so they stay dead), then fine-tune on it.

    Works on :class:`labkit.models.Net` models whose ``features`` end in Linear -> ReLU.
    ``report``: ``n_pruned``, ``n_clean``.
    """
    import torch
    from torch import nn

    from ..models import embed

    if not 0 <= prune_fraction < 1:
        raise ValueError(f"prune_fraction must be in [0, 1), got {prune_fraction}")
    rng = as_rng(rng)
    lin = [m for m in model.features.modules() if isinstance(m, nn.Linear)]
    if not lin:
        raise ValueError("fine_pruning needs a model whose features end in a Linear layer")
    act = embed(model, clean.X).mean(0)                 # (hidden,) mean clean activation
    prune = np.argsort(act, kind="stable")[:int(round(prune_fraction * act.size))]
    pruned = copy.deepcopy(model).cpu()
    last = [m for m in pruned.features.modules() if isinstance(m, nn.Linear)][-1]
    idx = torch.as_tensor(prune, dtype=torch.long)

    def keep_dead(module, inputs, output):              # pruned units stay zero while fine-tuning
        output = output.clone()
        output[:, idx] = 0
        return output

    with torch.no_grad():
        last.weight[idx] = 0
        last.bias[idx] = 0
        pruned.head.weight[:, idx] = 0
    last.register_forward_hook(keep_dead)
    out = _finetune(pruned, clean.X, clean.y, epochs=epochs, lr=lr, seed=int(rng.integers(2**31)),
                    n_classes=clean.n_classes) if epochs > 0 else pruned
    return Repair(out, {"n_pruned": int(prune.size), "n_clean": len(clean)})
