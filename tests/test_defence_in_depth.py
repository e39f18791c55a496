"""Lesson 5: provenance manifests, data audits and release monitoring."""
import json

import numpy as np
import pytest

import labkit as lk
from labkit.defences.audit import audit, robust_z
from labkit.defences.monitoring import monitor, psi
from labkit.defences.provenance import (ManifestError, create_manifest, load_manifest,
                                        save_manifest, verify)

KEY = b"0123456789abcdef-workshop-key"
SEEDS = (0, 1, 2)   # development seeds (labkit.claims.DEV_SEEDS); reporting seeds are for reproduce alone


def test_simulated_tampering_is_found_exactly():
    from labkit.defences.provenance import simulate_tampering

    train = lk.data.digits().train
    manifest = create_manifest(train, key=KEY, source="test")
    tampered, truth = simulate_tampering(train, rng=4)
    report = verify(tampered, manifest, key=KEY)
    assert (sorted(report.modified), list(report.removed), list(report.added)) == \
        (sorted(truth["modified"]), truth["removed"], truth["added"])


def _tamper(data, rng):
    """Modify 3 rows, delete 2, append 2; returns the new data and the expected report."""
    X, y = data.X.copy(), data.y.copy()
    modified = np.sort(rng.choice(np.arange(10, 600), 3, replace=False))
    X[modified, 0, 0, 0] = 1.0 - X[modified, 0, 0, 0]
    removed = np.sort(rng.choice(np.arange(700, 1300), 2, replace=False))
    keep = np.setdiff1d(np.arange(len(y)), removed)
    X, y = np.concatenate([X[keep], X[:2]]), np.concatenate([y[keep], [3, 4]])
    added = [len(y) - 2, len(y) - 1]
    return data.replace(X=X, y=y), modified.tolist(), removed.tolist(), added


@pytest.mark.parametrize("seed", SEEDS)
def test_provenance_finds_exactly_the_tampered_rows(seed, tmp_path):
    train = lk.data.digits(seed=seed).train
    manifest = create_manifest(train, key=KEY, source="sklearn.datasets.load_digits",
                               created="2026-01-01T00:00:00+00:00")
    path = save_manifest(manifest, tmp_path / "digits.json")
    assert verify(train, load_manifest(path), key=KEY).ok
    tampered, modified, removed, added = _tamper(train, np.random.default_rng(seed))
    report = verify(tampered, manifest, key=KEY)
    assert list(report.modified) == modified        # the candidate's indices == original (before deletions)
    assert list(report.removed) == removed and list(report.added) == added


def test_tampered_manifest_or_wrong_key_is_rejected(tmp_path):
    train = lk.data.digits().train
    manifest = create_manifest(train, key=KEY, source="test")
    edited = json.loads(json.dumps(manifest))
    edited["rows"][5] = edited["rows"][6]           # hide a change inside the manifest
    with pytest.raises(ManifestError, match="signature"):
        verify(train, edited, key=KEY)
    with pytest.raises(ManifestError, match="signature"):
        verify(train, manifest, key=b"another-key-of-16-bytes")
    with pytest.raises(ValueError, match="16 bytes"):
        create_manifest(train, key=b"short", source="test")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ManifestError):
        load_manifest(tmp_path / "bad.json")


def test_robust_z_hand_worked():
    z = robust_z([1.0, 2.0, 3.0, 4.0, 100.0])
    # median 3, MAD 1 -> scale 1.4826
    assert z[2] == 0 and z[4] == pytest.approx(97 / 1.4826)
    assert robust_z([1.0, 1.0, 1.0]).tolist() == [0.0, 0.0, 0.0]
    # MAD 0 -> mean absolute deviation: median 0, deviations (0, 0, 0, 4) -> scale 1.2533
    assert robust_z([0.0, 0.0, 0.0, 4.0])[3] == pytest.approx(4 / 1.2533)


def test_audit_finds_duplicates_and_near_duplicates(digits):
    X, y = digits.train.X.copy(), digits.train.y.copy()
    X[10], y[10] = X[20], (y[20] + 1) % 10          # an exact copy with another label
    X[30] = np.clip(X[40] + 0.01, 0, 1)             # a near copy
    rep = audit(digits.train.replace(X=X, y=y))
    assert any({10, 20} <= set(g) for g in rep.conflicting_duplicates)
    assert (30, 40) in rep.near_duplicates
    assert rep.class_counts.sum() == len(y) and "exact duplicate groups" in rep.table()


@pytest.mark.parametrize("attack,kw", [("flip", {"rate": 0.3}),
                                       ("backdoor", {"trigger": "patch", "target_class": 0, "rate": 0.05})])
def test_audit_ranks_default_poisons_first(attack, kw):
    aucs = []
    for seed in SEEDS:
        train = lk.data.digits(seed=seed).train
        fn = lk.attacks.flip_labels if attack == "flip" else lk.attacks.add_backdoor
        poisoned = fn(train, rng=seed, **kw)
        aucs.append(lk.metrics.auroc(audit(poisoned.as_dataset()).suspicion, poisoned.is_poison))
    assert np.mean(aucs) >= 0.9


def test_psi_hand_worked():
    assert psi([0, 1], [0, 1], n_classes=2) == 0.0
    # shares (0.5, 0.5) -> (0.75, 0.25): 0.25 ln 1.5 - 0.25 ln 0.5
    assert psi([0, 1, 0, 1], [0, 0, 0, 1], n_classes=2) == pytest.approx(0.25 * np.log(1.5) - 0.25 * np.log(0.5))


@pytest.mark.parametrize("seed", SEEDS)
def test_monitoring_alerts_on_backdoor_and_stays_quiet_on_clean_retrain(seed):
    train, test = lk.data.digits(seed=seed)
    canary, incoming = lk.data.split(test, test_size=0.5, rng=seed)
    reference = lk.models.train(train, seed=seed)
    poisoned = lk.attacks.add_backdoor(train, trigger="patch", target_class=0, rate=0.05, rng=seed)
    is_triggered = np.random.default_rng(seed).random(len(incoming)) < 0.2
    traffic = np.where(is_triggered[:, None, None, None], poisoned.trigger(incoming.X), incoming.X)
    kw = dict(canary=canary, traffic=traffic, trusted=canary, rng=seed)
    clean = monitor(reference, lk.models.train(train, seed=seed + 10), **kw)
    bad = monitor(reference, lk.models.train(poisoned, seed=seed), **kw)
    assert clean.quiet, clean.alerts
    assert not bad.quiet and any(a.startswith("traffic_drift") for a in bad.alerts)
    # the blind spot taught in the notebook: without triggered traffic nothing fires
    assert monitor(reference, lk.models.train(poisoned, seed=seed), **{**kw, "traffic": incoming.X}).quiet


# ---- capstone ------------------------------------------------------------------------------
from labkit.lessons import l05 as challenge  # noqa: E402


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_pipeline_reaches_f1_08_on_the_capstone(seed):
    data = challenge.mystery(seed)
    assert type(data) is lk.Dataset                       # no ground truth in the learner's hands
    result = challenge.score(challenge.reference_defence(data, seed=seed).flagged, seed=seed)
    assert result["f1"] >= 0.8, result
    assert set(result["per_family"]) == set(challenge.FAMILIES)


def test_capstone_is_seeded_and_scores_validate():
    a, b = challenge.mystery(5), challenge.mystery(5)
    assert np.array_equal(a.y, b.y) and not np.array_equal(a.y, challenge.mystery(6).y)
    nothing = challenge.score(np.zeros(len(a), bool), seed=5)
    assert nothing["recall"] == 0 and nothing["precision"] is None and nothing["f1"] == 0.0   # undefined, not perfect
    everything = challenge.score(np.arange(len(a)), seed=5)
    assert everything["recall"] == 1.0 and everything["precision"] == pytest.approx(
        everything["n_poison"] / len(a))
    with pytest.raises(ValueError, match="row indices"):
        challenge.score([len(a)], seed=5)


# ---- robust training ------------------------------------------------------------------------
def test_robust_training_options_are_seeded_and_validated(tiny):
    import torch

    flat = lambda net: torch.cat([p.detach().flatten() for p in net.parameters()])
    a = lk.models.train(tiny, seed=0, epochs=3, augment=True, adversarial_eps=0.1)
    b = lk.models.train(tiny, seed=0, epochs=3, augment=True, adversarial_eps=0.1)
    c = lk.models.train(tiny, seed=0, epochs=3)
    assert torch.equal(flat(a), flat(b)) and not torch.equal(flat(a), flat(c))
    with pytest.raises(ValueError, match="adversarial_eps"):
        lk.models.train(tiny, adversarial_eps=2.0)


def test_fgsm_stays_in_the_ball(tiny):
    import torch

    from labkit.models import _fgsm

    net = lk.models.train(tiny, seed=0, epochs=2)
    x = torch.tensor(tiny.X)
    adv = _fgsm(net, x, torch.tensor(tiny.y), 0.1)
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


# ---- command line ---------------------------------------------------------------------------
def test_manifest_cli_exit_codes(tmp_path, monkeypatch, capsys):
    from labkit.__main__ import main

    monkeypatch.setenv("LABKIT_MANIFEST_KEY", "a-workshop-key-of-some-length")
    out = tmp_path / "m.json"
    assert main(["manifest", "create", "--out", str(out)]) == 0
    assert main(["manifest", "verify", "--manifest", str(out)]) == 0
    train = lk.data.digits().train
    X = train.X.copy()
    X[7] = 0.0
    np.savez(tmp_path / "c.npz", X=X, y=train.y)
    assert main(["manifest", "verify", "--manifest", str(out), "--npz", str(tmp_path / "c.npz")]) == 1
    assert "modified [7]" in capsys.readouterr().out
    out.write_text(out.read_text().replace('"source": "', '"source": "evil '))
    assert main(["manifest", "verify", "--manifest", str(out)]) == 2
    monkeypatch.delenv("LABKIT_MANIFEST_KEY")
    assert main(["manifest", "create", "--out", str(out)]) == 2
    assert "LABKIT_MANIFEST_KEY" in capsys.readouterr().err


def test_challenge_and_audit_cli(tmp_path, capsys):
    from labkit.__main__ import main

    assert main(["challenge", "--seed", "3"]) == 0
    assert "hidden mix" in capsys.readouterr().out
    flags = tmp_path / "flags.txt"
    flags.write_text("\n".join(map(str, range(20))))
    assert main(["challenge", "--seed", "3", "--score", str(flags), "--json"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["f1"] <= 1
    assert main(["audit", "--attack", "label_flip", "--rate", "0.3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["auroc_vs_truth"] >= 0.85
