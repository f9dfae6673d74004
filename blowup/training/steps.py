"""One optimiser step of any phase, and what decides that a run or a phase stops.

The phases are Adam, L-BFGS and Levenberg-Marquardt, after an optional "guess" phase: Levenberg-Marquardt on
the problem's guess terms. Each step is taken from the state the metrics row describes, so a row is always the
loss of the parameters it lists.

Stopping. The first SIGINT or SIGTERM finishes the current step, then checkpoints and writes the summary with
status "interrupted"; a second one aborts at once. A NaN or inf in the loss or the parameters (or a singular
linear solve) is "diverged".
"""

from __future__ import annotations

import signal
import threading

import torch
from omegaconf import DictConfig

from blowup.engine.device import Clock
from blowup.problem import Problem
from blowup.solvers.lm import LevenbergMarquardt
from blowup.solvers.losses import loss_terms, residual_vector, total_loss
from blowup.training import logs

LINE_SEARCH_EVALS = 25  # most loss evaluations in one L-BFGS step (torch's default for 20 iterations)


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
    svd = cfg.get("svd") or ("range" if phase.startswith("stage") else problem.first_network_svd)
    return LevenbergMarquardt(problem, damping=cfg.damping, acceleration=cfg.acceleration, sketch=svd == "range")


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


def final_loss(problem: Problem) -> float:
    with torch.enable_grad():
        return total_loss(problem.residuals()).item()


def all_finite(loss: torch.Tensor, problem: Problem) -> bool:
    """False once the loss or any parameter is NaN or inf: the run has diverged (one sync, not one per tensor)."""
    values = [loss.reshape(1)] + [p.detach().flatten() for p in problem.parameters()]
    return bool(torch.isfinite(torch.cat(values)).all())


def judge(problem, evaluation: dict, headline: str, slack: float = 1.0) -> str | None:
    """The problem's verdict on what the run leads with: its result, or in a PINN study the network's own figures
    (the same check, on the network's fields), so that a study whose network is far off is not "completed".
    `slack`: the multiple of the problem's tolerances that passes (a network that later stages will refine)."""
    if headline == "network":
        network, _ = problem.network_result(evaluation)
        verdict = problem.failure(network, slack)
        return f"the network: {verdict}" if verdict else None
    return problem.failure(evaluation)


def accepted(problem: Problem, phase_cfg: DictConfig, phase_step: int, headline: str, slack: float = 1.0) -> bool:
    """Whether the problem accepts what the run leads with as it stands (checked every `accept_every` steps): its
    result, or in a PINN study the network's own figures, so that a study stops training a network that has
    reached the equation's tolerance by itself, and never because the refinement could finish the job."""
    every = phase_cfg.get("accept_every", 0)
    if not (problem.judges_results and every and phase_step % every == 0):
        return False
    return judge(problem, problem.evaluate(), headline, slack) is None


class StopOnSignal:
    """The first SIGINT or SIGTERM asks the loop to stop after the current step, so the checkpoint
    and the log agree; a second one aborts at once. Python only lets the main thread install
    handlers: elsewhere signals keep their usual meaning.

    A scheduler's time-limit signal (SIGUSR2, which submitit installs a requeue handler for) is taken over the
    same way: the run stops after the current step and checkpoints it, so a requeued job loses nothing, and
    only then is the scheduler's own handler called (`hand_over`), which requeues the job or says why not."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    TIME_LIMIT = getattr(signal, "SIGUSR2", None)

    def __enter__(self) -> StopOnSignal:
        self.requested, self.previous, self.time_limit = False, {}, None
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self.handle) for sig in self.SIGNALS}
            if self.TIME_LIMIT is not None and callable(signal.getsignal(self.TIME_LIMIT)):
                self.previous[self.TIME_LIMIT] = signal.signal(self.TIME_LIMIT, self.handle)
        return self

    def handle(self, signum, frame) -> None:
        if signum == self.TIME_LIMIT:
            self.requested, self.time_limit = True, (signum, frame)
            logs.console.print(
                "time limit signalled: checkpointing after this step, then handing over to the scheduler"
            )
            return
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logs.console.print(f"{signal.Signals(signum).name}: stopping after this step (send it again to abort now)")

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def hand_over(self) -> str | None:
        """After the checkpoint and the summary: the scheduler's handler for the time-limit signal, which requeues
        the job (and ends this process) or raises to say it will not; that refusal, as one line, or None."""
        handler = self.previous.get(self.TIME_LIMIT)
        try:
            handler(*self.time_limit)
        except Exception as refusal:  # submitit raises its UncompletedJobError: no requeue left
            return str(refusal).strip().splitlines()[0] if str(refusal).strip() else type(refusal).__name__
        return None
