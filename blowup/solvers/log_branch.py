"""A log-grid profile as a system to continue in an equation parameter (`blowup.solvers.continuation`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from blowup.solvers.continuation import Branch, Point
from blowup.solvers.hilbert import AnyLogGrid, LogGrid, MappedLogGrid, fast_odd_size, resample
from blowup.solvers.log_profile import (
    GRID_GROWTH,
    RESOLVED,
    ProfileEquation,
    ProfileSolve,
    _ProfileSystem,
    clustered,
    clustered_grid,
    compress,
    front_moved,
    normalisation_offset,
    refine,
)
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

    def on(self, grid: AnyLogGrid) -> ParameterBranch:
        """The same branch on a clustered grid; each point's second solve on the same map with GRID_GROWTH times
        the points."""
        fine = MappedLogGrid(grid.left, grid.right, fast_odd_size(int(GRID_GROWTH * grid.points)), grid.fronts)
        compress(grid)  # a matrix-free Newton's H: factored once per grid
        return ParameterBranch(self.equation_at, grid, fine, self.eval_points, self.scalar_name)

    def solve(self, x: np.ndarray, mu: float) -> ProfileSolve:
        return ProfileSolve(x[-1], x[:-1], self.grid, 0, True, equation=self.equation_at(mu))

    def resampled(self, x: np.ndarray, grid: AnyLogGrid, normalise: bool = True) -> np.ndarray:
        """(u, σ) on another grid: u resampled (moved to the normalisation's origin where `normalise`), σ kept."""
        u = x[:-1]
        shift = normalisation_offset(u, self.grid) if normalise else 0.0
        return np.concatenate([resample(u, self.grid, grid, shift=shift), x[-1:]])

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


def clustered_start(
    system: ParameterBranch, x: np.ndarray, mu: float, points: int
) -> tuple[ParameterBranch, np.ndarray]:
    """A run's solution re-solved on `points` clustered at its front (`log_profile.clustered`), and the branch there."""
    solve = clustered(system.solve(x, mu), points)
    if not solve.converged:
        raise ValueError(f"the run's profile did not converge on {solve.grid.points} points clustered at its front")
    return system.on(solve.grid), np.concatenate([solve.q, [solve.lam]])


def onto(branch: Branch, point: Point, system) -> tuple[Branch, Point] | None:
    """The point moved onto `system` (the same branch on another grid): x resampled, its tangent too, then the
    corrector on F = 0 and ⟨t, z - z₀⟩ = 0 from there, regular at a fold, where a Newton at fixed μ is not. None
    where it does not converge. `system.resampled(x, grid, normalise)` says how its unknowns move between grids."""
    old = branch.system
    moved = Branch(system, branch.settings)
    x = old.resampled(point.x, system.grid)
    tangent = np.concatenate([old.resampled(point.tangent[:-1], system.grid, normalise=False), point.tangent[-1:]])
    tangent /= np.sqrt(moved.inner(tangent, tangent))
    found, _ = moved.correct(Point(x, point.mu, tangent), np.concatenate([x, [point.mu]]), tangent, 0.0)
    if found is None:
        return None
    found.tangent = moved.tangent(found.x, found.mu, tangent)
    return moved, found


def follow_front(branch: Branch, point: Point, residual: float, max_points: int) -> tuple[Branch, Point, str]:
    """After a point on a clustered grid: where its front has left the grid (`front_moved`) or the residual between
    grid points has passed RESOLVED, the point on a grid re-centred at its front, GRID_GROWTH times larger in the
    second case (at most `max_points`); else as it was. With what was done ("" for nothing). ValueError where
    the point does not move."""
    system = branch.system
    solve = system.solve(point.x, point.mu)
    grow = residual > RESOLVED and system.grid.points < max_points
    if not (grow or front_moved(solve)):
        return branch, point, ""
    points = min(int(GRID_GROWTH * system.grid.points), max_points) if grow else system.grid.points
    grid = clustered_grid(solve, points)
    moved = onto(branch, point, system.on(grid))
    if moved is None:
        raise ValueError(f"the point did not move onto {grid.points} points clustered at its front")
    return *moved, f"{'grown' if grow else 're-centred'} to {grid.points} points at s = {grid.fronts[0][0]:.6g}"
