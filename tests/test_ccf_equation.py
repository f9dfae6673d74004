"""`blowup train equation=ccf`: the network's residual against the profile solver's, both backends, a CLI run,
resume, bad values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import blowup, compose_train

from blowup.config import validate
from blowup.equations import build_problem
from blowup.equations.ccf.profile import residual
from blowup.errors import ConfigError
from blowup.training import trainer

PUBLISHED_STABLE = 1.1807776628998  # arXiv 2509.14185, Fig. 2


def problem_for(*overrides):
    cfg = compose_train("equation=ccf", *overrides)
    validate(cfg)
    torch.manual_seed(0)
    return build_problem(cfg)


@pytest.mark.parametrize("sobolev", [0, 2])
def test_network_residual_is_the_profile_equation_on_both_backends(sobolev):
    """The trained-on rows times e are the solver's residual (numpy, q_s by FFT rather than by the chain rule
    through the envelope) at the network's q, on a grid fine enough for the FFT derivative; the Sobolev rows
    are their s-derivatives; ntp and autograd agree to round-off."""
    rows = {}
    for backend in ("ntp", "autograd"):
        problem = problem_for(f"backend={backend}", f"sobolev={sobolev}", "equation.points=601")
        rows[backend] = problem("residual", problem.s).detach().numpy() * len(problem.s) ** 0.5
    s = problem.s.flatten().numpy()
    e = problem.envelope(problem.s, problem.lam)[0].detach().flatten().numpy()
    expected = residual(problem.network_q(s), problem.lam.item(), problem.grid)
    assert rows["ntp"].shape == (len(s), sobolev + 1)
    assert np.abs(rows["ntp"][:, 0] * e - expected).max() < 1e-9 * np.abs(expected).max()
    assert np.abs(rows["ntp"] - rows["autograd"]).max() < 1e-10 * np.abs(rows["ntp"]).max()


def test_the_envelope_has_the_profiles_ends():
    """q = e w: e ~ e^s at the origin (Θ ~ y²) and ~ e^(-s/(1+λ)) far out (Θ ~ |y|^(λ/(1+λ))); e'/e as stated."""
    problem = problem_for("equation.points=101")
    lam = problem.lam.detach()
    s = torch.linspace(-30, 60, 901).view(-1, 1)
    e, log_slope = problem.envelope(s, lam)
    numeric = torch.gradient(torch.log(e).flatten(), spacing=(s.flatten(),))[0]
    assert (numeric - log_slope.flatten())[1:-1].abs().max() < 1e-3
    assert abs(log_slope[0].item() - 1) < 1e-12 and abs(log_slope[-1].item() + 1 / (1 + lam.item())) < 1e-12


@pytest.mark.slow
def test_cli_run_finds_the_stable_profile_writes_its_outputs_and_its_stability(tmp_path):
    run = blowup("train", "equation=ccf", "experiment=smoke", f"hydra.run.dir={tmp_path}")
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["equation"] == "ccf"
    assert abs(summary["lambda"] - PUBLISHED_STABLE) < 1e-10 and summary["residual_max"] < 1e-9
    assert summary["lambda_error_estimate"] < 1e-10
    solution = pd.read_csv(tmp_path / "solution.csv")
    assert {"y", "Theta", "Omega", "H_Theta"} <= set(solution.columns) and len(solution) == 1001
    assert (tmp_path / "profile.png").stat().st_size > 0
    analysis = blowup("stability", str(tmp_path))
    assert analysis.returncode == 0, analysis.stderr[-2000:]
    counts = json.loads((tmp_path / "stability.json").read_text())
    assert counts["n_unstable"] == 0 and counts["symmetry_modes"] == {"time": pytest.approx(1.0, abs=1e-10)}


@pytest.mark.slow
def test_a_bracket_without_a_profile_is_not_converged(tmp_path):
    """Above the stable profile the family's smoothness defect keeps its sign: the run says so, in its status."""
    cfg = compose_train(
        "equation=ccf", "experiment=smoke", "equation.lambda_bracket=[1.3,1.5]", "equation.scan_spacing=0.2"
    )
    validate(cfg)
    summary = trainer.train(cfg, tmp_path)
    assert summary["status"] == "not_converged" and "no smooth profile found" in summary["failure"]
    assert summary["lambda_scan"] is None and summary["family_covered"] == [1.3, 1.5]


@pytest.mark.parametrize(
    "override, key",
    [
        ("equation.points=300", "equation.points"),
        ("equation.lambda_bracket=[1.5,1.0]", "equation.lambda_bracket"),
        ("equation.newton_spacing=[0.1,0.2]", "equation.newton_spacing"),
        ("equation.newton_spacing=[0.02,0.01]", "equation.newton_spacing"),  # 12001 points: dense matrices of 1 GB
        ("equation.scan_spacing=0", "equation.scan_spacing"),
        ("equation.scan_step=0.8", "equation.scan_step"),
        ("equation.eval_points=501", "equation.eval_points"),
        ("equation.grid=[-5,80]", "equation.grid"),
        ("equation.weights.smoothness=-1", "equation.weights.smoothness"),
        ("profile=5", "profile"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_train("equation=ccf", override))
