"""Newton on grids clustered at a front: dense (Householder QR) against matrix-free (LSMR, the correction to H
factored at low rank), time, memory and Krylov iterations against the number of points.

The profile is CCF's 2nd unstable one (front: least transport speed 0.030), found as a run finds it on uniform
grids (scripts/ccf_family.py's `ccf_profile(2, 0.001)`: 98415/194481 points) and kept in `--work`. Each row
re-solves it on a `MappedLogGrid` of N points centred at its front (`log_profile.front`; width a third of the
least speed), from the uniform profile resampled there with λ moved by `--offset`, so that Newton takes several
steps, in a process of its own (its peak memory is the row's). Columns: points, solver, Newton steps, seconds
(whole solve, with the low-rank factoring for the matrix-free one), the factoring's seconds (`hilbert.compress`,
once per grid), seconds per Newton step (without the factoring), LSMR iterations per step
(mean, max), the correction's rank, peak resident MB, λ and its distance from the uniform grids' λ, and, up to
`--offgrid-up-to` points, the residual between grid points (3x interpolant).

    python3 scripts/mapped_newton_scaling.py --work DIR [--points 1701 2401 3375 4725 6615 9261 13125 18225]
        [--dense-up-to 6615] [--out results/mapped_newton_scaling.csv]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def one(work: Path, points: int, dense: bool, offset: float, offgrid: bool) -> dict:
    """One re-solve in this process (the row's peak memory is this process's)."""
    from blowup.equations.ccf.profile import CCF_EQUATION
    from blowup.solvers import hilbert
    from blowup.solvers.hilbert import MappedLogGrid
    from blowup.solvers.log_profile import front_cluster, load_solve, newton, normalised_start

    uniform, _ = load_solve(work / "profile2.npz", CCF_EQUATION)
    grid = MappedLogGrid(uniform.grid.left, uniform.grid.right, points, front_cluster(uniform))
    start = normalised_start(uniform, grid)
    clock = time.perf_counter()
    if not dense:
        hilbert.compress(grid)  # what newton does first on a mapped grid, timed on its own
    factor_seconds = time.perf_counter() - clock
    solve = newton(CCF_EQUATION, start, uniform.lam + offset, grid, dense=dense)
    seconds = time.perf_counter() - clock
    iterations = solve.krylov_iterations
    factors = hilbert._LOW_RANK.get(grid)
    return {
        "points": points,
        "solver": "dense" if dense else "matrix-free",
        "steps": solve.steps,
        "seconds": seconds,
        "factor_seconds": factor_seconds if not dense else float("nan"),
        "seconds_per_step": (seconds - factor_seconds) / max(solve.steps, 1),
        "krylov_mean": float(np.mean(iterations)) if iterations else float("nan"),
        "krylov_max": max(iterations) if iterations else float("nan"),
        "rank": factors[0].shape[1] if factors is not None else float("nan"),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "converged": solve.converged,
        "lambda": solve.lam,
        "lambda_vs_uniform": solve.lam - uniform.lam,
        "offgrid_residual_max": solve.offgrid_residual_max() if offgrid else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="where profile 2 (uniform grids) is kept between runs")
    parser.add_argument("--points", type=int, nargs="+", default=[1701, 2401, 3375, 4725, 6615, 9261, 13125, 18225])
    parser.add_argument("--dense-up-to", type=int, default=6615)
    parser.add_argument("--offgrid-up-to", type=int, default=6615)
    parser.add_argument("--offset", type=float, default=1e-5, help="λ's start moved by this from the profile's")
    parser.add_argument("--out", default=str(ROOT / "results" / "mapped_newton_scaling.csv"))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # points,dense: a single row, printed as JSON
    opts = parser.parse_args()
    work = Path(opts.work)
    if opts.one:
        points, dense = opts.one.split(",")
        print(json.dumps(one(work, int(points), dense == "1", opts.offset, int(points) <= opts.offgrid_up_to)))
        return
    if not (work / "profile2.npz").exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from ccf_family import ccf_profile

        from blowup.solvers.log_profile import save_solve

        work.mkdir(parents=True, exist_ok=True)
        clock = time.perf_counter()
        uniform = ccf_profile(2, 0.001)
        save_solve(uniform, work / "profile2.npz")
        print(f"profile 2 on {uniform.grid.points} uniform points: lambda {uniform.lam:.15f} "
              f"({time.perf_counter() - clock:.0f} s)", flush=True)  # fmt: skip
    rows = []
    for points in opts.points:
        for dense in (False, True) if points <= opts.dense_up_to else (False,):
            command = [sys.executable, __file__, "--work", str(work), "--one", f"{points},{int(dense)}",
                       "--offset", str(opts.offset), "--offgrid-up-to", str(opts.offgrid_up_to)]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                print(f"{points} {'dense' if dense else 'matrix-free'} failed: {result.stderr[-500:]}", flush=True)
                continue
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
            pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.15g")
    free = pd.DataFrame([row for row in rows if row["solver"] == "matrix-free"])
    if len(free) > 2:
        slope = np.polyfit(np.log(free["points"]), np.log(free["seconds_per_step"]), 1)[0]
        span = f"{free['points'].min()}..{free['points'].max()}"
        print(f"matrix-free seconds per step grow like N^{slope:.2f} over {span} points")


if __name__ == "__main__":
    main()
