"""Widget factories for the notebooks: ipywidgets controls wired to one labkit call each.

No lesson logic lives here: every factory names its controls and a function that turns the
controls' values into a matplotlib figure; :func:`panel` does the wiring (an ``Output``
redrawn on every change, a status line that says "computing..." while it redraws, controls
that do not apply to the current setting disabled). Each factory returns the panel, which
carries ``.controls`` (name -> widget) and ``.refresh()`` so notebooks and tests can drive
it without a browser.

The widgets answer a change in about a second on one CPU, so they use lower-cost settings
than the lessons (fewer training epochs, crafting steps and federated rounds; see
:data:`WIDGET_COST`) and keep the last few settings' figures, so going back is instant.
The lessons' own functions keep their defaults.

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

import functools
import html
import time
from collections import OrderedDict
from types import SimpleNamespace
from typing import Callable, Optional

__all__ = ["panel", "label_flip_explorer", "backdoor_explorer", "backdoor_defence_explorer",
           "clean_label_explorer", "gradient_matching_explorer", "federated_explorer", "model_repair_explorer",
           "text_backdoor_explorer", "rag_explorer", "quiz", "WIDGET_COST"]

#: The widgets' lower-cost settings (the lessons' defaults are larger).
WIDGET_COST = {"epochs": 30,               # victims of lessons 1-2 (lesson default: 100)
               "craft_steps": 60,          # lesson 3 bullseye / collision (lesson: 150 / 200)
               "match_steps": 40,          # lesson 4 gradient matching (lesson: 200)
               "federated_rounds": 10,     # lesson 4 federated rounds (lesson: 20)
               "nc_steps": 100}            # lesson 9 Neural Cleanse trigger search (lesson: 300)


@functools.lru_cache(maxsize=1)
def _lessons() -> SimpleNamespace:
    """The engine and lesson functions the widgets call, imported in this one place (so a
    module that moves needs its import changed here only)."""
    from .attacks.backdoor import POSITIONS, backdoor_params
    from .data import pydoc_rag
    from .defences.aggregation import RULES
    from .experiment import run
    from .federated import MALICIOUS_UPDATES
    from .lessons import l03, l04

    return SimpleNamespace(run=run, backdoor_params=backdoor_params, positions=tuple(POSITIONS),
                           clean_label_setting=l03.setting, clean_label_trial=l03.explore,
                           gradient_trial=l04.explore, federated_table=l04.federated_table,
                           federated_attacks=tuple(MALICIOUS_UPDATES), aggregation_rules=tuple(RULES),
                           rag_data=pydoc_rag)


_BUSY_CSS = ("<style>.labkit-busy {opacity: 0.35; transition: opacity 0.2s;}"
             " .labkit-status {font-size: 0.9em; color: #555;}</style>")


def panel(fn: Callable, *, title: str = "", enable: Optional[Callable] = None, cache: int = 8,
          **controls):
    """A VBox of ``controls`` and a status line above an Output showing ``fn(**values)``.

    ``fn`` returns a matplotlib figure; it is called again whenever a control changes. While
    it runs the status line says "computing..." and the old figure is dimmed; afterwards it
    says how long the update took. ``enable(values)`` returns ``{name: bool}`` for controls
    that apply only to some settings (a disabled control keeps its value). The figures of the
    last ``cache`` settings are kept, so returning to one is instant.

    The returned box has ``.controls``, ``.output``, ``.status``, ``.refresh()``, ``.figure``
    (the last figure drawn) and ``.last_seconds`` (how long the last update took).
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    out = W.Output()
    status = W.HTML(value="", layout=W.Layout(min_height="1.6em"))
    status.add_class("labkit-status")
    head = [W.HTML(_BUSY_CSS + (f"<b>{html.escape(title)}</b>" if title else ""))]
    figures: OrderedDict = OrderedDict()
    box = W.VBox()
    box.add_class("labkit-panel")              # how the browser test finds the panels

    def refresh(_change=None):
        t0 = time.perf_counter()
        values = {name: w.value for name, w in controls.items()}
        if enable is not None:
            for name, on in enable(values).items():
                controls[name].disabled = not on
        key = tuple(sorted((k, v) for k, v in values.items() if not controls[k].disabled))
        fig = figures.get(key)
        if fig is None:
            status.value = "computing..."
            out.add_class("labkit-busy")
            try:
                fig = fn(**values)
            except Exception as exc:
                out.remove_class("labkit-busy")
                status.value = f"could not update: {html.escape(str(exc))}"
                raise
            plt.close(fig)
            figures[key] = fig
            while len(figures) > cache:
                figures.popitem(last=False)
        figures.move_to_end(key)
        with out:
            out.clear_output(wait=True)
            display(fig)
        out.remove_class("labkit-busy")
        box.figure, box.last_seconds = fig, time.perf_counter() - t0
        status.value = f"updated in {box.last_seconds:.1f} s"

    for w in controls.values():
        if hasattr(w, "style"):
            w.style.description_width = "initial"
        w.observe(refresh, names="value")
    rows = list(controls.values())
    box.children = tuple(head) + (W.HBox(rows[:3]), W.HBox(rows[3:]), status, out)
    box.controls, box.output, box.status, box.refresh = controls, out, status, refresh
    refresh()
    return box


def _slider(description, value, lo, hi, step, fmt=".2f"):
    import ipywidgets as W

    cls = W.IntSlider if isinstance(step, int) else W.FloatSlider
    kw = {} if cls is W.IntSlider else {"readout_format": fmt}
    return cls(value=value, min=lo, max=hi, step=step, description=description,
               continuous_update=False, style={"description_width": "initial"}, **kw)


def _dropdown(description, options, value, *, labels: Optional[Callable] = None):
    import ipywidgets as W

    options = [(labels(o), o) for o in options] if labels is not None else list(options)
    return W.Dropdown(options=options, value=value, description=description,
                      style={"description_width": "initial"}, layout=W.Layout(width="max-content"))


def _cheap_train() -> dict:
    return {"epochs": WIDGET_COST["epochs"]}


# ---- lesson 1: label flipping ---------------------------------------------------------------

def label_flip_explorer(*, seed: int = 0):
    """Lesson 1: flip rate, strategy, k and eta -> accuracy with and without k-NN sanitisation.

    See Also: notebooks/01_label_flipping.ipynb
    """
    from .viz import run_summary

    L = _lessons()
    return panel(
        lambda rate, strategy, k, eta: run_summary(L.run(
            "label_flip", defence="knn_sanitisation", seed=seed, rate=rate,
            params={"strategy": strategy}, defence_params={"k": k, "eta": eta},
            train_kw=_cheap_train())),
        title="Label flipping vs k-NN sanitisation",
        rate=_slider("flip rate", 0.3, 0.05, 0.5, 0.05),
        strategy=_dropdown("strategy", ["random", "targeted", "class_pair", "optimised"], "random"),
        k=_slider("neighbours k", 10, 3, 30, 1),
        eta=_slider("disagreement eta", 0.5, 0.3, 0.9, 0.05))


# ---- lesson 2: backdoors --------------------------------------------------------------------

def backdoor_explorer(*, seed: int = 0):
    """Lesson 2: trigger kind, size, position, opacity, rate, target class -> retrain, attack success.

    The patch's size and position apply to the patch trigger, the blend opacity to the blend
    trigger; the controls that do not apply are disabled.

    See Also: notebooks/02_backdoors.ipynb
    """
    from .viz import run_summary

    L = _lessons()
    return panel(
        lambda trigger, size, position, alpha, rate, target_class: run_summary(L.run(
            "backdoor", seed=seed, rate=rate, train_kw=_cheap_train(),
            params=L.backdoor_params(trigger, target_class=target_class, size=size,
                                     position=position, alpha=alpha))),
        title="Backdoor: trigger and poison rate",
        enable=lambda v: {"size": v["trigger"] == "patch", "position": v["trigger"] == "patch",
                          "alpha": v["trigger"] == "blend"},
        trigger=_dropdown("trigger", ["patch", "blend"], "patch"),
        size=_slider("patch size", 2, 1, 4, 1),
        position=_dropdown("patch position", L.positions, "bottom-right"),
        alpha=_slider("blend opacity", 0.2, 0.05, 0.5, 0.05),
        rate=_slider("poison rate", 0.05, 0.005, 0.15, 0.005, fmt=".3f"),
        target_class=_slider("target class", 0, 0, 9, 1))


#: The thresholds each lesson-2 defence exposes in :func:`backdoor_defence_explorer`.
_DEFENCE_CONTROLS = {
    "spectral_signature": lambda: dict(expected_rate=_slider("expected rate", 0.05, 0.01, 0.15, 0.01),
                                       removal_factor=_slider("removal factor", 1.5, 0.5, 3.0, 0.25),
                                       rounds=_slider("rounds", 3, 1, 5, 1)),
    "activation_clustering": lambda: dict(max_size=_slider("max cluster size", 0.35, 0.05, 0.5, 0.05),
                                          min_silhouette=_slider("min silhouette", 0.40, 0.0, 0.8, 0.05)),
    "strip": lambda: dict(frr=_slider("target false rejection", 0.05, 0.01, 0.3, 0.01)),
}


def _defence_figure(result, defence: str, settings: dict):
    """The run's bars and, for activation clustering, the per-class split with its thresholds."""
    import matplotlib.pyplot as plt

    from .viz import clustering_summary, describe, human, run_summary

    found = result.verdict                 # a detector's own settings are in the title already
    note = "" if found is not None else f"{human(defence)} settings: {describe(settings)}"
    if defence != "activation_clustering" or found is None:
        return run_summary(result, note=note)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 3.6), gridspec_kw={"width_ratios": [1.1, 1]})
    run_summary(result, note=note, ax=left)
    clustering_summary(found, ax=right)
    fig.tight_layout()
    return fig


def backdoor_defence_explorer(defence: str = "activation_clustering", *, seed: int = 0):
    """Lesson 2: poison rate and one defence's thresholds -> remove (or reject), retrain, measure.

    See Also: notebooks/02_backdoors.ipynb
    """
    from .viz import human

    if defence not in _DEFENCE_CONTROLS:
        raise ValueError(f"defence must be one of {sorted(_DEFENCE_CONTROLS)}, got {defence!r}")
    L = _lessons()
    return panel(
        lambda rate, **kw: _defence_figure(
            L.run("backdoor", defence=defence, seed=seed, rate=rate, defence_params=kw,
                  train_kw=_cheap_train()), defence, kw),
        title=f"Backdoor vs {human(defence)}",
        rate=_slider("poison rate", 0.05, 0.005, 0.15, 0.005, fmt=".3f"),
        **_DEFENCE_CONTROLS[defence]())


# ---- lesson 3: clean-label poisoning -------------------------------------------------------

def _clean_label_figure(method, n_poisons, eps, opacity, target, seed):
    from .viz import clean_label_pairs

    L = _lessons()
    out = L.clean_label_trial(method=method, n_poisons=n_poisons, eps=eps,
                              opacity=opacity if method == "collision" else 0.0,
                              target=int(target), steps=WIDGET_COST["craft_steps"], seed=seed)
    fig = clean_label_pairs(out["trial"].poisoned, L.clean_label_setting(seed).test)
    verdict = "flipped" if out["success"] else "not flipped"
    control = "flipped it too" if out["control_success"] else "did not flip it"
    extra = f", watermark opacity {opacity:g}" if method == "collision" else ""
    fig.suptitle(f"{method}: {n_poisons} poisons, eps {eps:g}{extra}. Target {verdict}; random noise of the "
                 f"same budget {control}; independent classifiers still read {out['label_consistency']:.0%} "
                 f"of the poisons as their own label", fontsize=9, wrap=True)
    fig.tight_layout()
    return fig


def clean_label_explorer(*, seed: int = 0):
    """Lesson 3: method, number of poisons, budget, watermark opacity, target -> one trial
    of the engine (the lesson's victim, fewer crafting steps), with its random control.

    The watermark opacity applies to feature collision only (disabled otherwise).

    See Also: notebooks/03_clean_label.ipynb
    """
    return panel(
        lambda **v: _clean_label_figure(seed=seed, **v),
        title="Clean-label poisoning: one target, one fresh victim",
        enable=lambda v: {"opacity": v["method"] == "collision"},
        method=_dropdown("method", ["bullseye", "collision"], "bullseye"),
        n_poisons=_slider("poisons", 30, 1, 40, 1),
        eps=_slider("eps (L-inf budget)", 0.25, 0.02, 0.5, 0.01),
        opacity=_slider("watermark opacity", 0.0, 0.0, 0.5, 0.05),
        target=_slider("target number", 0, 0, 9, 1))


# ---- lesson 4: gradient manipulation --------------------------------------------------------

def gradient_matching_explorer(ctx, *, steps: Optional[int] = None):
    """Lesson 4: budget, eps, target -> one engine trial of the notebook's context ``ctx``
    (craft, fine-tune the deployed model on the poisons and on the random control).

    See Also: notebooks/04_gradient_manipulation.ipynb
    """
    from .viz import gradient_trial

    L = _lessons()
    steps = WIDGET_COST["match_steps"] if steps is None else steps
    return panel(
        lambda rate, eps, target: gradient_trial(
            L.gradient_trial(ctx, target=target, rate=rate, eps=eps, steps=steps), ctx.test,
            note=f"poisons: {rate:.0%} of the rows, eps {eps:g}, target number {target}, {steps} crafting steps"),
        title="Gradient matching: one target, fine-tuning victim",
        rate=_slider("budget (share of rows)", 0.05, 0.01, 0.05, 0.01),
        eps=_slider("eps (L-inf budget)", 0.15, 0.02, 0.15, 0.01),
        target=_slider("target number", 0, 0, ctx.n_trials - 1, 1))


def federated_explorer(split, *, seed: int = 0, rounds: Optional[int] = None):
    """Lesson 4: malicious clients, their update, the aggregation rule, IID or not ->
    accuracy over rounds for that rule and for plain averaging.

    Each setting's figure is kept, so going back to one is instant.

    See Also: notebooks/04_gradient_manipulation.ipynb
    """
    import ipywidgets as W

    from .viz import federated_curves, human

    L = _lessons()
    rounds = WIDGET_COST["federated_rounds"] if rounds is None else rounds

    @functools.lru_cache(maxsize=24)
    def one(malicious, attack, rule, iid):
        return L.federated_table(split, rules=tuple(dict.fromkeys(("mean", rule))), attacks=(attack,),
                                 malicious=malicious, rounds=rounds, iid=iid, seed=seed)

    def draw(malicious, attack, rule, iid):
        table = one(malicious, attack, rule, iid)
        shards = "IID shards" if iid else "non-IID shards"
        return federated_curves(table, attack=attack,
                                title=f"{malicious} of 10 clients send {human(attack)} updates ({shards})")

    return panel(
        draw, title="Federated learning with malicious clients",
        malicious=_slider("malicious clients", 2, 0, 4, 1),
        attack=_dropdown("their update", L.federated_attacks, "sign_flip", labels=human),
        rule=_dropdown("aggregation rule", L.aggregation_rules, "median", labels=human),
        iid=W.Checkbox(value=True, description="IID shards", style={"description_width": "initial"}))


#: Lesson 9's repairs in :func:`model_repair_explorer` (registry names).
REPAIRS = ("neural_cleanse", "fine_pruning", "clean_finetune")


# ---- lesson 7: language models ------------------------------------------------------------

#: The text defences :func:`text_backdoor_explorer` offers ("none": no defence).
TEXT_DEFENCES = ("none", "onion", "keyword_label", "spectral_signature")


def text_backdoor_explorer(*, seed: int = 0):
    """Lesson 7: trigger (rare tokens or a natural phrase), labels (relabelled or kept true),
    number of poisoned paragraphs, corpus size and a defence -> clean accuracy and attack
    success, with the same trigger in as many random paragraphs (true labels) as a control.

    See Also: notebooks/07_language_models.ipynb
    """
    from .viz import run_summary

    L = _lessons()

    def draw(trigger, labels, n_poison, n_train, defence):
        attack = "text_backdoor" if labels == "relabelled" else "text_clean_label"
        result = L.run(attack, seed=seed, defence=None if defence == "none" else defence,
                       params={"trigger": trigger, "n_poison": n_poison, "n_train": n_train})
        return run_summary(result, note=f"{n_poison} of {n_train} paragraphs poisoned; the same trigger in "
                                        f"{n_poison} random paragraphs with true labels: success "
                                        f"{result.control_success:.2f}")

    return panel(draw, title="Trigger words in a text classifier: count, corpus size, defence",
                 trigger=_dropdown("trigger", ["rare", "phrase"], "rare"),
                 labels=_dropdown("labels", ["relabelled", "kept true"], "relabelled"),
                 n_poison=_slider("poisoned paragraphs", 18, 3, 48, 3),
                 n_train=_dropdown("corpus size", [225, 450, 900], 900),
                 defence=_dropdown("defence", list(TEXT_DEFENCES), "none"))


RAG_DEFENCES = ("none", "near_duplicates", "signed_passages", "robust_rag")


def _rag_figure(per_question, style, top_k, defence, seed):
    """The run's bars and what the reader read for the first target question."""
    import matplotlib.pyplot as plt

    from .viz import retrieved_passages, run_summary

    r = _lessons().run("rag_poison", seed=seed, defence=None if defence == "none" else defence,
                       params={"per_question": int(per_question), "style": style, "top_k": int(top_k)})
    t = r.trials[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 3.8), gridspec_kw={"width_ratios": [1.1, 1]})
    run_summary(r, note=f"hijack rate: targets answered with the attacker's title; random passages, same "
                        f"budget: {r.control_success:.2f}", ax=left)
    q = int(t.poisoned.target_idx[0])
    questions = _lessons().rag_data(seed=seed).test
    # the reader as it read the poisoned knowledge base (the wider one under robust_rag)
    reader = r.defended[0].model if defence == "robust_rag" else t.victim
    retrieved_passages(reader, questions.X[q], is_poison=t.poisoned.is_poison, answer=int(questions.y[q]),
                       title=f"the first target question, top {reader.top_k} (red: the attacker's)", ax=right)
    fig.tight_layout()
    return fig


def quiz(lesson: int):
    """Lesson ``lesson``'s five recall questions (:mod:`labkit.lessons.quiz`): pick an answer
    for each, press "Check answers", read which are right and why. No completion code."""
    import hashlib
    import html

    import ipywidgets as W

    from .lessons.quiz import QUIZZES, grade

    if lesson not in QUIZZES:
        raise ValueError(f"no quiz for lesson {lesson!r}; lessons with one: {sorted(QUIZZES)}")
    questions = QUIZZES[lesson]
    # the options in a fixed order that does not follow the right answer's position
    shown = lambda q: sorted(q.options, key=lambda o: hashlib.sha256(f"{q.text}|{o}".encode()).hexdigest())  # noqa: E731
    pickers = [W.RadioButtons(options=shown(q), value=None, layout=W.Layout(width="auto")) for q in questions]
    result = W.HTML(layout=W.Layout(min_height="1.6em"))
    result.add_class("labkit-quiz-result")
    button = W.Button(description="Check answers", button_style="primary")

    def check(_=None):
        right, lines = grade(lesson, [None if p.value is None else q.options.index(p.value)
                                      for p, q in zip(pickers, questions)])
        result.value = (f"<b>{right} of {len(questions)} right.</b><br>"
                        + "<br>".join(html.escape(line) for line in lines))

    button.on_click(check)
    rows = []
    for i, (q, p) in enumerate(zip(questions, pickers), 1):
        rows += [W.HTML(f"<b>{i}.</b> {html.escape(q.text)}"), p]
    box = W.VBox([W.HTML(f"<b>Quiz: five questions on lesson {lesson}</b> (for you alone: nothing is recorded)"),
                  *rows, button, result])
    box.add_class("labkit-quiz")
    box.pickers, box.button, box.result, box.check = pickers, button, result, check
    return box


def rag_explorer(*, seed: int = 0):
    """Lesson 8: passages per target question, the poison's style, the retrieval window and
    a defence -> hijack rate and accuracy (with random passages of the same budget), and the
    passages the reader read for the first target question, the attacker's in red.

    See Also: notebooks/08_rag_poisoning.ipynb
    """
    return panel(
        lambda per_question, style, top_k, defence: _rag_figure(per_question, style, top_k, defence, seed),
        title="Poisoning a RAG knowledge base: passages, window, defence",
        per_question=_slider("passages per question", 5, 1, 8, 1),
        style=_dropdown("poison", ["blackbox", "whitebox", "split_view"], "blackbox"),
        top_k=_dropdown("passages read (top k)", [1, 3, 5, 10, 15], 5),
        defence=_dropdown("defence", list(RAG_DEFENCES), "none"))


def _model_repair_figure(size, defence, n_clean, seed):
    """The run's bars (no attack, backdoored, repaired) and what the repair found."""
    from .viz import run_summary

    settings = {"n_clean": int(n_clean)}
    if defence == "neural_cleanse":
        settings["steps"] = WIDGET_COST["nc_steps"]
    r = _lessons().run("backdoor", defence=defence, seed=seed, params={"size": int(size)},
                       train_kw=_cheap_train(), defence_params=settings)
    e = r.extra
    note = f"{int(n_clean)} clean rows; quick estimate (cheaper training and search than the lesson)"
    if "flagged_class" in e:
        found = "nothing flagged" if e["flagged_class"] == -1 else f"flagged class {e['flagged_class']}"
        note = (f"{found} (attacker's: {'yes' if e.get('flagged_target') == 1.0 else 'no'}), "
                f"max anomaly {e['anomaly_index']:.1f}; clean model flagged too: "
                f"{'yes' if e.get('flagged_on_clean_model') == 1.0 else 'no'}\n" + note)
    return run_summary(r, note=note)


def model_repair_explorer(*, seed: int = 0):
    """Lesson 9: the attacker's patch size, the repair and the defender's clean rows -> a
    backdoored victim, the repair, attack success and clean accuracy before and after, and
    (Neural Cleanse) which class was flagged. Quick estimates: the victim trains for
    ``WIDGET_COST["epochs"]`` epochs and Neural Cleanse searches ``WIDGET_COST["nc_steps"]``
    steps, so the numbers can differ from the lesson's.

    See Also: notebooks/09_model_inspection.ipynb
    """
    return panel(
        lambda size, defence, n_clean: _model_repair_figure(size, defence, n_clean, seed),
        title="A model you were handed: trigger size, repair and clean rows",
        size=_slider("patch size", 2, 1, 4, 1),
        defence=_dropdown("repair", list(REPAIRS), "neural_cleanse"),
        n_clean=_dropdown("clean rows", [50, 100, 200], 200))
