"""Equations: each declares its residual once (on jets) and gets every derivative order for free.

A problem is an `nn.Module` holding the network and the unknown scalars. Its loss is a sum of
squares of named residual terms, each evaluated point by point: ``terms()`` gives each term's
per-point inputs, ``forward(term, *inputs)`` its weighted residuals of shape (points, per-point).
Pointwise terms let Gauss-Newton phases take per-point Jacobians cheaply (`blowup.lm`).
The trainer also uses ``scalars()`` (unknowns logged every step), ``evaluate()`` (summary fields),
``solution()`` (a DataFrame) and ``plot()``.
"""
from __future__ import annotations

from omegaconf import DictConfig
from torch import Tensor, nn

import importlib

# name -> module; each module defines `check_config(cfg)` (raises ConfigError) and `build(cfg) -> Problem`
EQUATIONS = {"burgers": "blowup.equations.burgers"}


class Problem(nn.Module):
    backend: str = "ntp"

    def terms(self) -> dict[str, tuple[Tensor, ...]]:
        raise NotImplementedError

    def residuals(self) -> dict[str, Tensor]:
        """Every term's weighted residuals, flattened point-major (the order `blowup.lm` uses)."""
        return {name: self(name, *inputs).flatten() for name, inputs in self.terms().items()}


def check_equation(cfg: DictConfig) -> None:
    """Type- and value-check the equation group (raises ConfigError) without building anything."""
    importlib.import_module(EQUATIONS[cfg.equation.name]).check_config(cfg)


def build_problem(cfg: DictConfig) -> Problem:
    """The problem named by cfg.equation.name, on the configured backend."""
    return importlib.import_module(EQUATIONS[cfg.equation.name]).build(cfg)
