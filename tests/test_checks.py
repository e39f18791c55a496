import pytest

import labkit as lk


def test_unanswered_exercise_does_not_raise(capsys):
    assert not lk.checks.check("l1_certified_radius", None)
    assert "not answered yet" in capsys.readouterr().out


def test_lesson1_exercises(capsys):
    assert lk.checks.check("l1_certified_radius", 2)
    assert not lk.checks.check("l1_certified_radius", 4)
    assert lk.checks.check("l1_which_evades", "optimised")
    assert not lk.checks.check("l1_which_evades", "random")
    assert lk.checks.check("l1_sanitiser_settings", {"k": 10, "eta": 0.5})
    assert not lk.checks.check("l1_sanitiser_settings", {"k": 3, "eta": 0.9})
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
def test_lesson6_exercises_are_in_the_one_registry(name, capsys):
    assert name in lk.checks.EXERCISES
    assert not lk.checks.check(name, None)
    lk.checks.solution(name)
    assert "solution" in capsys.readouterr().out
