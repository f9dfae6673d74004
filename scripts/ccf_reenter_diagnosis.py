"""Why the family scan started from CCF's profile 2 itself (`init_from`) did not find profile 2, and what does: the
scanning grid's members near the profile, taken from a converged run's profile resampled onto that grid, and the
scans from there and from the default run's entry.

    python3 scripts/ccf_reenter_diagnosis.py RUN2_DIR --out results/ccf_reenter_diagnosis.csv

RUN2_DIR: a finished `blowup train equation=ccf profile=2` run (its solution.csv's q, resampled, starts the scan, as
init_from's refined profile does). Rows, each with the wall time it took:
- member: the non-smooth family's member at σ on the scanning grid (Newton with σ fixed, the scan's tolerance)
  from the start's member, σ at the run's λ and the scan's steps up (halved) and down: Newton's steps, the defect,
  the least transport speed and max |Ω| (a member of another branch shows as many steps and a steeper front);
- scan: `smooth_in_bracket` from the run's profile (as before reenter), from the default run's entry at 0.7 (what
  the default run does), with reenter (what init_from now does), and from the entry's own smooth member: the range
  it covered and the λ where the defect changed sign (empty where it did not). The entry's scan is kept for the
  process (as in a run), so reenter's row times only the scan from the profile.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from blowup.equations.ccf.profile import CCF_EQUATION
from blowup.solvers.hilbert import LogGrid
from blowup.solvers.log_profile import FAMILY_TOLERANCE, _scan_from_entry, newton, smooth_in_bracket

BRACKET, ENTRY, SCAN_STEP, SPACING = (0.4, 0.52), 0.7, 0.02, 0.005  # profile 2's defaults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/ccf_reenter_diagnosis.csv"))
    opts = parser.parse_args()
    lam = json.loads((opts.run / "summary.json").read_text())["lambda"]
    solution = pd.read_csv(opts.run / "solution.csv")
    grid = LogGrid.with_spacing(-36.0, 60.0, SPACING)
    resampled = np.interp(grid.s, solution.s.to_numpy(), solution.q.to_numpy(), left=0.0, right=0.0)
    rows = []

    def timed(row: dict, started: float) -> None:
        rows.append(row | {"wall_s": time.perf_counter() - started})
        print(json.dumps(rows[-1]), flush=True)
        pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.10g")

    started = time.perf_counter()
    start = newton(CCF_EQUATION, resampled, lam, grid, smooth=False, tolerance=FAMILY_TOLERANCE)
    members = [("start", start, started)]
    for step in (SCAN_STEP, SCAN_STEP / 2, SCAN_STEP / 4, SCAN_STEP / 8, -SCAN_STEP / 8):  # the scan's halvings
        began = time.perf_counter()
        members.append(
            (
                f"step {step:+g}",
                newton(CCF_EQUATION, start.q, lam + step, grid, smooth=False, tolerance=FAMILY_TOLERANCE),
                began,
            )
        )
    for label, member, began in members:
        measures = CCF_EQUATION.measures(member.q, member.lam, grid) if member.converged else {}
        timed(
            {
                "row": "member",
                "label": label,
                "lambda": member.lam,
                "converged": member.converged,
                "newton_steps": member.steps,
                "defect": measures.get("smoothness_defect"),
                "speed_min": measures.get("speed_min"),
                "omega_max": measures.get("omega_max"),
            },
            began,
        )
    scans = {
        "from the run's profile": lambda: smooth_in_bracket(CCF_EQUATION, start.q, lam, grid, BRACKET, SCAN_STEP),
        "from the entry (the default run's path)": lambda: _scan_from_entry(
            CCF_EQUATION, grid, BRACKET, SCAN_STEP, ENTRY
        ),
        "from the run's profile, reenter": lambda: smooth_in_bracket(
            CCF_EQUATION, start.q, lam, grid, BRACKET, SCAN_STEP, ENTRY, reenter=True
        ),
    }
    entered = None
    for label, scan in scans.items():
        began = time.perf_counter()
        found = scan()
        entered = found if label.startswith("from the entry") else entered
        timed(_scan_row(label, found), began)
    began = time.perf_counter()
    found = smooth_in_bracket(CCF_EQUATION, entered.smooth.q, entered.smooth.lam, grid, BRACKET, SCAN_STEP)
    timed(_scan_row("from the entry's smooth member", found), began)


def _scan_row(label: str, scan) -> dict:
    return {
        "row": "scan",
        "label": label,
        "covered_lo": scan.covered[0] if scan.covered else None,
        "covered_hi": scan.covered[1] if scan.covered else None,
        "lambda_smooth": scan.smooth.lam if scan.smooth is not None else None,
    }


if __name__ == "__main__":
    main()
