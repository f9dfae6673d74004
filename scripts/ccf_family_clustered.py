"""CCF's non-smooth family below the 2nd unstable profile on grids clustered at its front, to where it ends.

scripts/ccf_family.py follows the family on uniform grids, which its steepening front drives to 1.75·10^6 points
(an hour a member) by λ = 0.4556, short of where it ends. Here each member is solved on two `MappedLogGrid`s
(`log_profile.clustered`: `--points` N1 < N2, centred at the member's front, width a third of its least
transport speed c_min, so they follow the front as it steepens): a few thousand points, each Newton dense up to
2401 and matrix-free past them (`log_profile.DENSE_MAPPED_POINTS`), so the grids can grow to 10^4-10^5 points.
The two grids' smoothness defects differ by the error of the finer's, and its residual between grid points
(the 3x interpolant) says whether it resolves the member; where that passes 1e-9 the grids grow (x1.4) up to
`--max-points`.

From profile 2 (found as ccf_family.py finds it) the family is followed down in steps of `--step` (each Newton
started on the family's tangent at the last member: `member_pair`), halved where
Newton loses a member (at most `--halvings` times; the step stays at its last size, as the members change faster
towards the end: growing it back cost a failed Newton, minutes, every other member), and below the first of
`--fine-step-below` it is at most its second. If the defect changes sign between two members, the smooth
profile there (profile 3) is solved by Newton with the smoothness row on both grids and written as a row of its
own (`kind` profile3).
Per member: λ, the exponent p (Θ ~ |y|^(1+p), 1: smooth), the defect on both grids, c_min, max |Ω|, the
residuals, the points and the seconds. Writes results/ccf_family_clustered.csv and a figure beside it.

    python3 scripts/ccf_family_clustered.py [--step 0.0025] [--fine-step-below 0.4565 0.0005] [--to 0.45]
        [--points 1701 2401] [--max-points 9261] [--work DIR]

With `--work DIR` the last member's two solves are kept there, and a rerun with the same DIR goes on from them,
appending to the CSV (with the grids of `--points`: results/ccf_family_clustered.csv's first members were on
2401/3375 points, the rest on 1701/2401, where a dense Newton step costs a third; its points column says which).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ccf_family import ccf_profile, figure  # noqa: E402

from blowup.equations.ccf.profile import CCF_EQUATION, family_measures  # noqa: E402
from blowup.solvers.hilbert import MappedLogGrid, fast_odd_size, resample  # noqa: E402
from blowup.solvers.log_profile import (  # noqa: E402
    GRID_GROWTH,
    RESOLVED,
    ProfileSolve,
    clustered,
    family_tangent,
    front_moved,
    load_solve,
    newton,
    normalisation_offset,
    normalised_start,
    save_solve,
)

ROOT = Path(__file__).resolve().parents[1]
TRIAL_TOLERANCE = 1e-8  # the step's first Newton, on the last member's grid, as scripts/ccf_family.py's


def odd(points: float) -> int:
    """A grid size at or above `points` that FFTs take fast (odd, 3-5-7 smooth): a prime factor such as 941 in 4705
    made each transform, and so the matrix-free Newton on the grid, twice as slow."""
    return fast_odd_size(int(points))


def member_pair(last: tuple[ProfileSolve, ...], at: float, points: tuple[int, int], smooth: bool):
    """The member at `at` (or, smooth, the profile near it) on two grids clustered at its front, from `last`: the
    last member's pair, or at the start one uniform solve. Newton first on the last finer grid: it resolves the
    member, and continuation on one grid keeps Newton's start within its basin, where a start interpolated onto
    another grid is off by the grids' discretisation errors, which near the front were measured to leave Newton's
    basin (1e-6 from a 1701-point grid, at λ = 0.4603). Its start is on the family's tangent at the last member
    (`family_tangent`): from the member alone Newton lost every step below λ = 0.45514 down to 6e-5, where
    pseudo-arclength continuation found no fold (scripts/ccf_family_fold.py). Not the secant through the last two
    members: over steps of 1e-3 it moved the front's steep step linearly where the front had moved by a third of its
    width, and Newton converged from it to a spurious solution of that grid (c_min 0.003, max |Ω| 92, residual
    between points 0.05, where the member has 0.010, 25.7, 3e-9). That grid is replaced only where the front has
    left it (`log_profile.front_moved`), by one re-centred from the member solved on it, and the coarser grid is the
    finer's map on fewer points, started from its own last member plus the finer member's change while the finer
    grid stays, else from the finer's member. A lost solve is said (which, and how far its residual got)."""
    finer = last[-1]
    start = finer.q if smooth or finer.lam == at else finer.q + (at - finer.lam) * family_tangent(finer)
    trial = newton(finer.equation, start, at, finer.grid, smooth=smooth, tolerance=TRIAL_TOLERANCE)
    if not trial.converged:
        return lost("the step's Newton on the last grid", trial)
    kept = isinstance(trial.grid, MappedLogGrid) and trial.grid.points == points[1] and not front_moved(trial)
    if kept:  # to round-off on its grid (the trial was held to TRIAL_TOLERANCE only)
        fine = newton(trial.equation, trial.q, trial.lam, trial.grid, smooth=smooth)
    else:
        fine = clustered(trial, points[1], smooth=smooth)
    if not fine.converged:
        return lost("the re-centred finer grid's" if not kept else "the finer grid's", fine)
    coarse_grid = MappedLogGrid(fine.grid.left, fine.grid.right, points[0], fine.grid.fronts)
    same = kept and len(last) == 2 and same_grid(last[0].grid, coarse_grid)
    if same:
        start = last[0].q + resample(fine.q - finer.q, fine.grid, coarse_grid)
    else:
        start = resample(fine.q, fine.grid, coarse_grid)
    coarse = newton(fine.equation, start, at if not smooth else fine.lam, coarse_grid, smooth=smooth)
    if not coarse.converged:
        return lost("the coarser grid's", coarse)
    return coarse, fine


def same_grid(one, other) -> bool:
    return (
        isinstance(one, MappedLogGrid)
        and isinstance(other, MappedLogGrid)
        and (one.points, one.fronts, one.left, one.right) == (other.points, other.fronts, other.left, other.right)
    )


def lost(which: str, solve: ProfileSolve) -> None:
    residual = np.abs(solve.equation.residual(solve.q, solve.lam, solve.grid)).max()
    print(f"  lambda {solve.lam:.10g}: {which} Newton lost the member ({solve.steps} steps, residual {residual:.1e}, "
          f"{solve.grid.points} points)", flush=True)  # fmt: skip
    return None


def renormalised(solve: ProfileSolve) -> ProfileSolve:
    """A kept solve normalised as Newton now normalises it (its maximum at s = 0 itself, not at the grid point
    nearest it): translated on its grid, then solved there. Members kept before that change sit up to half a
    spacing off, as much as a steep front's width: a step from them was measured to leave Newton's basin."""
    if abs(normalisation_offset(solve.q, solve.grid)) < 1e-12:  # normalised as Newton now normalises
        return solve
    again = newton(solve.equation, normalised_start(solve, solve.grid), solve.lam, solve.grid, smooth=False)
    if not again.converged:
        raise ValueError(f"the kept member at lambda {solve.lam:.10g} did not solve again once renormalised")
    return again


def row(pair, kind: str, started: float) -> dict:
    coarse, fine = pair
    measures = family_measures(fine)
    return {
        "kind": kind,
        **measures,
        "lambda_coarse": coarse.lam,
        "defect_coarse": family_measures(coarse)["smoothness_defect"],
        "defect_error": abs(measures["smoothness_defect"] - family_measures(coarse)["smoothness_defect"]),
        **pair_figures(coarse, fine),
        "seconds": time.perf_counter() - started,
    }


def pair_figures(coarse: ProfileSolve, fine: ProfileSolve) -> dict:
    """What a pair of clustered solves says of its grids: the finer's residual between its points, both sizes,
    and where and how narrowly they cluster."""
    return {
        "offgrid_residual_max": fine.offgrid_residual_max(),
        "points": f"{coarse.grid.points}/{fine.grid.points}",
        "front_s": fine.grid.fronts[0][0],
        "front_width": fine.grid.fronts[0][1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", type=float, default=0.0025)
    parser.add_argument("--fine-step-below", type=float, nargs=2, default=[0.4565, 0.0005], metavar=("LAMBDA", "STEP"))
    parser.add_argument("--to", type=float, default=0.45)
    parser.add_argument("--points", type=int, nargs=2, default=[1701, 2401])
    parser.add_argument("--max-points", type=int, default=9261)
    parser.add_argument("--halvings", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "results" / "ccf_family_clustered.csv"))
    parser.add_argument("--work", help="keep the last member's two solves here; a rerun with it goes on from them")
    opts = parser.parse_args()
    out, points, work = Path(opts.out), tuple(odd(n) for n in opts.points), Path(opts.work) if opts.work else None

    started, last = time.perf_counter(), None
    if work is not None and (work / "fine.npz").exists() and out.exists():
        try:
            last = tuple(renormalised(load_solve(work / f"{name}.npz", CCF_EQUATION)[0]) for name in ("coarse", "fine"))
        except ValueError as error:
            print(f"the member kept in {work} is not usable ({error}): starting again from profile 2")
    if last is not None:
        rows = pd.read_csv(out).to_dict("records")
        step = float(json.loads((work / "step.json").read_text())["step"])
        print(f"going on from the member kept at lambda {last[1].lam:.10g}, step {step:.2e}", flush=True)
    else:
        uniform = ccf_profile(2, 0.001)
        last = member_pair((uniform,), uniform.lam, points, smooth=True)
        rows, step = [row(last, "profile2", started)], opts.step
        print(rows[-1], flush=True)
    while last[1].lam > opts.to:
        started = time.perf_counter()
        largest = opts.fine_step_below[1] if last[1].lam < opts.fine_step_below[0] else opts.step
        step = min(step, largest)
        found = None
        while found is None and step >= opts.step / 2**opts.halvings:
            found = member_pair(last, max(last[1].lam - step, opts.to), points, smooth=False)
            step = step if found is not None else step / 2
        if found is None:
            print(f"Newton lost the family below lambda {last[1].lam:.10g} on these grids (steps down to "
                  f"{step * 2:.2e}): where it ends or turns, or where these grids stop following it; not told apart "
                  "here")  # fmt: skip
            break
        if found[1].offgrid_residual_max() > RESOLVED and points[1] < opts.max_points:
            points = (odd(points[0] * GRID_GROWTH), odd(points[1] * GRID_GROWTH))
            print(f"grids grow to {points}", flush=True)
            continue
        rows.append(row(found, "member", started))
        print(rows[-1], flush=True)
        before, after = rows[-2]["smoothness_defect"], rows[-1]["smoothness_defect"]
        if rows[-2]["kind"] != "profile2" and np.sign(before) != np.sign(after):
            nearer = found if abs(after) < abs(before) else last
            smooth = member_pair(nearer, nearer[1].lam, points, smooth=True)
            if smooth is not None:
                rows.append(row(smooth, "profile3", started))
                print("profile 3:", rows[-1], flush=True)
        pd.DataFrame(rows).to_csv(out, index=False, float_format="%.12g")
        if work is not None:
            work.mkdir(parents=True, exist_ok=True)
            for name, solve in zip(("coarse", "fine"), found):
                save_solve(solve, work / f"{name}.npz")
            (work / "step.json").write_text(json.dumps({"step": step}))
        table = pd.DataFrame(rows[1:]).assign(points=lambda t: t.points.str.split("/").str[1].astype(int))
        figure(table, {key: rows[0][key] for key in ("lambda", "exponent_p", "speed_min", "omega_max",
                                                     "offgrid_residual_max")}, out.with_suffix(".png"))  # fmt: skip
        last = found
    pd.DataFrame(rows).to_csv(out, index=False, float_format="%.12g")


if __name__ == "__main__":
    main()
