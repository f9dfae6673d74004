"""The data fit with the ODE as a constraint, not a competing term: the second stage of an inverse problem.

A PINN weighs the data misfit against the ODE residual, so on data the model cannot fit exactly it
trades one for the other, and its parameters are biased (most on fast, sharp epidemics). The minimiser
of the data misfit subject to the ODE is the classical least-squares estimate. Started from the trained
network, this stage finds it:

* the trajectory by Chebyshev collocation on τ ∈ [0, 1]: the equation's own residual (declared once, on
  jets) vanishes at every Chebyshev-Lobatto node, the initial value is the first row; Newton's method,
  with the residual's partial derivatives by the complex step (exact to round-off, a handful of
  evaluations since the residual is pointwise in (y, y')), so nothing is linearised by hand;
* the parameters by Levenberg-Marquardt on the data misfit along the ODE's solutions (in log space: rates
  stay positive and steps are relative), with the sensitivities dY/dp from the same collocation Jacobian.

At the solution the Gauss-Newton matrix of the data rows gives the parameters' standard errors
(Laplace approximation). The degree grows (each solve starting from the last) until the parameters stop
moving; their last change is the estimate of the error the discretisation has left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.polynomial import chebyshev
from torch import Tensor

from blowup.engine.jet import Jet
from blowup.solvers.chebyshev import second_kind_points
from blowup.solvers.gauss_newton import Damping, LeastSquares, Linearisation, NormalEquations, Termination, iterate
from blowup.solvers.newton import COMPLEX_STEP

DEGREES = (64, 96, 144, 216)  # collocation degrees tried in turn, each solve starting from the last
SETTLED = 1e-9  # the parameters' largest relative change between two degrees at which they have settled
FINE_POINTS = 1001  # where the residual of the fitted trajectory is checked (between the nodes too)
STEP_TOLERANCE = 1e-10  # Gauss-Newton has converged once a step moves every log-parameter by less ...
FLAT = 1e-8  # ... or once no fraction of a step this small lowers the misfit (it is at its round-off floor)
MAX_STEPS = 40
TERMINATION = Termination(MAX_STEPS, STEP_TOLERANCE)
DAMPING_TRIES = 40  # trials per step before it has stalled (by then the damping has grown 4^40-fold: no step is left)
MAX_LOG_STEP = 0.5  # a step changes no parameter by more than this factor's log (e^0.5 = 1.65): far from the
# estimate (an epidemic that barely takes off in the data's window) the misfit is flat and Gauss-Newton's step huge
NEWTON_TOLERANCE = 1e-14  # trajectory solves: max |ΔY| at which Newton has converged ...
NEWTON_STEPS = 15  # ... within this many steps (converging quadratically), else the step was too long


@dataclass
class OdeData:
    """An initial-value problem y' = f(y, p) on τ ∈ [0, 1] observed at some times in some components.

    residual(u, p): the equation's residual from the trajectory as a jet of order 1 (coefficients
    (2, N, C)) and the parameters (P,): a jet of order 0, shape (1, N, C)."""

    residual: Callable[[Jet, Tensor], Jet]
    initial: np.ndarray  # (C,) y(0)
    tau: np.ndarray  # (m,) observation times
    data: np.ndarray  # (m, len(observed)) observations, in the trajectory's units
    observed: list[int]  # which components are observed


@dataclass
class OdeFit:
    params: np.ndarray  # (P,)
    coeffs: np.ndarray  # (degree + 1, C) Chebyshev coefficients of the trajectory in 2τ - 1
    misfit: np.ndarray  # (m * len(observed),) data residuals at the solution
    rel_stderr: np.ndarray  # (P,) standard errors of the parameters, relative (Gauss-Newton covariance)
    steps: int  # Gauss-Newton steps, over every degree
    converged: bool  # Gauss-Newton converged at the last degree
    residual_max: float  # max |residual| of the fitted trajectory on FINE_POINTS points
    params_change: float  # largest relative change of the parameters from the previous degree (inf: one degree)

    @classmethod
    def failed(cls, params: np.ndarray, components: int) -> OdeFit:
        nan = np.full_like(params, np.nan)
        return cls(params, np.zeros((1, components)), nan, nan, 0, False, float("inf"), float("inf"))

    def values(self, tau: np.ndarray) -> np.ndarray:
        """The fitted trajectory at times tau, (N, C)."""
        return chebyshev.chebval(2 * np.asarray(tau) - 1, self.coeffs).T


class Collocation:
    """Chebyshev-Lobatto nodes on [0, 1] with the matrices that map node values to derivatives at the
    nodes and to values at other points."""

    def __init__(self, degree: int):
        self.degree = degree
        self.x = second_kind_points(degree)
        self.vandermonde_inverse = np.linalg.inv(chebyshev.chebvander(self.x, degree))
        basis = np.eye(degree + 1)
        derivative = np.stack([chebyshev.chebval(self.x, chebyshev.chebder(b) * 2) for b in basis], 1)
        self.derivative = derivative @ self.vandermonde_inverse

    @property
    def tau(self) -> np.ndarray:
        return (self.x + 1) / 2

    def interpolation(self, tau: np.ndarray) -> np.ndarray:
        return chebyshev.chebvander(2 * np.asarray(tau) - 1, self.degree) @ self.vandermonde_inverse

    def coefficients(self, values: np.ndarray) -> np.ndarray:
        return self.vandermonde_inverse @ values


def fit(problem: OdeData, start: Callable[[np.ndarray], np.ndarray], params: np.ndarray) -> OdeFit:
    """The constrained fit from `params` and a trajectory `start(tau) -> (N, C)` (the trained network),
    at growing degrees until the parameters settle."""
    result, steps = None, 0
    for degree in DEGREES:
        previous = result
        result = fit_at_degree(problem, start, params, degree)
        if result is None:  # the start is too far off for the trajectory's Newton solve
            return previous or OdeFit.failed(params, len(problem.initial))
        steps += result.steps
        start, params = result.values, result.params
        if previous is not None:
            result.params_change = float(np.max(np.abs(result.params / previous.params - 1)))
            if result.converged and result.params_change <= SETTLED:
                break
    result.steps = steps
    return result


def fit_at_degree(
    problem: OdeData, start: Callable[[np.ndarray], np.ndarray], params: np.ndarray, degree: int
) -> OdeFit | None:
    """Gauss-Newton at one collocation degree (None if no trajectory can be solved for from the start)."""
    grid = Collocation(degree)
    system = ConstrainedFit(problem, grid)
    p = torch.as_tensor(params, dtype=torch.float64)
    Y = system.trajectory(torch.as_tensor(start(grid.tau), dtype=torch.float64), p)
    if Y is None:
        return None
    outcome = iterate((p, Y), system.linearise, LogRateSteps(system), TERMINATION)
    p, Y = outcome.point
    jac = outcome.linearisation.jacobian
    converged = outcome.reason == "converged" or (outcome.reason == "stalled" and is_flat(outcome.linearisation))
    r = system.misfit(Y)
    variance = r.square().sum() / max(r.numel() - p.numel(), 1)
    covariance = torch.linalg.pinv(jac.T @ jac) * variance
    coeffs = grid.coefficients(Y.numpy())
    fine = np.linspace(0, 1, FINE_POINTS)
    values, slopes = (
        torch.from_numpy(chebyshev.chebval(2 * fine - 1, c).T) for c in (coeffs, 2 * chebyshev.chebder(coeffs))
    )  # d/dτ = 2 d/dx
    return OdeFit(
        params=p.numpy(),
        coeffs=coeffs,
        misfit=r.numpy(),
        rel_stderr=covariance.diagonal().sqrt().numpy(),
        steps=outcome.steps,
        converged=converged,
        residual_max=system.residual(values, slopes, p).abs().max().item(),
        params_change=float("inf"),
    )


def is_flat(lin: Linearisation) -> bool:
    """Whether the misfit is at its round-off floor where no damped step lowered it: the undamped
    Gauss-Newton step there moves no log-parameter by more than FLAT."""
    solver = LeastSquares(lin.jacobian, lambda a, b: torch.linalg.lstsq(a, b.unsqueeze(-1)).solution.squeeze(-1))
    return solver.solve(lin.residual).abs().max().item() <= FLAT


class ConstrainedFit:
    """The collocation system at one degree: the ODE's residual at the nodes, its Jacobians by the complex
    step, the trajectory for given parameters, and the data misfit with its Jacobian in the log-parameters."""

    def __init__(self, problem: OdeData, grid: Collocation):
        self.problem = problem
        self.D, self.E = (torch.from_numpy(m) for m in (grid.derivative, grid.interpolation(problem.tau)))
        self.y0, self.data = torch.from_numpy(problem.initial).double(), torch.from_numpy(problem.data).double()
        self.obs = problem.observed

    def residual(self, Y: Tensor, dY: Tensor, p: Tensor) -> Tensor:
        return self.problem.residual(Jet(torch.stack([Y, dY])), p).coeffs[0]

    def constraints(self, Y: Tensor, p: Tensor) -> Tensor:
        """Initial value and the residual at every node after the first: zero on a solution."""
        return torch.cat([(Y[0] - self.y0).unsqueeze(0), self.residual(Y, self.D @ Y, p)[1:]])

    def jacobians(self, Y: Tensor, p: Tensor, with_params: bool = True) -> tuple[Tensor, Tensor | None]:
        """d constraints / dY as ((n+1) C, (n+1) C) and d constraints / dp as ((n+1) C, P) (None without
        `with_params`: the trajectory's Newton needs only the first)."""
        D, residual = self.D, self.residual
        dY, h = D @ Y, 1j * COMPLEX_STEP
        Yc, dYc, pc = Y.to(torch.complex128), dY.to(torch.complex128), p.to(torch.complex128)
        unit = torch.eye(Y.shape[1], dtype=torch.complex128)
        by_value = torch.stack([residual(Yc + h * e, dYc, pc).imag for e in unit], -1) / COMPLEX_STEP
        by_slope = torch.stack([residual(Yc, dYc + h * e, pc).imag for e in unit], -1) / COMPLEX_STEP
        # row (k, c), column (l, c'): δ_kl ∂F_c/∂y_c' + D_kl ∂F_c/∂y'_c', at node k
        G_Y = torch.einsum("kcd,kl->kcld", by_slope, D) + torch.einsum("kcd,kl->kcld", by_value, torch.eye(len(D)))
        G_Y[0] = 0
        G_Y[0, :, 0, :] = torch.eye(Y.shape[1])  # the initial-value row
        size = Y.numel()
        if not with_params:
            return G_Y.reshape(size, size), None
        G_p = torch.stack([residual(Yc, dYc, pc + h * e).imag for e in torch.eye(len(p))], -1) / COMPLEX_STEP
        G_p[0] = 0
        return G_Y.reshape(size, size), G_p.reshape(size, -1)

    def trajectory(self, Y: Tensor, p: Tensor) -> Tensor | None:
        """The collocation solution for parameters p, by Newton from Y (None if it does not converge)."""
        for _ in range(NEWTON_STEPS):
            try:
                step = torch.linalg.solve(self.jacobians(Y, p, False)[0], -self.constraints(Y, p).flatten())
            except torch.linalg.LinAlgError:  # a start far enough off to make the linearisation singular
                return None
            Y = Y + step.reshape(Y.shape)
            if not torch.isfinite(Y).all():
                return None
            if step.abs().max() <= NEWTON_TOLERANCE * max(1.0, Y.abs().max().item()):
                return Y
        return None

    def misfit(self, Y: Tensor) -> Tensor:
        return ((self.E @ Y)[:, self.obs] - self.data).flatten()

    def linearise(self, point: tuple[Tensor, Tensor]) -> Linearisation:
        """The misfit at (p, Y) on the ODE's solutions, and its Jacobian in log p (dY/dp by the implicit
        function theorem on the constraints)."""
        p, Y = point
        G_Y, G_p = self.jacobians(Y, p)
        sensitivity = -torch.linalg.solve(G_Y, G_p).reshape(*Y.shape, -1)  # dY/dp
        jac = torch.einsum("mn,ncp->mcp", self.E, sensitivity)[:, self.obs].reshape(-1, p.numel()) * p
        return Linearisation(self.misfit(Y), jac)


class LogRateSteps:
    """Levenberg-Marquardt on the log-parameters, each trial along the ODE's solutions: damping turns the step
    toward the gradient. Its damping starts at 1e-3 of the Gauss-Newton matrix's largest diagonal entry and
    carries over from step to step; a trial whose trajectory cannot be solved for is rejected."""

    def __init__(self, system: ConstrainedFit):
        self.system, self.rule = system, None

    def __call__(self, point: tuple[Tensor, Tensor], lin: Linearisation):
        p, Y = point
        solver = NormalEquations(lin.jacobian)
        if self.rule is None:
            scale = solver.normal.diagonal().max().item()
            self.rule = Damping(1e-3 * scale, decrease=3, increase=4, tries=DAMPING_TRIES, strict=False)

        def propose(damping: float) -> Tensor:
            step = solver.solve(lin.residual, damping)
            return step * min(1.0, MAX_LOG_STEP / step.abs().max().item())

        def evaluate(step: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]] | None:
            trial_p = p * step.exp()
            trial_Y = self.system.trajectory(Y, trial_p)
            return None if trial_Y is None else (self.system.misfit(trial_Y).square().sum(), (trial_p, trial_Y))

        return self.rule.search(propose, evaluate, lin.residual.square().sum())
