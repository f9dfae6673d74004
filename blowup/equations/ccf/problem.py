"""The Córdoba-Córdoba-Fontelos model θ_t + (Hθ) θ_x = 0: self-similar profiles -λΘ + ((1+λ) y + HΘ) Θ' = 0.

The equation, the log grid and the smoothness condition that selects λ are in `profile`: in
s = log y, q = Θ/y solves R = -λq + (1 + λ + Tq)(q + q_s) = 0 with T the Hilbert transform (`hilbert`).
The network phase and Newton from it are the log-grid problem's (`blowup.equations.log_grid`): the network
carries q under an envelope whose far rate is 1/(1+λ) (Θ ~ |y|^(λ/(1+λ))). The unstable profiles have steep
fronts that the network does not reach by training, and its λ drifts to where the residual is easy; the
non-smooth family, followed from the network's q and λ, does not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from omegaconf import DictConfig
from torch import Tensor

from blowup.equations.ccf.profile import CCF_EQUATION
from blowup.equations.log_grid import LogGridConfig, LogGridProfile, check_grids, study_phases
from blowup.errors import require
from blowup.problem import typed_equation_config
from blowup.solvers.hilbert import LogGrid, derivative, hilbert_over_y

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


@dataclass
class CCFConfig(LogGridConfig):
    name: str = "ccf"
    lambda_bracket: tuple[float, float] | None = None  # null: DEFAULTS[profile], as are grid and newton_spacing
    entry_lambda: float | None = None  # where a rough start enters the family if the network's start does not
    lambda_tolerance: float = 1e-10  # largest λ error estimate of a "completed" run


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
    check_grids(cfg, eq, with_defaults(eq, cfg.profile), "lambda")


class CCF(LogGridProfile):
    evaluation_keys = ("eval_points", "tolerance", "lambda_tolerance")
    equation = CCF_EQUATION
    title = "CCF profile"

    def __init__(self, cfg: CCFConfig, profile: int, sobolev: int, backend: str):
        cfg = with_defaults(cfg, profile)
        super().__init__(cfg, profile, sobolev, backend, cfg.lambda_bracket, cfg.entry_lambda, cfg.lambda_tolerance)

    def far_rate(self, lam: Tensor) -> Tensor:
        return 1 / (1 + lam)  # Θ ~ |y|^(λ/(1+λ)): q ~ e^(-s/(1+λ))

    def network_residual(self, q: Tensor, slope: Tensor, e: Tensor) -> Tensor:
        speed = 1 + self.lam + self.hilbert @ q
        return -self.lam * q / e + speed * (q / e + slope)  # R / e

    def network_defect(self, q: Tensor) -> Tensor:
        return self.hilbert[:1] @ q + 1 + self.lam / 2

    def reference(self) -> tuple[str, float] | None:
        published = PUBLISHED_LAMBDA.get(self.profile)
        return ("published", published) if published is not None else None

    def evaluate(self) -> dict:
        out = super().evaluate()
        out.setdefault("lambda_published", None)  # every CCF summary has the fields, None past the table
        out.setdefault("lambda_vs_published", None)
        return out

    def solution_columns(self, q: np.ndarray, grid: LogGrid, lam: float) -> dict[str, np.ndarray]:
        """y > 0 (Θ is even, Ω = Θ' and HΘ odd)."""
        y = np.exp(grid.s)
        return {"y": y, "Theta": y * q, "Omega": q + derivative(q, grid), "H_Theta": y * hilbert_over_y(q, grid)}


def build(cfg: DictConfig) -> CCF:
    return study_phases(CCF(typed_equation_config(cfg, CCFConfig), cfg.profile, cfg.sobolev, cfg.backend.name), cfg)
