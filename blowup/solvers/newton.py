"""Newton corrections of a trained profile: its a-posteriori error, and a refined profile.

Near a smooth solution (U*, λ*), a trained (U, λ) has residual r = F(U, λ) ≈ L (U - U*) + F_λ (λ - λ*),
with L = dF/dU the equation linearised about U. Solving L e + F_λ δλ = -r for the correction
(e, δλ) gives U* - U ≈ e and λ* - λ ≈ δλ to first order: an error estimate that needs no exact
solution, only the residual the equation already declares. It is solved in a classical
discretisation independent of the network, so the network's own limits neither hide its error nor
bound the correction: (U + e, λ + δλ) is a second stage, a spectral one, and a second correction
about it estimates what error that stage has left.

The correction comes in two parts, as the equation's structure dictates:

* δλ from the Taylor coefficients at the smoothness point. The residual's coefficients of order
  0..n there (n the smoothness order) form a small triangular system in U's coefficients, in which
  the order-n row has lost its diagonal (that is what makes λ discrete) and pins δλ instead. Its
  solution also gives e's Taylor coefficients there, which a second local step needs (a global
  polynomial's high derivatives are round-off).
* e from spectral collocation on the domain, with δλ fixed: Chebyshev polynomials (of the parity
  the equation declares) collocated at Chebyshev points, boundary values as rows. Polynomials are
  smooth, so the non-smooth solutions that the singular point admits are excluded.

L is never written by hand: columns L ψ come from the residual itself by the complex step,
Im F(U + i h ψ) / h, exact to round-off for residuals built from arithmetic, derivatives and linear
maps (no cancellation, unlike a finite difference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numpy.polynomial import chebyshev
from torch import Tensor

from blowup.engine.jet import Jet
from blowup.solvers.chebyshev import basis_derivatives, first_kind_points
from blowup.solvers.gauss_newton import Termination

COMPLEX_STEP = 1e-30
# Chebyshev degree of the first correction; each later one is finer by DEGREE_GROWTH: collocated at new
# points, it sees what the earlier ones left unresolved between theirs
FIRST_DEGREE, DEGREE_GROWTH = 160, 1.5
MAX_DEGREE = 540  # later corrections stay at this degree: each is a dense least-squares solve in degree unknowns
ROUND_OFF = 1e-14  # a correction no larger (in max |e| and |δλ|) is round-off: Newton has converged


@dataclass
class ProfileSpec:
    """What a correction needs to know about a profile equation.

    domain: where the profile lives; parity "odd" means U(-X) = -U(X) and only X > 0 is collocated.
    boundary: {X: U(X)} conditions the true profile meets. smooth_order: the highest residual Taylor
    coefficient at `smooth_point` that smoothness requires to vanish (the row that selects λ)."""

    domain: tuple[float, float]
    boundary: dict[float, float]
    smooth_order: int
    smooth_point: float = 0.0
    parity: str | None = None


@dataclass
class ChebyshevSeries:
    """e(X) = sum_j c_j T_j(X / half)."""

    coeffs: np.ndarray
    half: float

    def jet(self, x: Tensor, order: int) -> Tensor:
        """Taylor coefficients e^(d)(x) / d!, d = 0..order, shape (order + 1, N, 1)."""
        t, c, rows = x.double().cpu().numpy().ravel() / self.half, self.coeffs, []
        for d in range(order + 1):
            rows.append(chebyshev.chebval(t, c) / (self.half**d * math.factorial(d)))
            c = chebyshev.chebder(c)
        return torch.from_numpy(np.stack(rows)).unsqueeze(-1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return chebyshev.chebval(x / self.half, self.coeffs)


class Linearization:
    """An equation's residual F(X, U, scalar), linearised about a profile by the complex step.

    `residual(x: Jet, u: Jet, scalar) -> Jet` is the equation's own residual; `profile(x, order) -> Jet`
    the profile with its first `order` derivatives (the trained network, or a refined profile)."""

    def __init__(self, residual, profile, scalar: float, local=None):
        self.residual, self.profile, self.scalar = residual, profile, scalar
        self.local = local or profile  # the profile's jet at the smoothness point

    def _jets(self, x: Tensor, order: int, local: bool) -> tuple[Jet, Tensor]:
        with torch.no_grad():
            u = (self.local if local else self.profile)(x, order + 1).coeffs.cpu()
        return Jet.variable(x.to(torch.complex128), order + 1), u.to(torch.complex128)

    def values(self, x: Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.profile(x, 0).coeffs[0, :, 0].cpu().double().numpy()

    def apply(self, x: Tensor, directions: Tensor, order: int, local: bool = False) -> Tensor:
        """L ψ_b at points x as Taylor coefficients 0..order: directions (order + 2, N, B) -> (order + 1, N, B)."""
        xj, u = self._jets(x, order, local)
        f = self.residual(xj, Jet(u + 1j * COMPLEX_STEP * directions), self.scalar)
        return f.coeffs.imag / COMPLEX_STEP

    def residual_and_scalar_column(self, x: Tensor, order: int, local: bool = False) -> tuple[Tensor, Tensor]:
        """F and dF/d(scalar) at points x, Taylor coefficients 0..order, each (order + 1, N)."""
        xj, u = self._jets(x, order, local)
        f = self.residual(xj, Jet(u), self.scalar + 1j * COMPLEX_STEP)
        return f.coeffs.real[..., 0], f.coeffs.imag[..., 0] / COMPLEX_STEP

    def corrected(self, correction: Correction) -> Linearization:
        """The same equation about (U + e, λ + δλ)."""
        series, local = correction.series, correction.local

        def profile(x, order):
            return Jet(self.profile(x, order).coeffs + series.jet(x, order).to(x))

        def local_profile(x, order):
            shift = torch.zeros(order + 1, 1, 1, dtype=torch.float64)
            shift[: len(local), 0, 0] = torch.from_numpy(local[: order + 1])
            return Jet(self.local(x, order).coeffs + shift.to(x))

        return Linearization(self.residual, profile, self.scalar + correction.delta_scalar, local_profile)


@dataclass
class Correction:
    """(e, δλ): U* ≈ U + e, λ* ≈ λ + δλ. `local`: e's Taylor coefficients at the smoothness point."""

    delta_scalar: float
    series: ChebyshevSeries
    local: np.ndarray

    def profile_error(self, grid: np.ndarray) -> float:
        return float(np.max(np.abs(self.series(grid))))

    def size(self) -> float:
        """A bound on max |e| (|T_j| <= 1 on the domain) and |δλ| together."""
        return max(float(np.sum(np.abs(self.series.coeffs))), abs(self.delta_scalar))


def scalar_correction(lin: Linearization, spec: ProfileSpec) -> tuple[float, np.ndarray]:
    """(δλ, e_0..e_{n-1}) from the residual's Taylor coefficients at the smoothness point, orders 0..n.

    e_n (the free scaling direction, whose diagonal vanishes at λ*) and e_{n+1} (multiplied by the
    velocity, zero there) are left at zero."""
    n = spec.smooth_order
    x = torch.full((1, 1), spec.smooth_point, dtype=torch.float64)
    monomials = torch.eye(n + 2, dtype=torch.float64)[:, :n].reshape(n + 2, 1, n)
    a = lin.apply(x, monomials, n, local=True)[:, 0, :]  # (n + 1 rows, n columns)
    r, g = lin.residual_and_scalar_column(x, n, local=True)
    solution = torch.linalg.lstsq(torch.cat([a, g], dim=1), -r, driver="gelsd").solution[:, 0].numpy()
    return float(solution[-1]), solution[:-1]


def profile_correction(lin: Linearization, spec: ProfileSpec, delta_scalar: float, degree: int) -> ChebyshevSeries:
    """e from L e = -r - F_λ δλ, collocated at Chebyshev points, the boundary values as rows."""
    left, right = spec.domain
    half = max(abs(left), abs(right))  # t = X / half
    points = 2 * degree + 2
    x = half * first_kind_points(points)
    x = x[x > 0] if spec.parity == "odd" else x[(x > left) & (x < right)]
    basis, js = basis_derivatives(x / half, degree, spec.parity, 1)
    basis[1] /= half  # d/dX = d/dt / half: Taylor coefficients 0 and 1 of each ψ_j
    xt = torch.from_numpy(x).view(-1, 1)
    a = lin.apply(xt, torch.from_numpy(basis), 0)[0].numpy()
    r, g = (v[0].numpy() for v in lin.residual_and_scalar_column(xt, 0))
    bx = np.array(list(spec.boundary))
    b_rows = basis_derivatives(bx / half, degree, spec.parity, 0)[0][0]
    b_rhs = np.array(list(spec.boundary.values())) - lin.values(torch.from_numpy(bx).view(-1, 1))
    weight = np.sqrt(len(x))  # the boundary values weigh as much as all the collocation rows together
    matrix = np.concatenate([a, weight * b_rows])
    target = np.concatenate([-(r + g * delta_scalar), weight * b_rhs])
    scale = np.abs(matrix).max(axis=0)  # column equilibration: high degrees have large derivatives
    solution = np.linalg.lstsq(matrix / scale, target, rcond=None)[0] / scale
    coeffs = np.zeros(degree + 1)
    coeffs[js] = solution
    return ChebyshevSeries(coeffs, half)


def newton_correction(lin: Linearization, spec: ProfileSpec, degree: int) -> Correction:
    delta, local = scalar_correction(lin, spec)
    return Correction(delta, profile_correction(lin, spec, delta, degree), local)


@dataclass
class Refinement:
    """Newton corrections applied in turn to the trained profile, and one more about the result: its error.
    The refined λ is that of the linearisation corrected by `applied` in turn (`Linearization.corrected`)."""

    applied: list[Correction]
    next: Correction

    def profile(self, grid: np.ndarray) -> np.ndarray:
        """The applied corrections' sum on `grid` (add it to the trained profile)."""
        return sum((c.series(grid) for c in self.applied), np.zeros_like(grid))


def refine(lin: Linearization, spec: ProfileSpec, steps: int) -> Refinement:
    """Newton corrections, each about the last corrected profile, until the next one is at round-off
    or no longer shrinks (Newton's floor), at most `steps`; that next one is not applied: its size is
    the error estimate. From a poor network Newton needs more steps than from a good one.

    Not `gauss_newton.iterate`: each correction is a fresh discretisation (a finer Chebyshev degree, new
    collocation points), and the correction that meets the termination rule is the error estimate, so it is
    tested before it is applied; the rule itself is the shared `Termination`."""
    termination = Termination(steps, ROUND_OFF, stagnation=2)
    applied, previous = [], math.inf
    for i in range(steps + 1):
        correction = newton_correction(lin, spec, min(round(FIRST_DEGREE * DEGREE_GROWTH**i), MAX_DEGREE))
        size = correction.size()
        if termination.done(i, size, previous):
            return Refinement(applied, correction)
        applied.append(correction)
        lin = lin.corrected(correction)
        previous = size
