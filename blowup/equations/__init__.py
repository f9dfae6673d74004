"""Equations: each declares its residual once (on jets) and gets every derivative order for free.

An equation is one module with a typed config dataclass, `check_config(cfg)` (raises ConfigError
before anything runs), `build(cfg) -> Problem`, a `conf/equation/<name>.yaml`, and a line in
EQUATIONS. Its `Problem` subclass implements the contract below; `blowup.equations.decay` is the
smallest complete example (the README's "Adding an equation").
"""

from __future__ import annotations

import importlib

from omegaconf import DictConfig

from blowup.problem import Problem

# name -> module; each module defines `check_config(cfg)` (raises ConfigError) and `build(cfg) -> Problem`
EQUATIONS = {
    "burgers": "blowup.equations.burgers",
    "sir": "blowup.equations.sir.problem",
    "ccf": "blowup.equations.ccf.problem",
    "gclm": "blowup.equations.gclm.problem",
    "decay": "blowup.equations.decay",
}


def check_equation(cfg: DictConfig) -> None:
    """Type- and value-check the equation group (raises ConfigError) without building anything."""
    importlib.import_module(EQUATIONS[cfg.equation.name]).check_config(cfg)


def build_problem(cfg: DictConfig) -> Problem:
    """The problem named by cfg.equation.name, on the configured backend."""
    return importlib.import_module(EQUATIONS[cfg.equation.name]).build(cfg)
