"""The console script: what only a process shows (a run's outputs, exit 2 with one line and no traceback, --help, a
non-editable install), and the checks `blowup train` runs on its overrides before Hydra starts (in-process)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from blowup.cli import check_overrides, main
from blowup.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ntp", "autograd"])
def test_smoke_run_writes_every_output(run_blowup, check_png, tmp_path, backend):
    """k = 1 from the guess: the Newton-refined profile is exact to round-off even after a tiny training, so the run
    completes, and exits 0 without allow_not_converged (which experiment=smoke sets)."""
    run = tmp_path / "run"
    result = run_blowup(
        "train",
        "experiment=smoke",
        f"backend={backend}",
        "profile=1",
        "allow_not_converged=false",
        f"hydra.run.dir={run}",
    )
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
    assert summary["backend"] == backend and summary["status"] == "completed"
    assert abs(summary["lambda"] - 0.25) < 1e-14  # λ_1 = 1/(2k + 2)
    assert 1e-4 < abs(summary["lambda_network"] - 0.25) < 0.1  # the network alone is still far off: the estimate
    assert summary["lambda_error_estimate_network"] == pytest.approx(abs(summary["lambda_network"] - 0.25), rel=0.5)
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
    x, u, exact = solution.X.to_numpy(), solution.U.to_numpy(), solution.U_exact.to_numpy()
    assert x.min() == -2 and x.max() == 2 and np.all(np.diff(x) > 0)
    # the closed form U + U^5 = -X, met by the exact column and by the reported profile
    assert np.abs(exact + exact**5 + x).max() < 1e-14 and np.abs(u + u**5 + x).max() < 1e-13
    assert 1e-4 < np.abs(solution.U_network - exact).max() < 0.5
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=False)  # the state the run ended in, to resume
    assert checkpoint["step"] == summary["steps"]
    check_png(run / "profile.png", 1650, 462)  # figsize (15, 4.2) at 110 dpi


@pytest.mark.parametrize(
    "override, key",
    [
        ("equation=heat", "equation"),  # not an option of its group
        ("backend=finite", "backend"),
        ("dtype=int8", "dtype"),
        ("profile=abc", "profile"),  # not an int: composition fails
        ("sobolev=-1", "sobolev"),  # composes, then validate() refuses it
        ("device=cuda", "device"),  # on a machine without a GPU
        ("profile=0,-1", "profile"),  # a sweep: every value is checked
    ],
)
def test_bad_overrides_are_one_line_naming_their_key(override, key):
    if override == "device=cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError) as err:
        check_overrides("train", [override])
    message = str(err.value)
    assert "\n" not in message and message.startswith((f"{key}=", f"Error merging override {key}="))


@pytest.mark.parametrize(
    "override, allowed",
    [
        ("optim.lm.bogus=1", "steps, damping, acceleration, patience, rtol, accept_every, svd"),
        ("equation.lm_weights.smoth=1", "residual, sobolev, smooth, origin, boundary"),
    ],
)
def test_unknown_key_names_the_keys_its_group_has(override, allowed):
    with pytest.raises(ConfigError) as err:
        check_overrides("train", [override])
    message = str(err.value)
    assert "\n" not in message and override.split("=")[0] in message and message.endswith(f"allowed keys: {allowed}")


def test_unknown_command_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["fly"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and "'fly'" in err and "train" in err


@pytest.mark.slow
def test_bad_input_exits_2_with_one_line_and_no_traceback_before_any_run(run_blowup, tmp_path):
    """A bad value in the second value of a sweep: the process stops before the first run (no run dir)."""
    result = run_blowup("train", "-m", "profile=0,-1", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("blowup: error: profile=-1 is invalid")
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--help"], ["train", "--help"]])
def test_a_reader_that_stops_early_gets_no_traceback(args):
    """`blowup --help | head -1`: the pipe is closed before the command writes (it is still importing)."""
    child = subprocess.Popen(["blowup", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.stdout.close()
    _, err = child.communicate(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.slow
def test_help_lists_groups_and_keys(run_blowup):
    result = run_blowup("train", "--help")
    assert result.returncode == 0
    for word in ("equation", "backend", "optim", "experiment", "profile", "sobolev", "device", "dtype", "seed"):
        assert word in result.stdout


@pytest.mark.slow
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
