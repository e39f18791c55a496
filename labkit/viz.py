"""Plots for the lessons. Every function draws on a new (or given) axes and returns the figure.

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .types import Dataset, PoisonedDataset

__all__ = ["image_grid", "poison_grid", "confusion", "sweep_curves", "score_histogram",
           "certified_curve", "dataset_preview", "run_summary",
           "results_curve"]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _show_image(ax, x):
    img = x.transpose(1, 2, 0) if x.shape[0] == 3 else x[0]
    ax.imshow(img, cmap=None if x.shape[0] == 3 else "gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(X, titles: Optional[Sequence[str]] = None, *, ncols: int = 8, highlight=None,
               size: float = 1.1, suptitle: str = ""):
    """A grid of images ``X`` shaped (n, C, H, W); ``highlight`` (bool per image) draws a red frame."""
    plt = _plt()
    n = len(X)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.15), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        _show_image(ax, np.asarray(X[i]))
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
        if highlight is not None and highlight[i]:
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2.5)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def poison_grid(poisoned: PoisonedDataset, *, n: int = 16, rng=0):
    """Poisoned rows (red frames) with "clean label -> poisoned label" titles.

    Shows up to ``n`` rows drawn from ``poison_idx`` (seeded by ``rng``).
    """
    from .types import as_rng

    idx = poisoned.poison_idx
    if idx.size > n:
        idx = np.sort(as_rng(rng).choice(idx, n, replace=False))
    titles = [f"{poisoned.clean.y[i]}\u2192{poisoned.y[i]}" if poisoned.clean.y[i] != poisoned.y[i]
              else f"label {poisoned.y[i]}" for i in idx]
    return image_grid(poisoned.X[idx], titles, highlight=np.ones(idx.size, bool),
                      suptitle=f"{poisoned.attack}: {idx.size} of {poisoned.n_poison} poisons shown")


def confusion(C: np.ndarray, *, title: str = "", ax=None):
    """Heat map of a confusion matrix ``C[true, predicted]`` with counts written in."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(C, cmap="Blues")
    for (i, j), v in np.ndenumerate(C):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > C.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(C.shape[1]))
    ax.set_yticks(range(C.shape[0]))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def sweep_curves(curves: dict, *, xlabel: str, ylabel: str, baseline: Optional[float] = None,
                 title: str = "", ax=None):
    """Line plot of ``{label: (xs, ys)}``; ``baseline`` draws the no-attack level dashed.

    ``ys`` may be 2-D (values x seeds): the mean is drawn with a min-max band.
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.6))
    for label, (xs, ys) in curves.items():
        ys = np.asarray(ys, float)
        mean = ys.mean(1) if ys.ndim == 2 else ys
        line, = ax.plot(xs, mean, marker="o", label=label)
        if ys.ndim == 2 and ys.shape[1] > 1:
            ax.fill_between(xs, ys.min(1), ys.max(1), alpha=0.15, color=line.get_color())
    if baseline is not None:
        ax.axhline(baseline, ls="--", color="gray", label="no attack")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def score_histogram(scores, is_poison, *, threshold: Optional[float] = None, title: str = "",
                    xlabel: str = "suspicion score (higher = more suspicious)", bins: int = 30, ax=None):
    """Overlaid histograms of ``scores`` for clean and poisoned rows."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.2))
    scores = np.asarray(scores, float)
    is_poison = np.asarray(is_poison, bool)
    edges = np.histogram_bin_edges(scores, bins=bins)
    ax.hist(scores[~is_poison], bins=edges, alpha=0.6, label=f"clean ({(~is_poison).sum()})")
    ax.hist(scores[is_poison], bins=edges, alpha=0.7, color="crimson", label=f"poison ({is_poison.sum()})")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls=":", label="threshold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def certified_curve(curves: dict, *, title: str = "DPA: certified accuracy", ax=None):
    """Certified accuracy against radius, ``{label: {radius: fraction}}``."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.4))
    for label, table in curves.items():
        r = sorted(table)
        ax.step(r, [table[k] for k in r], where="post", label=label)
    ax.set_xlabel("radius r (poisoned rows tolerated)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def dataset_preview(data: Dataset, n: int = 20):
    """``n`` evenly spaced images of ``data`` with their labels."""
    idx = np.linspace(0, len(data) - 1, n).astype(int)
    return image_grid(data.X[idx], [str(v) for v in data.y[idx]], ncols=10)


def run_summary(result, *, ax=None):
    """Bar chart of one :class:`~labkit.types.RunResult`: accuracy (and attack success)
    without attack, attacked, and attacked + defended; detection precision/recall in the title."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.2))
    names = ["no attack", "attacked", f"+ {result.defence}" if result.defence else "defended"]
    acc = [result.clean_accuracy_no_attack, result.clean_accuracy, result.clean_accuracy_defended]
    x = np.arange(3)
    bars = ax.bar(x - 0.2, [np.nan if a is None else a for a in acc], 0.4, label="clean accuracy")
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    if result.attack_success is not None:
        asr = [np.nan, result.attack_success, result.attack_success_defended]
        bars = ax.bar(x + 0.2, [np.nan if a is None else a for a in asr], 0.4, color="crimson",
                      label="attack success")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.12)
    ax.legend(fontsize=8, loc="lower left")
    title = f"{result.attack} {result.params}"
    if result.detection:
        d = result.detection
        title += f"\ndetection precision {d['precision']:.2f}, recall {d['recall']:.2f}"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def results_curve(results: dict, *, x: str = "rate", y: str = "clean_accuracy",
                  baseline: Optional[float] = None, title: str = "", ax=None):
    """Curves from sweeps: ``{label: [RunResult, ...]}`` with ``x`` read from each result's
    ``params`` and ``y`` from its fields (``clean_accuracy``, ``attack_success``, ...).
    Several seeds at one ``x`` are drawn as a mean with a min-max band."""
    curves = {}
    for label, runs in results.items():
        xs = sorted({r.params[x] for r in runs})
        ys = [[getattr(r, y) for r in runs if r.params[x] == v] for v in xs]
        curves[label] = (xs, np.array(ys, float))
    return sweep_curves(curves, xlabel=x, ylabel=y.replace("_", " "), baseline=baseline,
                        title=title, ax=ax)
