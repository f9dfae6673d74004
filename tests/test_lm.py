"""Levenberg-Marquardt: the damped solve against the normal equations, and convergence on a known fit."""

import pytest
import torch
from torch import nn

from blowup.problem import ResidualTerms
from blowup.solvers.lm import DampedSolver, LevenbergMarquardt
from blowup.solvers.losses import residual_vector


@pytest.mark.parametrize("rows, cols", [(7, 12), (12, 7)])
def test_damped_solve_matches_the_normal_equations(rows, cols):
    torch.manual_seed(0)
    jac, r = torch.randn(rows, cols), torch.randn(rows)
    for damping in (1e-6, 1e-2, 10.0):
        expected = -torch.linalg.solve(jac.T @ jac + damping * torch.eye(cols), jac.T @ r)
        assert torch.allclose(
            DampedSolver(jac).solve(r, damping), expected, rtol=1e-7, atol=1e-10
        )  # the reference squares the condition number


class ExponentialFit(ResidualTerms):
    """y = a exp(b t) through exact data: a zero-residual fit with a curved valley."""

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(a)), nn.Parameter(torch.tensor(b))
        self.t = torch.linspace(0, 2, 9).view(-1, 1)
        self.y = 3.0 * torch.exp(-1.5 * self.t)

    def terms(self):
        return {"fit": (self.t, self.y)}

    def forward(self, term, t, y):
        return self.a * torch.exp(self.b * t) - y


@pytest.mark.parametrize("acceleration", [0.0, 0.75])
def test_levenberg_marquardt_reaches_round_off_on_an_exact_fit(acceleration):
    problem = ExponentialFit(1.0, 0.5)
    lm = LevenbergMarquardt(problem, damping=1e-3, acceleration=acceleration)
    losses = [lm.step(residual_vector(problem.residuals()).detach()).item() for _ in range(60)]
    assert all(later <= earlier for earlier, later in zip(losses, losses[1:]))  # a rejected step is not taken
    assert abs(problem.a.item() - 3.0) < 1e-10 and abs(problem.b.item() + 1.5) < 1e-10
    assert residual_vector(problem.residuals()).square().sum().item() < 1e-24
