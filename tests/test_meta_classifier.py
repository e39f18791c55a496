"""Lesson 9's population detector (MNTD-style): populations built by the engine, query
fingerprints, a meta-classifier scored on held-out models of seen and unseen trigger kinds."""
import json

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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_meta_classifier_separates_held_out_models(seed):
    """Floor on development seeds, through the engine (what ``python -m labkit population`` and
    the claim run): trained on N_SHADOW models (patch triggers only), scored on N_HELD_OUT
    held-out patch models and as many blend models, a kind it never saw."""
    r = experiment.population_detection(seed=seed, n_shadow=N_SHADOW, n_held_out=N_HELD_OUT)
    assert sum(r["is_backdoored_seen"]) == sum(r["is_backdoored_unseen"]) == N_HELD_OUT // 2
    assert r["auroc_seen"] >= 0.9 and r["auroc_unseen"] >= 0.9


def test_held_out_models_are_numbered_after_the_shadow_models():
    q = random_queries((1, 8, 8), n=3, rng=0)
    four, _, _ = experiment.model_population(4, seed=0, train_kw=FAST)
    last_two, flags, specs = experiment.model_population(2, seed=0, train_kw=FAST, start=2)
    np.testing.assert_array_equal(query_outputs(last_two, q), query_outputs(four[2:], q))
    assert flags.tolist() == [False, True] and specs[1]["trigger"] == "patch"
    with pytest.raises(ValueError, match="start"):
        experiment.model_population(2, start=-1)


def test_population_command_prints_the_engines_result(capsys):
    from labkit.cli import main

    assert main(["population", "--seed", "3", "--shadow", "6", "--held-out", "4", "--queries", "5", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(experiment.population_detection(seed=3, n_shadow=6, n_held_out=4,
                                                                             n_queries=5)))
    assert len(printed["scores_seen"]) == len(printed["scores_unseen"]) == 4
