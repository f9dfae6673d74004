"""Why CCF's network does not hold profile 1 on its default points, and what does: Newton, the same equations the
network's loss asks to vanish (R at every point, the smoothness row, the normalisation), on grids of the sizes a
network collocates on, uniform in s and clustered at the profile's front (the grid `equation.collocation=front` gives
the network), each started from a converged run's profile.

    python3 scripts/ccf_network_grid.py RUN_DIR --out results/ccf_network_grid.csv
    python3 scripts/ccf_network_grid.py RUN2_DIR --reference 98415 --uniform --front 601 801 1201 1701 \
        --out results/ccf_network_grid_profile2.csv

RUN_DIR: a finished `blowup train equation=ccf` run over s in [-36, 60] (profiles 1 to 3; its solution.csv's q
starts each solve, its λ is the reference); its front is found on `--reference` uniform points. One row per
(collocation, points): converged, Newton's steps, λ - the run's λ, the residual between grid points (the
interpolant on 3x the points), and the grid's least and largest spacing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from blowup.equations.ccf.profile import CCF_EQUATION
from blowup.solvers.hilbert import LogGrid, MappedLogGrid
from blowup.solvers.log_profile import front_cluster, newton


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--reference", type=int, default=3841, help="uniform points resolving the profile")
    parser.add_argument("--uniform", type=int, nargs="*", default=[301, 601, 1201, 2401, 3841])
    parser.add_argument("--front", type=int, nargs="*", default=[301, 401, 601, 801, 1201])
    parser.add_argument("--out", type=Path, default=Path("results/ccf_network_grid.csv"))
    opts = parser.parse_args()
    lam, interval = json.loads((opts.run / "summary.json").read_text())["lambda"], (-36.0, 60.0)
    solution = pd.read_csv(opts.run / "solution.csv")

    def start(grid) -> np.ndarray:
        return np.interp(grid.s, solution.s.to_numpy(), solution.q.to_numpy())

    resolved = LogGrid(*interval, opts.reference)
    reference = newton(CCF_EQUATION, start(resolved), lam, resolved)
    grids = [("uniform", LogGrid(*interval, n)) for n in opts.uniform]
    fronts = front_cluster(reference)  # as equation.collocation=front places the network's points
    grids += [("front", MappedLogGrid(*interval, n, fronts)) for n in opts.front]
    rows = []
    for collocation, grid in grids:
        started = time.perf_counter()
        solve = newton(CCF_EQUATION, start(grid), lam, grid)
        spacing = np.diff(grid.s)
        rows.append(
            {
                "collocation": collocation,
                "points": grid.points,
                "converged": solve.converged,
                "steps": solve.steps,
                "lambda_minus_run": solve.lam - lam,
                "residual_between_points": solve.offgrid_residual_max(),
                "least_spacing": float(spacing.min()),
                "largest_spacing": float(spacing.max()),
                "s": time.perf_counter() - started,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.4g")


if __name__ == "__main__":
    main()
