"""Unique run dirs for concurrent launches, and the launcher presets running and composing a grid."""

from __future__ import annotations

import json
import subprocess

import pytest
from hydra import compose, initialize_config_dir

from blowup.analysis import report
from blowup.config import config_dir

pytestmark = pytest.mark.slow  # launches processes or trains end to end

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


def test_runs_started_together_get_their_own_dirs(tmp_path):
    """Same second, same config, default (timestamped) dirs: the pid in the name keeps them apart."""
    procs = [blowup_train(tmp_path), blowup_train(tmp_path)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    runs = summaries(tmp_path / "outputs")  # one shared dir would hold one summary, and a garbled log
    assert len(runs) == 2 and all(s["status"] == "completed" and s["steps"] == 7 for s in runs.values())


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


def test_slurm_gpu_preset_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs pip install -e .[slurm]")
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose(
            "train", overrides=["hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.max_num_timeout) == ("gpu", 1, 3)
