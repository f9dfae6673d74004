"""Whether the deep σ minimum that gCLM's 1st unstable branch shows in its even class at the kept point (a = -0.84
in results/gclm_unstable1_onset.csv: deep on both grids, its eigenfunction failing the rate test) is the even mode
counted from a = -0.82 on, its slowly decaying tail truncated by the interval, measured against the right end.

The kept point's two solves (`scripts/gclm_unstable_clustered.py --work DIR`) are re-solved on grids of the same
points and front over [left, R] for each R in `--right` (`odd_mode_truncation.widened`: their tails continued
exponentially, Newton there) and analysed as `blowup stability` does (both classes, the scan): one row per R with
the counts, the modes and the minima that failed the rate test. A truncation effect shrinks as R grows; a
non-smooth eigenfunction does not.

    python3 scripts/gclm_onset_truncation.py --work DIR --right 60 80 100 \
        --out results/gclm_unstable1_onset_truncation.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from odd_mode_truncation import widened  # noqa: E402

from blowup.equations.gclm.profile import GCLMEquation  # noqa: E402
from blowup.solvers.log_profile import load_solve  # noqa: E402
from blowup.solvers.log_stability import LogGridStability  # noqa: E402


def kept_walk(work: Path) -> tuple[float, list]:
    """The a and the two solves (coarse, fine) a walk kept in `work` (`gclm_unstable_clustered.py --work`)."""
    a = float(json.loads((work / "walk.json").read_text())["a"])
    return a, [load_solve(work / f"{name}.npz", GCLMEquation(a))[0] for name in ("coarse", "fine")]


def pair_fields(coarse, fine) -> dict:
    """A converged pair's α, its error estimate (the two grids' difference) and the residual between points."""
    return {
        "converged": True,
        "alpha": fine.lam,
        "alpha_error_estimate": abs(fine.lam - coarse.lam),
        "residual_between_points": fine.offgrid_residual_max(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--right", type=float, nargs="+", default=[60.0, 80.0, 100.0])
    parser.add_argument("--out", required=True, type=Path)
    opts = parser.parse_args()
    a, kept = kept_walk(opts.work)
    rows = []
    for right in opts.right:
        started = time.perf_counter()
        coarse, fine = (widened(solve, right) for solve in kept)
        row = {"a": a, "right": right, "points": f"{coarse.grid.points}/{fine.grid.points}"}
        if not (coarse.converged and fine.converged):
            rows.append(row | {"converged": False})
            continue
        spectrum = LogGridStability(coarse, fine).analyse()
        counts = spectrum.counts
        rows.append(
            row
            | pair_fields(coarse, fine)
            | {
                **spectrum.unstable_counts(),
                "unstable_nu": " ".join(f"{nu:.8f}" for nu, _ in counts["unstable_modes"]),
                "unstable_nu_error": " ".join(f"{error:.1e}" for error in counts["unstable_errors"]),
                "unstable_parities": " ".join(counts["unstable_parities"]),
                "scan_not_smooth": " ".join(f"{nu:.8f} ({parity})" for nu, _, parity in counts["scan_not_smooth"]),
                "time_mode": counts["symmetry_modes"].get("time", float("nan")),
                "seconds": time.perf_counter() - started,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    pd.DataFrame(rows).to_csv(opts.out, index=False, float_format="%.12g")


if __name__ == "__main__":
    main()
