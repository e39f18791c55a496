"""Lesson 4, part 2: aggregation rules, DP-SGD clipping and malicious federated clients."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import labkit as lk
from labkit.federated import alie_z, federated_train, malicious_clients, malicious_updates, shard
from labkit.defences import aggregation as agg
from labkit.defences.dp_sgd import clip_and_noise, dp_sgd

torch.set_num_threads(1)

matrices = st.tuples(st.integers(7, 15), st.integers(1, 6), st.integers(0, 10_000)).map(
    lambda t: np.random.default_rng(t[2]).normal(size=t[:2]) * 10 ** np.random.default_rng(t[2]).uniform(-2, 2))


# ---- aggregation rules against a plain numpy reference -------------------------------------

@settings(max_examples=40, deadline=None)
@given(matrices)
def test_rules_match_numpy_reference(U):
    T = torch.tensor(U)
    np.testing.assert_allclose(agg.mean(T).numpy(), U.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(agg.median(T).numpy(), np.median(U, 0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(agg.trimmed_mean(T, trim=0.2).numpy(), stats.trim_mean(U, 0.2, axis=0),
                               rtol=1e-9, atol=1e-12)
    norms = np.linalg.norm(U, axis=1, keepdims=True)
    ref_clip = (U * np.minimum(1.0, 0.5 / norms)).mean(0)
    np.testing.assert_allclose(agg.norm_clip(T, max_norm=0.5).numpy(), ref_clip, rtol=1e-9, atol=1e-12)


def _krum_reference(U, f, m):
    n = len(U)
    scores = []
    for i in range(n):
        d = sorted(float(((U[i] - U[j]) ** 2).sum()) for j in range(n) if j != i)
        scores.append(sum(d[:n - f - 2]))
    pick = np.argsort(scores, kind="stable")[:m]
    return U[pick].mean(0), set(pick.tolist())


@settings(max_examples=30, deadline=None)
@given(matrices, st.integers(0, 2), st.integers(1, 3))
def test_krum_matches_loop_reference(U, f, m):
    ref, pick = _krum_reference(U, f, m)
    np.testing.assert_allclose(agg.krum(torch.tensor(U), f=f, m=m).numpy(), ref, rtol=1e-9, atol=1e-12)
    assert set(agg.krum_select(torch.tensor(U), f=f, m=m).tolist()) == pick


@pytest.mark.parametrize("seed", range(5))
def test_robust_rules_ignore_planted_outliers(seed):
    rng = np.random.default_rng(seed)
    honest = rng.normal(size=(8, 20))
    outliers = rng.choice([-1e6, 1e6], size=(2, 20))
    U = torch.tensor(np.concatenate([honest, outliers])[rng.permutation(10)])
    lo, hi = honest.min(0), honest.max(0)
    assert np.abs(agg.mean(U).numpy()).max() > 1e4                    # breakdown point 0
    for out in (agg.median(U), agg.trimmed_mean(U, trim=0.2)):
        assert np.all(out.numpy() >= lo - 1e-9) and np.all(out.numpy() <= hi + 1e-9)
    big = set(np.flatnonzero(np.abs(U.numpy()).max(1) > 1e5).tolist())
    assert not big & set(agg.krum_select(U, f=2, m=6).tolist())       # multi-Krum picks honest rows only
    assert np.all(np.abs(agg.krum(U, f=2).numpy()) <= np.abs(honest).max())
    assert np.linalg.norm(agg.norm_clip(U, max_norm=1.0).numpy()) <= 1.0 + 1e-9


def test_trimmed_mean_too_little_trim_lets_outliers_in():
    U = torch.tensor(np.concatenate([np.zeros((8, 3)), np.full((2, 3), 1e6)]))
    assert agg.trimmed_mean(U, trim=0.1).max() > 1e4                   # trims 1 per end, 2 outliers
    assert agg.trimmed_mean(U, trim=0.2).abs().max() == 0


def test_rules_reject_bad_settings():
    with pytest.raises(ValueError, match="2f"):
        agg.krum(torch.zeros(6, 2), f=2)
    with pytest.raises(ValueError, match="trim"):
        agg.trimmed_mean(torch.zeros(5, 2), trim=0.5)
    with pytest.raises(ValueError, match="unknown aggregation rule"):
        agg.aggregator("mode")
    with pytest.raises(ValueError, match="max_norm"):
        agg.norm_clip(torch.zeros(5, 2), max_norm=0)
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        agg.median(torch.zeros(5))


def test_aggregator_works_per_parameter_dict():
    rng = np.random.default_rng(0)
    grads = {"w": torch.tensor(rng.normal(size=(7, 3, 2))), "b": torch.tensor(rng.normal(size=(7, 3)))}
    out = agg.aggregator("median")(grads, None)
    assert out["w"].shape == (3, 2) and out["b"].shape == (3,)
    np.testing.assert_allclose(out["w"].numpy(), np.median(grads["w"].numpy(), 0))
    np.testing.assert_allclose(out["b"].numpy(), np.median(grads["b"].numpy(), 0))
    flat = agg.stack(grads)
    back = agg.unstack(flat, grads)
    assert all(torch.equal(back[k], grads[k]) for k in grads)


# ---- DP-SGD ------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(matrices, st.floats(0.01, 10))
def test_clipping_bounds_every_row(U, C):
    clipped = agg.clip_rows(torch.tensor(U), C).numpy()
    norms = np.linalg.norm(U, axis=1)
    assert np.all(np.linalg.norm(clipped, axis=1) <= C * (1 + 1e-9))
    short = norms <= C
    np.testing.assert_allclose(clipped[short], U[short])               # short rows untouched
    out = clip_and_noise(torch.tensor(U), max_norm=C, noise_multiplier=0.0)
    assert np.linalg.norm(out.numpy()) <= C * (1 + 1e-9)


def test_dp_sgd_inside_training_clips_every_per_sample_gradient():
    """Zero noise: the update is the mean of per-sample gradients clipped to C, checked
    against per-sample gradients computed one by one with plain autograd."""
    tr, _ = lk.data.digits(seed=0)
    batch = tr.subset(np.arange(16))
    C = 0.05
    seen = []
    inner = dp_sgd(max_norm=C, noise_multiplier=0.0)

    def recording(grads, gen):
        seen.append({k: v.clone() for k, v in grads.items()})
        return inner(grads, gen)

    net0 = lk.models.train(batch, epochs=1, seed=3, batch_size=16, lr=1e-9)   # initial weights
    import copy
    net = copy.deepcopy(net0)
    lk.models.train(batch, model=net, epochs=1, batch_size=16, lr=0.1, seed=3, aggregate=recording)
    per = agg.stack(seen[0])
    assert per.shape[0] == 16
    clipped = agg.clip_rows(per, C)
    assert torch.all(clipped.norm(dim=1) <= C * (1 + 1e-6))
    assert per.norm(dim=1).max() > C                                  # clipping really bit
    # oracle: one sample at a time with autograd, same order as the single batch
    order = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    rows = []
    for i in order.tolist():
        net0.zero_grad()
        loss = torch.nn.functional.cross_entropy(net0(torch.tensor(batch.X[i:i + 1])), torch.tensor(batch.y[i:i + 1]))
        loss.backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in net0.parameters()]))
    np.testing.assert_allclose(per.numpy(), torch.stack(rows).numpy(), rtol=1e-4, atol=1e-6)
    upd = inner(seen[0], None)
    np.testing.assert_allclose(agg.stack({k: v[None] for k, v in upd.items()})[0].numpy(),
                               clipped.mean(0).numpy(), rtol=1e-5, atol=1e-8)


def test_dp_sgd_noise_is_seeded_and_matters():
    tr, te = lk.data.digits(seed=0)
    small = tr.subset(np.arange(300))
    a = lk.models.train(small, epochs=3, seed=1, aggregate=dp_sgd(max_norm=1.0, noise_multiplier=1.0))
    b = lk.models.train(small, epochs=3, seed=1, aggregate=dp_sgd(max_norm=1.0, noise_multiplier=1.0))
    c = lk.models.train(small, epochs=3, seed=1, aggregate=dp_sgd(max_norm=1.0, noise_multiplier=0.0))
    pa, pb, pc = (lk.models.predict_proba(m, te.X) for m in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert np.abs(pa - pc).max() > 1e-3
    with pytest.raises(ValueError, match="noise_multiplier"):
        dp_sgd(noise_multiplier=-1)


# ---- federated simulation and malicious clients -----------------------------------------------

def test_shards_are_disjoint_and_cover():
    tr, _ = lk.data.digits(seed=0)
    for iid in (True, False):
        parts = shard(tr, 10, iid=iid, rng=0)
        allrows = np.concatenate(parts)
        assert np.array_equal(np.sort(allrows), np.arange(len(tr)))
    classes = [np.unique(tr.y[p]).size for p in shard(tr, 10, iid=False, rng=0)]
    assert max(classes) <= 4 and np.mean(classes) <= 3


def test_malicious_updates_definitions():
    rng = np.random.default_rng(0)
    honest = torch.tensor(rng.normal(size=(8, 5)))
    own = torch.tensor(rng.normal(size=(2, 5)))
    assert torch.equal(malicious_updates("sign_flip", honest, own, boost=3.0), -3.0 * own)
    assert torch.equal(malicious_updates("scaling", honest, own, boost=5.0), 5.0 * own)
    alie = malicious_updates("little_is_enough", honest, own, z=1.0)
    ref = honest.numpy().mean(0) - honest.numpy().std(0)
    np.testing.assert_allclose(alie.numpy(), np.stack([ref, ref]))
    assert alie_z(10, 2) == pytest.approx(0.2533, abs=1e-3)          # Baruch et al.'s z_max
    with pytest.raises(ValueError, match="unknown malicious"):
        malicious_updates("gaussian", honest, own)


@pytest.fixture(scope="module")
def fed_runs():
    tr, te = lk.data.digits(seed=0)
    runs = {"clean": federated_train(tr, test=te, seed=0)}
    for attack in ("sign_flip", "scaling"):
        for rule in ("mean", "median", "trimmed_mean", "krum"):
            runs[attack, rule] = federated_train(tr, test=te, malicious=2, attack=attack,
                                                 aggregate=rule, seed=0)
    return runs


def test_federated_clean_model_learns(fed_runs):
    acc = fed_runs["clean"].accuracy
    assert acc.shape == (40,) and acc[-1] >= 0.9 and acc[-1] > acc[0]


@pytest.mark.parametrize("attack", ["sign_flip", "scaling"])
def test_two_malicious_clients_break_mean_not_robust_rules(fed_runs, attack):
    base = fed_runs["clean"].accuracy[-1]
    assert base - fed_runs[attack, "mean"].accuracy[-1] >= 0.30
    for rule in ("median", "trimmed_mean", "krum"):
        assert base - fed_runs[attack, rule].accuracy[-1] <= 0.05, rule


def test_federated_is_deterministic_and_validates():
    tr, te = lk.data.digits(seed=0)
    a = federated_train(tr, test=te, malicious=2, rounds=3, seed=4)
    b = federated_train(tr, test=te, malicious=2, rounds=3, seed=4)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    np.testing.assert_array_equal(a.malicious_idx, b.malicious_idx)
    with pytest.raises(ValueError, match="malicious"):
        federated_train(tr, malicious=10)
    with pytest.raises(ValueError, match="unknown malicious"):
        federated_train(tr, malicious=1, attack="nope")


def test_federated_runner_honours_cli_contract():
    from labkit.cli.experiments import JSON_FIELDS

    r = lk.run("federated", defence="median", rate=0.2, params={"rounds": 15})
    d = r.as_dict()
    assert set(JSON_FIELDS) <= set(d)
    assert len(d["params"]["malicious_clients"]) == 2 and d["n_poison"] > 0 and d["attack_success"] is None
    assert d["clean_accuracy"] < d["clean_accuracy_no_attack"] - 0.3
    assert d["clean_accuracy_defended"] > d["clean_accuracy"] + 0.3
    with pytest.raises(ValueError, match="does not apply to federated"):
        lk.run("federated", defence="gradient_audit", params={"rounds": 2})


def test_malicious_clients_agree_with_federated_train():
    """The crafting verb records the seed of its shards and clients; federated_train with
    that ``shard_seed`` trains on the same shards with the same malicious clients."""
    tr, te = lk.data.digits(seed=0)
    p = malicious_clients(tr, rate=0.2, rng=7)
    a = federated_train(tr, test=te, malicious=2, rounds=2, seed=7, shard_seed=p.params["shard_seed"])
    b = federated_train(tr, test=te, malicious_clients=p.params["malicious_clients"], rounds=2, seed=7,
                        shard_seed=p.params["shard_seed"])
    assert p.params["malicious_clients"] == a.malicious_idx.tolist()
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    parts = shard(tr, 10, rng=np.random.default_rng(p.params["shard_seed"]))
    rows = np.concatenate([parts[i] for i in a.malicious_idx])
    assert sorted(rows.tolist()) == p.poison_idx.tolist()
