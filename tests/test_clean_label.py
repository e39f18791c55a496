"""Clean-label poisoning (lesson 3): honesty properties, quality floors, deep k-NN.

The 3-seed x 10-target figures of the issue are measured by /tmp/lesson3/bench.py (see the
lesson's report); here one seed and a subset of targets keep the suite fast.
"""
import numpy as np
import pytest

import labkit as lk
from labkit.attacks import clean_label as cl
from labkit.contracts import check_attack, check_detector
from labkit.defences.deep_knn import deep_knn
from labkit.defences.feature_outliers import class_distance_scores, feature_outliers


@pytest.fixture(scope="module")
def setting(digits):
    """Extractor, guard, the clean victim and one target (the first the trial runner picks)."""
    ext = cl.pretrained_extractor()
    guard = lk.models.train(digits.train, seed=1, device="cpu")
    clean = cl.transfer_victim(digits.train, ext, seed=0)
    t, base = cl.choose_target(clean, digits.test, rng=np.random.default_rng(0))
    return {"ext": ext, "guard": guard, "clean": clean, "t": t, "base": base}


def _kw(digits, s, **extra):
    return dict(test=digits.test, target_idx=s["t"], extractor=s["ext"], base_class=s["base"], **extra)


@pytest.mark.parametrize("method", ["bullseye", "collision", "random"])
def test_contract(digits, setting, method):
    fn = {"bullseye": cl.bullseye_polytope, "collision": cl.collide_features,
          "random": cl.random_perturbation}[method]
    extra = {"guard": setting["guard"], "steps": 20} if method == "bullseye" else {}
    extra.update({"steps": 30, "opacity": 0.2} if method == "collision" else {})
    p = check_attack(fn, digits.train, n_poisons=8, eps=0.15, **_kw(digits, setting, **extra))
    # clean label: labels never change, pixels stay in [0, 1] and within eps of the base
    assert np.array_equal(p.y, digits.train.y)
    assert p.n_poison == 8 and (digits.train.y[p.poison_idx] == setting["base"]).all()
    delta = np.abs(p.X - digits.train.X).max()
    assert 0 < delta <= 0.15 + 1e-6
    assert p.X.min() >= 0 and p.X.max() <= 1
    assert p.target_idx.tolist() == [setting["t"]] and p.target_class == setting["base"]


def test_collision_pulls_features_towards_target(digits, setting):
    p = cl.collide_features(digits.train, n_poisons=5, eps=0.3, steps=100, **_kw(digits, setting))
    d = cl.feature_distance(p, digits.test, setting["ext"])
    assert d["each"] < 0.8 * d["before"]


def test_bad_settings_raise_early(digits, setting):
    with pytest.raises(ValueError, match="eps must be in"):
        cl.collide_features(digits.train, eps=1.5, **_kw(digits, setting))
    with pytest.raises(ValueError, match="opacity"):
        cl.collide_features(digits.train, opacity=1.0, **_kw(digits, setting))
    with pytest.raises(ValueError, match="base_class must differ"):
        cl.bullseye_polytope(digits.train, **{**_kw(digits, setting),
                                              "base_class": int(digits.test.y[setting["t"]])})
    with pytest.raises(ValueError, match="n_poisons"):
        cl.random_perturbation(digits.train, n_poisons=10_000, **_kw(digits, setting))
    with pytest.raises(ValueError, match="unknown clean_label settings"):
        cl.run_clean_label(params={"n_target": 3})


@pytest.fixture(scope="module")
def run0():
    """The registered experiment with its defaults on seed 0, 5 targets, deep k-NN."""
    return lk.run("clean_label", defence="deep_knn", seed=0, params={"n_targets": 5})


def test_working_technique_beats_control_and_stays_honest(run0):
    # Measured (bench, 3 seeds x 10 targets): success 0.50, control 0.00, label consistency
    # 0.92. The 0.6 is NOT reached on the 3-seed mean; this seed's first 5 targets
    # give 0.6. The floor below is what this subset reliably shows, not the bar.
    assert run0.attack_success >= 0.4
    assert run0.extra["control_success"] <= 0.1
    assert run0.extra["label_consistency"] >= 0.9
    assert run0.clean_accuracy >= run0.clean_accuracy_no_attack - 0.02


def test_deep_knn_is_partial_against_bullseye(run0):
    # Measured (3 seeds x 10 targets, k=50): recall 0.59, base-class flag rate 0.12, success
    # 0.50 -> 0.40. The bar (>= 0.8 / <= 0.1 / <= 0.2) is NOT reached: the poisons
    # clump together and vote for each other. These floors state what it does do.
    det = run0.detection
    assert det["recall"] >= 0.3
    assert det["auroc"] >= 0.8
    assert det["base_class_flag_rate"] <= 0.15
    assert run0.attack_success_defended <= run0.attack_success


def test_bullseye_moves_the_mean_onto_the_target(digits, setting):
    p = cl.bullseye_polytope(digits.train, guard=setting["guard"], **_kw(digits, setting))
    d = cl.feature_distance(p, digits.test, setting["ext"])
    assert d["mean"] < 0.5 * d["before"]
    assert cl.label_consistency(p) >= 0.9


def test_trials_are_deterministic(digits):
    a = cl.run_clean_label(seed=3, params={"n_targets": 1, "control": False})
    b = cl.run_clean_label(seed=3, params={"n_targets": 1, "control": False})
    assert a.extra["trials"] == b.extra["trials"]
    assert np.array_equal(a.poisoned.X, b.poisoned.X)


def test_deep_knn_hand_worked():
    # a poison labelled 1 sitting among four 0s on a line; k = 3 outvotes it
    feats = np.array([[0.0], [1.0], [1.5], [2.0], [3.0], [10.0], [11.0], [12.0]])
    labels = np.array([0, 0, 1, 0, 0, 1, 1, 1])
    det = deep_knn(feats, labels, k=3)
    assert det.flagged.tolist() == [False, False, True, False, False, False, False, False]
    assert det.scores[2] == 1.0 and det.scores[5] == pytest.approx(1 / 3)   # 11, 12 and 3.0


def test_feature_outliers_hand_worked():
    feats = np.array([[0.0], [1.0], [2.0], [3.0], [20.0], [0.0], [1.0], [2.0]])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    s = class_distance_scores(feats, labels)   # class 0: median 2, distances 2,1,0,1,18 -> /1
    assert np.allclose(s, [2, 1, 0, 1, 18, 1, 0, 1])   # class 1: median 1, distances 1,0,1
    det = feature_outliers(feats, labels, expected_rate=0.2)  # one row per class; ties -> first
    assert det.flagged.tolist() == [False, False, False, False, True, True, False, False]


@pytest.mark.parametrize("detect,kw", [(deep_knn, {"k": 10}), (feature_outliers, {"expected_rate": 0.05})])
def test_detector_contract(digits, setting, detect, kw):
    p = cl.bullseye_polytope(digits.train, guard=setting["guard"], steps=20, **_kw(digits, setting))
    check_detector(detect, lk.models.embed(setting["clean"], p.X), p.y, **kw)
