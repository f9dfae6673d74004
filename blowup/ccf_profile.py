"""Self-similar profiles of the Córdoba-Córdoba-Fontelos model θ_t + (Hθ) θ_x = 0, by Newton on a log grid.

With θ = (1 - t)^λ Θ(x / (1 - t)^(1+λ)) the profile solves -λΘ + ((1+λ) y + HΘ) Θ' = 0 on the whole line.
Θ is even (θ even is preserved by the equation) and Θ(0) = 0 (the equation at y = 0). In s = log y with
q = Θ / y (`blowup.hilbert`), dividing by y:

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blowup.hilbert import LogGrid, derivative, hilbert_over_y, interpolate, operator_matrices

STEP_TOLERANCE = 1e-13  # Newton stops when no unknown moves more than this
RESIDUAL_TOLERANCE = 1e-10  # ... and has converged only if every equation then holds to this
MAX_STEPS = 30  # it converges in under 10 from any start in a basin; more only delays a failure


def residual(q: np.ndarray, lam: float, grid: LogGrid) -> np.ndarray:
    """R = -λq + (1 + λ + Tq)(q + q_s): the profile equation divided by y, at the grid points."""
    return -lam * q + (1 + lam + hilbert_over_y(q, grid)) * (q + derivative(q, grid))


def smoothness_defect(q: np.ndarray, lam: float, grid: LogGrid) -> float:
    """T q(-∞) + 1 + λ/2 (read at the grid's left end): zero exactly when Θ is smooth (~ y²) at the origin."""
    return float(hilbert_over_y(q, grid)[0] + 1 + lam / 2)


@dataclass
class ProfileSolve:
    lam: float
    q: np.ndarray
    grid: LogGrid
    steps: int
    converged: bool

    @property
    def theta(self) -> np.ndarray:
        return np.exp(self.grid.s) * self.q

    def offgrid_residual_max(self, points: int | None = None) -> float:
        """max |R| of the trigonometric interpolant on a finer grid (`points`, odd; default 3x): what the residual
        is between the points Newton made it vanish at."""
        fine_q, fine = interpolate(self.q, self.grid, points or 3 * self.grid.points)
        return float(np.abs(residual(fine_q, self.lam, fine)).max())


def linearisation(q: np.ndarray, lam: float, hilbert: np.ndarray, diff: np.ndarray):
    """Tq, q_s and the dense ∂R/∂q: Newton's Jacobian, and minus the stability operator (`blowup.ccf_stability`)."""
    tq, qs = hilbert @ q, diff @ q
    identity = np.eye(len(q))
    return tq, qs, -lam * identity + (q + qs)[:, None] * hilbert + (1 + lam + tq)[:, None] * (identity + diff)


def newton(q: np.ndarray, lam: float, grid: LogGrid, max_steps: int = MAX_STEPS) -> ProfileSolve:
    """Gauss-Newton on (residual, smoothness, normalisation) for q on `grid` and λ, from (q, λ)."""
    hilbert, diff = operator_matrices(grid)
    n, centre = grid.points, int(np.argmin(np.abs(grid.s)))
    for step in range(1, max_steps + 1):
        tq, qs, dr_dq = linearisation(q, lam, hilbert, diff)
        rows = np.concatenate([-lam * q + (1 + lam + tq) * (q + qs), [tq[0] + 1 + lam / 2, qs[centre]]])
        jac = np.zeros((n + 2, n + 1))
        jac[:n, :n] = dr_dq
        jac[:n, n] = qs  # ∂R/∂λ = -q + (q + q_s)
        jac[n, :n], jac[n, n] = hilbert[0], 0.5
        jac[n + 1, :n] = diff[centre]
        if not np.all(np.isfinite(jac)):  # diverged: a start outside every profile's basin
            return ProfileSolve(lam, q, grid, step, False)
        update = np.linalg.lstsq(jac, -rows, rcond=None)[0]
        q, lam = q + update[:n], lam + update[n]
        if np.abs(update).max() < STEP_TOLERANCE:  # a least-squares minimum need not be a solution: check
            return ProfileSolve(lam, q, grid, step, bool(np.abs(rows).max() < RESIDUAL_TOLERANCE))
    return ProfileSolve(lam, q, grid, max_steps, False)


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


def refine(solve: ProfileSolve, grid: LogGrid) -> ProfileSolve:
    """The same profile on another grid (same interval, more points), started from `solve` interpolated."""
    if (grid.left, grid.right) != (solve.grid.left, solve.grid.right) or grid.points <= solve.grid.points:
        raise ValueError(f"refine needs more points on the same interval, got {grid} after {solve.grid}")
    q, _ = interpolate(solve.q, solve.grid, grid.points)
    return newton(q, solve.lam, grid)
