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


def damped_step(jac: Tensor, r: Tensor, damping: float) -> Tensor:
    """argmin_d ||J d + r||^2 + damping ||d||^2, solved in the smaller of residual or parameter space."""
    rows, cols = jac.shape
    if rows < cols:
        gram = jac @ jac.T
        gram.diagonal().add_(damping)
        return -jac.T @ torch.linalg.solve(gram, r)
    gram = jac.T @ jac
    gram.diagonal().add_(damping)
    return -torch.linalg.solve(gram, jac.T @ r)


class LevenbergMarquardt:
    """Levenberg's adaptive damping: shrink it after a step that lowers the loss, grow it otherwise."""

    def __init__(self, problem: Problem, damping: float = 1e-3, increase: float = 4.0, decrease: float = 3.0,
                 min_damping: float = 1e-14, max_tries: int = 20):
        self.problem = problem
        self.params = [p for p in problem.parameters() if p.requires_grad]
        self.damping, self.increase, self.decrease = damping, increase, decrease
        self.min_damping, self.max_tries = min_damping, max_tries

    def step(self, r: Tensor) -> Tensor:
        """One accepted step from residuals r (or none, if no damping lowers the loss)."""
        jac = pointwise_jacobian(self.problem)
        loss = r.square().sum()
        start = parameters_to_vector(self.params).detach()
        for _ in range(self.max_tries):
            candidate = start + damped_step(jac, r, self.damping)
            with torch.no_grad():
                vector_to_parameters(candidate, self.params)
            trial = residual_vector(self.problem.residuals()).detach().square().sum()
            if torch.isfinite(trial) and trial < loss:
                self.damping = max(self.damping / self.decrease, self.min_damping)
                return loss
            self.damping *= self.increase
        with torch.no_grad():
            vector_to_parameters(start, self.params)
        return loss

    def state_dict(self) -> dict:
        return {"damping": self.damping}

    def load_state_dict(self, state: dict) -> None:
        self.damping = state["damping"]
