"""Label flipping: properties of the attack and the lesson's quality floors (3 seeds)."""
import numpy as np
import pytest

import labkit as lk
from labkit.attacks import flip_labels
from labkit.contracts import check_attack

SEEDS = (0, 1, 2)


@pytest.mark.parametrize("kw", [{"strategy": "random", "rate": 0.2},
                                {"strategy": "targeted", "rate": 0.5},
                                {"strategy": "optimised", "rate": 0.1}])
def test_contract(digits, kw):
    check_attack(flip_labels, digits.train, **kw)


def test_changes_only_labels_and_every_flip_is_real(digits):
    p = flip_labels(digits.train, rate=0.25, rng=3)
    assert np.array_equal(p.X, digits.train.X)
    assert p.n_poison == round(0.25 * 1347)
    assert (p.y[p.poison_idx] != digits.train.y[p.poison_idx]).all()
    assert (p.y[~p.is_poison] == digits.train.y[~p.is_poison]).all()


def test_targeted_flips_only_source_into_target(digits):
    p = flip_labels(digits.train, rate=0.5, strategy="targeted", source_class=3,
                    target_class=8, rng=0)
    assert (digits.train.y[p.poison_idx] == 3).all() and (p.y[p.poison_idx] == 8).all()
    assert p.n_poison == round(0.5 * (digits.train.y == 3).sum())
    assert p.source_class == 3 and p.target_class == 8


def test_optimised_spends_budget_on_few_classes(digits):
    p = flip_labels(digits.train, rate=0.1, strategy="optimised")
    assert len(np.unique(digits.train.y[p.poison_idx])) <= 2
    assert p.n_poison == round(0.1 * 1347)


@pytest.mark.parametrize("kw,msg", [({"rate": 0}, "rate"), ({"rate": 1.5}, "rate"),
                                    ({"strategy": "smart"}, "strategy"),
                                    ({"strategy": "targeted", "source_class": 3, "target_class": 3}, "differ"),
                                    ({"strategy": "targeted", "source_class": 12}, "out of range"),
                                    ({"source_class": 1}, "only apply")])
def test_bad_input_is_rejected_early(digits, kw, msg):
    with pytest.raises(ValueError, match=msg):
        flip_labels(digits.train, **kw)


@pytest.fixture(scope="module")
def grid():
    """Test accuracy (and class-3 recall for targeted flips) per seed; the expensive part."""
    out = {}
    for seed in SEEDS:
        train, test = lk.data.digits(seed=seed)
        acc = lambda d: lk.metrics.clean_accuracy(lk.models.train(d, seed=seed), test)
        out[seed, "none"] = acc(train)
        for strategy in ("random", "optimised"):
            for rate in (0.1, 0.2) if strategy == "optimised" else (0.1, 0.2, 0.3):
                out[seed, strategy, rate] = acc(flip_labels(train, rate=rate, strategy=strategy, rng=seed))
        net = lk.models.train(flip_labels(train, rate=0.5, strategy="targeted", rng=seed), seed=seed)
        out[seed, "targeted"] = (lk.metrics.clean_accuracy(net, test),
                                 lk.metrics.per_class_recall(net, test)[3])
    return out


def _mean(grid, *key):
    return np.mean([grid[(s,) + key] for s in SEEDS], axis=0)


def test_random_flips_at_030_cost_at_least_8_points(grid):
    assert _mean(grid, "none") - _mean(grid, "random", 0.3) >= 0.08


def test_targeted_flips_hide_in_overall_accuracy(grid):
    overall, recall3 = _mean(grid, "targeted")
    assert recall3 <= 0.6 and overall >= 0.85


@pytest.mark.parametrize("rate", [0.1, 0.2])
def test_optimised_beats_random(grid, rate):
    assert _mean(grid, "optimised", rate) < _mean(grid, "random", rate)
