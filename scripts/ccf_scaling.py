"""What a CCF Newton step costs against the grid size N: the matrix-free solve (LSMR on FFT products, preconditioned
by the inverted transport part) from 10^3 to 10^6 points, and the dense one (Householder QR; before 2026-12-05
pivoted QR, LAPACK's gelsy, which results/ccf_scaling.csv's dense rows measured) as far as it fits.

Each row: profile 1 (found once on its default grids) interpolated to a grid of N points on [-36, 60], λ moved
by 1e-4, then Newton with the smoothness row to convergence: seconds per Newton step, LSMR iterations per step
(mean, max), the peak of numpy's allocations during the solve (tracemalloc), λ reached and whether it
converged (below ~4000 points the front is not resolved: the step is timed all the same). The growth exponent
is the least-squares slope of log(seconds per step) against log N over the matrix-free rows from 10^4 up.

    python3 scripts/ccf_scaling.py [--dense-up-to 6000] [--out results/ccf_scaling.csv]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from blowup.equations.ccf.profile import find_profile, newton, rough_profile
from blowup.solvers.hilbert import LogGrid, interpolate

ROOT = Path(__file__).resolve().parents[1]
SIZES = [1_000, 3_000, 5_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]
INTERVAL = (-36.0, 60.0)


def measure(profile, points: int, dense: bool) -> dict:
    grid = LogGrid.with_spacing(*INTERVAL, (INTERVAL[1] - INTERVAL[0]) / points)
    q = interpolate(profile.q, profile.grid, grid.points)[0]
    tracemalloc.start()
    started = time.perf_counter()
    solve = newton(q, profile.lam + 1e-4, grid, dense=dense)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    iterations = solve.krylov_iterations or [np.nan]
    return {
        "solver": "dense" if dense else "matrix-free",
        "points": grid.points,
        "newton_steps": solve.steps,
        "s_per_step": seconds / solve.steps,
        "krylov_iterations_mean": float(np.mean(iterations)),
        "krylov_iterations_max": float(np.max(iterations)),
        "peak_mb": peak / 1e6,
        "converged": solve.converged,
        "lambda": solve.lam,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense-up-to", type=int, default=6000)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--out", default=str(ROOT / "results" / "ccf_scaling.csv"))
    opts = parser.parse_args()
    _, _, profile = find_profile(
        lambda grid: rough_profile(0.7, grid), 0.7, (0.52, 0.9), INTERVAL, 0.1, 0.02, (0.025, 0.02)
    )
    rows = []
    for points in opts.sizes:
        for dense in (False, True):
            if dense and points > opts.dense_up_to:
                continue
            rows.append(measure(profile, points, dense))
            print(rows[-1], flush=True)
            pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.6g")
    table = pd.DataFrame(rows)
    free = table[(table.solver == "matrix-free") & (table.points >= 10_000)]
    slope = np.polyfit(np.log(free.points), np.log(free.s_per_step), 1)[0]
    print(f"matrix-free seconds per Newton step grow like N^{slope:.2f} from 10^4 to {free.points.max()} points")


if __name__ == "__main__":
    main()
