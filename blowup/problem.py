"""The contract between an equation and everything generic: what the trainer, the optimisers, the
refinement and the analyses ask of an equation, and nothing else. An equation implements `Problem`, and
where it has a stability analysis, `Stability` (what `blowup stability` asks: one `Spectrum` per profile).
"""

from __future__ import annotations

import copy
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor, nn

from blowup.errors import ConfigError

MATCH = 1e-4  # a symmetry or exact mode within this of an eigenvalue is that mode
GRID = 801  # points spanning Spectrum.domain (symmetric about its middle) where eigenfunctions are compared and plotted
LISTED_FROM = -1.5  # the console table of `blowup stability` lists the modes with Re ν down to this
MAX_STAGES = 4  # networks in a multi-stage fit: the first, trained by the optimiser phases, and up to three more
STAGE_PHASES = tuple(f"stage{n}" for n in range(2, MAX_STAGES + 1))  # one Levenberg-Marquardt phase per later stage


@dataclass
class Symmetry:
    """A mode every profile has because the equation has a symmetry (position, time, frame, scale): not an
    instability of the profile. Its eigenvalue is a formula in the trained scalars."""

    name: str
    nu: float
    parity: str | None  # None: matched whatever the mode's parity


@dataclass
class ExactMode:
    """A mode known in closed form about the exact profile, for comparison."""

    index: int
    nu: float
    parity: str | None
    eigenfunction: Callable[[np.ndarray], np.ndarray]


@dataclass
class Mode:
    """One reported eigenvalue of the linearised operator, with its error bar and eigenfunction."""

    nu: complex
    error: float
    parity: str
    values: np.ndarray  # the eigenfunction at GRID points spanning Spectrum.domain, max |φ| = 1
    symmetry: str | None = None
    exact: float | None = None
    exact_index: int | None = None
    eigenfunction_error: float | None = None
    found_by: str = "eigenvalues"  # or "scan": a smooth eigenfunction found where the eigenvalues missed it


@dataclass
class Spectrum:
    """One profile's stability spectrum: what `blowup stability` writes, plots and prints."""

    modes: list[Mode]  # by decreasing Re ν
    counts: dict  # stability.json: the unstable count and how it was reached
    domain: tuple[float, float]  # where the eigenfunctions are given ...
    coordinate: str  # ... and its name (the plot's axis)
    exact: list[float]  # closed-form eigenvalues drawn beside the found ones (empty where none is known)
    summary: str  # one line under the console table: what was counted and what was left out

    def unstable_count(self) -> float:
        """The unstable count, or NaN where the spectrum fails its own check: a symmetry mode the profile must have
        (time translation, ν = 1) was not found. Then the grid no longer resolves eigenfunctions (the tests that
        pass a genuine mode fail the exact one too), and a count would only say how many modes failed them."""
        return float("nan") if self.counts.get("symmetry_modes_missing") else float(self.counts["n_unstable"])

    def unstable_counts(self) -> dict[str, float]:
        """`unstable_count` in total and per parity class analysed (n_unstable_even, n_unstable_odd): a class's NaN
        where its own symmetry mode is missing (`untrusted_classes`, where the analysis names them), else every
        count NaN with the total; how many of them lie where more may be missed (n_unstable_in_continuum), and how
        many modes, symmetries included, a scan found where the eigenvalues missed them (n_found_by_scan) and how many
        deep minima it left uncounted (n_scan_not_smooth)."""
        total = self.unstable_count()
        untrusted = self.counts.get("untrusted_classes", ["even", "odd"] if total != total else [])
        parities = [parity for parity in ("even", "odd") if f"n_unstable_{parity}" in self.counts]
        per_class = {p: float("nan") if p in untrusted else float(self.counts[f"n_unstable_{p}"]) for p in parities}
        counts = {"n_unstable": total, **{f"n_unstable_{p}": count for p, count in per_class.items()}}
        if "n_unstable_in_continuum" in self.counts:  # found where others may be missed (`log_stability`)
            found = float(self.counts["n_unstable_in_continuum"])
            counts["n_unstable_in_continuum"] = total if total != total else found
            counts["n_found_by_scan"] = float(self.counts["n_found_by_scan"])  # modes the eigenvalues missed
            counts["n_scan_not_smooth"] = float(len(self.counts["scan_not_smooth"]))  # minima not counted
        return counts


class Stability(ABC):
    """An equation's linear stability analysis about one trained profile (Problem.stability())."""

    @abstractmethod
    def analyse(self) -> Spectrum:
        """The spectrum of L = -dF/dU about the profile: the modes it can vouch for, the rest counted."""

    def with_complex_scan(self) -> Stability:
        """The same analysis that also scans complex ν where its eigenvalues may miss modes (`blowup stability
        --complex`); NotImplementedError where the analysis has no such scan."""
        raise NotImplementedError(f"{type(self).__name__} has no scan of complex ν")


class ResidualTerms(nn.Module, ABC):
    """A loss that is a sum of squares of named residual terms, evaluated point by point (or, for a term named in
    `nonlocal_terms`, whole): what the optimisers need (the Levenberg-Marquardt phase takes per-point Jacobians of
    it, and a nonlocal term's from `nonlocal_jacobian`, `blowup.solvers.lm`).

    `terms()` gives each term's per-point inputs, `forward(term, *inputs)` the weighted residuals at
    those points, shape (points, per-point). Derivatives of a network come from
    `blowup.engine.derivatives.input_jet` on the configured backend, so a residual written once on jets has
    every derivative order."""

    backend: str = "ntp"  # the derivative backend (blowup.solvers.lm switches to ntp for its per-point Jacobians)
    # terms whose every row depends on every point (a nonlocal operator): their Jacobian is taken whole, not per point
    nonlocal_terms: tuple[str, ...] = ()

    @abstractmethod
    def terms(self) -> dict[str, tuple[Tensor, ...]]:
        """{term name: per-point input tensors (first dim: points)} for the current phase."""

    @abstractmethod
    def forward(self, term: str, *inputs: Tensor) -> Tensor:
        """The weighted residuals of one term at its points, shape (points, per-point)."""

    def residuals(self) -> dict[str, Tensor]:
        """Every term's weighted residuals, flattened point-major (the order `blowup.solvers.lm` uses)."""
        return {name: self(name, *inputs).flatten() for name, inputs in self.terms().items()}

    def nonlocal_jacobian(self, term: str, params: dict[str, Tensor], inputs: tuple[Tensor, ...]) -> Tensor:
        """d(rows of a term in `nonlocal_terms`) / d(params) as an (R, P) matrix, columns in `params`' order: one
        reverse pass per row through the whole term. An equation whose rows need the network only through its
        values at the points can chain per-point Jacobians instead, which is far cheaper."""

        def whole(p: dict[str, Tensor]) -> Tensor:
            return torch.func.functional_call(self, p, (term, *inputs)).flatten()

        jac = torch.func.jacrev(whole)(params)
        return torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], -1)


class Problem(ResidualTerms):
    """What the trainer needs from an equation: a network and the unknown scalars (its parameters),
    the residual terms, and what a run reports about its result."""

    phases: tuple[str, ...] = ("adam", "lbfgs", "lm")  # the optimiser phases it runs ("guess" needs a guess)
    phase: str = "adam"
    plot_name: str = "solution.png"  # the file `plot` writes in the run dir
    judges_results: bool = False  # True: `failure` can reject a result, so a phase may end once it accepts one
    handoff: float = 1.0  # optim.handoff where the config leaves it to the equation (null): 1, no handoff
    stage_accept_at: float = 1.0  # optim.stage.accept_at where the config leaves it to the equation (null)
    first_network_svd: str = "range"  # the first network's LM phases where optim.<phase>.svd is null: "range" or "full"
    profile_axis: str | None = None  # what the profile number means, for plots over it (`blowup report`)
    # keys under `equation.` (or prefixes of them) that only change how the result is evaluated: a checkpoint
    # trained with other values may be resumed
    evaluation_keys: tuple[str, ...] = ()

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

    def stability(self, right: float | None = None) -> Stability:
        """The stability analysis about the trained result, for `blowup stability`; NotImplementedError where
        the equation has none. `right`: about the result solved again on a domain reaching that far (`--right`),
        where eigenfunctions that decay slowly show their tails; NotImplementedError where the domain is fixed,
        ValueError (one line, with the reason) where the result cannot be taken there."""
        raise NotImplementedError

    def init_from(self, other: Problem, network: bool = True) -> None:
        """Start from another run's trained problem (`init_from=RUN_DIR`, its config checked to match): its
        network's parameters where `network`; an equation with a refined result may start from that too."""
        if network:
            self.load_state_dict(
                {k: v for k, v in other.state_dict().items() if k in dict(self.named_parameters())}, strict=False
            )

    def continuation(self, key: str):
        """(a `blowup.solvers.continuation.BranchSystem` in the config key `key`, the solution's unknowns, the
        key's value): what `blowup continue` follows. ConfigError naming the keys that can be followed, where
        `key` is not one; NotImplementedError where the equation has none."""
        raise ConfigError(f"--param {key!r} is invalid: equation {type(self).__name__} has no parameter to follow")

    def derivative_order(self) -> int | None:
        """The highest order of the residual's derivatives that the loss imposes, where one order says what a
        training step costs (`blowup bench` reports the step against it); None where it does not."""
        return None

    def bad_basin(self) -> str | None:
        """Why the network is in a basin the last optimiser cannot leave (one line with the figure that says so), or
        None. Asked as the last optimiser phase is about to begin and after each of its steps (while restarts
        remain): the trainer then starts again from a fresh initialisation (`reinitialize`), up to optim.restarts
        times, at once rather than after the later phases. Must be cheap (it runs every step) and must not change
        the state: a run that needs no restart must train exactly as without this check."""
        return None

    def reinitialize(self, seed: int) -> None:
        """A fresh initialisation for a restart: every submodule's parameters drawn anew from `seed`."""
        torch.manual_seed(seed)
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def reset_stages(self) -> None:
        """Later network stages (if any) back to holding no output, each begun afresh when its phase next starts, and
        the problem's scalars where the first network left them: a PINN study's network takes back what its stages
        could not finish (optim.handoff)."""

    def probe_copy(self) -> Problem:
        """A copy on which phases are started only to see their terms and time their steps (the run's start-up
        estimate and metrics.csv's columns), never to train: a problem may leave out there what changes only the
        numbers a phase starts from and costs time (a later network stage's frequency trials)."""
        return copy.deepcopy(self)

    def start_phase(self, phase: str) -> None:
        """Called by the trainer as each optimiser phase begins: a problem may weigh its terms per phase."""
        self.phase = phase

    def end_phase(self, phase: str) -> str | None:
        """Called by the trainer once a phase has run to its stopping rule (and again when a run resumes after it):
        a problem may undo what the phase did where it left the result worse (a later network stage); a line
        saying what it did, or None. Must give the same state when called twice."""
        return None

    def once_per_state(self, name: str, compute: Callable[[], object]):
        """compute() for the current state (parameters and buffers: a network stage dropped from the composite
        changes a buffer alone), kept until it changes: the summary, the plot, solution.csv and the trainer's
        acceptance checks all look at the same trained state, and its refinement is the costly part."""
        tensors = [*self.parameters(), *self.buffers()]
        key = hashlib.sha1(b"".join(t.detach().cpu().numpy().tobytes() for t in tensors)).digest()
        cache = self.__dict__.setdefault("_per_state", {})
        if name not in cache or cache[name][0] != key:
            cache[name] = (key, compute())
        return cache[name][1]

    def failure(self, evaluation: dict, slack: float = 1.0) -> str | None:
        """Why the trained result is not acceptable (one line with the figure that decided it), or None.
        `evaluation` is what `evaluate()` returned. A run that ran every phase is "completed" only if None;
        if not, and restarts remain, it starts again from a fresh initialisation. With `judges_results`, a
        phase with optim.<phase>.accept_every ends early ("accepted") when this finds nothing wrong. `slack`
        multiplies the tolerances (a network that later stages will refine, optim.handoff)."""
        return None

    def network_result(self, evaluation: dict) -> tuple[dict, dict]:
        """(`evaluation` with the reported result replaced by the network's own, the replaced fields): what a run
        reports when its refined result fails `failure`, so that a rejected answer never stands as the answer.

        By the convention every equation's `evaluate` follows, a field with a `<name>_network` twin describes the
        reported result, and so does an error estimate or standard error without a twin (the network has none):
        those become None. An equation without a separate refined result has nothing to replace."""
        replaced = {}
        out = dict(evaluation)
        for key, value in evaluation.items():
            if f"{key}_network" in evaluation:
                replaced[key], out[key] = value, evaluation[f"{key}_network"]
            elif key.endswith(("_estimate", "_stderr")) and not key.endswith("_network"):
                replaced[key], out[key] = value, None
        return out, replaced

    @staticmethod
    def network_solution(solution: pd.DataFrame) -> pd.DataFrame:
        """solution.csv for a rejected result, by the same convention: a column with a `<name>_network` twin takes
        the network's values, the rejected ones kept beside it as `<name>_rejected`."""
        out = solution.copy()
        for column in solution.columns:
            if f"{column}_network" in solution.columns:
                out[column], out[f"{column}_rejected"] = solution[f"{column}_network"], solution[column]
        return out


def typed_equation_config(cfg: DictConfig, schema: type):
    """The equation group merged onto its dataclass schema; a wrong type or unknown key is a ConfigError."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), cfg.equation))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"equation.{key}: {str(err).splitlines()[0]}") from None


class LaterStages:
    """What a problem with later network stages (Wang & Lai) shares, whatever its equation: the stage a phase trains,
    σ's raw parameter as each stage found and left it (`stage_lambda_raw`), the keep rule at a stage's end, the return
    to the first network, and which networks each stage's figures are of. Mixed in before `Problem`; the problem has
    `stages` (modules whose `.net` is a `StageNetwork`), `lam_raw`, and says what a kept stage must have lowered
    (`stage_measure`, smaller is better) and how its drop is said (`stage_dropped`, formatted with_it and without)."""

    stage_dropped = "{with_it:.3g} with it, {without:.3g} without"

    def stage_measure(self) -> float:
        raise NotImplementedError

    @staticmethod
    def stage_number(phase: str) -> int:
        """1 for the first network's phases, n for phase "stage<n>"."""
        return STAGE_PHASES.index(phase) + 2 if phase in STAGE_PHASES else 1

    def end_phase(self, phase: str) -> str | None:
        """A later stage stays in the composite only if it lowered `stage_measure`: one that did not is dropped, and
        σ goes back to where the networks before it left it."""
        number = self.stage_number(phase)
        if number == 1 or not self.stages[number - 2].net.active:
            return None
        stage, before = self.stages[number - 2].net, self.stage_lambda_raw[number - 2, 0].clone()
        ended = self.lam_raw.detach().clone()
        self.stage_lambda_raw[number - 2, 1] = ended
        with_it = self.stage_measure()
        stage.drop()
        with torch.no_grad():
            self.lam_raw.copy_(before)
        without = self.stage_measure()
        if with_it < without:
            stage.kept.fill_(True)
            with torch.no_grad():
                self.lam_raw.copy_(ended)
            return None
        return f"stage {number} dropped: " + self.stage_dropped.format(with_it=with_it, without=without)

    def reset_stages(self) -> None:
        if not len(self.stages):
            return
        first = self.stage_lambda_raw[0, 0]
        if first == first:  # σ as the first network left it, when stage 2 began
            with torch.no_grad():
                self.lam_raw.copy_(first)
        for stage in self.stages:
            stage.net.end()
        self.stage_lambda_raw.fill_(float("nan"))

    def stage_rows(self) -> list[tuple[nn.Module, list[nn.Module], float, bool]]:
        """(module, the later stages in the composite it stands for, σ's raw value then, kept) for the first network
        alone and each later stage begun (kept or dropped) added to the kept ones before it, with σ as its phase left
        it (as it is now, for one still training)."""
        begun = [stage for stage in self.stages if stage.net.begun]
        found = self.stage_lambda_raw[: len(begun), 0].tolist()
        ended = [e if e == e else self.lam_raw.item() for e in self.stage_lambda_raw[: len(begun), 1].tolist()]
        rows = [(self.first_network, [], found[0] if begun else self.lam_raw.item(), True)]
        rows += [(stage, [s for s in begun[:i] if s.net.kept] + [stage], ended[i], bool(stage.net.kept))
                 for i, stage in enumerate(begun)]  # fmt: skip
        return rows
