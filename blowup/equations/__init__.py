"""Equations: each declares its residual once (on jets) and gets every derivative order for free.

A problem is an `nn.Module` holding the network and the unknown scalars. Its loss is a sum of
squares of named residual terms, each evaluated point by point: ``terms()`` gives each term's
per-point inputs, ``forward(term, *inputs)`` its weighted residuals of shape (points, per-point).
Pointwise terms let Gauss-Newton phases take per-point Jacobians cheaply (`blowup.lm`).
The trainer also uses ``scalars()`` (unknowns logged every step), ``evaluate()`` (summary fields),
``solution()`` (a DataFrame) and ``plot()``.
"""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor, nn

from blowup.config import ConfigError, require

import importlib

# name -> module; each module defines `check_config(cfg)` (raises ConfigError) and `build(cfg) -> Problem`
EQUATIONS = {"burgers": "blowup.equations.burgers", "sir": "blowup.equations.sir"}


class Problem(nn.Module):
    backend: str = "ntp"
    phases: tuple[str, ...] = ("adam", "lbfgs", "lm")  # the optimiser phases it runs ("guess" needs a guess)
    phase: str = "adam"

    def terms(self) -> dict[str, tuple[Tensor, ...]]:
        raise NotImplementedError

    def start_phase(self, phase: str) -> None:
        """Called by the trainer as each optimiser phase begins: a problem may weigh its terms per phase."""
        self.phase = phase

    def failure(self, evaluation: dict) -> str | None:
        """Why the trained result is not acceptable (one line with the figure that decided it), or None.
        `evaluation` is what `evaluate()` returned. A run that ran every phase is "completed" only if None."""
        return None

    def residuals(self) -> dict[str, Tensor]:
        """Every term's weighted residuals, flattened point-major (the order `blowup.lm` uses)."""
        return {name: self(name, *inputs).flatten() for name, inputs in self.terms().items()}


def typed_equation_config(cfg: DictConfig, schema: type):
    """The equation group merged onto its dataclass schema; a wrong type or unknown key is a ConfigError."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), cfg.equation))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"equation.{key}: {str(err).splitlines()[0]}") from None


def require_all(checks: list[tuple]) -> None:
    """Rows of (key under equation., value, ok, allowed): the first failing row is a ConfigError."""
    for key, value, ok, allowed in checks:
        require(ok, f"equation.{key}", value, allowed)


def check_equation(cfg: DictConfig) -> None:
    """Type- and value-check the equation group (raises ConfigError) without building anything."""
    importlib.import_module(EQUATIONS[cfg.equation.name]).check_config(cfg)


def build_problem(cfg: DictConfig) -> Problem:
    """The problem named by cfg.equation.name, on the configured backend."""
    return importlib.import_module(EQUATIONS[cfg.equation.name]).build(cfg)
