"""`blowup train equation=gclm`: the generalised Constantin-Lax-Majda family's self-similar profiles, at a given
advection strength a, by the network on the log grid and Newton from it (`blowup.equations.log_grid`).

The unknown is p = -Ω(e^s) and the exponent α (`blowup.equations.gclm.profile`); the network carries p under
the envelope whose far rate is 1/α. Profile 0 is the fundamental branch, whose α falls from about 2.18 at
a = -1 (CCF's stable profile) through 1 (a = 0) and 1/3 (a = 1/2) towards 0 at a_c ≈ 0.689; its default
bracket is drawn around a guess interpolated through those points. The unstable profiles (n >= 1) have
defaults at a = -1, CCF's (α = 1 + λ); elsewhere their bracket must be given (`blowup continue` follows them in a).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from omegaconf import DictConfig
from torch import Tensor

from blowup.equations.ccf.problem import DEFAULTS as CCF_DEFAULTS
from blowup.equations.ccf.problem import PUBLISHED_LAMBDA
from blowup.equations.gclm.profile import GCLMEquation, exact_profile
from blowup.equations.log_grid import LogGridConfig, LogGridProfile, check_grids, study_phases
from blowup.errors import require
from blowup.problem import typed_equation_config
from blowup.solvers.hilbert import AnyLogGrid, LogGrid, hilbert_over_y, shifted_derivative_inverse

CCF_MEMBER = -1.0  # the a at which gCLM is CCF
A_COLLAPSE = 0.68  # profile 0's a at most: its α vanishes at a_c ≈ 0.689 (Lushnikov, Silantyev, Siegel 2010.01201)
# profile 0's α, roughly, through the exact and CCF points (a, α); its default bracket is [0.85, 1.3] times this
FUNDAMENTAL_GUESS = ((-1.0, 2.1807776628998), (0.0, 1.0), (0.5, 1 / 3), (0.689, 0.0))


@dataclass
class GCLMConfig(LogGridConfig):
    name: str = "gclm"
    a: float = 0.0  # the advection strength: -1 is CCF, 0 Constantin-Lax-Majda (exact), 1/2 exact too
    alpha_bracket: tuple[float, float] | None = None  # null: profile 0's around its guess, n >= 1 CCF's at a = -1
    entry_alpha: float | None = None  # where a rough start enters the family if the network's start does not
    alpha_tolerance: float = 1e-10  # largest α error estimate of a "completed" run


def run_label(cfg: DictConfig) -> str:
    return f"gclm_a{cfg.equation.a:g}_k{cfg.profile}"


def fundamental_guess(a: float) -> float:
    """Profile 0's α, interpolated (linearly extrapolated below a = -1) through FUNDAMENTAL_GUESS."""
    points, values = zip(*FUNDAMENTAL_GUESS)
    if a < points[0]:
        return values[0] + (values[1] - values[0]) * (a - points[0]) / (points[1] - points[0])
    return float(np.interp(a, points, values))


def with_defaults(eq: GCLMConfig, profile: int) -> GCLMConfig:
    """Each null key replaced by the profile's default: profile 0 around its guessed α on [-40, 80] at spacings
    0.2 and 0.15; profiles n >= 1 CCF's (α = 1 + λ) at every a (their bracket checked to be given off a = -1)."""
    if profile == 0:
        guess = fundamental_guess(eq.a)
        defaults = {
            "alpha_bracket": (max(0.01, 0.85 * guess), 1.3 * guess),
            "grid": (-40.0, 80.0),
            "newton_spacing": (0.2, 0.15),
            "scan_spacing": 0.1,
            "entry_alpha": None,
        }
    else:
        ccf = CCF_DEFAULTS.get(profile, CCF_DEFAULTS[3])
        entry = ccf.entry_lambda
        defaults = {
            "alpha_bracket": (1 + ccf.lambda_bracket[0], 1 + ccf.lambda_bracket[1]),
            "grid": ccf.grid,
            "newton_spacing": ccf.newton_spacing,
            "scan_spacing": ccf.scan_spacing,
            "entry_alpha": None if entry is None else 1 + entry,
        }
    unset = {key: value for key, value in defaults.items() if getattr(eq, key) is None}
    return replace(eq, **{key: tuple(v) if isinstance(v, list | tuple) else v for key, v in unset.items()})


def check_config(cfg: DictConfig) -> None:
    eq = typed_equation_config(cfg, GCLMConfig)
    require(eq.a < 1, "equation.a", eq.a, "a number < 1 (smoothness at the origin asks (1 + alpha)/(1 - a))")
    if cfg.profile == 0:
        require(eq.a <= A_COLLAPSE, "equation.a", eq.a, f"a number <= {A_COLLAPSE} for profile 0 (alpha > 0)")
    elif eq.a != CCF_MEMBER:
        require(eq.alpha_bracket is not None, "equation.alpha_bracket", None, "[lo, hi] for profile >= 1 off a = -1")
    check_grids(cfg, eq, with_defaults(eq, cfg.profile), "alpha")


class GCLM(LogGridProfile):
    evaluation_keys = ("eval_points", "tolerance", "alpha_tolerance")
    unknown_name = "p"
    title = "gCLM profile"

    def __init__(self, cfg: GCLMConfig, profile: int, sobolev: int, backend: str):
        cfg = with_defaults(cfg, profile)
        self.equation = GCLMEquation(cfg.a)
        super().__init__(cfg, profile, sobolev, backend, cfg.alpha_bracket, cfg.entry_alpha, cfg.alpha_tolerance)

    def collocation_operators(self, grid: AnyLogGrid) -> dict[str, np.ndarray]:
        """U/ξ's (I + d/ds)⁻¹ too."""
        shift_inverse = shifted_derivative_inverse(np.eye(grid.points), grid)
        return super().collocation_operators(grid) | {"shift_inverse": shift_inverse}

    def far_rate(self, alpha: Tensor) -> Tensor:
        return 1 / alpha  # Ω + αξΩ' ~ 0 far out: Ω ~ ξ^(-1/α)

    def network_residual(self, p: Tensor, slope: Tensor, e: Tensor) -> Tensor:
        tq, w = self.hilbert @ (self.shift_inverse @ p), p / e
        return -w - (self.lam - self.equation.a * tq) * slope - w * (self.hilbert @ p)  # G / e

    def network_defect(self, p: Tensor) -> Tensor:
        return self.hilbert[:1] @ p + (1 + self.lam) / (1 - self.equation.a)

    def continued(self) -> dict:
        return {"equation.a": (self.equation.a, GCLMEquation)}

    def reference(self) -> tuple[str, float] | None:
        a = self.equation.a
        exact = exact_profile(a, LogGrid(-1.0, 1.0, 3))
        if exact is not None:
            return "exact", exact[0]
        if a == CCF_MEMBER and self.profile in PUBLISHED_LAMBDA:
            return "published", 1 + PUBLISHED_LAMBDA[self.profile]
        return None

    def evaluate(self) -> dict:
        out = super().evaluate()
        out["a"] = self.equation.a
        out["lambda"], out["lambda_network"] = out["alpha"] - 1, out["alpha_network"] - 1  # CCF's λ at a = -1
        _, _, fine = self.newton_solves()
        exact = exact_profile(self.equation.a, fine.grid)
        if exact is not None:  # the closed form on Newton's fine grid, each at the scale its normalisation fixes
            network, network_exact = self.network_q(fine.grid.s), exact_profile(self.equation.a, fine.grid, peak=0.0)
            out["profile_max_error"] = float(np.abs(fine.q - exact[1]).max()) if fine.converged else float("nan")
            out["profile_max_error_network"] = float(np.abs(network - network_exact[1]).max())
        return out

    def solution_columns(self, p: np.ndarray, grid: LogGrid, alpha: float) -> dict[str, np.ndarray]:
        """ξ > 0 (Ω and U odd, HΩ even)."""
        xi = np.exp(grid.s)
        u_over_xi = -hilbert_over_y(shifted_derivative_inverse(p, grid), grid)
        return {"xi": xi, "Omega": -p, "H_Omega": -hilbert_over_y(p, grid), "U": xi * u_over_xi}


def build(cfg: DictConfig) -> GCLM:
    return study_phases(GCLM(typed_equation_config(cfg, GCLMConfig), cfg.profile, cfg.sobolev, cfg.backend.name), cfg)
