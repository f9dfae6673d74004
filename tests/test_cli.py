"""The installed console script, end to end: tiny runs, bad input, and a non-editable install."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import blowup

pytestmark = pytest.mark.slow  # launches processes or trains end to end

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("backend", ["ntp", "autograd"])
def test_smoke_run_writes_every_output(tmp_path, backend):
    run = tmp_path / "run"
    result = blowup("train", "experiment=smoke", f"backend={backend}", "profile=1", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "summary.json").read_text())
    for key in (
        "equation",
        "profile",
        "backend",
        "sobolev",
        "device",
        "dtype",
        "seed",
        "lambda",
        "lambda_exact",
        "lambda_error",
        "profile_max_error",
        "residual_max",
        "steps",
        "wall_time_s",
        "step_time_median_s",
        "deriv_time_median_s",
        "torch_version",
        "git_commit",
        "status",
    ):
        assert key in summary, key
    assert summary["backend"] == backend and summary["lambda_exact"] == 0.25
    # too short to converge, or not: either way the status is what the error estimate says
    assert summary["status"] == (
        "completed"
        if summary["lambda_error_estimate"] <= 1e-9 and summary["profile_error_estimate"] <= 1e-9
        else "not_converged"
    )
    assert summary["lambda_error_estimate_network"] == pytest.approx(summary["lambda_error_network"], rel=0.5)
    metrics = pd.read_csv(run / "metrics.csv")
    assert {
        "step",
        "phase",
        "loss",
        "loss_residual",
        "loss_smooth",
        "lambda",
        "wall_time_s",
        "step_time_s",
        "deriv_time_s",
    } <= set(metrics.columns)
    assert list(metrics.step) == list(range(summary["steps"])) and set(metrics.phase) == {
        "guess",
        "adam",
        "lbfgs",
        "lm",
    }
    training = metrics[metrics.phase != "guess"]
    assert training.loss.iloc[-1] < training.loss.iloc[0]
    solution = pd.read_csv(run / "solution.csv")
    assert len(solution) >= 1001 and list(solution.columns) == ["X", "U", "U_network", "U_exact"]
    assert (run / "checkpoint.pt").stat().st_size > 0 and (run / "profile.png").stat().st_size > 0


@pytest.mark.parametrize(
    "override, key",
    [
        ("equation=heat", "equation"),
        ("backend=finite", "backend"),
        ("profile=-1", "profile"),
        ("sobolev=-1", "sobolev"),
        ("optim.adam.steps=-1", "optim.adam.steps"),
        ("profile=abc", "profile"),
        ("device=cuda", "device"),
        ("dtype=int8", "dtype"),
        ("profile=1000", "profile"),
        ("equation.weights.smooth=-1", "equation.weights.smooth"),
        ("equation.weights.residual=-1", "equation.weights.residual"),
        ("optim.adam.lr=-1", "optim.adam.lr"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, override, key):
    if override == "device=cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is visible")
    result = blowup("train", override, f"hydra.run.dir={tmp_path / 'x'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "override, allowed",
    [
        ("optim.lm.bogus=1", "steps, damping, acceleration, patience, rtol, accept_every"),
        ("equation.lm_weights.smoth=1", "residual, sobolev, smooth, origin, boundary"),
    ],
)
def test_unknown_key_names_the_keys_its_group_has(tmp_path, override, allowed):
    result = blowup("train", override, f"hydra.run.dir={tmp_path / 'x'}")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert override.split("=")[0] in result.stderr and result.stderr.strip().endswith(f"allowed keys: {allowed}")


def test_bad_value_inside_a_sweep_is_caught_before_any_run(tmp_path):
    result = blowup("train", "-m", "profile=0,-1", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 2 and "profile" in result.stderr and not any(tmp_path.iterdir())


def test_help_lists_groups_and_keys():
    result = blowup("train", "--help")
    assert result.returncode == 0
    for word in ("equation", "backend", "optim", "experiment", "profile", "sobolev", "device", "dtype", "seed"):
        assert word in result.stdout


def test_unknown_command():
    result = blowup("fly")
    assert result.returncode == 2 and "train" in result.stderr and "Traceback" not in result.stderr


def test_non_editable_install_finds_its_configs(tmp_path):
    """Hydra's configs must travel with the package: install a copy elsewhere and run from there."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "from blowup.config import config_dir; print(config_dir())"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert Path(found.stdout.strip()).is_relative_to(target), found.stdout + found.stderr
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "blowup.cli",
            "train",
            "experiment=smoke",
            "optim.guess.steps=0",
            "optim.adam.steps=2",
            "optim.lbfgs.steps=0",
            "optim.lm.steps=0",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 2
