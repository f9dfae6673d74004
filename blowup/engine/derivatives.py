"""Input derivatives of a network, by one of two backends.

* ``autograd``: nested ``torch.autograd.grad``; each order differentiates the previous graph, so the
  cost grows exponentially with the order. The reference everything else is checked against.
* ``ntp`` (n-TangentProp): one forward pass of Taylor coefficients through every layer (`blowup.engine.jet`);
  cost near-linear in the order, any order.
"""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from blowup.engine.jet import Jet
from blowup.errors import ConfigError

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


def memory_limit_gb(cfg: DictConfig) -> float:
    if cfg.max_memory_gb is not None:
        return cfg.max_memory_gb
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2e9


def check_derivative_memory(cfg: DictConfig, key: str, order: int, points: int, width: int, depth: int) -> None:
    """Refuse, before anything runs, a run whose input derivatives cannot fit: a typo such as
    profile=1000 must not take a shared machine down. A training step with derivatives up to `order`
    holds about (order + 1)^2 x points x width x depth numbers (measured peak memory grows so in the
    order; the factor 3 covers the smallest networks, the defaults need less), on top of ~0.5 GB."""
    itemsize = torch.empty((), dtype=getattr(torch, cfg.dtype)).element_size()
    need_gb = 0.5 + 3 * (order + 1) ** 2 * points * width * depth * itemsize / 1e9
    limit_gb = memory_limit_gb(cfg)
    if need_gb > limit_gb:
        raise ConfigError(
            f"{key}={OmegaConf.select(cfg, key)!r} is invalid: the run needs about {need_gb:.3g} GB "
            f"(derivative order {order}, {points} points, width {width}, depth {depth}, {cfg.dtype}), over "
            f"max_memory_gb={limit_gb:.3g}: allowed a smaller {key}, or max_memory_gb raised on purpose"
        )
