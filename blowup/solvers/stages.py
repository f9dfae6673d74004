"""Starting a later network stage (blowup.engine.models.StageNetwork) at the frequency where it trains best.

Wang & Lai set a stage's frequency from the Fourier spectrum of the residual the stages before it leave. A trained
network's residual is often mostly one-signed, so the spectrum's largest component is the lowest frequency, whatever
the narrow features the stage must fit need (a Burgers profile's leftover sits near X = 0, where a stage at the
lowest frequency gains nothing). Instead each candidate frequency is tried for a few Levenberg-Marquardt steps from
the same draw, and the one that has removed the most of the residual wins; the stage then starts afresh with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from blowup.engine.models import StageNetwork
from blowup.problem import ResidualTerms
from blowup.solvers.lm import LevenbergMarquardt
from blowup.solvers.losses import residual_vector


def loss_after_trial(problem: ResidualTerms, damping: float, steps: int) -> float:
    lm = LevenbergMarquardt(problem, damping=damping, acceleration=0)
    for _ in range(steps):
        lm.step(residual_vector(problem.residuals()).detach())
    return float(residual_vector(problem.residuals()).detach().square().sum())


@dataclass(frozen=True)
class StageTrial:
    """How a later stage starts (optim.stage): the damping it trains with, the frequencies tried, each for
    `trial_steps` steps (a single frequency is taken untried)."""

    damping: float = 100.0
    frequencies: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 40.0)
    trial_steps: int = 5


def begin_stage(problem: ResidualTerms, stage: StageNetwork, scale: float, seed: int, trial: StageTrial) -> float:
    """Begin `stage` (trainable, in `problem`, whose rows are already divided by `scale`) at `scale` and the best of
    the trial's frequencies (each tried from the damping the stage will train with); returns it. The trials move
    every trainable parameter (the problem's unknown scalars too): each starts from where they were."""
    if len(trial.frequencies) == 1:
        stage.begin(scale, trial.frequencies[0], seed)
        return trial.frequencies[0]
    trained = [p for p in problem.parameters() if p.requires_grad]
    start = parameters_to_vector(trained).detach().clone()
    losses = {}
    for frequency in trial.frequencies:
        stage.begin(scale, frequency, seed)
        losses[frequency] = loss_after_trial(problem, trial.damping, trial.trial_steps)
        with torch.no_grad():
            vector_to_parameters(start, trained)
    best = min(losses, key=losses.get)
    stage.begin(scale, best, seed)
    return best
