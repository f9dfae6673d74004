"""CCF's 2nd unstable profile under grid refinement: does λ converge, and to what?

Profile 2 is found once as a run finds it (family entered at 0.7, followed into [0.4, 0.52] on a grid of spacing
0.005, Newton from where it turned smooth); then Newton on each grid of a sequence, each started from the one
before: spacings 0.004 to 0.00025 on s ∈ [-36, 60] (19683 to 390625 points), and two other intervals at
spacing 0.0005 (the tails' truncation). Per grid: λ, its change from the grid before, |λ - published|, the
residual between grid points (3x interpolant), the smoothness defect, the least transport speed, max |Ω|.

    python3 scripts/ccf_convergence.py [--out results/ccf_convergence.csv]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from blowup.equations.ccf.problem import DEFAULTS, PUBLISHED_LAMBDA
from blowup.equations.ccf.profile import family_measures, newton, rough_profile, smooth_in_bracket
from blowup.solvers.hilbert import LogGrid, interpolate

ROOT = Path(__file__).resolve().parents[1]
SPACINGS = [0.004, 0.002, 0.001, 0.0005, 0.00025]
INTERVALS = [(-40.0, 60.0), (-36.0, 70.0)]  # each end moved on its own, at spacing 0.0005


def row(solve, previous, interval, seconds: float) -> dict:
    measures = family_measures(solve)
    return {
        "left": interval[0],
        "right": interval[1],
        "points": solve.grid.points,
        "spacing": solve.grid.spacing,
        "converged": solve.converged,
        "lambda": solve.lam,
        "change_from_previous": abs(solve.lam - previous) if previous is not None else None,
        "vs_published": abs(solve.lam - PUBLISHED_LAMBDA[2]),
        "offgrid_residual_max": solve.offgrid_residual_max(),
        "smoothness_defect": measures["smoothness_defect"],
        "speed_min": measures["speed_min"],
        "omega_max": measures["omega_max"],
        "seconds": seconds,
    }


def on(interval, spacing, start):
    grid = LogGrid.with_spacing(*interval, spacing)
    clock = time.perf_counter()
    same = (start.grid.left, start.grid.right) == tuple(interval)
    # another interval: the profile moved onto it by linear interpolation in s (q at round-off off the old one)
    q = interpolate(start.q, start.grid, grid.points)[0] if same else np.interp(grid.s, start.grid.s, start.q, 0, 0)
    return newton(q, start.lam, grid), time.perf_counter() - clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "results" / "ccf_convergence.csv"))
    opts = parser.parse_args()
    defaults = DEFAULTS[2]
    scan_grid = LogGrid.with_spacing(*defaults.grid, defaults.scan_spacing)
    entry = defaults.entry_lambda
    scan = smooth_in_bracket(rough_profile(entry, scan_grid), entry, scan_grid, defaults.lambda_bracket, 0.02, entry)
    rows, last, previous, reference = [], scan.smooth, None, None
    for spacing in SPACINGS:
        solve, seconds = on(defaults.grid, spacing, last)
        rows.append(row(solve, previous, defaults.grid, seconds))
        print(rows[-1], flush=True)
        pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.16g")
        if solve.converged:
            last, previous = solve, solve.lam
        if solve.grid.spacing <= 0.0005 and solve.converged and reference is None:
            reference = solve
    for interval in INTERVALS if reference is not None else []:
        solve, seconds = on(interval, 0.0005, reference)
        rows.append(row(solve, reference.lam, interval, seconds))
        print(rows[-1], flush=True)
        pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.16g")


if __name__ == "__main__":
    main()
