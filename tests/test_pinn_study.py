"""The PINN study mode (experiment=pinn_study): every phase runs to its own stopping rule, later network stages fit
what the first network left, and the network's own figures lead the console, summary.json and `blowup report`."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from blowup.analysis import report
from blowup.equations import build_problem, burgers
from blowup.training import outputs, trainer

TINY = (
    "experiment=pinn_study",
    "optim.guess.steps=2",
    "optim.adam.steps=8",
    "optim.lbfgs.steps=4",
    "optim.lm.steps=4",
    "optim.stage.steps=3",
    "equation.stages=3",
    "optim.restarts=0",
    "equation.points=41",
    "equation.local_points=9",
    "equation.eval_points=1001",
    "equation.model.width=8",
    "equation.model.depth=2",
    "checkpoint_every=5",
    "allow_not_converged=true",
    "device=cpu",
)
PHASES = ["guess", "adam", "lbfgs", "lm", "stage2", "stage3"]
# one later stage and a tolerance every state passes: each phase is accepted at its first check unless asked for more
LOOSE = (*TINY, "profile=0", "equation.stages=2", "optim.handoff=1", "optim.lm.accept_every=1")
LOOSE += ("optim.stage.accept_every=1", "equation.tolerance.lambda_error=10", "equation.tolerance.profile_error=10")

pytestmark = pytest.mark.slow  # whole tiny runs (two later stages, or CCF's family scan and Newton): ~15-20 s each


@pytest.fixture(scope="module")
def study(tmp_path_factory, compose_train):
    run_dir = tmp_path_factory.mktemp("study")
    summary = trainer.train(compose_train(*TINY, "profile=1"), run_dir)
    return run_dir, summary


def test_every_phase_runs_to_its_own_stopping_rule(study):
    run_dir, summary = study
    assert list(summary["stop_reasons"]) == PHASES
    assert "accepted" not in summary["stop_reasons"].values()
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics.phase.unique()) == PHASES
    assert (metrics.groupby("phase").size()[["adam", "lbfgs"]] == [8, 4]).all()  # budgets this small run out


def test_the_networks_figures_lead(study):
    run_dir, summary = study
    keys = list(json.loads((run_dir / "summary.json").read_text()))
    first = keys[keys.index("headline") + 1 :][:6]
    assert summary["headline"] == "network" and all(k.endswith("_network") for k in first)
    assert summary["lambda_error"] is not None  # the refined result is still there, as the reference
    assert outputs.status_line(summary, run_dir).startswith(
        f"network alone: lambda_error {summary['lambda_error_network']:.2g}, "
        f"profile_max_error {summary['profile_max_error_network']:.2g}; "
    )
    row = report.record(run_dir, summary, pd.read_csv(run_dir / "metrics.csv"))
    columns = list(row)
    assert columns.index("lambda_error_network") < columns.index("lambda_error")


def test_each_later_stage_is_reported_with_the_composite_it_makes(study):
    _, summary = study
    stages = summary["network_stages"]
    assert [s["stage"] for s in stages] == [1, 2, 3]
    last_kept = [s for s in stages if s["kept"]][-1]  # the network: a later stage that bought nothing is dropped
    assert last_kept["lambda_error"] == pytest.approx(summary["lambda_error_network"], abs=1e-15)
    assert last_kept["profile_max_error"] == pytest.approx(summary["profile_max_error_network"], rel=1e-9)
    assert stages[0]["profile_max_error"] != stages[1]["profile_max_error"]  # stage 2 was begun and moved
    assert all(s["parameters"] == stages[0]["parameters"] for s in stages)  # each stage one more network


def test_a_later_stage_begins_on_either_backend(compose_train):
    """Its scale comes from the residual on the fine grid, computed without grad: n-TangentProp even under autograd."""
    scales = {}
    for backend in ("ntp", "autograd"):
        torch.manual_seed(0)  # the same network for both
        problem = build_problem(compose_train(*TINY, "profile=0", f"backend={backend}"))
        problem.start_phase("stage2")
        scales[backend] = problem.stages[0].net.scale.item()
    assert scales["autograd"] == pytest.approx(scales["ntp"], rel=1e-12) and scales["ntp"] > 0


def test_a_stage_that_leaves_the_network_worse_is_dropped_and_the_network_is_as_before(compose_train):
    """The oracle: the first network's own profile and λ (taken before the stage began) and its errors against the
    closed form. A stage blown up to a thousand times its scale can only make the network worse."""
    torch.manual_seed(0)
    problem = build_problem(compose_train(*TINY, "profile=0"))
    x = problem._fine_grid()
    with torch.no_grad():
        u_before, lam_before = problem.profile(x).clone(), problem.lam.item()
    alone = problem.evaluate()
    problem.start_phase("stage2")
    stage = problem.stages[0]
    with torch.no_grad():
        stage.net.net[-1].weight.mul_(1e3)
        stage.net.net[-1].bias.add_(1.0)
        problem.lam_raw.add_(0.1)  # as a stage's phase moves λ too
    trained = [p.detach().clone() for p in stage.parameters()]
    assert problem.end_phase("stage2").startswith("stage 2 dropped")
    with torch.no_grad():
        assert torch.equal(problem.profile(x), u_before) and problem.lam.item() == lam_before
    evaluation = problem.evaluate()
    for key in ("lambda_error_network", "profile_max_error_network", "residual_max_network"):
        assert evaluation[key] == alone[key]
    first, dropped = evaluation["network_stages"]
    assert first["kept"] and not dropped["kept"] and dropped["profile_max_error"] > 10 * first["profile_max_error"]
    assert problem.end_phase("stage2") is None  # as on a resume after it: nothing changes, nothing begins again
    problem.start_phase("stage2")
    assert all(torch.equal(a, b) for a, b in zip(trained, stage.parameters()))
    with torch.no_grad():
        assert torch.equal(problem.profile(x), u_before)


def test_a_network_later_stages_will_refine_is_handed_off_at_the_multiple_and_taken_back_when_they_cannot(
    tmp_path, compose_train
):
    """optim.handoff: with a later stage to come, the network phase is accepted once the network passes that multiple
    of the tolerance (here so large that its first check passes); the stage then runs, and the run is judged at the
    tolerance itself, which a network this small cannot reach: the network takes it back, goes on at the tolerance
    (not accepted again), and the stage begins afresh after it. With no later stage, the same key accepts nothing."""
    handed = (*TINY, "profile=0", "optim.lm.accept_every=1", "optim.handoff=1e12", "optim.restarts=0")
    staged = trainer.train(compose_train(*handed, "equation.stages=2"), tmp_path / "staged")
    phases = pd.read_csv(tmp_path / "staged" / "metrics.csv").phase
    runs = [phase for i, phase in enumerate(phases) if i == 0 or phases[i - 1] != phase]
    assert runs == ["guess", "adam", "lbfgs", "lm", "stage2", "lm", "stage2"]
    assert list(phases).count("lm") == 1 + 4  # accepted at its first check, then its whole budget
    (handback,) = staged["handbacks"]  # the composite judged at the tolerance, as the run at its end
    assert (
        handback.startswith("the network: ")
        and "tolerance 1e-10" in handback
        and "tolerance 1e-10" in staged["failure"]
    )
    assert staged["status"] == "not_converged" and staged["stop_reasons"]["lm"] != "accepted"
    single = trainer.train(compose_train(*handed, "equation.stages=1"), tmp_path / "single")
    assert single["stop_reasons"]["lm"] != "accepted" and single["handbacks"] == []
    assert single["status"] == "not_converged"


def test_a_null_handoff_is_the_equations_own(tmp_path, compose_train, monkeypatch):
    """optim.handoff=null: the network is handed off at the multiple the equation asks for (Burgers': handoff_for(k));
    at one so large that its first check passes, LM is accepted there; at 1 nothing is handed off."""
    handed = (*TINY, "profile=0", "equation.stages=2", "optim.lm.accept_every=1", "optim.handoff=null")
    runs = {}
    for multiple in (1e12, 1.0):
        monkeypatch.setattr(burgers, "handoff_for", lambda k, multiple=multiple: multiple)
        summary = trainer.train(compose_train(*handed, "optim.restarts=0"), tmp_path / str(multiple))
        phases = pd.read_csv(tmp_path / str(multiple) / "metrics.csv").phase
        runs[multiple] = (len(summary["handbacks"]), list(phases).index("stage2") - list(phases).index("lm"))
    assert runs == {1e12: (1, 1), 1.0: (0, 4)}  # LM accepted at its first check (then taken back), or its whole budget


def test_the_last_stage_is_accepted_at_its_own_multiple_of_the_tolerance(tmp_path, compose_train):
    """optim.stage.accept_at: the last stage's acceptance check passes at that multiple of the tolerance. With a
    tolerance every state passes, the first network is accepted at its first check either way; the stage at
    accept_at 1 likewise, while at 1e-30 (a goal under round-off) it runs its whole budget."""
    at_tolerance = trainer.train(compose_train(*LOOSE, "optim.stage.accept_at=1"), tmp_path / "one")
    beyond = trainer.train(compose_train(*LOOSE, "optim.stage.accept_at=1e-30"), tmp_path / "beyond")
    for summary in (at_tolerance, beyond):
        assert summary["stop_reasons"]["lm"] == "accepted" and summary["status"] == "completed"
    assert at_tolerance["stop_reasons"]["stage2"] == "accepted"
    assert beyond["stop_reasons"]["stage2"] != "accepted"
    steps = [list(pd.read_csv(tmp_path / name / "metrics.csv").phase).count("stage2") for name in ("one", "beyond")]
    assert steps == [1, 3]


def test_a_null_stage_accept_at_is_the_equations_own(tmp_path, compose_train, monkeypatch):
    """optim.stage.accept_at=null: the last stage is accepted at the multiple the equation asks for (Burgers':
    stage_accept_at_for(k)), as at that number given: at 1, with a tolerance every state passes, at its first check;
    at 1e-30 (a goal under round-off) after its whole budget. A trainer that ignores null fails one of the two."""
    steps = {}
    for multiple in (1.0, 1e-30):
        monkeypatch.setattr(burgers, "stage_accept_at_for", lambda k, multiple=multiple: multiple)
        trainer.train(compose_train(*LOOSE, "optim.stage.accept_at=null"), tmp_path / str(multiple))
        steps[multiple] = list(pd.read_csv(tmp_path / str(multiple) / "metrics.csv").phase).count("stage2")
    assert steps == {1.0: 1, 1e-30: 3}


def test_a_network_taken_back_starts_its_stages_afresh_from_its_own_lambda(compose_train):
    """reset_stages: the composite is the first network again, bit for bit, λ where it was when stage 2 began."""
    torch.manual_seed(0)
    problem = build_problem(compose_train(*TINY, "profile=0"))
    x = problem._fine_grid()
    with torch.no_grad():
        u_before, lam_before = problem.profile(x).clone(), problem.lam.item()
    problem.start_phase("stage2")
    with torch.no_grad():
        problem.lam_raw.add_(0.1)
    problem.reset_stages()
    assert not any(stage.net.begun for stage in problem.stages) and problem.lam.item() == lam_before
    with torch.no_grad():
        assert torch.equal(problem.profile(x), u_before)
    problem.start_phase("stage2")
    assert problem.stages[0].net.begun


def test_a_later_stage_keeps_its_smoothness_rows_near_the_origin_and_the_first_network_its_own(compose_train):
    """From k = 5 the first network's smoothness rows reach X = 0.3; a later stage's stay within stage_local_radius
    (their order-(2k+4) Taylor rows far out held the stage back), and the first network's come back with its phases."""
    problem = build_problem(compose_train(*TINY, "profile=5", "equation.stages=2"))
    assert problem.x_local.max().item() == pytest.approx(0.3)
    problem.start_phase("stage2")
    assert problem.x_local.min().item() == 0 and problem.x_local.max().item() == pytest.approx(0.075)
    assert len(problem.x_local) == 9 // 2 + 1  # equation.local_points=9, the X >= 0 half
    problem.reset_stages()
    problem.start_phase("lm")
    assert problem.x_local.max().item() == pytest.approx(0.3)


def test_the_first_networks_levenberg_marquardt_takes_its_own_smoothness_interval(compose_train):
    """equation.lm_local_radius: the first network's LM phase alone moves its smoothness rows to that interval; the
    phases that find λ_k (Adam, L-BFGS) keep local_radius, and a later stage its stage_local_radius."""
    problem = build_problem(compose_train(*TINY, "profile=5", "equation.stages=2", "equation.lm_local_radius=0.15"))
    radii = {}
    for phase in ("adam", "lbfgs", "lm", "stage2"):
        problem.start_phase(phase)
        radii[phase] = problem.x_local.max().item()
    assert radii == pytest.approx({"adam": 0.3, "lbfgs": 0.3, "lm": 0.15, "stage2": 0.075})


def test_a_later_stage_collocates_on_its_own_global_points_weighted_by_their_number(compose_train):
    """equation.stage_points: a later stage's residual rows on that many points (the X >= 0 half), each row's weight
    sqrt(Q / N) for its own N, so the sum of squares still approximates the same integral; the first network's
    phases keep equation.points, and a checkpoint does not carry the stage's grid (the config does)."""
    problem = build_problem(compose_train(*TINY, "equation.points=21", "equation.stage_points=81"))
    problem.start_phase("lm")
    first_rows = problem.residuals()["residual"].square().sum().item()
    assert len(problem.terms()["residual"][0]) == 11
    problem.start_phase("stage2")
    x = problem.terms()["residual"][0]
    assert len(x) == 41 and x.min().item() == 0 and x.max().item() == pytest.approx(2.0)
    assert problem.sobolev_scale[0].item() * 41**0.5 == pytest.approx(
        problem.cfg.lm_weights.residual**0.5 / problem.stages[0].net.scale.item(), rel=1e-12
    )
    assert "x_stage_global" not in problem.state_dict()
    problem.reset_stages()
    problem.start_phase("lm")
    assert len(problem.terms()["residual"][0]) == 11
    assert problem.residuals()["residual"].square().sum().item() == first_rows


def test_a_log_grid_study_takes_its_network_on_by_levenberg_marquardt_and_leads_with_it(tmp_path, compose_train):
    """CCF in the study mode: a Levenberg-Marquardt phase after L-BFGS (its Jacobian through the nonlocal rows),
    every phase to its stopping rule with no acceptance and no restart, and the network's figures first, its λ
    error measured against the refined λ. The default mode keeps its three phases."""
    tiny = ["equation=ccf", "equation.points=41", "equation.model.width=8", "optim.guess.steps=2",
            "optim.adam.steps=30", "optim.lbfgs.steps=10", "optim.lm.steps=10", "allow_not_converged=true",
            "device=cpu"]  # fmt: skip
    assert build_problem(compose_train(*tiny)).phases == ("guess", "adam", "lbfgs")
    summary = trainer.train(compose_train(*tiny, "experiment=pinn_study"), tmp_path)
    assert list(summary["stop_reasons"]) == ["guess", "adam", "lbfgs", "lm"] and summary["restarts"] == []
    assert "accepted" not in summary["stop_reasons"].values()
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    by_phase = metrics.groupby("phase", sort=False).loss
    assert by_phase.last()["lm"] < 0.5 * by_phase.last()["lbfgs"]  # Gauss-Newton on the nonlocal rows gains at once
    keys = list(summary)
    assert keys[keys.index("headline") + 1].endswith("_network")
    assert summary["lambda_error_network"] == pytest.approx(abs(summary["lambda_network"] - summary["lambda"]))
    assert outputs.status_line(summary, tmp_path).startswith(
        f"network alone: lambda_error {summary['lambda_error_network']:.2g}; "
    )


LOG_GRID_TINY = ["equation=ccf", "equation.points=41", "equation.model.width=8", "optim.guess.steps=2",
                 "optim.adam.steps=30", "optim.lbfgs.steps=10", "optim.lm.steps=10", "allow_not_converged=true",
                 "device=cpu"]  # fmt: skip


def test_a_log_grid_stage_that_raises_the_loss_is_dropped_and_the_network_is_as_before(compose_train):
    """The keep rule on a stage whose output is made far too large: dropped with one line, w is the first network's
    again (every value equal) and σ where the first network left it."""
    torch.manual_seed(0)
    problem = build_problem(compose_train(*LOG_GRID_TINY, "equation.stages=2", "optim.stage.frequencies=[3.0]"))
    s = problem.s
    with torch.no_grad():
        first_w, before = problem.w(s).clone(), problem.lam_raw.clone()
    problem.start_phase("stage2")
    stage = problem.stages[0].net
    assert stage.active and problem.stage_lambda_raw[0, 0] == before
    with torch.no_grad():
        stage.scale.mul_(1e6)
        problem.lam_raw.add_(0.5)  # as if the stage's phase had moved σ
        assert not torch.equal(problem.network_w(s), first_w)
    said = problem.end_phase("stage2")
    assert said.startswith("stage 2 dropped: the network's residual") and not stage.active and stage.begun
    with torch.no_grad():
        assert torch.equal(problem.network_w(s), first_w) and torch.equal(problem.lam_raw, before)


def test_a_log_grid_study_fits_a_later_stage_and_reports_what_each_stage_bought(tmp_path, compose_train):
    """CCF's network with a second stage: its Levenberg-Marquardt phase after the first network's, one row per
    stage in network_stages, and the network's reported σ that of the composite the keep rule left."""
    cfg = compose_train(*LOG_GRID_TINY, "experiment=pinn_study", "equation.stages=2", "optim.stage.steps=10")
    summary = trainer.train(cfg, tmp_path)
    assert list(summary["stop_reasons"]) == ["guess", "adam", "lbfgs", "lm", "stage2"]
    first, second = summary["network_stages"]
    assert first["frequency"] is None and second["frequency"] in cfg.optim.stage.frequencies
    assert first["parameters"] == second["parameters"] == (1 * 8 + 8) + (8 * 8 + 8) + (8 * 1 + 1)  # 1-8-8-1 MLP
    reported = second if second["kept"] else first
    assert summary["lambda_network"] == pytest.approx(reported["lambda"], abs=1e-15)
    assert summary["lambda_error_network"] == pytest.approx(reported["lambda_error"], abs=1e-15)
    assert summary["residual_max_network"] == reported["residual_max"]  # the figure the keep rule compares
    assert second["kept"] == (second["residual_max"] < first["residual_max"])


def test_the_study_scripts_row_for_a_start_run_that_fails_says_why_and_no_study_run_follows(tmp_path):
    """scripts/pinn_study.py --start: a start run that exits non-zero (here refused at its config) ends its row with
    the start run's own error line; the study run, which init_from's check would only refuse, is not made."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "pinn_study.py"
    out, runs = tmp_path / "rows.csv", tmp_path / "runs"
    args = ["--ks", "2", "--seeds", "0", "--start", "equation=ccf", "equation.points=600"]
    args += ["--extra", "equation=ccf", "--out", str(out), "--runs", str(runs)]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (row,) = pd.read_csv(out).to_dict("records")
    assert row["exit_code"] == 2 and pd.isna(row.get("wall_s"))
    assert row["status"].startswith(f"start run failed ({runs / 'start_k2_s0'}): ")
    assert "equation.points=600 is invalid: allowed an odd integer" in row["status"]
    assert not any(runs.glob("study_*"))
