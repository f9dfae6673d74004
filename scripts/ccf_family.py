"""CCF's non-smooth family below the 2nd unstable profile: followed down in λ towards 0.40, one row per member.

The family (`newton(smooth=False)`: every λ has a solution smooth except at the origin) is followed from profile 2
downwards in steps of `--step` (halved up to 3 times where Newton loses it), each member on a grid refined
(spacing halved, to `--finest`) until its residual between grid points is below 1e-7. A smooth profile 3
would show as a sign change of the smoothness defect; the family's front steepening (least transport speed
c_min → 0, max |Ω| growing) as where it ends on the grids within reach. Per member: λ, the exponent p
(Θ ~ |y|^(1+p) at the origin, 1: smooth), the defect, c_min, max |Ω|, the residual on the grid and between
its points (the 3x interpolant), the grid's points and the seconds taken. Writes results/ccf_family.csv and
a figure (.png beside it).

Members far down need grids of 10^5-10^6 points and minutes each, so with `--work DIR` the last member found
is kept there (member.npz: its q, λ and grid) and a rerun with the same DIR goes on from it, appending to the
CSV, instead of starting again from profile 2.

    python3 scripts/ccf_family.py [--step 0.0025] [--to 0.40] [--spacing 0.001] [--finest 0.000125] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from blowup.equations.ccf.problem import DEFAULTS
from blowup.equations.ccf.profile import (
    CCF_EQUATION,
    family_measures,
    find_profile,
    newton,
    rough_profile,
)
from blowup.solvers.hilbert import LogGrid, interpolate
from blowup.solvers.log_profile import load_solve, save_solve

ROOT = Path(__file__).resolve().parents[1]
FAMILY_TOLERANCE = 1e-8  # a member counts when every equation holds to this on its grid ...
RESOLVED = 1e-7  # ... and, between its grid points, to this (else the grid is refined)


# where a rough start enters the family for each profile, and the scan's step in λ (profile 1's as the tests find it)
ENTRY = {1: (0.62, 0.05), 2: (DEFAULTS[2].entry_lambda, 0.02)}


def ccf_profile(index: int, spacing: float):
    """CCF's profile 1 or 2 as a run finds it (the family followed from a rough start to where it turns smooth,
    Newton on grids of spacing 2 x `spacing` and `spacing` over the profile's interval): the fine solve."""
    defaults, (entry, scan_step) = DEFAULTS[index], ENTRY[index]
    _, _, fine = find_profile(
        lambda grid: rough_profile(entry, grid),
        entry,
        defaults.lambda_bracket,
        defaults.grid,
        defaults.scan_spacing,
        scan_step,
        (spacing * 2, spacing),
        defaults.entry_lambda,
    )
    if not fine.converged:
        raise SystemExit(f"profile {index} was not found: nothing to follow")
    return fine


def refined(solve, interval, finest: float):
    """The member on grids of half the spacing until its residual between grid points is below RESOLVED (None
    past `finest`, or where Newton does not converge there)."""
    while solve is not None and solve.offgrid_residual_max() > RESOLVED:
        spacing = solve.grid.spacing / 2
        if spacing < finest:
            return None
        grid = LogGrid.with_spacing(*interval, spacing)
        solve = newton(interpolate(solve.q, solve.grid, grid.points)[0], solve.lam, grid, smooth=False)
        solve = solve if solve.converged else None
    return solve


def keep(member, work: Path) -> None:
    """The member a rerun goes on from, written whole before it replaces the one before."""
    save_solve(member, work / "member.npz")


def kept(work: Path):
    """The member kept in `work` and profile 2's row, or None where nothing (or nothing readable) is kept."""
    if not (work / "member.npz").exists():
        return None
    try:
        member, _ = load_solve(work / "member.npz", CCF_EQUATION)
        first = json.loads((work / "start.json").read_text())
    except (OSError, ValueError) as error:
        print(f"the member kept in {work} is not usable ({error}): starting again from profile 2")
        return None
    return member, first


def follow(start, first: dict, step: float, to: float, finest: float, out: Path, rows: list[dict],
           work: Path | None) -> pd.DataFrame:  # fmt: skip
    """Members below `start` down to `to`, each on a grid that resolves it (`refined`) and appended to `rows`;
    the CSV and the figure rewritten after each, and the member kept in `work` (a stopped run loses at most
    the member it was on)."""
    last, interval = start, DEFAULTS[2].grid
    while last.lam > to:
        started, found = time.perf_counter(), None
        for halving in range(4):
            at = max(last.lam - step / 2**halving, to)
            trial = newton(last.q, at, last.grid, smooth=False, tolerance=FAMILY_TOLERANCE)
            if trial.converged:
                found = refined(trial, interval, finest)
                break
        if found is None:
            print(f"lost below lambda {last.lam:.6g}: Newton does not converge, or the member is not resolved on "
                  f"grids down to spacing {finest}")  # fmt: skip
            break
        row = family_measures(found)
        row |= {
            "offgrid_residual_max": found.offgrid_residual_max(),
            "points": found.grid.points,
            "newton_steps": found.steps,
            "seconds": time.perf_counter() - started,
        }
        rows.append(row)
        print(row, flush=True)
        pd.DataFrame(rows).to_csv(out, index=False, float_format="%.10g")
        figure(pd.DataFrame(rows), first, out.with_suffix(".png"))
        if work is not None:
            keep(found, work)
        last = found
    return pd.DataFrame(rows)


def figure(table: pd.DataFrame, start: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.concat([pd.DataFrame([start]), table], ignore_index=True)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    ax[0].plot(table["lambda"], table.exponent_p, "o-", ms=3)
    ax[0].axhline(1.0, color="k", lw=0.8)
    ax[0].set(title="exponent p at the origin (1: smooth)", xlabel="λ")
    ax[1].semilogy(table["lambda"], table.speed_min, "o-", ms=3, label="least transport speed c")
    ax[1].semilogy(table["lambda"], table.omega_max, "s-", ms=3, label="max |Ω|")
    ax[1].set(title="the front", xlabel="λ")
    ax[1].legend()
    ax[2].semilogy(table["lambda"], table.offgrid_residual_max, "o-", ms=3)
    ax[2].set(title="residual between grid points", xlabel="λ")
    for axis in ax:
        axis.invert_xaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", type=float, default=0.0025)
    parser.add_argument("--to", type=float, default=0.40)
    parser.add_argument("--spacing", type=float, default=0.001, help="the first grid's spacing")
    parser.add_argument("--finest", type=float, default=0.000125)
    parser.add_argument("--out", default=str(ROOT / "results" / "ccf_family.csv"))
    parser.add_argument("--work", help="keep the last member here; a rerun with it goes on from that member")
    opts = parser.parse_args()
    out, work = Path(opts.out), Path(opts.work) if opts.work else None
    resumed = kept(work) if work is not None else None
    if resumed is not None and out.exists():
        (start, first), rows = resumed, pd.read_csv(out).to_dict("records")
        print(f"going on from the member kept at lambda {start.lam:.10g} ({start.grid.points} points)", flush=True)
    else:
        start, rows = ccf_profile(2, opts.spacing), []
        first = family_measures(start)
        first |= {"offgrid_residual_max": start.offgrid_residual_max(), "points": start.grid.points}
        print("profile 2:", first, flush=True)
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
        (work / "start.json").write_text(json.dumps(first))  # profile 2's row, for the figure of a resumed run
    follow(start, first, opts.step, opts.to, opts.finest, out, rows, work)


if __name__ == "__main__":
    main()
