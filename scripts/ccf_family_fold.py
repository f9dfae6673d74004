"""CCF's non-smooth family below profile 2 followed by pseudo-arclength continuation in λ, on grids that follow its
front: through a fold, if there is one, and past it.

scripts/ccf_family_clustered.py follows the family by natural steps in λ (each member a Newton at fixed λ, started on
the family's tangent). Near λ = 0.4546 those Newtons fail at every step down to 6e-5 while the linear solves inside
them are accurate: what a fold does (∂R/∂q singular where λ turns back), and what natural steps cannot pass. Here
the family is a `BranchSystem` (x = q on a clustered grid, μ = λ, F = R and the normalisation, no smoothness row)
followed by `blowup.solvers.continuation` (the corrector on the extended system, regular through folds; folds and
the smoothness defect's sign changes located by regula falsi on the arclength), from a member kept by
ccf_family_clustered.py's `--work`.

The front steepens along the way, so the grid follows it: where the least transport speed has moved more than half
the cluster's width from its centre or narrowed below 0.7 of it (`log_profile.front_moved`), or every
`--check-every` points the residual between grid points (the 3x interpolant) has passed 1e-9, the point is moved
onto a grid re-centred at its front (`log_profile.front`) by the corrector on the extended system (its tangent
resampled: regular at a fold, where a Newton at fixed λ is not), on grids growing x1.4 while that residual stays
above 1e-9. Where a point moves onto a grown grid, its "regridded" row is the same point on more points: the two
defects differ by the coarser grid's error. `--points` may name several starting sizes, each walked on its own.
Per point: λ, the arclength, dλ/ds, the exponent p, the smoothness defect, c_min, max |Ω|, the residual between grid
points where checked, the points; events (fold, defect = 0) as rows of their own. The walk stops `--after` in λ
above a fold, at `--to`, or after `--max-steps` points.

    python3 scripts/ccf_family_fold.py --work DIR [--points 6615] [--max-points 27783] [--step 1e-4]
        [--out results/ccf_family_fold.csv] [--members results/ccf_family_matrix_free.csv]
    python3 scripts/ccf_family_fold.py --plot [--out ...] [--members ...]   # the figure beside --out only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ccf_family_clustered import odd  # noqa: E402

from blowup.equations.ccf.profile import CCF_EQUATION  # noqa: E402
from blowup.solvers.continuation import Branch, Point, Settings, first_tangent, follow  # noqa: E402
from blowup.solvers.hilbert import LogGrid, MappedLogGrid, resample  # noqa: E402
from blowup.solvers.log_branch import onto  # noqa: E402
from blowup.solvers.log_profile import (  # noqa: E402
    GRID_GROWTH,
    RESOLVED,
    ProfileSolve,
    _ProfileSystem,
    clustered_grid,
    compress,
    front_moved,
    load_solve,
    normalisation_offset,
)

ROOT = Path(__file__).resolve().parents[1]


class FamilyBranch:
    """CCF's non-smooth family on one grid as a `BranchSystem`: x = q, μ = λ, F = (R, the normalisation)."""

    scalar_name = "lambda"

    def __init__(self, grid: LogGrid):
        self.grid, self.size = grid, grid.points
        self.system = _ProfileSystem(CCF_EQUATION, grid, smooth=False)
        if isinstance(grid, MappedLogGrid):
            compress(grid)

    def residual(self, x: np.ndarray, mu: float) -> np.ndarray:
        return self.system.equations((x, mu))

    def linearise(self, x: np.ndarray, mu: float):
        lin = self.system.linearise((x, mu))
        return lin.residual, lin.jacobian, self.system.preconditioner

    def measures(self, x: np.ndarray, mu: float) -> dict[str, float]:
        return CCF_EQUATION.measures(x, mu, self.grid)

    def solve(self, point: Point) -> ProfileSolve:
        return ProfileSolve(point.mu, point.x, self.grid, 0, True, equation=CCF_EQUATION)

    def resampled(self, x: np.ndarray, grid: LogGrid, normalise: bool = True) -> np.ndarray:
        """q on another grid (moved to the normalisation's origin where `normalise`)."""
        return resample(x, self.grid, grid, shift=normalisation_offset(x, self.grid) if normalise else 0.0)


SETTINGS = dict(step_tolerance=1e-11, corrector_steps=15)  # a clustered grid's steps stall at 1e-12 .. 1e-11


def branch_on(grid: LogGrid, step: float) -> Branch:
    settings = Settings(step=step, min_step=step / 2**12, max_step=step * 8, **SETTINGS)
    return Branch(FamilyBranch(grid), settings)


def regrid(branch: Branch, point: Point, points: int) -> tuple[Branch, Point] | None:
    """The point moved onto a grid of `points` clustered at its front (`log_branch.onto`: the corrector on F = 0
    and ⟨t, z - z₀⟩ = 0 from it resampled, t its tangent resampled, regular through a fold)."""
    return onto(branch, point, FamilyBranch(clustered_grid(branch.system.solve(point), points)))


def walk(solve: ProfileSolve, points: int, opts, rows: list[dict], out: Path) -> None:
    """The family from `solve` towards smaller λ on grids of `points` (growing where they stop resolving it)."""
    started, arclength, checked = time.perf_counter(), 0.0, 0
    branch = branch_on(solve.grid, opts.step)
    point = Point(solve.q, solve.lam, first_tangent(branch, solve.q, solve.lam, -1.0))
    moved = regrid(branch, point, points)
    if moved is None:
        raise SystemExit(f"the kept member at lambda {solve.lam:.10g} did not move onto {points} points")
    branch, point = moved

    def row(kind: str, at: Point, offgrid: float = np.nan) -> dict:
        return {
            "kind": kind,
            "arclength": arclength,
            "dlambda_ds": float(at.tangent[-1]),
            **branch.system.measures(at.x, at.mu),
            "offgrid_residual_max": offgrid,
            "points": branch.system.grid.points,
            "front_s": branch.system.grid.fronts[0][0],
            "front_width": branch.system.grid.fronts[0][1],
            "seconds": time.perf_counter() - started,
        }

    def save(entry: dict) -> None:
        rows.append(entry)
        print({key: entry[key] for key in ("kind", "lambda", "dlambda_ds", "smoothness_defect", "speed_min",
                                           "offgrid_residual_max", "points", "seconds")}, flush=True)  # fmt: skip
        pd.DataFrame(rows).to_csv(out, index=False, float_format="%.13g")

    save(row("start", point, branch.system.solve(point).offgrid_residual_max()))
    h, fold, crossings = opts.step, None, [("smoothness_defect", 0.0)]
    for _ in range(opts.max_steps):
        measures = branch.system.measures
        steps = follow(branch, point, opts.to, 1, crossings, lambda p, m=measures: m(p.x, p.mu), step=h)
        try:
            nxt, events, h = next(steps)
        except StopIteration as stop:
            print(f"the walk on {points} points ended: {stop.value} below lambda {point.mu:.10g}", flush=True)
            return
        arclength += float(np.sqrt(np.sum((nxt.x - point.x) ** 2) / branch.n + (nxt.mu - point.mu) ** 2))
        for event in events:
            save(row(event.name, event.point))
            fold = event.mu if event.name == "fold" else fold
        point, checked = nxt, checked + 1
        solve = branch.system.solve(point)
        offgrid = solve.offgrid_residual_max() if checked % opts.check_every == 0 else np.nan
        save(row("point", point, offgrid))
        for _ in range(4):  # re-centred, then grown while the residual between points stays above RESOLVED
            if not (front_moved(solve) or offgrid > RESOLVED):
                break
            points = min(odd(points * GRID_GROWTH), opts.max_points) if offgrid > RESOLVED else points
            moved = regrid(branch, point, points)
            if moved is None:
                print(f"the point at lambda {point.mu:.10g} did not move onto {points} points: stopped", flush=True)
                return
            branch, point = moved
            solve = branch.system.solve(point)
            offgrid = solve.offgrid_residual_max()
            save(row("regridded", point, offgrid))
            if points == opts.max_points:
                break
        if point.mu <= opts.to or (fold is not None and point.mu > fold + opts.after):
            return


def figure(table: pd.DataFrame, members: pd.DataFrame | None, path: Path) -> None:
    """The walk against λ (and ccf_family_clustered.py's natural-step members, where given): the smoothness defect,
    c_min and max |Ω|, dλ/ds (a fold where it changes sign) and the residual between grid points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = table.assign(walk=table.points.where(table.kind == "start").ffill())  # each walk from its start's grid
    points = table[table.kind.isin(["start", "point", "regridded"])]
    fig, ax = plt.subplots(1, 4, figsize=(19, 4))
    for walk, part in points.groupby("walk"):
        ax[0].plot(part["lambda"], part.smoothness_defect, ".-", ms=3, label=f"pseudo-arclength from {walk:.0f} points")
        ax[1].semilogy(part["lambda"], part.speed_min, ".-", ms=3, label=f"c_min ({walk:.0f})")
        ax[1].semilogy(part["lambda"], part.omega_max, ".-", ms=3, label=f"max |Ω| ({walk:.0f})")
        ax[2].plot(part["lambda"], part.dlambda_ds, ".-", ms=3, label=f"{walk:.0f}")
        checked = part.dropna(subset=["offgrid_residual_max"])
        ax[3].semilogy(checked["lambda"], checked.offgrid_residual_max, "o", ms=3, label=f"{walk:.0f}")
    if members is not None:
        ax[0].plot(members["lambda"], members.smoothness_defect, "ks", ms=4, mfc="none", label="natural steps")
    ax[0].axhline(0.0, color="k", lw=0.8)
    ax[0].set(title="smoothness defect (0: a smooth profile)", xlabel="λ")
    ax[1].set(title="the front", xlabel="λ")
    ax[2].axhline(0.0, color="k", lw=0.8)
    ax[2].set(title="dλ/ds along the branch (0: a fold)", xlabel="λ")
    ax[3].set(title="residual between grid points", xlabel="λ")
    for axis in ax:
        axis.invert_xaxis()
        axis.xaxis.set_major_locator(plt.MaxNLocator(4))
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", help="ccf_family_clustered.py's --work directory (its kept member)")
    parser.add_argument("--points", type=int, nargs="+", default=[6615], help="one walk per starting size")
    parser.add_argument("--max-points", type=int, default=27783)
    parser.add_argument("--step", type=float, default=1e-4, help="the first arclength step")
    parser.add_argument("--to", type=float, default=0.45, help="stop where λ reaches this")
    parser.add_argument("--after", type=float, default=5e-4, help="stop this far in λ above a fold")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--check-every", type=int, default=3, help="the residual between points every this many")
    parser.add_argument("--out", default=str(ROOT / "results" / "ccf_family_fold.csv"))
    parser.add_argument("--members", help="ccf_family_clustered.py's CSV, drawn beside the walk")
    parser.add_argument("--plot", action="store_true", help="only draw the figure from --out (and --members)")
    opts = parser.parse_args()
    out = Path(opts.out)
    members = pd.read_csv(opts.members) if opts.members else None
    if opts.plot:
        if not out.is_file():
            parser.error(f"--out {out}: no such file (a walk writes it)")
        figure(pd.read_csv(out), members, out.with_suffix(".png"))
        return
    if opts.work is None:
        parser.error("--work DIR (ccf_family_clustered.py's, with its kept member) is needed to walk")
    rows: list[dict] = []
    try:
        kept, _ = load_solve(Path(opts.work) / "fine.npz", CCF_EQUATION)
    except ValueError as error:
        parser.error(f"--work {opts.work}: {error}")
    for points in opts.points:
        walk(kept, points, opts, rows, out)
        figure(pd.DataFrame(rows), members, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
