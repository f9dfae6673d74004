"""How close the pre-run cost estimate comes: short runs over backends and profiles, each row the probe's seconds
per step beside the run's measured median, per phase.

    python3 scripts/estimate_accuracy.py            # writes results/estimate_accuracy.csv and prints it

Each run takes a few steps of every phase (Adam's at autograd k = 3 take half a minute each), with threads=1 and
no time limit; the ratio measured / estimated is what the README quotes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [("ntp", k) for k in range(4)] + [("autograd", k) for k in range(4)]
STEPS = ("optim.guess.steps=4", "optim.adam.steps=3", "optim.lbfgs.steps=2", "optim.lm.steps=2")
FIXED = ("seed=0", "threads=1", "max_hours=null", "optim.lbfgs.accept_every=0", "optim.lm.accept_every=0")


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for backend, k in CONFIGS:
            run_dir = Path(scratch) / f"{backend}_{k}"
            args = ["train", f"profile={k}", f"backend={backend}", *STEPS, *FIXED, f"hydra.run.dir={run_dir}"]
            subprocess.run(["blowup", *args], capture_output=True, text=True, cwd=scratch)
            summary = json.loads((run_dir / "summary.json").read_text())
            for phase, measured in summary["step_time_median_by_phase_s"].items():
                estimated = summary["estimated_step_time_s"][phase]
                rows.append(
                    dict(
                        backend=backend,
                        profile=k,
                        phase=phase,
                        estimated_s=estimated,
                        measured_median_s=measured,
                        ratio=measured / estimated,
                    )
                )
            print(
                pd.DataFrame(rows).tail(len(summary["step_time_median_by_phase_s"])).to_string(index=False), flush=True
            )
    frame = pd.DataFrame(rows)
    out = ROOT / "results" / "estimate_accuracy.csv"
    frame.to_csv(out, index=False, float_format="%.4g")
    print(frame.to_string(index=False))
    print(
        f"ratio measured/estimated: min {frame.ratio.min():.2f}, median {frame.ratio.median():.2f}, "
        f"max {frame.ratio.max():.2f}; written to {out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
