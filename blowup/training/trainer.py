"""The training loop: Adam, then L-BFGS, then Levenberg-Marquardt, one row of metrics per step.

Read top to bottom: set up, resume from a checkpoint if there is one, run the phases, write the outputs.

Resuming. checkpoint.pt holds everything the next step depends on (network, λ, the current phase's
optimiser, RNG states, step counters), so a resumed run ends where an uninterrupted one would.
A checkpoint already in the run dir (`hydra.run.dir=<dir>` again, a requeued SLURM job) is continued
in place; otherwise `resume=<dir>` continues that run in this run's own dir, copying its log up to the
checkpoint and leaving the old dir as it was (so one checkpoint can be continued more than one way).
Either way metrics.csv is cut back to the checkpoint's step: rows logged after it are about to be
logged again.

Stopping. The first SIGINT or SIGTERM finishes the current step, then checkpoints and writes the
summary with status "interrupted"; a second one aborts at once. A NaN or inf in the loss or the
parameters (or a singular linear solve) stops the run as "diverged": the last good checkpoint stays,
and the outputs describe it.
"""

from __future__ import annotations

import datetime
import os
import platform
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from blowup.config import PHASES
from blowup.equations import build_problem
from blowup.errors import ConfigError
from blowup.problem import Problem
from blowup.solvers.lm import LevenbergMarquardt
from blowup.solvers.losses import loss_terms, residual_vector
from blowup.solvers.stopping import Convergence
from blowup.training import logs

DTYPES = {"float32": torch.float32, "float64": torch.float64}
# what a checkpoint must share with the run continuing it: the problem (optimiser settings and step counts may change)
SAME_PROBLEM = ("equation", "profile", "sobolev", "dtype")
MAY_CHANGE = ("equation.refine", "equation.tolerance.", "equation.eval_points")  # how the result is evaluated
LINE_SEARCH_EVALS = 25  # most loss evaluations in one L-BFGS step (torch's default for 20 iterations)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Clock:
    """Wall-clock seconds, synchronising CUDA first so GPU timings mean what they say."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


class StopOnSignal:
    """The first SIGINT or SIGTERM asks the loop to stop after the current step, so the checkpoint
    and the log agree; a second one aborts at once. Python only lets the main thread install
    handlers: elsewhere signals keep their usual meaning."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> StopOnSignal:
        self.requested, self.previous = False, {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self.handle) for sig in self.SIGNALS}
        return self

    def handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logs.console.print(f"{signal.Signals(signum).name}: stopping after this step (send it again to abort now)")

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def make_optimizer(phase: str, cfg: DictConfig, problem: Problem):
    params = [p for p in problem.parameters() if p.requires_grad]
    if phase == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    if phase == "lbfgs":  # one iteration per step; max_eval is the line search's budget (torch's default
        # for max_iter=1 leaves it none: a rejected first trial then gives a zero step, every step)
        return torch.optim.LBFGS(
            params,
            lr=cfg.lr,
            max_iter=1,
            max_eval=LINE_SEARCH_EVALS,
            history_size=cfg.history,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )
    return LevenbergMarquardt(problem, damping=cfg.damping, acceleration=cfg.acceleration)


def take_step(phase: str, optimizer, problem: Problem, clock: Clock) -> tuple[torch.Tensor, dict, float]:
    """One optimiser step. Returns the loss before it, its terms, and the seconds spent on derivatives
    (the forward passes that compute the residuals and all their input derivatives)."""
    deriv_time = 0.0
    first: dict = {}

    def evaluate():
        nonlocal deriv_time
        start = clock()
        residuals = problem.residuals()
        deriv_time += clock() - start
        terms = loss_terms(residuals)
        first.setdefault("terms", {k: v.detach() for k, v in terms.items()})
        return residuals, sum(terms.values())

    if isinstance(optimizer, LevenbergMarquardt):
        residuals, loss = evaluate()
        optimizer.step(residual_vector(residuals).detach())
        return loss.detach(), first["terms"], deriv_time

    def closure():
        optimizer.zero_grad()
        _, loss = evaluate()
        loss.backward()
        first.setdefault("loss", loss.detach())
        return loss

    optimizer.step(closure)
    return first["loss"], first["terms"], deriv_time


def all_finite(loss: torch.Tensor, problem: Problem) -> bool:
    """False once the loss or any parameter is NaN or inf: the run has diverged (one sync, not one per tensor)."""
    values = [loss.reshape(1)] + [p.detach().flatten() for p in problem.parameters()]
    return bool(torch.isfinite(torch.cat(values)).all())


def rng_state(device: torch.device) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())  # map_location moved it to the run's device
    np.random.set_state(state["numpy"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def load_checkpoint(path: Path, cfg: DictConfig, device: torch.device) -> dict | None:
    """The checkpoint to continue from (None: start fresh); refuses one trained on another problem."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    was = _flatten({k: state["config"].get(k) for k in SAME_PROBLEM})
    now = _flatten({k: OmegaConf.to_container(cfg, resolve=True).get(k) for k in SAME_PROBLEM})
    changed = [
        f"{k}={was.get(k)!r} (this run: {now.get(k)!r})"
        for k in sorted(set(was) | set(now))
        if was.get(k) != now.get(k) and not k.startswith(MAY_CHANGE)
    ]
    if changed:
        raise ConfigError(
            f"cannot resume {path}: it was trained with {', '.join(changed)}; keep "
            f"{', '.join(SAME_PROBLEM)} as they were, or start in a new run dir"
        )
    return state


def load_trained(run_dir: Path) -> Problem:
    """A finished run's problem as trained (its config.yaml and checkpoint.pt), on the CPU."""
    cfg = OmegaConf.load(Path(run_dir) / "config.yaml")
    torch.set_default_dtype(DTYPES[cfg.dtype])
    problem = build_problem(cfg)
    state = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=False)
    problem.load_state_dict(state["problem"])
    return problem


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a kill mid-save leaves the previous checkpoint whole


def train(cfg: DictConfig, run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    torch.set_default_dtype(DTYPES[cfg.dtype])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    clock = Clock(device)
    problem = build_problem(cfg).to(device)

    # resume: this run dir's own checkpoint first (a requeued job must not go back to where it branched
    # off), else resume=<dir>'s, continued in this run dir
    own = (run_dir / "checkpoint.pt").is_file()
    source = Path(cfg.resume) if cfg.resume and not own else run_dir
    state = load_checkpoint(source / "checkpoint.pt", cfg, device)
    start, phase_step, optimizer, step, elapsed = PHASES[0], 0, None, 0, 0.0
    if state:
        problem.load_state_dict(state["problem"])
        set_rng_state(state["rng"], device)
        start, step, elapsed = state["phase"], state["step"], state["wall_time_s"]
        logs.console.print(f"resuming {source} at step {step} ({start})")
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    meta = {
        **logs.environment(),
        "device_name": _device_name(device),
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "seed": cfg.seed,
        "resumed_from": str(source) if state else None,
        "resumed_at_step": step if state else None,
    }

    phases = [p for p in PHASES if p in problem.phases]
    scalar_names = list(problem.scalars())
    term_names = []
    for name in phases:  # a problem may use other terms in other phases (the guess fit)
        problem.start_phase(name)
        term_names += [t for t in problem.terms() if t not in term_names]
    columns = (
        ["step", "phase", "loss"]
        + [f"loss_{t}" for t in term_names]
        + scalar_names
        + ["wall_time_s", "step_time_s", "deriv_time_s"]
    )
    logs.restore_metrics(source / "metrics.csv", run_dir / "metrics.csv", columns, step)
    checkpoint_path = run_dir / "checkpoint.pt"
    started = clock() - elapsed
    stop_reasons = dict(state.get("stop_reasons", {})) if state else {}
    restarts = list(state.get("restarts", [])) if state else []  # why each fresh start was made
    phase, convergence = start, None  # the phase and its stopping rule, as checkpointed

    def snapshot() -> dict:
        return {
            "problem": problem.state_dict(),
            "phase": phase,
            "phase_step": phase_step,
            "step": step,
            "optimizer": optimizer.state_dict() if optimizer else None,
            "rng": rng_state(device),
            "convergence": convergence.state_dict() if convergence else None,
            "stop_reasons": stop_reasons,
            "restarts": restarts,
            "wall_time_s": clock() - started,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }

    save_checkpoint(checkpoint_path, state or snapshot())  # a last good checkpoint from the start
    status = None  # "interrupted" or "diverged" once the run stops early
    evaluation = None  # the problem's verdict on the final state, once every phase has run
    with (
        logs.MetricsLog(run_dir / "metrics.csv", columns) as metrics,
        logs.progress_bar() as bar,
        StopOnSignal() as stop,
    ):
        index = phases.index(start) if start in phases else 0
        while index < len(phases):
            phase = phases[index]
            resuming = bool(state) and state["phase"] == phase
            why = problem.bad_start() if phase == phases[-1] and not resuming and index > 0 else None
            if why and len(restarts) < cfg.optim.restarts:  # a bad basin: start again from a fresh network
                restarts.append(why)
                logs.console.print(f"restart {len(restarts)}/{cfg.optim.restarts}: {why}")
                problem.reinitialize(cfg.seed + 1000 * len(restarts))
                index, state = 0, None
                continue
            phase_cfg = cfg.optim[phase]
            problem.start_phase(phase)
            optimizer = make_optimizer(phase, phase_cfg, problem)
            convergence = Convergence(phase_cfg.patience, phase_cfg.rtol)
            phase_step = 0
            if state and state["phase"] == phase:
                phase_step = state["phase_step"]
                if state["optimizer"] is not None:
                    optimizer.load_state_dict(state["optimizer"])
                if state.get("convergence"):
                    convergence.load_state_dict(state["convergence"])
            task = bar.add_task(
                phase,
                total=phase_cfg.steps,
                completed=min(phase_step, phase_cfg.steps),
                visible=phase_cfg.steps > 0,
                loss=float("nan"),
                scalars="",
            )
            prior = stop_reasons.get(phase) if state and state["phase"] == phase else None
            # a phase that stopped by max_steps continues when given more steps; one that stopped by itself does not
            reason = prior if prior in ("accepted", "converged", "stalled") else None
            while phase_step < phase_cfg.steps and not status and not reason:
                t0 = clock()
                scalars = {k: v.item() for k, v in problem.scalars().items()}  # the state the loss is of
                try:
                    loss, terms, deriv_time = take_step(phase, optimizer, problem, clock)
                    diverged = not all_finite(loss, problem)
                except torch.linalg.LinAlgError:  # a singular solve: the state has blown up
                    diverged = True
                if diverged:
                    status = stop_reasons[phase] = "diverged"
                    break
                now = clock()
                metrics.write(
                    {
                        "step": step,
                        "phase": phase,
                        "loss": loss.item(),
                        **{f"loss_{k}": v.item() for k, v in terms.items()},
                        **scalars,
                        "wall_time_s": now - started,
                        "step_time_s": now - t0,
                        "deriv_time_s": deriv_time,
                    }
                )
                step, phase_step = step + 1, phase_step + 1
                if accepted(problem, phase_cfg, phase_step):
                    reason = "accepted"
                elif convergence.update(loss.item()):
                    reason = "converged"
                elif getattr(optimizer, "stalled", False):
                    reason = "stalled"  # no damping lowers the loss: Levenberg-Marquardt is at its floor
                elif phase_step >= phase_cfg.steps:
                    reason = "max_steps"
                if stop.requested:
                    status = "interrupted"
                stop_reasons[phase] = status or reason or "running"
                if status or reason or step % cfg.checkpoint_every == 0:
                    save_checkpoint(checkpoint_path, snapshot())
                bar.update(
                    task, advance=1, loss=loss.item(), scalars="  ".join(f"{k} {v:.12g}" for k, v in scalars.items())
                )
            if reason:
                bar.update(task, description=f"{phase} ({reason})")
            if status:
                break
            index = len(phases) if reason == "accepted" else index + 1  # later phases could only move it off
            if index == len(phases):  # every phase ran to its end: is the result one the problem accepts?
                evaluation = problem.evaluate()
                failure = problem.failure(evaluation)
                if failure and len(restarts) < cfg.optim.restarts:  # a basin the phases could not leave
                    restarts.append(f"not converged: {failure}")
                    logs.console.print(f"restart {len(restarts)}/{cfg.optim.restarts}: {restarts[-1]}")
                    problem.reinitialize(cfg.seed + 1000 * len(restarts))
                    index, state = 0, None
        else:
            status = "completed"
            save_checkpoint(checkpoint_path, snapshot())

    checkpoint_step = step
    if status == "diverged":  # the outputs describe the last good checkpoint, where a resume would start
        good = torch.load(checkpoint_path, map_location=device, weights_only=False)
        problem.load_state_dict(good["problem"])
        checkpoint_step = good["step"]
        logs.console.print(
            f"[red]diverged at step {step}[/red] (loss or parameters not finite): "
            f"outputs and checkpoint.pt are from step {checkpoint_step}"
        )
    summary = write_outputs(
        cfg,
        problem,
        run_dir,
        status,
        clock() - started,
        device,
        meta | {"checkpoint_step": checkpoint_step},
        stop_reasons,
        restarts,
        evaluation if status == "completed" else None,
    )
    logs.console.print(logs.summary_table(summary))
    logs.console.print(status_line(summary, run_dir))
    return summary


def accepted(problem: Problem, phase_cfg: DictConfig, phase_step: int) -> bool:
    """Whether the problem accepts its result as it stands (checked every `accept_every` steps)."""
    every = phase_cfg.get("accept_every", 0)
    if not (problem.judges_results and every and phase_step % every == 0):
        return False
    return problem.failure(problem.evaluate()) is None


def status_line(summary: dict, run_dir: Path) -> str:
    """One line: how the run ended, the figure that decided it, and where its outputs are."""
    colour = {"completed": "green", "not_converged": "red", "diverged": "red"}.get(summary["status"], "yellow")
    why = f": {summary['failure']}" if summary.get("failure") else ""
    return (
        f"[bold {colour}]{summary['status']}[/bold {colour}]{why} (stop: {summary['stop_reason']}); "
        f"outputs in {run_dir}"
    )


def write_outputs(
    cfg: DictConfig,
    problem: Problem,
    run_dir: Path,
    status: str,
    wall_time: float,
    device: torch.device,
    meta: dict,
    stop_reasons: dict,
    restarts: list[str],
    evaluation: dict | None = None,
) -> dict:
    """summary.json, solution.csv and the plot. A run that ran every phase is "completed" only if the
    problem finds its own result acceptable (its error estimates within tolerance), else "not_converged"."""
    history = pd.read_csv(run_dir / "metrics.csv")
    problem.solution().to_csv(run_dir / "solution.csv", index=False)
    with torch.enable_grad():
        final_loss = sum(loss_terms(problem.residuals()).values()).item()
    evaluation = evaluation or problem.evaluate()
    failure = problem.failure(evaluation) if status == "completed" else None
    if failure:
        status = "not_converged"
    last_phase = next((p for p in reversed(PHASES) if p in stop_reasons), None)
    commit = meta["git_commit"] and meta["git_commit"] + ("-dirty" if meta["git_dirty"] else "")
    summary = {
        "equation": cfg.equation.name,
        "backend": cfg.backend.name,
        "sobolev": cfg.sobolev,
        "device": str(device),
        "device_name": _device_name(device),
        "dtype": cfg.dtype,
        "seed": cfg.seed,
        **evaluation,
        "loss": final_loss,
        "steps": len(history),
        "wall_time_s": wall_time,
        "step_time_median_s": _median(history, "step_time_s"),
        "deriv_time_median_s": _median(history, "deriv_time_s"),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "threads": torch.get_num_threads(),
        "git_commit": commit,
        "status": status,
        "failure": failure,
        "stop_reason": stop_reasons.get(last_phase),
        "stop_reasons": stop_reasons,
        "restarts": restarts,
        "meta": {**meta, "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
    }
    logs.write_json(run_dir / "summary.json", summary)
    problem.plot(history, run_dir / problem.plot_name)
    return summary


def _median(frame: pd.DataFrame, column: str) -> float | None:
    return float(frame[column].median()) if len(frame) else None


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()


def _flatten(tree: dict, prefix: str = "") -> dict:
    """{"equation": {"model": {"width": 8}}} -> {"equation.model.width": 8}: names what changed."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
