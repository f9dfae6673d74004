"""The contract between an equation and everything generic: what the trainer, the optimisers, the
refinement and the analyses ask of an equation, and nothing else. An equation implements `Problem`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor, nn

from blowup.errors import ConfigError


class ResidualTerms(nn.Module, ABC):
    """A loss that is a sum of squares of named residual terms, evaluated point by point: what the
    optimisers need (the Levenberg-Marquardt phase takes per-point Jacobians of it, `blowup.solvers.lm`).

    `terms()` gives each term's per-point inputs, `forward(term, *inputs)` the weighted residuals at
    those points, shape (points, per-point). Derivatives of a network come from
    `blowup.derivatives.input_jet` on the configured backend, so a residual written once on jets has
    every derivative order."""

    backend: str = "ntp"  # the derivative backend (blowup.solvers.lm switches to ntp for its per-point Jacobians)

    @abstractmethod
    def terms(self) -> dict[str, tuple[Tensor, ...]]:
        """{term name: per-point input tensors (first dim: points)} for the current phase."""

    @abstractmethod
    def forward(self, term: str, *inputs: Tensor) -> Tensor:
        """The weighted residuals of one term at its points, shape (points, per-point)."""

    def residuals(self) -> dict[str, Tensor]:
        """Every term's weighted residuals, flattened point-major (the order `blowup.solvers.lm` uses)."""
        return {name: self(name, *inputs).flatten() for name, inputs in self.terms().items()}


class Problem(ResidualTerms):
    """What the trainer needs from an equation: a network and the unknown scalars (its parameters),
    the residual terms, and what a run reports about its result."""

    phases: tuple[str, ...] = ("adam", "lbfgs", "lm")  # the optimiser phases it runs ("guess" needs a guess)
    phase: str = "adam"
    plot_name: str = "solution.png"  # the file `plot` writes in the run dir
    judges_results: bool = False  # True: `failure` can reject a result, so a phase may end once it accepts one

    @abstractmethod
    def scalars(self) -> dict[str, Tensor]:
        """The unknown scalars (λ, rates, ...), logged in metrics.csv every step."""

    @abstractmethod
    def evaluate(self) -> dict:
        """Summary fields of the trained result (errors against references where there are any)."""

    @abstractmethod
    def solution(self) -> pd.DataFrame:
        """The trained solution on a fine grid: solution.csv."""

    @abstractmethod
    def plot(self, metrics: pd.DataFrame, path: Path) -> None:
        """A figure of the result and its history (`metrics` is metrics.csv), saved to `path`."""

    def stability(self):
        """A `blowup.analysis.stability.StabilitySpec` about the trained result, for `blowup stability`: the
        linearised residual, domain and parity, the symmetry modes and any exact ones."""
        raise NotImplementedError

    def bad_start(self) -> str | None:
        """Checked as the last phase is about to begin: why the phases so far ended in a basin the last
        one cannot leave (one line with the figure that says so), or None. The trainer then starts again
        from a fresh initialisation (`reinitialize`), up to optim.restarts times. Must not change the
        state: a run that needs no restart must train exactly as without this check."""
        return None

    def reinitialize(self, seed: int) -> None:
        """A fresh initialisation for a restart: every submodule's parameters drawn anew from `seed`."""
        torch.manual_seed(seed)
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def start_phase(self, phase: str) -> None:
        """Called by the trainer as each optimiser phase begins: a problem may weigh its terms per phase."""
        self.phase = phase

    def once_per_state(self, name: str, compute: Callable[[], object]):
        """compute() for the current parameters, kept until they change: the summary, the plot, solution.csv and
        the trainer's acceptance checks all look at the same trained state, and its refinement is the costly part."""
        key = hashlib.sha1(b"".join(p.detach().cpu().numpy().tobytes() for p in self.parameters())).digest()
        cache = self.__dict__.setdefault("_per_state", {})
        if name not in cache or cache[name][0] != key:
            cache[name] = (key, compute())
        return cache[name][1]

    def failure(self, evaluation: dict) -> str | None:
        """Why the trained result is not acceptable (one line with the figure that decided it), or None.
        `evaluation` is what `evaluate()` returned. A run that ran every phase is "completed" only if None;
        if not, and restarts remain, it starts again from a fresh initialisation. With `judges_results`, a
        phase with optim.<phase>.accept_every ends early ("accepted") when this finds nothing wrong."""
        return None


def typed_equation_config(cfg: DictConfig, schema: type):
    """The equation group merged onto its dataclass schema; a wrong type or unknown key is a ConfigError."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), cfg.equation))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"equation.{key}: {str(err).splitlines()[0]}") from None
