"""A profile on a Chebyshev series as a system to continue in an equation parameter (`blowup.solvers.continuation`).

The refinement (`blowup.solvers.newton`) corrects a network's profile in two parts, since it must not lean on a
polynomial's high derivatives at the smoothness point when that order is high. Continuation needs the whole
solution as one vector instead: x = (the profile's Chebyshev coefficients of its parity, λ), with as many rows as
unknowns, so that Newton on it is square and the branch's tangent is defined:

* F collocated at Chebyshev points of the first kind (no end points, where such equations can be singular);
* the boundary values (the parameter may move them);
* the order-n Taylor coefficient of F at the smoothness point, the row that selects λ. It is taken from the
  polynomial's own derivatives there, which round-off limits as n and the degree grow: fine for low n, and the
  point's error estimate (the same point on a finer degree) says how fine.

The system is small (a few hundred unknowns), so its Jacobian is dense (columns L ψ_j by the complex step, as the
refinement's) and its LU factors are the right preconditioner the continuation's Krylov solves ask for.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.linalg import lu_factor, lu_solve
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from blowup.engine.jet import Jet
from blowup.solvers.chebyshev import basis_derivatives, first_kind_points, parity_orders
from blowup.solvers.newton import ROUND_OFF, ChebyshevSeries, Linearization, ProfileSpec

NEWTON_STEPS = 30


class ChebyshevBranch:
    """x = (coefficients of the parity's T_j up to `degree`, λ) solving F = 0 with `spec_at(μ)`'s boundary values
    and smoothness row. Each reported point is also solved at `fine_degree`: λ's change between the degrees is its
    error estimate, the profile's change the profile's, and F between the collocation points (on `eval_grid`) the
    residual. `exact_at(μ)`, where given: (λ, U on eval_grid) in closed form, reported beside them.
    `stability(lin, μ)`, where given: the unstable count of the profile linearised by `lin`."""

    scalar_name = "lambda"

    def __init__(
        self,
        residual: Callable,
        spec_at: Callable[[float], ProfileSpec],
        degree: int,
        fine_degree: int,
        eval_grid: np.ndarray,
        exact_at: Callable[[float], tuple[float, np.ndarray]] | None = None,
        stability: Callable[[Linearization, float], float] | None = None,
    ):
        self.residual_fn, self.spec_at, self.eval_grid = residual, spec_at, eval_grid
        self.exact_at, self.stability = exact_at, stability
        self.degree, self.fine_degree = degree, fine_degree
        spec = spec_at(0.0)  # its parity, smoothness row and domain: the same at every μ
        self.parity, self.smooth_order, self.smooth_point = spec.parity, spec.smooth_order, spec.smooth_point
        self.half = max(abs(d) for d in spec.domain)
        self.size = len(parity_orders(degree, self.parity)) + 1

    # --- the discrete system at a degree ------------------------------------------------------------------
    def _points(self, degree: int, spec: ProfileSpec) -> np.ndarray:
        """Collocation points: as many as the unknowns leave after the boundary rows and the smoothness row."""
        count = len(parity_orders(degree, self.parity)) - len(self._boundary(spec))
        if self.parity == "odd":  # first-kind points come in ± pairs: the positive ones of twice as many
            return self.half * first_kind_points(2 * count)[:count]
        left, right = spec.domain
        return left + (right - left) * (first_kind_points(count) + 1) / 2

    def _boundary(self, spec: ProfileSpec) -> dict[float, float]:
        return {x: u for x, u in spec.boundary.items() if x > 0} if self.parity == "odd" else spec.boundary

    def series(self, x: np.ndarray, degree: int | None = None) -> ChebyshevSeries:
        coeffs = np.zeros((degree or self.degree) + 1)
        coeffs[parity_orders(degree or self.degree, self.parity)] = x[:-1]
        return ChebyshevSeries(coeffs, self.half)

    def linearization(self, x: np.ndarray, degree: int | None = None) -> Linearization:
        series = self.series(x, degree)
        return Linearization(self.residual_fn, lambda points, order: Jet(series.jet(points, order).to(points)), x[-1])

    def _system(self, x: np.ndarray, mu: float, degree: int, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows (collocation, boundary, smoothness) and, if asked, their dense Jacobian."""
        spec, lin = self.spec_at(mu), self.linearization(x, degree)
        points, boundary, n = self._points(degree, spec), self._boundary(spec), self.smooth_order
        t = torch.from_numpy(points).view(-1, 1)
        origin = torch.full((1, 1), self.smooth_point, dtype=torch.float64)
        f, f_lam = (v[0].numpy() for v in lin.residual_and_scalar_column(t, 0))
        taylor, taylor_lam = (v[n, 0].item() for v in lin.residual_and_scalar_column(origin, n))
        bx = np.array(list(boundary))
        values = self.series(x, degree)(bx)
        rows = np.concatenate([f, values - np.array(list(boundary.values())), [taylor]])
        if not jacobian:
            return rows, None
        basis, _ = basis_derivatives(points / self.half, degree, self.parity, 1)
        basis[1] /= self.half
        collocation = lin.apply(t, torch.from_numpy(basis), 0)[0].numpy()
        local, _ = basis_derivatives(np.array([self.smooth_point / self.half]), degree, self.parity, n + 1)
        local *= np.array([1 / (self.half**d * math.factorial(d)) for d in range(n + 2)])[:, None, None]
        smooth = lin.apply(origin, torch.from_numpy(local), n, local=True)[n, 0].numpy()
        b_rows = basis_derivatives(bx / self.half, degree, self.parity, 0)[0][0]
        matrix = np.block(
            [
                [collocation, f_lam[:, None]],
                [b_rows, np.zeros((len(bx), 1))],
                [smooth[None, :], np.array([[taylor_lam]])],
            ]
        )
        return rows, matrix

    def solve(self, x: np.ndarray, mu: float, degree: int | None = None) -> tuple[np.ndarray, bool]:
        """Newton at fixed μ from x (coefficients at `degree`, default the branch's): the solution and whether
        its last step was at round-off."""
        degree = degree or self.degree
        for _ in range(NEWTON_STEPS):
            rows, matrix = self._system(x, mu, degree, True)
            step = np.linalg.solve(matrix, -rows)
            x = x + step
            if np.abs(step).max() <= ROUND_OFF * max(1.0, np.abs(x).max()):
                return x, True
        return x, False

    def fit(self, profile: Callable[[np.ndarray], np.ndarray], lam: float) -> np.ndarray:
        """x for a profile given by its values (interpolated at the degree's Chebyshev points of its parity)."""
        js = parity_orders(self.degree, self.parity)
        t = first_kind_points(2 * len(js))[: len(js)] if self.parity == "odd" else first_kind_points(len(js))
        basis = basis_derivatives(t, self.degree, self.parity, 0)[0][0]
        return np.concatenate([np.linalg.solve(basis, profile(self.half * t)), [lam]])

    def refined(self, x: np.ndarray, degree: int) -> np.ndarray:
        """x's polynomial written at another (higher) degree."""
        coeffs = self.series(x).coeffs
        padded = np.zeros(degree + 1)
        padded[: len(coeffs)] = coeffs
        return np.concatenate([padded[parity_orders(degree, self.parity)], x[-1:]])

    # --- what continuation asks ----------------------------------------------------------------------------
    def residual(self, x: np.ndarray, mu: float) -> np.ndarray:
        return self._system(x, mu, self.degree, False)[0]

    def linearise(self, x: np.ndarray, mu: float):
        rows, matrix = self._system(x, mu, self.degree, True)
        factors = lu_factor(matrix)
        n = len(x)
        preconditioner = LinearOperator(
            (n, n), matvec=lambda z: lu_solve(factors, z), rmatvec=lambda z: lu_solve(factors, z, trans=1), dtype=float
        )
        return rows, aslinearoperator(matrix), preconditioner

    def measures(self, x: np.ndarray, mu: float) -> dict[str, float]:
        """λ, and U at the middle of the domain's right half (`u_mid`): a figure of the profile to cross."""
        return {"lambda": float(x[-1]), "u_mid": float(self.series(x)(np.array([self.half / 2]))[0])}

    def report(self, x: np.ndarray, mu: float, stability: bool = False) -> dict[str, float]:
        """The point's measures, λ from the fine degree with its error estimate, the profile's change between the
        degrees, F between the collocation points; the closed form's λ and profile error where known; with
        `stability`, the unstable count."""
        out = self.measures(x, mu)
        fine, converged = self.solve(self.refined(x, self.fine_degree), mu, self.fine_degree)
        u, u_fine = self.series(x)(self.eval_grid), self.series(fine, self.fine_degree)(self.eval_grid)
        out["lambda_coarse"] = out["lambda"]
        out["lambda"] = float(fine[-1]) if converged else float("nan")
        out["lambda_error_estimate"] = abs(float(fine[-1]) - float(x[-1])) if converged else float("nan")
        out["profile_error_estimate"] = float(np.abs(u_fine - u).max()) if converged else float("nan")
        lin = self.linearization(fine, self.fine_degree)
        points = torch.from_numpy(self.eval_grid).view(-1, 1)
        out["residual_max"] = (
            float(lin.residual_and_scalar_column(points, 0)[0][0].abs().max()) if converged else (float("nan"))
        )
        if self.exact_at is not None:
            lam_exact, u_exact = self.exact_at(mu)
            out["lambda_exact"] = lam_exact
            out["profile_max_error"] = float(np.abs(u_fine - u_exact).max())
        if stability and self.stability is not None:
            out["n_unstable"] = self.stability(lin, mu) if converged else float("nan")
        return out
