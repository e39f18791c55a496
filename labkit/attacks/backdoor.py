"""Backdoors: a trigger stamped on a few training rows, relabelled to the attacker's class.

Threat model: the attacker controls a small fraction of the training set (pixels *and*
labels of those rows: a contributed or scraped dataset, an outsourced labelling job). They
know the data format, not the victim's model. They want a model that looks normal on clean
inputs and predicts ``target_class`` whenever the trigger is present ("all-to-one").

Two triggers:

- :func:`patch_trigger`: a small solid square (BadNets; Gu, Dolan-Gavitt & Garg 2017);
- :func:`blend_trigger`: a full-image pattern mixed in with opacity ``alpha`` (Chen, Liu, Li,
  Lu & Song 2017).

See Also: notebooks/02_backdoors.ipynb
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from ..types import Dataset, PoisonedDataset, as_rng, make_poisoned

__all__ = ["add_backdoor", "patch_trigger", "blend_trigger", "PatchTrigger", "BlendTrigger",
           "backdoor_params", "POSITIONS", "TRIGGERS"]

#: Named corners (and the centre) a patch can sit in.
POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "center")
#: What ``position`` accepts by name: one of :data:`POSITIONS`, or ``"corners"`` (all four).
PLACES = (*POSITIONS, "corners")
#: Trigger kinds accepted by name in :func:`add_backdoor` (and ``--set trigger=...``).
TRIGGERS = ("patch", "blend")


def _check_X(X) -> np.ndarray:
    X = np.asarray(X, np.float32)
    if X.ndim != 4:
        raise ValueError(f"X must be shaped (n, C, H, W), got shape {X.shape}")
    return X


@dataclass(frozen=True)
class PatchTrigger:
    """A ``size`` x ``size`` square of intensity ``value`` (all channels) at ``position``
    (``"corners"``: one square in each corner, as in Turner, Tsipras & Madry 2019).

    Call it on images ``(n, C, H, W)`` to get stamped copies; the input is not changed.
    """

    size: int = 2
    position: Union[str, tuple] = "bottom-right"
    value: float = 1.0

    def __post_init__(self):
        if not (isinstance(self.size, (int, np.integer)) and self.size >= 1):
            raise ValueError(f"size must be a positive int, got {self.size!r}")
        if not 0 <= float(self.value) <= 1:
            raise ValueError(f"value must be in [0, 1], got {self.value}")
        pos = self.position
        if isinstance(pos, str):
            if pos not in PLACES:
                raise ValueError(f"position must be one of {PLACES} or (row, col), got {pos!r}")
        elif not (isinstance(pos, (tuple, list)) and len(pos) == 2
                  and all(isinstance(v, (int, np.integer)) and v >= 0 for v in pos)):
            raise ValueError(f"position must be one of {PLACES} or (row, col), got {pos!r}")
        else:
            object.__setattr__(self, "position", tuple(int(v) for v in pos))

    def corners(self, image_shape) -> list:
        """``[(row, col), ...]``: the top-left pixel of each square the trigger stamps."""
        if self.position == "corners":
            return [PatchTrigger(self.size, p, self.value).corner(image_shape) for p in POSITIONS[:4]]
        return [self.corner(image_shape)]

    def corner(self, image_shape) -> tuple:
        """``(row, col)`` of the patch's top-left pixel in an image shaped ``(C, H, W)``
        (the first square's, for ``"corners"``)."""
        H, W = image_shape[-2:]
        s = self.size
        if s > min(H, W):
            raise ValueError(f"a {s}x{s} patch does not fit a {H}x{W} image")
        if not isinstance(self.position, str):
            r, c = self.position
            if r + s > H or c + s > W:
                raise ValueError(f"a {s}x{s} patch at {self.position} does not fit a {H}x{W} image")
            return r, c
        return {"bottom-right": (H - s, W - s), "bottom-left": (H - s, 0), "top-right": (0, W - s),
                "top-left": (0, 0), "center": ((H - s) // 2, (W - s) // 2),
                "corners": (H - s, W - s)}[self.position]

    def region(self, image_shape) -> np.ndarray:
        """Boolean mask shaped ``(C, H, W)``: True on the pixels the patch overwrites."""
        mask = np.zeros(tuple(image_shape), bool)
        for r, c in self.corners(image_shape):
            mask[:, r:r + self.size, c:c + self.size] = True
        return mask

    def __call__(self, X) -> np.ndarray:
        X = _check_X(X)
        out = X.copy()
        for r, c in self.corners(X.shape[1:]):
            out[:, :, r:r + self.size, c:c + self.size] = float(self.value)
        return out

    @property
    def params(self) -> dict:
        pos = self.position if isinstance(self.position, str) else list(self.position)
        return {"trigger": "patch", "size": int(self.size), "position": pos, "value": float(self.value)}


@dataclass(frozen=True, eq=False)
class BlendTrigger:
    """``(1 - alpha) * x + alpha * pattern``: a whole-image pattern at opacity ``alpha``.

    ``pattern`` is a fixed image shaped ``(C, H, W)`` (or ``(H, W)``) in [0, 1], or
    ``"noise"``: uniform noise drawn from ``seed`` at the images' shape the first time the
    trigger sees them (so the same seed always gives the same noise).
    """

    pattern: Union[str, np.ndarray] = "noise"
    alpha: float = 0.2
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if not 0 < float(self.alpha) <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if isinstance(self.pattern, str):
            if self.pattern != "noise":
                raise ValueError(f"pattern must be 'noise' or an image array, got {self.pattern!r}")
        else:
            p = np.asarray(self.pattern, np.float32)
            if p.ndim == 2:
                p = p[None]
            if p.ndim != 3 or p.min() < 0 or p.max() > 1:
                raise ValueError("pattern must be an image (C, H, W) or (H, W) with values in [0, 1]")
            p = p.copy()
            p.setflags(write=False)
            object.__setattr__(self, "pattern", p)

    def image(self, image_shape) -> np.ndarray:
        """The pattern as an array shaped ``image_shape`` (``(C, H, W)``)."""
        shape = tuple(image_shape)
        if isinstance(self.pattern, np.ndarray):
            p = self.pattern
            if p.shape[-2:] != shape[-2:]:
                raise ValueError(f"pattern is {p.shape[-2:]}, images are {shape[-2:]}")
            return np.broadcast_to(p, shape)
        if shape not in self._cache:
            noise = np.random.default_rng(self.seed).random(shape, dtype=np.float32)
            noise.setflags(write=False)
            self._cache[shape] = noise
        return self._cache[shape]

    def __call__(self, X) -> np.ndarray:
        X = _check_X(X)
        a = np.float32(self.alpha)
        return np.clip((1 - a) * X + a * self.image(X.shape[1:]), 0, 1).astype(np.float32)

    @property
    def params(self) -> dict:
        pat = self.pattern if isinstance(self.pattern, str) else "array"
        return {"trigger": "blend", "pattern": pat, "alpha": float(self.alpha), "seed": int(self.seed)}


def patch_trigger(size: int = 2, position: Union[str, tuple] = "bottom-right",
                  value: float = 1.0) -> PatchTrigger:
    """A BadNets patch trigger: a ``size`` x ``size`` square of intensity ``value``.

    Parameters
    ----------
    size : int
        Side of the square in pixels (2 on 8x8 digits covers 1/16 of the image).
    position : {"bottom-right", "bottom-left", "top-right", "top-left", "center", "corners"} or (row, col)
        Where the square goes; a tuple gives its top-left pixel; ``"corners"`` puts one in
        each corner.
    value : float in [0, 1]
        Pixel intensity (1.0 = full ink in the lab's images).

    Returns
    -------
    PatchTrigger
        Callable ``trigger(X) -> X'`` on images ``(n, C, H, W)``; ``trigger.region(shape)``
        is the mask of pixels it changes.

    References
    ----------
    Gu, Dolan-Gavitt & Garg 2017, "BadNets: identifying vulnerabilities in the machine
    learning model supply chain", arXiv:1708.06733.

    See Also
    --------
    notebooks/02_backdoors.ipynb
    """
    return PatchTrigger(size=size, position=position, value=value)


def blend_trigger(pattern: Union[str, np.ndarray] = "noise", alpha: float = 0.2, *,
                  rng=None, seed=None) -> BlendTrigger:
    """A blended trigger: ``x' = (1 - alpha) x + alpha * pattern`` (Chen et al. 2017).

    Parameters
    ----------
    pattern : "noise" or array (C, H, W) / (H, W) in [0, 1]
        A fixed image (e.g. a logo), or uniform random noise at the data's image shape.
    alpha : float in (0, 1]
        Opacity. Chen et al. use 0.2 for poisoning; lower is less visible and harder to learn.
    rng, seed : optional
        Where the noise comes from: an int ``seed``, or a seed drawn from ``rng``
        (None = seed 0).

    Returns
    -------
    BlendTrigger
        Callable ``trigger(X) -> X'``.

    References
    ----------
    Chen, Liu, Li, Lu & Song 2017, "Targeted backdoor attacks on deep learning systems using
    data poisoning", arXiv:1712.05526.

    See Also
    --------
    notebooks/02_backdoors.ipynb
    """
    if seed is None:
        seed = 0 if rng is None else int(as_rng(rng).integers(2**31 - 1))
    return BlendTrigger(pattern=pattern, alpha=alpha, seed=int(seed))


def _make_trigger(trigger, settings: dict):
    if isinstance(trigger, (PatchTrigger, BlendTrigger)):
        if settings:
            raise ValueError(f"trigger settings {sorted(settings)} given with a trigger object; "
                             "put them in the trigger instead")
        return trigger
    if trigger == "patch":
        allowed = {"size", "position", "value"}
        build = patch_trigger
    elif trigger == "blend":
        allowed = {"pattern", "alpha", "seed"}
        build = blend_trigger
    elif callable(trigger):
        raise ValueError("trigger must be 'patch', 'blend', or a PatchTrigger/BlendTrigger object")
    else:
        raise ValueError(f"trigger must be one of {TRIGGERS} or a trigger object, got {trigger!r}")
    unknown = set(settings) - allowed
    if unknown:
        raise ValueError(f"unknown {trigger} trigger setting(s) {sorted(unknown)}; "
                         f"valid: {sorted(allowed)}")
    if "position" in settings and isinstance(settings["position"], list):
        settings = {**settings, "position": tuple(settings["position"])}
    return build(**settings)


def add_backdoor(data: Dataset, *, trigger="patch", target_class: int = 0, rate: float = 0.05,
                 rng=None, **trigger_settings) -> PoisonedDataset:
    """Stamp a trigger on a fraction of the training rows and relabel them ``target_class``.

    Parameters
    ----------
    data : Dataset
    trigger : {"patch", "blend"} or PatchTrigger or BlendTrigger
        By name, with its settings as extra keywords (``size``, ``position``, ``value`` for
        a patch; ``pattern``, ``alpha``, ``seed`` for a blend), as the command line passes
        them (``--set trigger=blend --set alpha=0.2``); or a ready trigger object.
    target_class : int
        The class every triggered input should be read as (all-to-one).
    rate : float in (0, 1]
        Fraction of *all* training rows poisoned (``round(rate * n)`` rows). They are drawn
        uniformly from the rows whose label is not ``target_class``, so every poison is a
        real change of label; at rate 0.05 on digits that makes about a third of the
        rows labelled ``target_class``.
    rng : None, int or numpy Generator
        Which rows are poisoned.
    **trigger_settings
        Settings of a trigger given by name.

    Returns
    -------
    PoisonedDataset
        Rows ``poison_idx`` carry the trigger and label ``target_class``; every other row is
        untouched. ``trigger`` stamps test inputs; ``target_class`` is set, so
        :func:`labkit.metrics.attack_success_rate` measures the fraction of triggered
        non-target test inputs predicted as ``target_class``.

    References
    ----------
    Gu, Dolan-Gavitt & Garg 2017, arXiv:1708.06733 (BadNets);
    Chen, Liu, Li, Lu & Song 2017, arXiv:1712.05526 (blended triggers).

    See Also
    --------
    labkit.defences.spectral_signature, labkit.defences.activation_clustering,
    labkit.defences.strip, notebooks/02_backdoors.ipynb
    """
    if not (isinstance(rate, (int, float, np.floating)) and 0 < rate <= 1):
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    if not (isinstance(target_class, (int, np.integer)) and 0 <= target_class < data.n_classes):
        raise ValueError(f"target_class must be an int in [0, {data.n_classes}), got {target_class!r}")
    trig = _make_trigger(trigger, dict(trigger_settings))
    rng = as_rng(rng)
    candidates = np.flatnonzero(data.y != target_class)
    n_poison = int(round(rate * len(data)))
    if n_poison > candidates.size:
        raise ValueError(f"rate {rate} asks for {n_poison} poisons but only {candidates.size} rows "
                         f"are outside the target class")
    if n_poison == 0:
        raise ValueError(f"rate {rate} poisons no row of {len(data)}; raise the rate")
    idx = np.sort(rng.choice(candidates, n_poison, replace=False))
    X = data.X.copy()
    y = data.y.copy()
    X[idx] = trig(data.X[idx])
    y[idx] = int(target_class)
    params = {"rate": float(rate), "target_class": int(target_class), **trig.params}
    return make_poisoned(data, X=X, y=y, idx=idx, attack="backdoor", params=params,
                         target_class=int(target_class), trigger=trig)


def backdoor_params(trigger: str = "patch", *, target_class: int = 0, size: int = 2,
                    position: str = "bottom-right", value: float = 1.0, alpha: float = 0.2) -> dict:
    """The ``params`` of :func:`add_backdoor` for one trigger kind, from a full set of settings.

    A form (or widget) shows every setting; only those of the chosen ``trigger`` are kept:
    ``size``, ``position``, ``value`` for a patch, ``alpha`` for a blend.

    >>> backdoor_params("blend", size=3, alpha=0.1)
    {'trigger': 'blend', 'target_class': 0, 'alpha': 0.1}
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}, got {trigger!r}")
    own = {"size": size, "position": position, "value": value} if trigger == "patch" else {"alpha": alpha}
    return {"trigger": trigger, "target_class": int(target_class), **own}
