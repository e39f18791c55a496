"""The label-consistent backdoor (lesson 3) and the label checks every clean-label attack
is judged by: contract, honesty, floors on development seeds."""
import numpy as np
import pytest

import labkit as lk
from labkit.attacks import label_consistent_backdoor, random_noise, stamp_only
from labkit.claims import DEV_SEEDS
from labkit.contracts import check_attack


@pytest.fixture(scope="module")
def poisoned(digits):
    return label_consistent_backdoor(digits.train, target_class=3, rate=0.1, eps=0.1, n_surrogates=1, steps=10, rng=0)


def test_contract_and_clean_labels(digits):
    p = check_attack(label_consistent_backdoor, digits.train, target_class=3, rate=0.1, eps=0.1,
                     n_surrogates=1, steps=5)
    assert np.array_equal(p.y, digits.train.y)                     # no label changes
    assert (digits.train.y[p.poison_idx] == 3).all()               # only images of the target class
    assert p.n_poison == round(0.1 * (digits.train.y == 3).sum())
    mask = lk.metrics.trigger_mask(p.trigger, p.image_shape)
    away = np.abs(p.X - digits.train.X)[:, :, ~mask]               # off the trigger: within eps
    assert 0 < away.max() <= 0.1 + 1e-6
    assert (p.X[p.poison_idx][:, :, mask] == 1.0).all()            # the four corner squares
    assert mask.sum() == 4 * 4


def test_control_is_the_same_rows_stamped_not_hardened(digits, poisoned):
    ctl = stamp_only(poisoned)
    assert np.array_equal(ctl.poison_idx, poisoned.poison_idx) and np.array_equal(ctl.y, digits.train.y)
    assert np.array_equal(ctl.X[ctl.poison_idx], poisoned.trigger(digits.train.X[ctl.poison_idx]))
    assert not np.array_equal(ctl.X, poisoned.X)


def test_hardening_makes_the_images_hard_for_a_model_the_attacker_never_saw(digits, poisoned):
    other = lk.models.train(digits.train, seed=7)
    idx = poisoned.poison_idx
    p_hard = lk.models.predict_proba(other, poisoned.X[idx])[:, 3]
    p_plain = lk.models.predict_proba(other, stamp_only(poisoned).X[idx])[:, 3]
    assert p_hard.mean() < p_plain.mean() - 0.2


def test_bad_settings_raise_early(digits):
    for kw, msg in (({"rate": 0}, "rate must be"), ({"eps": 1.5}, "eps must be"),
                    ({"target_class": 10}, "target_class must be"), ({"n_surrogates": 0}, "n_surrogates")):
        with pytest.raises(ValueError, match=msg):
            label_consistent_backdoor(digits.train, **kw)


def test_label_checks_read_past_the_patch_and_are_calibrated(digits, poisoned):
    ref = digits.test
    plain = lk.metrics.label_checks(stamp_only(poisoned), ref)
    assert set(lk.metrics.CHECKERS) == {"logreg", "knn", "svm"}
    # the four bright squares alone would throw the RBF checker; the checks read past them
    assert all(plain[f]["kept"] == 1.0 for f in lk.metrics.CHECKERS)
    noisy = random_noise(poisoned, eps=0.6, rng=0)
    heavy = lk.metrics.label_checks(noisy, ref)
    assert heavy["worst"] < 0.8                                     # the checkers can fail
    calibrated = lk.metrics.label_checks(noisy, ref, control=random_noise(poisoned, eps=0.6, rng=1))
    assert calibrated["worst"] >= heavy["worst"]
    for f in lk.metrics.CHECKERS:
        c = calibrated[f]
        assert c["calibrated"] == pytest.approx(min(1.0, c["kept"] + 1 - c["control_kept"]))
    with pytest.raises(ValueError, match="same rows"):
        other = label_consistent_backdoor(digits.train, target_class=4, rate=0.1, eps=0.0, rng=0)
        lk.metrics.label_checks(poisoned, ref, control=other)


@pytest.fixture(scope="module")
def dev_runs():
    return [lk.experiment.run("label_consistent", seed=s) for s in DEV_SEEDS]


def test_floors_on_development_seeds(dev_runs):
    success = np.mean([r.attack_success for r in dev_runs])
    control = np.mean([r.control_success for r in dev_runs])
    assert success >= control + 0.05 and success >= 1.5 * control    # the hardening is what works
    for r in dev_runs:
        assert abs(r.clean_accuracy - r.clean_accuracy_no_attack) <= 0.02
        assert set(r.extra["checks_calibrated"]) == set(lk.metrics.CHECKERS)
    assert np.mean([r.label_consistency for r in dev_runs]) >= 0.85


def test_more_poisons_more_success(dev_runs):
    more = [lk.experiment.run("label_consistent", seed=s, rate=0.2) for s in DEV_SEEDS[:3]]
    assert np.mean([r.attack_success for r in more]) > np.mean([r.attack_success for r in dev_runs[:3]]) + 0.05


def test_activation_clustering_sees_the_trigger_not_the_hardening():
    """Exercise 3.3's answer holds: the stamped-only images (eps 0) are removed as well."""
    for s in DEV_SEEDS[:3]:
        r = lk.run("label_consistent", seed=s, params={"eps": 0.0}, defence="activation_clustering")
        assert r.detection["recall"] >= 0.9 and r.detection["precision"] >= 0.9
    assert lk.checks.check("l3_cluster_sees", "yes") and not lk.checks.check("l3_cluster_sees", "no")
