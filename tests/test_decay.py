"""The README's "Adding an equation", exactly as shown: the example equation's file is the README's code
block, it is registered, and `blowup train equation=decay` finds λ = 1 from the CLI."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_block(after: str, language: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(after) :]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def test_the_readme_shows_the_example_equation_verbatim():
    assert readme_block("## Adding an equation", "python") == (ROOT / "blowup/equations/decay.py").read_text()
    assert readme_block("conf/equation/decay.yaml", "yaml") == (ROOT / "conf/equation/decay.yaml").read_text()


@pytest.mark.slow
def test_the_example_equation_runs_from_the_cli(run_blowup, check_png, tmp_path):
    run = run_blowup("train", "equation=decay", f"hydra.run.dir={tmp_path}")
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and abs(summary["lambda"] - 1) < 1e-6  # U' + λU = 0 with U(1) = 1/e
    solution = pd.read_csv(tmp_path / "solution.csv")
    x = np.linspace(0, 1, 1001)
    assert list(solution.columns) == ["X", "U", "U_exact"] and np.abs(solution.X - x).max() < 1e-15
    assert np.abs(solution.U_exact - np.exp(-x)).max() < 1e-15 and np.abs(solution.U - np.exp(-x)).max() < 1e-5
    check_png(tmp_path / "solution.png", 900, 350)  # figsize (9, 3.5) at matplotlib's default 100 dpi
