"""What the scan of smooth eigenfunctions (`log_stability.SmoothResidual`) adds to `blowup stability`, per run.

For each run dir (a log-grid equation: CCF, gCLM): the analysis without the scan and with it (wall time, counts,
how many modes the scan found, each class's stretch and median σ), and, as the check that a genuine mode would pass
the floor on the same grids, σ(ν) at every mode the eigenvalues found (and at 1.01ν beside it): a genuine mode's σ
is its residual on the grid, so the scan finds a mode like it in its stretch where σ lies well below the floor.

    python3 scripts/stability_scan_check.py RUN_DIR [RUN_DIR ...] --out results/stability_scan_ccf.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from blowup.analysis.stability import stability_of
from blowup.solvers.log_stability import SmoothResidual, own_class


def check(run: Path) -> list[dict]:
    stability = stability_of(run)
    spectra, seconds = {}, {}
    for scan in (False, True):
        stability.scan = scan
        started = time.perf_counter()
        spectra[scan] = stability.analyse()
        seconds[scan] = time.perf_counter() - started
    counts, fine = spectra[True].counts, stability.fine
    base = {
        "run": run.name,
        "scalar": fine.lam,
        "grid_points": f"{stability.coarse.grid.points}/{fine.grid.points}",
        "seconds_without_scan": seconds[False],
        "seconds_with_scan": seconds[True],
        "n_unstable_without_scan": spectra[False].unstable_count(),
        "n_unstable_with_scan": spectra[True].unstable_count(),
        "n_found_by_scan": counts["n_found_by_scan"],
    }
    classes = [own_class(fine.equation, fine.lam), *fine.equation.other_classes(fine.lam)]
    rows = []
    for perturbations in classes:
        parity = perturbations.parity
        if parity not in counts["scanned_by_class"]:
            continue
        residual = SmoothResidual(perturbations.operator(fine.q, fine.lam, fine.grid), fine.grid)
        stretch = counts["scanned_by_class"][parity]
        for mode in [m for m in spectra[True].modes if m.parity == parity and abs(m.nu.imag) <= m.error]:  # real
            nu = mode.nu.real
            rows.append(
                base
                | {
                    "parity": parity,
                    "stretch_low": stretch[0],
                    "stretch_high": stretch[1],
                    "sigma_median": counts["scan_median_by_class"][parity],
                    "nu": nu,
                    "symmetry": mode.symmetry or "",
                    "found_by": mode.found_by,
                    "sigma_at_nu": residual.least(nu)[0],
                    "sigma_at_1.01nu": residual.least(1.01 * nu)[0],
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    opts = parser.parse_args()
    table = pd.DataFrame([row for run in opts.runs for row in check(run)])
    table.to_csv(opts.out, index=False, float_format="%.15g")
    print(table.to_string())


if __name__ == "__main__":
    main()
