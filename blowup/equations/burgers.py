"""Self-similar Burgers: -λU + ((1+λ)X + U)U' = 0 on [-2, 2], U(-2) = 1, U(2) = -1.

Smooth profiles exist only for λ_k = 1/(2k+2); the exact profile solves U + U^(2k+3) = -X. λ is
pinned by smoothness at X = 0: residual derivatives up to order 2k+3 must vanish there (one order
more is imposed, see `smooth_order`), so the network's first 2k+5 input derivatives enter the loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from blowup.engine.derivatives import check_derivative_memory, input_jet
from blowup.engine.jet import Jet
from blowup.engine.models import MLP, ModelConfig, StageNetwork
from blowup.errors import ConfigError, require_all
from blowup.problem import MAX_STAGES, STAGE_PHASES, ExactMode, LaterStages, Problem, Symmetry, typed_equation_config
from blowup.solvers.chebyshev_branch import ChebyshevBranch
from blowup.solvers.newton import MAX_DEGREE, Linearization, ProfileSpec, Refinement, refine
from blowup.solvers.spectrum import CollocationStability
from blowup.solvers.stages import StageTrial, begin_stage

EMBEDDINGS = ("none", "odd", "odd_boundary")
GUESSES = ("tanh", "none")


@dataclass
class BurgersWeights:
    residual: float = 1.0  # Q_0: the residual itself on the global points
    sobolev: float = 1.0  # Q_j, j >= 1: its derivatives on the global points
    smooth: float = 100.0  # residual Taylor coefficients F^(j)(x)/j! near the origin
    origin: float = 1000.0  # the same at X = 0, where F^(2k+3)(0)/(2k+3)! = (2k+2)(λ - λ_k) for the exact U
    boundary: float = 1.0  # U(-2) = 1, U(2) = -1 (unused when the embedding builds them in)


@dataclass
class LMWeights:
    """Weights for the Levenberg-Marquardt phase (see Burgers.start_phase); None: as in `weights`."""

    residual: float | None = 100.0
    sobolev: float | None = 100.0
    smooth: float | None = None
    origin: float | None = None
    boundary: float | None = None


@dataclass
class Tolerance:
    """A run is "completed" only if its error estimates (no exact solution used) are at most these."""

    lambda_error: float = 1e-9
    profile_error: float = 1e-9


NARROW_RADIUS = 0.075  # the smoothness interval up to k = 4, and in later network stages at every k


@dataclass
class BurgersConfig:
    name: str = "burgers"
    domain: tuple[float, float] = (-2.0, 2.0)
    boundary: tuple[float, float] = (1.0, -1.0)
    points: int = 301
    local_points: int = 31
    local_radius: float | None = None  # default: local_radius_for(k)
    lm_local_radius: float | None = None  # in the first network's Levenberg-Marquardt phase (null: local_radius)
    stage_local_radius: float = NARROW_RADIUS  # the smoothness points' interval in later network stages' phases
    stage_points: int | None = None  # global collocation points in later network stages' phases (null: points)
    lambda_bracket: tuple[float, float] | None = None  # default (1/(2k+3), 1/(2k+1))
    embedding: str = "odd_boundary"
    initial_guess: str = "tanh"
    tolerance: Tolerance = field(default_factory=Tolerance)
    refine: int = 8  # most Newton corrections added to the network's profile (solvers.newton); 0: the network alone
    weights: BurgersWeights = field(default_factory=BurgersWeights)
    lm_weights: LMWeights = field(default_factory=LMWeights)
    model: ModelConfig = field(default_factory=ModelConfig)
    stages: int = 1  # networks in the profile: the first and stages - 1 later ones fitted to what it left
    eval_points: int = 2001


def typed_config(cfg: DictConfig) -> BurgersConfig:
    return typed_equation_config(cfg, BurgersConfig)


def run_label(cfg: DictConfig) -> str:
    return f"burgers_k{cfg.profile}"


def check_config(cfg: DictConfig) -> None:
    eq = typed_config(cfg)
    lo, hi = lambda_bracket(eq, cfg.profile)
    k_lambda = exact_lambda(cfg.profile)
    require_all(
        [
            ("embedding", eq.embedding, eq.embedding in EMBEDDINGS, "one of " + ", ".join(EMBEDDINGS)),
            ("initial_guess", eq.initial_guess, eq.initial_guess in GUESSES, "one of " + ", ".join(GUESSES)),
            ("refine", eq.refine, eq.refine >= 0, "an integer >= 0 (0: the network alone)"),
            *[(f"tolerance.{key}", value, value > 0, "a number > 0") for key, value in asdict(eq.tolerance).items()],
            *[(f"weights.{key}", value, value >= 0, "a number >= 0") for key, value in asdict(eq.weights).items()],
            ("points", eq.points, eq.points >= 2, "an integer >= 2"),
            ("local_points", eq.local_points, eq.local_points >= 1, "an integer >= 1"),
            ("local_radius", eq.local_radius, eq.local_radius is None or eq.local_radius > 0, "null or a number > 0"),
            (
                "lm_local_radius",
                eq.lm_local_radius,
                eq.lm_local_radius is None or eq.lm_local_radius > 0,
                "null or a number > 0",
            ),
            ("stage_local_radius", eq.stage_local_radius, eq.stage_local_radius > 0, "a number > 0"),
            (
                "stage_points",
                eq.stage_points,
                eq.stage_points is None or eq.stage_points >= 2,
                "null or an integer >= 2",
            ),
            ("eval_points", eq.eval_points, eq.eval_points >= 1001, "an integer >= 1001"),
            *[
                (f"lm_weights.{key}", value, value is None or value >= 0, "null (as in weights) or a number >= 0")
                for key, value in asdict(eq.lm_weights).items()
            ],
            ("model.width", eq.model.width, eq.model.width >= 1, "an integer >= 1"),
            ("model.depth", eq.model.depth, eq.model.depth >= 1, "an integer >= 1"),
            ("stages", eq.stages, 1 <= eq.stages <= MAX_STAGES, f"an integer in 1..{MAX_STAGES} (1: one network)"),
            ("domain", eq.domain, eq.domain[0] < eq.domain[1], "(left, right) with left < right"),
            ("lambda_bracket", (lo, hi), lo < k_lambda < hi, f"an interval containing lambda_k = {k_lambda}"),
            (
                "embedding",
                eq.embedding,
                eq.embedding == "none" or (eq.domain[0] == -eq.domain[1] and eq.boundary[0] == -eq.boundary[1]),
                "none for an asymmetric domain or boundary",
            ),
        ]
    )
    if eq.refine:
        check_resolvable(cfg.profile, min(asdict(eq.tolerance).values()))
        check_reachable(cfg.dtype, eq.tolerance)
    order = max(smooth_order(cfg.profile), cfg.sobolev) + 1  # U's derivatives in the smoothness and Sobolev rows
    points = max(eq.points, eq.stage_points or 0) + eq.local_points
    check_derivative_memory(cfg, "profile", order, points, eq.model.width, eq.model.depth)


def chebyshev_rate(k: int) -> float:
    """ln ρ: the exact profile's Chebyshev coefficients on the domain fall like ρ^-n.

    U + U^(2k+3) = -X is analytic except at its branch points, where 1 + (2k+3) U^(2k+2) = 0: U_s on a circle of
    radius (2k+3)^(-1/(2k+2)), X_s = -U_s (2k+2)/(2k+3). The nearest to [-2, 2] (in the Bernstein-ellipse sense,
    X = 2 cos θ) sets ρ. As k grows they close in on X = ±1, where the profile turns from -X to ∓1, so ρ → 1."""
    p = 2 * k + 2
    u = (2 * k + 3) ** (-1 / p) * np.exp(1j * np.pi * (2 * np.arange(p) + 1) / p)
    t = -u * (2 * k + 2) / (2 * k + 3) / 2
    rho = np.abs(t + np.sqrt(t * t - 1 + 0j))
    return float(np.log(np.maximum(rho, 1 / rho)).min())


def check_resolvable(k: int, tolerance: float) -> None:
    """Refuse, before anything runs, a profile the refinement cannot resolve to `tolerance` within its largest
    Chebyshev degree: every such run would end not_converged after its whole budget."""
    needed = math.log(1 / tolerance) / chebyshev_rate(k)
    if needed > MAX_DEGREE:
        largest = next(j for j in range(k, -1, -1) if math.log(1 / tolerance) / chebyshev_rate(j) <= MAX_DEGREE)
        raise ConfigError(
            f"profile={k} is invalid: its profile needs Chebyshev degree about {needed:.0f} to reach the tolerance "
            f"{tolerance:g} (ln ρ = {chebyshev_rate(k):.3g}: its branch points close in on X = ±1), over "
            f"the refinement's largest degree {MAX_DEGREE}; allowed profile <= {largest} with this tolerance, a "
            f"looser equation.tolerance, or equation.refine=0 (the network alone)"
        )


ROUND_OFF_FLOOR = 10  # error estimates end a few float spacings above 0: tolerances under 10 spacings are unreachable


def check_reachable(dtype: str, tolerance: Tolerance) -> None:
    """Refuse a tolerance under the dtype's round-off floor: the error estimates (Newton corrections computed in
    that dtype) cannot fall below a few float spacings, so such a run would always end not_converged."""
    floor = ROUND_OFF_FLOOR * float(np.finfo(dtype).eps)
    for key, value in asdict(tolerance).items():
        if value < floor:
            raise ConfigError(
                f"equation.tolerance.{key}={value:g} is invalid with dtype={dtype}: its round-off floor is about "
                f"{floor:.1g}; allowed equation.tolerance.{key} >= {floor:.1g}, or dtype=float64"
            )


CONTINUED = "equation.boundary"  # what `blowup continue` can follow (Burgers.continuation)
MAX_CONTINUED_PROFILE = 2

BRACKET_EDGE = 0.1  # λ this close to an edge of its bracket (as a fraction of its width) is a bad start


def exact_lambda(k: int) -> float:
    return 1.0 / (2 * k + 2)


def smooth_order(k: int) -> int:
    """The residual's Taylor coefficients imposed near X = 0: orders 0..2k+4, one more than λ_k needs.

    Away from λ_k the ODE's solutions carry a |X|^(1+1/λ) term, so U^(2k+4) is singular like
    |X|^(1/λ - 2k - 3) for λ between 1/(2k+3) and λ_k, and orders up to 2k+3 see it. Towards the
    bracket's lower edge 1/(2k+3) that singularity fades to nothing, and networks settled there.
    Order 2k+4 sees U^(2k+5), singular like |X|^(-1) at that edge (`bad_basin` catches the rest)."""
    return 2 * k + 4


def local_radius_for(k: int) -> float:
    """Where the smoothness conditions are imposed: a narrow interval for low k, a wider one from k = 5 on.

    Away from λ_k the ODE's solutions differ from smooth ones by |X|^(1+1/λ) terms, which vanish to round-off
    near the origin once 1 + 1/λ is large: a narrow interval then cannot tell a wrong λ from the right one.
    Wider converges more slowly, so it is used only where needed (the README has the measurements)."""
    return NARROW_RADIUS if k <= 4 else 0.3


def handoff_for(k: int) -> float:
    """The multiple of the tolerance at which a PINN study hands the first network to a later stage (optim.handoff:
    null): 100 up to k = 4, 1000 from k = 5 on.

    From k = 5 the first network's smoothness rows span the wide interval (`local_radius_for`), and its
    Levenberg-Marquardt phase takes its last factor of 10 slowly, where a later stage (on the narrow interval) takes
    it quickly; LM on the narrow interval (`lm_local_radius`) hands off sooner but leaves a stage more than it can
    finish. Below k = 5, an earlier handoff leaves the stage more to do than it saves (the README has the
    measurements)."""
    return 100.0 if k <= 4 else 1000.0


def first_network_svd_for(k: int) -> str:
    """How the first network's Levenberg-Marquardt phases factor the Jacobian: its full SVD up to k = 4, through
    its numerical range from k = 5 on (`SVDSolve`; later stages always through the range).

    The two give the same steps to round-off, and LM's path through its crawl is chaotic in round-off, so they
    hand the later stage different first networks. Measured over seeds 0-5 at k = 4, the stage reached the
    multi-stage goal (which the study asks up to k = 4) from the full SVD's first networks on 5 seeds of 6 and
    from the range's on 2; from k = 5, where that goal is not asked, the range saves LM minutes a run (the README
    has the measurements)."""
    return "full" if k <= 4 else "range"


def stage_accept_at_for(k: int) -> float:
    """The multiple of the tolerance at which a PINN study accepts its last network stage (optim.stage.accept_at:
    null): 1e-3 up to k = 5, the multi-stage goal (λ 1e-13, profile 1e-12), which the stage reaches there on every
    seed tried; 1 (the tolerance) from k = 6 on, where it reaches that goal on one seed in three and spends half its
    time, minutes, on the profile's last digit or two (the README has the measurements)."""
    return 1e-3 if k <= 5 else 1.0


def lambda_bracket(cfg: BurgersConfig, k: int) -> tuple[float, float]:
    """Where λ may move: the configured bracket, else (λ_{k+1/2}, λ_{k-1/2}) = (1/(2k+3), 1/(2k+1))."""
    return tuple(cfg.lambda_bracket) if cfg.lambda_bracket else (1 / (2 * k + 3), 1 / (2 * k + 1))


def exact_profile(x: np.ndarray, k: int, scale: float = 1.0) -> np.ndarray:
    """Root of U + c U^(2k+3) = -X, c = `scale` > 0 (1: the profile with U(±2) = ∓1; every c is one, the scaling
    symmetry): increasing in U, with |U| ≤ |X|, so bisection is safe; Newton-polished."""
    p = 2 * k + 3
    lo, hi = -np.abs(x) - 1.0, np.abs(x) + 1.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        above = mid + scale * mid**p > -x
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    u = 0.5 * (lo + hi)
    for _ in range(2):
        u = u - (u + scale * u**p + x) / (1 + p * scale * u ** (p - 1))
    return u


def exact_scale(k: int, x: float, u: float) -> float:
    """c such that U + c U^(2k+3) = -X passes through (x, u): the exact profile with that boundary value."""
    return (-x - u) / u ** (2 * k + 3)


def tanh_guess(x: Tensor, right: float, u_right: float) -> Tensor:
    """-A tanh(X / A) with A tanh(right / A) = -u_right: U'(0) = -1, the slope of every smooth profile.

    From the embedding's own start, U'(0) = -1/2, a network can fall to the other root of the order-1
    condition U'(0)(1 + U'(0)) = 0 and never find a profile. tanh rather than the stable profile
    (U + U^3 = -X): that one's complex singularities lie close to the real axis, so its high-order
    smoothness rows are huge wherever the local interval is wide."""
    lo, hi = 1e-3, 10 * right  # A tanh(right / A) increases with A: bisection
    for _ in range(100):
        a = (lo + hi) / 2
        lo, hi = (a, hi) if a * np.tanh(right / a) < -u_right else (lo, a)
    return -a * torch.tanh(x / a)


def residual(x: Jet, u: Jet, lam) -> Jet:
    """F = -λU + ((1+λ)X + U) U' as a jet: its Taylor coefficients are all its X-derivatives."""
    return -lam * u + ((1 + lam) * x + u) * u.derivative()


def odd_part(net: nn.Module, x):
    """N(x) - N(-x), in one pass over both signs (half the per-call overhead of two passes)."""
    if isinstance(x, Jet):
        n = x.coeffs.shape[1]
        both = net(Jet(torch.cat([x.coeffs, -x.coeffs], dim=1))).coeffs
        return Jet(both[:, :n] - both[:, n:])
    both = net(torch.cat([x, -x]))
    return both[: len(x)] - both[len(x) :]


def stability_spec(
    lin: Linearization, k: int, domain=(-2.0, 2.0), parity="odd", perturbed=None, scale: float = 1.0
) -> CollocationStability:
    """The stability analysis of a Burgers profile (`blowup stability`). Symmetries of Burgers' equation give four
    modes, with eigenvalues in λ: space translation 1 + λ, time translation 1, Galilean λ, scaling 0.
    About the exact profile U + c U^(2k+3) = -X (c = `scale`) every smooth mode is known:
    φ_j = U^j / (1 + (2k+3) c U^(2k+2)), ν_j = 1 + λ - jλ. The Taylor action at X = 0 is taken to order 4k + 8:
    every ν_j > -1 - λ."""
    lam = lin.scalar
    symmetries = [
        Symmetry("translation", 1 + lam, "even"),
        Symmetry("time", 1.0, "odd"),
        Symmetry("galilean", lam, "even"),
        Symmetry("scaling", 0.0, "odd"),
    ]

    def eigenfunction(j):
        def phi(x):
            u = exact_profile(x, k, scale)
            return u**j / (1 + (2 * k + 3) * scale * u ** (2 * k + 2))

        return phi

    exact = [
        ExactMode(j, (2 * k + 3 - j) / (2 * k + 2), "odd" if j % 2 else "even", eigenfunction(j))
        for j in range(2 * k + 8)
    ]
    return CollocationStability(lin, domain, parity, symmetries, exact, 0.0, 4 * k + 8, perturbed)


class BurgersProfile(nn.Module):
    """U(X) = embedding of an MLP; works on tensors and on jets alike."""

    def __init__(self, net: nn.Module, embedding: str, domain, boundary):
        super().__init__()
        self.net, self.embedding = net, embedding
        (self.x0, self.x1), (self.u0, self.u1) = domain, boundary

    def forward(self, x):
        if self.embedding == "none":
            return self.net(x)
        h = odd_part(self.net, x)  # the profiles are odd
        if self.embedding == "odd":
            return h
        line = self.u0 + (self.u1 - self.u0) / (self.x1 - self.x0) * (x - self.x0)
        half = (self.x1 - self.x0) / 2
        return line + (x - self.x0) * (self.x1 - x) * (1 / half**2) * h


class Burgers(LaterStages, Problem):
    plot_name = "profile.png"
    judges_results = True  # the Newton estimates say when the network is in reach of round-off
    profile_axis = "profile k (Burgers: derivatives to order 2k+4)"
    evaluation_keys = ("refine", "tolerance.", "eval_points")

    def __init__(self, cfg: BurgersConfig, profile: int, sobolev: int, backend: str):
        super().__init__()
        self.cfg, self.k, self.sobolev, self.backend = cfg, profile, sobolev, backend
        lo, hi = lambda_bracket(cfg, profile)
        self.lam_lo, self.lam_hi = lo, hi
        self.lam_raw = nn.Parameter(torch.zeros(()))  # λ = lo + (hi - lo) sigmoid(raw): starts mid-bracket
        net = MLP(1, 1, cfg.model.width, cfg.model.depth)
        self.u = BurgersProfile(net, cfg.embedding, cfg.domain, cfg.boundary)
        half_width = (cfg.domain[1] - cfg.domain[0]) / 2
        self.stages = nn.ModuleList(  # later stages carry no boundary values: the first has them
            BurgersProfile(
                StageNetwork(cfg.model.width, cfg.model.depth, half_width), cfg.embedding, cfg.domain, (0, 0)
            )
            for _ in range(cfg.stages - 1)
        )
        self.phases = self.phases + STAGE_PHASES[: cfg.stages - 1]
        self.stage_trial = StageTrial()  # optim.stage's damping, frequencies and trial steps, set by `build`
        # λ's raw parameter as each later stage found it (column 0) and as its phase left it (column 1; NaN until then)
        self.register_buffer("stage_lambda_raw", torch.full((cfg.stages - 1, 2), float("nan")))
        dtype = torch.get_default_dtype()
        self.local_radius = local_radius_for(profile) if cfg.local_radius is None else cfg.local_radius
        self.handoff = handoff_for(profile)
        self.stage_accept_at = stage_accept_at_for(profile)
        self.first_network_svd = first_network_svd_for(profile)
        self.register_buffer("x_global", self.global_grid(cfg.points))
        # a later stage's global points (not saved: they follow from the config, like the phase that uses them)
        self.register_buffer("x_stage_global", self.global_grid(cfg.stage_points or cfg.points), persistent=False)
        self.register_buffer("x_local", self.local_grid(self.local_radius))
        if cfg.initial_guess != "none":
            self.phases = ("guess",) + self.phases
            self.register_buffer(
                "u_guess",
                tanh_guess(self.x_global.flatten(), cfg.domain[1], cfg.boundary[1]).view(-1, 1),
                persistent=False,
            )
        self.register_buffer("x_origin", torch.zeros(1, 1, dtype=dtype))
        self.register_buffer("x_boundary", torch.tensor(cfg.domain, dtype=dtype).view(-1, 1))
        self.register_buffer("u_boundary", torch.tensor(cfg.boundary, dtype=dtype).view(-1, 1))
        self.register_buffer("sobolev_scale", torch.empty(sobolev + 1, dtype=dtype))
        self.smooth_order = smooth_order(profile)
        self.register_buffer("smooth_scale", torch.empty(self.smooth_order + 1, dtype=dtype))
        self.weigh(cfg.weights)

    def global_grid(self, points: int) -> Tensor:
        """The global collocation points: `points` on the domain, or its X >= 0 half where U is odd (the residual is
        odd too: points at -X repeat those at X, and make J rank-deficient)."""
        dtype = torch.get_default_dtype()
        if self.cfg.embedding == "none":
            return torch.linspace(*self.cfg.domain, points, dtype=dtype).view(-1, 1)
        return torch.linspace(0, self.cfg.domain[1], points // 2 + 1, dtype=dtype).view(-1, 1)

    @property
    def x_residual(self) -> Tensor:
        """The global points of the phase under way: a later network stage's own (equation.stage_points), else the
        first network's."""
        return self.x_stage_global if self.phase in STAGE_PHASES else self.x_global

    def local_grid(self, radius: float) -> Tensor:
        """The smoothness points: [-radius, radius], or [0, radius] where U is odd (the rows at -X repeat X's)."""
        dtype, n = torch.get_default_dtype(), self.cfg.local_points
        if self.cfg.embedding == "none":
            return torch.linspace(-radius, radius, n, dtype=dtype).view(-1, 1)
        return torch.linspace(0, radius, n // 2 + 1, dtype=dtype).view(-1, 1)

    def weigh(self, w: BurgersWeights, scale: float = 1.0) -> None:
        """Row scales from weights: sqrt(Q_j / N) on the global points, sqrt(w / N_local) near the origin; all
        divided by `scale`, the size of the residual a later network stage is fitted to."""
        q = torch.tensor([w.residual] + [w.sobolev] * self.sobolev)
        self.sobolev_scale.copy_((q / len(self.x_residual)).sqrt() / scale)
        self.smooth_scale.fill_((w.smooth / len(self.x_local)) ** 0.5 / scale)
        self.origin_scale, self.boundary_scale = w.origin**0.5 / scale, w.boundary**0.5 / scale

    def start_phase(self, phase: str) -> None:
        """`lm_weights` in the Levenberg-Marquardt phases, `weights` before them; in a later network stage's phase,
        that stage alone trains (with λ), on rows divided by its scale, its smoothness rows on
        `stage_local_radius`.

        Adam and L-BFGS need the smoothness rows to dominate, or λ settles on a wrong value. Levenberg-Marquardt
        needs the global rows level with them, or it leaves them behind and the profile error stalls (the
        README's "The mathematics" has the measurements). A stage's rows are divided by its scale so that its
        Levenberg-Marquardt damping means what it means for the first network's (the damping is absolute).
        The wide interval that lets the first network tell λ_k from its neighbours at k >= 5 (`local_radius_for`)
        holds a later stage back: its order-(2k+4) Taylor rows far from X = 0 are stiff against any feature that
        fits the residual, and a stage near λ_k needs only the narrow one (the README has the measurements)."""
        super().start_phase(phase)
        stage = self.stage_number(phase)
        self.x_local.copy_(self.local_grid(self.phase_local_radius(phase, stage)))
        for number, module in enumerate([self.u, *self.stages], start=1):
            module.requires_grad_(number == stage)
        lm_weights = {key: value for key, value in asdict(self.cfg.lm_weights).items() if value is not None}
        weights = replace(self.cfg.weights, **lm_weights) if phase == "lm" or stage > 1 else self.cfg.weights
        if stage > 1 and not self.stages[stage - 2].net.begun:  # a dropped stage is not begun again on a resume
            self.begin_stage(stage, weights)
        self.weigh(weights, self.stages[stage - 2].net.scale.item() if stage > 1 else 1.0)

    def phase_local_radius(self, phase: str, stage: int) -> float:
        """The smoothness rows' interval in `phase`: a later stage's, the first network's LM phase's, or its own."""
        if stage > 1:
            return self.cfg.stage_local_radius
        if phase == "lm" and self.cfg.lm_local_radius is not None:
            return self.cfg.lm_local_radius
        return self.local_radius

    def probe_copy(self) -> Burgers:
        """A copy whose later stages begin at the first of the frequencies, untried (the same rows and step time)."""
        probe = super().probe_copy()
        probe.stage_trial = replace(self.stage_trial, frequencies=self.stage_trial.frequencies[:1])
        return probe

    def begin_stage(self, stage: int, weights: BurgersWeights) -> None:
        """A later network stage's scale, the largest residual the stages before it leave on the fine grid (at least
        the dtype's smallest number, so that the rows can be divided by it), and its frequency, the one that gains
        most in a few trial steps (`blowup.solvers.stages`); and λ as they left it, for the figures of each stage."""
        residual_max = self.fine_residual(self.active_stages(), self.lam.detach()).abs().max()
        scale = max(float(residual_max), float(torch.finfo(residual_max.dtype).tiny))
        self.weigh(weights, scale)
        begin_stage(self, self.stages[stage - 2].net, scale, stage, self.stage_trial)
        self.stage_lambda_raw[stage - 2, 0] = self.lam_raw.detach()

    stage_dropped = "the network's error estimates at {with_it:.3g} x the tolerance with it, {without:.3g} x without"

    @property
    def first_network(self) -> nn.Module:
        return self.u

    def stage_measure(self) -> float:
        """A later stage is kept only if it lowered the network's own error estimates (`network_margin`): one that
        bought nothing, or left the network worse, is dropped."""
        return self.network_margin()

    def network_margin(self) -> float:
        """The network's own error estimates as a multiple of the tolerance, the larger of the two (≤ 1: accepted)."""
        evaluation = self.evaluate()
        return max(evaluation[f"{name}_estimate_network"] / limit for name, limit in asdict(self.cfg.tolerance).items())

    def active_stages(self) -> list[BurgersProfile]:
        return [stage for stage in self.stages if stage.net.active]

    def profile(self, x, stages: list[BurgersProfile] | None = None):
        """U: the first network plus `stages` (default: the later stages in the composite), tensors and jets
        alike."""
        u = self.u(x)
        for stage in self.active_stages() if stages is None else stages:
            u = u + stage(x)
        return u

    def fine_residual(self, stages: list[BurgersProfile], lam) -> Tensor:
        """The residual of the first network plus `stages` at λ = `lam` on the fine grid; by n-TangentProp whatever
        the backend, since it is taken without grad (nested autograd needs it)."""
        x = self._fine_grid()
        with torch.no_grad():
            jet = input_jet(partial(self.profile, stages=stages), x, 1, "ntp")
            return residual(Jet.variable(x, 1), jet, lam).coeffs[0]

    def stage_figures(self) -> list[dict]:
        """What each network stage bought: the first network alone, then each later stage begun (kept or dropped)
        added to the kept ones before it, with λ as its phase left it (as it is now, for one still training),
        against the exact profile; the parameters it added and the frequency it was begun at."""
        x = self._fine_grid()
        exact_u = torch.from_numpy(exact_profile(x.flatten().cpu().numpy(), self.k))
        figures = []
        for number, (module, members, raw, kept) in enumerate(self.stage_rows(), start=1):
            lam = self.lam_of(torch.tensor(raw)).item()
            with torch.no_grad():
                u = self.profile(x, members)
            figures.append(
                {
                    "stage": number,
                    "kept": kept,
                    "lambda_error": abs(lam - exact_lambda(self.k)),
                    "profile_max_error": float((u.flatten().cpu().double() - exact_u).abs().max()),
                    "residual_max": float(self.fine_residual(members, lam).abs().max()),
                    "parameters": sum(p.numel() for p in module.parameters()),
                    "frequency": None if module is self.u else float(module.net.frequency),
                }
            )
        return figures

    @property
    def parity(self) -> str | None:
        """ "odd" where the embedding makes U odd (the refinement, stability and continuation use it), else None."""
        return None if self.cfg.embedding == "none" else "odd"

    @property
    def lam(self) -> Tensor:
        return self.lam_of(self.lam_raw)

    def lam_of(self, raw: Tensor) -> Tensor:
        """λ from its raw parameter: inside the bracket whatever the raw value."""
        return self.lam_lo + (self.lam_hi - self.lam_lo) * torch.sigmoid(raw)

    def residual_jet(self, x: Tensor, order: int) -> Jet:
        """Residual and its first `order` derivatives at x (needs U to order + 1)."""
        return residual(Jet.variable(x, order + 1), input_jet(self.profile, x, order + 1, self.backend), self.lam)

    def terms(self) -> dict[str, tuple[Tensor, ...]]:
        if self.phase == "guess":
            return {"guess": (self.x_global, self.u_guess)}
        terms = {"residual": (self.x_residual,), "smooth": (self.x_local,)}
        if self.cfg.weights.origin:
            terms["origin"] = (self.x_origin,)
        if self.cfg.embedding != "odd_boundary":
            terms["boundary"] = (self.x_boundary, self.u_boundary)
        return terms

    def forward(self, term: str, x: Tensor, *targets: Tensor) -> Tensor:
        if term == "residual":  # F and its first `sobolev` derivatives on the global points
            return self.residual_jet(x, self.sobolev).derivatives()[..., 0].T * self.sobolev_scale
        if term in ("smooth", "origin"):  # Taylor coefficients F^(j)/j!, j = 0..smooth_order: the condition selecting
            # λ_k; "origin" is X = 0 alone, weighted up, since |λ - λ_k| follows F^(2k+3)(0) directly
            scale = self.smooth_scale if term == "smooth" else self.origin_scale
            return self.residual_jet(x, self.smooth_order).coeffs[..., 0].T * scale
        if term == "boundary":
            return (self.profile(x) - targets[0]) * self.boundary_scale
        if term == "guess":
            return (self.u(x) - targets[0]) / len(self.x_global) ** 0.5
        raise KeyError(term)

    def scalars(self) -> dict[str, Tensor]:
        return {"lambda": self.lam}

    def _fine_grid(self):
        x = torch.linspace(
            *self.cfg.domain, self.cfg.eval_points, dtype=self.x_global.dtype, device=self.x_global.device
        )
        return x.view(-1, 1)

    def linearization(self) -> Linearization:
        """The residual linearised about the trained network (blowup.solvers.newton), which works on the CPU:
        the network's jets are taken where it lives and handed back on the points' device."""

        def network(x: Tensor, order: int) -> Jet:
            return Jet(input_jet(self.profile, x.to(self.x_global), order, "ntp").coeffs.to(x))

        return Linearization(residual, network, self.lam.item())

    def refinement(self) -> Refinement:
        """Newton corrections about the trained state (once per state: plots and summaries share it)."""

        def compute() -> Refinement:
            spec = ProfileSpec(
                domain=tuple(self.cfg.domain),
                boundary=dict(zip(self.cfg.domain, self.cfg.boundary)),
                smooth_order=2 * self.k + 3,
                parity=self.parity,
            )
            if spec.parity == "odd":
                spec.boundary = {x: u for x, u in spec.boundary.items() if x > 0}
            return refine(self.linearization(), spec, self.cfg.refine)

        return self.once_per_state("refinement", compute)

    def derivative_order(self) -> int:
        """The smoothness rows' order 2k+4 (`smooth_order`), or the Sobolev rows' if higher."""
        return max(self.smooth_order, self.sobolev)

    def bad_basin(self) -> str | None:
        """λ pressed against an edge of its bracket: near the lower edge 1/(2k+3) the wrong-λ solutions
        are smooth to almost the order the loss checks, and a network that settles there stays. Adam and L-BFGS
        can end there; so can Levenberg-Marquardt, whose global rows weigh more than before it (`start_phase`) and
        can carry λ there from a rough start."""
        lo, hi = self.lam_lo, self.lam_hi
        lam = self.lam.item()
        edge = min(lam - lo, hi - lam) / (hi - lo)
        if edge < BRACKET_EDGE:
            return f"lambda = {lam:.6g} within {edge:.1%} of its bracket ({lo:.6g}, {hi:.6g})"
        return None

    def reinitialize(self, seed: int) -> None:
        super().reinitialize(seed)
        self.reset_stages()
        with torch.no_grad():
            self.lam_raw.zero_()  # mid-bracket, as at the start

    def reported_linearization(self) -> Linearization:
        """The residual about the reported profile: the network plus the applied Newton corrections."""
        lin = self.linearization()
        for correction in self.refinement().applied if self.cfg.refine else []:
            lin = lin.corrected(correction)
        return lin

    def stability(self, right: float | None = None) -> CollocationStability:
        """L = -dF/dU about the reported profile (`stability_spec`), on the run's domain: its ends are the
        boundary conditions the profile was solved with."""
        if right is not None:
            raise NotImplementedError(f"Burgers' domain {tuple(self.cfg.domain)} is fixed by its boundary values")
        lin = self.reported_linearization()
        perturbed = lin.corrected(self.refinement().next) if self.cfg.refine else None
        return stability_spec(lin, self.k, tuple(self.cfg.domain), self.parity, perturbed)

    def continuation(self, key: str):
        """The boundary values, scaled together (μ = U at the left end): a normalisation, not a physical parameter.
        The scaling symmetry makes every U + c U^(2k+3) = -X (c > 0) a profile, so along this branch λ stays λ_k
        and, for the odd default, the profile is known in closed form at every point: `blowup continue` tested
        against an exact answer everywhere. Solved as one Chebyshev system (`blowup.solvers.chebyshev_branch`),
        started from the run's reported profile."""
        if key != CONTINUED:
            raise ConfigError(
                f"--param {key!r} is invalid: allowed {CONTINUED} (U at the left end, the right end's value scaled "
                "with it)"
            )
        if self.k > MAX_CONTINUED_PROFILE:
            raise ConfigError(
                f"profile={self.k} is invalid for blowup continue: allowed profile <= {MAX_CONTINUED_PROFILE} (the "
                f"smoothness row of order 2k+3 comes from the Chebyshev series' own derivatives at X = 0, whose "
                f"round-off loses the branch from k = 3 on)"
            )
        (left, right), (u_left, u_right) = self.cfg.domain, self.cfg.boundary
        if u_left == 0:
            raise ConfigError(
                f"{CONTINUED}={list(self.cfg.boundary)} is invalid for blowup continue: allowed U(left) != 0"
            )
        parity = self.parity
        grid = self._fine_grid().flatten().cpu().double().numpy()
        odd = left == -right and u_left == -u_right

        def spec_at(mu: float) -> ProfileSpec:
            return ProfileSpec((left, right), {left: mu, right: u_right * mu / u_left}, 2 * self.k + 3, 0.0, parity)

        def scale_at(mu: float) -> float:
            return exact_scale(self.k, right, u_right * mu / u_left)

        def exact_at(mu: float) -> tuple[float, np.ndarray]:
            c = scale_at(mu)  # c <= 0: no smooth profile has these boundary values
            return exact_lambda(self.k), exact_profile(grid, self.k, c) if c > 0 else np.full_like(grid, np.nan)

        def unstable(lin: Linearization, mu: float) -> float:
            scale = scale_at(mu) if odd else 1.0
            scale = scale if scale > 0 else 1.0  # only the exact modes' plot uses it
            return stability_spec(lin, self.k, (left, right), parity, scale=scale).analyse().unstable_count()

        degree = int(1.25 * math.log(1e16) / chebyshev_rate(self.k)) | 1
        system = ChebyshevBranch(
            residual, spec_at, degree, int(1.5 * degree) | 1, grid, exact_at if odd else None, unstable
        )
        lin = self.reported_linearization()
        start = system.fit(lambda xs: lin.values(torch.from_numpy(xs).view(-1, 1)), lin.scalar)
        x, converged = system.solve(start, u_left)
        if not converged:
            raise RuntimeError("the run's profile does not converge as a Chebyshev system: train it further first")
        return system, x, u_left

    def _stages(self) -> dict[str, tuple[float, np.ndarray, np.ndarray, float, float]]:
        """Per stage ("network", and "refined" if refining): λ, U and |F| on the fine grid, and the
        estimates of their errors: the size of the next Newton correction, floored at float spacing,
        and for U at least max |F| on the fine grid. The correction only sees its collocation points;
        a network feature narrower than their spacing (a bad basin's near-singularity at X = 0) would
        pass unseen, and leave the residual between the points to say so."""
        x = self._fine_grid()
        grid = x.flatten().cpu().numpy()
        lin, ref = self.linearization(), self.refinement()
        with torch.no_grad():
            u = self.profile(x).flatten().cpu().double().numpy()
        corrections = ref.applied + [ref.next]
        stages = {}
        for name in ("network", "refined") if self.cfg.refine else ("network",):
            shift, stage, correction = (
                (0, lin, corrections[0])
                if name == "network"
                else (ref.profile(grid), self.reported_linearization(), ref.next)
            )
            res = np.abs(stage.residual_and_scalar_column(x.double().cpu(), 0)[0][0].numpy())
            floor = np.spacing(1.0) * max(1.0, float(np.max(np.abs(u))))
            stages[name] = (
                stage.scalar,
                u + shift,
                res,
                max(correction.profile_error(grid), float(res.max()), floor),
                max(abs(correction.delta_scalar), float(np.spacing(stage.scalar))),
            )
        return stages

    def solution(self) -> pd.DataFrame:
        stages = self._stages()
        xs = self._fine_grid().flatten().cpu().numpy()
        u = stages["refined" if "refined" in stages else "network"][1]
        return pd.DataFrame({"X": xs, "U": u, "U_network": stages["network"][1], "U_exact": exact_profile(xs, self.k)})

    def evaluate(self) -> dict:
        """The reported result (refined if `refine`) and the network's own, each with its error estimates."""
        exact_u = exact_profile(self._fine_grid().flatten().cpu().numpy(), self.k)
        out = {"profile": self.k, "lambda_exact": exact_lambda(self.k)}
        stages = self._stages()
        for name in ("network", "refined"):
            if name not in stages:
                continue
            lam, u, res, profile_estimate, lambda_estimate = stages[name]
            fields = {
                "lambda": lam,
                "lambda_error": abs(lam - exact_lambda(self.k)),
                "profile_max_error": float(np.max(np.abs(u - exact_u))),
                "residual_max": float(res.max()),
                "profile_error_estimate": profile_estimate,
                "lambda_error_estimate": lambda_estimate,
            }
            out |= {f"{key}_network": value for key, value in fields.items()} if name == "network" else {}
            out |= fields  # the last stage is the result
        if self.stages:
            out["network_stages"] = self.stage_figures()
        return out

    def failure(self, evaluation: dict, slack: float = 1.0) -> str | None:
        if not self.lam_lo < evaluation["lambda"] < self.lam_hi:
            return f"lambda {evaluation['lambda']:.6g} left its bracket ({self.lam_lo:.6g}, {self.lam_hi:.6g})"
        for name, limit in asdict(self.cfg.tolerance).items():
            value = evaluation[f"{name}_estimate"]
            if not value <= limit * slack:  # NaN fails too
                return f"{name}_estimate {value:.2e} > tolerance {limit * slack:.0e}"
        return None

    def plot(self, metrics: pd.DataFrame, path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        stages = self._stages()
        sol = self.solution()
        fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
        ax[0].plot(sol.X, sol.U_exact, "k-", lw=3, alpha=0.35, label="exact")
        ax[0].plot(sol.X, sol.U, "C0--", label="PINN" + (" + Newton correction" if "refined" in stages else ""))
        ax[0].set(title=f"Burgers profile k={self.k}", xlabel="X", ylabel="U")
        ax[0].legend()
        floor = 1e-17  # exact zeros (the boundary values are built in) are drawn on the floor as dots
        for i, (name, (_, u, res, _, _)) in enumerate(stages.items()):
            for j, (what, values) in enumerate((("|U - U_exact|", np.abs(u - sol.U_exact)), ("|residual|", res))):
                ax[1].semilogy(sol.X, np.maximum(values, floor), f"C{2 * i + j}-", lw=1, label=f"{what}, {name}")
                zero = values == 0
                ax[1].semilogy(sol.X[zero], np.full(zero.sum(), floor), f"C{2 * i + j}o", ms=3)
        ax[1].set(title="errors (exact zeros drawn at 1e-17)", xlabel="X", ylim=(floor / 2, None))
        ax[1].legend()
        if len(metrics):
            ax[2].semilogy(metrics.step, np.maximum((metrics["lambda"] - exact_lambda(self.k)).abs(), floor))
        ax[2].set(title=f"|λ - λ_k|, λ_k = {exact_lambda(self.k):.6g}", xlabel="step")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def build(cfg: DictConfig) -> Burgers:
    problem = Burgers(typed_config(cfg), cfg.profile, cfg.sobolev, cfg.backend.name)
    stage = cfg.optim.stage
    problem.stage_trial = StageTrial(stage.damping, tuple(stage.frequencies), stage.trial_steps)
    return problem
