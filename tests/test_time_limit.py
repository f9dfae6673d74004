"""A scheduler's time limit loses nothing: the signal (SIGUSR2, submitit's) stops the run after the current step,
checkpoints it and writes the summary before the scheduler's own handler requeues the job; a job out of requeues
ends "timed_out", resumable. The oracle for "loses nothing" is an uninterrupted run of the same steps."""

import json
import os
import signal
import subprocess

import pandas as pd
import pytest

from blowup.cli import exit_code
from blowup.training import trainer

TINY = ("experiment=smoke", "optim.adam.rtol=0", "optim.lbfgs.steps=0", "optim.lm.steps=0", "checkpoint_every=100000")


@pytest.fixture
def scheduler():
    """A stand-in for submitit's handler: records when it is called (with the summary as it then is), and
    refuses to requeue when told to, raising as submitit does."""
    calls = []

    def handler(signum, frame):
        calls.append(json.loads((scheduler.run_dir / "summary.json").read_text()))
        if scheduler.refuse:
            raise RuntimeError("Job not requeued because: timed-out too many times.")

    previous = signal.signal(signal.SIGUSR2, handler)
    scheduler.calls, scheduler.refuse = calls, False
    yield scheduler
    signal.signal(signal.SIGUSR2, previous)


def time_limit(problem):
    os.kill(os.getpid(), signal.SIGUSR2)


@pytest.mark.slow  # three / two tiny runs end to end: the fast suite stays under 30 s
def test_the_time_limit_checkpoints_the_current_step_before_the_scheduler_requeues(
    tmp_path, compose_train, scheduler, at_step
):
    scheduler.run_dir = tmp_path / "run"
    at_step(8, time_limit)  # after the ninth step's row
    summary = trainer.train(compose_train(*TINY, "optim.adam.steps=30"), scheduler.run_dir)
    assert summary["status"] == "interrupted" and summary["steps"] == 9 and summary["time_limits"] == [9]
    assert len(scheduler.calls) == 1 and scheduler.calls[0]["steps"] == 9  # the summary was written first
    at_step(None)
    resumed = trainer.train(compose_train(*TINY, "optim.adam.steps=30"), scheduler.run_dir)
    whole = trainer.train(compose_train(*TINY, "optim.adam.steps=30"), tmp_path / "whole")
    assert resumed["steps"] == whole["steps"] and resumed["time_limits"] == [9]
    logs = [pd.read_csv(d / "metrics.csv") for d in (scheduler.run_dir, tmp_path / "whole")]
    assert logs[0]["loss"].tolist() == logs[1]["loss"].tolist()


@pytest.mark.slow  # a tiny run through its requeues: the fast suite stays under 30 s
def test_a_job_out_of_requeues_ends_timed_out(tmp_path, compose_train, scheduler, at_step):
    scheduler.run_dir, scheduler.refuse = tmp_path, True
    at_step(3, time_limit)
    summary = trainer.train(compose_train(*TINY, "optim.adam.steps=30"), tmp_path)
    assert summary["status"] == "timed_out" and "timed-out too many times" in summary["failure"]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "timed_out"
    assert exit_code(summary) == 124


@pytest.mark.slow
def test_a_submitit_local_sweep_requeues_on_its_time_limit_and_resumes(tmp_path):
    """The real launcher: timeout_min=1 signals the job every ~30 s and requeues it up to 3 times; a job far too
    long for that ends timed_out after its last requeue, every step logged once, and finishing it by hand gives
    what an uninterrupted run of the same steps gives."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    long = ("optim.adam.steps=10000000", "max_hours=null")
    result = subprocess.run(
        [
            "blowup",
            "train",
            "-m",
            *TINY,
            *long,
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=1",
            f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 124, result.stderr  # the sweep exits with its run's code: timed_out
    (run_dir,) = [d for d in sweep.iterdir() if (d / "summary.json").is_file()]
    summary = json.loads((run_dir / "summary.json").read_text())
    limits = summary["time_limits"]
    assert summary["status"] == "timed_out" and len(limits) == 4  # 3 requeues, then no more
    assert summary["steps"] == limits[-1] and summary["meta"]["resumed_at_step"] == limits[-2]  # nothing lost
    log = pd.read_csv(run_dir / "metrics.csv")
    assert list(log.step) == list(range(summary["steps"]))
    # across the first requeue, the log is what an uninterrupted run of the same steps logs
    reach = min(limits[0] + 20, summary["steps"])  # a loaded machine may take fewer steps in the later attempts
    assert reach > limits[0]
    guess = int((log.phase == "guess").sum())  # the rows before Adam's: `reach` counts them too
    subprocess.run(
        ["blowup", "train", *TINY, f"optim.adam.steps={reach - guess}", f"hydra.run.dir={tmp_path / 'whole'}"],
        check=True,
        capture_output=True,
    )
    whole = pd.read_csv(tmp_path / "whole" / "metrics.csv")
    assert log["loss"][:reach].tolist() == whole["loss"].tolist()
