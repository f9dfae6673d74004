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

from blowup.problem import ResidualTerms
from blowup.solvers.gauss_newton import Damping, SVDSolve
from blowup.solvers.losses import residual_vector


def pointwise_jacobian(problem: ResidualTerms) -> Tensor:
    """d residuals / d parameters as an (R, P) matrix, rows in `problem.residuals()` order.

    A residual that depends on the parameters and its own point only takes one small reverse pass per
    point (vmapped), which replaces a reverse pass per residual over every point; a nonlocal term's
    (`problem.nonlocal_terms`) rows each need every point: the problem gives its Jacobian (`nonlocal_jacobian`).
    The Taylor-mode engine is used here whatever the backend: nested autograd.grad cannot run under torch.func
    transforms.
    """
    params = {name: p.detach() for name, p in problem.named_parameters() if p.requires_grad}
    blocks = []
    backend, problem.backend = problem.backend, "ntp"
    try:
        for term, inputs in problem.terms().items():
            if term in problem.nonlocal_terms:
                blocks.append(problem.nonlocal_jacobian(term, params, inputs))
                continue

            def at_point(p, *point, term=term):
                return functional_call(problem, p, (term, *[v.unsqueeze(0) for v in point])).squeeze(0)

            jac = vmap(jacrev(at_point), in_dims=(None,) + (0,) * len(inputs))(params, *inputs)
            points, per_point = inputs[0].shape[0], jac[next(iter(jac))].shape[1]
            blocks.append(torch.cat([j.reshape(points, per_point, -1) for j in jac.values()], -1).flatten(0, 1))
    finally:
        problem.backend = backend
    return torch.cat(blocks)


class LevenbergMarquardt:
    """Levenberg-Marquardt with geodesic acceleration (Transtrum & Sethna, arXiv:1201.5885).

    A step is the damped Gauss-Newton velocity v plus half an acceleration a, the damped solve of the
    residuals' second directional derivative along v (one extra residual evaluation, by finite
    differences). It follows the curved valley of a sloppy fit, where v alone is cut short by damping.
    A step whose acceleration is large against its velocity (2|a|/|v| > `acceleration`) is not trusted.
    The damped solves share one SVD of the Jacobian (`SVDSolve`, through its numerical range unless `sketch` is
    False: the full SVD); the damping falls 3x after an accepted
    step and doubles after a rejected one (`Damping`), past `max_tries` doublings only while it is below the
    Jacobian's largest singular value squared; `acceleration: 0` is plain Levenberg-Marquardt.
    """

    FINITE_DIFFERENCE = 0.1  # step h along v for the second derivative, as a fraction of v

    def __init__(
        self,
        problem: ResidualTerms,
        damping: float = 1e-3,
        acceleration: float = 0.75,
        min_damping: float = 1e-18,
        max_tries: int = 20,
        sketch: bool = True,
    ):
        self.problem = problem
        self.params = [p for p in problem.parameters() if p.requires_grad]
        self.acceleration = acceleration
        self.rule = Damping(damping, decrease=3, increase=2, tries=max_tries, floor=min_damping)
        self.stalled = False  # the last step found no damping that lowers the loss
        self.sketch = sketch

    def _set(self, vector: Tensor) -> None:
        with torch.no_grad():
            vector_to_parameters(vector, self.params)

    def _residuals(self, at: Tensor) -> Tensor:
        """Residuals at parameters `at` (with grad on: the autograd backend differentiates inputs)."""
        self._set(at)
        return residual_vector(self.problem.residuals()).detach()

    def step(self, r: Tensor) -> Tensor:
        """One step from residuals r (none is taken if no damping up to the curvature's scale lowers the loss)."""
        solver = SVDSolve(pointwise_jacobian(self.problem), self.sketch)
        loss = r.square().sum()
        start = parameters_to_vector(self.params).detach()

        def propose(damping: float) -> Tensor | None:
            velocity = solver.solve(r, damping)
            if not self.acceleration:
                return velocity
            h = self.FINITE_DIFFERENCE
            curvature = 2 / h * ((self._residuals(start + h * velocity) - r) / h - solver.jacobian @ velocity)
            accel = solver.solve(curvature, damping)
            return velocity + accel / 2 if 2 * accel.norm() <= self.acceleration * velocity.norm() else None

        def evaluate(step: Tensor) -> tuple[Tensor, None]:
            # a damped step never raises the model loss, so a lower trial loss is the whole test
            return self._residuals(start + step).square().sum(), None

        # A stall is only a floor once the damping has passed the curvature's scale, the largest singular value
        # squared, where the step is a short gradient step: a fixed number of doublings from a fixed damping falls
        # decades short on a fresh high-frequency stage, whose Jacobian grows as its frequency to the order of the
        # highest derivative the residual takes.
        ceiling = float(solver.singular[0]) ** 2 if len(solver.singular) else 0.0
        self.stalled = self.rule.search(propose, evaluate, loss, ceiling) is None
        if self.stalled:
            self._set(start)
        return loss

    def state_dict(self) -> dict:
        return {"damping": self.rule.value}

    def load_state_dict(self, state: dict) -> None:
        self.rule.value = state["damping"]
