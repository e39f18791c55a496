import numpy as np
import pytest

import labkit as lk
from labkit.defences.dpa import certified_radius


def test_unanswered_exercise_does_not_raise(capsys):
    assert not lk.checks.check("l1_certified_radius", None)
    assert "not answered yet" in capsys.readouterr().out


def test_lesson1_exercises(capsys):
    assert lk.checks.check("l1_certified_radius", 2)
    assert not lk.checks.check("l1_certified_radius", 4)
    assert not lk.checks.check("l1_certified_radius", 1)   # 2r + 1 <= 4 without the tie rule
    assert lk.checks.check("l1_which_evades", "class_pair")
    assert not lk.checks.check("l1_which_evades", "random")
    assert lk.checks.check("l1_sanitiser_settings", {"k": 10, "eta": 0.5})
    assert not lk.checks.check("l1_sanitiser_settings", {"k": 3, "eta": 0.9})
    assert not lk.checks.check("l1_certified_radius", "two")    # not a number: a message, no error
    assert not lk.checks.check("l1_certified_radius", 2.5)      # not a whole number
    lk.checks.hint("l1_certified_radius")
    lk.checks.solution("l1_certified_radius")
    assert "radius" in capsys.readouterr().out


def test_named_choice_exercises_ignore_case_and_spacing():
    assert lk.checks.check("l0_which_metric", "Attack Success")
    assert not lk.checks.check("l0_which_metric", "clean_accuracy")
    assert lk.checks.check("l5_blind_spot", "No check")
    assert not lk.checks.check("l5_blind_spot", "traffic_drift")


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(KeyError, match="l1_certified_radius"):
        lk.checks.check("nope", 1)


def test_check_returns_a_verdict_that_a_notebook_does_not_display(capsys):
    right = lk.checks.check("l0_which_metric", "attack_success")
    wrong = lk.checks.check("l0_which_metric", "clean_accuracy")
    assert right and not wrong and right == True and wrong == False   # noqa: E712
    assert right._ipython_display_() is None                 # IPython shows nothing for it
    out = capsys.readouterr().out
    assert "[l0_which_metric] correct" in out and "[l0_which_metric] not yet" in out


@pytest.mark.parametrize("name", ["l6_allow_list", "l6_scan_allow", "l6_tampered"])
def test_lesson6_exercises_are_in_the_one_registry(name, capsys, monkeypatch):
    monkeypatch.setattr(lk.checks, "_HINTS_SHOWN", {})     # a fresh kernel: no hint shown yet
    assert name in lk.checks.EXERCISES
    assert not lk.checks.check(name, None)
    assert not lk.checks.check(name, ...)
    lk.checks.hint(name)
    lk.checks.solution(name)
    out = capsys.readouterr().out
    assert out.count("not answered yet") == 2 and f"[{name}] hint 1 of" in out and "solution" in out


@pytest.mark.parametrize("name", ["l6_allow_list", "l6_scan_allow", "l6_tampered"])
def test_lesson6_right_answer_passes_wrong_answer_fails(name, capsys):
    """Loads run in the sandboxed subprocess: a wrong answer never fires in this process."""
    ex = lk.checks.EXERCISES[name]
    assert lk.checks.check(name, ex.recorded("answer"))
    assert not lk.checks.check(name, ex.recorded("wrong"))
    out = capsys.readouterr().out
    assert f"[{name}] correct" in out and f"[{name}] not yet" in out


def test_lesson6_tampered_needs_the_lock_and_a_name(capsys):
    lock = lk.checks.EXERCISES["l6_tampered"].recorded("answer")[1]
    assert not lk.checks.check("l6_tampered", (None, lock))      # the notebook's placeholder
    assert not lk.checks.check("l6_tampered", "shard_1.pt")      # the lock is missing
    out = capsys.readouterr().out
    assert "set TAMPERED" in out and "(TAMPERED, LOCK)" in out


def test_dpa_radius_follows_the_rule_the_lesson_states():
    # notebook 01 section 7: a lead of 2r + 1 is always enough; a lead of 2r is enough
    # against a rival with a larger class index (the winner keeps ties against it).
    pred, radius = certified_radius([[0, 0, 0, 21, 0, 0, 0, 0, 17, 12],
                                     [0, 17, 0, 21, 0, 0, 0, 0, 0, 12]])
    assert pred.tolist() == [3, 3]
    assert radius.tolist() == [2, 1]   # lead 4 over class 8, then over class 1


def test_lesson3_knn_k_exercise(capsys):
    assert lk.checks.check("l3_knn_k", 39)
    assert not lk.checks.check("l3_knn_k", 38)   # 19 against 19: a tie
    assert not lk.checks.check("l3_knn_k", 41)   # counts the poison as its own neighbour
    assert not lk.checks.check("l3_knn_k", "many")
    out = capsys.readouterr().out
    assert "[l3_knn_k] correct" in out and out.count("[l3_knn_k] not yet") == 3


@pytest.fixture(scope="module")
def backdoor_victim():
    poisoned = lk.attacks.add_backdoor(lk.data.digits(seed=0).train, rate=0.05, rng=0)
    model = lk.models.train(poisoned, seed=0)
    return poisoned, lk.models.embed(model, poisoned.X)


def test_lesson2_rows_to_drop_accepts_the_notebooks_suggestions(backdoor_victim):
    poisoned, feats = backdoor_victim
    ac = lk.defences.activation_clustering(feats, poisoned.y, rng=0)
    assert lk.checks.check("l2_rows_to_drop", ac.flagged_idx)        # the placeholder's example
    ss = lk.defences.spectral_signature(feats, poisoned.y, expected_rate=0.04)
    assert ss.flagged_idx.size <= 100
    assert lk.checks.check("l2_rows_to_drop", ss.flagged_idx)        # "a smaller expected_rate"
    assert lk.checks.check("l2_rows_to_drop", ac.flagged)            # a boolean mask means its rows


def test_lesson2_rows_to_drop_rejects_a_budget_spent_on_clean_rows(backdoor_victim, capsys):
    poisoned, _ = backdoor_victim
    clean = np.setdiff1d(np.arange(len(poisoned)), poisoned.poison_idx)
    assert not lk.checks.check("l2_rows_to_drop", clean[:100])
    assert not lk.checks.check("l2_rows_to_drop", np.arange(101))    # over the 100-row budget
    assert not lk.checks.check("l2_rows_to_drop", np.ones(10, bool))  # a mask of the wrong length
    assert "0 of 67 poisons" in capsys.readouterr().out


def test_numbers_are_read_in_any_spelling_and_fractions_are_not_rounded(capsys):
    assert lk.checks.check("l4_krum_pick", "3") and lk.checks.check("l4_krum_pick", 3.0)
    assert lk.checks.check("l4_clip_update", "0.675")
    assert not lk.checks.check("l1_certified_radius", 2.5)
    assert not lk.checks.check("l4_median_breakdown", "four")
    out = capsys.readouterr().out
    assert "2.5 is not whole" in out and "expected a whole number of clients" in out
