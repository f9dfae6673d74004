"""The README's "Adding an equation", exactly as shown: the example equation's file is the README's code
block, it is registered, and `blowup train equation=decay` finds λ = 1 from the CLI."""

import json
import re
import subprocess
from pathlib import Path

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
def test_the_example_equation_runs_from_the_cli(tmp_path):
    run = subprocess.run(
        ["blowup", "train", "equation=decay", f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["lambda_error"] < 1e-6 and summary["profile_max_error"] < 1e-5
    assert (tmp_path / "solution.png").stat().st_size > 0
