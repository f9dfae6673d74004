"""What a finished (or stopped) run leaves: summary.json, solution.csv, the figure, and its one closing line.

A run that ran every phase is "completed" only if the problem finds its own result acceptable (its error
estimates within tolerance), else "not_converged": the summary never says more than the result shows.
"""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

import pandas as pd
import torch

from blowup.config import PHASES
from blowup.engine.device import device_name
from blowup.problem import STAGE_PHASES
from blowup.training import logs
from blowup.training.steps import final_loss, judge


def write_outputs(run, status: str, evaluation: dict | None) -> dict:
    """summary.json, solution.csv and the plot of `run` (a trainer.RunState) as it stands. `evaluation` is the
    problem's verdict on this state when the phases already computed it, else None."""
    cfg, problem, run_dir = run.cfg, run.problem, run.run_dir
    wall_time = run.wall_time()
    history = pd.read_csv(run_dir / "metrics.csv")
    loss = final_loss(problem)
    evaluation = evaluation or problem.evaluate()
    verdict = judge(problem, evaluation, cfg.headline)
    if status == "completed" and verdict:
        status = "not_converged"
    failure = verdict if status == "not_converged" else None
    rejected, result_verdict = None, verdict if cfg.headline == "result" else problem.failure(evaluation)
    if result_verdict:  # the result fails the problem's own check: kept aside, labelled, never reported as found
        evaluation, replaced = problem.network_result(evaluation)
        rejected = {"reason": result_verdict, **replaced} if replaced else None
    solution = problem.solution()
    (problem.network_solution(solution) if rejected else solution).to_csv(run_dir / "solution.csv", index=False)
    last_phase = next((p for p in reversed(PHASES + STAGE_PHASES) if p in run.stop_reasons), None)
    meta = run.meta
    commit = meta["git_commit"] and meta["git_commit"] + ("-dirty" if meta["git_dirty"] else "")
    summary = {
        "equation": cfg.equation.name,
        "backend": cfg.backend.name,
        "sobolev": cfg.sobolev,
        "device": str(run.device),
        "device_name": device_name(run.device),
        "dtype": cfg.dtype,
        "seed": cfg.seed,
        "headline": cfg.headline,
        **evaluation,
        "loss": loss,
        "steps": len(history),
        "wall_time_s": wall_time,
        "step_time_median_s": _median(history, "step_time_s"),
        "deriv_time_median_s": _median(history, "deriv_time_s"),
        "step_time_median_by_phase_s": {p: float(s.median()) for p, s in history.groupby("phase").step_time_s},
        "estimated_step_time_s": run.estimate.get("step_time_s"),
        "estimated_time_s": run.estimate.get("time_s"),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "threads": torch.get_num_threads(),
        "git_commit": commit,
        "status": status,
        "failure": failure,
        "reported": "network" if rejected else "result",
        "rejected_result": rejected,
        "stop_reason": run.stop_reasons.get(last_phase),
        "stop_reasons": run.stop_reasons,
        "restarts": run.restarts,
        "handbacks": run.handbacks,
        "time_limits": run.time_limits,
        "meta": {**meta, "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
    }
    if cfg.headline == "network":  # a PINN study: the network's own figures first, the result after them
        summary = lead_with_network(summary)
    logs.write_json(run_dir / "summary.json", summary)
    problem.plot(history, run_dir / problem.plot_name)
    return summary


def lead_with_network(summary: dict) -> dict:
    """The summary with the network's own fields (`<name>_network`) right after what names the run."""
    names = list(summary)[: list(summary).index("headline") + 1]
    network = {k: v for k, v in summary.items() if k.endswith("_network")}
    return {k: summary[k] for k in names} | network | summary


def network_figures(summary: dict) -> str:
    """The network's own errors, as the closing line of a PINN study gives them."""
    errors = [k for k in summary if k.endswith("error_network") and "estimate" not in k]
    return ", ".join(f"{k.removesuffix('_network')} {summary[k]:.2g}" for k in errors if summary[k] is not None)


def status_line(summary: dict, run_dir: Path) -> str:
    """One line: how the run ended, the figure that decided it, and where its outputs are."""
    colour = {"completed": "green", "not_converged": "red", "diverged": "red"}.get(summary["status"], "yellow")
    why = f": {summary['failure']}" if summary.get("failure") else ""
    rejected = summary.get("rejected_result")
    if rejected and not summary.get("failure"):
        why = f"; its refined result was rejected ({rejected['reason']}): the figures are the network's"
    elif rejected:
        why += "; the figures reported are the network's"
    network = f"network alone: {network_figures(summary)}; " if summary.get("headline") == "network" else ""
    return (
        f"{network}[bold {colour}]{summary['status']}[/bold {colour}]{why} (stop: {summary['stop_reason']}); "
        f"outputs in {run_dir}"
    )


def _median(frame: pd.DataFrame, column: str) -> float | None:
    return float(frame[column].median()) if len(frame) else None
