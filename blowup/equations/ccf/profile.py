"""Self-similar profiles of the Córdoba-Córdoba-Fontelos model θ_t + (Hθ) θ_x = 0, by Newton on a log grid.

With θ = (1 - t)^λ Θ(x / (1 - t)^(1+λ)) the profile solves -λΘ + ((1+λ) y + HΘ) Θ' = 0 on the whole line.
Θ is even (θ even is preserved by the equation) and Θ(0) = 0 (the equation at y = 0). In s = log y with
q = Θ / y (`blowup.equations.ccf.hilbert`), dividing by y:

    R(q, λ) = -λ q + (1 + λ + T q) (q + q_s) = 0,      T q = HΘ / y.

Near y = 0 the transport speed (1+λ) y + HΘ vanishes; with c = 1 + λ + T q(-∞) the equation leaves q ~ e^(ps),
p = λ / c - 1, that is Θ ~ |y|^(1+p). Smoothness at the origin (Θ ~ y²) is the scalar condition c = λ/2,
T q(-∞) = -(1 + λ/2): it selects λ, as smoothness selects λ_k for Burgers; without it every λ near a profile
has a non-smooth one. As s → +∞, q ~ e^((b-1)s) with b = λ/(1+λ): Θ grows like |y|^b. The scaling family
Θ_μ(y) = μ Θ(y/μ) is translation in s; the normalisation puts the maximum of q at y = 1 (q_s(0) = 0).

Unknowns q on the grid and λ; equations: R at every point, smoothness, normalisation. Gauss-Newton on
this consistent over-determined system converges quadratically from a rough start in the profile's basin;
from outside it, it can settle on a least-squares minimum that solves nothing, so convergence also asks that
every equation hold.

Newton, the non-smooth family and its following are the shared solver's (`blowup.solvers.log_profile`);
this module states CCF's equation for it (`CCF_EQUATION`) and binds the solver's functions to it. The unstable
profiles have steep fronts where the transport speed 1 + λ + Tq dips towards zero; the grid's spacing must
resolve them, or their error wraps around the periodic grid and leaves q a plateau at both ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from blowup.problem import Symmetry
from blowup.solvers import log_profile
from blowup.solvers.hilbert import (
    LogGrid,
    derivative,
    derivative_transpose,
    hilbert_over_y,
    hilbert_over_y_transpose,
    operator_matrices,
)
from blowup.solvers.log_profile import DenseBlocks, FamilyScan, ProfileSolve, refine, transport_preconditioner
from blowup.solvers.log_stability import PerturbationClass, second_rate_class

__all__ = [
    "CCF_EQUATION",
    "FamilyScan",
    "ProfileSolve",
    "family_measures",
    "find_profile",
    "jacobian_in_q",
    "linearisation",
    "newton",
    "refine",
    "residual",
    "rough_profile",
    "smooth_in_bracket",
    "smoothness_defect",
    "solve_profile",
    "transport_preconditioner",
]


def residual(q: np.ndarray, lam: float, grid: LogGrid) -> np.ndarray:
    """R = -λq + (1 + λ + Tq)(q + q_s): the profile equation divided by y, at the grid points."""
    return -lam * q + (1 + lam + hilbert_over_y(q, grid)) * (q + derivative(q, grid))


def smoothness_defect(q: np.ndarray, lam: float, grid: LogGrid) -> float:
    """T q(-∞) + 1 + λ/2 (read at the grid's left end): zero exactly when Θ is smooth (~ y²) at the origin."""
    return float(hilbert_over_y(q, grid)[0] + 1 + lam / 2)


def linearisation(q: np.ndarray, lam: float, hilbert: np.ndarray, diff: np.ndarray):
    """Tq, q_s and the dense ∂R/∂q: the dense Newton's Jacobian, and minus the stability operator (`stability`)."""
    tq, qs = hilbert @ q, diff @ q
    identity = np.eye(len(q))
    return tq, qs, -lam * identity + (q + qs)[:, None] * hilbert + (1 + lam + tq)[:, None] * (identity + diff)


class _TransportProducts:
    """∂R/∂q at (q, λ) by FFTs: v ↦ -λv + (q + q_s) Tv + c (v + v_s), c = 1 + λ + Tq, and its transpose; the
    smoothness row is Tv at the left end, ∂R/∂λ = q_s."""

    def __init__(self, q: np.ndarray, lam: float, grid: LogGrid):
        self.lam, self.grid = lam, grid
        self.tq, self.slope = hilbert_over_y(q, grid), derivative(q, grid)
        self.speed, self.omega = 1 + lam + self.tq, q + self.slope
        self.residual = -lam * q + self.speed * self.omega
        self.defect = float(self.tq[0] + 1 + lam / 2)
        self.scalar_column, self.defect_scalar = self.slope, 0.5  # ∂R/∂λ = -q + (q + q_s)

    def apply(self, v: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        tv, vs = hilbert_over_y(v, self.grid), derivative(v, self.grid)
        return -self.lam * v + self.omega * tv + self.speed * (v + vs), tv[0], vs

    def transpose(self, y: np.ndarray, defect_weight: float, plus_derivative: np.ndarray) -> np.ndarray:
        at_left = np.zeros(len(y))
        at_left[0] = defect_weight
        v = -self.lam * y + hilbert_over_y_transpose(self.omega * y + at_left, self.grid) + self.speed * y
        return v + derivative_transpose(self.speed * y + plus_derivative, self.grid)


@dataclass(frozen=True)
class CCFEquation:
    """CCF's profile equation for the shared log-grid solver (`blowup.solvers.log_profile.ProfileEquation`)."""

    scalar_name: str = "lambda"
    stability_sign: float = -1.0  # Θ_τ = -F(Θ): L = -∂R/∂q
    parity: str = "even"

    def origin_speed(self, lam: float) -> float:
        return lam / 2  # c = 1 + λ + Tq(-∞) at the smoothness condition

    def local_rate(self, q: np.ndarray, lam: float, grid: LogGrid) -> np.ndarray:
        return lam - (1 + lam + hilbert_over_y(q, grid))  # -∂R/∂q = λ - c(1 + d/ds) - (q + q_s) T

    def other_classes(self, lam: float) -> list[PerturbationClass]:
        """Odd perturbations φ of the even profile, sampled as f(s) = φ(e^s) (odd, so f ~ e^s at a smooth origin):
        the linearised F = -λΘ + ((1+λ)y + HΘ)Θ' is -λf + c f_s + Ω Tf (Ω = Θ' = q + q_s; H takes the odd φ
        through T as it takes Ω), L = minus that. Space translation, φ = Θ', is its symmetry mode, ν = 1 + λ.
        Near the origin an eigenfunction is A e^s + B e^((2 - ν/c₀)s) (`second_rate_class`); far out, where q and Ω
        have decayed, L ≈ λ - (1 + λ) d/ds, so it decays like e^(-(ν - λ)s/(1 + λ)), slowly just above λ."""

        def operator(q: np.ndarray, lam: float, grid: LogGrid) -> np.ndarray:
            hilbert, diff = operator_matrices(grid)
            speed, omega = 1 + lam + hilbert @ q, q + diff @ q
            return lam * np.eye(len(q)) - speed[:, None] * diff - omega[:, None] * hilbert

        def local_rate(q: np.ndarray, lam: float, grid: LogGrid) -> np.ndarray:
            return np.full(len(q), lam)

        translation = [Symmetry("translation", 1 + lam, "odd")]
        far_field = (lam, 1 + lam)
        return [second_rate_class("odd", operator, translation, local_rate, self.origin_speed(lam), far_field)]

    def linearise(self, q: np.ndarray, lam: float, grid: LogGrid) -> _TransportProducts:
        return _TransportProducts(q, lam, grid)

    def dense(self, q: np.ndarray, lam: float, grid: LogGrid) -> DenseBlocks:
        hilbert, diff = operator_matrices(grid)
        tq, qs, dr_dq = linearisation(q, lam, hilbert, diff)
        return DenseBlocks(-lam * q + (1 + lam + tq) * (q + qs), dr_dq, qs, float(tq[0] + 1 + lam / 2), hilbert[0], 0.5)

    def residual(self, q: np.ndarray, lam: float, grid: LogGrid) -> np.ndarray:
        return residual(q, lam, grid)

    def defect(self, q: np.ndarray, lam: float, grid: LogGrid) -> float:
        return smoothness_defect(q, lam, grid)

    def rough(self, lam: float, grid: LogGrid) -> np.ndarray:
        return rough_profile(lam, grid)

    def measures(self, q: np.ndarray, lam: float, grid: LogGrid) -> dict[str, float]:
        """λ, the exponent p of Θ ~ |y|^(1+p) at the origin (1: smooth), the smoothness defect, the least
        transport speed c = 1 + λ + Tq (the front steepens as it falls), the largest |Ω| = |Θ'| = |q + q_s|, and
        the largest residual on the grid."""
        speed = 1 + lam + hilbert_over_y(q, grid)
        return {
            "lambda": lam,
            "exponent_p": float(lam / speed[0] - 1),
            "smoothness_defect": float(smoothness_defect(q, lam, grid)),
            "speed_min": float(speed.min()),
            "omega_max": float(np.abs(q + derivative(q, grid)).max()),
            "residual_max": float(np.abs(residual(q, lam, grid)).max()),
        }


CCF_EQUATION = CCFEquation()
newton = partial(log_profile.newton, CCF_EQUATION)
smooth_in_bracket = partial(log_profile.smooth_in_bracket, CCF_EQUATION)
find_profile = partial(log_profile.find_profile, CCF_EQUATION)


def family_measures(solve: ProfileSolve) -> dict[str, float]:
    """What the issue asks of a family member, and what shows where the family goes (`CCFEquation.measures`)."""
    return CCF_EQUATION.measures(solve.q, solve.lam, solve.grid)


def jacobian_in_q(q: np.ndarray, lam: float, grid: LogGrid):
    """∂R/∂q as a LinearOperator (the stability operator is its negative) and the transport speed c."""
    operator, lin = log_profile.jacobian_operator(CCF_EQUATION, q, lam, grid)
    return operator, lin.speed


def rough_profile(lam: float, grid: LogGrid) -> np.ndarray:
    """A start with the right ends and size: Θ = Re (1 - iy)^b - 1 (~ -b(b-1)/2 y² at 0, ~ |y|^b at ∞),
    scaled so that its T q(-∞) meets the smoothness condition at this λ, its maximum moved to s = 0."""
    b = lam / (1 + lam)
    y = np.exp(grid.s)
    small = y < 1e-6  # the closed form cancels there; its Taylor term instead
    theta = np.where(small, b * (1 - b) / 2 * y**2, np.real((1 - 1j * y) ** b) - 1)
    q = theta / y
    q = np.interp(grid.s, grid.s - grid.s[np.argmax(q)], q, left=0.0, right=0.0)
    return q * (1 + lam / 2) / (2 / np.pi * q.sum() * grid.spacing)


def solve_profile(lam: float, grid: LogGrid, q: np.ndarray | None = None) -> ProfileSolve:
    """The profile nearest to the start (`rough_profile(lam)` unless q is given) on `grid`."""
    return newton(rough_profile(lam, grid) if q is None else q, lam, grid)
