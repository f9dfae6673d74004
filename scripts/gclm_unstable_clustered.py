"""gCLM's branches through CCF's unstable profiles (`--profile 1` or 2), followed up in a on grids clustered at the
profile's front.

`blowup continue` on uniform grids (scripts/gclm_branches.py) lost profile 2's branch past a = -0.976 (98415/194481
points, minutes a point) and profile 1's past a = -0.30 (9601 points: the residual between grid points grew to 1e-5
as the front steepened). Here the branch is followed by natural steps in a (`--step`, halved where Newton fails, at
most `--halvings` times, doubled again after a success) on two `MappedLogGrid`s (`log_profile.clustered`:
`--points`, centred at the front, width a third of the least transport speed, re-centred at every point), a Newton
with the smoothness row each (dense up to 2401 points, matrix-free past them): α on the finer grid, the two grids'
difference its error estimate, the residual between grid points (3x interpolant), the least transport speed c_min,
max |Ω| and the exponent at the origin (1: smooth); the grids grow (x1.4, to `--max-points`) where that residual
passes 1e-9. With `--stability`, the unstable count of `blowup stability`'s analysis on the two grids (gCLM's class,
odd Ω) and its eigenvalues. The start is CCF's profile (as scripts/ccf_family.py finds it, on a uniform grid of
spacing `--spacing`) as gCLM's unknown at a = -1, p = Θ' = q + q_s, α = 1 + λ, its maximum moved to ξ = 1 (the
normalisation). A point of the uniform branch with an error estimate (results/gclm_unstable*_up.csv) is visited too,
to compare α.

    python3 scripts/gclm_unstable_clustered.py [--profile 2] [--to -0.5] [--step 0.01] [--points 1701 2401]
        [--stability] [--out results/gclm_unstable{profile}_clustered.csv] [--work DIR]

With `--work DIR` the last point's two solves (and a, the step) are kept there, and a rerun with the same DIR goes
on from them, appending to the CSV, on the grids of `--points` (the CSV's points column says which each row had).
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
from ccf_family import ccf_profile  # noqa: E402
from ccf_family_clustered import odd, pair_figures  # noqa: E402

from blowup.equations.gclm.profile import GCLMEquation  # noqa: E402
from blowup.solvers.hilbert import derivative  # noqa: E402
from blowup.solvers.log_profile import (  # noqa: E402
    GRID_GROWTH,
    RESOLVED,
    ProfileSolve,
    clustered,
    load_solve,
    save_solve,
)
from blowup.solvers.log_stability import LogGridStability  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# per profile, a uniform branch's point with an error estimate, to compare α with: profile 2's last one
# (gclm_unstable2_up.csv), profile 1's last with a residual between points under 1e-10 (gclm_unstable1_up.csv)
UNIFORM_CHECK = {1: (-0.5074334389255241,), 2: (-0.9879622640513126,)}
START_SPACING = {1: 0.01, 2: 0.001}  # the uniform grid the start is found on


def start_at_minus_one(profile: int, spacing: float) -> ProfileSolve:
    """CCF's profile as gCLM's p at a = -1, translated (an FFT phase) so that its maximum is at s = 0."""
    ccf = ccf_profile(profile, spacing)
    grid = ccf.grid
    p = ccf.q + derivative(ccf.q, grid)
    shift = grid.s[np.argmax(p)]
    p = np.real(np.fft.ifft(np.fft.fft(p) * np.exp(1j * grid.wavenumbers * shift)))
    return ProfileSolve(1 + ccf.lam, p, grid, 0, True, equation=GCLMEquation(-1.0))


def pair_at(last: ProfileSolve, a: float, points: tuple[int, int]):
    """The branch's point at a on both clustered grids, from the last point (its p and α, its front)."""
    start = ProfileSolve(last.lam, last.q, last.grid, 0, True, equation=GCLMEquation(a))
    pair = tuple(clustered(start, n) for n in points)
    return pair if all(solve.converged for solve in pair) else None


def row(a: float, pair, started: float, stability: bool) -> dict:
    coarse, fine = pair
    measures = fine.equation.measures(fine.q, fine.lam, fine.grid)
    counts = {}
    if stability:
        spectrum = LogGridStability(coarse, fine).analyse()
        counts = {
            **spectrum.unstable_counts(),  # NaN where a symmetry mode was not found: not a count
            "unstable_nu": " ".join(f"{nu:.10f}" for nu, _ in spectrum.counts["unstable_modes"]),
            "unstable_nu_error": " ".join(f"{error:.1e}" for error in spectrum.counts["unstable_errors"]),
            "unstable_parities": " ".join(spectrum.counts["unstable_parities"]),
            "time_mode": spectrum.counts["symmetry_modes"].get("time", float("nan")),
            "translation_mode": spectrum.counts["symmetry_modes"].get("translation", float("nan")),
        }
    return {
        "a": a,
        **measures,
        "alpha_coarse": coarse.lam,
        "alpha_error_estimate": abs(fine.lam - coarse.lam),
        **pair_figures(coarse, fine),
        **counts,
        "seconds": time.perf_counter() - started,
    }


def keep(work: Path, pair, a: float, step: float) -> None:
    """The point's two solves and where the walk stands, for a rerun with the same --work to go on from."""
    work.mkdir(parents=True, exist_ok=True)
    for name, solve in zip(("coarse", "fine"), pair):
        save_solve(solve, work / f"{name}.npz")
    (work / "walk.json").write_text(json.dumps({"a": a, "step": step}))


def kept_point(work: Path) -> tuple[float, ProfileSolve]:
    """The a and the finer solve a walk kept in `work` (`keep`); ValueError, with the reason, where none is usable."""
    try:
        a = float(json.loads((work / "walk.json").read_text())["a"])
    except (OSError, ValueError, KeyError, TypeError) as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{work} holds no kept point ({error})") from None
    return a, load_solve(work / "fine.npz", GCLMEquation(a))[0]


def resume(work: Path, out: Path):
    """(rows, a, step, pair) as `keep` left them with the CSV's rows, or None (nothing kept, or not usable: said)."""
    if not ((work / "walk.json").exists() and out.exists()):
        return None
    try:
        walk = json.loads((work / "walk.json").read_text())
        a, step = float(walk["a"]), float(walk["step"])
        pair = tuple(load_solve(work / f"{name}.npz", GCLMEquation(a))[0] for name in ("coarse", "fine"))
    except (ValueError, KeyError, TypeError) as error:  # json.JSONDecodeError is a ValueError
        print(f"the point kept in {work} is not usable ({error}): starting again from a = -1")
        return None
    return pd.read_csv(out).to_dict("records"), a, step, pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=int, choices=(1, 2), default=2, help="CCF's unstable profile to start from")
    parser.add_argument("--spacing", type=float, help="the start's uniform grid (default: 0.01 for 1, 0.001 for 2)")
    parser.add_argument("--to", type=float, default=-0.5)
    parser.add_argument("--step", type=float, default=0.01)
    parser.add_argument("--halvings", type=int, default=5)
    parser.add_argument("--points", type=int, nargs=2, default=[1701, 2401])
    parser.add_argument("--max-points", type=int, default=6615)
    parser.add_argument("--stability", action="store_true", help="the unstable count at every point (both grids)")
    parser.add_argument("--out", help="default: results/gclm_unstable{profile}_clustered.csv")
    parser.add_argument("--work", help="keep the last point's two solves here; a rerun with it goes on from them")
    opts = parser.parse_args()
    opts.out = opts.out or str(ROOT / "results" / f"gclm_unstable{opts.profile}_clustered.csv")
    points, started = tuple(odd(n) for n in opts.points), time.perf_counter()
    work = Path(opts.work) if opts.work else None
    kept = resume(work, Path(opts.out)) if work is not None else None
    if kept is not None:
        rows, a, step, last_pair = kept
        print(f"going on from the point kept at a = {a:.10g}, step {step:.2e}", flush=True)
    else:
        uniform = start_at_minus_one(opts.profile, opts.spacing or START_SPACING[opts.profile])
        last_pair = pair_at(uniform, -1.0, points)
        if last_pair is None:
            raise SystemExit(f"CCF's profile {opts.profile} did not converge as gCLM's at a = -1 on clustered grids")
        rows, a, step = [row(-1.0, last_pair, started, opts.stability)], -1.0, opts.step
        print(rows[-1], flush=True)
        if work is not None:  # `--to -1` keeps CCF's profile itself, for an analysis of the member a = -1
            keep(work, last_pair, a, step)
    checks = sorted(c for c in UNIFORM_CHECK[opts.profile] if -1.0 < c < opts.to)
    while a < opts.to:
        started = time.perf_counter()
        target = min(a + step, opts.to, *[c for c in checks if c > a])
        pair = pair_at(last_pair[1], target, points)
        if pair is None:
            if step / 2 < opts.step / 2**opts.halvings:
                print(f"lost past a = {a:.10g} (steps down to {step:.2e}): where the branch ends, turns or outgrows "
                      f"the grids", flush=True)  # fmt: skip
                break
            step /= 2
            continue
        if pair[1].offgrid_residual_max() > RESOLVED and points[1] < opts.max_points:
            points = (odd(points[0] * GRID_GROWTH), odd(points[1] * GRID_GROWTH))
            print(f"grids grow to {points}", flush=True)
            continue
        a, last_pair, step = target, pair, min(2 * step, opts.step)
        rows.append(row(a, pair, started, opts.stability))
        print(rows[-1], flush=True)
        pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.15g")
        if work is not None:
            keep(work, pair, a, step)
    pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.15g")


if __name__ == "__main__":
    main()
