"""Label flipping: properties of the attack and the lesson's quality floors (3 seeds)."""
import numpy as np
import pytest

import labkit as lk
from labkit.attacks import flip_labels
from labkit.contracts import check_attack

SEEDS = (0, 1, 2)   # development seeds (labkit.claims.DEV_SEEDS); reporting seeds are for reproduce alone


@pytest.mark.parametrize("kw", [{"strategy": "random", "rate": 0.2},
                                {"strategy": "targeted", "rate": 0.5},
                                {"strategy": "class_pair", "rate": 0.1},
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


def test_class_pair_spends_budget_on_few_classes(digits):
    p = flip_labels(digits.train, rate=0.1, strategy="class_pair")
    assert len(np.unique(digits.train.y[p.poison_idx])) <= 2
    assert p.n_poison == round(0.1 * 1347)


def _surrogate_loss(X, y_clean, y_now, k, tau):
    """The optimised attack's objective, the slow way: sum over rows of the leave-one-out
    k-NN surrogate's softened loss at the clean label."""
    total = 0.0
    for j in range(len(X)):
        d = np.linalg.norm(X - X[j], axis=1)
        d[j] = np.inf
        votes = np.bincount(y_now[np.argsort(d, kind="stable")[:k]], minlength=3)
        z = votes / tau
        total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[y_clean[j]]
    return total


def test_optimised_first_flip_is_the_best_single_flip():
    # 3 overlapping blobs in 2-D; brute force: try every (row, new label), keep the best
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(3), 12)
    X = np.clip(rng.normal(np.array([[0.3, 0.3], [0.6, 0.3], [0.45, 0.55]])[y], 0.12), 0, 1).astype(np.float32)
    data = lk.Dataset(X.reshape(-1, 1, 1, 2), y, 3, "blobs")
    from labkit.attacks.label_flip import OPTIMISED_K as k, OPTIMISED_TAU as tau
    best, best_gain = None, -np.inf
    for i in range(len(y)):
        for c in range(3):
            if c != y[i]:
                y_now = y.copy()
                y_now[i] = c
                g = _surrogate_loss(X, y, y_now, k, tau)
                if g > best_gain + 1e-9:
                    best, best_gain = (i, c), g
    p = flip_labels(data, rate=1 / 36, strategy="optimised")
    assert p.n_poison == 1
    assert (int(p.poison_idx[0]), int(p.y[p.poison_idx[0]])) == best


def test_optimised_spends_the_budget_once_per_row(digits):
    p = flip_labels(digits.train, rate=0.2, strategy="optimised")
    assert p.n_poison == round(0.2 * 1347) and len(np.unique(p.poison_idx)) == p.n_poison
    assert (p.y[p.poison_idx] != digits.train.y[p.poison_idx]).all()


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
        for strategy in ("random", "class_pair"):
            for rate in (0.1, 0.2) if strategy == "class_pair" else (0.1, 0.2, 0.3):
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
def test_class_pair_beats_random(grid, rate):
    assert _mean(grid, "class_pair", rate) < _mean(grid, "random", rate)


def test_optimised_beats_class_pair_and_random_at_020():
    """Victim test accuracy at rate 0.2 on development seeds 0 and 1 (lk.run, as the CLI).

    The greedy attack does not win on every seed (per seed its gap to ``class_pair`` ranges
    from about -0.01 to 0.06), so the floor is on the two-seed mean; ``random`` is worse than
    ``optimised`` on every seed.
    """
    acc = {(st, s): lk.run("label_flip", seed=s, rate=0.2, params={"strategy": st}).clean_accuracy
           for st in ("random", "class_pair", "optimised") for s in (0, 1)}
    mean = lambda st: np.mean([acc[st, s] for s in (0, 1)])
    assert mean("class_pair") - mean("optimised") >= 0.004
    assert min(acc["random", s] - acc["optimised", s] for s in (0, 1)) >= 0.018
