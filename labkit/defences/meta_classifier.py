"""A population detector (MNTD-style): tell backdoored models from clean ones by how they
answer a fixed set of query inputs.

The defender trains its own population of small models, some clean, some backdoored with
triggers it chooses (shadow models), feeds every model the same ``queries``, and fits a
classifier on the concatenated output probabilities (the model's "fingerprint"). A model it
was handed is then scored the same way. Xu, Wang, Li, Borisov, Gunter & Li 2021, IEEE S&P,
"Detecting AI Trojans Using Meta Neural Analysis" (MNTD); here with random queries and a
logistic-regression meta-classifier (MNTD also learns the queries).

See Also: labkit.defences.neural_cleanse (one model, no population)
"""
from __future__ import annotations

import numpy as np

from ..types import as_rng

__all__ = ["random_queries", "query_outputs", "meta_classifier", "meta_scores"]


def random_queries(image_shape, *, n: int = 20, rng=None) -> np.ndarray:
    """``n`` query images shaped ``(n, *image_shape)``, uniform in [0, 1]."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return as_rng(rng).random((n, *tuple(image_shape))).astype(np.float32)


def query_outputs(models, queries) -> np.ndarray:
    """Each model's class probabilities on every query, flattened: ``(n_models, n_queries * n_classes)``."""
    from ..models import predict_proba

    return np.stack([predict_proba(m, queries).ravel() for m in models])


def meta_classifier(features, is_backdoored, *, C: float = 1.0):
    """Logistic regression on standardised query outputs; ``is_backdoored`` (bool per model)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(is_backdoored, bool)
    if y.all() or not y.any():
        raise ValueError("the population needs both clean and backdoored models")
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(np.asarray(features), y)


def meta_scores(clf, features) -> np.ndarray:
    """Probability that each model is backdoored (higher = more suspicious), shape (n_models,)."""
    return clf.predict_proba(np.asarray(features))[:, 1]
