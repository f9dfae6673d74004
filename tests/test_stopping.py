"""How runs end: phases stop by convergence, a run that found no profile says so, and the exit codes."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
import torch

from blowup.equations import build_problem
from blowup.equations.burgers import Burgers
from blowup.solvers.stopping import Convergence
from blowup.training import trainer
from blowup.training.steps import judge

SMOKE = ["experiment=smoke", "device=cpu"]
ROUND_OFF = 4 * 2.0**-52
# a run that cannot find a profile: the network as initialised, one LM step, no Newton correction
HOPELESS = [
    "equation.refine=0",
    "equation.initial_guess=none",
    "optim.adam.steps=0",
    "optim.lbfgs.steps=0",
    "optim.lm.steps=1",
]


pytestmark = pytest.mark.usefixtures("no_plots")  # nothing here looks at profile.png


@pytest.fixture(scope="module")
def config(compose_train):
    return lambda *overrides: compose_train(*SMOKE, *overrides)


def test_convergence_needs_patience_steps_without_enough_progress():
    conv = Convergence(patience=3, rtol=0.1)
    assert not any(conv.update(loss) for loss in [8.0, 4.0, 2.0, 1.0, 0.5])  # halving every step: going on
    assert not conv.update(0.49) and not conv.update(0.48)  # best 1.0, then 0.5, three steps back: still > 10%
    assert conv.update(0.47)  # 0.5 -> 0.47 over the last 3 steps: less than 10%


def test_convergence_follows_the_best_loss_and_rtol_zero_never_stops():
    noisy = Convergence(patience=2, rtol=0.5)
    assert not any(noisy.update(loss) for loss in [1.0, 5.0, 0.4])  # a spike does not count as progress lost
    assert not noisy.update(7.0)  # best 1.0 two steps back, 0.4 now: 60% down
    assert noisy.update(6.0)  # best 0.4 two steps back and now
    never = Convergence(patience=1, rtol=0.0)
    assert not any(never.update(1.0) for _ in range(10))


def test_state_round_trips():
    conv = Convergence(patience=2, rtol=0.5)
    for loss in [1.0, 0.9]:
        conv.update(loss)
    again = Convergence(patience=2, rtol=0.5)
    again.load_state_dict(conv.state_dict())
    assert again.update(0.8) == conv.update(0.8) is True


@pytest.mark.slow
def test_a_run_that_found_no_profile_ends_not_converged(tmp_path, config):
    summary = trainer.train(config(*HOPELESS), tmp_path)
    assert summary["status"] == "not_converged" and summary["stop_reason"] == "max_steps"
    assert summary["failure"].startswith(("lambda_error_estimate", "profile_error_estimate"))
    assert summary["profile_max_error"] > 1e-2  # it really is wrong, and the estimate says so
    assert summary["profile_max_error"] / 10 < summary["profile_error_estimate"] < 10 * summary["profile_max_error"]


@pytest.mark.slow
def test_not_converged_exits_3_and_a_sweep_runs_every_value(tmp_path):
    args = [
        "blowup",
        "train",
        "-m",
        *SMOKE,
        *HOPELESS,
        "allow_not_converged=false",
        "seed=0,1",
        f"hydra.sweep.dir={tmp_path}",
    ]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 3, run.stderr
    statuses = [
        json.loads((tmp_path / f"{i}_burgers_k0_ntp_m1_s{i}" / "summary.json").read_text())["status"] for i in (0, 1)
    ]
    assert statuses == ["not_converged"] * 2 and "not_converged: " in run.stderr
    allowed = subprocess.run(
        args[:-2] + ["allow_not_converged=true", "seed=0", f"hydra.sweep.dir={tmp_path / 'ok'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.slow
def test_a_run_that_diverges_exits_4_with_its_last_good_checkpoint(tmp_path, stopped_train):
    """A NaN in the network after step 2: step 3 blows up, the process exits 4 and says so in summary.json."""
    proc = stopped_train(2, "nan", *SMOKE, "checkpoint_every=2", f"hydra.run.dir={tmp_path}")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 4, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["steps"] == 3 and summary["meta"]["checkpoint_step"] == 2


@pytest.mark.slow
def test_levenberg_marquardt_stops_once_converged(tmp_path, config):
    """An easy problem (k = 0, from the guess): LM stops long before its 400-step budget, and says why."""
    summary = trainer.train(config("optim.lm.steps=400", "optim.lm.patience=5", "optim.lm.rtol=0.5"), tmp_path)
    lm_steps = summary["steps"] - (5 + 30 + 10)  # guess, adam, lbfgs of experiment=smoke
    assert (
        summary["stop_reasons"]["lm"] in ("converged", "stalled")
        and summary["stop_reason"] == summary["stop_reasons"]["lm"]
    )
    assert 5 < lm_steps < 400


@pytest.mark.slow
def test_error_estimates_match_the_exact_errors_on_a_tiny_run(tmp_path, config):
    """The network's estimates (first Newton correction) and the refined result's (the next one)."""
    summary = trainer.train(config(), tmp_path)
    for stage in ("_network", ""):
        for name, true in (("lambda", "lambda_error"), ("profile", "profile_max_error")):
            estimate, exact = summary[f"{name}_error_estimate{stage}"], summary[f"{true}{stage}"]
            exact = max(exact, ROUND_OFF)  # a refined λ can be exact; its estimate is then the float spacing
            assert exact / 10 < estimate < exact * 10, (stage, name, estimate, exact)
    assert summary["profile_max_error"] < 1e-3 * summary["profile_max_error_network"]  # refining helps


@pytest.mark.slow
def test_training_ends_accepted_once_the_result_passes_its_own_error_estimates(tmp_path, config):
    """k = 0 from the guess: the Newton-refined result passes its tolerance long before LM's budget, and
    the run ends there; the estimates that accepted it agree with the closed-form profile."""
    summary = trainer.train(config("optim.lm.steps=400", "optim.lm.accept_every=20", "optim.lm.rtol=0"), tmp_path)
    assert summary["status"] == "completed" and summary["stop_reason"] == summary["stop_reasons"]["lm"] == "accepted"
    lm_steps = summary["steps"] - (5 + 30 + 10)
    assert lm_steps % 20 == 0 and lm_steps < 400
    assert summary["lambda_error"] <= 1e-12 and summary["profile_max_error"] <= 1e-11


@pytest.mark.slow
def test_a_pinn_study_accepts_only_once_the_network_itself_passes(tmp_path, config):
    """The same run, leading with its result or (headline=network, the PINN study) with the network: the refined
    result passes while the network alone is still off; the study trains on until the network's own estimates pass,
    and there its errors against the closed-form profile are within the tolerance."""
    runs = {}
    for headline in ("result", "network"):
        runs[headline] = trainer.train(
            config(
                "optim.lm.steps=400",
                "optim.lm.accept_every=20",
                "optim.lm.rtol=0",
                "equation.tolerance.lambda_error=1e-8",
                "equation.tolerance.profile_error=1e-8",
                f"headline={headline}",
            ),
            tmp_path / headline,
        )
        assert runs[headline]["status"] == "completed" and runs[headline]["stop_reasons"]["lm"] == "accepted"
    result, study = runs["result"], runs["network"]
    assert result["profile_max_error_network"] > 1e-8  # accepted on the refinement's say
    assert study["steps"] > result["steps"]
    assert study["lambda_error_network"] <= 1e-8 and study["profile_max_error_network"] <= 1e-8


@pytest.mark.slow
def test_a_bad_basin_restarts_from_a_fresh_network_and_says_why(tmp_path, monkeypatch, config):
    """The check runs as the last optimiser begins and after each of its steps: a bad basin sends the run back to
    its first phase with new parameters at once (the rest of that phase not run), at most optim.restarts times, and
    summary.json lists why. With no restart left the check is not asked: the phase runs to its end."""
    calls = []

    def bad_basin(self):
        calls.append(self.lam.item())
        return "lambda at its bracket edge" if len(calls) in (1, 3) else None  # the 1st start, the 2nd's first LM step

    monkeypatch.setattr(Burgers, "bad_basin", bad_basin)
    summary = trainer.train(config("optim.restarts=2", "equation.refine=0"), tmp_path)
    assert summary["restarts"] == ["lambda at its bracket edge", "lm step 1: lambda at its bracket edge"]
    assert len(calls) == 3 and calls[0] != calls[1]  # a fresh network, not the same one asked again
    phases = list(pd.read_csv(tmp_path / "metrics.csv").phase)
    starts = [i for i in range(len(phases)) if phases[i] == "guess" and (i == 0 or phases[i - 1] != "guess")]
    assert len(starts) == 3 and phases.count("lm") == 1 + 3 and summary["steps"] == 3 * (5 + 30 + 10) + 1 + 3
    none = trainer.train(config("optim.restarts=0", "equation.refine=0"), tmp_path / "none")
    assert none["restarts"] == [] and none["steps"] == 5 + 30 + 10 + 3


@pytest.mark.slow
def test_a_run_the_problem_rejects_restarts_and_only_the_last_verdict_counts(tmp_path, monkeypatch, config):
    """Every phase ran but the problem's failure check rejects the result (a basin the phases could not
    leave): a fresh network runs every phase again, while restarts remain."""
    verdicts = []

    def failure(self, evaluation, slack=1.0):
        verdicts.append(evaluation["lambda"])
        return "profile_error_estimate 1e-02 > tolerance 1e-09" if len(verdicts) == 1 else None

    monkeypatch.setattr(Burgers, "failure", failure)
    summary = trainer.train(config("optim.restarts=1", "equation.refine=0"), tmp_path)
    assert summary["restarts"] == ["not converged: profile_error_estimate 1e-02 > tolerance 1e-09"]
    assert summary["status"] == "completed" and summary["steps"] == 2 * (5 + 30 + 10 + 3)
    assert verdicts[0] != verdicts[1]  # a fresh network, not the same state judged twice


def test_bad_basin_is_lambda_at_a_bracket_edge_and_a_restart_redraws_the_network(config):
    problem = build_problem(config("profile=1"))
    for raw, bad in ((-8.0, True), (0.0, False), (8.0, True)):
        with torch.no_grad():
            problem.lam_raw.fill_(raw)
        assert (problem.bad_basin() is not None) == bad
    before = [p.detach().clone() for p in problem.u.parameters()]
    problem.reinitialize(1000)
    assert problem.lam_raw.item() == 0.0 and all(not torch.equal(a, b) for a, b in zip(before, problem.u.parameters()))


def test_a_log_grid_network_is_judged_by_its_lambda_against_the_refined_one(compose_train):
    """In a PINN study the network's own figures carry no error estimate (a CCF network has none of its own): its λ
    against the refined λ stands in, so a study whose network passes is judged, not crashed, and one whose network
    is off is not "completed". The evaluation is the shape CCF's `evaluate` gives, with the figures set by hand."""
    problem = build_problem(compose_train("equation=ccf", "equation.points=41", "equation.model.width=8"))
    refined = {"family_covered": [1.1, 1.3], "lambda_scan": 1.18, "newton_converged": True, "lambda": 1.18077766,
               "lambda_network": 1.18077766 + 1e-12, "lambda_error_estimate": 1e-14, "lambda_error_network": 1e-12,
               "residual_max": 1e-14, "residual_max_network": 1e-10}  # fmt: skip
    assert judge(problem, refined, "result") is None and judge(problem, refined, "network") is None
    off = refined | {"lambda_network": 1.18077766 + 1e-8, "lambda_error_network": 1e-8}
    assert judge(problem, off, "result") is None
    assert judge(problem, off, "network") == "the network: lambda_error_network 1.00e-08 > lambda_tolerance 1e-10"
