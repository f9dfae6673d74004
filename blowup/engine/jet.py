"""Truncated Taylor arithmetic: the engine behind the `ntp` backend and every residual derivative.

A `Jet` carries the normalised Taylor coefficients c[k] = f^(k)(x) / k! of a function at a batch of
points, stacked along dim 0. Arithmetic on jets is arithmetic on truncated power series, so a
function written once with `+`, `-`, `*`, `derivative()` and the primitive rules below yields all its
input derivatives in one forward pass (n-TangentProp), where nested autograd grows exponentially.

Like `jax.experimental.jet`, each primitive has one rule: linear maps act on every coefficient at
once, `tanh` follows its derivative rule y' = (1 - y^2) x', and products are Cauchy products. Every
rule is differentiable w.r.t. parameters and works under `torch.func` transforms (vmap, jacrev).

Speed: a series rule is O(n^2) arithmetic per element, but written as a few in-place multiply-adds
per order on whole slabs, inside autograd.Functions with hand-written backward and vmap rules, a
pass of order n costs O(n) kernels rather than autograd replaying O(n^2) tiny ones.
"""

from __future__ import annotations

import math
import os
from functools import cache

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class Jet:
    """Normalised Taylor coefficients, shape (order + 1, *batch)."""

    __slots__ = ("coeffs",)

    def __init__(self, coeffs: Tensor):
        self.coeffs = coeffs

    @classmethod
    def variable(cls, x: Tensor, order: int) -> Jet:
        """The identity function at points x: coefficients (x, 1, 0, ..., 0)."""
        if order == 0:
            return cls(x.unsqueeze(0))
        return cls(F.pad(torch.stack([x, torch.ones_like(x)]), [0, 0] * x.dim() + [0, order - 1]))

    @classmethod
    def from_derivatives(cls, derivs: Tensor) -> Jet:
        """Derivatives f^(k) stacked on dim 0 -> jet (divides by k!)."""
        return cls(derivs / _column("factorial", derivs))

    def derivatives(self) -> Tensor:
        """f^(k) for k = 0..order, stacked on dim 0."""
        return self.coeffs * _column("factorial", self.coeffs)

    @property
    def order(self) -> int:
        return self.coeffs.shape[0] - 1

    def derivative(self) -> Jet:
        """Jet of f' (one order lower): (f')_k = (k + 1) c_{k+1}."""
        return Jet(self.coeffs[1:] * _column("k", self.coeffs)[1:])

    # --- arithmetic: a jet meets a jet (series op) or a tensor/number (constant) -----------------
    def __add__(self, other) -> Jet:
        if isinstance(other, Jet):
            a, b = _common_order(self, other)
            return Jet(a + b)
        return Jet(torch.cat([(self.coeffs[0] + other).unsqueeze(0), self.coeffs[1:]]))

    __radd__ = __add__

    def __neg__(self) -> Jet:
        return Jet(-self.coeffs)

    def __sub__(self, other) -> Jet:
        return self + (-other)

    def __rsub__(self, other) -> Jet:
        return (-self) + other

    def __mul__(self, other) -> Jet:
        if isinstance(other, Jet):
            return Jet(cauchy_product(*_common_order(self, other)))
        return Jet(self.coeffs * other)

    __rmul__ = __mul__

    def __getitem__(self, index) -> Jet:
        """Index the batch dims, e.g. jet[..., 0] for one output column."""
        index = index if isinstance(index, tuple) else (index,)
        return Jet(self.coeffs[(slice(None),) + index])


def _common_order(a: Jet, b: Jet) -> tuple[Tensor, Tensor]:
    n = min(a.order, b.order)
    return a.coeffs[: n + 1], b.coeffs[: n + 1]


def _column(name: str, like: Tensor) -> Tensor:
    """k! or k for k = 0..order of the series `like`, as a column that broadcasts over its batch dims."""
    return _cached_column(name, like.shape[0], like.dim(), like.dtype, like.device)


@cache
def _cached_column(name: str, n: int, dim: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    # cached: building a small tensor costs as much as the multiply it feeds
    values = [float(math.factorial(k)) if name == "factorial" else float(k) for k in range(n)]
    return torch.tensor(values, dtype=dtype, device=device).view(-1, *[1] * (dim - 1))


def cauchy_product(a: Tensor, b: Tensor) -> Tensor:
    """(a * b)_k = sum_{j <= k} a_{k-j} b_j for all k at once (same order, batch dims broadcast)."""
    return _Cauchy.apply(a, b)


# --- series kernels ----------------------------------------------------------------------------
# The O(n^2) work of a truncated product is n + 1 fused multiply-adds, each on a whole slab of orders,
# in place in one fresh buffer: O(n) kernels and no (n, n, *batch) Toeplitz temporary. In-place ops
# have no vmap batching rule, so the kernels run inside autograd.Functions whose vmap rule makes the
# vmapped dim one more batch dim; products and correlations are each other's adjoints, so the
# backward of either is built from the two and differentiates again as often as needed.
def _same_rank(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Batch dims broadcast from the right, so pad the shorter one after its series dim."""
    if a.dim() == b.dim():
        return a, b
    rank = max(a.dim(), b.dim())
    return tuple(t.reshape(t.shape[:1] + (1,) * (rank - t.dim()) + t.shape[1:]) for t in (a, b))


def _sum_to(grad: Tensor, like: Tensor) -> Tensor:
    """Undo the broadcasting of `like` in a gradient (the adjoint of `_same_rank` plus broadcast)."""
    shape = like.shape[:1] + (1,) * (grad.dim() - like.dim()) + like.shape[1:]
    return grad.sum_to_size(shape).view(like.shape)


def _cauchy_kernel(a: Tensor, b: Tensor) -> Tensor:
    a, b = _same_rank(a, b)
    n, rows = a.shape[0] - 1, b.unbind(0)
    out = a * rows[0]
    for i in range(1, n + 1):
        out[i:].addcmul_(a[: n + 1 - i], rows[i])
    return out


def _correlate_kernel(g: Tensor, a: Tensor) -> Tensor:
    """out_j = sum_{i <= n - j} a_i g_{j+i}: the adjoint of truncated multiplication by a."""
    g, a = _same_rank(g, a)
    n, rows = g.shape[0] - 1, a.unbind(0)
    out = g * rows[0]
    for i in range(1, n + 1):
        out[: n + 1 - i].addcmul_(g[i:], rows[i])
    return out


def _batch_front(in_dims, *tensors: Tensor) -> list[Tensor]:
    """The vmap rule shared by the series Functions, which act elementwise on every dim after the
    series dim: each input's vmapped dim becomes its first batch dim (size 1 if not vmapped), after
    padding the batch dims to one rank so that broadcasting still lines up from the right."""
    rank = max(t.dim() - (d is not None) for t, d in zip(tensors, in_dims))
    moved = []
    for t, d in zip(tensors, in_dims):
        t = t.unsqueeze(0) if d is None else t.movedim(d, 0)
        t = t.reshape(t.shape[:2] + (1,) * (rank + 1 - t.dim()) + t.shape[2:])
        moved.append(t.movedim(0, 1))
    return moved


def _torch_internals():
    """The private torch pieces of the fast apply path below, or None where they are missing (another
    torch version) or switched off with BLOWUP_TORCH_INTERNALS=0. `check_fast_apply` then verifies that
    they still behave as this module expects before they are used."""
    if os.environ.get("BLOWUP_TORCH_INTERNALS", "1") == "0":
        return None
    try:
        from torch._functorch.utils import unwrap_dead_wrappers

        transforms_active = torch._C._are_functorch_transforms_active
    except (ImportError, AttributeError):
        return None
    return transforms_active, unwrap_dead_wrappers


class _SeriesFunction(torch.autograd.Function):
    """Base of the series Functions: their forwards take positional tensors only."""

    internals = _torch_internals()  # None: the public Function.apply everywhere

    @classmethod
    def apply(cls, *args):
        """`Function.apply` binds arguments through `inspect.signature` on every call (~20 us, a tenth
        of a whole low-order pass); outside torch.func transforms there is nothing to bind, so go
        straight to the C++ apply. Under transforms, or without the internals, the public path."""
        internals = _SeriesFunction.internals
        if internals is None or internals[0]():
            return super().apply(*args)
        return super(torch.autograd.Function, cls).apply(*internals[1](args))


class _Cauchy(_SeriesFunction):
    @staticmethod
    def forward(a: Tensor, b: Tensor) -> Tensor:
        return _cauchy_kernel(a, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b = ctx.saved_tensors
        grad_a = _sum_to(_Correlate.apply(grad, b), a) if ctx.needs_input_grad[0] else None
        grad_b = _sum_to(_Correlate.apply(grad, a), b) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b

    @staticmethod
    def vmap(info, in_dims, a, b):
        return _Cauchy.apply(*_batch_front(in_dims, a, b)), 1


class _Correlate(_SeriesFunction):
    @staticmethod
    def forward(g: Tensor, a: Tensor) -> Tensor:
        return _correlate_kernel(g, a)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad: Tensor):
        g, a = ctx.saved_tensors
        grad_g = _sum_to(_Cauchy.apply(grad, a), g) if ctx.needs_input_grad[0] else None
        grad_a = _sum_to(_Correlate.apply(g, grad), a) if ctx.needs_input_grad[1] else None
        return grad_g, grad_a

    @staticmethod
    def vmap(info, in_dims, g, a):
        return _Correlate.apply(*_batch_front(in_dims, g, a)), 1


# --- primitive rules ---------------------------------------------------------------------------
def linear(x: Jet, weight: Tensor, bias: Tensor | None) -> Jet:
    """y = W x + b: W acts on every coefficient, b only on the value. One batched GEMM per
    coefficient, with b entering as a zero-padded (order + 1, 1, out) addend: no cat or slice nodes."""
    c = x.coeffs
    if bias is None or c.shape[0] == 1:  # a jet of order 0 is just a value
        return Jet(F.linear(c, weight, bias))
    flat = c.reshape(c.shape[0], -1, c.shape[-1])
    addend = F.pad(bias.view(1, 1, -1), (0, 0, 0, 0, 0, c.shape[0] - 1))
    y = torch.baddbmm(addend, flat, weight.T.expand(c.shape[0], -1, -1))
    return Jet(y.view(*c.shape[:-1], -1))


def _tanh_series(x: Tensor) -> tuple[Tensor, Tensor]:
    """y = tanh(x) and z = 1 - y^2 as series, from y' = z x':
    k y_k = sum_{j >= 1} j x_j z_{k-j},  z_k = [k = 0] - sum_{i + l = k} y_i y_l.
    Each coefficient, once known, pushes its terms into the later sums with one in-place multiply-add
    on a whole slab of orders, so the Python loop costs a handful of kernels per order. (In place is
    safe: this runs inside `_TanhSeries.forward`, on plain tensors, with autograd off.)"""
    n = x.shape[0] - 1
    y, z = torch.empty_like(x), torch.zeros_like(x)  # row m > 0 of y holds m y_m until its turn
    y_rows, z_rows = y.unbind(0), z.unbind(0)  # views, so indexing them costs no dispatch
    torch.tanh(x[0], out=y_rows[0])
    z_rows[0].fill_(1).addcmul_(y_rows[0], y_rows[0], value=-1)
    dx = x[1:] * _column("k", x)[1:]  # x' = (j x_j)
    torch.mul(dx, z_rows[0], out=y[1:])
    for m in range(1, n + 1):
        ym = y_rows[m]
        if m > 1:
            ym.div_(m)
        pairs = min(m + 1, n + 1 - m)  # pairs (m, l), l <= m, m + l <= n: twice, but (m, m) once
        z[m : m + pairs].addcmul_(y[:pairs], ym, value=-2)
        if 2 * m <= n:
            z_rows[2 * m].addcmul_(ym, ym)
        if m < n:  # z_m is complete: its terms in k y_k for k > m
            y[m + 1 :].addcmul_(dx[: n - m], z_rows[m])
    return y, z


class _TanhSeries(_SeriesFunction):
    """tanh on series with a hand-written backward: perturbing x by dx moves y by z * dx (a Cauchy
    product with z = sech^2 as a series), so the gradient is one correlation with the saved z
    instead of autograd replaying every step of the recurrence. z is an output too, so that double
    backward (through the saved y and z) stays exact."""

    @staticmethod
    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        return _tanh_series(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*output)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad_y: Tensor | None, grad_z: Tensor | None):
        y, z = ctx.saved_tensors
        if grad_z is not None:  # dz = -2 y * dy
            grad_z = -2 * _Correlate.apply(grad_z, y)
            grad_y = grad_z if grad_y is None else grad_y + grad_z
        return None if grad_y is None else _Correlate.apply(grad_y, z)

    @staticmethod
    def vmap(info, in_dims, x):
        return _TanhSeries.apply(*_batch_front(in_dims, x)), (1, 1)


def tanh(x: Jet) -> Jet:
    """y = tanh(x) (see `_tanh_series`); at order 0, torch's own tanh."""
    if x.order == 0:
        return Jet(torch.tanh(x.coeffs))
    return Jet(_TanhSeries.apply(x.coeffs)[0])


MODULE_RULES = {
    nn.Linear: lambda layer, x: linear(x, layer.weight, layer.bias),
    nn.Tanh: lambda layer, x: tanh(x),
}


def propagate(module: nn.Module, x: Jet) -> Jet:
    """Push a jet through a module by the rule table; Sequentials go layer by layer."""
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = propagate(layer, x)
        return x
    rule = MODULE_RULES.get(type(module))
    if rule is None:
        raise TypeError(
            f"no Taylor rule for {type(module).__name__}; known: " + ", ".join(t.__name__ for t in MODULE_RULES)
        )
    return rule(module, x)


def check_fast_apply() -> bool:
    """Keep the fast apply path only if it gives what the public one gives (value, gradient and the
    graph it builds) on a small product; otherwise fall back to the public path for good."""
    if _SeriesFunction.internals is None:
        return False
    a = torch.linspace(0.1, 0.9, 12, dtype=torch.float64).view(3, 4).requires_grad_()
    b = torch.linspace(-1, 1, 12, dtype=torch.float64).view(3, 4)
    try:
        fast = _Cauchy.apply(a, b)
        (fast_grad,) = torch.autograd.grad(fast.square().sum(), a)
        public = torch.autograd.Function.apply.__func__(_Cauchy, a, b)
        (public_grad,) = torch.autograd.grad(public.square().sum(), a)
        same = torch.equal(fast, public) and torch.equal(fast_grad, public_grad)
    except Exception:  # a changed internal API: whatever it raises, the public path is the answer
        same = False
    if not same:
        _SeriesFunction.internals = None
    return same


check_fast_apply()

__all__ = ["Jet", "cauchy_product", "linear", "tanh", "propagate", "MODULE_RULES"]
