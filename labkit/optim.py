"""A light Adam optimiser that gives the same numbers as ``torch.optim.Adam``.

Why not just ``torch.optim.Adam``: building any ``torch.optim.Optimizer`` calls
``add_param_group``, which is wrapped in ``torch._compile._disable_dynamo``; the first call
imports ``torch._dynamo`` (sympy, the inductor config, ...), about +180 MB resident memory
in every kernel that trains a model. :class:`Adam` here is a plain class with the same
update, operation by operation, so results are bitwise identical to ``torch.optim.Adam``
with default options (``amsgrad=False``, ``maximize=False``, ``capturable=False``,
``fused=None``, ``decoupled_weight_decay=False``), and it never imports ``torch._dynamo``.

Like torch it picks the implementation per parameter group and step:

- the single-tensor loop (``torch/optim/adam.py: _single_tensor_adam``) when any parameter
  is not on a device with foreach kernels, e.g. the CPU;
- the multi-tensor ``torch._foreach_*`` path (``_multi_tensor_adam``) when all of them are
  (CUDA), as torch does by default.

``foreach=True``/``False`` forces one, as in torch. The step count is kept as a Python
float: torch keeps a float32 tensor and reads it with ``.item()``, which is the same number
for fewer than 2**24 steps.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch

__all__ = ["Adam"]

_FOREACH_TYPES = (torch.Tensor, torch.nn.Parameter)


def _foreach_devices() -> set:
    # == torch.utils._foreach_utils._get_foreach_kernels_supported_devices()
    return {"cuda", "xpu", "mtia", torch._C._get_privateuse1_backend_name()}


class Adam:
    """Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient, as
    ``torch.optim.Adam(params, lr, betas, eps, weight_decay)``.

    Parameters
    ----------
    params : iterable of tensors, or of dicts (parameter groups, as in torch)
    lr, betas, eps, weight_decay : as in ``torch.optim.Adam``.
    foreach : bool, optional
        ``None`` (default): the multi-tensor path when every parameter is on a device with
        foreach kernels (CUDA), else the single-tensor loop, as torch decides.

    Attributes ``param_groups`` (list of dicts; changing ``group["lr"]`` between steps works
    as in torch) and ``state`` (parameter -> ``{"step", "exp_avg", "exp_avg_sq"}``).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, *, foreach: Optional[bool] = None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if isinstance(params, torch.Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors "
                            f"or dicts, but got {torch.typename(params)}")
        self.defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                             foreach=foreach)
        self.state: dict = {}
        self.param_groups: list = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        seen = set()
        for g in groups:
            g = dict(g)
            ps = g["params"]
            g["params"] = [ps] if isinstance(ps, torch.Tensor) else list(ps)
            for p in g["params"]:
                if not isinstance(p, torch.Tensor):
                    raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {torch.typename(p)}")
                if not p.is_leaf:
                    raise ValueError("can't optimize a non-leaf Tensor")
                if id(p) in seen:
                    raise ValueError("some parameters appear in more than one parameter group")
                seen.add(id(p))
            for k, v in self.defaults.items():
                g.setdefault(k, v)
            self.param_groups.append(g)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (default) or zero every parameter's ``.grad``, as torch does."""
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:
                        p.grad.detach_()
                    else:
                        p.grad.requires_grad_(False)
                    p.grad.zero_()

    def step(self, closure: Optional[Callable] = None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for g in self.param_groups:
                self._step_group(g)
        return loss

    # ---- internals ---------------------------------------------------------------------

    def _step_group(self, group: dict) -> None:
        params, grads, exp_avgs, exp_avg_sqs, states = [], [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("Adam does not support sparse gradients")
            st = self.state.get(p)
            if st is None:   # lazy init, as torch (exp_avg[_sq] in the parameter's layout)
                st = self.state[p] = {"step": 0.0,
                                      "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                      "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(st["exp_avg"])
            exp_avg_sqs.append(st["exp_avg_sq"])
            states.append(st)
        if not params:
            return
        foreach = group["foreach"]
        if foreach is None:   # torch.optim.optimizer._default_to_fused_or_foreach
            devs = _foreach_devices()
            foreach = all(type(p) in _FOREACH_TYPES and p.device.type in devs for p in params)
        beta1, beta2 = group["betas"]
        kw = dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                  weight_decay=group["weight_decay"])
        (_multi_tensor if foreach else _single_tensor)(params, grads, exp_avgs, exp_avg_sqs, states, **kw)


def _single_tensor(params, grads, exp_avgs, exp_avg_sqs, states, *, lr, beta1, beta2, eps, weight_decay):
    """``torch.optim.adam._single_tensor_adam`` without amsgrad/maximize/capturable/differentiable."""
    for i, param in enumerate(params):
        grad, exp_avg, exp_avg_sq, st = grads[i], exp_avgs[i], exp_avg_sqs[i], states[i]
        st["step"] += 1.0
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        if torch.is_complex(param):
            grad = torch.view_as_real(grad)
            exp_avg = torch.view_as_real(exp_avg)
            exp_avg_sq = torch.view_as_real(exp_avg_sq)
            param = torch.view_as_real(param)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = st["step"]
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-step_size)


def _multi_tensor(params, grads, exp_avgs, exp_avg_sqs, states, *, lr, beta1, beta2, eps, weight_decay):
    """``torch.optim.adam._multi_tensor_adam`` without amsgrad/maximize/capturable, per
    (device, dtype) group as ``Optimizer._group_tensors_by_device_and_dtype`` does."""
    buckets: dict = {}
    for i, p in enumerate(params):
        buckets.setdefault((p.device, p.dtype), []).append(i)
    for idx in buckets.values():
        d_params = [params[i] for i in idx]
        d_grads = [grads[i] for i in idx]
        d_exp_avgs = [exp_avgs[i] for i in idx]
        d_exp_avg_sqs = [exp_avg_sqs[i] for i in idx]
        d_states = [states[i] for i in idx]
        if any(torch.is_complex(p) for p in d_params):
            real = lambda ts: [torch.view_as_real(t) if torch.is_complex(t) else t for t in ts]  # noqa: E731
            d_params, d_grads, d_exp_avgs, d_exp_avg_sqs = (real(d_params), real(d_grads),
                                                            real(d_exp_avgs), real(d_exp_avg_sqs))
        for st in d_states:
            st["step"] += 1.0
        if weight_decay != 0:
            d_grads = torch._foreach_add(d_grads, d_params, alpha=weight_decay)
        torch._foreach_lerp_(d_exp_avgs, d_grads, 1 - beta1)
        torch._foreach_mul_(d_exp_avg_sqs, beta2)
        torch._foreach_addcmul_(d_exp_avg_sqs, d_grads, d_grads, 1 - beta2)
        del d_grads
        bias_correction1 = [1 - beta1 ** st["step"] for st in d_states]
        bias_correction2 = [1 - beta2 ** st["step"] for st in d_states]
        step_size = [(lr / bc) * -1 for bc in bias_correction1]
        bias_correction2_sqrt = [bc ** 0.5 for bc in bias_correction2]
        exp_avg_sq_sqrt = torch._foreach_sqrt(d_exp_avg_sqs)
        torch._foreach_div_(exp_avg_sq_sqrt, bias_correction2_sqrt)
        torch._foreach_add_(exp_avg_sq_sqrt, eps)
        torch._foreach_addcdiv_(d_params, d_exp_avgs, exp_avg_sq_sqrt, step_size)
