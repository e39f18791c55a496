"""The whole registry, one property test each: every attack and every detector through the
contract checkers, every applicable (attack, defence) pair end to end on a tiny setting,
every other pair refused at once, and an attack added with one function and one table line."""
import json
import time

import numpy as np
import pytest

import labkit as lk
from labkit import experiment, registry
from labkit.cli import main
from labkit.contracts import check_attack, check_detector
from labkit.defences.gradient_audit import head_gradients
from labkit.defences.provenance import create_manifest
from labkit.registry import ATTACKS, DEFENCES, AttackSpec

#: Per scenario, the settings that make a run take seconds (CLI --set values).
TINY = {"scratch": {}, "transfer": {"n_targets": 1, "head_epochs": 2, "steps": 2},
        "finetune": {"n_targets": 1, "steps": 2}, "federated": {"rounds": 2}, "text": {}, "instruct": {"epochs": 3},
        "rag": {}}
#: Per scenario, the dataset its tiny runs use (digits unless the scenario needs text).
TINY_DATA = {"text": "pydoc_topics", "instruct": "pydoc_instructions", "rag": "pydoc_rag"}
TINY_DEFENCE = {"dpa": {"k": 5}, "confident_learning": {"n_folds": 2}}
PAIRS = [(a, d) for a, spec in ATTACKS.items() for d in spec.defences]
OTHERS = [(a, d) for a in ATTACKS for d in DEFENCES if d not in ATTACKS[a].defences]


def _sets(pairs: dict, flag: str) -> list:
    return [x for k, v in pairs.items() for x in (flag, f"{k}={v}")]


def _run_cli(capsys, attack, defence=None, dataset=None):
    dataset = dataset or TINY_DATA.get(ATTACKS[attack].scenario, "digits")
    argv = ["run", attack, "--dataset", dataset, "--json", *_sets(TINY[ATTACKS[attack].scenario], "--set")]
    if defence:
        argv += ["--defence", defence, *_sets(TINY_DEFENCE.get(defence, {}), "--defence-set")]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _craft_in_scenario(spec):
    """``fn(data, rng, **kw)``: the attack's verb with what its scenario gives the attacker
    (the engine's public ``prepare`` and ``craft``)."""
    tiny = TINY[spec.scenario]
    ctx = experiment.prepare(spec.name, dataset=TINY_DATA.get(spec.scenario, "digits"), seed=0, train_kw={"epochs": 5},
                             params={k: v for k, v in tiny.items() if k in spec.scenario_settings or k in spec.settings})

    def craft(data, rng=None, **kw):
        return experiment.craft(ctx.using(**kw) if kw else ctx, 0, data=data, rng=rng)

    craft.__name__ = spec.name
    return craft, ctx.setting


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_meets_the_contract(name):
    spec = ATTACKS[name]
    craft, setting = _craft_in_scenario(spec)
    p = check_attack(craft, setting.train, changes_rows=spec.scenario != "federated")
    assert p.attack == name


def _detector_inputs(dspec, data, model):
    return {"pixels": data.flat, "words": data.flat, "features": lambda: lk.models.embed(model, data.X),
            "gradients": lambda: head_gradients(model, data.X, data.y)}[dspec.needs]()


KEY = b"a reviewer key for the tests only"


def _engine_given(dspec, poisoned, inputs) -> dict:
    """What the engine hands a detector besides its inputs: ``n_classes``, ``rng``, for a
    provenance check a manifest of the clean data signed before the attack (and its key), and
    for a traceback an incident report (here: two rows' features and their clean labels)."""
    takes = lk.registry.settings_of(dspec.fn)
    given = {"n_classes": poisoned.n_classes, "rng": 0}
    if "manifest" in takes:
        given.update(manifest=create_manifest(poisoned.clean, key=KEY, source="tests", created="2026-01-01"), key=KEY)
    if dspec.traces_incident:
        given.update(incident_features=inputs[-2:], incident_labels=poisoned.clean.y[-2:])
    return {k: v for k, v in given.items() if k in takes}


@pytest.mark.parametrize("name", [n for n, d in DEFENCES.items() if d.kind == "detector"])
def test_every_detector_meets_the_contract(name, tiny_poisoned):
    dspec = DEFENCES[name]
    poisoned, model = tiny_poisoned[dspec.needs == "words"]
    inputs = _detector_inputs(dspec, poisoned, model)
    extra = _engine_given(dspec, poisoned, inputs)
    check_detector(dspec.fn, inputs, poisoned.y, **extra, **TINY_DEFENCE.get(name, {}))


@pytest.mark.parametrize("name", [n for n, d in DEFENCES.items() if d.kind == "detector"])
def test_no_detector_reads_the_ground_truth(name, tiny_poisoned):
    """A detector sees arrays only: scrambling the PoisonedDataset's ground truth (which rows
    are poisons) cannot change its verdict."""
    dspec = DEFENCES[name]
    poisoned, model = tiny_poisoned[dspec.needs == "words"]
    scrambled = lk.types.make_poisoned(poisoned.clean, X=poisoned.X, y=poisoned.y,
                                       idx=np.random.default_rng(1).choice(len(poisoned), 7, replace=False),
                                       attack="scrambled", params={})
    extra = _engine_given(dspec, poisoned, _detector_inputs(dspec, poisoned, model))
    a = dspec.fn(_detector_inputs(dspec, poisoned, model), poisoned.y, **extra, **TINY_DEFENCE.get(name, {}))
    b = dspec.fn(_detector_inputs(dspec, scrambled, model), scrambled.y, **extra, **TINY_DEFENCE.get(name, {}))
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.flagged, b.flagged)


@pytest.fixture(scope="module")
def tiny_poisoned():
    """``(poisoned, model)`` pairs: [0] a digits backdoor, [1] a text backdoor (words detectors)."""
    tr, _ = lk.data.digits(seed=0)
    p = lk.attacks.add_backdoor(tr, rate=0.05, rng=0)
    text = lk.attacks.insert_trigger(lk.data.pydoc_topics(seed=0).train, rng=0)
    return (p, lk.models.train(p, epochs=5, seed=0)), (text, lk.models.text_classifier(text))


@pytest.mark.parametrize("attack,defence", PAIRS)
def test_every_applicable_pair_runs_through_the_cli(capsys, attack, defence):
    code, out, err = _run_cli(capsys, attack, defence)
    assert code == 0, err
    row = json.loads(out)
    assert row["attack"] == attack and row["defence"] == defence
    assert 0 <= row["clean_accuracy"] <= 1 and row["clean_accuracy_defended"] is not None


@pytest.mark.parametrize("attack,defence", OTHERS)
def test_every_other_pair_is_refused_before_any_work(capsys, attack, defence):
    t0 = time.perf_counter()
    code, _, err = _run_cli(capsys, attack, defence)
    assert code == 2 and f"{defence}" in err and "does not apply" in err and len(err.strip().splitlines()) == 1
    assert time.perf_counter() - t0 < 2        # refused before data, training or crafting


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_audit_works_for_every_attack(capsys, attack):
    assert main(["audit", "--attack", attack, "--dataset", TINY_DATA.get(ATTACKS[attack].scenario, "digits"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_rows"] > 0 and len(doc["top"]) == 10 and 0 <= doc["auroc_vs_truth"] <= 1


def test_list_json_is_the_registry(capsys):
    assert main(["list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_name = {a["name"]: a for a in doc["attacks"]}
    assert set(by_name) == set(ATTACKS) and {d["name"] for d in doc["defences"]} == set(DEFENCES)
    assert by_name["backdoor"]["settings"]["rate"] == 0.05            # read from add_backdoor's signature
    assert by_name["clean_label"]["scenario_settings"]["n_targets"] == 10
    assert by_name["clean_label"]["scenario"] == "transfer"
    assert set(by_name["label_flip"]["defences"]) == {"knn_sanitisation", "confident_learning", "dpa"}


# ---- adding an attack: one function (its file) and one table line ---------------------------

def shift_labels(data, *, rate: float = 0.2, rng=None):
    """A tiny example attack: move a fraction of the labels one class up."""
    from labkit.rng import as_rng
    from labkit.types import make_poisoned

    rng = as_rng(rng)
    idx = np.sort(rng.choice(len(data), int(rate * len(data)), replace=False))
    y = data.y.copy()
    y[idx] = (y[idx] + 1) % data.n_classes
    return make_poisoned(data, y=y, idx=idx, attack="shift_labels", params={"rate": rate})


def test_a_new_attack_needs_one_file_and_one_line(monkeypatch, capsys):
    spec = AttackSpec("shift_labels", shift_labels, "scratch", "move labels one class up", ("knn_sanitisation",))
    monkeypatch.setattr(registry, "ATTACKS", {"shift_labels": spec})       # the one line
    assert main(["list"]) == 0 and "shift_labels" in capsys.readouterr().out
    assert main(["run", "shift_labels", "--defence", "knn_sanitisation", "--rate", "0.3", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["n_poison"] == int(0.3 * row["n_train"]) and row["detection"]["recall"] > 0.5
    assert main(["tour", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["attack"] == "shift_labels"
    assert main(["audit", "--attack", "shift_labels", "--json"]) == 0
    capsys.readouterr()
    assert main(["run", "shift_labels", "--defence", "strip"]) == 2           # not declared: refused
    craft, setting = _craft_in_scenario(spec)                                  # the contract test
    check_attack(craft, setting.train)
