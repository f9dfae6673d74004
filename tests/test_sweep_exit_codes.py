"""A sweep exits with the largest exit code of its runs whichever launcher ran them: joblib runs its jobs in other
processes, whose return values never reach the launching one, so the code comes from what each run left."""

import json

import pytest


@pytest.mark.slow
def test_a_joblib_sweep_with_a_not_converged_run_exits_3(tmp_path, run_blowup):
    sweep = tmp_path / "sweep"
    result = run_blowup(
        "train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "experiment=smoke",
        "allow_not_converged=false",
        "profile=0,3",
        f"hydra.sweep.dir={sweep}",
    )
    statuses = sorted(json.loads(p.read_text())["status"] for p in sweep.glob("*/summary.json"))
    assert statuses == ["completed", "not_converged"]  # the tiny budget finds k = 0, not k = 3
    assert result.returncode == 3
