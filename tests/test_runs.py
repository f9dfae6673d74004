"""Unique run dirs for launches at the same instant, and the launcher presets running and composing a grid."""

from __future__ import annotations

import datetime
import json
import os
import subprocess

import hydra.core.utils
import pytest
from hydra import compose, initialize_config_dir

from blowup.analysis import report
from blowup.cli import register_resolvers
from blowup.config import config_dir

TINY = [
    "experiment=smoke",
    "optim.guess.steps=0",
    "optim.adam.steps=4",
    "optim.lbfgs.steps=2",
    "optim.lm.steps=1",
    "equation.points=21",
    "equation.local_points=9",
    "device=cpu",
]


def blowup_train(cwd, *args) -> subprocess.Popen:
    return subprocess.Popen(
        ["blowup", "train", *args, *TINY], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def summaries(root) -> dict:
    return {p.parent: json.loads(p.read_text()) for p in root.rglob("summary.json")}


class Frozen(datetime.datetime):
    """A clock that always reads the same microsecond: what two launches at the same instant see."""

    @classmethod
    def now(cls, tz=None):
        return cls(2024, 5, 6, 7, 8, 9, 123456, tzinfo=tz)


@pytest.fixture
def launched_as(monkeypatch):
    """`launched_as(pid)`: the run dir and sweep dir `blowup train` composes in a process with this pid, its clock
    frozen at one microsecond (Hydra's ${now:} resolver reads hydra.core.utils.datetime)."""
    monkeypatch.setattr(hydra.core.utils, "datetime", Frozen)

    def dirs(pid: int) -> tuple[str, str]:
        monkeypatch.setattr(os, "getpid", lambda: pid)
        register_resolvers()  # as `blowup train` does: ${pid:} is this process's pid
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            cfg = compose("train", overrides=["profile=1"], return_hydra_config=True)
        return cfg.hydra.run.dir, cfg.hydra.sweep.dir

    yield dirs
    monkeypatch.undo()
    register_resolvers()  # the real pid again


def test_launches_in_the_same_microsecond_get_their_own_dirs(launched_as):
    """Same config, same instant to the microsecond, default (timestamped) dirs: only the pid keeps them apart."""
    (run_a, sweep_a), (run_b, sweep_b) = launched_as(4242), launched_as(4343)
    assert run_a != run_b and sweep_a != sweep_b
    assert run_a.startswith("outputs/2024-05-06/07-08-09-123456") and run_a.endswith("burgers_k1_ntp")


@pytest.mark.slow
def test_local_parallel_preset_runs_the_grid_into_one_sweep_dir(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs pip install -e .[joblib]")
    proc = blowup_train(
        tmp_path, "-m", "hydra/launcher=local_parallel", "backend=ntp,autograd"
    )  # 2 workers, 1 run each
    assert proc.wait(timeout=180) == 0, proc.stderr.read()
    runs = summaries(tmp_path)  # the whole tree: workers must not scatter runs into sweep dirs of their own
    assert sorted(p.name for p in runs) == ["0_burgers_k0_ntp_m1_s0", "1_burgers_k0_autograd_m1_s0"]
    sweep_dirs = {p.parent for p in runs}
    assert len(sweep_dirs) == 1, f"runs scattered over {sorted(sweep_dirs)}: workers re-resolved ${{pid:}}"
    (sweep_dir,) = sweep_dirs
    assert all(s["status"] == "completed" for s in runs.values())
    assert report.main([str(sweep_dir)]) == 0
    assert len((sweep_dir / "speedup.csv").read_text().splitlines()) == 1 + 1


@pytest.mark.slow
def test_slurm_gpu_preset_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs pip install -e .[slurm]")
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose(
            "train", overrides=["hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.max_num_timeout) == ("gpu", 1, 3)
