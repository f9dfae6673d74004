"""Resume, divergence guard and signals: a stopped run, resumed, ends where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pandas as pd
import pytest
import torch

from blowup.errors import ConfigError
from blowup.training import trainer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_plots")]  # launches processes; no profile.png

# 2 guess, 8 Adam, 4 L-BFGS and 2 LM steps, a checkpoint every 3: small enough to run many times
TINY = [
    "experiment=smoke",
    "optim.guess.steps=2",
    "optim.adam.steps=8",
    "optim.lbfgs.steps=4",
    "optim.lm.steps=2",
    "checkpoint_every=3",
    "equation.points=21",
    "equation.local_points=9",
    "equation.eval_points=1001",
    "device=cpu",
]
TOTAL = 16
FINISHED = ("completed", "not_converged")  # ran every phase; too short to say it converged


@pytest.fixture(scope="module")
def config(compose_train):
    return lambda *overrides: compose_train(*TINY, *overrides)


def checkpoint_step(run_dir) -> int:
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["step"]


def signal_self(sig):
    return lambda problem: os.kill(os.getpid(), sig)


class Killed(Exception):
    """A hard kill: the run dies without its clean stop (no final checkpoint, no summary)."""


def kill(problem):
    raise Killed


def assert_same_run(a, b):
    """Same final λ (to round-off) and the same log, one row per step, as the uninterrupted run."""
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sb["status"] == sa["status"] in FINISHED and sb["steps"] == sa["steps"] == TOTAL
    assert sb["lambda"] == pytest.approx(sa["lambda"], rel=1e-12, abs=1e-14)
    ma, mb = (pd.read_csv(d / "metrics.csv") for d in (a, b))
    assert list(mb.step) == list(range(TOTAL))
    assert list(mb.phase) == list(ma.phase)
    for column in ("loss", "lambda"):
        assert mb[column].to_numpy() == pytest.approx(ma[column].to_numpy(), rel=1e-10, abs=1e-14)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, config):
    run_dir = tmp_path_factory.mktemp("reference")
    trainer.train(config(), run_dir)
    return run_dir


@pytest.mark.parametrize("step, phase", [(0, "guess"), (5, "adam"), (11, "lbfgs"), (14, "lm")])
def test_interrupt_then_resume_in_place(tmp_path, at_step, config, reference, step, phase):
    at_step(step, signal_self(signal.SIGINT))
    summary = trainer.train(config(), tmp_path)
    assert summary["status"] == "interrupted" and summary["steps"] == step + 1
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert (state["step"], state["phase"]) == (step + 1, phase)  # the stopping step is logged and checkpointed
    at_step(None)
    summary = trainer.train(config(), tmp_path)
    assert summary["meta"]["resumed_at_step"] == step + 1
    assert_same_run(reference, tmp_path)


def test_kill_between_checkpoints_drops_rows_logged_after_the_checkpoint(tmp_path, at_step, config, reference):
    at_step(12, kill)
    with pytest.raises(Killed):
        trainer.train(config(), tmp_path)
    assert checkpoint_step(tmp_path) == 12  # checkpoint_every=3: step 12 is only in the log
    with open(tmp_path / "metrics.csv", "a") as log:
        log.write("13,lbfgs,0.12")  # and the kill cut the next row short
    at_step(None)
    trainer.train(config(), tmp_path)
    assert_same_run(reference, tmp_path)


def test_resume_from_another_dir_copies_the_log_and_leaves_it_alone(tmp_path, at_step, config, reference):
    old, new = tmp_path / "old", tmp_path / "new"
    at_step(5, signal_self(signal.SIGTERM))
    trainer.train(config(), old)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    at_step(9, signal_self(signal.SIGTERM))  # steps 6..9, then stop
    summary = trainer.train(config(f"resume={old}"), new)
    assert summary["meta"]["resumed_from"] == str(old) and summary["steps"] == 10
    at_step(None)
    summary = trainer.train(config(f"resume={old}"), new)  # the same command again, as a requeued job would
    assert summary["meta"]["resumed_from"] == str(new) and summary["meta"]["resumed_at_step"] == 10
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    assert_same_run(reference, new)


def test_resume_refuses_another_problem(tmp_path, config, reference):
    with pytest.raises(ConfigError, match=r"profile=0 \(this run: 1\)"):
        trainer.train(config(f"resume={reference}", "profile=1"), tmp_path)


def test_more_steps_continue_a_finished_run(tmp_path, config, reference):
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    summary = trainer.train(config("optim.lm.steps=4"), tmp_path)
    log = pd.read_csv(tmp_path / "metrics.csv")
    assert summary["steps"] == TOTAL + 2 and list(log.step) == list(range(TOTAL + 2))
    assert list(log.phase[-4:]) == ["lm"] * 4


def nan_parameter(problem):
    with torch.no_grad():
        next(problem.parameters()).fill_(float("nan"))


def singular_solve(problem):
    """The next loss evaluation (step 7's) hits a singular linear solve; the ones after it (the outputs') do not."""

    def singular():
        del problem.residuals
        raise torch.linalg.LinAlgError("The solver failed because the input matrix is singular.")

    problem.residuals = singular


@pytest.mark.parametrize("blow_up", [nan_parameter, singular_solve])
def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, at_step, config, blow_up):
    at_step(6, blow_up)  # step 7 blows up
    summary = trainer.train(config(), tmp_path)
    assert summary["status"] == "diverged"
    assert checkpoint_step(tmp_path) == summary["meta"]["checkpoint_step"] == 6
    log = pd.read_csv(tmp_path / "metrics.csv")
    assert list(log.step) == list(range(7))  # the step that blew up is not logged
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["problem"].values())
    # the outputs are the checkpoint's: the state after step 5, the one step 6's row was logged at
    assert summary["lambda_network"] == pytest.approx(log["lambda"][6], rel=1e-12)


def test_sigint_and_sigterm_stop_cleanly_and_resume_finishes(tmp_path, stopped_train, config):
    """Real signals to real `blowup train` processes, each at a step (both at once: they take seconds to start):
    the step that got it finishes, is logged and checkpointed, and the process exits 130."""
    stops = {"SIGINT": 3, "SIGTERM": 10}  # in Adam and in L-BFGS, neither just before a checkpoint_every step
    runs = {
        sig: (tmp_path / sig, stopped_train(step, sig, *TINY, f"hydra.run.dir={tmp_path / sig}"))
        for sig, step in stops.items()
    }
    for sig, (run_dir, proc) in runs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        summary = json.loads((run_dir / "summary.json").read_text())
        log = pd.read_csv(run_dir / "metrics.csv")
        assert summary["status"] == "interrupted" and summary["steps"] == stops[sig] + 1
        assert list(log.step) == list(range(summary["steps"])) == list(range(checkpoint_step(run_dir)))
    run_dir = runs["SIGTERM"][0]
    summary = trainer.train(config(), run_dir)
    assert summary["status"] in FINISHED and summary["meta"]["resumed_at_step"] == stops["SIGTERM"] + 1
    assert list(pd.read_csv(run_dir / "metrics.csv").step) == list(range(TOTAL))
