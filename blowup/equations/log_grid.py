"""A self-similar profile on the log grid, found by a network and finished by Newton: what CCF and the
generalised Constantin-Lax-Majda family share (each states its equation, `blowup.solvers.log_profile`).

The network w(s) carries the unknown u = e(s) w(s) under the envelope e = 1 / (e^-s + e^(rs)): e ~ e^s at the
origin (the smooth behaviour) and ~ e^(-rs) far out, r the far-field rate the equation gives at its exponent
σ, so w tends to constants at both ends, which a tanh MLP does by itself. The residual is weighed by 1/e, so
both ends count.

The equations are nonlocal: every residual row depends on the network at every point. The optimisers that see
the whole loss at once (Adam, L-BFGS) train it; the per-point Levenberg-Marquardt phase does not apply. The
network is the first finder: its u and σ start the non-smooth family (every σ has a solution that is smooth
except at the origin), which is followed through the bracket until it turns smooth (`find_profile`). The
reported profile is Newton's from there at two grid spacings, whose difference in σ is the error estimate.
"""

from __future__ import annotations

import sys
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from blowup.engine.derivatives import input_jet, memory_limit_gb
from blowup.engine.models import MLP, ModelConfig, StageNetwork
from blowup.errors import ConfigError, require, require_all
from blowup.problem import MAX_STAGES, STAGE_PHASES, LaterStages, Problem
from blowup.solvers.hilbert import AnyLogGrid, LogGrid, MappedLogGrid, interpolate, operator_matrices
from blowup.solvers.log_branch import ParameterBranch
from blowup.solvers.log_profile import FamilyScan, ProfileEquation, ProfileSolve, clustered, find_profile, front_cluster
from blowup.solvers.log_stability import LogGridStability, check_right_end
from blowup.solvers.stages import StageTrial, begin_stage

BYTES_PER_POINT = 1600  # matrix-free Newton: a few dozen float and complex vectors per grid point (measured)
BASE_GB = 0.5  # the process before any grid: Python, torch, the network
MAX_GRID_POINTS = 2_000_001  # a Newton step on a grid of more takes minutes, a run hours (results/ccf_scaling.csv)
SPECTRUM_POINTS = 2401  # `blowup stability` on the run's own grids up to this (dense) ...
CLUSTERED_POINTS = (1701, 2401)  # ... past it on two grids of these points clustered at the profile's front
SOLUTION_ROWS = 100_001  # solution.csv's rows at most: the evaluation grid's points, every m-th of a finer one


def check_grids(cfg: DictConfig, eq, resolved, scalar: str) -> None:
    """The keys every log-grid equation shares (`eq` as given, `resolved` with the profile's defaults), `scalar`
    naming its bracket, entry and tolerance keys (`<scalar>_bracket`, `entry_<scalar>`, `<scalar>_tolerance`),
    and the memory its grids need against max_memory_gb: one line naming the key, before anything is built."""
    bracket, entry, tolerance = f"{scalar}_bracket", f"entry_{scalar}", f"{scalar}_tolerance"
    (lo, hi), grid, (coarse, fine) = getattr(resolved, bracket), resolved.grid, resolved.newton_spacing
    require_all([("grid", eq.grid, grid[0] <= -10 and grid[1] >= 10, "[left, right] with left <= -10, right >= 10")])

    def points(spacing: float) -> int:
        return LogGrid.with_spacing(*grid, spacing).points if 0 < spacing <= 0.5 else 0

    fine_points, scan_points = points(fine), points(resolved.scan_spacing)
    eval_points = resolved.eval_points or 3 * fine_points
    need_gb = BASE_GB + BYTES_PER_POINT * max(fine_points, scan_points, eval_points) / 1e9
    limit_gb = memory_limit_gb(cfg)
    grids = f"at most {MAX_GRID_POINTS} points on the grid and {limit_gb:.3g} GB (max_memory_gb)"
    require_all(
        [
            (bracket, getattr(eq, bracket), 0 < lo < hi, "null (the profile's default) or [lo, hi], 0 < lo < hi"),
            ("points", eq.points, eq.points >= 21 and eq.points % 2 == 1, "an odd integer >= 21"),
            (
                "collocation",
                eq.collocation,
                eq.collocation == "uniform" or (eq.collocation == "front" and bool(cfg.get("init_from"))),
                "uniform, or front with init_from=RUN_DIR (the points clustered at that run's profile's front)",
            ),
            ("input_scale", eq.input_scale, eq.input_scale > 0, "a number > 0"),
            (
                "scan_spacing",
                eq.scan_spacing,
                0 < scan_points <= MAX_GRID_POINTS,
                f"null (the profile's default) or a number in (0, 0.5] leaving {grids}",
            ),
            ("scan_step", eq.scan_step, 0 < eq.scan_step <= hi - lo, "a number in (0, the bracket's width]"),
            (
                entry,
                getattr(eq, entry),
                getattr(resolved, entry) is None or getattr(resolved, entry) >= hi,
                "null (the profile's default) or a number >= the bracket's top",
            ),
            (
                "newton_spacing",
                eq.newton_spacing,
                0 < fine < coarse <= 0.5 and fine_points <= MAX_GRID_POINTS,
                f"null or [coarse, fine] with 0 < fine < coarse <= 0.5, leaving {grids}",
            ),
            ("tolerance", eq.tolerance, eq.tolerance > 0, "a number > 0"),
            (tolerance, getattr(eq, tolerance), getattr(eq, tolerance) > 0, "a number > 0"),
            *[(f"weights.{key}", value, value >= 0, "a number >= 0") for key, value in asdict(eq.weights).items()],
            ("model.width", eq.model.width, eq.model.width >= 1, "an integer >= 1"),
            ("model.depth", eq.model.depth, eq.model.depth >= 1, "an integer >= 1"),
            ("stages", eq.stages, 1 <= eq.stages <= MAX_STAGES, f"an integer in 1..{MAX_STAGES} (1: one network)"),
            (
                "eval_points",
                eq.eval_points,
                eq.eval_points is None or (eq.eval_points % 2 == 1 and fine_points < eq.eval_points <= 4 * fine_points),
                f"null or an odd integer in ({fine_points} (Newton's fine grid), {4 * fine_points}]",
            ),
        ]
    )
    if need_gb > limit_gb:  # the grids alone are within bounds; together with what they hold they are not
        set_by = {  # the points each key asks for (a null eval_points is newton_spacing's)
            "newton_spacing": fine_points if eq.eval_points else eval_points,
            "scan_spacing": scan_points,
            "eval_points": eq.eval_points or 0,
        }
        key = max(set_by, key=set_by.get)
        value = OmegaConf.select(cfg, f"equation.{key}")
        require(False, f"equation.{key}", value, f"grids leaving {grids} (these need {need_gb:.3g} GB)")


@dataclass
class LogGridWeights:
    residual: float = 1.0  # R / e on the network's grid
    sobolev: float = 1.0  # its s-derivatives 1..sobolev (spectral on the grid: R is known only there)
    smoothness: float = 1.0  # the smoothness defect at the origin
    normalization: float = 1.0  # u_s(0) = 0: the maximum at s = 0 (the scaling family is a shift in s)
    guess: float = 1.0  # the guess phase's fit of u to a rough profile


@dataclass
class LogGridConfig:
    """The keys every log-grid equation has; each adds its bracket, entry and tolerance for its exponent σ
    (`<σ>_bracket`, `entry_<σ>`, `<σ>_tolerance`) and its own parameters. A null takes the profile's default."""

    grid: tuple[float, float] | None = None  # s = log y; the profiles' tails must be round-off at both ends
    points: int = 301  # the network's collocation points on the grid (odd)
    collocation: str = "uniform"  # ... uniform in s, or "front": clustered at init_from's profile's front
    input_scale: float = 20.0  # the network sees s / input_scale
    scan_spacing: float | None = None  # the grid on which the non-smooth family is followed to where it turns smooth
    scan_step: float = 0.02  # ... in steps of σ of this size from the network's σ
    newton_spacing: tuple[float, float] | None = None  # Newton's two grids; σ's change between them: the estimate
    tolerance: float = 1e-9  # largest residual of a "completed" run's profile, between Newton's grid points
    weights: LogGridWeights = field(default_factory=LogGridWeights)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(width=16, depth=2))
    stages: int = 1  # networks in w: the first and stages - 1 later ones, each fitted to what those before it left
    eval_points: int | None = None  # the fine grid of solution.csv and of the residual between Newton's points;
    # null: three times Newton's fine grid


TRUSTED_FRACTION = 1e-10  # a refined profile's values below this fraction of its largest are taken as round-off
# (Newton's u is accurate to ~1e-17 absolute far out: 1e-7 relative at this floor)


class ScaledInput(nn.Module):
    """w(s) = MLP(s / scale), on tensors and jets alike."""

    def __init__(self, net: nn.Module, scale: float):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, s):
        return self.net(s * (1 / self.scale))


class LogGridProfile(LaterStages, Problem):
    """The network phase and Newton from it, for an equation on the log grid. A subclass states the equation
    (`equation`, its torch residual and defect for the network, the envelope's far rate), its config's bracket,
    entry and tolerances, and what its solution.csv holds."""

    phases = ("guess", "adam", "lbfgs")  # and "lm" in a PINN study, then one phase per later stage (`study_phases`)
    plot_name = "profile.png"
    judges_results = True  # Newton from the network says when the network is in the profile's basin
    equation: ProfileEquation
    start_profile: tuple[np.ndarray, LogGrid, float] | None = None  # init_from's refined profile (u, grid, σ)
    refined_from_start: tuple[FamilyScan, ProfileSolve, ProfileSolve] | None = None  # `newton_solves` from it
    unknown_name = "q"  # solution.csv's column of the unknown u (and its `_network` twin)
    nonlocal_terms = ("residual", "smoothness")  # the Hilbert transform: every row needs u at every point
    title = "profile"

    def __init__(self, cfg, profile: int, sobolev: int, backend: str, bracket, entry, scalar_tolerance: float):
        super().__init__()
        self.cfg, self.profile, self.sobolev, self.backend = cfg, profile, sobolev, backend
        self.lam_lo, self.lam_hi = bracket
        self.entry, self.scalar_tolerance = entry, scalar_tolerance
        fine_points = LogGrid.with_spacing(*cfg.grid, cfg.newton_spacing[1]).points
        self.eval_points = cfg.eval_points or 3 * fine_points  # solution.csv's grid, off Newton's points
        self.w = ScaledInput(MLP(width=cfg.model.width, depth=cfg.model.depth), cfg.input_scale)  # the run's dtype
        half_width = max(abs(end) for end in cfg.grid) / cfg.input_scale  # the interval the networks see
        self.stages = nn.ModuleList(  # later network stages (Wang & Lai), each added to w once begun
            ScaledInput(StageNetwork(cfg.model.width, cfg.model.depth, half_width), cfg.input_scale)
            for _ in range(cfg.stages - 1)
        )
        if cfg.stages > 1:  # σ's raw parameter as each later stage found it (column 0) and left it (1; NaN until then)
            self.register_buffer("stage_lambda_raw", torch.full((cfg.stages - 1, 2), float("nan")))
        self.phases = (*self.phases, *STAGE_PHASES[: cfg.stages - 1])
        self.stage_trial = StageTrial()  # optim.stage's damping, frequencies and trial steps, set by `study_phases`
        self.row_scale = 1.0  # the rows are divided by it: a later stage's scale in its phase
        self.lam_raw = nn.Parameter(torch.zeros(()))  # σ at the middle of its bracket
        self.grid: AnyLogGrid = LogGrid(*cfg.grid, cfg.points)
        dtype = torch.get_default_dtype()  # the network trains in the run's dtype; Newton is float64 throughout
        for name, values in self.collocation_operators(self.grid).items():
            self.register_buffer(name, torch.tensor(values, dtype=dtype))
        self.register_buffer("origin", torch.zeros(1, 1))
        u_guess = self.equation.rough(0.5 * (self.lam_lo + self.lam_hi), self.grid)
        self.register_buffer("q_guess", torch.tensor(u_guess, dtype=dtype).view(-1, 1))

    # --- what an equation states ---------------------------------------------------------------------------
    @abstractmethod
    def far_rate(self, scalar: Tensor) -> Tensor:
        """r in u ~ e^(-rs) far out, at exponent σ."""

    @abstractmethod
    def network_residual(self, u: Tensor, slope: Tensor, e: Tensor) -> Tensor:
        """R / e on the network's grid at σ = self.lam, from u (for the nonlocal terms), slope = u_s / e and the
        envelope e."""

    @abstractmethod
    def network_defect(self, u: Tensor) -> Tensor:
        """The smoothness defect of u at σ = self.lam on the network's grid (1 x 1)."""

    @abstractmethod
    def solution_columns(self, u: np.ndarray, grid: LogGrid, scalar: float) -> dict[str, np.ndarray]:
        """solution.csv's physical columns (y, the profile, its transforms) on `grid`."""

    def collocation_operators(self, grid: AnyLogGrid) -> dict[str, np.ndarray]:
        """The network's points on `grid` and the dense operators its rows apply there (buffers of these names);
        an equation whose rows need more adds them."""
        hilbert, diff = operator_matrices(grid)
        return {"hilbert": hilbert, "diff": diff, "s": grid.s.reshape(-1, 1)}

    def collocate(self, grid: AnyLogGrid) -> None:
        """The network's points moved to `grid` (as many as before), its operators with them."""
        self.grid = grid
        with torch.no_grad():
            for name, values in self.collocation_operators(grid).items():
                getattr(self, name).copy_(torch.tensor(values))

    def init_from(self, other: Problem, network: bool = True) -> None:
        """The other run's network; its refined profile as the family scan's start (and the family entered as from a
        rough start where the scan from it finds no smooth member: `smooth_in_bracket`'s reenter) and the guess
        phase's target, and σ at that profile's (moved into this run's bracket; at the other network's σ where its
        Newton did not converge). A run started from another's solution begins in its basin: a parameter walked by
        hand starts each run from the last one's profile, and a PINN study's network for a profile its phases do not
        find from the rough guess (CCF's profile 1) is fitted to the refined profile first. With `collocation: front`
        the network's points are clustered at that profile's front (`log_profile.front_cluster`: as Newton's
        clustered grids): a front steeper than the uniform points resolve leaves the network's loss without a minimum
        at the profile, and Newton on the same points misses it too (CCF's profile 1: README, "CCF's network in the
        study")."""
        _, _, fine = other.newton_solves()
        if self.cfg.collocation == "front":
            if not fine.converged:
                raise ConfigError(
                    "equation.collocation='front' is invalid here: init_from's run has no converged profile to "
                    "cluster at; allowed uniform, or front from a run whose Newton converged"
                )
            self.collocate(MappedLogGrid(*self.cfg.grid, self.cfg.points, front_cluster(fine)))
        if fine.converged:
            self.start_profile, self.refined_from_start = (fine.q, fine.grid, fine.lam), None
            with torch.no_grad():
                self.q_guess.copy_(torch.tensor(self.guess_target(self.grid.s)).view(-1, 1))
        if network:
            super().init_from(other, network)
            lam = min(max(fine.lam if fine.converged else other.lam.item(), self.lam_lo), self.lam_hi)
            fraction = min(max((lam - self.lam_lo) / (self.lam_hi - self.lam_lo), 1e-6), 1 - 1e-6)
            with torch.no_grad():
                self.lam_raw.fill_(float(np.log(fraction / (1 - fraction))))

    def start_profile_at(self, s: np.ndarray) -> np.ndarray:
        """init_from's refined profile at the points s (0 outside its grid, where it has decayed)."""
        u, grid, _ = self.start_profile
        return np.interp(s, grid.s, u, left=0.0, right=0.0)

    def guess_target(self, s: np.ndarray) -> np.ndarray:
        """init_from's refined profile at the points s as the guess phase fits it, continued by the envelope's decay
        (w = u/e held at its last trusted value) where the profile is at round-off or off its grid. The fit weighs
        u relative to e, and far out Newton's u is accurate only to round-off of its largest value while e decays on:
        there u/e is noise (CCF's profile 2: w 4 to 8 at the right end where it is 1.09), which no network fits and
        whose misfit dominated the guess phase's loss; the envelope, built on the far field, carries the decay."""
        u, grid, scalar = self.start_profile
        trusted = np.flatnonzero(np.abs(u) > TRUSTED_FRACTION * np.abs(u).max())
        edge = np.clip(s, grid.s[trusted[0]], grid.s[trusted[-1]])

        def envelope(x: np.ndarray) -> np.ndarray:
            return self.envelope(torch.tensor(x, dtype=torch.float64), torch.tensor(scalar))[0].numpy()

        return self.start_profile_at(edge) / envelope(edge) * envelope(s)

    def continued(self) -> dict[str, tuple[float, Callable[[float], ProfileEquation]]]:
        """The equation's parameters `blowup continue` can follow: config key -> (its value, the equation at
        another value)."""
        return {}

    def continuation(self, key: str):
        parameters = self.continued()
        if key not in parameters:
            allowed = ", ".join(parameters) or "none"
            raise ConfigError(f"--param {key!r} is invalid: allowed {allowed}")
        value, equation_at = parameters[key]
        coarse, fine = self.profile_solves()
        system = ParameterBranch(equation_at, coarse.grid, fine.grid, self.eval_points, self.equation.scalar_name)
        return system, np.concatenate([coarse.q, [coarse.lam]]), value

    def reference(self) -> tuple[str, float] | None:
        """A value of σ from elsewhere (published, exact), reported beside the result: (its name, value)."""
        return None

    # --- the network -----------------------------------------------------------------------------------------
    @property
    def lam(self) -> Tensor:
        return self.lam_lo + (self.lam_hi - self.lam_lo) * torch.sigmoid(self.lam_raw)

    def envelope(self, s: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        """e(s) and e'(s)/e(s) = (1-r)/2 - (1+r)/2 tanh((1+r)s/2), r the far rate."""
        r = self.far_rate(lam)
        e = 1 / (torch.exp(-s) + torch.exp(r * s))
        return e, (1 - r) / 2 - (1 + r) / 2 * torch.tanh((1 + r) * s / 2)

    def network_w(self, s, members: list[nn.Module] | None = None):
        """w: the first network plus `members` (default: the later stages in the composite), tensors and jets alike."""
        w = self.w(s)
        for stage in self.active_stages() if members is None else members:
            w = w + stage(s)
        return w

    def active_stages(self) -> list[nn.Module]:
        return [stage for stage in self.stages if stage.net.active]

    def q_and_slope(self, s: Tensor, lam: Tensor | None = None, w: Tensor | None = None) -> tuple[Tensor, ...]:
        """u, u_s / e and e at points s (N, 1) (envelope at σ unless given), from w and w_s (2, N, 1): as given, or
        the network's from the configured backend."""
        w = input_jet(self.network_w, s, 1, self.backend).derivatives() if w is None else w
        e, log_slope = self.envelope(s, self.lam if lam is None else lam)
        return e * w[0], w[1] + log_slope * w[0], e

    def terms(self) -> dict[str, tuple[Tensor, ...]]:
        if self.phase == "guess":
            return {"guess": (self.s, self.q_guess)}
        return {"residual": (self.s,), "smoothness": (self.s[:1],), "normalization": (self.origin,)}

    def forward(self, term: str, s: Tensor, *targets: Tensor) -> Tensor:
        weights = self.cfg.weights
        if term == "residual":  # every row needs every point: the equation is nonlocal
            # targets: w and w_s at the points where given (`nonlocal_jacobian` chains through them)
            u, slope, e = self.q_and_slope(self.s, w=targets[0] if targets else None)
            rows = [self.network_residual(u, slope, e)]
            for _ in range(self.sobolev):  # d^j/ds^j (R / e), spectrally
                rows.append(self.diff @ rows[-1] * weights.sobolev)
            return torch.cat(rows, 1) * weights.residual / len(self.s) ** 0.5 / self.row_scale
        if term == "smoothness":  # the defect at the left end needs u everywhere, but not its slope
            return self.network_defect(self.q_values(self.s)) * weights.smoothness / self.row_scale
        if term == "normalization":
            _, slope, _ = self.q_and_slope(s)
            return slope * weights.normalization / self.row_scale
        if term == "guess":  # the shape only: σ stays where it starts (its envelope would pull it to fit the guess)
            u, _, e = self.q_and_slope(s, self.lam.detach())
            return (u - targets[0]) / e * weights.guess / len(self.s) ** 0.5
        raise KeyError(term)

    def nonlocal_jacobian(self, term: str, params: dict[str, Tensor], inputs: tuple[Tensor, ...]) -> Tensor:
        """The residual rows need the network only through w and w_s at the grid's points: their per-point
        Jacobians (vmapped, as for a local term), pushed forward through the rows (which hold no network: a few
        dense products) one parameter direction at a time, vmapped. A reverse pass per row through the network
        costs many times more, and grows with the points squared."""
        if term != "residual":
            return super().nonlocal_jacobian(term, params, inputs)
        networks = {"w.": self.w, **{f"stages.{i}.": stage for i, stage in enumerate(self.stages)}}
        net = {name: p for name, p in params.items() if name != "lam_raw"}
        unknown = [name for name in net if not any(name.startswith(prefix) for prefix in networks)]
        if unknown:
            raise ValueError(f"nonlocal_jacobian: parameters outside the networks and σ: {sorted(unknown)}")

        def composite(p: dict[str, Tensor], x):  # w with the parameters in p (the others as they are)
            parts = [(self.w, "w.")] + [(st, f"stages.{i}.") for i, st in enumerate(self.stages) if st.net.active]
            out = None
            for module, prefix in parts:
                mine = {name.removeprefix(prefix): v for name, v in p.items() if name.startswith(prefix)}
                value = torch.func.functional_call(module, mine, (x,))
                out = value if out is None else out + value
            return out

        def values_at(p: dict[str, Tensor], point: Tensor) -> Tensor:  # w, w_s at one point
            return input_jet(partial(composite, p), point.unsqueeze(0), 1, "ntp").derivatives()

        def rows(w: Tensor, lam_raw: Tensor) -> Tensor:
            return torch.func.functional_call(self, {"lam_raw": lam_raw}, ("residual", self.s, w)).flatten()

        with torch.no_grad():
            w = input_jet(self.network_w, self.s, 1, "ntp").derivatives()  # (2, N, 1)
        by_point = torch.func.vmap(torch.func.jacrev(values_at), in_dims=(None, 0))(net, self.s)  # (N, 2, 1, 1, ...)
        directions_w, directions_lam = [], []  # one tangent (dw, dσ_raw) per parameter, in `params`' order
        for name, p in params.items():
            if name == "lam_raw":
                directions_w.append(torch.zeros_like(w).unsqueeze(0))
                directions_lam.append(torch.ones(1, dtype=w.dtype, device=w.device))
            else:
                per_point = by_point[name].reshape(len(self.s), 2, p.numel())
                directions_w.append(per_point.permute(2, 1, 0).unsqueeze(-1))  # (P_name, 2, N, 1)
                directions_lam.append(torch.zeros(p.numel(), dtype=w.dtype, device=w.device))
        lam_raw = self.lam_raw.detach()

        def push(dw: Tensor, dlam: Tensor) -> Tensor:
            return torch.func.jvp(rows, (w, lam_raw), (dw, dlam))[1]

        return torch.func.vmap(push)(torch.cat(directions_w), torch.cat(directions_lam)).T

    # --- later network stages ---------------------------------------------------------------------------------
    def start_phase(self, phase: str) -> None:
        """In a later stage's phase that stage alone trains (with σ), on rows divided by its scale, so that the
        Levenberg-Marquardt damping means what it means for the first network's; before, the first network."""
        super().start_phase(phase)
        number = self.stage_number(phase)
        for index, module in enumerate([self.w, *self.stages], start=1):
            module.requires_grad_(index == number)
        self.row_scale = 1.0
        if number > 1:
            stage = self.stages[number - 2].net
            if not stage.begun:  # a dropped stage is not begun again on a resume
                self.begin_stage(number)
            self.row_scale = float(stage.scale)

    def begin_stage(self, number: int) -> None:
        """A later stage's scale, the largest residual R/e the networks before it leave on the grid (at least the
        dtype's smallest number, so that the rows can be divided by it), and its frequency, the one that gains most
        in a few trial steps (`blowup.solvers.stages`); and σ as they left it."""
        with torch.no_grad():
            residual = self.network_residual(*self.q_and_slope(self.s))
        scale = max(float(residual.abs().max()), float(torch.finfo(residual.dtype).tiny))
        self.row_scale = scale
        begin_stage(self, self.stages[number - 2].net, scale, number, self.stage_trial)
        self.stage_lambda_raw[number - 2, 0] = self.lam_raw.detach()

    stage_dropped = "the network's residual {with_it:.3g} with it, {without:.3g} without"

    @property
    def first_network(self) -> nn.Module:
        return self.w

    def stage_measure(self) -> float:
        """A later stage is kept only if it lowered the network's residual on its points (`residual_max_network`,
        what the tolerance judges). (The loss is no judge: a stage that traded the residual's peak for its sum moved
        σ away from the refined σ on a network already at round-off in it.)"""
        return self.network_residual_max()

    def network_residual_max(self) -> float:
        """max |R| of the networks in the composite on their points (`residual_max_network`)."""
        return float(np.abs(self.equation.residual(self.network_q(self.grid.s), self.lam.item(), self.grid)).max())

    def reinitialize(self, seed: int) -> None:
        super().reinitialize(seed)
        self.reset_stages()

    def probe_copy(self) -> LogGridProfile:
        """A copy whose later stages begin at the first of the frequencies, untried (the same rows and step time)."""
        probe = super().probe_copy()
        probe.stage_trial = replace(self.stage_trial, frequencies=self.stage_trial.frequencies[:1])
        return probe

    def stage_figures(self, refined: float | None) -> list[dict]:
        """What each network stage bought (`stage_rows`): σ against the refined σ, the residual on the network's
        points (as `residual_max_network`, which the keep rule compares), the parameters it added, its frequency."""
        figures, now = [], self.lam_raw.detach().clone()
        name = self.equation.scalar_name
        try:
            for number, (module, members, raw, kept) in enumerate(self.stage_rows(), start=1):
                with torch.no_grad():
                    self.lam_raw.fill_(raw)
                    q = self.envelope(self.s, self.lam)[0] * self.network_w(self.s, members)
                    q = q.flatten().cpu().double().numpy()
                residual = self.equation.residual(q, self.lam.item(), self.grid)
                figures.append(
                    {
                        "stage": number,
                        "kept": kept,
                        name: self.lam.item(),
                        f"{name}_error": abs(self.lam.item() - refined) if refined is not None else None,
                        "residual_max": float(np.abs(residual).max()),  # as residual_max_network
                        "parameters": sum(p.numel() for p in module.parameters()),
                        "frequency": None if module is self.w else float(module.net.frequency),
                    }
                )
        finally:
            with torch.no_grad():
                self.lam_raw.copy_(now)
        return figures

    def scalars(self) -> dict[str, Tensor]:
        return {self.equation.scalar_name: self.lam}

    # --- the result: Newton from the network ---------------------------------------------------------------
    def q_values(self, s: Tensor) -> Tensor:
        """u = e w at points s (N, 1), by a plain forward pass."""
        return self.envelope(s, self.lam)[0] * self.network_w(s)

    def network_q(self, s: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            q = self.q_values(torch.tensor(s).view(-1, 1).to(self.s))
        return q.flatten().cpu().double().numpy()

    def newton_solves(self) -> tuple[FamilyScan, ProfileSolve, ProfileSolve]:
        """The family followed from the network's u and σ (or from init_from's profile, whatever the network's
        state), Newton on the coarse grid from where it turned smooth, then on the fine grid from that
        (`find_profile`)."""

        def start(grid: LogGrid) -> np.ndarray:
            return self.network_q(grid.s) if self.start_profile is None else self.start_profile_at(grid.s)

        def compute() -> tuple[FamilyScan, ProfileSolve, ProfileSolve]:
            return find_profile(
                self.equation,
                start,
                self.lam.item() if self.start_profile is None else self.start_profile[2],
                (self.lam_lo, self.lam_hi),
                self.cfg.grid,
                self.cfg.scan_spacing,
                self.cfg.scan_step,
                self.cfg.newton_spacing,
                self.entry,
                reenter=self.start_profile is not None,  # init_from's profile, not the network, starts the scan
            )

        if self.start_profile is None:
            return self.once_per_state("newton", compute)
        if self.refined_from_start is None:  # init_from's profile alone starts it: one refinement a run, not one
            self.refined_from_start = compute()  # per acceptance check, each the same (minutes for CCF's profile 2)
        return self.refined_from_start

    def evaluate(self) -> dict:
        scan, coarse, fine = self.newton_solves()
        name = self.equation.scalar_name
        converged = coarse.converged and fine.converged
        lowest = scan.lowest
        out = {
            "profile": self.profile,
            name: fine.lam if converged else self.lam.item(),
            f"{name}_network": self.lam.item(),
            f"{name}_scan": scan.smooth.lam if scan.smooth is not None else None,  # the family's defect changed sign
            "family_covered": list(scan.covered) if scan.covered is not None else None,  # σ range it was followed
            # the member at the covered range's lower end: how the family looks where following it stopped
            "family_lowest": self.equation.measures(lowest.q, lowest.lam, lowest.grid) if lowest is not None else None,
            f"{name}_error_estimate": abs(fine.lam - coarse.lam) if converged else float("nan"),
            # the network's σ against the refined one, the reference it is measured against (a PINN study's figure)
            f"{name}_error_network": abs(self.lam.item() - fine.lam) if converged else None,
            "residual_max": fine.offgrid_residual_max(self.eval_points) if converged else float("nan"),
            "residual_max_network": self.network_residual_max(),
            "newton_converged": converged,
            "newton_steps": coarse.steps + (fine.steps if coarse.converged else 0),
        }
        reference = self.reference()
        if reference is not None:
            kind, value = reference
            out[f"{name}_{kind}"], out[f"{name}_vs_{kind}"] = value, abs(out[name] - value)
        if len(self.stages):
            out["network_stages"] = self.stage_figures(fine.lam if converged else None)
        return out

    def profile_solves(self) -> tuple[ProfileSolve, ProfileSolve]:
        """Newton's coarse and fine solves from this run's network (ValueError where it did not converge)."""
        _, coarse, fine = self.newton_solves()
        if not (coarse.converged and fine.converged):
            raise ValueError("Newton did not converge from this run's network: no profile to analyse")
        return coarse, fine

    def stability(self, right: float | None = None) -> LogGridStability:
        """The analysis on the run's two Newton grids or, past SPECTRUM_POINTS, on two grids clustered at the
        profile's front (`log_profile.clustered`): they resolve profiles 1 and 2 with far fewer points than the
        uniform grids Newton used (both classes' dense spectra in a minute, where profile 1's uniform grids took
        minutes and 2.3 GB and profile 2's shift-invert did not finish in 25 minutes a grid); ValueError where
        those do not reproduce the run's profile. With `right`, those grids widened to it
        (`LogGridStability.widened`), a right end inside the run's interval refused before any solve."""
        check_right_end(self.cfg.grid, right)
        analysis = self._stability()
        return analysis.widened(right) if right is not None else analysis

    def _stability(self) -> LogGridStability:
        coarse, fine = self.profile_solves()
        if fine.grid.points <= SPECTRUM_POINTS:
            return LogGridStability(coarse, fine, tolerance=self.scalar_tolerance)
        name, run_scalar = self.equation.scalar_name, fine.lam
        print(
            f"the run's fine grid has {fine.grid.points} points: the profile is solved again on {CLUSTERED_POINTS} "
            "points clustered at its front, and their dense spectra taken (about a minute)",
            file=sys.stderr,
        )
        coarse, fine = (clustered(fine, points) for points in CLUSTERED_POINTS)
        for solve in (coarse, fine):
            if not (solve.converged and abs(solve.lam - run_scalar) <= self.scalar_tolerance):
                raise ValueError(
                    f"the profile re-solved on {solve.grid.points} clustered points is not the run's "
                    f"({name} {solve.lam:.15g}, converged {solve.converged}): no spectrum"
                )
        return LogGridStability(coarse, fine, tolerance=self.scalar_tolerance)

    def failure(self, evaluation: dict, slack: float = 1.0) -> str | None:
        name = self.equation.scalar_name
        if evaluation["family_covered"] is None:
            return (
                f"Newton could not enter the non-smooth family at the network's {name} "
                f"{evaluation[f'{name}_network']:.6g} nor at the bracket's top {self.lam_hi:.6g}: "
                "no smooth profile found"
            )
        if evaluation[f"{name}_scan"] is None:
            lo, hi = evaluation["family_covered"]
            lowest = evaluation["family_lowest"]
            figures = ", ".join(f"{key} {value:.4g}" for key, value in lowest.items() if key != name)
            ended = f"; at its lowest member, {name} {lowest[name]:.6g}: {figures}" + (
                " (Newton lost the family below it on this grid)" if lo > self.lam_lo else ""
            )
            return (
                f"the smoothness defect kept its sign along the non-smooth family over {name} in [{lo:.6g}, "
                f"{hi:.6g}] (bracket [{self.lam_lo:.6g}, {self.lam_hi:.6g}]): no smooth profile found there{ended}"
            )
        if not evaluation["newton_converged"]:
            return (
                f"Newton did not converge from where the family turned smooth ({name} "
                f"{evaluation[f'{name}_scan']:.10g} on the scanning grid): the profile is not resolved on the grids "
                "newton_spacing gives"
            )
        if not self.lam_lo < evaluation[name] < self.lam_hi:
            return f"{name} {evaluation[name]:.10g} is outside the bracket ({self.lam_lo:.6g}, {self.lam_hi:.6g})"
        if not evaluation["residual_max"] <= self.cfg.tolerance * slack:
            return f"residual_max {evaluation['residual_max']:.2e} > tolerance {self.cfg.tolerance * slack:.0e}"
        # the network's own figures (a PINN study) carry no estimate: its σ against the refined σ stands in for one
        error_key = (
            f"{name}_error_estimate" if evaluation[f"{name}_error_estimate"] is not None else f"{name}_error_network"
        )
        if not evaluation[error_key] <= self.scalar_tolerance * slack:
            return f"{error_key} {evaluation[error_key]:.2e} > {name}_tolerance {self.scalar_tolerance * slack:.0e}"
        return None

    def solution(self) -> pd.DataFrame:
        """On the fine grid (eval_points), y > 0, Newton's profile if it converged."""
        _, _, fine = self.newton_solves()
        u, grid = interpolate(fine.q, fine.grid, self.eval_points)
        every = -(-grid.points // SOLUTION_ROWS)  # every point of grids up to SOLUTION_ROWS, a subset of finer ones
        kept = slice(None, None, every)
        columns = {key: values[kept] for key, values in self.solution_columns(u, grid, fine.lam).items()}
        return pd.DataFrame(
            {
                "s": grid.s[kept],
                **columns,
                self.unknown_name: u[kept],
                f"{self.unknown_name}_network": self.network_q(grid.s[kept]),
                "residual": self.equation.residual(u, fine.lam, grid)[kept],
            }
        )

    def plot(self, metrics: pd.DataFrame, path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        sol, evaluation, name = self.solution(), self.evaluate(), self.equation.scalar_name
        symbol = {"lambda": "λ", "alpha": "α"}.get(name, name)
        net_grid = LogGrid(*self.cfg.grid, len(sol) + 1 - len(sol) % 2)
        network_residual = self.equation.residual(self.network_q(net_grid.s), self.lam.item(), net_grid)
        floor, u = 1e-17, self.unknown_name
        fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
        ax[0].plot(sol.s, sol[u], "C0-", label=f"Newton, {symbol} = {evaluation[name]:.13g}")
        ax[0].plot(sol.s, sol[f"{u}_network"], "C1--", label=f"network, {symbol} = {evaluation[f'{name}_network']:.6g}")
        ax[0].set(title=f"{self.title} {self.profile}: {u}(s)", xlabel="s = log y", xlim=(-15, 30))
        ax[0].legend()
        ax[1].semilogy(sol.s, np.maximum(np.abs(sol.residual), floor), "C0-", lw=1, label="Newton")
        ax[1].semilogy(net_grid.s, np.maximum(np.abs(network_residual), floor), "C1-", lw=1, label="network")
        ax[1].set(title="|residual| on the fine grid (floor 1e-17)", xlabel="s = log y", ylim=(floor / 2, None))
        ax[1].legend()
        if len(metrics):
            ax[2].semilogy(metrics.step, metrics.loss)
        ax[2].set(title="loss", xlabel="step")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def study_phases(problem: LogGridProfile, cfg: DictConfig) -> LogGridProfile:
    """In a PINN study (headline=network) the network is taken to its own limit: Levenberg-Marquardt after L-BFGS.
    Otherwise Newton takes over from L-BFGS's network as soon as the family scan accepts it; a Levenberg-Marquardt
    phase would only add its acceptance checks (a family scan each) to the runs whose network is in no basin.
    Later network stages (equation.stages) come last, each begun as optim.stage says."""
    if cfg.headline == "network":
        problem.phases = (*LogGridProfile.phases, "lm", *STAGE_PHASES[: problem.cfg.stages - 1])
    stage = cfg.optim.stage
    problem.stage_trial = StageTrial(stage.damping, tuple(stage.frequencies), stage.trial_steps)
    return problem
