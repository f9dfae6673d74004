"""Multi-stage networks (Wang & Lai 2024): a later stage, fitted at the scale of what the first left, multiplies the
precision. The oracles: a closed-form target, and the same stage network fitted to the same leftover blown up to
O(1): the composite's error must be the first stage's error times the precision that O(1) fit reaches, so nothing
is lost to the tiny scale (the damping, the frequency, the row scaling)."""

import time

import pytest
import torch

import blowup.solvers.stages as stages
from blowup.engine.models import MLP, StageNetwork
from blowup.equations import build_problem
from blowup.problem import ResidualTerms
from blowup.solvers.lm import LevenbergMarquardt
from blowup.solvers.losses import residual_vector
from blowup.solvers.stages import StageTrial, begin_stage
from blowup.training import estimate, trainer


def target(x):
    return torch.sin(3 * x) + 0.5 * torch.exp(-4 * x * x)  # no network of this size represents it exactly


class Fit(ResidualTerms):
    """Least squares of (composite - target) / scale on fixed points; only `trained` moves."""

    def __init__(self, first, later=None):
        super().__init__()
        self.first, self.later, self.scale = first, later, 1.0
        self.x = torch.linspace(-1, 1, 401).view(-1, 1)

    def value(self, x):
        return self.first(x) + (self.later(x) if self.later is not None else 0)

    def terms(self):
        return {"fit": (self.x,)}

    def forward(self, term, x):
        return (self.value(x) - target(x)) / self.scale


def fit(problem, steps=300):
    lm = LevenbergMarquardt(problem, damping=1e-3, acceleration=0)
    for _ in range(steps):
        lm.step(residual_vector(problem.residuals()).detach())
        if lm.stalled:
            break


def max_error(f):
    x = torch.linspace(-1, 1, 1001).view(-1, 1)  # between the fitted points too
    with torch.no_grad():
        return float((f(x) - target(x)).abs().max())


def first_stage(steps=300):
    torch.manual_seed(0)
    first = MLP(1, 1, width=8, depth=2)
    one = Fit(first)
    fit(one, steps)
    first.requires_grad_(False)
    return first, one


@pytest.mark.slow
def test_a_second_stage_multiplies_the_precision_by_what_its_network_reaches_at_o1():
    first, one = first_stage()
    e1 = max_error(one.value)
    assert 1e-7 < e1 < 1e-3  # one small network: well short of round-off
    with torch.no_grad():
        scale = float((first(one.x) - target(one.x)).abs().max())

    stage = StageNetwork(width=16, depth=2, half_width=1.0)
    two = Fit(first, stage)
    two.scale = scale  # the stage's rows at O(1): the damping means what it meant for the first
    frequency = begin_stage(two, stage, scale, seed=1, trial=StageTrial(damping=1e-3))
    fit(two)
    e2 = max_error(two.value)

    # the oracle: the same network, begun the same way, fitted to the leftover times 1/scale, at O(1)
    leftover = StageNetwork(width=16, depth=2, half_width=1.0)
    alone = Fit(lambda x: (first(x) - target(x)) / scale + target(x), leftover)
    leftover.begin(1.0, frequency, seed=1)
    fit(alone)
    reached = max_error(alone.value)  # its error on an O(1) target
    assert e2 == pytest.approx(scale * reached, rel=0.5)
    assert e2 < e1 * 1e-3  # and that is a gain of three orders here


def test_a_stage_holds_nothing_until_begun_and_then_about_its_scale():
    stage = StageNetwork(width=8, depth=2, half_width=2.0)
    x = torch.linspace(-2, 2, 41).view(-1, 1)
    with torch.no_grad():
        assert not stage.active and float(stage(x).abs().max()) == 0
    stage.begin(1e-9, frequency=10.0, seed=3)
    with torch.no_grad():
        out = stage(x).abs().max()
    assert stage.active and 1e-12 < out < 1e-8
    first = stage.net[0]
    assert float(first.weight.abs().max()) <= 10.0 and float(first.weight.abs().max()) > 1.0  # scaled by 10
    stage.end()
    assert not stage.active


def test_the_frequency_trials_pick_the_lowest_loss_and_one_frequency_is_taken_untried():
    """begin_stage against its oracle, each frequency's trial run by hand: the one picked has the lowest loss after
    the trial steps, the problem's parameters are back where they were, and the stage starts from the draw at it.
    The first stage need not be converged for that: a few steps leave it a residual to fit."""
    first, one = first_stage(steps=20)
    with torch.no_grad():
        scale = float((first(one.x) - target(one.x)).abs().max())
    trial = StageTrial(damping=1e-3, frequencies=(1.0, 3.0, 9.0), trial_steps=3)

    def stage_problem():
        stage = StageNetwork(width=8, depth=2, half_width=1.0)
        two = Fit(first, stage)
        two.scale = scale
        return stage, two

    by_hand = {}
    for frequency in trial.frequencies:
        stage, two = stage_problem()
        stage.begin(scale, frequency, seed=1)
        lm = LevenbergMarquardt(two, damping=trial.damping, acceleration=0)
        for _ in range(trial.trial_steps):
            lm.step(residual_vector(two.residuals()).detach())
        by_hand[frequency] = float(residual_vector(two.residuals()).square().sum())

    stage, two = stage_problem()
    picked = begin_stage(two, stage, scale, seed=1, trial=trial)
    assert picked == min(by_hand, key=by_hand.get)
    fresh = StageNetwork(width=8, depth=2, half_width=1.0)
    fresh.begin(scale, picked, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(stage.state_dict().values(), fresh.state_dict().values()))

    stage, two = stage_problem()
    assert begin_stage(two, stage, scale, seed=1, trial=StageTrial(frequencies=(7.0,))) == 7.0
    fresh.begin(scale, 7.0, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(stage.state_dict().values(), fresh.state_dict().values()))


def test_the_start_up_copies_begin_a_stage_untried_and_the_run_tries_every_frequency(compose_train, monkeypatch):
    """The step-time probe and metrics.csv's columns start every phase on probe copies: there a later stage begins at
    the first frequency without a trial (the same rows, the same step time); the run's own stage still tries each.
    The oracle: the trials counted as they run, and the problem itself left as it was built."""
    tried = []
    trial = stages.loss_after_trial
    monkeypatch.setattr(stages, "loss_after_trial", lambda *args: tried.append(args) or trial(*args))
    cfg = compose_train(
        "profile=0", "equation.stages=2", "optim.stage.frequencies=[3,1,2]", "optim.stage.trial_steps=1",
        "equation.points=41", "equation.local_points=9", "equation.model.width=8", "equation.model.depth=2",
        "device=cpu",
    )  # fmt: skip
    torch.manual_seed(0)
    problem = build_problem(cfg)
    before = [p.detach().clone() for p in problem.parameters()]
    columns = trainer.metric_columns(problem, ["stage2"])
    per_step = estimate.probe(problem, cfg, ["stage2"], {"stage2": 1}, time.perf_counter)
    assert tried == [] and set(per_step) == {"stage2"} and "loss" in columns
    assert all(torch.equal(a, b) for a, b in zip(before, problem.parameters()))
    probe = problem.probe_copy()
    probe.start_phase("stage2")
    assert tried == [] and probe.stages[0].net.frequency.item() == 3.0
    problem.start_phase("stage2")
    assert len(tried) == 3 and problem.stages[0].net.frequency.item() in (1.0, 2.0, 3.0)
