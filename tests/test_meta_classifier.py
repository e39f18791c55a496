"""Lesson 9's population detector (MNTD-style): populations built by the engine, query
fingerprints, a meta-classifier scored on held-out models of seen and unseen trigger kinds."""
import numpy as np
import pytest

import labkit as lk
from labkit import experiment
from labkit.defences.meta_classifier import meta_classifier, meta_scores, query_outputs, random_queries

FAST = {"epochs": 30}
N_SHADOW, N_HELD_OUT = 100, 40      # models the meta-classifier learns from / is scored on


def test_random_queries_are_seeded_images_in_range():
    q = random_queries((1, 8, 8), n=5, rng=0)
    assert q.shape == (5, 1, 8, 8) and q.dtype == np.float32 and q.min() >= 0 and q.max() <= 1
    np.testing.assert_array_equal(q, random_queries((1, 8, 8), n=5, rng=0))
    assert not np.array_equal(q, random_queries((1, 8, 8), n=5, rng=1))


def test_population_alternates_clean_and_backdoored_and_is_the_same_however_sliced():
    models, flags, specs = experiment.model_population(4, seed=0, train_kw=FAST)
    assert flags.tolist() == [False, True, False, True]
    assert specs[0] == {"trigger": None} and specs[1]["trigger"] == "patch" and 1 <= specs[1]["size"] <= 3
    q = random_queries((1, 8, 8), n=3, rng=0)
    out = query_outputs(models, q)
    assert out.shape == (4, 30)
    np.testing.assert_allclose(out.reshape(4, 3, 10).sum(-1), 1, atol=1e-5)
    again, _, _ = experiment.model_population(2, seed=0, train_kw=FAST)     # first two, rebuilt
    np.testing.assert_array_equal(query_outputs(again, q), out[:2])


def test_meta_classifier_needs_both_kinds():
    with pytest.raises(ValueError, match="both"):
        meta_classifier(np.zeros((4, 3)), [True] * 4)


def test_meta_classifier_separates_held_out_models():
    """Floor on development populations: trained on N_SHADOW models (patch triggers only),
    scored on N_HELD_OUT held-out patch models and as many blend models, a kind it never saw."""
    train, y_train, _ = experiment.model_population(N_SHADOW, seed=0, train_kw=FAST)
    seen, y_seen, _ = experiment.model_population(N_HELD_OUT, seed=1, train_kw=FAST)
    unseen, y_unseen, _ = experiment.model_population(N_HELD_OUT, seed=2, triggers=("blend",), train_kw=FAST)
    q = random_queries((1, 8, 8), n=50, rng=0)
    clf = meta_classifier(query_outputs(train, q), y_train)
    assert lk.metrics.auroc(meta_scores(clf, query_outputs(seen, q)), y_seen) >= 0.9
    assert lk.metrics.auroc(meta_scores(clf, query_outputs(unseen, q)), y_unseen) >= 0.9
