"""A stand-in for a model library whose configs name its classes (think ``nemo.*``).

Configs in this lesson point ``_target_`` at :class:`TinyNet` and :func:`linear_warmup`.
Like most real modules, this one imports other modules and re-exports a name, which is
exactly what a prefix allow-list (``"labkit.supplychain.zoo."``) fails to account for:

* ``labkit.supplychain.zoo.pathlib.Path.write_text`` is ``pathlib.Path.write_text``
  (a module imported here is reachable under this module's prefix), and
* ``labkit.supplychain.zoo.open_file`` is the built-in ``open`` (an alias defined here).

It belongs to the scanner product, not to the lesson: the corpus's benign configs
(:mod:`.payloads`) instantiate these two names, the sandbox's prefix policy
(:data:`~labkit.supplychain.loaders.ZOO_PREFIXES`) is this module's prefix, and the
re-export / alias payloads need a real module under that prefix; the corpus test proves
with them that the exact allow-list builds the benign configs and blocks the rest.

See Also
--------
notebooks/06_supply_chain.ipynb
labkit.supplychain.loaders.safe_instantiate
"""

from __future__ import annotations

import pathlib  # noqa: F401  (re-exported on purpose: see the module docstring)

import torch

open_file = open  # an alias, on purpose

__all__ = ["TinyNet", "linear_warmup"]


class TinyNet(torch.nn.Module):
    """A two-layer MLP: ``(n, in_features) -> (n, n_classes)``.

    Parameters
    ----------
    in_features, hidden, n_classes : int
    """

    def __init__(self, in_features: int = 4, hidden: int = 8, n_classes: int = 2):
        super().__init__()
        if min(in_features, hidden, n_classes) < 1:
            raise ValueError("sizes must be positive")
        self.fc1 = torch.nn.Linear(in_features, hidden)
        self.fc2 = torch.nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def linear_warmup(step: int = 0, *, steps: int = 10, peak: float = 1.0) -> float:
    """Learning-rate factor ramping linearly to ``peak`` over ``steps`` steps.

    Configs use it with ``_partial_: true`` (a factory the library calls later).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return peak * min(1.0, (step + 1) / steps)
