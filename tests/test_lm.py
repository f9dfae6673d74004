"""Levenberg-Marquardt (blowup.solvers.lm): convergence to round-off on a known fit, and a stall that takes no step."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from blowup.config import phase_settings
from blowup.equations import build_problem
from blowup.problem import ResidualTerms
from blowup.solvers.lm import LevenbergMarquardt, pointwise_jacobian
from blowup.solvers.losses import residual_vector
from blowup.training.steps import make_optimizer


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


class MixedExponentialFit(ExponentialFit):
    """The exponential fit seen through a dense mixing matrix: every row needs every point (a nonlocal term)."""

    nonlocal_terms = ("fit",)

    def __init__(self, a, b):
        super().__init__(a, b)
        self.mix = torch.eye(9) + 0.3 * torch.ones(9, 9)

    def forward(self, term, t, y):
        return self.mix @ (self.a * torch.exp(self.b * t) - y)


def test_a_nonlocal_terms_jacobian_is_its_closed_form_and_levenberg_marquardt_reaches_round_off():
    problem = MixedExponentialFit(1.0, 0.5)
    with torch.no_grad():
        e = torch.exp(problem.b * problem.t).flatten()
        closed_form = problem.mix @ torch.stack([e, problem.a * problem.t.flatten() * e], 1)
    assert torch.allclose(pointwise_jacobian(problem), closed_form, rtol=1e-14, atol=0)
    lm = LevenbergMarquardt(problem, damping=1e-3)
    for _ in range(60):
        loss = lm.step(residual_vector(problem.residuals()).detach()).item()
    assert loss < 1e-24 and abs(problem.a.item() - 3.0) < 1e-12 and abs(problem.b.item() + 1.5) < 1e-12


@pytest.mark.parametrize(
    "equation, phase",
    [
        ("equation=ccf", "lm"),
        ("equation=ccf", "stage2"),  # a later stage trains, added to the first network, frozen
        pytest.param("equation=gclm", "lm", marks=pytest.mark.slow),
    ],
)
def test_a_log_grid_networks_chained_jacobian_is_the_whole_residuals(equation, phase, compose_train):
    """The network's residual on the log grid is nonlocal (the Hilbert transform): its Jacobian, chained through
    w and w_s at the points, against torch's own Jacobian of the whole residual vector."""
    stage = ["equation.stages=2", "optim.stage.frequencies=[3.0]"] if phase == "stage2" else []
    cfg = compose_train(equation, "equation.points=41", "equation.model.width=8", *stage)
    torch.manual_seed(0)
    problem = build_problem(cfg)
    problem.start_phase(phase)
    assert phase == "lm" or problem.stages[0].net.active and problem.row_scale == problem.stages[0].net.scale
    names = [name for name, p in problem.named_parameters() if p.requires_grad]

    def residuals(*values):
        at = dict(zip(names, values))
        return torch.cat([functional_call(problem, at, (t, *x)).flatten() for t, x in problem.terms().items()])

    values = tuple(p.detach() for p in problem.parameters() if p.requires_grad)
    whole = torch.autograd.functional.jacobian(residuals, values)
    oracle = torch.cat([j.reshape(j.shape[0], -1) for j in whole], 1)
    chained = pointwise_jacobian(problem)
    assert chained.shape == oracle.shape and torch.allclose(chained, oracle, rtol=0, atol=1e-13 * oracle.abs().max())


@pytest.mark.parametrize("profile, first_sketched", [(4, False), (5, True)])
def test_burgers_first_network_takes_the_full_svd_up_to_k4_and_every_stage_the_range(
    profile, first_sketched, compose_train
):
    """Which factorisation each Levenberg-Marquardt phase of the study gets: Burgers' first network (guess fit and
    LM) the full SVD up to k = 4 and the range from k = 5 (`first_network_svd_for`), a later stage the range."""
    cfg = compose_train("equation=burgers", f"profile={profile}", "experiment=pinn_study")
    problem = build_problem(cfg)
    for phase, sketched in (("guess", first_sketched), ("lm", first_sketched), ("stage2", True)):
        assert make_optimizer(phase, phase_settings(cfg, phase), problem).sketch is sketched


def test_optim_svd_overrides_the_equations_factorisation(compose_train):
    """optim.<phase>.svd names the factorisation whatever the equation's rule: the range for Burgers' first network at
    k = 4 (whose own is the full SVD), the full SVD for a stage (whose own is the range)."""
    cfg = compose_train(
        "equation=burgers", "profile=4", "experiment=pinn_study", "optim.lm.svd=range", "optim.stage.svd=full"
    )
    problem = build_problem(cfg)
    assert make_optimizer("lm", phase_settings(cfg, "lm"), problem).sketch is True
    assert make_optimizer("stage2", phase_settings(cfg, "stage2"), problem).sketch is False
    assert make_optimizer("guess", phase_settings(cfg, "guess"), problem).sketch is False  # null: the equation's
