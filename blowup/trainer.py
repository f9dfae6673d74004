"""The training loop: Adam, then L-BFGS, then Levenberg-Marquardt, one row of metrics per step.

Read top to bottom: set up, (maybe) resume, run the phases, write the outputs. Ctrl-C or SIGTERM
stops at the current step and still writes the checkpoint and the summary; a non-finite loss stops
the run as "diverged" and keeps the last good checkpoint.
"""
from __future__ import annotations

import os
import platform
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from blowup import logs
from blowup.equations import Problem, build_problem
from blowup.lm import LevenbergMarquardt
from blowup.losses import loss_terms, residual_vector

PHASES = ("adam", "lbfgs", "lm")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


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


def make_optimizer(phase: str, cfg: DictConfig, problem: Problem):
    params = [p for p in problem.parameters() if p.requires_grad]
    if phase == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    if phase == "lbfgs":
        return torch.optim.LBFGS(params, lr=cfg.lr, max_iter=1, history_size=cfg.history,
                                 tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    return LevenbergMarquardt(problem, **{k: v for k, v in cfg.items() if k != "steps"})


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

    if phase == "lm":
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


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(cfg: DictConfig, run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    torch.set_default_dtype(DTYPES[cfg.dtype])
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    clock = Clock(device)
    problem = build_problem(cfg).to(device)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))

    checkpoint_path = run_dir / "checkpoint.pt"
    resume_from = Path(cfg.resume) / "checkpoint.pt" if cfg.resume else checkpoint_path
    state = torch.load(resume_from, map_location=device, weights_only=False) if resume_from.exists() else None
    if state is not None:
        problem.load_state_dict(state["problem"])
        torch.set_rng_state(state["rng"])
        logs.console.print(f"resuming from {resume_from} at step {state['step']} ({state['phase']})")
    step, elapsed = (state["step"], state["wall_time_s"]) if state else (0, 0.0)

    scalar_names = list(problem.scalars())
    columns = (["step", "phase", "loss"] + [f"loss_{t}" for t in problem.terms()] + scalar_names
               + ["wall_time_s", "step_time_s", "deriv_time_s"])
    metrics = logs.MetricsLog(run_dir / "metrics.csv", columns)
    status, phase, phase_step, optimizer = "completed", None, 0, None
    previous_sigterm = _sigterm_as_interrupt()
    started = clock() - elapsed

    def snapshot() -> dict:
        return {"problem": problem.state_dict(), "phase": phase, "phase_step": phase_step, "step": step,
                "optimizer": optimizer.state_dict() if optimizer else None, "rng": torch.get_rng_state(),
                "wall_time_s": clock() - started}

    try:
        with logs.progress_bar() as bar:
            for phase in PHASES:
                phase_cfg = cfg.optim[phase]
                done_phases = PHASES[: PHASES.index(state["phase"])] if state else ()
                if phase_cfg.steps <= 0 or phase in done_phases:
                    continue
                optimizer = make_optimizer(phase, phase_cfg, problem)
                phase_step = 0
                if state and state["phase"] == phase:
                    phase_step = state["phase_step"]
                    if state["optimizer"]:
                        optimizer.load_state_dict(state["optimizer"])
                task = bar.add_task(phase, total=phase_cfg.steps, completed=phase_step, loss=float("nan"), scalars="")
                while phase_step < phase_cfg.steps:
                    t0 = clock()
                    loss, terms, deriv_time = take_step(phase, optimizer, problem, clock)
                    if not torch.isfinite(loss):
                        status = "diverged"
                        raise StopIteration
                    now = clock()
                    scalars = {k: v.item() for k, v in problem.scalars().items()}
                    metrics.write({"step": step, "phase": phase, "loss": loss.item(),
                                   **{f"loss_{k}": v.item() for k, v in terms.items()}, **scalars,
                                   "wall_time_s": now - started, "step_time_s": now - t0, "deriv_time_s": deriv_time})
                    step, phase_step = step + 1, phase_step + 1
                    if phase_step % cfg.checkpoint_every == 0:
                        save_checkpoint(checkpoint_path, snapshot())
                    bar.update(task, advance=1, loss=loss.item(),
                               scalars="  ".join(f"{k} {v:.12g}" for k, v in scalars.items()))
                state = None
            save_checkpoint(checkpoint_path, snapshot())
    except KeyboardInterrupt:
        status = "interrupted"
        save_checkpoint(checkpoint_path, snapshot())
    except StopIteration:
        pass  # diverged: the last good checkpoint stays
    finally:
        metrics.close()
        signal.signal(signal.SIGTERM, previous_sigterm) if previous_sigterm is not None else None

    summary = write_outputs(cfg, problem, run_dir, status, clock() - started, device)
    logs.console.print(logs.summary_table(summary))
    return summary


def write_outputs(cfg: DictConfig, problem: Problem, run_dir: Path, status: str, wall_time: float,
                  device: torch.device) -> dict:
    history = pd.read_csv(run_dir / "metrics.csv")
    problem.solution().to_csv(run_dir / "solution.csv", index=False)
    with torch.enable_grad():
        final_loss = sum(loss_terms(problem.residuals()).values()).item()
    summary = {
        "equation": cfg.equation.name, "backend": cfg.backend.name, "sobolev": cfg.sobolev,
        "device": str(device), "device_name": _device_name(device), "dtype": cfg.dtype, "seed": cfg.seed,
        **problem.evaluate(), "loss": final_loss, "steps": len(history), "wall_time_s": wall_time,
        "step_time_median_s": _median(history, "step_time_s"), "deriv_time_median_s": _median(history, "deriv_time_s"),
        "torch_version": torch.__version__, "python_version": platform.python_version(),
        "threads": torch.get_num_threads(), "git_commit": logs.git_commit(), "status": status,
    }
    logs.write_json(run_dir / "summary.json", summary)
    problem.plot(history, run_dir / "profile.png")
    return summary


def _median(frame: pd.DataFrame, column: str) -> float | None:
    return float(frame[column].median()) if len(frame) else None


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()


def _sigterm_as_interrupt():
    """SIGTERM (a scheduler's kill) gets the same clean stop as Ctrl-C."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. some launchers): leave signals alone
        return None
