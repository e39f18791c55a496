import pytest

import labkit as lk


def test_unanswered_exercise_does_not_raise(capsys):
    assert lk.checks.check("l1_certified_radius", None) is False
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
