"""Plots for the lessons. Every function draws on a new (or given) axes and returns the figure.

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .types import Dataset, PoisonedDataset

__all__ = ["image_grid", "poison_grid", "confusion", "sweep_curves", "score_histogram",
           "certified_curve", "dataset_preview", "run_summary",
           "results_curve", "activation_scatter", "class_projection", "projection_scatter",
           "strip_histogram", "entropy_histogram", "metric_curves", "human", "describe",
           "clustering_summary", "clean_label_pairs", "feature_map",
           "alignment_curve", "success_bars", "federated_curves", "federated_heatmap", "gradient_trial",
           "recovered_triggers", "word_weights", "constant_count", "retrieved_passages"]


def _plt():
    import matplotlib.pyplot as plt

    return plt


#: How the lessons' settings read in titles and axis labels.
_NAMES = {"label_flip": "label flipping", "backdoor": "backdoor", "clean_label": "clean-label poisoning",
          "gradient_matching": "gradient matching", "federated": "federated learning",
          "knn_sanitisation": "k-NN sanitisation", "spectral_signature": "spectral signature",
          "activation_clustering": "activation clustering", "strip": "STRIP",
          "confident_learning": "confident learning", "dp_sgd": "DP-SGD", "dpa": "DPA",
          "rate": "poison rate", "n_poisons": "poisons", "eps": "eps", "target_class": "target class",
          "expected_rate": "expected rate", "removal_factor": "removal factor",
          "min_silhouette": "min silhouette", "max_size": "max size", "frr": "target FRR",
          "none": "no attack", "little_is_enough": "a little is enough", "alpha": "opacity",
          "rag_poison": "RAG poisoning", "per_question": "passages per question", "n_targets": "target questions",
          "top_k": "passages read", "near_duplicates": "near-duplicate filter", "signed_passages": "signed passages",
          "robust_rag": "isolate-then-aggregate"}


def human(name) -> str:
    """A setting's or method's name as a learner reads it (``"knn_sanitisation"`` ->
    ``"k-NN sanitisation"``; unknown names lose their underscores)."""
    return _NAMES.get(str(name), str(name).replace("_", " "))


def _value(v) -> str:
    if isinstance(v, (list, tuple, np.ndarray)):
        return ", ".join(_value(x) for x in np.ravel(np.asarray(v, dtype=object)))
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def describe(params: dict, *, skip=()) -> str:
    """``{"rate": 0.05, "trigger": "patch", "target_class": [8]}`` -> ``"poison rate 5%,
    trigger patch, target class 8"``: settings as words, without brackets or braces."""
    parts = []
    for k, v in params.items():
        if k in skip or v is None or isinstance(v, dict) or callable(v):
            continue
        if k == "rate" and isinstance(v, (int, float, np.floating)):
            parts.append(f"{human(k)} {float(v):.1%}".replace(".0%", "%"))
        else:
            parts.append(f"{human(k)} {_value(v)}")
    return ", ".join(parts)


def _wrap(text: str, width: int = 72) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def _legend(ax, *, outside: bool = False, **kw):
    """A legend that does not cover the data: outside on the right, or "best" with a frame."""
    if outside:
        return ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                         frameon=False, **kw)
    return ax.legend(fontsize=8, loc="best", framealpha=0.85, **kw)


#: Pixel images are drawn as stored: 0 black, 1 white. A "white square" trigger or a "bright
#: corner" in the lessons' words is white on screen, and "brighter" in a difference image
#: (:func:`clean_label_pairs`, red) means whiter here.
IMAGE_CMAP = "gray"


def _show_image(ax, x):
    img = x.transpose(1, 2, 0) if x.shape[0] == 3 else x[0]
    ax.imshow(img, cmap=None if x.shape[0] == 3 else IMAGE_CMAP, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(X, titles: Optional[Sequence[str]] = None, *, ncols: int = 8, highlight=None,
               size: float = 1.1, suptitle: str = ""):
    """A grid of images ``X`` shaped (n, C, H, W); ``highlight`` (bool per image) draws a red frame."""
    plt = _plt()
    n = len(X)
    nrows = max(1, int(np.ceil(n / ncols)))
    title_room = 0.35 if titles is not None else 0.1       # inches above each image for its title
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + title_room) + 0.4 * bool(suptitle)),
                             squeeze=False)
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
                      suptitle=f"{human(poisoned.attack)}: {idx.size} of {poisoned.n_poison} poisons shown")


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
    ax.set_title(title or f"{ylabel} against {xlabel}".strip())
    ax.grid(alpha=0.3)
    _legend(ax)
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
    _legend(ax)
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
    _legend(ax)
    fig.tight_layout()
    return fig


def dataset_preview(data: Dataset, n: int = 20):
    """``n`` evenly spaced images of ``data`` with their labels."""
    idx = np.linspace(0, len(data) - 1, n).astype(int)
    return image_grid(data.X[idx], [str(v) for v in data.y[idx]], ncols=10)


def run_summary(result, *, note: str = "", ax=None):
    """Bar chart of one :class:`~labkit.types.RunResult`: clean accuracy (and attack success)
    without attack, attacked, and (with a defence) attacked + defended; the settings and the
    detection precision/recall in the title, then ``note`` (one more line, e.g. a widget's
    settings)."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.4, 3.4))
    names = ["no attack", "attacked"]
    acc = [result.clean_accuracy_no_attack, result.clean_accuracy]
    asr = [np.nan, result.attack_success]
    if result.defence:
        names.append(f"attacked, then\n{human(result.defence)}")
        acc.append(result.clean_accuracy_defended)
        asr.append(result.attack_success_defended)
    x = np.arange(len(names))
    nan = lambda vals: [np.nan if v is None else v for v in vals]      # noqa: E731
    bars = ax.bar(x - 0.2, nan(acc), 0.4, label="clean accuracy")
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    if result.attack_success is not None:
        bars = ax.bar(x + 0.2, nan(asr), 0.4, color="crimson", label="attack success")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("fraction of test inputs")
    ax.set_xlabel("training data")
    _legend(ax, outside=True)
    title = f"{human(result.attack)}: {describe(result.params)}"
    found = result.verdict
    if result.defence and found is not None:
        own = {k: v for k, v in found.params.items()
               if isinstance(v, (int, float, str)) and not isinstance(v, bool) and k != "suspect_class"}
        if own:
            title += f"\n{human(result.defence)}: {describe(own)}"
    if result.detection:
        d = result.detection
        prec = "n/a (nothing flagged)" if d["precision"] is None else f"{d['precision']:.2f}"
        title += f"\ndetection precision {prec}, recall {d['recall']:.2f}"
    if note:
        title += f"\n{note}"
    ax.set_title(_wrap(title, 70), fontsize=9)
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
    return sweep_curves(curves, xlabel=human(x), ylabel=y.replace("_", " "), baseline=baseline,
                        title=title, ax=ax)


# ---- lesson 2: backdoors --------------------------------------------------------------------

def projection_scatter(Z, is_poison, *, title: str = "", xlabel: str = "principal axis 1",
                       ylabel: str = "principal axis 2", ax=None):
    """Scatter of 2-D coordinates ``Z`` (n, 2): clean rows in blue, poisons as red crosses.

    See Also: notebooks/02_backdoors.ipynb
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.8, 3.8))
    Z = np.asarray(Z, float)
    bad = np.asarray(is_poison, bool)
    ax.scatter(Z[~bad, 0], Z[~bad, 1], s=12, alpha=0.6, label=f"clean ({(~bad).sum()})")
    ax.scatter(Z[bad, 0], Z[bad, 1], s=14, alpha=0.8, color="crimson", marker="x",
               label=f"poison ({bad.sum()})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    _legend(ax)
    fig.tight_layout()
    return fig


def class_projection(features, labels, cls: int, *, whiten: bool = True) -> np.ndarray:
    """Class ``cls``'s rows of ``features`` on their first two principal axes, (n_cls, 2),
    after the whitening the lesson's detectors use
    (:func:`labkit.defences.spectral_signature.class_whitener`) when ``whiten``."""
    from .defences.spectral_signature import whitened_class

    labels = np.asarray(labels)
    if whiten:
        R = whitened_class(features, labels, cls)
    else:
        R = np.asarray(features, np.float64)[labels == cls]
        R = R - R.mean(0)
    _, _, vt = np.linalg.svd(R, full_matrices=False)
    return R @ vt[:2].T


def activation_scatter(features, labels, is_poison, *, cls: int = 0, whiten: bool = True,
                       title: str = "", ax=None):
    """2-D view (first two principal axes) of class ``cls``'s penultimate activations.

    A thin wrapper: :func:`class_projection` computes the coordinates,
    :func:`projection_scatter` draws them.
    See Also: notebooks/02_backdoors.ipynb
    """
    rows = np.asarray(labels) == cls
    Z = class_projection(features, labels, cls, whiten=whiten)
    kind = "whitened " if whiten else ""
    return projection_scatter(Z, np.asarray(is_poison, bool)[rows], ax=ax,
                              title=title or f"{kind}penultimate activations of the rows labelled {cls}")


def entropy_histogram(clean, triggered, threshold: float, *, bins: int = 30,
                      title: str = "STRIP: clean inputs keep their entropy, triggered ones lose it",
                      ax=None):
    """Histograms of STRIP entropies of clean and triggered test inputs, with the threshold.

    See Also: notebooks/02_backdoors.ipynb
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.2))
    h_clean, h_trig = np.asarray(clean, float), np.asarray(triggered, float)
    edges = np.histogram_bin_edges(np.r_[h_clean, h_trig], bins=bins)
    ax.hist(h_clean, bins=edges, alpha=0.6, label=f"clean test inputs ({h_clean.size})")
    ax.hist(h_trig, bins=edges, alpha=0.7, color="crimson", label=f"triggered ({h_trig.size})")
    ax.axvline(threshold, color="black", ls=":", label="threshold (reject left of it)")
    ax.set_xlabel("mean prediction entropy over superimpositions (nats)")
    ax.set_ylabel("inputs")
    ax.set_title(title, fontsize=10)
    _legend(ax)
    fig.tight_layout()
    return fig


def strip_histogram(guard, test: Dataset, poisoned: PoisonedDataset, *, bins: int = 30, ax=None):
    """STRIP entropies of clean test inputs and of triggered ones, with the threshold.

    A thin wrapper: the guard scores the inputs, :func:`entropy_histogram` draws them.
    See Also: notebooks/02_backdoors.ipynb
    """
    h_clean = guard.entropy(test.X)
    h_trig = guard.entropy(poisoned.trigger(test.X[test.y != poisoned.target_class]))
    return entropy_histogram(h_clean, h_trig, guard.threshold, bins=bins, ax=ax)


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
    return sweep_curves(table, xlabel=human(x), ylabel=ylabel or "fraction", baseline=baseline,
                        title=title, ax=ax)


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
    ax.set_title(f"suspect (red): silhouette >= {det.params['min_silhouette']:.3g} and "
                 f"smaller cluster <= {det.params['max_size']:.3g}", fontsize=9)
    _legend(ax, outside=True)
    fig.tight_layout()
    return fig


# ---- lesson 3: clean-label poisoning -------------------------------------------------------

def clean_label_pairs(poisoned: PoisonedDataset, test: Dataset, *, n: int = 6, magnify: float = 2.0):
    """The target, then ``n`` bases before / after poisoning / perturbation x ``magnify``.

    Row 1: the target (test image); rows 2-4: bases, poisons (same label), and the change
    shown as 0.5 + magnify * (poison - base) on a red-blue map: red = brighter, blue = darker,
    white = unchanged (the suptitle says so too).
    """
    plt = _plt()
    idx = poisoned.poison_idx[:n]
    n = len(idx)
    fig, axes = plt.subplots(4, max(n, 1), figsize=(1.25 * max(n, 1), 5.4), squeeze=False)
    t = int(poisoned.target_idx[0])
    for ax in axes[0]:
        ax.axis("off")
    _show_image(axes[0, 0], test.X[t])
    axes[0, 0].axis("on")
    axes[0, 0].set_title(f"target: a {test.y[t]}\nwanted: {_value(poisoned.target_class)}", fontsize=8)
    for j, i in enumerate(idx):
        base, pois = poisoned.clean.X[i], poisoned.X[i]
        _show_image(axes[1, j], base)
        _show_image(axes[2, j], pois)
        axes[3, j].imshow(np.clip(0.5 + magnify * (pois - base)[0], 0, 1), cmap="RdBu_r", vmin=0, vmax=1)
        axes[3, j].set_xticks([])
        axes[3, j].set_yticks([])
        axes[1, j].set_title(f"base, label {poisoned.clean.y[i]}", fontsize=7)
        axes[2, j].set_title(f"poison, label {poisoned.y[i]}", fontsize=7)
        axes[3, j].set_title(f"change x{magnify:g}", fontsize=7)
    fig.suptitle(f"max |change| = {np.abs(poisoned.X - poisoned.clean.X).max():.2f}; bottom row: "
                 f"red = brighter, blue = darker, white = unchanged", fontsize=9)
    fig.tight_layout()
    return fig


def feature_map(features, labels, is_poison, target_feature, *, classes=None, title: str = "", ax=None):
    """2-D PCA view of feature vectors: classes as light dots, poisons as red crosses, the
    target as a black star. ``classes`` limits the dots (e.g. the target's and the base's)."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.2, 4.2))
    feats = np.asarray(features, float)
    labels = np.asarray(labels)
    is_poison = np.asarray(is_poison, bool)
    keep = np.isin(labels, classes) | is_poison if classes is not None else np.ones(len(labels), bool)
    mu = feats[keep].mean(0)
    _, _, vt = np.linalg.svd(feats[keep] - mu, full_matrices=False)
    proj = lambda z: (np.atleast_2d(z) - mu) @ vt[:2].T
    for c in (classes if classes is not None else np.unique(labels)):
        rows = (labels == c) & ~is_poison
        xy = proj(feats[rows])
        ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.35, label=f"class {c}")
    xy = proj(feats[is_poison])
    ax.scatter(xy[:, 0], xy[:, 1], marker="x", color="crimson", s=40, label="poisons")
    xy = proj(target_feature)
    ax.scatter(xy[:, 0], xy[:, 1], marker="*", color="black", s=220, label="target")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    ax.set_title(title or "feature space (PCA of the victim's features)", fontsize=9)
    _legend(ax, outside=True)
    fig.tight_layout()
    return fig


# ---- lesson 4: gradient manipulation --------------------------------------------------------

def alignment_curve(histories, *, labels=None, title: str = "gradient alignment while crafting",
                    ylabel: str = "alignment (1 = perfect)", ax=None):
    """Alignment of poison and target gradients against crafting step, one line per run."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.2))
    histories = [histories] if np.ndim(histories[0]) == 0 else histories
    for i, h in enumerate(histories):
        ax.plot(np.arange(1, len(h) + 1), h, lw=1.5,
                label=labels[i] if labels is not None else None)
    ax.set_xlabel("crafting step")
    ax.set_ylabel(ylabel)
    ax.set_ylim(min(0.0, float(np.min([np.min(h) for h in histories]))), 1.0)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    if labels is not None:
        _legend(ax)
    fig.tight_layout()
    return fig


def success_bars(values: dict, *, ylabel: str = "targets flipped", xlabel: str = "training data poisoned by",
                 title: str = "", ax=None):
    """Bars of ``{label: fraction}`` with the value written on each bar."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.0, 3.0))
    names = list(values)
    vals = [float(values[k]) for k in names]
    bars = ax.bar(range(len(vals)), vals, color=[f"C{i}" for i in range(len(vals))])
    for b, v in zip(bars, vals):
        ax.text(b.get_x() + b.get_width() / 2, v + 0.02, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def federated_curves(table: dict, *, attack: str = "sign_flip", title: str = "", ax=None):
    """Test accuracy over federated rounds for every rule under ``attack``.

    ``table`` maps ``(attack, rule)`` to a :class:`labkit.federated.FederatedResult`
    (as :func:`labkit.lessons.l04.federated_table` returns); ``("none", "mean")`` is
    drawn dashed as the attack-free reference.
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.8, 3.4))
    if ("none", "mean") in table:
        acc = table["none", "mean"].accuracy
        ax.plot(np.arange(1, acc.size + 1), acc, ls="--", color="gray", label="no attack (mean)")
    for (att, rule), res in table.items():
        if att == attack:
            ax.plot(np.arange(1, res.accuracy.size + 1), res.accuracy, label=human(rule))
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"federated training under the {human(attack)} attack", fontsize=10)
    _legend(ax, outside=True, title="aggregation rule")
    fig.tight_layout()
    return fig


def federated_heatmap(table: dict, *, title: str = "final accuracy (rule x attack)", ax=None):
    """Final test accuracy of every ``(attack, rule)`` in ``table`` as an annotated grid."""
    plt = _plt()
    attacks = list(dict.fromkeys(a for a, _ in table))
    rules = list(dict.fromkeys(r for _, r in table))
    M = np.full((len(rules), len(attacks)), np.nan)
    for (a, r), res in table.items():
        M[rules.index(r), attacks.index(a)] = res.accuracy[-1]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(1.3 * len(attacks) + 2, 0.5 * len(rules) + 1.5))
    ax.imshow(M, cmap="RdYlGn", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(M):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    import textwrap

    ax.set_xticks(range(len(attacks)))
    ax.set_xticklabels([textwrap.fill(human(a), 10) for a in attacks], fontsize=8)   # no overlap
    ax.set_yticks(range(len(rules)))
    ax.set_yticklabels([human(r) for r in rules], fontsize=8)
    ax.set_xlabel("malicious clients' update")
    ax.set_ylabel("aggregation rule")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def gradient_trial(trial: dict, test: Dataset, *, n: int = 6, magnify: float = 4.0, note: str = ""):
    """A :func:`labkit.lessons.l04.explore` trial: target, bases, poisons, changes,
    and the adversarial class's probability before / after poisoning / after the control;
    ``note`` adds a line to the title."""
    fig = clean_label_pairs(trial["poisoned"], test, n=n, magnify=magnify)
    a = int(np.ravel(trial["poisoned"].target_class)[0])
    fig.suptitle(f"chance the target is read as {a}: deployed model {trial['prob_deployed']:.2f} | "
                 f"fine-tuned on the poisons {trial['prob_victim']:.2f} | on noise (control) "
                 f"{trial['prob_control']:.2f}" + (f"\n{note}" if note else ""), fontsize=9)
    fig.tight_layout()
    return fig


def recovered_triggers(masks, patterns, *, anomaly=None, real=None, suspect=None):
    """Neural Cleanse's recovered trigger per class (``mask * pattern``, (n_classes, H, W)
    and (n_classes, C, H, W)), titled with each class's anomaly index; ``real`` (an image
    (C, H, W), e.g. a trigger stamped on a black image) is drawn last for comparison and
    ``suspect`` (a class) gets a red frame.

    See Also: labkit.defences.neural_cleanse
    """
    masks, patterns = np.asarray(masks, np.float32), np.asarray(patterns, np.float32)
    imgs = list(masks[:, None] * patterns)
    titles = [f"class {c}" + (f"\n{anomaly[c]:.1f}" if anomaly is not None else "") for c in range(len(masks))]
    highlight = [c == suspect for c in range(len(masks))]
    if real is not None:
        imgs.append(np.asarray(real, np.float32))
        titles.append("real\ntrigger")
        highlight.append(False)
    return image_grid(np.stack(imgs), titles, ncols=len(imgs), highlight=highlight,
                      suptitle="recovered trigger per class (anomaly index)" if anomaly is not None else "")


def word_weights(model, cls: int, *, n: int = 12, highlight=(), class_name: str = "", ax=None):
    """The ``n`` words that pull a text classifier hardest towards class ``cls``: bars of the
    logistic regression's weight for the class (:class:`labkit.models.BagOfWordsClassifier`),
    the words in ``highlight`` (a trigger) in red."""
    plt = _plt()
    from .text import vocabulary

    coef = np.asarray(model.clf.coef_, float)
    row = coef[list(model.clf.classes_).index(cls)] if coef.shape[0] > 1 else coef[0] * (1 if cls else -1)
    top = np.argsort(-row, kind="stable")[:n][::-1]
    vocab = vocabulary()
    names = [vocab[j] for j in top]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.6, 0.25 * n + 1.0))
    ax.barh(range(n), row[top], color=["C3" if w in set(highlight) else "C0" for w in names])
    ax.set_yticks(range(n))
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("weight towards the class")
    ax.set_ylabel("word")
    ax.set_title(f"words that pull hardest to {class_name or f'class {cls}'}", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def constant_count(curves: dict, *, ylabel: str = "attack success"):
    """Two panels of ``{corpus size: (poison counts, success)}``: success against the *number*
    of poisoned documents (left) and against their *share* of the corpus (right). Lines that
    overlap on the left and spread on the right say the count matters, not the share."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4), sharey=True)
    for size, (counts, ys) in curves.items():
        counts = np.asarray(counts, float)
        left.plot(counts, ys, marker="o", label=f"{size} documents")
        right.plot(100 * counts / float(size), ys, marker="o", label=f"{size} documents")
    left.set_xlabel("poisoned documents (a count)")
    right.set_xlabel("poisoned documents (% of the corpus)")
    left.set_ylabel(ylabel)
    right.set_ylabel(ylabel)
    left.set_title("against the count", fontsize=10)
    right.set_title("against the share", fontsize=10)
    for ax in (left, right):
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    _legend(right)
    fig.tight_layout()
    return fig


def retrieved_passages(pipeline, question, *, is_poison=None, answer: Optional[int] = None, title: str = "",
                       ax=None):
    """What the reader read for one question: the ``top_k`` passages a :class:`labkit.rag.RagPipeline`
    retrieved, best first, as bars of their similarity to the question, each labelled with the
    title its title line states; ``is_poison`` (a mask over the knowledge base, known to the
    teacher only) draws the attacker's passages in red, ``answer`` marks the right title."""
    plt = _plt()
    from .text import answers

    table = answers()
    q = np.asarray(question)[None] if np.ndim(question) == 3 else np.asarray(question)[:1]
    top = pipeline.retrieve(q)[0]
    sims = pipeline.scores(q)[0, top]
    said = pipeline.kb.y[top]
    bad = np.zeros(len(top), bool) if is_poison is None else np.asarray(is_poison)[top]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.2, 0.32 * len(top) + 1.2))
    y = np.arange(len(top))[::-1]
    ax.barh(y, sims, color=["crimson" if b else "C0" for b in bad])
    ax.set_yticks(y)
    ax.set_yticklabels([f"{table[s]}{' (right)' if answer is not None and s == answer else ''}" for s in said],
                       fontsize=8)
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("similarity to the question (TF-IDF cosine)")
    ax.set_ylabel("retrieved passage: its title line")
    ax.set_title(title or "what the reader read (red: the attacker's passages)", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig
