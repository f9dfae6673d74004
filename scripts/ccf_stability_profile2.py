"""CCF's 2nd unstable profile: its stability spectrum (even and odd perturbations) on grids clustered at its front.

Profile 2's front (least transport speed 0.030) needs 10^5 uniform points, where the dense spectrum cannot go
and shift-invert Arnoldi (GMRES inside) took longer than 25 minutes a grid. On `MappedLogGrid`s clustered at
the front (`log_profile.clustered`) a few thousand points resolve it, and `blowup stability`'s own analysis
(`LogGridStability`: dense spectra on two grids, modes smooth at the origin, decaying, found on both) runs
there; this is what `blowup stability` does on a profile-2 run. Here each pair of consecutive sizes in
`--points` is analysed, so that the unstable eigenvalues can be watched converging as the grids grow.

Profile 2 is found as scripts/ccf_family.py finds it (family entered at 0.7, followed into the bracket on the
0.005 scanning grid, Newton on spacings 0.002 and 0.001), then re-solved on each clustered grid. One CSV row per
pair and mode (the unstable ones and the time mode), with the pair's counts and seconds; a summary on stdout.

    python3 scripts/ccf_stability_profile2.py [--points 1701 2401 3375 4725] [--out results/ccf_stability_profile2.csv]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ccf_family import ccf_profile  # noqa: E402

from blowup.solvers.log_profile import clustered  # noqa: E402
from blowup.solvers.log_stability import LogGridStability  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_LAMBDA = 0.4713248638620  # arXiv 2509.14185, whose Fig. 3b gives profile 2 two unstable modes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, nargs="+", default=[1701, 2401, 3375, 4725])
    parser.add_argument("--out", default=str(ROOT / "results" / "ccf_stability_profile2.csv"))
    opts = parser.parse_args()
    clock = time.perf_counter()
    uniform = ccf_profile(2, 0.001)
    print(f"profile 2 on {uniform.grid.points} uniform points: lambda {uniform.lam:.15f} "
          f"({time.perf_counter() - clock:.0f} s)", flush=True)  # fmt: skip
    solves, rows = [], []
    for points in opts.points:
        clock = time.perf_counter()
        solve = clustered(uniform, points)
        solves.append((solve, time.perf_counter() - clock, solve.offgrid_residual_max()))
        print(f"{points} clustered points: lambda {solve.lam:.15f}, converged {solve.converged}, residual between "
              f"points {solves[-1][2]:.1e}, {solves[-1][1]:.0f} s", flush=True)  # fmt: skip
    for (coarse, _, _), (fine, solve_seconds, residual) in zip(solves, solves[1:]):
        clock = time.perf_counter()
        spectrum = LogGridStability(coarse, fine).analyse()
        counts = spectrum.counts
        pair = {
            "points": f"{coarse.grid.points}/{fine.grid.points}",
            "lambda": fine.lam,
            "lambda_vs_uniform": fine.lam - uniform.lam,
            "lambda_vs_published": fine.lam - PUBLISHED_LAMBDA,
            "offgrid_residual_max": residual,
            "front_s": fine.grid.fronts[0][0],
            "front_width": fine.grid.fronts[0][1],
            "n_unstable": spectrum.unstable_count(),
            "n_unstable_even": counts["n_unstable_even"],
            "n_unstable_odd": counts["n_unstable_odd"],
            "candidates_in_continuum": len(counts["candidates_in_continuum"]),
            "resolved_above": counts["resolved_above"],
            "grid_artefacts_up_to": counts["grid_artefacts_up_to"],
            "n_discarded": counts["n_discarded"],
            "newton_seconds": solve_seconds,
            "spectrum_seconds": time.perf_counter() - clock,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        for mode in spectrum.modes:
            rows.append(pair | {"parity": mode.parity, "nu_real": mode.nu.real, "nu_imag": mode.nu.imag,
                                "nu_error": mode.error, "symmetry": mode.symmetry or ""})  # fmt: skip
        print(spectrum.summary, flush=True)
        print(pair | {"modes": [(m.nu, m.error, m.symmetry) for m in spectrum.modes]}, flush=True)
        pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.15g")


if __name__ == "__main__":
    main()
