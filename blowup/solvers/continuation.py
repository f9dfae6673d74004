"""Following a solution of F(x, μ) = 0 through a parameter μ: pseudo-arclength predictor-corrector, as AUTO,
pde2path and BifurcationKit.jl do, on any system that gives its residual and a Jacobian's action.

A branch point z = (x, μ) carries its unit tangent t (in the norm |z|² = |x|²/n + μ², so that the grid's size
does not drown μ). The predictor steps along t by h; the corrector is Gauss-Newton on the extended system

    F(x, μ) = 0,   ⟨t, z - z_prev⟩ = h,

whose Jacobian [∂F/∂x, ∂F/∂μ; t] stays regular through folds, where μ turns back and ∂F/∂x alone is singular.
∂F/∂μ is a central difference (it only sets how fast Newton converges, not where), the step is LSMR with the
system's right preconditioner, and the step length grows after an easy correction and halves after a failed
one. The next tangent solves the same extended Jacobian with right-hand side (0, 1): oriented by the last one,
so a fold shows as a sign change of dμ/ds.

Events are located to round-off by Illinois regula falsi in the arclength from the point before them, each
trial point corrected onto the branch: a quantity crossing a value (dμ/ds for a fold).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from blowup.solvers.gauss_newton import KrylovLeastSquares


class BranchSystem(Protocol):
    """What continuation asks of an equation: its unknowns' count, residual and linearisation at (x, μ), and the
    named quantities of a point (branch.csv's columns; events are read from them)."""

    size: int
    scalar_name: str  # the unknown scalar's name in a run's summary ("lambda", "alpha")

    def residual(self, x: np.ndarray, mu: float) -> np.ndarray: ...

    def linearise(self, x: np.ndarray, mu: float) -> tuple[np.ndarray, LinearOperator, LinearOperator | None]:
        """(F, ∂F/∂x, a right preconditioner for ∂F/∂x or None)."""

    def measures(self, x: np.ndarray, mu: float) -> dict[str, float]: ...


@dataclass
class Settings:
    step: float = 0.05  # the first arclength step
    min_step: float = 1e-5  # below this the branch is lost
    max_step: float = 0.2
    tolerance: float = 1e-10  # every equation at a point holds to this
    step_tolerance: float = 1e-12  # ... and the corrector's last step moved no unknown more than this
    corrector_steps: int = 10
    easy: int = 3  # a correction in this many steps or fewer lets the step grow
    growth: float = 1.5
    krylov_tolerance: float = 1e-12
    krylov_iterations: int = 1000
    event_tolerance: float = 1e-13  # an event's quantity within this (relative) of its value
    event_iterations: int = 40


@dataclass
class Point:
    x: np.ndarray
    mu: float
    tangent: np.ndarray  # (dx/ds, dμ/ds), unit in the branch norm
    corrector_steps: int = 0


@dataclass
class Event:
    name: str  # "fold", or the quantity's "name=value"
    mu: float
    value: float
    point: Point | None = field(default=None, repr=False)


class Branch:
    """A system and the settings it is followed with: corrector, tangent, steps, event location."""

    def __init__(self, system: BranchSystem, settings: Settings):
        self.system, self.settings, self.n = system, settings, system.size

    def inner(self, a: np.ndarray, b: np.ndarray) -> float:
        """⟨a, b⟩ = a_x·b_x / n + a_μ b_μ, what steps and tangents are measured in: a step's length does not grow
        with the number of unknowns."""
        return float(a[:-1] @ b[:-1] / self.n + a[-1] * b[-1])

    def _extended(self, x: np.ndarray, mu: float, row: np.ndarray):
        """F at (x, μ), the extended Jacobian [∂F/∂x, ∂F/∂μ; row] and its preconditioner."""
        residual, jac, precondition = self.system.linearise(x, mu)
        h = 1e-6 * max(1.0, abs(mu))
        column = (self.system.residual(x, mu + h) - self.system.residual(x, mu - h)) / (2 * h)
        jac = aslinearoperator(jac)
        m, n = jac.shape
        weights = np.concatenate([row[:-1] / self.n, row[-1:]])

        def matvec(z):
            return np.concatenate([jac.matvec(z[:n]) + column * z[n], [weights @ z]])

        def rmatvec(y):
            return np.concatenate([jac.rmatvec(y[:m]) + weights[:n] * y[m], [column @ y[:m] + weights[n] * y[m]]])

        extended = LinearOperator((m + 1, n + 1), matvec=matvec, rmatvec=rmatvec, dtype=float)
        if precondition is None:
            precondition = aslinearoperator(np.eye(n))

        def pre(z):
            return np.concatenate([precondition.matvec(z[:n]), z[n:]])

        def pre_t(z):
            return np.concatenate([precondition.rmatvec(z[:n]), z[n:]])

        return residual, extended, LinearOperator((n + 1, n + 1), matvec=pre, rmatvec=pre_t, dtype=float)

    def _solve(self, operator, preconditioner, rhs) -> np.ndarray:
        """d with J d = -rhs (least squares)."""
        solver = KrylovLeastSquares(
            operator, preconditioner, self.settings.krylov_tolerance, self.settings.krylov_iterations
        )
        return solver.solve(rhs)

    def tangent(self, x: np.ndarray, mu: float, orient: np.ndarray) -> np.ndarray:
        """The unit tangent at a point on the branch, with ⟨t, orient⟩ > 0."""
        _, operator, pre = self._extended(x, mu, orient)
        rhs = np.zeros(operator.shape[0])
        rhs[-1] = 1.0
        t = -self._solve(operator, pre, rhs)
        return t / np.sqrt(self.inner(t, t))

    def correct(self, start: Point, guess: np.ndarray, row: np.ndarray, target: float) -> tuple[Point | None, int]:
        """Gauss-Newton on F = 0 and ⟨row, z - start⟩ = target from `guess`: the point and its step count (None
        where it did not converge)."""
        s, z, bound = self.settings, guess.copy(), None
        origin = np.concatenate([start.x, [start.mu]])
        for step in range(1, s.corrector_steps + 1):
            residual, operator, pre = self._extended(z[:-1], z[-1], row)
            constraint = self.inner(row, z - origin) - target
            full = np.concatenate([residual, [constraint]])
            size = float(np.abs(full).max())
            bound = 1e3 * max(1.0, size) if bound is None else bound
            if not size <= bound:
                return None, step
            d = self._solve(operator, pre, full)
            z = z + d
            if np.abs(d).max() <= s.step_tolerance * max(1.0, np.abs(z).max()):
                final = np.abs(self.system.residual(z[:-1], z[-1])).max()
                if final <= s.tolerance:
                    return Point(z[:-1], float(z[-1]), row, step), step
                return None, step
        return None, s.corrector_steps

    def step_from(self, point: Point, h: float) -> Point | None:
        """The branch point at arclength h along the tangent from `point`, corrected, with its own tangent."""
        z0 = np.concatenate([point.x, [point.mu]])
        found, steps = self.correct(point, z0 + h * point.tangent, point.tangent, h)
        if found is None:
            return None
        found.tangent = self.tangent(found.x, found.mu, point.tangent)
        found.corrector_steps = steps
        return found

    def at(self, point: Point, component: int, value: float) -> Point | None:
        """The branch point where z[component] = value (component -1: μ, the last step to a target; -2: the last
        unknown, an exponent fixed while μ is found), from `point` along its tangent."""
        row = np.zeros(self.n + 1)
        row[component] = 1.0 if component % (self.n + 1) == self.n else self.n  # the branch norm weighs x by 1/n
        origin = np.concatenate([point.x, [point.mu]])
        change = value - origin[component]
        guess = origin + point.tangent * (change / point.tangent[component])
        found, steps = self.correct(point, guess, row, self.inner(row, guess - origin))
        if found is None:
            return None
        found.tangent = self.tangent(found.x, found.mu, point.tangent)
        found.corrector_steps = steps
        return found

    def locate(self, a: Point, h_b: float, quantity: Callable[[Point], float], value: float) -> Point | None:
        """Where quantity - value changes sign between a and the point at arclength h_b from it: Illinois regula
        falsi on the arclength, every trial corrected onto the branch."""
        s = self.settings
        lo, f_lo = 0.0, quantity(a) - value
        b = self.step_from(a, h_b)
        if b is None:
            return None
        hi, f_hi = h_b, quantity(b) - value
        best, scale = b, max(1.0, abs(value))
        for _ in range(s.event_iterations):
            if abs(f_hi) <= s.event_tolerance * scale:
                break
            h = hi - f_hi * (hi - lo) / (f_hi - f_lo)
            trial = self.step_from(a, h)
            if trial is None:
                return best
            f = quantity(trial) - value
            if np.sign(f) == np.sign(f_hi):
                f_lo /= 2
            else:
                lo, f_lo = hi, f_hi
            hi, f_hi, best = h, f, trial
            if abs(hi - lo) <= 1e-15 * max(1.0, abs(h_b)):
                break
        return best


def first_tangent(branch: Branch, x: np.ndarray, mu: float, direction: float) -> np.ndarray:
    """The start's tangent, pointing the way μ should go (direction ±1)."""
    row = np.zeros(branch.n + 1)
    row[-1] = direction
    return branch.tangent(x, mu, row)


def follow(
    branch: Branch,
    start: Point,
    target: float,
    max_points: int,
    crossings: list[tuple[str, float]],
    quantities: Callable[[Point], dict[str, float]],
    step: float | None = None,
):
    """Points along the branch from `start` towards μ = target: yields (point, events between it and the one
    before, the step used next); returns the reason it ended ("reached", "lost", "max_points") as the
    generator's value. `crossings`: (quantity name, value) pairs located as events; folds always are."""
    s = branch.settings
    h, point = step or s.step, start
    for _ in range(max_points):
        nxt = branch.step_from(point, h)
        while nxt is None:
            h /= 2
            if h < s.min_step:
                return "lost"
            nxt = branch.step_from(point, h)
        events = []
        if (nxt.mu - target) * (point.mu - target) <= 0:  # the target lies on this step: land on it exactly
            final = branch.at(point, -1, target)
            if final is None:
                h /= 2
                continue
            nxt, reached = final, True
        else:
            reached = False
        if np.sign(nxt.tangent[-1]) != np.sign(point.tangent[-1]):
            fold = branch.locate(point, h, lambda p: float(p.tangent[-1]), 0.0)
            if fold is not None:
                events.append(Event("fold", fold.mu, fold.mu, fold))
        before, after = quantities(point), quantities(nxt)
        for name, value in crossings:
            if name in before and np.sign(before[name] - value) != np.sign(after[name] - value):
                found = branch.locate(point, h, lambda p, key=name: quantities(p)[key], value)
                if found is not None:
                    events.append(Event(f"{name}={value:g}", found.mu, quantities(found)[name], found))
        if nxt.corrector_steps <= s.easy:
            h = min(h * s.growth, s.max_step)
        yield nxt, events, h
        if reached:
            return "reached"
        point = nxt
    return "max_points"
