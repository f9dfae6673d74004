"""An unfinished or rejected run never presents a rejected result as its answer: whatever the status, a refined
result that fails the equation's own check is set aside under `rejected_result` with the reason, and the figures
reported are the network's. The oracle for "rejected" is the check itself, restated from the README (λ inside its
bracket, both error estimates within the tolerance), not the code's verdict."""

import os
import signal

import pandas as pd
import pytest

from blowup.equations.burgers import exact_lambda
from blowup.training import trainer

TINY = ("experiment=smoke", "optim.guess.steps=2", "optim.adam.steps=8", "optim.lbfgs.steps=0", "optim.lm.steps=0")


def passes_the_readme_check(k: int, lam: float, lambda_estimate: float, profile_estimate: float) -> bool:
    lo, hi = 1 / (2 * k + 3), 1 / (2 * k + 1)
    return lo < lam < hi and lambda_estimate <= 1e-9 and profile_estimate <= 1e-9


def assert_labelled(summary, k):
    rejected = summary["rejected_result"]
    assert rejected is not None and summary["reported"] == "network"
    assert not passes_the_readme_check(
        k, rejected["lambda"], rejected["lambda_error_estimate"], rejected["profile_error_estimate"]
    )
    assert summary["lambda"] == summary["lambda_network"]
    assert summary["lambda_error"] == pytest.approx(abs(summary["lambda_network"] - exact_lambda(k)), abs=1e-15)
    assert summary["lambda_error_estimate"] == summary["lambda_error_estimate_network"]


@pytest.mark.slow  # a tiny run end to end: the fast suite stays under 30 s
def test_a_not_converged_run_reports_the_networks_figures(tmp_path, compose_train):
    summary = trainer.train(compose_train(*TINY, "profile=3"), tmp_path)
    assert summary["status"] == "not_converged"
    assert_labelled(summary, 3)
    assert summary["rejected_result"]["reason"] == summary["failure"]
    solution = pd.read_csv(tmp_path / "solution.csv")  # the profile written is the network's too
    assert (solution.U == solution.U_network).all() and not (solution.U_rejected == solution.U_network).all()


@pytest.mark.slow  # three / two tiny runs end to end: the fast suite stays under 30 s
def test_an_interrupted_run_labels_its_rejected_refinement(tmp_path, compose_train, at_step):
    """SIGINT after the fourth step (a real signal to this process, as Ctrl-C sends it)."""
    at_step(3, lambda problem: os.kill(os.getpid(), signal.SIGINT))
    summary = trainer.train(compose_train(*TINY, "profile=3"), tmp_path)
    assert summary["status"] == "interrupted" and summary["failure"] is None
    assert_labelled(summary, 3)


@pytest.mark.slow
def test_a_completed_run_reports_its_refined_result(tmp_path, compose_train):
    summary = trainer.train(compose_train("profile=0", "threads=1"), tmp_path)
    assert summary["status"] == "completed" and summary["rejected_result"] is None
    assert passes_the_readme_check(
        0, summary["lambda"], summary["lambda_error_estimate"], summary["profile_error_estimate"]
    )
    assert summary["lambda"] != summary["lambda_network"]  # the refinement, not the network, is the answer
