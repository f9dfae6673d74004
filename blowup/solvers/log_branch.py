"""A log-grid profile as a system to continue in an equation parameter (`blowup.solvers.continuation`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from blowup.solvers.hilbert import LogGrid
from blowup.solvers.log_profile import ProfileEquation, ProfileSolve, _ProfileSystem, refine
from blowup.solvers.log_stability import LogGridStability


class ParameterBranch:
    """A log-grid profile as a system to continue in one equation parameter μ (`blowup.solvers.continuation`):
    x = (u, σ) on `grid`, `equation_at(μ)` the equation there. Each reported point is also solved on the
    `fine` grid: σ's change between the grids is its error estimate, as a run's."""

    def __init__(
        self,
        equation_at: Callable[[float], ProfileEquation],
        grid: LogGrid,
        fine: LogGrid,
        eval_points: int,
        scalar_name: str,
    ):
        self.equation_at, self.grid, self.fine, self.eval_points = equation_at, grid, fine, eval_points
        self.scalar_name = scalar_name
        self.size = grid.points + 1

    def residual(self, x: np.ndarray, mu: float) -> np.ndarray:
        return _ProfileSystem(self.equation_at(mu), self.grid, smooth=True).equations((x[:-1], x[-1]))

    def linearise(self, x: np.ndarray, mu: float):
        system = _ProfileSystem(self.equation_at(mu), self.grid, smooth=True)
        lin = system.linearise((x[:-1], x[-1]))
        return lin.residual, lin.jacobian, system.preconditioner

    def measures(self, x: np.ndarray, mu: float) -> dict[str, float]:
        return self.equation_at(mu).measures(x[:-1], x[-1], self.grid)

    def report(self, x: np.ndarray, mu: float, stability: bool = False) -> dict[str, float]:
        """The point's measures on the coarse grid, σ on the fine grid, and its error estimate and off-grid
        residual (NaN where the fine solve did not converge); with `stability`, its unstable count (both grids'
        spectra, `blowup.solvers.log_stability`, in total and per perturbation class; NaN where they fail their own
        check, `Spectrum.unstable_count`)."""
        equation = self.equation_at(mu)
        name = equation.scalar_name
        out = equation.measures(x[:-1], x[-1], self.grid)
        coarse = ProfileSolve(x[-1], x[:-1], self.grid, 0, True, equation=equation)
        fine = refine(coarse, self.fine)
        if stability:
            spectrum = LogGridStability(coarse, fine).analyse() if fine.converged else None
            out |= spectrum.unstable_counts() if spectrum else {"n_unstable": float("nan")}
        out[f"{name}_coarse"] = out[name]
        out[name] = fine.lam if fine.converged else float("nan")
        out[f"{name}_error_estimate"] = abs(fine.lam - x[-1]) if fine.converged else float("nan")
        out["residual_max"] = fine.offgrid_residual_max(self.eval_points) if fine.converged else float("nan")
        return out
