"""CCF's non-smooth family below profile 2 followed by pseudo-arclength continuation in λ, through a fold.

scripts/ccf_family_clustered.py follows the family by natural steps in λ (each member a Newton at fixed λ). Below
λ ≈ 0.45514 that Newton fails at every step down to 6e-5, on the dense and the matrix-free solver alike and on
grids of 6615 and 9261 points, while the linear solves inside it are accurate (LSMR to 1e-10): the first Newton
step from the last member changes q by 2.6e-2 for 6e-5 in λ, ten times what the front's motion accounts for. That
is what a fold does (∂R/∂q singular where λ turns back), and natural steps cannot pass one. Here the family is a
`BranchSystem` (x = q on one clustered grid, μ = λ, F = R and the normalisation, no smoothness row) followed by
`blowup.solvers.continuation` (the corrector on the extended system, regular through folds; folds and the
smoothness defect's sign changes located to round-off), from a member kept by ccf_family_clustered.py's `--work`.

Each grid of `--grids` (the kept member's coarse and fine, or both) is followed on its own, so the fold's λ on two
grids is its error. Per point: λ, the arclength, dλ/ds, the exponent p, the smoothness defect, c_min, max |Ω|, and
every `--offgrid-every`-th point the residual between grid points (the 3x interpolant), which says whether the grid
still resolves the member; events (fold, defect = 0) as rows of their own.

    python3 scripts/ccf_family_fold.py --work DIR [--grids coarse fine] [--points 60] [--step 1e-4]
        [--out results/ccf_family_fold.csv]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from blowup.equations.ccf.profile import CCF_EQUATION
from blowup.solvers.continuation import Branch, Point, Settings, first_tangent, follow
from blowup.solvers.hilbert import LogGrid
from blowup.solvers.log_profile import ProfileSolve, _ProfileSystem, compress, load_solve

ROOT = Path(__file__).resolve().parents[1]


class FamilyBranch:
    """CCF's non-smooth family on one grid as a `BranchSystem`: x = q, μ = λ, F = (R, the normalisation)."""

    scalar_name = "lambda"

    def __init__(self, grid: LogGrid):
        self.grid, self.size = grid, grid.points
        self.system = _ProfileSystem(CCF_EQUATION, grid, smooth=False)

    def residual(self, x: np.ndarray, mu: float) -> np.ndarray:
        return self.system.equations((x, mu))

    def linearise(self, x: np.ndarray, mu: float):
        lin = self.system.linearise((x, mu))
        return lin.residual, lin.jacobian, self.system.preconditioner

    def measures(self, x: np.ndarray, mu: float) -> dict[str, float]:
        return CCF_EQUATION.measures(x, mu, self.grid)

    def offgrid(self, x: np.ndarray, mu: float) -> float:
        return ProfileSolve(mu, x, self.grid, 0, True, equation=CCF_EQUATION).offgrid_residual_max()


def walk(name: str, solve: ProfileSolve, opts, rows: list[dict], out: Path) -> None:
    """The family from `solve` towards smaller λ on its grid: a row per point and per event, appended to `rows`
    and written to `out` as they come."""
    compress(solve.grid)
    system = FamilyBranch(solve.grid)
    settings = Settings(step=opts.step, min_step=opts.step / 2**10, max_step=opts.step * 8, step_tolerance=1e-11,
                        corrector_steps=15)  # fmt: skip
    branch = Branch(system, settings)
    start = Point(solve.q, solve.lam, first_tangent(branch, solve.q, solve.lam, -1.0))
    arclength, started = 0.0, time.perf_counter()

    def row(kind: str, point: Point, offgrid: bool) -> dict:
        return {
            "grid": name,
            "kind": kind,
            "arclength": arclength,
            "dlambda_ds": float(point.tangent[-1]),
            **system.measures(point.x, point.mu),
            "offgrid_residual_max": system.offgrid(point.x, point.mu) if offgrid else np.nan,
            "points": solve.grid.points,
            "seconds": time.perf_counter() - started,
        }

    rows.append(row("start", start, True))
    print(rows[-1], flush=True)
    previous = start
    steps = follow(
        branch, start, opts.to, opts.points, [("smoothness_defect", 0.0)], lambda p: system.measures(p.x, p.mu)
    )
    for index, (point, events, _) in enumerate(steps, start=1):
        arclength += float(np.sqrt(np.sum((point.x - previous.x) ** 2) / system.size + (point.mu - previous.mu) ** 2))
        for event in events:
            rows.append(row(event.name, event.point, True))
            print("event:", rows[-1], flush=True)
        rows.append(row("point", point, index % opts.offgrid_every == 0))
        print(rows[-1], flush=True)
        previous = point
        pd.DataFrame(rows).to_csv(out, index=False, float_format="%.13g")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="ccf_family_clustered.py's --work directory (its kept member)")
    parser.add_argument("--grids", nargs="+", choices=("coarse", "fine"), default=["coarse", "fine"])
    parser.add_argument("--points", type=int, default=60, help="branch points per grid")
    parser.add_argument("--step", type=float, default=1e-4, help="the first arclength step")
    parser.add_argument("--to", type=float, default=0.45, help="stop where λ reaches this")
    parser.add_argument("--offgrid-every", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "results" / "ccf_family_fold.csv"))
    opts = parser.parse_args()
    rows: list[dict] = []
    for name in opts.grids:
        walk(name, load_solve(Path(opts.work) / f"{name}.npz", CCF_EQUATION)[0], opts, rows, Path(opts.out))


if __name__ == "__main__":
    main()
