"""Truncated Taylor arithmetic: the engine behind the `ntp` backend and every residual derivative.

A `Jet` carries the normalised Taylor coefficients c[k] = f^(k)(x) / k! of a function at a batch of
points, stacked along dim 0. Arithmetic on jets is arithmetic on truncated power series, so a
function written once with `+`, `-`, `*`, `derivative()` and the primitive rules below yields all its
input derivatives in one forward pass, at a cost near-linear in the order (n-TangentProp).

Like `jax.experimental.jet`, each primitive has one rule: linear maps act on every coefficient at
once, `tanh` follows its derivative rule y' = (1 - y^2) x' one coefficient at a time, and products
are Cauchy products. Every rule is plain torch, so jets are differentiable w.r.t. parameters.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor, nn


class Jet:
    """Normalised Taylor coefficients, shape (order + 1, *batch)."""

    __slots__ = ("coeffs",)

    def __init__(self, coeffs: Tensor):
        self.coeffs = coeffs

    @classmethod
    def variable(cls, x: Tensor, order: int) -> "Jet":
        """The identity function at points x: coefficients (x, 1, 0, ..., 0)."""
        higher = torch.zeros((order,) + x.shape, dtype=x.dtype, device=x.device)
        if order:
            higher[0] = 1
        return cls(torch.cat([x.unsqueeze(0), higher]))

    @classmethod
    def from_derivatives(cls, derivs: Tensor) -> "Jet":
        """Derivatives f^(k) stacked on dim 0 -> jet (divides by k!)."""
        return cls(derivs / _factorials(derivs.shape[0], derivs).view(-1, *[1] * (derivs.dim() - 1)))

    def derivatives(self) -> Tensor:
        """f^(k) for k = 0..order, stacked on dim 0."""
        c = self.coeffs
        return c * _factorials(c.shape[0], c).view(-1, *[1] * (c.dim() - 1))

    @property
    def order(self) -> int:
        return self.coeffs.shape[0] - 1

    def derivative(self) -> "Jet":
        """Jet of f' (one order lower): (f')_k = (k + 1) c_{k+1}."""
        c = self.coeffs
        k = torch.arange(1, c.shape[0], dtype=c.dtype, device=c.device)
        return Jet(c[1:] * k.view(-1, *[1] * (c.dim() - 1)))

    def truncate(self, order: int) -> "Jet":
        return self if order >= self.order else Jet(self.coeffs[: order + 1])

    # --- arithmetic: a jet meets a jet (series op) or a tensor/number (constant) -----------------
    def __add__(self, other) -> "Jet":
        if isinstance(other, Jet):
            a, b = _common_order(self, other)
            return Jet(a + b)
        return Jet(torch.cat([(self.coeffs[0] + other).unsqueeze(0), self.coeffs[1:]]))

    __radd__ = __add__

    def __neg__(self) -> "Jet":
        return Jet(-self.coeffs)

    def __sub__(self, other) -> "Jet":
        return self + (-other)

    def __rsub__(self, other) -> "Jet":
        return (-self) + other

    def __mul__(self, other) -> "Jet":
        if isinstance(other, Jet):
            return Jet(cauchy_product(*_common_order(self, other)))
        return Jet(self.coeffs * other)

    __rmul__ = __mul__

    def __getitem__(self, index) -> "Jet":
        """Index the batch dims, e.g. jet[..., 0] for one output column."""
        index = index if isinstance(index, tuple) else (index,)
        return Jet(self.coeffs[(slice(None),) + index])


def _common_order(a: Jet, b: Jet) -> tuple[Tensor, Tensor]:
    n = min(a.order, b.order)
    return a.coeffs[: n + 1], b.coeffs[: n + 1]


@lru_cache(maxsize=None)
def _factorials_cpu(n: int) -> tuple[float, ...]:
    return tuple(float(math.factorial(k)) for k in range(n))


def _factorials(n: int, like: Tensor) -> Tensor:
    return torch.tensor(_factorials_cpu(n), dtype=like.dtype, device=like.device)


@lru_cache(maxsize=None)
def _toeplitz_index(n: int, device: torch.device) -> Tensor:
    """idx[k, j] = k - j where j <= k, else n (points at an appended zero row)."""
    k = torch.arange(n, device=device)
    diff = k.view(-1, 1) - k.view(1, -1)
    return torch.where(diff >= 0, diff, torch.full_like(diff, n))


def cauchy_product(a: Tensor, b: Tensor) -> Tensor:
    """(a * b)_k = sum_{j <= k} a_{k-j} b_j for all k at once, via a lower-triangular Toeplitz of a."""
    n = a.shape[0]
    padded = torch.cat([a, torch.zeros_like(a[:1])])
    toeplitz = padded[_toeplitz_index(n, a.device)]  # (n, n, *batch)
    return (toeplitz * b.unsqueeze(0)).sum(1)


# --- primitive rules ---------------------------------------------------------------------------
def linear(x: Jet, weight: Tensor, bias: Tensor | None) -> Jet:
    """y = W x + b: W acts on every coefficient, b only on the value."""
    y = x.coeffs @ weight.T
    if bias is None:
        return Jet(y)
    return Jet(torch.cat([(y[0] + bias).unsqueeze(0), y[1:]]))


def tanh(x: Jet) -> Jet:
    """y = tanh(x) from y' = z x' with z = 1 - y^2, one coefficient at a time:
    k y_k = sum_{j=1..k} j x_j z_{k-j},  z_k = [k = 0] - sum_{j=0..k} y_j y_{k-j}."""
    c = x.coeffs
    n = c.shape[0] - 1
    k = torch.arange(1, n + 1, dtype=c.dtype, device=c.device).view(-1, *[1] * (c.dim() - 1))
    jx = c[1:] * k  # j x_j for j = 1..n
    y = [torch.tanh(c[0])]
    z = [1 - y[0] * y[0]]
    for order in range(1, n + 1):
        y.append((jx[:order] * torch.stack(z[::-1])).sum(0) / order)
        if order < n:
            z.append(-(torch.stack(y) * torch.stack(y[::-1])).sum(0))
    return Jet(torch.stack(y))


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
        raise TypeError(f"no Taylor rule for {type(module).__name__}; known: "
                        + ", ".join(t.__name__ for t in MODULE_RULES))
    return rule(module, x)


__all__ = ["Jet", "cauchy_product", "linear", "tanh", "propagate", "MODULE_RULES"]
