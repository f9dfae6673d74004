"""What the scan of smooth eigenfunctions (`log_stability.SmoothResidual`) adds to `blowup stability`, per run.

For each run dir (a log-grid equation: CCF, gCLM): the analysis without the scan and with it (wall time, counts,
how many modes the scan found, each class's stretch and median σ), and, as the check that a genuine mode would pass
the floor on the same grids, σ(ν) at every mode the eigenvalues found (and at 1.01ν beside it): a genuine mode's σ
is its residual on the grid, so the scan finds a mode like it in its stretch where σ lies well below the floor.

    python3 scripts/stability_scan_check.py RUN_DIR [RUN_DIR ...] --out results/stability_scan_ccf.csv

With --complex, what the scan of complex ν (`blowup stability --complex`, `log_stability.plane_minima`) adds: the
analysis with the real scan alone and with the complex one (wall time, counts, the modes the plane scan found), one
row per perturbation class with the square scanned; and, as the check that the scan would find a complex mode there,
the same scan on the run's own operators with a pair planted at a fixed point of each square by a rank-2 change
(L' = L + (VΛ - LV)Wᵀ, WᵀV = I, the eigenfunction V (1, i)ᵀ = e^s/(1 + e^2s) + i e^s/(1 + e^2s)², smooth at the
origin and decaying, as a genuine mode's is): where it was found, its error bar, and how far the nearest dense
eigenvalue of L' lies from it.

    python3 scripts/stability_scan_check.py RUN_DIR [RUN_DIR ...] --complex --out results/stability_complex_ccf.csv
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from blowup.analysis.stability import stability_of
from blowup.solvers.log_stability import SmoothResidual, own_class, plane_minima

PLANTED_AT = (0.37, 0.29)  # the planted ν: low + 0.37 w + 0.29 w i, w the square's width (off every sample)


def analysed(variants: dict) -> tuple[dict, dict]:
    """Each variant's spectrum and its wall time."""
    spectra, seconds = {}, {}
    for key, stability in variants.items():
        started = time.perf_counter()
        spectra[key] = stability.analyse()
        seconds[key] = time.perf_counter() - started
    return spectra, seconds


def check(run: Path) -> list[dict]:
    stability = stability_of(run)
    spectra, seconds = analysed({scan: replace(stability, scan=scan) for scan in (False, True)})
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


def planted(operator: np.ndarray, grid, nu: complex) -> np.ndarray:
    e = np.exp(grid.s)
    v = np.stack([e / (1 + e**2), e / (1 + e**2) ** 2], axis=1)
    block = np.array([[nu.real, nu.imag], [-nu.imag, nu.real]])
    return operator + (v @ block - operator @ v) @ np.linalg.solve(v.T @ v, v.T)


def check_complex(run: Path) -> list[dict]:
    stability = stability_of(run)
    spectra, seconds = analysed({plane: replace(stability, complex_scan=plane) for plane in (False, True)})
    counts, coarse, fine = spectra[True].counts, stability.coarse, stability.fine
    base = {
        "run": run.name,
        "scalar": fine.lam,
        "grid_points": f"{coarse.grid.points}/{fine.grid.points}",
        "seconds_real_scan": seconds[False],
        "seconds_complex_scan": seconds[True],
        "n_unstable_real_scan": spectra[False].unstable_count(),
        "n_unstable_complex_scan": spectra[True].unstable_count(),
    }
    rows = []
    for perturbations in [own_class(fine.equation, fine.lam), *fine.equation.other_classes(fine.lam)]:
        parity = perturbations.parity
        if parity not in counts["complex_scanned_up_to"]:
            continue
        low, high = counts["scanned_by_class"][parity]
        width = high - low
        found = [m for m in spectra[True].modes if m.parity == parity and m.found_by == "scan" and m.nu.imag > 0]
        nu = complex(low + PLANTED_AT[0] * width, PLANTED_AT[1] * width)
        operators = [planted(perturbations.operator(s.q, s.lam, s.grid), s.grid, nu) for s in (coarse, fine)]
        started = time.perf_counter()
        other = SmoothResidual(operators[0], coarse.grid)
        roots = plane_minima(SmoothResidual(operators[1], fine.grid), lambda: other, low, high, [])  # noqa: B023
        planted_seconds = time.perf_counter() - started
        nearest = min(roots, key=lambda r: abs(r[0] - nu), default=(complex("nan"), float("nan")))
        rows.append(
            base
            | {
                "parity": parity,
                "re_low": low,
                "re_high": high,
                "im_high": counts["complex_scanned_up_to"][parity],
                "complex_modes_found": " ".join(f"{m.nu.real:.10f}{m.nu.imag:+.10f}i" for m in found),
                "planted_nu": f"{nu.real:.10f}{nu.imag:+.10f}i",
                "planted_found": len(roots),
                "planted_distance": abs(nearest[0] - nu),
                "planted_error_bar": nearest[1],
                "planted_nearest_eigenvalue": float(np.abs(np.linalg.eigvals(operators[1]) - nu).min()),
                "planted_scan_s": planted_seconds,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--complex", action="store_true", help="the scan of complex ν, with a planted pair")
    opts = parser.parse_args()
    checked = check_complex if opts.complex else check
    table = pd.DataFrame([row for run in opts.runs for row in checked(run)])
    table.to_csv(opts.out, index=False, float_format="%.15g")
    print(table.to_string())


if __name__ == "__main__":
    main()
