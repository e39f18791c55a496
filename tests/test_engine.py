"""The engine's public pieces (prepare, craft, trial, defend, measure, run, sweep): same
arguments, same numbers, however often and in whatever order they are called; no cache."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import labkit as lk
from labkit import experiment, registry
from labkit.registry import ATTACKS, AttackSpec
from labkit.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[1]
#: A targeted run that takes seconds: two targets, two crafting steps, a short head.
TINY_CL = {"n_targets": 2, "head_epochs": 2, "steps": 2, "n_poisons": 5}


def _json(result) -> str:
    d = result.as_dict()
    d.pop("seconds")
    return json.dumps(d, sort_keys=True)


def _digest(p) -> str:
    import hashlib
    return hashlib.sha256(np.ascontiguousarray(p.X[p.poison_idx]).tobytes()).hexdigest()[:12]


def test_three_runs_in_one_process_agree_controls_included():
    runs = [lk.run("clean_label", seed=3, params=TINY_CL) for _ in range(3)]
    assert len({_json(r) for r in runs}) == 1
    controls = {_digest(t.control) for r in runs for t in r.trials}
    assert len(controls) == 2                       # one control per target, the same each time
    assert runs[0].control_success is not None


def test_a_fresh_process_agrees_with_this_one():
    here = lk.run("clean_label", seed=3, params=TINY_CL)
    sets = [x for k, v in TINY_CL.items() for x in ("--set", f"{k}={v}")]
    out = subprocess.run([sys.executable, "-m", "labkit", "run", "clean_label", "--seed", "3", "--json", *sets],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    there = json.loads(out)
    there.pop("seconds")
    assert json.dumps(there, sort_keys=True) == _json(here)


def test_a_trial_alone_equals_the_same_trial_inside_a_run():
    """Trial 1 does not depend on trial 0 having run first (independent streams)."""
    ctx = experiment.prepare("clean_label", seed=3, params=TINY_CL)
    alone = experiment.trial(ctx, 1)
    inside = lk.run("clean_label", seed=3, params=TINY_CL).trials[1]
    assert _digest(alone.poisoned) == _digest(inside.poisoned)
    assert _digest(alone.control) == _digest(inside.control)
    assert alone.row == inside.row


def test_trials_of_one_seed_use_different_streams():
    ctx = experiment.prepare("backdoor", seed=0, train_kw={"epochs": 2})
    a = experiment.trial_rng(0, 0, "attack").random(4)
    assert not np.allclose(a, experiment.trial_rng(0, 1, "attack").random(4))
    assert not np.allclose(a, experiment.trial_rng(0, 0, "control").random(4))
    assert experiment.craft(ctx, 0).poison_idx.tolist() == experiment.craft(ctx, 0).poison_idx.tolist()


def test_sweep_over_a_defence_setting_equals_separate_runs():
    kw = {"train_kw": {"epochs": 5}}
    swept = lk.sweep("backdoor", "expected_rate", [0.01, 0.05], defence="spectral_signature", seeds=(1,),
                     progress=False, **kw)
    for r, guess in zip(swept, (0.01, 0.05)):
        alone = lk.run("backdoor", defence="spectral_signature", seed=1, defence_params={"expected_rate": guess}, **kw)
        assert _json(r) == _json(alone)
    assert swept[0].detection["n_flagged"] < swept[1].detection["n_flagged"]


def test_sweep_refuses_a_name_that_is_no_setting():
    with pytest.raises(ValueError, match="no setting"):
        lk.sweep("gradient_matching", "not_a_setting", [1], defence="dp_sgd", progress=False)


def test_defend_reuses_a_trial_and_equals_run_with_the_defence():
    ctx = experiment.prepare("backdoor", seed=2, train_kw={"epochs": 5})
    t = experiment.trial(ctx, 0)
    d = experiment.defend(ctx, t, "activation_clustering")
    r = lk.run("backdoor", defence="activation_clustering", seed=2, train_kw={"epochs": 5})
    assert d.row["detection"] == r.detection
    assert d.row["attack_success_defended"] == r.attack_success_defended


def test_using_shares_the_setting_and_checks_settings():
    ctx = experiment.prepare("clean_label", seed=0, params={"n_targets": 1, "head_epochs": 2})
    other = ctx.using("feature_collision", n_poisons=3, steps=2)
    assert other.setting is ctx.setting and other.attack == "feature_collision"
    with pytest.raises(ValueError, match="unknown clean_label setting"):
        ctx.using(not_a_setting=1)
    with pytest.raises(ValueError, match="scenario"):
        ctx.using("backdoor")
    with pytest.raises(ValueError, match="new prepare"):
        ctx.using(n_targets=3)


def test_what_the_engine_fills_in_is_never_a_user_setting():
    for spec in ATTACKS.values():
        assert set(spec.takes) <= set(registry.inspect.signature(spec.craft).parameters)
        assert not set(spec.settings) & (set(spec.takes) | set(registry.ENGINE_PROVIDES))


def test_an_attack_asking_for_what_its_scenario_does_not_give_fails_loudly():
    spec = AttackSpec("needs_extractor", ATTACKS["clean_label"].craft, "scratch", "test only",
                      takes=("test", "target_idx", "target_class", "extractor", "guard"))
    ctx = experiment.prepare("backdoor", seed=0, train_kw={"epochs": 2})
    with pytest.raises(ValueError, match="gives the attacker no"):
        experiment.craft(experiment.Context(spec, ctx.scenario, ctx.setting, {}, {}, ctx.train_kw, 0), 0)


def test_a_defence_kind_the_scenario_does_not_support_is_refused(monkeypatch):
    planted = AttackSpec("planted", ATTACKS["clean_label"].craft, "transfer", "test only", ("strip",),
                         takes=ATTACKS["clean_label"].takes)
    monkeypatch.setitem(registry.ATTACKS, "planted", planted)
    with pytest.raises(ValueError, match="inference defence"):
        registry.resolve("planted", "strip")


def test_every_registered_pair_has_a_kind_its_scenario_supports():
    for spec in ATTACKS.values():
        for d in spec.defences:
            assert registry.DEFENCES[d].kind in SCENARIOS[spec.scenario].defence_kinds, (spec.name, d)


def test_federated_shards_agree_between_attack_and_training():
    """The rows the attack marks are the malicious clients' shards the training uses."""
    split = lk.data.digits(seed=0)
    p = lk.federated.malicious_clients(split.train, rate=0.2, rng=5)
    parts = lk.federated.shard(split.train, 10, rng=np.random.default_rng(p.params["shard_seed"]))
    rows = np.sort(np.concatenate([parts[c] for c in p.params["malicious_clients"]]))
    np.testing.assert_array_equal(rows, p.poison_idx)
    res = lk.federated.federated_train(split.train, test=split.test, malicious_clients=p.params["malicious_clients"],
                                       shard_seed=p.params["shard_seed"], rounds=1)
    assert res.params["malicious_rows"] == p.n_poison


def test_no_trial_stream_replays_the_seeds_own_stream():
    """numpy's seeding ignores trailing zeros: a stream [s, 0, 0] would replay default_rng(s),
    which the scenarios use to draw targets."""
    own = np.random.default_rng(7).random(4)
    for i in range(3):
        for stream in experiment.STREAMS:
            assert not np.allclose(experiment.trial_rng(7, i, stream).random(4), own)
