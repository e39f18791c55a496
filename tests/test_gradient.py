"""Lesson 4, part 1: gradient-matching poisons, the noise control and the gradient audit."""
import numpy as np
import pytest
import torch

import labkit as lk
from labkit.attacks import match_gradients, random_noise
from labkit.attacks._targeted import choose_targets
from labkit.defences.gradient_audit import audit_gradients, audit_scores, gradient_audit, head_gradients


@pytest.fixture(scope="module")
def digits_setup():
    tr, te = lk.data.digits(seed=0)
    deployed = lk.models.train(tr, epochs=30, seed=0)
    t, a = choose_targets(deployed, te, 1, rng=0)
    return tr, te, deployed, int(t[0]), int(a[0])


def _craft(setup, **kw):
    tr, te, deployed, t, a = setup
    args = dict(test=te, target_idx=t, target_class=a, surrogates=deployed, rate=0.05, eps=0.15,
                steps=15, rng=0)
    args.update(kw)
    return match_gradients(tr, **args)


@pytest.mark.parametrize("eps,objective", [(0.05, "sign"), (0.15, "sign"), (0.15, "cosine")])
def test_poisons_stay_within_eps_keep_labels_and_touch_only_poison_rows(digits_setup, eps, objective):
    tr, te, deployed, t, a = digits_setup
    X_before = tr.X.copy()
    p = _craft(digits_setup, eps=eps, objective=objective)
    idx = p.poison_idx
    assert p.n_poison == int(0.05 * len(tr))
    assert np.all(tr.y[idx] == a)                                       # poisons come from the adversarial class
    np.testing.assert_array_equal(p.y, tr.y)                            # labels kept
    assert np.abs(p.X[idx] - tr.X[idx]).max() <= eps + 1e-6
    assert np.abs(p.X[idx] - tr.X[idx]).max() > eps / 2                  # it did perturb
    outside = np.setdiff1d(np.arange(len(tr)), idx)
    np.testing.assert_array_equal(p.X[outside], tr.X[outside])
    assert p.X.min() >= 0 and p.X.max() <= 1
    np.testing.assert_array_equal(tr.X, X_before)                        # input not mutated
    assert list(p.target_idx) == [t] and list(p.target_class) == [a]


def test_same_seed_same_poisons(digits_setup):
    a, b = _craft(digits_setup, rng=3), _craft(digits_setup, rng=3)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.poison_idx, b.poison_idx)


def test_crafting_raises_alignment(digits_setup):
    hist = []
    p = _craft(digits_setup, objective="cosine", steps=60, history=hist)
    assert len(hist) == 60
    # hist[0] is the random start (already ~0.86: both gradients raise the class's logit)
    assert 1 - hist[-1] <= 0.7 * (1 - hist[0])
    assert p.params["alignment"] == pytest.approx(hist[-1], abs=0.02)


def test_nearest_bases_are_closest_to_target(digits_setup):
    tr, te, deployed, t, a = digits_setup
    p = _craft(digits_setup, steps=1, bases="nearest")
    pool = np.flatnonzero(tr.y == a)
    d = ((tr.X[pool] - te.X[t]) ** 2).reshape(pool.size, -1).sum(1)
    others = np.setdiff1d(pool, p.poison_idx)
    dist = dict(zip(pool, d))
    assert max(dist[i] for i in p.poison_idx) <= min(dist[i] for i in others)


def test_bad_settings_fail_early(digits_setup):
    with pytest.raises(ValueError, match="rate"):
        _craft(digits_setup, rate=1.5)
    with pytest.raises(ValueError, match="eps"):
        _craft(digits_setup, eps=0)
    with pytest.raises(ValueError, match="target_class"):
        _craft(digits_setup, target_class=10)
    with pytest.raises(ValueError, match="objective"):
        _craft(digits_setup, objective="l2")
    with pytest.raises(ValueError, match="victim"):
        lk.run("gradient_matching", params={"victim": "transfer"})   # not a setting of it


def test_noise_control_uses_same_rows_and_budget(digits_setup):
    tr = digits_setup[0]
    p = _craft(digits_setup, steps=2)
    c = random_noise(p, eps=0.15, rng=0)
    np.testing.assert_array_equal(c.poison_idx, p.poison_idx)
    np.testing.assert_array_equal(c.y, tr.y)
    assert np.abs(c.X - tr.X).max() <= 0.15 + 1e-6
    assert c.attack == "random_noise" and list(c.target_idx) == list(p.target_idx)


# ---- gradient audit -----------------------------------------------------------------------

def test_head_gradients_match_autograd(digits_setup):
    tr, _, deployed, _, _ = digits_setup
    G = head_gradients(deployed, tr.X[:5], tr.y[:5])
    for i in range(5):
        deployed.zero_grad()
        loss = torch.nn.functional.cross_entropy(deployed(torch.tensor(tr.X[i:i + 1])), torch.tensor(tr.y[i:i + 1]))
        loss.backward()
        ref = torch.cat([deployed.head.weight.grad, deployed.head.bias.grad[:, None]], 1).reshape(-1)
        np.testing.assert_allclose(G[i], ref.double().numpy(), rtol=1e-4, atol=1e-7)


def test_audit_scores_rank_planted_anomalies_first():
    rng = np.random.default_rng(0)
    base = rng.normal(size=8)
    G = base + 0.1 * rng.normal(size=(60, 8))
    y = np.repeat([0, 1], 30)
    G[5] *= 10                                  # big norm, same direction
    G[40] = -base                               # normal norm, opposite direction
    assert np.argmax(audit_scores(G, y, use="norm")[:30]) == 5
    assert np.argmax(audit_scores(G, y, use="direction")[30:]) == 10
    s = audit_scores(G, y)
    assert set(np.argsort(-s)[:2]) == {5, 40}


def test_gradient_audit_contract(digits_setup):
    tr, _, deployed, _, _ = digits_setup
    det = gradient_audit(deployed, tr.X, tr.y, expected_rate=0.05)
    assert det.scores.shape == (len(tr),) and det.n_flagged == int(np.ceil(0.05 * len(tr)))
    assert det.scores[det.flagged].min() >= det.scores[~det.flagged].max()
    with pytest.raises(ValueError, match="expected_rate"):
        gradient_audit(deployed, tr.X, tr.y, expected_rate=2)


def test_gradient_audit_threshold_flags_planted_outliers_however_many():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(2), 100)
    for n_planted in (3, 30):
        grads = rng.normal(size=(200, 8))
        planted = rng.choice(200, n_planted, replace=False)
        grads[planted] *= 12                                  # far larger gradients
        det = audit_gradients(grads, labels)   # default: robust threshold
        assert det.flagged[planted].all()
        assert det.n_flagged <= n_planted + 5                 # a few clean rows at most
        assert det.params["expected_rate"] is None
    with pytest.raises(ValueError, match="threshold"):
        audit_gradients(grads, labels, threshold=0)


def test_the_engines_audit_never_reads_the_poison_count():
    """Scrambling a trial's ground truth (which rows are poisons, how many) leaves the
    audit's decisions unchanged: the defender only has the pixels, labels and the model."""
    import dataclasses

    ctx = lk.experiment.prepare("gradient_matching", dataset="digits", seed=0,
                                params={"n_targets": 1, "steps": 5}, train_kw={"epochs": 20})
    t = lk.experiment.trial(ctx, 0)
    ts = t.train_set
    fake = np.sort(np.random.default_rng(1).choice(len(ts), ts.n_poison // 2, replace=False))
    scrambled = dataclasses.replace(t, train_set=lk.types.make_poisoned(
        ts.clean, X=ts.X, y=ts.y, idx=fake, attack=ts.attack, params=ts.params,
        target_idx=ts.target_idx, target_class=ts.target_class))
    real = lk.experiment.defend(ctx, t, "gradient_audit")
    other = lk.experiment.defend(ctx, scrambled, "gradient_audit")
    np.testing.assert_array_equal(real.detection.flagged, other.detection.flagged)
    assert real.row["detection"] != other.row["detection"]       # only the report reads the truth


def test_runner_honours_cli_contract_with_both_defences():
    from labkit.cli.experiments import JSON_FIELDS

    for defence in ("dp_sgd", "gradient_audit"):
        r = lk.run("gradient_matching", defence=defence, dataset="digits",
                   params={"n_targets": 2, "steps": 5}, train_kw={"epochs": 20})
        d = r.as_dict()
        assert set(JSON_FIELDS) <= set(d)
        assert d["n_poison"] == int(0.05 * d["n_train"]) and d["params"]["eps"] == 0.15
        assert 0 <= d["attack_success"] <= 1 and 0 <= d["attack_success_defended"] <= 1
        assert 0 <= d["control_success"] <= 1 and 0 <= d["label_consistency"] <= 1
        assert len(d["extra"]["trials"]) == 2
    assert d["detection"]["n_poison"] > 0


# ---- quality floors: MNIST 28x28, fine-tuning victim, on development seed 0 ----------------
# (the reported figures, on other seeds, are in benchmarks/RESULTS.md: claims
# l4_gradient_matching, l4_gradient_audit, l4_dp_sgd)

@pytest.fixture(scope="module")
def audited():
    return lk.run("gradient_matching", defence="gradient_audit", seed=0)


def test_gradient_matching_beats_noise_control_with_clean_labels(audited):
    r = audited
    assert r.dataset == "mnist_sample" and r.n_poison == int(0.05 * r.n_train)
    assert r.control_success <= 0.2
    assert r.attack_success >= r.control_success
    assert r.label_consistency >= 0.9
    assert min(t["label_checks"][f]["kept"] for t in r.extra["trials"] for f in lk.metrics.CHECKERS) >= 0.85
    p = r.poisoned
    assert np.abs(p.X - p.clean.X).max() <= 0.15 + 1e-6
    np.testing.assert_array_equal(p.y, p.clean.y)


def test_forensics_does_not_find_gradient_matching_poisons(audited):
    # lesson 3's trace looks for poisons that sit next to the target in feature space;
    # gradient-matching poisons act through their gradient, from anywhere in their class
    ctx = lk.experiment.prepare("gradient_matching", seed=0)
    r = lk.experiment.measure(ctx, defence="forensics", trials=audited.trials)
    assert r.detection["recall"] <= 0.2
    assert r.extra["flagged_without_attack"] <= 0.03


STRONGER = {"guard": False, "keep_label": 0.2, "bases": "aligned"}


def test_the_stronger_setting_floors_on_development_seeds():
    """With a light label penalty, no linear guard and bases the deployed gradient already
    favours, half the targets flip on average; random noise on the same rows almost never
    does; the held-out checkers (the out-of-family one too) still read the poisons as their
    label; fine-tuning on the batch costs at most 4 points of accuracy against the noise.
    Ten targets per seed, as in the reported claims: with five, one target that noise happens
    to flip moves the control by 0.04 and the floor reads the sample, not the attack."""
    from labkit.claims import DEV_SEEDS

    runs = [lk.run("gradient_matching", seed=s, params=STRONGER) for s in DEV_SEEDS]
    assert np.mean([r.attack_success for r in runs]) >= 0.45
    assert np.mean([r.control_success for r in runs]) <= 0.1
    assert min(r.label_consistency for r in runs) >= 0.9
    for r in runs:
        test = lk.data.mnist_sample(seed=r.seed).test
        noise_acc = np.mean([lk.metrics.clean_accuracy(t.control_victim, test) for t in r.trials])
        assert r.clean_accuracy >= noise_acc - 0.04


def test_gradient_audit_finds_the_poisons_without_their_count(audited):
    det = audited.detection
    assert det["auroc"] >= 0.8 and det["recall"] >= 0.7 and det["precision"] >= 0.75
    assert audited.attack_success_defended <= 0.1
    assert audited.clean_accuracy_defended >= audited.clean_accuracy - 0.02
    assert audited.verdict.params["expected_rate"] is None          # a robust threshold, no budget


def test_dp_sgd_keeps_accuracy_but_does_not_stop_this_attack():
    # DP-SGD bounds each row's influence, not a coordinated group's: it leaves success
    # where it was at unchanged clean accuracy (benchmarks/RESULTS.md, claim l4_dp_sgd)
    r = lk.run("gradient_matching", defence="dp_sgd", seed=0)
    assert r.clean_accuracy_defended >= r.clean_accuracy - 0.02
    assert r.attack_success_defended >= r.attack_success - 0.3


def test_the_fine_tuning_batch_mixes_300_clean_rows_and_trials_report_probabilities():
    r = lk.run("gradient_matching", seed=1, params={"n_targets": 2, "steps": 20})
    assert len(r.trials) == 2
    for t in r.trials:
        assert len(t.train_set) == 187 + 300 and t.train_set.n_poison == 187
        assert 0 <= t.row["target_prob"] <= 1 and 0 <= t.row["control_prob"] <= 1
        assert len(t.history) == 20                                # one alignment value per step
