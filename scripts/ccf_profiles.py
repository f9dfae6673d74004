"""CCF profiles without a network: the run's finder (blowup.equations.ccf.profile.find_profile: the non-smooth family
followed to where it turns smooth, then Newton on the profile's two default grids) from rough starts spread
over each of the issue's wide brackets, beside the published λ. A start counts as found only if Newton
converged, λ lies in the bracket and the off-grid residual is below 1e-9. One row per start to
results/ccf_profiles.csv, a table to .md.

    python3 scripts/ccf_profiles.py [--out results] [--starts 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from blowup.equations.ccf.problem import DEFAULTS, PUBLISHED_LAMBDA, CCFConfig
from blowup.equations.ccf.profile import find_profile, rough_profile

BRACKETS = {0: (1.0, 1.5), 1: (0.52, 0.9), 2: (0.40, 0.52)}


def attempt(profile: int, start: float) -> dict:
    clock = time.perf_counter()
    lo, hi = BRACKETS[profile]
    defaults = DEFAULTS[profile]
    scan, coarse, fine = find_profile(
        lambda grid: rough_profile(start, grid),
        start,
        (lo, hi),
        defaults.grid,
        defaults.scan_spacing,
        CCFConfig.scan_step,
        defaults.newton_spacing,
        defaults.entry_lambda,
    )
    converged = coarse.converged and fine.converged
    residual = fine.offgrid_residual_max() if converged else float("nan")
    return {
        "profile": profile,
        "start": start,
        "found": converged and lo <= fine.lam <= hi and residual < 1e-9,
        "lambda_scan": scan.smooth.lam if scan.smooth is not None else float("nan"),
        "family_covered": scan.covered,
        "lambda": fine.lam if converged else float("nan"),
        "lambda_vs_published": abs(fine.lam - PUBLISHED_LAMBDA[profile]) if converged else float("nan"),
        "lambda_error_estimate": abs(fine.lam - coarse.lam) if converged else float("nan"),
        "offgrid_residual_max": residual,
        "newton_steps": coarse.steps + (fine.steps if coarse.converged else 0),
        "wall_time_s": time.perf_counter() - clock,
    }


def markdown(rows: pd.DataFrame) -> str:
    lines = [
        "| profile | bracket | starts | found | λ (worst start) | published | worst \\|λ - published\\| |"
        " worst λ estimate | worst off-grid residual | s (max) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for profile, frame in rows.groupby("profile"):
        found = frame[frame.found]
        worst = found.loc[found.lambda_vs_published.idxmax()] if len(found) else None
        cells = (
            [
                f"{worst['lambda']:.13f}",
                f"{PUBLISHED_LAMBDA[profile]}",
                f"{found.lambda_vs_published.max():.1e}",
                f"{found.lambda_error_estimate.max():.1e}",
                f"{found.offgrid_residual_max.max():.1e}",
            ]
            if worst is not None
            else ["not found", f"{PUBLISHED_LAMBDA[profile]}", "", "", ""]
        )
        lo, hi = BRACKETS[profile]
        lines.append(
            f"| {profile} | [{lo}, {hi}] | {len(frame)} | {len(found)} | "
            + " | ".join(cells)
            + f" | {frame.wall_time_s.max():.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    rows = pd.DataFrame(
        [
            attempt(profile, float(start))
            for profile, (lo, hi) in BRACKETS.items()
            for start in np.linspace(lo, hi, args.starts)
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out / "ccf_profiles.csv", index=False)
    (args.out / "ccf_profiles.md").write_text(markdown(rows))
    print(rows.to_string())
    print(markdown(rows))


if __name__ == "__main__":
    main()
