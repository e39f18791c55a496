"""Plots for the lessons. Every function draws on a new (or given) axes and returns the figure.

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .types import Dataset, PoisonedDataset

__all__ = ["image_grid", "poison_grid", "confusion", "sweep_curves", "score_histogram",
           "certified_curve", "dataset_preview", "run_summary",
           "results_curve", "activation_scatter", "strip_histogram", "metric_curves",
           "clustering_summary"]


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


# ---- lesson 2: backdoors --------------------------------------------------------------------

def activation_scatter(features, labels, is_poison, *, cls: int = 0, whiten: bool = True,
                       title: str = "", ax=None):
    """2-D view (first two principal axes) of class ``cls``'s penultimate activations.

    Clean rows in blue, poisons in red. ``whiten`` applies the same whitening the lesson's
    detectors use (:func:`labkit.defences.spectral_signature.class_whitener`).
    See Also: notebooks/02_backdoors.ipynb
    """
    from .defences.spectral_signature import class_whitener

    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.8, 3.8))
    labels = np.asarray(labels)
    rows = labels == cls
    R = np.asarray(features, np.float64)[rows]
    R = R - R.mean(0)
    if whiten:
        R = R @ class_whitener(features, labels, cls)
    _, _, vt = np.linalg.svd(R, full_matrices=False)
    Z = R @ vt[:2].T
    bad = np.asarray(is_poison, bool)[rows]
    ax.scatter(Z[~bad, 0], Z[~bad, 1], s=12, alpha=0.6, label=f"clean ({(~bad).sum()})")
    ax.scatter(Z[bad, 0], Z[bad, 1], s=14, alpha=0.8, color="crimson", marker="x",
               label=f"poison ({bad.sum()})")
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    ax.set_title(title or f"penultimate activations of rows labelled {cls}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def strip_histogram(guard, test: Dataset, poisoned: PoisonedDataset, *, bins: int = 30, ax=None):
    """STRIP entropies of clean test inputs and of triggered ones, with the threshold.

    See Also: notebooks/02_backdoors.ipynb
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.2))
    h_clean = guard.entropy(test.X)
    h_trig = guard.entropy(poisoned.trigger(test.X[test.y != poisoned.target_class]))
    edges = np.histogram_bin_edges(np.r_[h_clean, h_trig], bins=bins)
    ax.hist(h_clean, bins=edges, alpha=0.6, label=f"clean test inputs ({h_clean.size})")
    ax.hist(h_trig, bins=edges, alpha=0.7, color="crimson", label=f"triggered ({h_trig.size})")
    ax.axvline(guard.threshold, color="black", ls=":", label="threshold (reject left of it)")
    ax.set_xlabel("mean prediction entropy over superimpositions (nats)")
    ax.set_ylabel("inputs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def metric_curves(curves: dict, *, x: str = "rate", baseline: Optional[float] = None,
                  ylabel: str = "", title: str = "", ax=None):
    """Several measured quantities against one setting, from :func:`labkit.experiment.sweep`.

    ``curves`` maps a legend label to ``(results, metric)``: ``metric`` names a key of
    ``RunResult.detection`` (``"recall"``, ``"precision"``, ...) or a ``RunResult`` field
    (``"attack_success"``, ``"attack_success_defended"``, ...). ``x`` is read from each
    result's ``params``; several seeds at one ``x`` give a mean and a min-max band.
    See Also: notebooks/02_backdoors.ipynb
    """
    def value(r, metric):
        return r.detection[metric] if metric in (r.detection or {}) else getattr(r, metric)

    table = {}
    for label, (runs, metric) in curves.items():
        xs = sorted({r.params[x] for r in runs})
        table[label] = (xs, np.array([[value(r, metric) for r in runs if r.params[x] == v]
                                      for v in xs], float))
    return sweep_curves(table, xlabel=x, ylabel=ylabel, baseline=baseline, title=title, ax=ax)


def clustering_summary(det, *, ax=None):
    """Activation clustering per class: silhouette of the 2-means split (bars), the relative
    size of the smaller cluster (written on each bar) and the two thresholds.

    ``det`` is a :func:`labkit.defences.activation_clustering` result. Suspect classes (both
    rules passed) are drawn in red.
    See Also: notebooks/02_backdoors.ipynb
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.8, 3.2))
    per = det.params["per_class"]
    classes = sorted(per)
    sil = [per[c]["silhouette"] for c in classes]
    colors = ["crimson" if per[c]["suspect"] else "tab:blue" for c in classes]
    bars = ax.bar(range(len(classes)), sil, color=colors)
    ax.bar_label(bars, labels=[f"{per[c]['relative_size']:.2f}" for c in classes], fontsize=7)
    ax.axhline(det.params["min_silhouette"], color="black", ls=":", label="min silhouette")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("class (number on bar: relative size of the smaller cluster)")
    ax.set_ylabel("silhouette of the split")
    ax.set_ylim(0, 1)
    ax.set_title(f"suspect (red): silhouette >= {det.params['min_silhouette']} and "
                 f"smaller cluster <= {det.params['max_size']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
