"""The Córdoba-Córdoba-Fontelos model θ_t + (Hθ) θ_x = 0: self-similar profiles -λΘ + ((1+λ) y + HΘ) Θ' = 0.

The equation, the log grid and the smoothness condition that selects λ are in `profile`: in
s = log y, q = Θ/y solves R = -λq + (1 + λ + Tq)(q + q_s) = 0 with T the Hilbert transform (`hilbert`).
The network w(s) carries q = e(s) w(s) under the envelope e = 1 / (e^-s + e^(as)), a = 1/(1+λ): e ~ e^s at the
origin (Θ ~ y², the smooth behaviour) and ~ e^(-as) far out (Θ ~ |y|^(λ/(1+λ))), so w tends to constants at
both ends, which a tanh MLP does by itself. The residual is weighed by 1/e, so both ends count.

T is nonlocal: every residual row depends on the network at every point. The optimisers that see the whole
loss at once (Adam, L-BFGS) train it; the per-point Levenberg-Marquardt phase does not apply. The network is
the first finder: its q and λ start the non-smooth family (every λ has a solution that is smooth except at
the origin), which is followed through the bracket until it turns smooth (`ccf_profile.smooth_in_bracket`).
The unstable profiles have steep fronts that the network does not reach by training, and its λ drifts to
where the residual is easy; the family does not. The reported profile is Newton's from there at two grid
spacings, whose difference in λ is the error estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from blowup.engine.derivatives import input_jet, memory_limit_gb
from blowup.engine.models import MLP, ModelConfig
from blowup.equations.ccf.hilbert import LogGrid, derivative, hilbert_over_y, interpolate, operator_matrices
from blowup.equations.ccf.profile import (
    FamilyScan,
    ProfileSolve,
    family_measures,
    find_profile,
    residual,
    rough_profile,
)
from blowup.equations.ccf.stability import CCFStability
from blowup.errors import require, require_all
from blowup.problem import Problem, typed_equation_config

# Wang, Lai, Gómez-Serrano, Buckmaster et al., arXiv 2509.14185, Fig. 2; reported beside the result, never used
PUBLISHED_LAMBDA = {0: 1.1807776628998, 1: 0.6057337012032, 2: 0.4713248638620}  # 2: its table (text: 0.4703)


@dataclass(frozen=True)
class ProfileDefaults:
    """What a profile's run uses unless the config says otherwise (README, "CCF": how each was measured)."""

    lambda_bracket: tuple[float, float]  # from the smoothness defect along the non-smooth family
    grid: tuple[float, float]  # the tails at round-off at both ends: the far one decays like y^(-1/(1+λ))
    newton_spacing: tuple[float, float]  # fine enough for the profile's steepest front
    scan_spacing: float  # the family's members below profile 1 have fronts a coarse grid cannot follow
    entry_lambda: float | None  # where a rough start enters the family (null: the bracket's top)


DEFAULTS = {
    0: ProfileDefaults((0.9, 1.6), (-40.0, 80.0), (0.2, 0.15), 0.1, None),
    1: ProfileDefaults((0.52, 0.9), (-36.0, 60.0), (0.025, 0.02), 0.1, None),
    2: ProfileDefaults((0.4, 0.52), (-36.0, 60.0), (0.001, 0.0005), 0.005, 0.7),
    3: ProfileDefaults((0.4, 0.468), (-36.0, 60.0), (0.001, 0.0005), 0.005, 0.7),
}
BYTES_PER_POINT = 1600  # matrix-free Newton: a few dozen float and complex vectors per grid point (measured)
BASE_GB = 0.5  # the process before any grid: Python, torch, the network
SPECTRUM_POINTS = 50_001  # `blowup stability` on grids up to this (dense up to 6001 points, shift-invert past)
SOLUTION_ROWS = 100_001  # solution.csv's rows at most: the evaluation grid's points, every m-th of a finer one
MAX_GRID_POINTS = 2_000_001  # a Newton step on a grid of more takes minutes, a run hours (results/ccf_scaling.csv)


@dataclass
class CCFWeights:
    residual: float = 1.0  # R / e on the network's grid
    sobolev: float = 1.0  # its s-derivatives 1..sobolev (spectral on the grid: R is known only there)
    smoothness: float = 1.0  # Tq(-∞) + 1 + λ/2 = 0: Θ ~ y² at the origin
    normalization: float = 1.0  # q_s(0) = 0: the maximum of Θ/y at y = 1 (the scaling family is a shift in s)
    guess: float = 1.0  # the guess phase's fit of q to a rough profile


@dataclass
class CCFConfig:
    name: str = "ccf"
    lambda_bracket: tuple[float, float] | None = None  # null: DEFAULTS[profile], as are grid and newton_spacing
    grid: tuple[float, float] | None = None  # s = log y; the profiles' tails must be round-off at both ends
    points: int = 301  # the network's collocation points on the grid (odd)
    input_scale: float = 20.0  # the network sees s / input_scale
    scan_spacing: float | None = None  # the grid on which the non-smooth family is followed to where it turns smooth
    scan_step: float = 0.02  # ... in steps of λ of this size from the network's λ
    entry_lambda: float | None = None  # where a rough start enters the family if the network's start does not
    newton_spacing: tuple[float, float] | None = None  # Newton's two grids; λ's change between them: the estimate
    tolerance: float = 1e-9  # largest residual of a "completed" run's profile, between Newton's grid points
    lambda_tolerance: float = 1e-10  # largest λ error estimate of a "completed" run
    weights: CCFWeights = field(default_factory=CCFWeights)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(width=16, depth=2))
    eval_points: int | None = None  # the fine grid of solution.csv and of the residual between Newton's points;
    # null: three times Newton's fine grid


def run_label(cfg: DictConfig) -> str:
    return f"ccf_k{cfg.profile}"


def with_defaults(eq: CCFConfig, profile: int) -> CCFConfig:
    """The config with each null of DEFAULTS' keys replaced by the profile's default (profiles past 3 take
    profile 3's; their bracket has no default and is checked to be given)."""
    defaults = DEFAULTS.get(profile, DEFAULTS[3])
    unset = {key: getattr(defaults, key) for key in asdict(defaults) if getattr(eq, key) is None}
    return replace(eq, **{key: tuple(v) if isinstance(v, list | tuple) else v for key, v in unset.items()})


def check_config(cfg: DictConfig) -> None:
    eq = typed_equation_config(cfg, CCFConfig)
    if cfg.profile not in DEFAULTS:
        allowed = "0, 1, 2, 3, or another with equation.lambda_bracket"
        require(eq.lambda_bracket is not None, "profile", cfg.profile, allowed)
    resolved = with_defaults(eq, cfg.profile)
    (lo, hi), grid, (coarse, fine) = resolved.lambda_bracket, resolved.grid, resolved.newton_spacing
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
            ("lambda_bracket", eq.lambda_bracket, 0 < lo < hi, "null (the profile's default) or [lo, hi], 0 < lo < hi"),
            ("points", eq.points, eq.points >= 21 and eq.points % 2 == 1, "an odd integer >= 21"),
            ("input_scale", eq.input_scale, eq.input_scale > 0, "a number > 0"),
            (
                "scan_spacing",
                eq.scan_spacing,
                0 < scan_points <= MAX_GRID_POINTS,
                f"null (the profile's default) or a number in (0, 0.5] leaving {grids}",
            ),
            ("scan_step", eq.scan_step, 0 < eq.scan_step <= hi - lo, "a number in (0, the bracket's width]"),
            (
                "entry_lambda",
                eq.entry_lambda,
                resolved.entry_lambda is None or resolved.entry_lambda >= hi,
                "null (the profile's default) or a number >= the bracket's top",
            ),
            (
                "newton_spacing",
                eq.newton_spacing,
                0 < fine < coarse <= 0.5 and fine_points <= MAX_GRID_POINTS,
                f"null or [coarse, fine] with 0 < fine < coarse <= 0.5, leaving {grids}",
            ),
            ("tolerance", eq.tolerance, eq.tolerance > 0, "a number > 0"),
            ("lambda_tolerance", eq.lambda_tolerance, eq.lambda_tolerance > 0, "a number > 0"),
            *[(f"weights.{key}", value, value >= 0, "a number >= 0") for key, value in asdict(eq.weights).items()],
            ("model.width", eq.model.width, eq.model.width >= 1, "an integer >= 1"),
            ("model.depth", eq.model.depth, eq.model.depth >= 1, "an integer >= 1"),
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


class ScaledInput(nn.Module):
    """w(s) = MLP(s / scale), on tensors and jets alike."""

    def __init__(self, net: nn.Module, scale: float):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, s):
        return self.net(s * (1 / self.scale))


class CCF(Problem):
    phases = ("guess", "adam", "lbfgs")
    plot_name = "profile.png"
    judges_results = True  # Newton from the network says when the network is in the profile's basin
    evaluation_keys = ("eval_points", "tolerance", "lambda_tolerance")

    def __init__(self, cfg: CCFConfig, profile: int, sobolev: int, backend: str):
        super().__init__()
        cfg = with_defaults(cfg, profile)
        self.cfg, self.profile, self.sobolev, self.backend = cfg, profile, sobolev, backend
        self.lam_lo, self.lam_hi = cfg.lambda_bracket
        fine_points = LogGrid.with_spacing(*cfg.grid, cfg.newton_spacing[1]).points
        self.eval_points = cfg.eval_points or 3 * fine_points  # solution.csv's grid, off Newton's points
        self.w = ScaledInput(MLP(width=cfg.model.width, depth=cfg.model.depth), cfg.input_scale)  # the run's dtype
        self.lam_raw = nn.Parameter(torch.zeros(()))  # λ at the middle of its bracket
        self.grid = LogGrid(*cfg.grid, cfg.points)
        hilbert, diff = operator_matrices(self.grid)
        dtype = torch.get_default_dtype()  # the network trains in the run's dtype; Newton is float64 throughout
        self.register_buffer("hilbert", torch.tensor(hilbert, dtype=dtype))
        self.register_buffer("diff", torch.tensor(diff, dtype=dtype))
        self.register_buffer("s", torch.tensor(self.grid.s, dtype=dtype).view(-1, 1))
        self.register_buffer("origin", torch.zeros(1, 1))
        q_guess = rough_profile(0.5 * (self.lam_lo + self.lam_hi), self.grid)
        self.register_buffer("q_guess", torch.tensor(q_guess, dtype=dtype).view(-1, 1))

    @property
    def lam(self) -> Tensor:
        return self.lam_lo + (self.lam_hi - self.lam_lo) * torch.sigmoid(self.lam_raw)

    def envelope(self, s: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
        """e(s) and e'(s)/e(s) = (1-a)/2 - (1+a)/2 tanh((1+a)s/2), a = 1/(1+λ)."""
        a = 1 / (1 + lam)
        e = 1 / (torch.exp(-s) + torch.exp(a * s))
        return e, (1 - a) / 2 - (1 + a) / 2 * torch.tanh((1 + a) * s / 2)

    def q_and_slope(self, s: Tensor, lam: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """q, q_s / e and e at points s (N, 1) (envelope at λ unless given); w, w_s from the configured backend."""
        w = input_jet(self.w, s, 1, self.backend).derivatives()  # (2, N, 1)
        e, log_slope = self.envelope(s, self.lam if lam is None else lam)
        return e * w[0], w[1] + log_slope * w[0], e

    def terms(self) -> dict[str, tuple[Tensor, ...]]:
        if self.phase == "guess":
            return {"guess": (self.s, self.q_guess)}
        return {"residual": (self.s,), "smoothness": (self.s[:1],), "normalization": (self.origin,)}

    def forward(self, term: str, s: Tensor, *targets: Tensor) -> Tensor:
        weights = self.cfg.weights
        if term == "residual":  # every row needs every point: T is nonlocal
            q, slope, e = self.q_and_slope(self.s)
            speed = 1 + self.lam + self.hilbert @ q
            weighted = -self.lam * q / e + speed * (q / e + slope)  # R / e
            rows = [weighted]
            for _ in range(self.sobolev):  # d^j/ds^j (R / e), spectrally
                rows.append(self.diff @ rows[-1] * weights.sobolev)
            return torch.cat(rows, 1) * weights.residual / len(self.s) ** 0.5
        if term == "smoothness":  # T q at the left end needs q everywhere, but not its slope
            return (self.hilbert[:1] @ self.q_values(self.s) + 1 + self.lam / 2) * weights.smoothness
        if term == "normalization":
            _, slope, _ = self.q_and_slope(s)
            return slope * weights.normalization
        if term == "guess":  # the shape only: λ stays where it starts (its envelope would pull it to fit the guess)
            q, _, e = self.q_and_slope(s, self.lam.detach())
            return (q - targets[0]) / e * weights.guess / len(self.s) ** 0.5
        raise KeyError(term)

    def scalars(self) -> dict[str, Tensor]:
        return {"lambda": self.lam}

    # --- the result: Newton from the network ---------------------------------------------------------------
    def q_values(self, s: Tensor) -> Tensor:
        """q = e w at points s (N, 1), by a plain forward pass."""
        return self.envelope(s, self.lam)[0] * self.w(s)

    def network_q(self, s: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            q = self.q_values(torch.tensor(s).view(-1, 1).to(self.s))
        return q.flatten().cpu().double().numpy()

    def newton_solves(self) -> tuple[FamilyScan, ProfileSolve, ProfileSolve]:
        """The family followed from the network's q and λ, Newton on the coarse grid from where it turned smooth,
        then on the fine grid from that (`ccf_profile.find_profile`)."""

        def compute() -> tuple[FamilyScan, ProfileSolve, ProfileSolve]:
            return find_profile(
                lambda grid: self.network_q(grid.s),
                self.lam.item(),
                (self.lam_lo, self.lam_hi),
                self.cfg.grid,
                self.cfg.scan_spacing,
                self.cfg.scan_step,
                self.cfg.newton_spacing,
                self.cfg.entry_lambda,
            )

        return self.once_per_state("newton", compute)

    def evaluate(self) -> dict:
        scan, coarse, fine = self.newton_solves()
        network_residual = residual(self.network_q(self.grid.s), self.lam.item(), self.grid)
        converged = coarse.converged and fine.converged
        out = {
            "profile": self.profile,
            "lambda": fine.lam if converged else self.lam.item(),
            "lambda_network": self.lam.item(),
            "lambda_scan": scan.smooth.lam if scan.smooth is not None else None,  # the family's defect changed sign
            "family_covered": list(scan.covered) if scan.covered is not None else None,  # λ range it was followed
            # the member at the covered range's lower end: how the family looks where following it stopped
            "family_lowest": family_measures(scan.lowest) if scan.lowest is not None else None,
            "lambda_error_estimate": abs(fine.lam - coarse.lam) if converged else float("nan"),
            "residual_max": fine.offgrid_residual_max(self.eval_points) if converged else float("nan"),
            "residual_max_network": float(np.abs(network_residual).max()),
            "newton_converged": converged,
            "newton_steps": coarse.steps + (fine.steps if coarse.converged else 0),
        }
        published = PUBLISHED_LAMBDA.get(self.profile)
        out["lambda_published"] = published
        out["lambda_vs_published"] = abs(out["lambda"] - published) if published is not None else None
        return out

    def stability(self) -> CCFStability:
        points = LogGrid.with_spacing(*self.cfg.grid, self.cfg.newton_spacing[1]).points
        if points > SPECTRUM_POINTS:  # before any Newton: the answer would be an unannounced wait
            raise ValueError(
                f"the stability spectrum on this run's fine grid ({points} points) is not available: past "
                f"{SPECTRUM_POINTS} points its shift-invert eigenvalues take minutes per grid and were not measured"
            )
        _, coarse, fine = self.newton_solves()
        if not (coarse.converged and fine.converged):
            raise ValueError("Newton did not converge from this run's network: no profile to analyse")
        return CCFStability(coarse, fine)

    def failure(self, evaluation: dict) -> str | None:
        if evaluation["family_covered"] is None:
            return (
                f"Newton could not enter the non-smooth family at the network's lambda "
                f"{evaluation['lambda_network']:.6g} nor at the bracket's top {self.lam_hi:.6g}: "
                "no smooth profile found"
            )
        if evaluation["lambda_scan"] is None:
            lo, hi = evaluation["family_covered"]
            lowest = evaluation["family_lowest"]
            ended = (
                f"; at its lowest member, lambda {lowest['lambda']:.6g}: exponent p {lowest['exponent_p']:.4f} "
                f"(1: smooth), defect {lowest['smoothness_defect']:.2e}, least transport speed "
                f"{lowest['speed_min']:.3g}, max |Omega| {lowest['omega_max']:.3g}"
                + (" (Newton lost the family below it on this grid)" if lo > self.lam_lo else "")
            )
            return (
                f"the smoothness defect kept its sign along the non-smooth family over lambda in [{lo:.6g}, {hi:.6g}]"
                f" (bracket [{self.lam_lo:.6g}, {self.lam_hi:.6g}]): no smooth profile found there{ended}"
            )
        if not evaluation["newton_converged"]:
            return (
                f"Newton did not converge from where the family turned smooth (lambda {evaluation['lambda_scan']:.10g}"
                f" on the scanning grid): the profile is not resolved on the grids newton_spacing gives"
            )
        if not self.lam_lo < evaluation["lambda"] < self.lam_hi:
            return f"lambda {evaluation['lambda']:.10g} is outside the bracket ({self.lam_lo:.6g}, {self.lam_hi:.6g})"
        if not evaluation["residual_max"] <= self.cfg.tolerance:
            return f"residual_max {evaluation['residual_max']:.2e} > tolerance {self.cfg.tolerance:.0e}"
        if not evaluation["lambda_error_estimate"] <= self.cfg.lambda_tolerance:
            return (
                f"lambda_error_estimate {evaluation['lambda_error_estimate']:.2e} > lambda_tolerance "
                f"{self.cfg.lambda_tolerance:.0e}"
            )
        return None

    def solution(self) -> pd.DataFrame:
        """On the fine grid (eval_points): y > 0 (Θ is even, Ω = Θ' and HΘ odd), Newton's profile if it converged."""
        _, _, fine = self.newton_solves()
        q, grid = interpolate(fine.q, fine.grid, self.eval_points)
        every = -(-grid.points // SOLUTION_ROWS)  # every point of grids up to SOLUTION_ROWS, a subset of finer ones
        y, kept = np.exp(grid.s[::every]), slice(None, None, every)
        return pd.DataFrame(
            {
                "s": grid.s[kept],
                "y": y,
                "Theta": y * q[kept],
                "Omega": (q + derivative(q, grid))[kept],
                "H_Theta": y * hilbert_over_y(q, grid)[kept],
                "q": q[kept],
                "q_network": self.network_q(grid.s[kept]),
                "residual": residual(q, fine.lam, grid)[kept],
            }
        )

    def plot(self, metrics: pd.DataFrame, path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        sol, evaluation = self.solution(), self.evaluate()
        net_grid = LogGrid(*self.cfg.grid, len(sol) + 1 - len(sol) % 2)
        network_residual = residual(self.network_q(net_grid.s), self.lam.item(), net_grid)
        floor = 1e-17
        fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
        ax[0].plot(sol.s, sol.q, "C0-", label=f"Newton, λ = {evaluation['lambda']:.13g}")
        ax[0].plot(sol.s, sol.q_network, "C1--", label=f"network, λ = {evaluation['lambda_network']:.6g}")
        ax[0].set(title=f"CCF profile {self.profile}: Θ(y)/y", xlabel="s = log y", xlim=(-15, 30))
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


def build(cfg: DictConfig) -> CCF:
    return CCF(typed_equation_config(cfg, CCFConfig), cfg.profile, cfg.sobolev, cfg.backend.name)
