"""The training loop: the problem's phases in order (a guess fit, Adam, L-BFGS, Levenberg-Marquardt), one row of
metrics per step, a checkpoint every so many steps, and the outputs at the end.

Read top to bottom: `train` starts the run (or resumes it), runs the phases, and writes the outputs. A run
restarts from a fresh network, up to optim.restarts times, when the problem says the network is in a basin the
last optimiser cannot leave (`Problem.bad_basin`: asked as that phase begins and after each of its steps, so that a
network which slides into such a basin during the phase is restarted at once, not after the phases that follow) or
when every phase ran and the problem rejects the result (`Problem.failure`).

Resuming. A checkpoint already in the run dir (`hydra.run.dir=<dir>` again, a requeued SLURM job) is continued
in place; otherwise `resume=<dir>` continues that run in this run's own dir, copying its log up to the
checkpoint and leaving the old dir as it was (so one checkpoint can be continued more than one way). Either way
metrics.csv is cut back to the checkpoint's step: rows logged after it are about to be logged again. A diverged
run's outputs describe its last good checkpoint, where a resume would start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from blowup.config import PHASES, phase_settings
from blowup.engine.device import DTYPES, Clock, device_name
from blowup.equations import build_problem
from blowup.problem import STAGE_PHASES, Problem
from blowup.solvers.stopping import FINAL_REASONS, Convergence
from blowup.training import logs
from blowup.training.checkpoints import (
    load_checkpoint,
    load_trained,
    read_checkpoint,
    restore,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from blowup.training.estimate import estimate
from blowup.training.outputs import status_line, write_outputs
from blowup.training.steps import StopOnSignal, accepted, all_finite, judge, make_optimizer, take_step

BAD_BASIN = "bad_basin"  # the stop reason of a last optimiser that slid into a basin it cannot leave


@dataclass
class RunState:
    """Everything the loop changes as it goes: what a checkpoint holds, and what the outputs report."""

    cfg: DictConfig
    run_dir: Path
    device: torch.device
    clock: Clock
    problem: Problem
    phases: list[str]
    meta: dict
    started: float = 0.0
    estimate: dict = field(default_factory=dict)  # the probe's seconds per step and for the whole budget
    columns: list[str] = field(default_factory=list)  # metrics.csv's
    phase: str = PHASES[0]
    phase_step: int = 0
    step: int = 0
    optimizer: object = None
    convergence: Convergence | None = None
    stop_reasons: dict = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)  # why each fresh start was made
    # why the network took back what it had handed off to later stages (optim.handoff)
    handbacks: list[str] = field(default_factory=list)
    time_limits: list[int] = field(default_factory=list)  # the steps at which a scheduler's time limit stopped it
    basin: str = ""  # why the last optimiser's step just taken left it in a bad basin (`stop_reason`)

    def wall_time(self) -> float:
        return self.clock() - self.started

    def snapshot(self) -> dict:
        return {
            "problem": self.problem.state_dict(),
            "phase": self.phase,
            "phase_step": self.phase_step,
            "step": self.step,
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "rng": rng_state(self.device),
            "convergence": self.convergence.state_dict() if self.convergence else None,
            "stop_reasons": self.stop_reasons,
            "restarts": self.restarts,
            "handbacks": self.handbacks,
            "time_limits": self.time_limits,
            "wall_time_s": self.wall_time(),
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }

    def checkpoint(self) -> None:
        save_checkpoint(self.run_dir / "checkpoint.pt", self.snapshot())

    def may_restart(self) -> bool:
        return len(self.restarts) < self.cfg.optim.restarts

    def restart(self, why: str) -> None:
        """A fresh network (seeded apart from the first), and the phases from the start."""
        self.restarts.append(why)
        logs.console.print(f"restart {len(self.restarts)}/{self.cfg.optim.restarts}: {why}")
        self.problem.reinitialize(self.cfg.seed + 1000 * len(self.restarts))

    def hand_back(self, why: str) -> None:
        """The later stages did not bring a network handed off to them to the tolerance: they start afresh, after
        the network itself has gone on to the tolerance (no handoff again in this run)."""
        self.handbacks.append(why)
        logs.console.print(f"handed back: {why}; the network goes on to the tolerance itself, the stages after it")
        self.problem.reset_stages()


def train(cfg: DictConfig, run_dir: Path) -> dict:
    run, resumed = start(cfg, Path(run_dir))
    with (
        logs.MetricsLog(run.run_dir / "metrics.csv", run.columns) as metrics,
        logs.progress_bar() as bar,
        StopOnSignal() as stop,
    ):
        status, evaluation = run_phases(run, resumed, metrics, bar, stop)
    run.meta["checkpoint_step"] = run.step
    if status == "diverged":
        back_to_last_good(run)
    timed_out = stop.time_limit and status == "interrupted"
    if timed_out:
        run.time_limits.append(run.step)
        run.checkpoint()
    summary = write_outputs(run, status, evaluation if status == "completed" else None)
    if timed_out and (refusal := stop.hand_over()):  # a requeue ends this process in hand_over
        summary |= {"status": "timed_out", "failure": refusal}  # no requeue left: resumable by hand
        logs.write_json(run.run_dir / "summary.json", summary)
    logs.console.print(logs.summary_table(summary))
    logs.console.print(status_line(summary, run.run_dir))
    return summary


def start(cfg: DictConfig, run_dir: Path) -> tuple[RunState, dict | None]:
    """Seeds, device and problem; the checkpoint to resume from, if any (this run dir's own first: a requeued
    job must not go back to where it branched off; else resume=<dir>'s); a first checkpoint written."""
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    torch.set_default_dtype(DTYPES[cfg.dtype])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    clock = Clock(device)
    problem = build_problem(cfg).to(device)
    own = (run_dir / "checkpoint.pt").is_file()
    source = Path(cfg.resume) if cfg.resume and not own else run_dir
    state = load_checkpoint(source / "checkpoint.pt", cfg, device, problem)
    if state:
        restore(problem, state, source / "checkpoint.pt", "move it away to start afresh, or train into a new run dir")
        set_rng_state(state["rng"], device)
        logs.console.print(f"resuming {source} at step {state['step']} ({state['phase']})")
    if cfg.get("init_from"):  # the other run's refined profile starts this one's; its network only a fresh start
        problem.init_from(load_trained(Path(cfg.init_from)), network=not state)
        torch.set_default_dtype(DTYPES[cfg.dtype])  # loading the other run set its own
        logs.console.print(f"starting from {cfg.init_from}")
    phases = [p for p in PHASES + STAGE_PHASES if p in problem.phases]
    expected = estimate(problem, cfg, phases, state, clock)  # refuses a run over max_hours: nothing written yet
    logs.console.print(logs.estimate_line(expected))
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    meta = {
        **logs.environment(),
        "device_name": device_name(device),
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "seed": cfg.seed,
        "resumed_from": str(source) if state else None,
        "resumed_at_step": state["step"] if state else None,
    }
    run = RunState(cfg, run_dir, device, clock, problem, phases, meta, estimate=expected)
    run.columns = metric_columns(problem, phases)
    step = state["step"] if state else 0
    logs.restore_metrics(source / "metrics.csv", run_dir / "metrics.csv", run.columns, step)
    run.started = clock() - (state["wall_time_s"] if state else 0.0)
    if state:
        run.phase, run.step = state["phase"], state["step"]
        run.stop_reasons, run.restarts = dict(state.get("stop_reasons", {})), list(state.get("restarts", []))
        run.handbacks = list(state.get("handbacks", []))
        run.time_limits = list(state.get("time_limits", []))
        save_checkpoint(run_dir / "checkpoint.pt", state)
    else:
        run.checkpoint()  # a last good checkpoint from the start
    return run, state


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def metric_columns(problem: Problem, phases: list[str]) -> list[str]:
    """metrics.csv's columns: every term any phase uses (a problem may use other terms in other phases, the guess
    fit), the unknown scalars, and the timings. Asked of a copy: starting a phase may change a problem (a later
    network stage takes its scale from the residual as it stands)."""
    term_names, problem = [], problem.probe_copy()
    for name in phases:
        problem.start_phase(name)
        term_names += [t for t in problem.terms() if t not in term_names]
    return (
        ["step", "phase", "loss"]
        + [f"loss_{t}" for t in term_names]
        + list(problem.scalars())
        + ["wall_time_s", "step_time_s", "deriv_time_s"]
    )


def run_phases(run: RunState, resumed: dict | None, metrics, bar, stop) -> tuple[str, dict | None]:
    """Every phase in turn, restarting where the problem asks for it. Returns the status ("completed", or
    "interrupted" / "diverged" when the run stops early) and, once every phase ran, the problem's evaluation."""
    phases, problem = run.phases, run.problem
    last = last_optimiser(phases)
    index = phases.index(run.phase) if run.phase in phases else 0
    evaluation = None
    while index < len(phases):
        run.phase = phases[index]
        resume = resumed if resumed and resumed["phase"] == run.phase else None
        at_last = run.phase == last and not resume and index > 0
        why = problem.bad_basin() if at_last and run.may_restart() else None
        if why:  # a bad basin: start again from a fresh network
            run.restart(why)
            index, resumed = 0, None
            continue
        status, reason = run_phase(run, resume, metrics, bar, stop)
        if status:
            return status, None
        if reason == BAD_BASIN:  # the last optimiser slid into one: the phases after it could not bring it back
            run.restart(run.basin)
            index, resumed = 0, None
            continue
        if said := problem.end_phase(run.phase):  # e.g. a later network stage that bought nothing, dropped
            logs.console.print(said)
            run.checkpoint()
        index = after_acceptance(phases, index, run.cfg.headline) if reason == "accepted" else index + 1
        if index == len(phases):  # every phase ran to its end: is the result one the problem accepts?
            evaluation = problem.evaluate()
            failure = judge(problem, evaluation, run.cfg.headline)
            if failure and handed_off(run, last):  # the network takes back what the stages could not finish
                run.hand_back(failure)
                index, resumed = phases.index(last), None
                continue
            if failure and run.may_restart():  # a basin the phases could not leave
                run.restart(f"not converged: {failure}")
                index, resumed = 0, None
    run.checkpoint()
    return "completed", evaluation


def last_optimiser(phases: list[str]) -> str:
    """The last phase that trains the first network: later network stages only refine what it found."""
    return [p for p in phases if p in PHASES][-1]


def after_acceptance(phases: list[str], index: int, headline: str) -> int:
    """Where training goes on once phase `index` ended "accepted". A run that leads with its result is done:
    later phases could only move it off. A PINN study's network passed the check by itself: the other optimisers
    are skipped, the later network stages still fit what it left."""
    if headline == "result":
        return len(phases)
    return next((i for i in range(index + 1, len(phases)) if phases[i] in STAGE_PHASES), len(phases))


def run_phase(run: RunState, resume: dict | None, metrics, bar, stop) -> tuple[str | None, str | None]:
    """One phase until its stopping rule, its step budget or a signal ends it: (status or None, reason)."""
    phase, phase_cfg = run.phase, phase_settings(run.cfg, run.phase)
    run.problem.start_phase(phase)
    run.optimizer = make_optimizer(phase, phase_cfg, run.problem)
    run.convergence = Convergence(phase_cfg.patience, phase_cfg.rtol)
    run.phase_step = 0
    if resume:
        run.phase_step = resume["phase_step"]
        if resume["optimizer"] is not None:
            run.optimizer.load_state_dict(resume["optimizer"])
        if resume.get("convergence"):
            run.convergence.load_state_dict(resume["convergence"])
    task = bar.add_task(
        phase,
        total=phase_cfg.steps,
        completed=min(run.phase_step, phase_cfg.steps),
        visible=phase_cfg.steps > 0,
        loss=float("nan"),
        scalars="",
    )
    prior = run.stop_reasons.get(phase) if resume else None
    status, reason = None, prior if prior in FINAL_REASONS else None
    while run.phase_step < phase_cfg.steps and not status and not reason:
        scalars, loss = one_step(run, metrics)
        if loss is None:
            status = run.stop_reasons[phase] = "diverged"
            break
        reason = stop_reason(run, phase_cfg, loss)
        if stop.requested:
            status = "interrupted"
        run.stop_reasons[phase] = status or reason or "running"
        if status or reason or run.step % run.cfg.checkpoint_every == 0:
            run.checkpoint()
        bar.update(task, advance=1, loss=loss, scalars="  ".join(f"{k} {v:.12g}" for k, v in scalars.items()))
    if reason:
        bar.update(task, description=f"{phase} ({reason})")
    return status, reason


def one_step(run: RunState, metrics) -> tuple[dict, float | None]:
    """One optimiser step and its metrics row: (the scalars it started from, the loss; None if it diverged)."""
    t0 = run.clock()
    scalars = {k: v.item() for k, v in run.problem.scalars().items()}  # the state the loss is of
    try:
        loss, terms, deriv_time = take_step(run.phase, run.optimizer, run.problem, run.clock)
        diverged = not all_finite(loss, run.problem)
    except torch.linalg.LinAlgError:  # a singular solve: the state has blown up
        diverged = True
    if diverged:
        return scalars, None
    now = run.clock()
    metrics.write(
        {
            "step": run.step,
            "phase": run.phase,
            "loss": loss.item(),
            **{f"loss_{k}": v.item() for k, v in terms.items()},
            **scalars,
            "wall_time_s": now - run.started,
            "step_time_s": now - t0,
            "deriv_time_s": deriv_time,
        }
    )
    run.step, run.phase_step = run.step + 1, run.phase_step + 1
    return scalars, loss.item()


def stop_reason(run: RunState, phase_cfg: DictConfig, loss: float) -> str | None:
    """Why the phase ends after this step, or None: it continues."""
    if accepted(run.problem, phase_cfg, run.phase_step, run.cfg.headline, acceptance_slack(run, phase_cfg)):
        return "accepted"
    if run.phase == last_optimiser(run.phases) and run.may_restart():
        if why := run.problem.bad_basin():
            run.basin = f"{run.phase} step {run.phase_step}: {why}"
            return BAD_BASIN
    if run.convergence.update(loss):
        return "converged"
    if getattr(run.optimizer, "stalled", False):
        return "stalled"  # no damping lowers the loss: Levenberg-Marquardt is at its floor
    if run.phase_step >= phase_cfg.steps:
        return "max_steps"
    return None


def hands_off(run: RunState, phase: str) -> bool:
    """Whether `phase` hands the network off to later stages (`handoff`): a PINN study with optim.handoff > 1, a
    later stage still to come after `phase`, and no hand-back yet in this run."""
    later = run.phases[run.phases.index(phase) + 1 :]
    return (
        run.cfg.headline == "network"
        and handoff(run) > 1
        and not run.handbacks
        and any(p in STAGE_PHASES for p in later)
    )


def handoff(run: RunState) -> float:
    """optim.handoff, or where it is null the equation's own (`Problem.handoff`)."""
    configured = run.cfg.optim.handoff
    return run.problem.handoff if configured is None else configured


def acceptance_slack(run: RunState, phase_cfg: DictConfig) -> float:
    """The multiple of the tolerance at which the phase's acceptance check passes. A PINN study accepts a network
    that later stages will refine at optim.handoff: a later stage, fitted to what the network leaves, lowers its
    error far more cheaply than more steps of the network itself, where it can (`handed_off`). The last stage
    answers to optim.stage.accept_at (a study's goal beyond the tolerance; null: the equation's,
    `Problem.stage_accept_at`); every other phase, every run that leads with its result, and a run whose stages once
    failed to finish the job answer to the tolerance."""
    if hands_off(run, run.phase):
        return handoff(run)
    configured = phase_cfg.get("accept_at", 1.0)  # only optim.stage has one
    return run.problem.stage_accept_at if configured is None else configured


def handed_off(run: RunState, phase: str) -> bool:
    """Whether `phase` ended accepted at more than the tolerance, for the later stages to finish (`handoff`)."""
    return hands_off(run, phase) and run.stop_reasons.get(phase) == "accepted"


def back_to_last_good(run: RunState) -> None:
    """A diverged run's outputs describe its last good checkpoint, where a resume would start."""
    good = read_checkpoint(run.run_dir / "checkpoint.pt", run.device, "train again into a new run dir")
    run.problem.load_state_dict(good["problem"])
    run.meta["checkpoint_step"] = good["step"]
    logs.console.print(
        f"[red]diverged at step {run.step}[/red] (loss or parameters not finite): "
        f"outputs and checkpoint.pt are from step {good['step']}"
    )
