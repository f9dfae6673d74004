"""Damped Gauss-Newton in named parts: every least-squares iteration in the package is put together from these.

A Gauss-Newton-type iteration on residuals r(x) makes three choices, kept apart here as optimistix keeps them,
so that each caller states its own and shares the rest:

* the descent: how a step d comes from the linearisation (J, r) and a damping μ, as the minimiser of
  ||J d + r||² + μ ||d||². A descent is built from one Jacobian and then solves for any r and μ:
  `SVDSolve` (sloppy Jacobians), `NormalEquations` (a handful of unknowns), `LeastSquares` (undamped, with
  the least-squares solver passed in), `KrylovLeastSquares` (undamped and matrix-free: LSMR on products with
  J and Jᵀ, right-preconditioned, for Jacobians too large to hold).
* the step acceptance and damping rule: `Damping` (Levenberg-Marquardt: a trial step is taken only if it
  lowers the loss; the damping falls after an accepted trial and rises after a rejected one), or
  `full_step` (every step taken whole: Gauss-Newton on a consistent system, inside its basin).
* the termination: `Termination`, a step budget and the step size at which the iteration has converged,
  optionally also stopping once steps no longer shrink.

`iterate` runs the three: linearise, step, check. A caller that owns its outer loop (a training phase that
takes one step per call, a sequence of corrections at growing resolution) uses the parts on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from scipy.sparse.linalg import LinearOperator, lsmr
from torch import Tensor


@dataclass
class Linearisation:
    """The residuals at a point and their Jacobian there: what a descent solves with."""

    residual: Any
    jacobian: Any


class Descent(Protocol):
    """A solver built from one Jacobian J: `solve(r, damping)` is the d minimising ||J d + r||² + damping ||d||²."""

    def solve(self, r: Any, damping: float) -> Any: ...


class SVDSolve:
    """The damped step for any damping and any r, from one thin SVD of J.

    Sloppy Jacobians (singular values spread over many decades) keep the last digits of the loss in their
    smallest singular values: an SVD keeps them, where a Cholesky solve of JᵀJ (condition number squared)
    has to be damped past them.

    A network's Jacobian is numerically of low rank: its rows sample smooth functions of the points, and its
    singular values fall geometrically to round-off within a few dozen to a hundred or so of its several hundred
    rows. So J's range is found first, from its product with a random matrix of `SKETCH` columns (doubled until
    the range holds J to round-off: ||J - Q Qᵀ J|| within `ROUNDOFF` units of round-off of ||J||), and the SVD is
    taken of J's projection on it, Qᵀ J (Halko, Martinsson & Tropp, SIAM Review 2011): J's factors to round-off
    for a fraction of a full SVD's cost; the damped steps differ from a full SVD's by what two LAPACK routes to
    the full SVD differ by. Where no width up to half J's shorter side holds it, the full SVD is taken (and always
    with `sketch=False`). `width` is the range's width used (None: the full SVD). The random matrix comes from its
    own fixed seed: the step neither depends on nor moves the run's random stream, so a resumed run takes the same
    steps.

    A full SVD of a wide matrix (fewer rows than columns, as a network's Jacobian) is taken of its tall
    transpose: LAPACK factors that in about half the time (the same factors, backward stable either way)."""

    SKETCH = 64
    ROUNDOFF = 100  # units of the dtype's round-off: float64's exhausted range leaves 2-6 of them

    def __init__(self, jacobian: Tensor, sketch: bool = True):
        self.jacobian = jacobian
        self.width = self.SKETCH
        if sketch:  # what the range must hold J to: `ROUNDOFF` units of round-off of ||J||
            bar = torch.linalg.matrix_norm(jacobian) * self.ROUNDOFF * torch.finfo(jacobian.dtype).eps
        while sketch and self.width <= min(jacobian.shape) // 2:
            draw = torch.Generator(device=jacobian.device).manual_seed(0)
            probe = torch.randn(
                jacobian.shape[1], self.width, generator=draw, dtype=jacobian.dtype, device=jacobian.device
            )
            basis = torch.linalg.qr(jacobian @ probe).Q
            projected = basis.T @ jacobian
            if torch.linalg.matrix_norm(jacobian - basis @ projected) <= bar:
                right_t, self.singular, left_t = torch.linalg.svd(projected.T, full_matrices=False)
                self.left, self.right = basis @ left_t.T, right_t.T
                return
            self.width *= 2
        self.width = None
        if jacobian.shape[0] < jacobian.shape[1]:
            right_t, self.singular, left_t = torch.linalg.svd(jacobian.T, full_matrices=False)
            self.left, self.right = left_t.T, right_t.T
        else:
            self.left, self.singular, self.right = torch.linalg.svd(jacobian, full_matrices=False)

    def solve(self, r: Tensor, damping: float) -> Tensor:
        s = self.singular
        return -self.right.T @ (s / (s * s + damping) * (self.left.T @ r))


class NormalEquations:
    """The damped step from the normal equations (JᵀJ + damping) d = -Jᵀr: for a few unknowns, where JᵀJ is
    small and well enough conditioned. `normal` (JᵀJ) also sets a damping's scale."""

    def __init__(self, jacobian: Tensor):
        self.jacobian = jacobian
        self.normal = jacobian.T @ jacobian

    def solve(self, r: Tensor, damping: float) -> Tensor:
        # torch.eye in the default dtype: under float32 defaults the damping is rounded to single precision
        return torch.linalg.solve(self.normal + damping * torch.eye(len(self.normal)), -(self.jacobian.T @ r))


class LeastSquares:
    """The undamped Gauss-Newton step, the least-squares solution of J d = -r by `lstsq(J, b) -> d`: the
    caller picks the solver (a QR for speed, an SVD for rank-deficient systems, numpy's or torch's)."""

    def __init__(self, jacobian: Any, lstsq: Callable[[Any, Any], Any]):
        self.jacobian, self.lstsq = jacobian, lstsq

    def solve(self, r: Any, damping: float = 0.0) -> Any:
        if damping:
            raise ValueError(f"LeastSquares takes undamped steps only, got damping {damping}")
        return self.lstsq(self.jacobian, -r)


class KrylovLeastSquares:
    """The undamped Gauss-Newton step from products with J and Jᵀ alone: LSMR on J M⁻¹ y = -r, d = M⁻¹ y, for
    Jacobians too large to hold (scipy LinearOperators with `matvec` and `rmatvec`).

    The right preconditioner M⁻¹ (a LinearOperator; its `rmatvec` is M⁻ᵀ) changes the iterations, not the
    least-squares solution: J M⁻¹ y = -r has the minimiser d = M⁻¹ y of ||J d + r|| for any invertible M. An M
    whose inverse is cheap and takes J's unbounded part (a derivative) leaves J M⁻¹ the identity plus a compact
    operator, and the iterations do not grow with the grid. `iterations` holds each solve's count. LSMR's stop on
    an estimated condition number (conlim, 1e8 by default) is off: that estimate passes 1e8 on the way through
    systems whose condition is 1e4 (gCLM's steep 2nd unstable profile on a grid clustered at its front: it stopped
    LSMR with the step 5e-11 short, and Newton there with α 7e-10 off, where solved through it is 6e-14 from CCF's)."""

    def __init__(self, jacobian, preconditioner, tolerance: float, max_iterations: int):
        self.jacobian, self.preconditioner = jacobian, preconditioner
        self.tolerance, self.max_iterations = tolerance, max_iterations
        self.operator = LinearOperator(
            jacobian.shape,
            matvec=lambda y: jacobian.matvec(preconditioner.matvec(y)),
            rmatvec=lambda z: preconditioner.rmatvec(jacobian.rmatvec(z)),
            dtype=jacobian.dtype,
        )
        self.iterations: list[int] = []

    def solve(self, r: Any, damping: float = 0.0) -> Any:
        if damping:
            raise ValueError(f"KrylovLeastSquares takes undamped steps only, got damping {damping}")
        y, _, iterations, *_ = lsmr(
            self.operator, -r, atol=self.tolerance, btol=self.tolerance, conlim=0, maxiter=self.max_iterations
        )
        self.iterations.append(int(iterations))
        return self.preconditioner.matvec(y)


@dataclass
class Damping:
    """Levenberg-Marquardt's step acceptance and damping rule, and its current damping `value`.

    A trial is accepted when its loss is lower than the current one (`strict`), or no higher (not `strict`);
    a NaN loss is never accepted, nor is a trial that could not be evaluated. After an accepted trial the
    damping is divided by `decrease` (dividing, not multiplying by a reciprocal such as 1/3, which is no
    float) and kept at least `floor`; after a rejected one it is multiplied by `increase`. The search gives
    up after `tries` rejected trials, and not before the damping has passed the `ceiling` a caller names (none by
    default), within at most `tries` + MORE_TRIES: no damping within reach lowers the loss."""

    MORE_TRIES = 256  # past `tries`, towards a ceiling: a bound, so that an infinite one cannot loop for ever

    value: float
    decrease: float
    increase: float
    tries: int
    floor: float = 0.0
    strict: bool = True

    def accepts(self, trial_loss, loss) -> bool:
        return bool(trial_loss < loss) if self.strict else bool(trial_loss <= loss)

    def search(
        self,
        propose: Callable[[float], Any | None],
        evaluate: Callable[[Any], tuple[Any, Any] | None],
        loss,
        ceiling: float = 0.0,
    ) -> tuple[Any, Any] | None:
        """(step, point) for the first accepted trial, or None if every try was rejected.

        `propose(damping)` is the step at this damping (None: a step not to be trusted, rejected unseen);
        `evaluate(step)` its (loss, point), or None where the point cannot be computed."""
        for rejected in range(self.tries + self.MORE_TRIES):
            if rejected >= self.tries and not self.value < ceiling:
                break
            step = propose(self.value)
            trial = None if step is None else evaluate(step)
            if trial is not None and self.accepts(trial[0], loss):
                self.value = max(self.value / self.decrease, self.floor)
                return step, trial[1]
            self.value *= self.increase
        return None


def full_step(descent: Callable[[Any], Descent], apply: Callable[[Any, Any], Any]):
    """The undamped rule: every step is taken whole. `descent(J)` builds the solver, `apply(point, d)` moves."""

    def step(point, lin: Linearisation) -> tuple[Any, Any]:
        d = descent(lin.jacobian).solve(lin.residual, 0.0)
        return d, apply(point, d)

    return step


@dataclass(frozen=True)
class Termination:
    """When an iteration stops: after `max_steps` steps, once a step's size is within `tolerance` (below it,
    if `strict`), or, given `stagnation`, once a step is larger than the previous one divided by it: Newton
    converges faster than that, so a step that shrinks less is round-off, not progress."""

    max_steps: int
    tolerance: float
    strict: bool = False
    stagnation: float | None = None

    def converged(self, size: float) -> bool:
        return size < self.tolerance if self.strict else size <= self.tolerance

    def stagnated(self, size: float, previous: float) -> bool:
        return self.stagnation is not None and size > previous / self.stagnation

    def done(self, steps: int, size: float, previous: float) -> bool:
        """Whether to stop after `steps` steps, the last of size `size`, the one before of size `previous`."""
        return steps >= self.max_steps or self.converged(size) or self.stagnated(size, previous)


def step_size(step) -> float:
    """The largest change of any unknown."""
    return float(abs(step).max())


@dataclass
class Outcome:
    """Where `iterate` stopped, after how many linearisations, why, and the last linearisation (at the point
    before the last step: its Jacobian gives a fit's covariance, its residual what that step started from).

    reason: "converged" (a step within tolerance), "stagnated", "stalled" (the step rule found no step),
    "diverged" (no linearisation at the point), "max_steps"."""

    point: Any
    linearisation: Linearisation | None
    steps: int
    reason: str


def iterate(
    point,
    linearise: Callable[[Any], Linearisation | None],
    step: Callable[[Any, Linearisation], tuple[Any, Any] | None],
    termination: Termination,
) -> Outcome:
    """Gauss-Newton from `point`: `linearise(point)` (None where it cannot be: diverged), then
    `step(point, linearisation) -> (d, new point)` (None: stalled), until `termination` says stop."""
    lin, previous = None, float("inf")
    for steps in range(1, termination.max_steps + 1):
        lin = linearise(point)
        if lin is None:
            return Outcome(point, None, steps, "diverged")
        taken = step(point, lin)
        if taken is None:
            return Outcome(point, lin, steps, "stalled")
        d, point = taken
        size = step_size(d)
        if termination.converged(size):
            return Outcome(point, lin, steps, "converged")
        if termination.stagnated(size, previous):
            return Outcome(point, lin, steps, "stagnated")
        previous = size
    return Outcome(point, lin, termination.max_steps, "max_steps")
