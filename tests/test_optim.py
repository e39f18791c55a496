"""labkit.optim.Adam: bitwise the same numbers as torch.optim.Adam, without torch._dynamo."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from labkit import models, optim


def _params(net):
    return torch.cat([p.detach().flatten() for p in net.parameters()])


@pytest.mark.parametrize("model,weight_decay", [("mlp", 0.0), ("mlp", 1e-3), ("cnn", 1e-4)])
def test_train_is_bitwise_torch_adam(digits, monkeypatch, model, weight_decay):
    small = digits.train.subset(np.arange(300))
    ours = models.train(small, model=model, epochs=3, weight_decay=weight_decay, seed=0, device="cpu")
    monkeypatch.setattr(models, "Adam", torch.optim.Adam)
    theirs = models.train(small, model=model, epochs=3, weight_decay=weight_decay, seed=0, device="cpu")
    assert torch.equal(_params(ours), _params(theirs))


def _run(opt_cls, foreach, steps=40, **kw):
    gen = torch.Generator().manual_seed(0)
    ps = [torch.randn(5, 3, generator=gen).requires_grad_(True),
          torch.randn(7, generator=gen).requires_grad_(True),
          torch.randn(2, 3, 4, 4, generator=gen).to(memory_format=torch.channels_last).requires_grad_(True),
          torch.randn(3, generator=gen).requires_grad_(True)]   # never gets a gradient
    opt = opt_cls(ps, foreach=foreach, **kw)
    for t in range(steps):
        opt.zero_grad()
        loss = (ps[0] ** 2).sum() + ps[1].sin().sum() + (ps[2] ** 3).mean()
        if t % 3 == 0:
            loss = loss + ps[1].exp().sum()   # vary the gradients
        loss.backward()
        if t == 20:
            opt.param_groups[0]["lr"] *= 0.5
        opt.step()
    return ps


@pytest.mark.parametrize("foreach", [None, False, True])
@pytest.mark.parametrize("kw", [dict(lr=0.01), dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)])
def test_optimizer_is_bitwise_torch_adam(foreach, kw):
    """Both the single-tensor loop (CPU default) and the foreach path (CUDA default)."""
    ours, theirs = _run(optim.Adam, foreach, **kw), _run(torch.optim.Adam, foreach, **kw)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert torch.equal(ours[3], _run(optim.Adam, foreach, steps=0, **kw)[3])   # no grad: untouched


def test_zero_grad_and_validation():
    p = torch.zeros(3, requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    p.sum().backward()
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and not p.grad.any()
    opt.zero_grad()
    assert p.grad is None
    opt.step()   # no gradients: nothing happens
    assert not p.any() and not opt.state
    with pytest.raises(ValueError):
        optim.Adam([], lr=0.1)
    with pytest.raises(ValueError):
        optim.Adam([p], lr=-1)
    with pytest.raises(ValueError):
        optim.Adam([p], betas=(1.0, 0.9))


def test_training_does_not_import_dynamo():
    code = ("import sys, labkit as lk\n"
            "d = lk.data.digits(seed=0).train.subset(range(200))\n"
            "lk.models.train(d, epochs=1)\n"
            "lk.models.train(d, epochs=1, model='cnn', weight_decay=1e-4)\n"
            "lk.models.train(d, epochs=1, aggregate=lk.defences.dp_sgd())   # per-sample gradients\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_per_sample_gradients_match_torch_func(model):
    """The aggregation slot's per-sample gradients (expanded weights) equal torch.func's
    vmap(grad(...)): bitwise for the MLP, to float rounding for the CNN."""
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(0)
    net = models.mlp((1, 8, 8), 10) if model == "mlp" else models.small_cnn((1, 8, 8), 10)
    x, y = torch.rand(12, 1, 8, 8), torch.randint(0, 10, (12,))
    seen = {}
    models._per_sample_step(net, lambda grads, gen: seen.update(grads) or
                            {n: g.sum(0) for n, g in grads.items()})(x, y, None)
    params = {n: p.detach() for n, p in net.named_parameters()}
    ref = vmap(grad(lambda prm, xi, yi: nn.functional.cross_entropy(functional_call(net, prm, (xi[None],)),
                                                                     yi[None])), in_dims=(None, 0, 0))(params, x, y)
    for n, p in net.named_parameters():
        assert seen[n].shape == (12, *p.shape)
        if model == "mlp":
            assert torch.equal(seen[n], ref[n]), n
        else:
            torch.testing.assert_close(seen[n], ref[n], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(p.grad, seen[n].sum(0))       # .grad is what the rule returned
        assert p.grad_sample is None                              # nothing left behind for the next step
