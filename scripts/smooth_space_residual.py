"""Modes the dense spectrum misses inside the continuum, found by the residual of L - ν on smooth functions.

Below a class's continuum edge (`log_stability.PerturbationClass.continuum_edge`) every ν is an eigenvalue of L on
decaying functions, with an eigenfunction A e^s + B e^(κs) near the origin (κ ≠ 1: not smooth). The dense matrix is
far from normal there, and its eigenvalues need not come near a genuine (smooth, B = 0) mode: gCLM's translation at
a = -0.1 satisfies L χ = α χ on the grid to 3e-13 and no eigenvalue comes within 0.01 of α. `blowup stability`
therefore scans the stretch between a class's resolved bound and its edge with `log_stability.SmoothResidual`, the
least singular value σ(ν) of L - ν with smoothness rows appended; this script scans any range with it and writes
every local minimum (refined by bounded Brent on log σ) with its depth against the scan's median, for a walk's kept
point or a member of the fundamental branch; with --imag, over a patch of the upper half plane (a complex pair's
upper member), each local minimum refined by Nelder-Mead.

    python3 scripts/smooth_space_residual.py --work DIR --nu 0.55 0.75 [--steps 21] [--parity even] --out X.csv
    python3 scripts/smooth_space_residual.py --a -0.1 --nu 0.9 1.35 --out X.csv   # the fundamental branch at a
    python3 scripts/smooth_space_residual.py --work DIR --nu 0.55 0.75 --imag 0.1 6 --out X.csv   # and Im ν 0..0.1

--work: a walk's kept point (scripts/gclm_unstable_clustered.py --work); --a: the fundamental branch's member at a,
continued from the exact a = 0 member on the uniform grid of spacing 0.2 over [-40, 80].
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gclm_unstable_clustered import kept_point  # noqa: E402

from blowup.equations.gclm.profile import GCLMEquation, exact_profile
from blowup.solvers import log_profile
from blowup.solvers.hilbert import LogGrid
from blowup.solvers.log_profile import ProfileSolve
from blowup.solvers.log_stability import SmoothResidual, own_class


def fundamental(a: float, spacing: float = 0.2) -> ProfileSolve:
    grid = LogGrid.with_spacing(-40.0, 80.0, spacing)
    alpha, p = exact_profile(0.0, grid)
    for step in np.linspace(0.0, a, max(2, int(abs(a) / 0.05) + 1))[1:]:
        solve = log_profile.newton(GCLMEquation(float(step)), p, alpha, grid)
        alpha, p = solve.lam, solve.q
    return solve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--work", help="a walk's --work: its walk.json (a) and fine.npz")
    source.add_argument("--a", type=float, help="the fundamental branch's member at this a")
    parser.add_argument("--nu", type=float, nargs=2, required=True, help="the range of real ν scanned")
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--spacing", type=float, default=0.2, help="with --a: the uniform grid's spacing")
    parser.add_argument(
        "--imag", type=float, nargs=2, metavar=("MAX", "STEPS"), help="complex ν too: Im ν from 0 to MAX in STEPS"
    )
    parser.add_argument("--parity", choices=("odd", "even"), default="even", help="gCLM's class (odd: Ω's own)")
    parser.add_argument("--out", required=True)
    opts = parser.parse_args()
    if opts.work:
        try:
            a, solve = kept_point(Path(opts.work))
        except ValueError as error:
            parser.error(f"--work: {error}")
    else:
        a, solve = opts.a, fundamental(opts.a, opts.spacing)
    equation = solve.equation
    classes = {c.parity: c for c in [own_class(equation, solve.lam), *equation.other_classes(solve.lam)]}
    chosen = classes[opts.parity]
    started = time.perf_counter()
    residual = SmoothResidual(chosen.operator(solve.q, solve.lam, solve.grid), solve.grid)
    setup, started = time.perf_counter() - started, time.perf_counter()
    real = np.linspace(*opts.nu, opts.steps)
    imag = np.linspace(0.0, opts.imag[0], int(opts.imag[1])) if opts.imag else np.zeros(1)
    sigma = np.array([[residual.least(complex(x, y) if y else x)[0] for x in real] for y in imag])
    per_nu = (time.perf_counter() - started) / sigma.size
    background = float(np.median(sigma))
    rows = []
    for j, i in np.ndindex(sigma.shape):  # local minima over the samples, refined on log σ
        around = sigma[max(j - 1, 0) : j + 2, max(i - 1, 0) : i + 2]
        if not 0 < i < len(real) - 1 or sigma[j, i] > around.min() or (j == len(imag) - 1 and j > 0):
            continue
        if len(imag) == 1:
            nu, least = residual.minimum(real[i - 1], real[i + 1])
            rows.append({"nu": nu, "nu_imag": 0.0, "sigma_min": least, "depth": least / background})
            continue
        found = minimize(
            lambda z: np.log(residual.least(complex(z[0], abs(z[1])) if z[1] else z[0])[0]),
            [real[i], imag[j]],
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-3, "maxiter": 200},
        )
        least = float(np.exp(found.fun))
        rows.append({"nu": found.x[0], "nu_imag": abs(found.x[1]), "sigma_min": least, "depth": least / background})
    base = {
        "a": a,
        "alpha": solve.lam,
        "points": solve.grid.points,
        "parity": opts.parity,
        "resolved_above": chosen.resolved_above,
        "continuum_edge": chosen.continuum_edge,
        "scan": f"{opts.nu[0]:g}..{opts.nu[1]:g} ({opts.steps})"
        + (f" x i 0..{imag[-1]:g} ({len(imag)})" * bool(opts.imag)),
        "background": background,
        "setup_seconds": setup,  # the operator and its Hessenberg form
        "seconds_per_nu": per_nu,
    }
    table = pd.DataFrame([base | row for row in rows] or [base])
    table["seconds"] = time.perf_counter() - started
    table.to_csv(opts.out, index=False, float_format="%.15g")
    print(table.to_string())


if __name__ == "__main__":
    main()
