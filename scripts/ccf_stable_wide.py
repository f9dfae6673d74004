"""CCF's stable profile analysed on intervals wide enough for slowly decaying odd modes.

On its default [-40, 80] `blowup stability` counts the stable profile's odd class as complete only above Re ν = 1.44:
below it an odd eigenfunction, decaying far out like e^(-(ν - λ)s/(1 + λ)), still holds too much at the right end
for any analysis there to see it (`PerturbationClass.shown_above`; the 1st unstable profile has such a mode,
ν = 0.633069, README). Here the profile is solved from a rough start on two uniform grids over [-40, R] for each R
in `--right` (spacings `--spacings`, the default run's) and analysed as `blowup stability` does (both classes, the
scan): one row per R with the counts, the modes and the bound above which each class is complete.

    python3 scripts/ccf_stable_wide.py --right 300 600 --out results/ccf_stable_wide.csv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from blowup.equations.ccf.profile import solve_profile
from blowup.solvers.hilbert import LogGrid
from blowup.solvers.log_stability import LogGridStability

LEFT = -40.0
START = 1.25  # λ of the rough start: Newton goes to the stable profile from it (tests/test_gclm.py does the same)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--right", type=float, nargs="+", default=[300.0, 600.0])
    parser.add_argument("--spacings", type=float, nargs=2, default=[0.2, 0.15])
    parser.add_argument("--out", required=True, type=Path)
    opts = parser.parse_args()
    if not opts.out.parent.is_dir():
        parser.error(f"--out {opts.out}: no folder {opts.out.parent}")
    rows = []
    for right in opts.right:
        started = time.perf_counter()
        coarse, fine = (solve_profile(START, LogGrid.with_spacing(LEFT, right, h)) for h in opts.spacings)
        row = {"right": right, "points": f"{coarse.grid.points}/{fine.grid.points}"}
        if not (coarse.converged and fine.converged):
            rows.append(row | {"converged": False, "seconds": time.perf_counter() - started})
            continue
        spectrum = LogGridStability(coarse, fine).analyse()
        counts = spectrum.counts
        rows.append(
            row
            | {
                "converged": True,
                "lambda": fine.lam,
                "lambda_error_estimate": abs(fine.lam - coarse.lam),
                "residual_between_points": fine.offgrid_residual_max(),
                **spectrum.unstable_counts(),
                "modes": " ".join(
                    f"{m.nu.real:.10f}{m.nu.imag:+.1e}j ({m.parity}, {m.symmetry or '-'})" for m in spectrum.modes
                ),
                "complete_above_even": counts["complete_above_by_class"].get("even"),
                "complete_above_odd": counts["complete_above_by_class"].get("odd"),
                "candidates": len(counts["candidates_in_continuum"]),
                "scan_not_smooth": len(counts["scan_not_smooth"]),
                "seconds": time.perf_counter() - started,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.12g")


if __name__ == "__main__":
    main()
