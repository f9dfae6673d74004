"""The network's path through its phases, for runs already made: one row per run and mark (each phase's first and
last step, and every `--every` steps of a phase between), with σ (λ, or gCLM's α), its distance from the run's
refined σ (the reference a study measures the network against), the loss and the wall time.

    python3 scripts/network_path.py before=RUN_A after=RUN_B --every 500 --out ccf_network_profile2_path.csv

Each argument is LABEL=RUN_DIR (or a run directory, labelled by its name); the run needs its metrics.csv and a
summary.json (with the refined σ, or from a run stopped early, init_from's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def reference(run_dir: Path, scalar: str) -> float:
    """The run's refined σ; for a run stopped before its refinement (status "interrupted"), that of the run it
    started from (init_from), whose refined profile its refinement starts from."""
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary.get(scalar) is not None:
        return summary[scalar]
    start = OmegaConf.load(run_dir / "config.yaml").get("init_from")
    if not start:
        raise SystemExit(f"{run_dir}: no refined {scalar} in its summary and no init_from run to take it from")
    return reference(Path(start), scalar)


def path_rows(label: str, run_dir: Path, every: int) -> pd.DataFrame:
    metrics = pd.read_csv(run_dir / "metrics.csv")
    scalar = "alpha" if "alpha" in metrics.columns else "lambda"  # gCLM's unknown is its exponent α
    refined = reference(run_dir, scalar)
    marks = []
    for _, steps in metrics.groupby("phase", sort=False):
        inside = steps.step - steps.step.iloc[0]
        marks.append(steps[(inside % every == 0) | (steps.step == steps.step.iloc[-1])])
    rows = pd.concat(marks)[["phase", "step", "loss", scalar, "wall_time_s"]]
    rows.insert(0, "run", label)
    rows.insert(3, "phase_step", rows.step - rows.groupby("phase", sort=False).step.transform("first"))
    rows[f"{scalar}_error"] = (rows[scalar] - refined).abs()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR or RUN_DIR")
    parser.add_argument("--every", type=int, default=500, help="a mark every this many steps of a phase")
    parser.add_argument("--out", required=True, help="file name under results/")
    opts = parser.parse_args()
    out = ROOT / "results" / opts.out
    if not out.parent.is_dir():
        parser.error(f"--out {opts.out}: no folder {out.parent}; allowed: a file name under results/")
    if opts.every < 1:
        parser.error(f"--every {opts.every} is invalid: allowed an integer >= 1")
    runs = [(arg.split("=", 1) if "=" in arg else (Path(arg).name, arg)) for arg in opts.runs]
    missing = [path for _, path in runs if not (Path(path) / "summary.json").is_file()]
    if missing:
        parser.error(f"no summary.json in {', '.join(missing)}; allowed: finished run directories")
    table = pd.concat([path_rows(label, Path(path), opts.every) for label, path in runs], ignore_index=True)
    table.to_csv(out, index=False, float_format="%.10g")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
