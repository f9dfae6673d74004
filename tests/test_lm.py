"""Levenberg-Marquardt (blowup.solvers.lm): convergence to round-off on a known fit, and a stall that takes no step."""

import pytest
import torch
from torch import nn

from blowup.problem import ResidualTerms
from blowup.solvers.lm import LevenbergMarquardt
from blowup.solvers.losses import residual_vector


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


def test_a_step_no_damping_improves_is_not_taken_and_says_so():
    """At the exact fit the loss is zero and nothing is lower: every try is rejected (the damping doubling each
    time), the parameters are put back, and the optimiser reports the stall."""
    problem = ExponentialFit(3.0, -1.5)
    lm = LevenbergMarquardt(problem, damping=1e-3, max_tries=5)
    assert lm.step(residual_vector(problem.residuals()).detach()).item() == 0.0
    assert lm.stalled and lm.state_dict() == {"damping": 1e-3 * 2**5}
    assert problem.a.item() == 3.0 and problem.b.item() == -1.5
