"""Levenberg-Marquardt on the full residual vector: the phase that takes PINNs to round-off.

First-order optimisers stall around loss 1e-10; a Gauss-Newton step sees the curvature of the
sum of squares directly. These networks are small (a few thousand parameters, a few hundred to a few
thousand residuals), so the Jacobian fits in memory and each step is a dense solve.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.func import functional_call, jacrev, vmap
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from blowup.equations import Problem
from blowup.losses import residual_vector


def pointwise_jacobian(problem: Problem) -> Tensor:
    """d residuals / d parameters as an (R, P) matrix, rows in `problem.residuals()` order.

    Each residual depends on the parameters and its own point only, so one small reverse pass per
    point (vmapped) replaces a reverse pass per residual over every point. The Taylor-mode engine is
    used here whatever the backend: nested autograd.grad cannot run under torch.func transforms.
    """
    params = {name: p.detach() for name, p in problem.named_parameters() if p.requires_grad}
    blocks = []
    backend, problem.backend = problem.backend, "ntp"
    try:
        for term, inputs in problem.terms().items():
            def at_point(p, *point, term=term):
                return functional_call(problem, p, (term, *[v.unsqueeze(0) for v in point])).squeeze(0)

            jac = vmap(jacrev(at_point), in_dims=(None,) + (0,) * len(inputs))(params, *inputs)
            points, per_point = inputs[0].shape[0], jac[next(iter(jac))].shape[1]
            blocks.append(torch.cat([j.reshape(points, per_point, -1) for j in jac.values()], -1).flatten(0, 1))
    finally:
        problem.backend = backend
    return torch.cat(blocks)


class DampedSolver:
    """Minimises ||J d + r||^2 + damping ||d||^2 for any damping, by a Cholesky solve of the Gram
    matrix formed once, in the smaller of residual or parameter space."""

    def __init__(self, jac: Tensor, r: Tensor):
        self.jac, self.r = jac, r
        self.residual_space = jac.shape[0] < jac.shape[1]
        self.gram = jac @ jac.T if self.residual_space else jac.T @ jac
        self.rhs = r if self.residual_space else jac.T @ r
        self.eye = torch.eye(len(self.gram), dtype=r.dtype, device=r.device)

    def step(self, damping: float) -> Tensor:
        factor, info = torch.linalg.cholesky_ex(self.gram + damping * self.eye)
        if info:  # not positive definite at this damping: let the caller raise it
            return torch.full_like(self.jac[0], float("nan"))
        coeffs = torch.cholesky_solve(self.rhs.unsqueeze(1), factor).squeeze(1)
        return -(self.jac.T @ coeffs if self.residual_space else coeffs)

    def predicted_loss(self, step: Tensor) -> Tensor:
        return (self.r + self.jac @ step).square().sum()


class LevenbergMarquardt:
    """Levenberg-Marquardt with Nielsen's damping update: the gain ratio (actual over predicted
    decrease) decides how far to trust the Gauss-Newton model next time."""

    def __init__(self, problem: Problem, damping: float = 1e-3, min_damping: float = 1e-15, max_tries: int = 12):
        self.problem = problem
        self.params = [p for p in problem.parameters() if p.requires_grad]
        self.damping, self.min_damping, self.max_tries = damping, min_damping, max_tries
        self.growth = 2.0

    def step(self, r: Tensor) -> Tensor:
        """One step from residuals r (none is taken if no damping within max_tries lowers the loss)."""
        solver = DampedSolver(pointwise_jacobian(self.problem), r)
        loss = r.square().sum()
        start = parameters_to_vector(self.params).detach()
        for _ in range(self.max_tries):
            step = solver.step(self.damping)
            with torch.no_grad():
                vector_to_parameters(start + step, self.params)
            trial = residual_vector(self.problem.residuals()).detach().square().sum()
            gain = (loss - trial) / (loss - solver.predicted_loss(step)).clamp_min(torch.finfo(r.dtype).tiny)
            if torch.isfinite(trial) and gain > 0:
                self.damping = max(self.damping * max(1 / 3, 1 - (2 * gain.item() - 1) ** 3), self.min_damping)
                self.growth = 2.0
                return loss
            self.damping *= self.growth
            self.growth *= 2
        with torch.no_grad():
            vector_to_parameters(start, self.params)
        return loss

    def state_dict(self) -> dict:
        return {"damping": self.damping, "growth": self.growth}

    def load_state_dict(self, state: dict) -> None:
        self.damping, self.growth = state["damping"], state["growth"]
