"""The lesson widgets, driven without a browser: every control of every explorer changes the
figure (compared pixel by pixel), controls that do not apply are disabled, and the panel says
"computing..." while it redraws. Speed is measured by ``python -m labkit bench``, not here."""
import hashlib
import io

import matplotlib

matplotlib.use("Agg")

import ipywidgets as W  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import labkit as lk  # noqa: E402
from labkit import widgets  # noqa: E402


def pixels(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="rgba", dpi=40)
    return hashlib.sha1(buf.getvalue()).hexdigest()


def move(control):
    """One step of a control: the next option, the other state, or one slider step."""
    if hasattr(control, "options"):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
        control.value = values[(values.index(control.value) + 1) % len(values)]
    elif isinstance(control.value, bool):
        control.value = not control.value
    else:
        up = control.value + control.step
        control.value = up if up <= control.max else control.value - control.step


def assert_each_control_changes_the_figure(box, order, *, also_moved=()):
    """Move the controls in ``order``, each must change the figure; with ``also_moved`` (the
    controls a test moves itself), together they must be all of the panel's controls."""
    assert set(order) | set(also_moved) == set(box.controls), "the test must move every control"
    for name in order:
        control = box.controls[name]
        assert not control.disabled, f"{name} is disabled when the test moves it"
        before = pixels(box.figure)
        move(control)
        assert pixels(box.figure) != before, f"moving {name} left the figure unchanged"
        assert box.status.value.startswith("updated in")


# ---- the panel itself -----------------------------------------------------------------------

def _probe_panel(calls):
    import matplotlib.pyplot as plt

    holder = {}

    def draw(n, mode, extra):
        box = holder.get("box")
        calls.append({"n": n, "status": box.status.value if box else None,
                      "busy": "labkit-busy" in box.output._dom_classes if box else None})
        fig, ax = plt.subplots()
        ax.plot(range(n + 2))
        ax.set_title(f"{mode} {n} {extra}")
        return fig

    box = widgets.panel(draw, title="probe", enable=lambda v: {"extra": v["mode"] == "b"},
                        n=W.IntSlider(value=1, min=0, max=5), mode=W.Dropdown(options=["a", "b"], value="a"),
                        extra=W.IntSlider(value=0, min=0, max=3))
    holder["box"] = box
    return box


def test_panel_says_computing_while_it_redraws_and_dims_the_old_figure():
    calls = []
    box = _probe_panel(calls)
    box.controls["n"].value = 2
    assert calls[-1] == {"n": 2, "status": "computing...", "busy": True}
    assert box.status.value.startswith("updated in") and "labkit-busy" not in box.output._dom_classes


def test_panel_disables_controls_that_do_not_apply_and_ignores_their_moves():
    calls = []
    box = _probe_panel(calls)
    assert box.controls["extra"].disabled
    n_calls = len(calls)
    box.controls["extra"].value = 2            # disabled: nothing to recompute
    assert len(calls) == n_calls
    box.controls["mode"].value = "b"
    assert not box.controls["extra"].disabled and len(calls) == n_calls + 1


def test_panel_keeps_recent_settings_so_going_back_is_instant():
    calls = []
    box = _probe_panel(calls)
    first = box.figure
    box.controls["n"].value = 3
    box.controls["n"].value = 1
    assert box.figure is first and [c["n"] for c in calls] == [1, 3]


def test_panel_labels_are_not_cut():
    box = _probe_panel([])
    assert all(c.style.description_width == "initial" for c in box.controls.values())
    made = [widgets._slider("min silhouette", 0.4, 0.0, 0.8, 0.05), widgets._dropdown("rule", ["a"], "a")]
    assert all(c.style.description_width == "initial" for c in made)


# ---- every explorer -------------------------------------------------------------------------

def test_label_flip_explorer_every_control_changes_the_figure():
    box = widgets.label_flip_explorer()
    assert set(box.controls) == {"rate", "strategy", "k", "eta"}
    assert "k-NN sanitisation" in box.figure.axes[0].get_title()
    assert_each_control_changes_the_figure(box, ["eta", "k", "rate", "strategy"])
    assert "strategy targeted" in box.figure.axes[0].get_title()


def test_backdoor_explorer_disables_what_the_trigger_does_not_use():
    box = widgets.backdoor_explorer()
    c = box.controls
    assert c["alpha"].disabled and not c["size"].disabled and not c["position"].disabled
    # no defence: two groups of bars, no empty "defended" one
    assert len(box.figure.axes[0].get_xticklabels()) == 2
    assert_each_control_changes_the_figure(box, ["size", "position", "rate", "target_class", "trigger"],
                                           also_moved=["alpha"])
    assert c["trigger"].value == "blend"
    assert c["size"].disabled and c["position"].disabled and not c["alpha"].disabled
    before = pixels(box.figure)
    move(c["alpha"])
    assert pixels(box.figure) != before


@pytest.mark.parametrize("defence", ["activation_clustering", "spectral_signature", "strip"])
def test_backdoor_defence_explorer_every_control_changes_the_figure(defence):
    box = widgets.backdoor_defence_explorer(defence)
    assert_each_control_changes_the_figure(box, list(box.controls))


def test_backdoor_defence_explorer_rejects_an_unknown_defence():
    with pytest.raises(ValueError, match="defence must be one of"):
        widgets.backdoor_defence_explorer("dpa")


def test_clean_label_explorer_opacity_only_for_collision():
    box = widgets.clean_label_explorer()
    assert box.controls["opacity"].disabled
    move(box.controls["method"])                       # bullseye -> collision
    assert box.controls["method"].value == "collision" and not box.controls["opacity"].disabled
    assert_each_control_changes_the_figure(box, ["opacity", "n_poisons", "eps", "target", "method"])
    assert box.controls["method"].value == "bullseye" and box.controls["opacity"].disabled


@pytest.fixture(scope="module")
def gm_context():
    """The lesson's engine context, with a cheaper deployed model (any will do here)."""
    return lk.experiment.prepare("gradient_matching", seed=0, params={"n_targets": 3}, train_kw={"epochs": 10})


def test_gradient_matching_explorer_every_control_changes_the_figure(gm_context):
    box = widgets.gradient_matching_explorer(gm_context, steps=10)
    assert box.controls["target"].max == 2                # the context's targets
    assert_each_control_changes_the_figure(box, ["target", "rate", "eps"])


def test_gradient_matching_explorer_shows_the_engines_trial(gm_context):
    """The widget's trial is the engine's: the same seed gives the same poisons as lk.run."""
    from labkit.lessons import l04

    shown = l04.explore(gm_context, target=1, rate=0.05, eps=0.15, steps=10)
    ran = lk.run("gradient_matching", seed=0, params={"n_targets": 3, "steps": 10}, train_kw={"epochs": 10})
    np.testing.assert_array_equal(shown["poisoned"].X, ran.trials[1].poisoned.X)
    assert shown["prob_victim"] == ran.trials[1].row["target_prob"]


def test_federated_explorer_every_control_changes_the_figure():
    box = widgets.federated_explorer(lk.data.digits(seed=0))
    assert_each_control_changes_the_figure(box, ["malicious", "attack", "rule", "iid"])
    labels = [t.get_text() for t in box.figure.axes[0].get_legend().get_texts()]
    assert labels == ["mean", lk.viz.human(box.controls["rule"].value)]


def test_model_repair_explorer_every_control_changes_the_figure():
    box = widgets.model_repair_explorer()
    assert set(box.controls) == {"size", "defence", "n_clean"}
    title = box.figure.axes[0].get_title()
    assert "flagged" in title and "200 clean rows" in title and "quick estimate" in title
    assert len(box.figure.axes[0].get_xticklabels()) == 3          # no attack, attacked, repaired
    assert_each_control_changes_the_figure(box, ["size", "n_clean", "defence"])
    assert box.controls["defence"].value == "fine_pruning"
    assert "flagged" not in box.figure.axes[0].get_title()          # no inspection, no verdict


def test_text_backdoor_explorer_every_control_changes_the_figure():
    box = widgets.text_backdoor_explorer()
    assert set(box.controls) == {"trigger", "labels", "n_poison", "n_train", "defence"}
    assert "18 of 900 paragraphs poisoned" in box.figure.axes[0].get_title()
    assert len(box.figure.axes[0].get_xticklabels()) == 2                 # no defence: two bars
    assert_each_control_changes_the_figure(box, ["n_poison", "n_train", "trigger", "labels", "defence"])
    assert len(box.figure.axes[0].get_xticklabels()) == 3                 # a defence adds its bars


def test_rag_explorer_every_control_changes_the_figure():
    box = widgets.rag_explorer()
    assert set(box.controls) == {"per_question", "style", "top_k", "defence"}
    bars, passages = box.figure.axes[:2]
    assert len(bars.get_xticklabels()) == 2                                # no defence: two bars
    assert len(passages.get_yticklabels()) == 5                            # the top 5 the reader read
    assert_each_control_changes_the_figure(box, ["per_question", "style", "top_k", "defence"])
    assert len(box.figure.axes[0].get_xticklabels()) == 3                  # a defence adds its bars


@pytest.mark.parametrize("lesson", [lesson.number for lesson in lk.lessons.LESSONS])
def test_every_lesson_has_a_five_question_quiz_that_checks_itself(lesson):
    from labkit.lessons.quiz import QUIZZES

    questions = QUIZZES[lesson]
    assert len(questions) == 5
    for q in questions:
        assert 2 <= len(q.options) == len(set(q.options)) and 0 <= q.answer < len(q.options) and q.why
    box = widgets.quiz(lesson)
    box.check()
    assert "0 of 5 right" in box.result.value and "not answered" in box.result.value
    for p, q in zip(box.pickers, questions):
        p.value = q.options[(q.answer + 1) % len(q.options)]
    box.check()
    assert "0 of 5 right" in box.result.value and "not this one" in box.result.value
    for p, q in zip(box.pickers, questions):
        p.value = q.options[q.answer]
    box.check()
    assert "5 of 5 right" in box.result.value


def test_a_quiz_for_a_lesson_that_has_none_is_refused():
    with pytest.raises(ValueError, match="no quiz"):
        widgets.quiz(42)
