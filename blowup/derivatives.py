"""Input derivatives of a network, by one of two backends.

* ``autograd``: nested ``torch.autograd.grad``; each order differentiates the previous graph, so the
  cost grows exponentially with the order. The reference everything else is checked against.
* ``ntp`` (n-TangentProp): one forward pass of Taylor coefficients through every layer (`blowup.jet`);
  cost near-linear in the order, any order.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from blowup.jet import Jet

BACKENDS = ("autograd", "ntp")


def input_derivatives(net: nn.Module, x: Tensor, order: int, backend: str = "ntp") -> Tensor:
    """Derivatives d^k net / dx^k for k = 0..order at points x of shape (N, 1).

    Returns shape (order + 1, N, out_dim); differentiable w.r.t. the network's parameters.
    """
    return input_jet(net, x, order, backend).derivatives()


def input_jet(net: nn.Module, x: Tensor, order: int, backend: str = "ntp") -> Jet:
    """Like `input_derivatives`, as a `Jet` (normalised Taylor coefficients) for series arithmetic."""
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    if x.dim() != 2 or x.shape[1] != 1:
        raise ValueError(f"x must have shape (N, 1), got {tuple(x.shape)}")
    if backend == "ntp":
        return net(Jet.variable(x, order))
    if backend == "autograd":
        return Jet.from_derivatives(_nested_autograd(net, x, order))
    raise ValueError(f"backend={backend!r} is not one of: {', '.join(BACKENDS)}")


def _nested_autograd(net: nn.Module, x: Tensor, order: int) -> Tensor:
    x = x.detach().requires_grad_(True)
    u = net(x)
    columns = []
    for out in range(u.shape[1]):
        derivs = [u[:, out]]
        for _ in range(order):
            (g,) = torch.autograd.grad(derivs[-1].sum(), x, create_graph=True)
            derivs.append(g[:, 0])
        columns.append(torch.stack(derivs))
    return torch.stack(columns, dim=-1)
