"""Self-similar profiles of the generalised Constantin-Lax-Majda equation ω_t + a u ω_x = u_x ω, u_x = Hω.

With ω = (1 - t)^(-1) Ω(ξ), ξ = x / (1 - t)^α, the profile solves

    Ω + α ξ Ω' + a U Ω' - Ω HΩ = 0,   U' = HΩ, U(0) = 0,   Ω odd,

α the collapse exponent. In s = log ξ the unknown is p(s) = -Ω(e^s) (positive for the profiles here), which
decays at both ends: like e^s at the origin (Ω smooth and odd) and like e^(-s/α) far out (Ω + αξΩ' ~ 0). The
log-grid operator T (`blowup.solvers.hilbert`) takes p to H(-Ω)(e^s); with S = (I + d/ds)⁻¹ (one FFT), q = S p is
Θ/ξ for the even Θ with Θ' = -Ω, and U = -ξ T q. Dividing nothing, the equation reads

    G(p, α) = -p - (α - a Tq) p_s - p Tp = 0,     q = S p.

At a = -1 this is -(I + d/ds) applied to CCF's residual in q, with α = 1 + λ: the same profiles.

Near the origin p ~ e^(κs) with κ = -(1 + τ)/(α - a τ), τ = Tp(-∞) = Tq(-∞) = -HΩ(0). Smoothness (κ = 1) is
τ = -(1 + α)/(1 - a): the condition that selects α (CCF's Tq(-∞) = -(1 + λ/2) at a = -1). Checked against the
closed forms: a = 0, α = 1, Ω = -2vξ/(ξ² + v²); a = 1/2, α = 1/3, Ω = -(16v³/3) ξ/(ξ² + v²)².

∂G/∂p = -(1 + Tp) - c d/ds + a p_s T S - p T with c = α - a Tq: a transport operator, whose principal part
-c(I + d/ds) one FFT inverts (the preconditioner's speed is -c).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blowup.problem import Symmetry
from blowup.solvers.hilbert import (
    LogGrid,
    derivative,
    derivative_transpose,
    hilbert_over_y,
    hilbert_over_y_transpose,
    operator_matrices,
    quadrature_weights,
    running_integral,
    shifted_derivative_inverse,
    shifted_inverse_matrices,
)
from blowup.solvers.log_profile import DenseBlocks
from blowup.solvers.log_stability import PerturbationClass, second_rate_class


class _Products:
    """∂G/∂p at (p, α) by FFTs, and its transpose; the smoothness row is Tv at the left end."""

    def __init__(self, p: np.ndarray, alpha: float, a: float, grid: LogGrid):
        self.p, self.alpha, self.a, self.grid = p, alpha, a, grid
        self.tq = hilbert_over_y(shifted_derivative_inverse(p, grid), grid)
        self.tp, self.slope = hilbert_over_y(p, grid), derivative(p, grid)
        self.transport = alpha - a * self.tq  # c
        self.speed = -self.transport  # the principal part -c (I + d/ds)
        self.residual = -p - self.transport * self.slope - p * self.tp
        self.defect = float(self.tp[0] + (1 + alpha) / (1 - a))
        self.scalar_column, self.defect_scalar = -self.slope, 1 / (1 - a)

    def apply(self, v: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        grid = self.grid
        tv, vs = hilbert_over_y(v, grid), derivative(v, grid)
        tsv = hilbert_over_y(shifted_derivative_inverse(v, grid), grid)
        dg = -(1 + self.tp) * v - self.transport * vs + self.a * self.slope * tsv - self.p * tv
        return dg, tv[0], vs

    def transpose(self, y: np.ndarray, defect_weight: float, plus_derivative: np.ndarray) -> np.ndarray:
        grid = self.grid
        at_left = np.zeros(len(y))
        at_left[0] = defect_weight
        nonlocal_part = hilbert_over_y_transpose(at_left - self.p * y, grid) + shifted_derivative_inverse(
            hilbert_over_y_transpose(self.a * self.slope * y, grid), grid, sign=-1.0
        )
        return -(1 + self.tp) * y - derivative_transpose(self.transport * y - plus_derivative, grid) + nonlocal_part


@dataclass(frozen=True)
class GCLMEquation:
    """gCLM's profile equation at advection strength a, for the shared log-grid solver."""

    a: float
    scalar_name: str = "alpha"
    stability_sign: float = 1.0  # p_τ = G(p): L = ∂G/∂p
    parity: str = "odd"

    def origin_speed(self, alpha: float) -> float:
        return (alpha + self.a) / (1 - self.a)  # c = α - aτ at τ = -(1 + α)/(1 - a)

    def local_rate(self, p: np.ndarray, alpha: float, grid: LogGrid) -> np.ndarray:
        return -(1 + hilbert_over_y(p, grid))  # ∂G/∂p = -(1 + Tp) - c d/ds + nonlocal

    def other_classes(self, alpha: float) -> list[PerturbationClass]:
        """Even perturbations φ of the odd Ω (CCF's odd ones of θ at a = -1), sampled as χ(s) = ξφ(ξ) at ξ = e^s:
        odd, so χ ~ e^s at a smooth origin, like the profile's own class. With V the velocity φ induces,
        V = -|D|⁻¹φ (the one that decays, as u = -Hθ does for CCF; translating the profile moves it with it),

            L χ = (c - 1 - Tp) χ - c χ_s + a p_s V - p Tχ,   V = (2/π) ∫ t χ(t) dt + ∫_-∞^s Tχ,

        from ξ·(linearised G) (ξφ' = χ_s - χ, ξHφ = Tχ, V(0) = (1/π) ∫ log|y| φ(y) dy, V_s = Tχ). Integrating
        the linearised equation over the line gives ν m = (α - 1) m for the mass m = ∫φ = 2∫χ ds: every mode but
        one at ν = α - 1 has m = 0, which the formulas above assume (H(χ/ξ) = Hχ/ξ holds only then), so L acts
        on m = 0, and the discarded direction gets ν = -1. Space translation, φ = Ω' (χ = -p_s), is the symmetry
        mode, ν = α. Near the origin an eigenfunction is A e^s + B e^((2 - ν/c₀)s), as for CCF's odd class; far out,
        where p, Tp and aV/ξ have decayed, L ≈ (α - 1) - α d/ds, so it decays like e^(-(ν - α + 1)s/α)."""

        def operator(p: np.ndarray, alpha: float, grid: LogGrid) -> np.ndarray:
            hilbert, diff = operator_matrices(grid)
            lin = self.linearise(p, alpha, grid)
            weights = quadrature_weights(grid)
            velocity = running_integral(hilbert, grid)  # V's columns: (2/π) ∫ t χ dt added below
            velocity += (2 / np.pi) * (grid.s * weights)[None, :]
            jacobian = self.a * lin.slope[:, None] * velocity
            jacobian -= lin.transport[:, None] * diff
            jacobian -= p[:, None] * hilbert
            jacobian[np.diag_indices(len(p))] += lin.transport - 1 - lin.tp
            unit = weights / np.linalg.norm(weights)  # L restricted to m = 0: P L P - (I - P), P = I - unit unitᵀ
            jacobian -= np.outer(unit, unit @ jacobian)
            jacobian -= np.outer(jacobian @ unit, unit)
            jacobian -= np.outer(unit, unit)
            return jacobian

        def local_rate(p: np.ndarray, alpha: float, grid: LogGrid) -> np.ndarray:
            lin = self.linearise(p, alpha, grid)
            return lin.transport - 1 - lin.tp

        translation = [Symmetry("translation", alpha, "even")]
        far_field = (alpha - 1, alpha)
        return [second_rate_class("even", operator, translation, local_rate, self.origin_speed(alpha), far_field)]

    def linearise(self, p: np.ndarray, alpha: float, grid: LogGrid) -> _Products:
        return _Products(p, alpha, self.a, grid)

    def dense(self, p: np.ndarray, alpha: float, grid: LogGrid) -> DenseBlocks:
        hilbert, diff = operator_matrices(grid)
        _, hilbert_of_inverse = shifted_inverse_matrices(grid)
        lin = self.linearise(p, alpha, grid)
        jacobian = (
            -np.diag(1 + lin.tp)
            - lin.transport[:, None] * diff
            + self.a * lin.slope[:, None] * hilbert_of_inverse
            - p[:, None] * hilbert
        )
        return DenseBlocks(lin.residual, jacobian, lin.scalar_column, lin.defect, hilbert[0], lin.defect_scalar)

    def residual(self, p: np.ndarray, alpha: float, grid: LogGrid) -> np.ndarray:
        tq = hilbert_over_y(shifted_derivative_inverse(p, grid), grid)
        return -p - (alpha - self.a * tq) * derivative(p, grid) - p * hilbert_over_y(p, grid)

    def defect(self, p: np.ndarray, alpha: float, grid: LogGrid) -> float:
        """Tp(-∞) + (1 + α)/(1 - a), read at the grid's left end: zero exactly when Ω is smooth at the origin."""
        return float(hilbert_over_y(p, grid)[0] + (1 + alpha) / (1 - self.a))

    def rough(self, alpha: float, grid: LogGrid) -> np.ndarray:
        """p = sin(min(1, 1/α) atan ξ) / (1 + ξ²)^(1/(2α)): smooth and odd at the origin, ξ^(-1/α) far out, and
        exact at both closed forms (ξ/(1 + ξ²) at α = 1, ξ/(1 + ξ²)² at α = 1/3). For α > 1 it is Θ' for CCF's
        rough Θ = Re((1 - iξ)^b - 1)/b, b = 1 - 1/α, the shape from which Newton enters the steep unstable
        families (a bump symmetric in s does not). Its maximum is moved to s = 0, where the normalisation puts
        it (Newton cannot translate a start far), and it is scaled so that the leading term of Tp(-∞),
        -(2/π)∫p ds, meets the smoothness condition at α."""
        s, xi = grid.s, np.exp(grid.s)
        p = np.sin(min(1.0, 1 / alpha) * np.arctan(xi)) * np.exp(-np.log1p(xi * xi) / (2 * alpha))
        p = np.interp(s, s - s[np.argmax(p)], p, left=0.0, right=0.0)
        return p * (1 + alpha) / (1 - self.a) / (2 / np.pi * p.sum() * grid.spacing)

    def measures(self, p: np.ndarray, alpha: float, grid: LogGrid) -> dict[str, float]:
        """α, the exponent κ of Ω ~ ξ^κ at the origin (1: smooth), the smoothness defect, the least transport
        speed c = α - a Tq, max |Ω| and the largest residual on the grid."""
        lin = self.linearise(p, alpha, grid)
        return {
            "alpha": alpha,
            "exponent": float(-(1 + lin.tp[0]) / lin.transport[0]),
            "smoothness_defect": float(lin.defect),
            "speed_min": float(lin.transport.min()),
            "omega_max": float(np.abs(p).max()),
            "residual_max": float(np.abs(lin.residual).max()),
        }


def exact_profile(a: float, grid: LogGrid, peak: float | None = None) -> tuple[float, np.ndarray] | None:
    """(α, p) in closed form where one is known (a = 0, 1/2), on the grid's points, at the scale v that puts max |Ω|
    at s = `peak`: by default the grid point nearest ξ = 1, as Newton's normalisation does; 0 for the network's,
    which holds u_s(0) = 0 at s = 0 itself (the two differ by a translation in s, the equation's scaling symmetry)."""
    xi = np.exp(grid.s)
    centre = float(np.exp(grid.s[np.argmin(np.abs(grid.s))] if peak is None else peak))
    if a == 0:
        return 1.0, 2 * centre * xi / (xi**2 + centre**2)  # |Ω| largest at ξ = v
    if a == 0.5:
        v = np.sqrt(3.0) * centre  # |Ω| ∝ ξ/(ξ² + v²)² is largest at ξ = v/√3
        return 1 / 3, 16 * v**3 / 3 * xi / (xi**2 + v**2) ** 2
    return None
