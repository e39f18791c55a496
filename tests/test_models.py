import numpy as np
import pytest
import torch

import labkit as lk
from labkit import models


def _params(net):
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def test_train_is_seeded_and_learns(digits):
    a = models.train(digits.train, seed=0, epochs=20)
    b = models.train(digits.train, seed=0, epochs=20)
    c = models.train(digits.train, seed=1, epochs=20)
    assert torch.equal(_params(a), _params(b))
    assert not torch.equal(_params(a), _params(c))
    assert lk.metrics.clean_accuracy(a, digits.test) > 0.93


def test_default_training_reaches_baseline(digits):
    net = models.train(digits.train, seed=0)
    assert lk.metrics.clean_accuracy(net, digits.test) > 0.95
    proba = models.predict_proba(net, digits.test.X)
    assert proba.shape == (450, 10) and np.allclose(proba.sum(1), 1)
    assert models.embed(net, digits.test.X).shape == (450, 64)


def test_cnn_builds_and_trains(tiny):
    net = models.train(tiny, model="cnn", epochs=3, seed=0)
    assert models.predict(net, tiny.X).shape == (40,)


def test_mean_aggregate_reproduces_ordinary_training(digits):
    """The per-sample slot with a plain mean must equal the usual batch gradient."""
    small = digits.train.subset(np.arange(256))
    mean = lambda grads, gen: {k: g.mean(0) for k, g in grads.items()}
    a = models.train(small, seed=0, epochs=2)
    b = models.train(small, seed=0, epochs=2, aggregate=mean)
    assert torch.allclose(_params(a), _params(b), atol=1e-5)


def test_sample_weight_zero_equals_dropping_rows(tiny):
    w = np.ones(40)
    w[:10] = 0.0
    a = models.train(tiny, seed=0, epochs=2, batch_size=40, sample_weight=w)
    b = models.train(tiny.subset(np.arange(10, 40)), seed=0, epochs=2, batch_size=40)
    assert torch.allclose(_params(a), _params(b), atol=1e-5)


def test_train_rejects_bad_settings(tiny):
    with pytest.raises(ValueError, match="unknown model"):
        models.train(tiny, model="resnet")
    with pytest.raises(ValueError, match="epochs"):
        models.train(tiny, epochs=0)
