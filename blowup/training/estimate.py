"""What a run will cost, said before it costs it: a short probe times one step of each kind on a copy of the
problem, and the step budget turns that into an expected duration.

Gradient phases (Adam, L-BFGS) cost one loss-and-gradient evaluation a step (L-BFGS's line search takes one or
more: counted as LBFGS_EVALS); Levenberg-Marquardt phases (the guess fit, LM, later network stages) one
per-point Jacobian, which is always taken with n-TangentProp. The probe runs on a deep copy, so the run itself
trains exactly as without it.
Its first evaluation pays one-time costs (allocations, caches) and other work on a shared machine only slows a
timing down, so each kind is timed more than once and the fastest kept, unless the first alone already puts the
run over budget. Early stopping (convergence, acceptance) usually ends
a run sooner: the estimate is for the whole budget, an upper bound in that sense.
"""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig

from blowup.config import phase_settings
from blowup.engine.device import Clock
from blowup.errors import ConfigError
from blowup.problem import Problem
from blowup.solvers.losses import total_loss
from blowup.training.logs import duration
from blowup.training.steps import make_optimizer

GRADIENT_PHASES = ("adam", "lbfgs")
LBFGS_EVALS = 2.5  # loss evaluations per L-BFGS step with the strong-Wolfe line search, typically


def remaining_steps(cfg: DictConfig, phases: list[str], state: dict | None) -> dict[str, int]:
    """The steps each phase may still take: its budget, less what a resumed checkpoint already took."""
    steps = {phase: int(phase_settings(cfg, phase).steps) for phase in phases}
    if state:
        done_phases = phases[: phases.index(state["phase"])] if state["phase"] in phases else []
        steps = {p: 0 if p in done_phases else n for p, n in steps.items()}
        if state["phase"] in steps:
            steps[state["phase"]] = max(0, steps[state["phase"]] - state["phase_step"])
    return steps


def time_gradient(problem: Problem, clock: Clock, budget: float) -> float:
    """Seconds of one loss-and-gradient evaluation: the faster of two (the first pays one-time costs, and a
    machine shared with other work only ever slows one down), or the first alone if it exceeds `budget`."""
    params = [p for p in problem.parameters() if p.requires_grad]
    seconds = []
    for _ in range(2):
        start = clock()
        loss = total_loss(problem.residuals())
        torch.autograd.grad(loss, params, allow_unused=True)
        seconds.append(clock() - start)
        if seconds[0] > budget:
            break
    return min(seconds)


def time_lm_step(problem: Problem, phase: str, cfg: DictConfig, clock: Clock) -> float:
    optimizer = make_optimizer(phase, cfg, problem)  # the phase's own (its SVD through J's range or the full one)
    seconds = []
    for _ in range(3):  # the fastest of three, as for the gradient
        start = clock()
        optimizer.step(torch.cat([v.flatten() for v in problem.residuals().values()]).detach())
        seconds.append(clock() - start)
    return min(seconds)


def probe(problem: Problem, cfg: DictConfig, phases: list[str], steps: dict[str, int], clock: Clock) -> dict:
    """Seconds per step of each phase with steps left, measured on a copy of `problem` (RNG states restored).
    The gradient phases share one timing (the same loss and gradient); probing stops as soon as what it has
    measured already puts the run over max_hours (the phases not yet timed are then left out)."""
    limit = float(cfg.max_hours or np.inf) * 3600
    numpy_state = np.random.get_state()
    per_step, gradient = {}, None
    with torch.random.fork_rng(devices=[]):
        for phase in [p for p in phases if steps.get(p)]:
            trial = problem.probe_copy()
            trial.start_phase(phase)
            if phase in GRADIENT_PHASES:
                gradient = gradient or time_gradient(trial, clock, limit / sum(steps.values()))
                per_step[phase] = gradient * (LBFGS_EVALS if phase == "lbfgs" else 1.0)
            else:
                per_step[phase] = time_lm_step(trial, phase, phase_settings(cfg, phase), clock)
            if sum(per_step[p] * steps[p] for p in per_step) > limit:
                break
    np.random.set_state(numpy_state)
    return per_step


def estimate(problem: Problem, cfg: DictConfig, phases: list[str], state: dict | None, clock: Clock) -> dict:
    """{"step_time_s": per phase, "time_s": for the whole remaining budget}; ConfigError if that is over
    max_hours, naming the estimate, the key, and the ntp backend's estimate when the run uses autograd."""
    steps = remaining_steps(cfg, phases, state)
    per_step = probe(problem, cfg, phases, steps, clock)
    total = sum(per_step[p] * steps[p] for p in per_step)
    if cfg.max_hours is not None and total > cfg.max_hours * 3600:
        faster = ""
        if cfg.backend.name != "ntp":
            trial = problem.probe_copy()
            trial.backend = "ntp"
            ntp = probe(trial, cfg, phases, steps, clock)
            faster = f"; backend=ntp takes about {duration(sum(ntp[p] * steps[p] for p in ntp))} for the same steps"
        worst = max(per_step, key=lambda p: per_step[p] * steps[p])
        raise ConfigError(
            f"max_hours={cfg.max_hours} is exceeded: this run is expected to take at least {duration(total)} "
            f"({per_step[worst]:.3g} s per {worst} step x {steps[worst]} steps, the largest part){faster}; "
            f"allowed a larger max_hours (null: no limit), fewer optim.*.steps, or a faster backend"
        )
    return {"step_time_s": per_step, "time_s": total}
