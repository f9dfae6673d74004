"""Nothing left on disk crashes a command: a truncated or corrupt file in a run dir that `train` (re-run into the dir,
or `resume=`), `stability` or `report` reads gets one line naming the file and what to do, and the file is left as
it was. The oracle is the file's own bytes before and after, and the one-line contract of bad input."""

import shutil
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch

from blowup.analysis import report, stability
from blowup.equations.ccf.profile import CCF_EQUATION
from blowup.errors import ConfigError
from blowup.solvers.hilbert import LogGrid
from blowup.solvers.log_profile import ProfileSolve, load_solve, save_solve
from blowup.training import trainer

TINY = ("experiment=smoke", "optim.guess.steps=2", "optim.adam.steps=6", "optim.lbfgs.steps=0", "optim.lm.steps=0")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, compose_train):
    run_dir = tmp_path_factory.mktemp("finished")
    trainer.train(compose_train(*TINY), run_dir)
    return run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def truncate(path, keep=0.3):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path.read_bytes()


def garble(path):
    path.write_bytes(b"\x00\xff\x13 not what was written \x00" * 8)
    return path.read_bytes()


@pytest.mark.parametrize("damage", [truncate, garble])
def test_train_into_a_dir_with_a_damaged_checkpoint_names_it_and_leaves_it(run_copy, compose_train, damage):
    before = damage(run_copy / "checkpoint.pt")
    with pytest.raises(ConfigError, match=r"checkpoint\.pt cannot be read .* left as it is; move it away"):
        trainer.train(compose_train(*TINY), run_copy)
    assert (run_copy / "checkpoint.pt").read_bytes() == before


def test_a_checkpoint_from_another_version_names_it_and_leaves_it(run_copy, compose_train, capsys):
    """A whole checkpoint whose problem lacks a buffer this version has (one written before it was added)."""
    state = torch.load(run_copy / "checkpoint.pt", weights_only=False)
    state["problem"].pop(next(iter(state["problem"])))
    torch.save(state, run_copy / "checkpoint.pt")
    before = (run_copy / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"checkpoint\.pt does not fit this version .*Missing key.* left as it is"):
        trainer.train(compose_train(*TINY), run_copy)
    assert stability.main([str(run_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not fit" in err and "Traceback" not in err
    assert (run_copy / "checkpoint.pt").read_bytes() == before


def test_resume_from_a_damaged_checkpoint_names_it(run_copy, compose_train, tmp_path):
    before = truncate(run_copy / "checkpoint.pt")
    with pytest.raises(ConfigError, match=str(run_copy / "checkpoint.pt")):
        trainer.train(compose_train(*TINY, f"resume={run_copy}"), tmp_path / "new")
    assert (run_copy / "checkpoint.pt").read_bytes() == before


def test_resume_with_a_garbled_log_names_it_and_leaves_it(run_copy, compose_train):
    before = garble(run_copy / "metrics.csv")
    with pytest.raises(ConfigError, match=r"metrics\.csv cannot be read"):
        trainer.train(compose_train(*TINY), run_copy)
    assert (run_copy / "metrics.csv").read_bytes() == before


@pytest.mark.slow  # resumes a run to its end: the fast suite stays under 30 s
def test_resume_with_a_cut_log_drops_only_the_cut_row(run_copy, compose_train):
    """A kill mid-row leaves half a row: the resumed log keeps every whole row before the checkpoint."""
    text = (run_copy / "metrics.csv").read_text()
    (run_copy / "metrics.csv").write_text(text[: len(text) - 25])
    summary = trainer.train(compose_train(*TINY), run_copy)
    log = pd.read_csv(run_copy / "metrics.csv")
    assert list(log.step) == list(range(summary["steps"]))


@pytest.mark.parametrize("name, damage", [("checkpoint.pt", truncate), ("config.yaml", garble)])
def test_stability_skips_a_damaged_run_with_one_line(run_copy, capsys, name, damage):
    before = damage(run_copy / name)
    assert stability.main([str(run_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and "Traceback" not in err
    assert (run_copy / name).read_bytes() == before


@pytest.mark.parametrize("name, damage", [("summary.json", truncate), ("metrics.csv", garble)])
def test_report_skips_a_damaged_run_with_one_line(run_copy, capsys, name, damage, tmp_path):
    before = damage(run_copy / name)
    assert report.main([str(run_copy), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err
    assert (run_copy / name).read_bytes() == before


@pytest.mark.slow
def test_the_console_script_says_one_line_and_exits_2(run_copy, run_blowup):
    truncate(run_copy / "checkpoint.pt")
    result = run_blowup("train", *TINY, f"hydra.run.dir={run_copy}")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "checkpoint.pt cannot be read" in result.stderr


@pytest.mark.slow
def test_sigkill_mid_phase_then_resume_ends_where_an_uninterrupted_run_ends(tmp_path, run_blowup):
    """SIGKILL gives the run no chance to save: the last periodic checkpoint (written whole or not at all) and the
    log's whole rows are what a resume continues from, and it must reach the uninterrupted run's end."""
    budget = ("experiment=smoke", "optim.adam.steps=300", "optim.lbfgs.steps=0", "optim.lm.steps=0")
    whole = tmp_path / "whole"
    assert run_blowup("train", *budget, f"hydra.run.dir={whole}").returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        ["blowup", "train", *budget, "checkpoint_every=7", f"hydra.run.dir={killed}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = killed / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (log.is_file() and len(log.read_text().splitlines()) > 40) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed: give it more steps"
    assert run_blowup("train", *budget, "checkpoint_every=7", f"hydra.run.dir={killed}").returncode == 0
    ends = [pd.read_csv(d / "metrics.csv") for d in (whole, killed)]
    assert list(ends[1].step) == list(ends[0].step)
    assert ends[1]["loss"].tolist() == ends[0]["loss"].tolist()


@pytest.mark.parametrize("damage", [truncate, garble])
def test_a_saved_log_grid_profile_comes_back_whole_or_not_at_all(tmp_path, damage):
    """`save_solve`/`load_solve` (what long scripts resume from): an intact file gives back every number it was
    given; a damaged one is a ValueError naming it, never a crash or a profile with garbage in it."""
    grid = LogGrid(-4.0, 6.0, 101)
    q = np.exp(-(grid.s**2))
    path = tmp_path / "member.npz"
    save_solve(ProfileSolve(0.4713, q, grid, 7, True, equation=CCF_EQUATION), path, seconds=12.5)
    solve, figures = load_solve(path, CCF_EQUATION)
    assert np.array_equal(solve.q, q) and solve.lam == 0.4713 and (solve.steps, solve.converged) == (7, True)
    assert (solve.grid.left, solve.grid.right, solve.grid.points) == (-4.0, 6.0, 101) and figures == {"seconds": 12.5}
    assert not list(tmp_path.glob("*.partial.npz"))  # written beside it, then renamed over it
    damage(path)
    with pytest.raises(ValueError, match="member.npz"):
        load_solve(path, CCF_EQUATION)
