"""The gap between CCF's odd mode of profile 2 and gCLM's even mode at a = -1 (the same perturbations, two
discretisations), measured against the right end of the interval.

An odd perturbation of θ at ν decays in the far field only like y^((λ - ν)/(1 + λ)): for ν = 0.7839 at λ = 0.4713
like e^(-0.21 s), so on [-36, 60] the eigenfunction still holds ~1e-7 of its maximum at the right end, where the
periodic grid wraps it round to the left. Both grids of a pair share that interval, so they agree with each other
while both carry the truncation; the two discretisations carry it differently. Here the profile is re-solved on
clustered grids of the same sizes and front over [-36, R] for growing R (started from the run's profile, its tail
continued exponentially; Newton then solves there), and both classes analysed (dense spectra, no scan): the odd
mode in CCF's odd class and in gCLM's even class at a = -1 (χ = -f_s, the profile p = q + q_s).

    python3 scripts/odd_mode_truncation.py RUN_DIR --right 60 80 100 --out results/odd_mode_truncation.csv

RUN_DIR: a run of `blowup train equation=ccf profile=2`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from blowup.analysis.stability import stability_of
from blowup.equations.gclm.profile import GCLMEquation
from blowup.solvers import log_profile
from blowup.solvers.hilbert import MappedLogGrid, derivative, resample
from blowup.solvers.log_profile import ProfileSolve
from blowup.solvers.log_stability import LogGridStability, SmoothResidual

ODD_MODE = 0.78393827  # CCF's odd mode of profile 2 (README), picked out of each spectrum as the mode nearest it


def widened(solve: ProfileSolve, right: float) -> ProfileSolve:
    """The profile on a grid of the same points and front over [left, right]: the run's values, continued past its
    right end along the exponential fitted to its last stretch, as Newton's start."""
    old = solve.grid
    grid = MappedLogGrid(old.left, right, old.points, old.fronts)
    tail = (old.s > old.right - 15) & (old.s < old.right - 2)
    rate, offset = np.polyfit(old.s[tail], np.log(np.abs(solve.q[tail])), 1)
    start = np.where(grid.s <= old.s[-1], np.interp(grid.s, old.s, solve.q), np.exp(offset + rate * grid.s))
    start *= np.where(grid.s <= old.s[-1], 1.0, np.sign(solve.q[-1]))
    return log_profile.newton(solve.equation, start, solve.lam, grid)


def odd_mode(coarse: ProfileSolve, fine: ProfileSolve, parity: str) -> tuple[float, float, float]:
    """The mode's ν, its two grids' difference and σ(ν) (`SmoothResidual`) on the fine grid."""
    spectrum = LogGridStability(coarse, fine, scan=False).analyse()
    chosen = [m for m in spectrum.modes if m.parity == parity and m.symmetry is None]
    mode = min(chosen, key=lambda m: abs(m.nu - ODD_MODE))
    (perturbations,) = [c for c in fine.equation.other_classes(fine.lam) if c.parity == parity]
    residual = SmoothResidual(perturbations.operator(fine.q, fine.lam, fine.grid), fine.grid)
    return mode.nu.real, mode.error, residual.least(mode.nu.real)[0]


def as_gclm(solve: ProfileSolve) -> ProfileSolve:
    """gCLM's member at a = -1 on as many points over the same interval, clustered at its front and normalised
    as gCLM asks (p's maximum at s = 0), from CCF's profile: p = q + q_s, α = 1 + λ."""
    p = solve.q + derivative(solve.q, solve.grid)
    p = resample(p, solve.grid, solve.grid, shift=float(solve.grid.s[np.argmax(p)]))  # its maximum near s = 0
    start = ProfileSolve(1 + solve.lam, p, solve.grid, 0, True, equation=GCLMEquation(-1.0))
    return log_profile.clustered(start, solve.grid.points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--right", type=float, nargs="+", default=[60.0, 80.0, 100.0])
    parser.add_argument("--out", required=True, type=Path)
    opts = parser.parse_args()
    stability = stability_of(opts.run)
    rows = []
    for right in opts.right:
        started = time.perf_counter()
        coarse, fine = (widened(solve, right) for solve in (stability.coarse, stability.fine))
        assert coarse.converged and fine.converged, f"Newton on [.., {right}] did not converge"
        ccf_nu, ccf_error, ccf_sigma = odd_mode(coarse, fine, "odd")
        gclm_coarse, gclm_fine = as_gclm(coarse), as_gclm(fine)
        gclm = gclm_coarse.converged and gclm_fine.converged  # NaN where gCLM's Newton did not converge there
        gclm_nu, gclm_error, gclm_sigma = odd_mode(gclm_coarse, gclm_fine, "even") if gclm else (np.nan,) * 3
        rows.append(
            {
                "right": right,
                "grid_points": f"{coarse.grid.points}/{fine.grid.points}",
                "lambda": fine.lam,
                "alpha_minus_one": gclm_fine.lam - 1 if gclm else np.nan,
                "ccf_odd_nu": ccf_nu,
                "ccf_pair_error": ccf_error,
                "ccf_sigma": ccf_sigma,
                "gclm_even_nu": gclm_nu,
                "gclm_pair_error": gclm_error,
                "gclm_sigma": gclm_sigma,
                "gap": gclm_nu - ccf_nu,
                "far_decay_at_right": np.exp(-(ccf_nu - fine.lam) / (1 + fine.lam) * right),
                "seconds": time.perf_counter() - started,
            }
        )
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(opts.out, index=False, float_format="%.15g")
    print(table.to_string())


if __name__ == "__main__":
    main()
