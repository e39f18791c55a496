"""Widget factories for the notebooks: ipywidgets controls wired to one labkit call each.

No logic lives here: every factory names its controls and a labkit function that turns the
controls' values into a matplotlib figure; :func:`panel` does the wiring (an ``Output``
redrawn on every change). Each factory returns the panel, which carries ``.controls``
(name -> widget) and ``.refresh()`` so notebooks and tests can drive it without a browser.

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

import time
from typing import Callable

__all__ = ["panel", "label_flip_explorer", "backdoor_explorer", "backdoor_defence_explorer", "clean_label_explorer",
           "gradient_matching_explorer", "federated_explorer"]


def panel(fn: Callable, *, title: str = "", **controls):
    """A VBox of ``controls`` above an Output showing ``fn(**values)``, redrawn on change.

    ``fn`` returns a matplotlib figure. The returned box has ``.controls``, ``.output``,
    ``.refresh()``, ``.figure`` (the last figure drawn) and ``.last_seconds`` (how long the
    last redraw took).
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    out = W.Output()
    box = W.VBox([W.HTML(f"<b>{title}</b>")] if title else [])

    def refresh(_change=None):
        t0 = time.perf_counter()
        values = {name: w.value for name, w in controls.items()}
        with out:
            out.clear_output(wait=True)
            fig = fn(**values)
            display(fig)
            plt.close(fig)
        box.figure, box.last_seconds = fig, time.perf_counter() - t0

    for w in controls.values():
        w.observe(refresh, names="value")
    box.children = tuple(box.children) + (W.HBox(list(controls.values())[:3]),
                                           W.HBox(list(controls.values())[3:]), out)
    box.controls, box.output, box.refresh = controls, out, refresh
    refresh()
    return box


def _slider(description, value, lo, hi, step, fmt=".2f"):
    import ipywidgets as W

    cls = W.IntSlider if isinstance(step, int) else W.FloatSlider
    kw = {} if cls is W.IntSlider else {"readout_format": fmt}
    return cls(value=value, min=lo, max=hi, step=step, description=description,
               continuous_update=False, **kw)


def label_flip_explorer(*, seed: int = 0):
    """Lesson 1: flip rate, strategy, k and eta -> accuracy with and without k-NN sanitisation."""
    import ipywidgets as W

    from .experiment import run
    from .viz import run_summary

    return panel(
        lambda rate, strategy, k, eta: run_summary(run(
            "label_flip", defence="knn_sanitisation", seed=seed, rate=rate,
            params={"strategy": strategy}, defence_params={"k": k, "eta": eta})),
        title="Label flipping vs k-NN sanitisation",
        rate=_slider("flip rate", 0.3, 0.05, 0.5, 0.05),
        strategy=W.Dropdown(options=["random", "targeted", "optimised"], value="random",
                            description="strategy"),
        k=_slider("k", 10, 3, 30, 1),
        eta=_slider("eta", 0.5, 0.3, 0.9, 0.05))


# ---- lesson 2: backdoors --------------------------------------------------------------------

def backdoor_explorer(*, seed: int = 0):
    """Lesson 2: trigger kind, size, position, opacity, rate, target class -> retrain, attack success.

    See Also: notebooks/02_backdoors.ipynb
    """
    import ipywidgets as W

    from .attacks.backdoor import POSITIONS, backdoor_params
    from .experiment import run
    from .viz import run_summary

    return panel(
        lambda trigger, size, position, alpha, rate, target_class: run_summary(run(
            "backdoor", seed=seed, rate=rate,
            params=backdoor_params(trigger, target_class=target_class, size=size,
                                   position=position, alpha=alpha))),
        title="Backdoor: trigger and poison rate",
        trigger=W.Dropdown(options=["patch", "blend"], value="patch", description="trigger"),
        size=_slider("patch size", 2, 1, 4, 1),
        position=W.Dropdown(options=list(POSITIONS), value="bottom-right", description="position"),
        alpha=_slider("blend alpha", 0.2, 0.05, 0.5, 0.05),
        rate=_slider("poison rate", 0.05, 0.005, 0.15, 0.005, fmt=".3f"),
        target_class=_slider("target class", 0, 0, 9, 1))


#: The thresholds each lesson-2 defence exposes in :func:`backdoor_defence_explorer`.
_DEFENCE_CONTROLS = {
    "spectral_signature": lambda: dict(expected_rate=_slider("expected rate", 0.05, 0.01, 0.15, 0.01),
                                       removal_factor=_slider("removal x", 1.5, 0.5, 3.0, 0.25),
                                       rounds=_slider("rounds", 3, 1, 5, 1)),
    "activation_clustering": lambda: dict(max_size=_slider("max size", 0.35, 0.05, 0.5, 0.05),
                                          min_silhouette=_slider("min silhouette", 0.40, 0.0, 0.8, 0.05)),
    "strip": lambda: dict(frr=_slider("target FRR", 0.05, 0.01, 0.3, 0.01)),
}


def backdoor_defence_explorer(defence: str = "activation_clustering", *, seed: int = 0):
    """Lesson 2: poison rate and one defence's thresholds -> remove (or reject), retrain, measure.

    See Also: notebooks/02_backdoors.ipynb
    """
    from .experiment import run
    from .viz import run_summary

    if defence not in _DEFENCE_CONTROLS:
        raise ValueError(f"defence must be one of {sorted(_DEFENCE_CONTROLS)}, got {defence!r}")
    return panel(
        lambda rate, **kw: run_summary(run("backdoor", defence=defence, seed=seed, rate=rate,
                                           defence_params=kw)),
        title=f"Backdoor vs {defence}",
        rate=_slider("poison rate", 0.05, 0.005, 0.15, 0.005, fmt=".3f"),
        **_DEFENCE_CONTROLS[defence]())


# ---- lesson 3: clean-label poisoning -------------------------------------------------------

def clean_label_explorer(*, seed: int = 0):
    """Lesson 3: method, number of poisons, budget, watermark opacity, target -> one trial."""
    import ipywidgets as W

    from .attacks.clean_label import explore_trial

    return panel(
        lambda method, n_poisons, eps, opacity, target: explore_trial(
            method=method, n_poisons=n_poisons, eps=eps, opacity=opacity, target=target, seed=seed),
        title="Clean-label poisoning: one target, one fresh victim",
        method=W.Dropdown(options=["bullseye", "collision", "random"], value="bullseye",
                          description="method"),
        n_poisons=_slider("poisons", 30, 1, 40, 1),
        eps=_slider("eps (L-inf)", 0.25, 0.02, 0.5, 0.01),
        opacity=_slider("opacity", 0.0, 0.0, 0.5, 0.05),
        target=_slider("target #", 0, 0, 9, 1))


# ---- lesson 4: gradient manipulation --------------------------------------------------------

def gradient_matching_explorer(split, deployed, *, seed: int = 0):
    """Lesson 4: budget, eps, target -> craft (60 steps), fine-tune, show the trial.

    ``split`` and ``deployed`` come from the notebook (the deployed model is trained once).

    See Also: notebooks/04_gradient_manipulation.ipynb
    """
    from .attacks.gradient import try_target
    from .viz import gradient_trial

    return panel(
        lambda rate, eps, target: gradient_trial(
            try_target(split, deployed, target=target, rate=rate, eps=eps, seed=seed), split.test),
        title="Gradient matching: one target, fine-tuning victim",
        rate=_slider("budget", 0.05, 0.01, 0.05, 0.01),
        eps=_slider("eps", 0.15, 0.02, 0.15, 0.01),
        target=_slider("target #", 0, 0, 9, 1))


def federated_explorer(split, *, seed: int = 0, rounds: int = 15):
    """Lesson 4: malicious clients, their update, the aggregation rule, IID or not ->
    accuracy over rounds for that rule and for plain averaging.

    See Also: notebooks/04_gradient_manipulation.ipynb
    """
    import ipywidgets as W

    from .attacks.federated import ATTACKS, federated_table
    from .defences.aggregation import RULES
    from .viz import federated_curves

    return panel(
        lambda malicious, attack, rule, iid: federated_curves(federated_table(
            split.train, test=split.test, rules=tuple(dict.fromkeys(("mean", rule))), attacks=(attack,),
            malicious=malicious, rounds=rounds, iid=iid, seed=seed), attack=attack),
        title="Federated learning with malicious clients",
        malicious=_slider("malicious", 2, 0, 4, 1),
        attack=W.Dropdown(options=list(ATTACKS), value="sign_flip", description="update"),
        rule=W.Dropdown(options=list(RULES), value="median", description="rule"),
        iid=W.Checkbox(value=True, description="IID shards"))
