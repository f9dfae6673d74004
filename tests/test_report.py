"""`blowup report`: reads good runs, names and skips broken ones, writes the table and the plots."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from blowup.analysis import report
from blowup.config import config_dir
from blowup.equations.burgers import Burgers
from blowup.training import trainer

pytestmark = pytest.mark.slow  # launches processes or trains end to end

TINY = [
    "experiment=smoke",
    "optim.guess.steps=0",
    "optim.adam.steps=6",
    "optim.lbfgs.steps=2",
    "optim.lm.steps=1",
    "equation.points=21",
    "equation.local_points=9",
    "device=cpu",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A multirun-like folder: an ntp/autograd pair on profile 0, ntp on profile 1, and broken runs."""
    root = tmp_path_factory.mktemp("multirun")
    with pytest.MonkeyPatch.context() as patch, initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        patch.setattr(Burgers, "plot", lambda self, history, path: None)  # profile.png: slow, and not read here
        for num, (profile, backend) in enumerate([(0, "ntp"), (0, "autograd"), (1, "ntp")]):
            cfg = compose("train", overrides=TINY + [f"profile={profile}", f"backend={backend}"])
            trainer.train(cfg, root / f"{num}_burgers_k{profile}_{backend}")
    good = root / "0_burgers_k0_ntp"
    broken = {
        "running": lambda d: (d / "summary.json").unlink(),
        "corrupt_summary": lambda d: (d / "summary.json").write_text('{"equation": "burg'),
        "not_a_summary": lambda d: (d / "summary.json").write_text("[1, 2]"),
        "cut_row": lambda d: (d / "metrics.csv").write_text((d / "metrics.csv").read_text()[:-7]),
        "missing_rows": lambda d: (d / "metrics.csv").write_text(
            "".join((d / "metrics.csv").read_text().splitlines(keepends=True)[:-3])
        ),
        "empty_metrics": lambda d: (d / "metrics.csv").write_text(""),
        "just_started": lambda d: [(d / name).unlink() for name in ("summary.json", "metrics.csv")],
    }
    for name, damage in broken.items():
        shutil.copytree(good, root / f"9_{name}")
        damage(root / f"9_{name}")
    (root / ".hydra").mkdir()
    (root / ".hydra" / "metrics.csv").write_text("not a run")
    return root


def test_report_reads_good_runs_and_skips_broken_ones(sweep, tmp_path, capsys):
    assert report.main([str(sweep), "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    skipped = [line for line in err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 7 and all("/9_" in line for line in skipped), err
    for reason in (
        "no summary.json: still running",
        "corrupt summary.json",
        "not a run summary",
        "cut short",
        "6 rows, summary.json says 9 steps",
        "corrupt metrics.csv",
        "no summary.json\n",
    ):
        assert reason in err + "\n"
    assert "autograd" in out and "λ" in out

    table = pd.read_csv(tmp_path / "report.csv")
    assert sorted(zip(table.profile, table.backend)) == [(0, "autograd"), (0, "ntp"), (1, "ntp")]
    summary = json.loads((sweep / "0_burgers_k0_ntp" / "summary.json").read_text())
    row = table[(table.profile == 0) & (table.backend == "ntp")].iloc[0]
    assert row["lambda"] == summary["lambda"] and row.lambda_error == summary["lambda_error"]
    assert row.steps == 9 and row.step_time_median_s == summary["step_time_median_s"]

    lines = (tmp_path / "report.md").read_text().splitlines()  # the same rows as Markdown, pipes escaped
    assert len(lines) == 2 + 3 and lines[0].startswith("| equation | profile | backend |") and "\\|λ err\\|" in lines[0]
    assert all(line.count(" | ") == lines[0].count(" | ") for line in lines[2:])
    assert any(f"| {summary['lambda_error']:.2e} |" in line and "| ntp |" in line for line in lines[2:])

    pairs = pd.read_csv(tmp_path / "speedup.csv")
    assert len(pairs) == 1 and pairs.profile[0] == 0 and pairs.step_speedup[0] > 0
    for plot in ("speedup.png", "error_vs_time.png", "loss_curves.png"):
        assert (tmp_path / plot).stat().st_size > 10_000


def test_report_defaults_to_the_first_path_and_takes_single_runs(sweep, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(sweep / "2_burgers_k1_ntp", run)
    assert report.main([str(run), str(sweep / "2_burgers_k1_ntp")]) == 0
    assert len(pd.read_csv(run / "report.csv")) == 2
    assert not (run / "speedup.png").exists()


def test_report_without_a_readable_run_exits_2(sweep, tmp_path, capsys):
    assert report.main([str(sweep / "9_running"), str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("blowup: error: no readable run under")
    assert any("nowhere: no such file or directory" in line for line in err)
