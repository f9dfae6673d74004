"""Levenberg-Marquardt (blowup.solvers.lm): convergence to round-off on a known fit, and a stall that takes no step."""

import pytest
import torch
from torch import nn

from blowup.problem import ResidualTerms
from blowup.solvers.lm import LevenbergMarquardt
from blowup.solvers.losses import residual_vector


class ExponentialFit(ResidualTerms):
    """y = a exp(b t) through exact data: a zero-residual fit with a curved valley."""

    def __init__(self, a, b, weight=1.0):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(a)), nn.Parameter(torch.tensor(b))
        self.weight = weight  # every residual times `weight`: the same fit, its Jacobian `weight` times larger
        self.t = torch.linspace(0, 2, 9).view(-1, 1)
        self.y = 3.0 * torch.exp(-1.5 * self.t)

    def terms(self):
        return {"fit": (self.t, self.y)}

    def forward(self, term, t, y):
        return self.weight * (self.a * torch.exp(self.b * t) - y)

    def largest_singular_value(self) -> float:
        """Of the Jacobian d residuals / d(a, b), from its closed form."""
        with torch.no_grad():
            e = torch.exp(self.b * self.t).flatten()
            jacobian = self.weight * torch.stack([e, self.a * self.t.flatten() * e], 1)
        return float(torch.linalg.svdvals(jacobian)[0])


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
    time, past max_tries until it is past the Jacobian's largest singular value squared, and no further), the
    parameters are put back, and the optimiser reports the stall."""
    problem = ExponentialFit(3.0, -1.5)
    curvature = problem.largest_singular_value() ** 2
    lm = LevenbergMarquardt(problem, damping=1e-3, max_tries=5)
    assert lm.step(residual_vector(problem.residuals()).detach()).item() == 0.0
    damping = lm.state_dict()["damping"]
    assert lm.stalled and curvature <= damping < 2 * curvature and damping > 1e-3 * 2**5
    assert problem.a.item() == 3.0 and problem.b.item() == -1.5


def test_a_far_start_on_a_steep_fit_is_not_called_a_floor():
    """The same fit weighted 1e6 from a far start (b = -6 for -1.5): every damping within max_tries doublings of
    1e-3 is nothing against a curvature of order 1e13, so each trial is the Gauss-Newton step, which overshoots. The
    damping goes on up to the curvature's scale, where a short step lowers the loss: the fit is not at its floor,
    and LM goes on from there to the exact fit."""
    problem = ExponentialFit(3.0, -6.0, weight=1e6)
    lm = LevenbergMarquardt(problem, damping=1e-3, acceleration=0, max_tries=5)
    first = lm.step(residual_vector(problem.residuals()).detach()).item()
    assert not lm.stalled and lm.state_dict()["damping"] > 1e-3 * 2**5
    assert residual_vector(problem.residuals()).square().sum().item() < first
    for _ in range(200):
        lm.step(residual_vector(problem.residuals()).detach())
    assert abs(problem.a.item() - 3.0) < 1e-8 and abs(problem.b.item() + 1.5) < 1e-8
