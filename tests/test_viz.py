"""Every plot in labkit.viz draws on tiny arrays, labels its axes and titles itself in words
(no raw dicts, no list brackets)."""
import types

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from labkit import viz  # noqa: E402
from labkit.types import Dataset, Detection, RunResult, make_poisoned  # noqa: E402

RNG = np.random.default_rng(0)


def tiny_data(n=24, classes=3):
    X = RNG.random((n, 1, 8, 8)).astype(np.float32)
    return Dataset(X, np.arange(n) % classes, classes, "tiny")


def tiny_poisoned(data):
    idx = np.array([1, 4, 7, 10])
    X = data.X.copy()
    X[idx] = np.clip(X[idx] + 0.1, 0, 1)
    return make_poisoned(data, X=X, idx=idx, attack="clean_label", params={"eps": 0.1},
                         target_class=np.array([2]), target_idx=np.array([3]))


def tiny_result(defence="knn_sanitisation"):
    det = Detection(scores=np.linspace(0, 1, 10), flagged=np.arange(10) > 7, defence=defence or "",
                    params={"k": 10, "eta": 0.5})
    return RunResult(attack="label_flip", defence=defence, dataset="tiny", seed=0,
                     params={"rate": 0.3, "strategy": "random", "target_class": [8],
                             "extra": {"nested": 1}},
                     n_train=24, n_poison=7, clean_accuracy_no_attack=0.95, clean_accuracy=0.7,
                     attack_success=0.4, clean_accuracy_defended=0.9 if defence else None,
                     attack_success_defended=0.1 if defence else None,
                     detection={"precision": 0.8, "recall": 0.6} if defence else None,
                     verdict=det if defence else None)


def fed(acc):
    return types.SimpleNamespace(accuracy=np.asarray(acc, float))


def clustering_detection():
    per = {c: {"silhouette": s, "relative_size": r, "suspect": s >= 0.4 and r <= 0.35}
           for c, s, r in [(0, 0.6, 0.1), (1, 0.2, 0.5), (2, 0.3, 0.45)]}
    return Detection(scores=np.zeros(6), flagged=np.zeros(6, bool), defence="activation_clustering",
                     params={"per_class": per, "min_silhouette": 0.4, "max_size": 0.35})


class Guard:
    threshold = 0.5

    def entropy(self, X):
        return np.linspace(0, 1, len(X))


def tiny_text_model():
    """A text classifier fitted on 40 paragraphs of the lesson-7 corpus."""
    from labkit.models import text_classifier
    from labkit.text import dataset

    data = dataset()
    rows = np.concatenate([np.flatnonzero(data.y == c)[:10] for c in range(data.n_classes)])
    return text_classifier(data.subset(rows))


def tiny_retrieval():
    """What a 60-passage knowledge base's reader read for one question, two passages marked."""
    from labkit.rag import RagPipeline, rag_task

    passages, questions = rag_task()
    kb = passages.subset(np.arange(60))
    return viz.retrieved_passages(RagPipeline(kb, top_k=4), questions.X[3], is_poison=np.arange(60) < 2,
                                  answer=int(questions.y[3]))


DATA = tiny_data()
POISONED = tiny_poisoned(DATA)
TABLE = {("none", "mean"): fed([0.5, 0.7, 0.8]), ("sign_flip", "mean"): fed([0.3, 0.2, 0.1]),
         ("sign_flip", "median"): fed([0.5, 0.6, 0.7])}
FEATS = RNG.normal(size=(24, 5))
IS_POISON = np.arange(24) % 5 == 0

# (name, call, whether the plot has data axes that need labels)
PLOTS = [
    ("confusion", lambda: viz.confusion(np.array([[5, 1], [2, 4]]), title="victim"), True),
    ("sweep_curves", lambda: viz.sweep_curves({"a": ([0.1, 0.2], [0.9, 0.8]),
                                               "b": ([0.1, 0.2], np.array([[0.9, 0.8], [0.7, 0.6]]))},
                                              xlabel="rate", ylabel="accuracy", baseline=0.95,
                                              title="accuracy vs rate"), True),
    ("score_histogram", lambda: viz.score_histogram(np.linspace(0, 1, 24), IS_POISON, threshold=0.5,
                                                    title="scores"), True),
    ("certified_curve", lambda: viz.certified_curve({"k = 10": {0: 0.9, 1: 0.8, 2: 0.5}}), True),
    ("run_summary", lambda: viz.run_summary(tiny_result()), True),
    ("run_summary, no defence", lambda: viz.run_summary(tiny_result(None)), True),
    ("results_curve", lambda: viz.results_curve({"random": [tiny_result(None)]}, title="accuracy"), True),
    ("metric_curves", lambda: viz.metric_curves({"recall": ([tiny_result()], "recall")}), True),
    ("activation_scatter", lambda: viz.activation_scatter(FEATS, DATA.y, IS_POISON, cls=0, whiten=False), True),
    ("projection_scatter", lambda: viz.projection_scatter(RNG.normal(size=(8, 2)), np.arange(8) < 2,
                                                          title="two axes"), True),
    ("strip_histogram", lambda: viz.strip_histogram(
        Guard(), DATA, make_poisoned(DATA, idx=[0], attack="backdoor", params={}, target_class=0,
                                     trigger=lambda X: X)), True),
    ("entropy_histogram", lambda: viz.entropy_histogram(np.linspace(0.5, 1, 9), np.linspace(0, 0.4, 5), 0.45), True),
    ("metric_curves", lambda: viz.metric_curves({"success": ([tiny_result()], "attack_success")},
                                                ylabel="attack success"), True),
    ("clustering_summary", lambda: viz.clustering_summary(clustering_detection()), True),
    ("feature_map", lambda: viz.feature_map(FEATS, DATA.y, IS_POISON, FEATS[:1], classes=[0, 1]), True),
    ("alignment_curve", lambda: viz.alignment_curve([np.linspace(0, 0.9, 5), np.linspace(0, 0.5, 5)],
                                                    labels=["a", "b"]), True),
    ("success_bars", lambda: viz.success_bars({"gradient matching": 0.6, "random noise": 0.1},
                                              title="targets flipped"), True),
    ("federated_curves", lambda: viz.federated_curves(TABLE, attack="sign_flip"), True),
    ("federated_heatmap", lambda: viz.federated_heatmap(TABLE), True),
    ("word_weights", lambda: viz.word_weights(tiny_text_model(), 1, n=5, highlight=("cf",), class_name="expressions"), True),
    ("constant_count", lambda: viz.constant_count({225: ([3, 6], [0.5, 0.7]), 900: ([3, 6], [0.4, 0.6])}), True),
    ("retrieved_passages", lambda: tiny_retrieval(), True),
    ("image_grid", lambda: viz.image_grid(DATA.X[:5], [str(v) for v in DATA.y[:5]], ncols=3,
                                          suptitle="five images"), False),
    ("poison_grid", lambda: viz.poison_grid(POISONED, n=3), False),
    ("dataset_preview", lambda: viz.dataset_preview(DATA, n=6), False),
    ("clean_label_pairs", lambda: viz.clean_label_pairs(POISONED, DATA, n=3), False),
    ("gradient_trial", lambda: viz.gradient_trial({"poisoned": POISONED, "prob_deployed": 0.1,
                                                   "prob_victim": 0.7, "prob_control": 0.2}, DATA, n=3), False),
]


def texts(fig):
    out = [ax.get_title() for ax in fig.axes]
    if fig._suptitle is not None:
        out.append(fig._suptitle.get_text())
    return [t for t in out if t]


@pytest.mark.parametrize("name, call, has_axes", PLOTS, ids=[p[0] for p in PLOTS])
def test_plot_is_titled_and_labelled(name, call, has_axes):
    fig = call()
    try:
        titles = texts(fig)
        assert titles, f"{name} has no title"
        for t in titles:
            assert "{" not in t and "[" not in t and "_" not in t, f"{name} title reads like code: {t!r}"
        if has_axes:
            data_axes = [ax for ax in fig.axes if ax.has_data()]
            assert data_axes
            for ax in data_axes:
                assert ax.get_xlabel() and ax.get_ylabel(), f"{name}: unlabelled axis"
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is not None:        # placed: outside the axes, or "best" with a frame
                assert legend._bbox_to_anchor is not None or legend._loc == 0
    finally:
        plt.close(fig)


def test_run_summary_draws_a_defended_group_only_with_a_defence():
    with_defence = viz.run_summary(tiny_result())
    without = viz.run_summary(tiny_result(None))
    labels = lambda fig: [t.get_text() for t in fig.axes[0].get_xticklabels()]  # noqa: E731
    assert len(labels(with_defence)) == 3 and "k-NN sanitisation" in labels(with_defence)[2]
    assert labels(without) == ["no attack", "attacked"]
    plt.close("all")


def test_run_summary_title_names_the_settings_in_words():
    fig = viz.run_summary(tiny_result())
    title = fig.axes[0].get_title()
    assert "label flipping" in title and "poison rate 30%" in title and "target class 8" in title
    assert "k 10" in title and "precision 0.80" in title
    plt.close(fig)


def test_describe_and_human():
    assert viz.describe({"rate": 0.05, "trigger": "patch", "target_class": np.array([8]),
                         "weights": {"a": 1}, "skip": None}) == "poison rate 5%, trigger patch, target class 8"
    assert viz.describe({"classes": [1, 2]}) == "classes 1, 2"
    assert viz.human("trimmed_mean") == "trimmed mean" and viz.human("strip") == "STRIP"


def test_projection_scatter_plots_the_given_coordinates():
    Z = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    fig = viz.projection_scatter(Z, np.array([False, True, False]))
    clean, poison = fig.axes[0].collections
    np.testing.assert_array_equal(clean.get_offsets(), Z[[0, 2]])
    np.testing.assert_array_equal(poison.get_offsets(), Z[[1]])
    plt.close(fig)


def test_class_projection_centres_the_class_rows():
    Z = viz.class_projection(FEATS, DATA.y, 1, whiten=False)
    assert Z.shape == ((DATA.y == 1).sum(), 2)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-12)
    # the first axis carries the most variance
    assert Z[:, 0].var() >= Z[:, 1].var()


def test_run_summary_says_precision_is_undefined_when_nothing_was_flagged():
    import dataclasses

    result = dataclasses.replace(tiny_result(), detection={"precision": None, "recall": 0.0})
    fig = viz.run_summary(result)
    title = fig.axes[0].get_title()
    assert "precision n/a" in title and "precision 1.00" not in title
    plt.close(fig)


def test_pixel_images_draw_bright_as_white_and_changes_red_for_brighter():
    """The lessons say "white square" and "bright corner": a pixel of 1 must look white, 0
    black; in a difference image a brighter poison pixel is red, a darker one blue."""
    X = np.zeros((1, 1, 8, 8), np.float32)
    X[0, 0, -2:, -2:] = 1.0                                   # a white 2x2 square, bottom right
    fig = viz.image_grid(X)
    im = fig.axes[0].images[0]
    rgba = im.to_rgba(im.get_array())
    assert np.allclose(rgba[-1, -1, :3], 1.0) and np.allclose(rgba[0, 0, :3], 0.0)
    plt.close(fig)
    data = tiny_data()
    poisoned = tiny_poisoned(data)                           # poisons are 0.1 brighter (clipped)
    fig = viz.clean_label_pairs(poisoned, data, n=2, magnify=4.0)
    change = fig.axes[-1].images[0]                          # bottom row, a poison's change
    arr = np.asarray(change.get_array())
    rgba = change.to_rgba(arr)
    brighter = arr > 0.55
    assert brighter.any()
    assert (rgba[brighter][:, 0] > rgba[brighter][:, 2]).all()   # red over blue
    assert "red = brighter" in fig._suptitle.get_text()
    plt.close(fig)
