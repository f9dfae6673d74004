"""The stability of the point a gCLM walk kept (`scripts/gclm_unstable_clustered.py --work DIR`), on pairs of grids
clustered at its front that are coarser than the walk's own.

The far points of the unstable branches needed 4725-13125 clustered points for the residual between grid points to
stay under 1e-9; dense spectra on those (the only kind that analyses both perturbation classes) would take hours and
tens of GB. An eigenvalue, though, may be resolved on fewer points than the residual asks for: here the kept profile
is re-solved (Newton, `log_profile.clustered`) on each pair in `--pairs` and analysed there with `blowup stability`'s
analysis (both classes, both grids of the pair). The count is trusted only where each class finds its symmetry mode
(time, ν = 1; translation, ν = α where above the class's resolved bound) and where two pairs agree on it; each pair's
α against the kept one says how well it resolves the profile. One CSV row per pair.

    python3 scripts/gclm_point_stability.py --work DIR [--pairs 1701 2401 2401 3375] [--out results/X.csv]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gclm_unstable_clustered import kept_point  # noqa: E402

from blowup.solvers.log_profile import clustered
from blowup.solvers.log_stability import LogGridStability


def analyse(kept, points: tuple[int, int]) -> dict:
    started = time.perf_counter()
    pair = [clustered(kept, n) for n in points]
    row = {"coarse_points": pair[0].grid.points, "fine_points": pair[1].grid.points}
    if not all(solve.converged for solve in pair):
        return row | {"converged": False, "seconds": time.perf_counter() - started}
    coarse, fine = pair
    spectrum = LogGridStability(coarse, fine).analyse()
    counts = spectrum.counts
    return row | {
        "converged": True,
        "alpha": fine.lam,
        "alpha_vs_kept": fine.lam - kept.lam,
        "alpha_error_estimate": abs(fine.lam - coarse.lam),
        "residual_between_points": fine.offgrid_residual_max(),
        **spectrum.unstable_counts(),
        "unstable_nu": " ".join(f"{nu:.10f}" for nu, _ in counts["unstable_modes"]),
        "unstable_parities": " ".join(counts["unstable_parities"]),
        "time_mode": counts["symmetry_modes"].get("time", float("nan")),
        "translation_mode": counts["symmetry_modes"].get("translation", float("nan")),
        "untrusted_classes": " ".join(counts["untrusted_classes"]),
        "candidates": len(counts["candidates_in_continuum"]),
        "resolved_above_odd": counts["resolved_above_by_class"].get("odd"),
        "resolved_above_even": counts["resolved_above_by_class"].get("even"),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="a walk's --work: its walk.json (a) and fine.npz")
    parser.add_argument("--pairs", type=int, nargs="+", default=[1701, 2401, 2401, 3375], help="coarse fine ...")
    parser.add_argument("--out", required=True)
    opts = parser.parse_args()
    if len(opts.pairs) % 2:
        parser.error("--pairs takes point counts two by two (coarse fine)")
    try:
        a, kept = kept_point(Path(opts.work))
    except ValueError as error:
        parser.error(f"--work: {error}")
    rows = []
    for points in zip(opts.pairs[::2], opts.pairs[1::2]):
        rows.append({"a": a, "kept_alpha": kept.lam, "kept_points": kept.grid.points} | analyse(kept, points))
        print(rows[-1], flush=True)
        pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.15g")


if __name__ == "__main__":
    main()
