"""gCLM's even mode on the 1st unstable branch near a = -1: how fast its eigenfunction decays far out, and so how wide
an interval each a needs before the analysis can see the mode at all.

Far out, where the profile p and its Tp have decayed, the even class's eigenvalue problem (GCLMEquation.other_classes)
leaves (1 + ν)φ + αξφ' = 0, so φ ~ ξ^(-(1 + ν)/α) and the sampled χ = ξφ decays like e^(-κs) with

    κ = (ν - (α - 1)) / α,

which vanishes at the class's far-field edge ν = α - 1 (at a = -1, κ = (ν - λ)/(1 + λ): CCF's odd class, as
scripts/odd_mode_truncation.py found for profile 2). On [-36, R] the periodic grid wraps what χ still holds at R,
e^(-κR), round to the left end, and the rate test (`log_stability._smooth_and_decaying`) then fails or the mode is
not an eigenvalue of the truncated operator at all: κR decides whether an interval can show the mode.

Three parts, all written to `--out` (column `part`):

- `threshold` (always; from the committed walks results/gclm_unstable1_onset_truncation.csv and
  results/gclm_unstable1_onset_wide.csv): for every (a, R) analysed, κ from the mode's ν where it was found (else ν
  at that a from the widest interval that showed it), κR, whether the analysis found the even mode and the even
  class's count (NaN where the count was not trusted).
- `extrapolated`: ν(a) and α(a) - 1 from the points that showed the mode, extrapolated to a = -1 (linear through the
  last two, quadratic through the last three): the predicted ν, κ and the R at which κR reaches the smallest κR
  that showed the mode elsewhere.
- `measured` (with `--work DIR --right R ...`; DIR a walk kept by `scripts/gclm_unstable_clustered.py --profile 1
  --to A --work DIR`): the kept point re-solved over [-36, R] on the same points (`odd_mode_truncation.widened`),
  the even class's dense spectrum on both grids, the eigenvalue nearest `--nu` on the finer (its distance to the
  coarser grid's nearest its error), and the slope of log|χ| fitted where χ stands between WRAP_MARGIN times what
  the grid's ends hold and 1e-2 of its maximum, at s > FIT_FROM, against κ from the law above; and the rate towards
  the origin (s < ORIGIN_TO, above what the ends hold): 1 for a smooth eigenfunction, against the rough part's
  2 - ν/c₀ (`second_rate_class`). At a = -1 also CCF's own odd class of θ on the same grids (`ccf_odd_mode`).

    python3 scripts/gclm_even_mode_tail.py --out results/gclm_even_mode_tail.csv
    python3 scripts/gclm_even_mode_tail.py --work DIR --right 600 700 --nu 0.633 --out results/gclm_even_mode_tail.csv

`--out` keeps the measured rows it already holds for other (a, R): one CSV from several walks.
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
from gclm_onset_truncation import kept_walk, pair_fields  # noqa: E402
from odd_mode_truncation import widened  # noqa: E402

from blowup.equations.ccf.profile import CCF_EQUATION  # noqa: E402
from blowup.equations.gclm.profile import GCLMEquation  # noqa: E402
from blowup.solvers.hilbert import operator_matrices  # noqa: E402
from blowup.solvers.log_stability import WRAP_ENDS, WRAP_MARGIN  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WALKS = ["results/gclm_unstable1_onset_truncation.csv", "results/gclm_unstable1_onset_wide.csv"]
ORIGIN_TO = -5.0  # s below which χ ~ A e^s + B e^((2 - ν/c₀)s) is fitted towards the origin: 1 where smooth (B = 0)
FIT_FROM = 30.0  # s past which the far-field law holds (a = -1, R = 600: the rate over [30, 100] is κ to 1e-5; the
# eigenfunction still rises over [10, 30], where the profile's own terms have not decayed)


def far_rate(nu: float, alpha: float, a: float) -> float:
    """κ of the even class's far field at a and α (`GCLMEquation.other_classes`)."""
    return GCLMEquation(a).other_classes(alpha)[0].far_rate(nu)


def even_nu(row: pd.Series) -> float:
    """The even mode's ν in a walk CSV's row, or NaN where none was counted."""
    if not isinstance(row["unstable_nu"], str):
        return np.nan
    pairs = zip(row["unstable_nu"].split(), str(row["unstable_parities"]).split())
    return next((float(nu) for nu, parity in pairs if parity == "even"), np.nan)


def threshold_rows() -> tuple[list[dict], pd.DataFrame]:
    walks = pd.concat([pd.read_csv(ROOT / path) for path in WALKS], ignore_index=True)
    walks = walks[walks["alpha"].notna()].copy()
    walks["nu_even"] = walks.apply(even_nu, axis=1)
    widest = walks[walks["nu_even"].notna()].sort_values("right").groupby("a").last()  # ν each a showed, widest R
    rows = []
    for _, walk in walks.iterrows():
        nu = walk["nu_even"] if walk["nu_even"] == walk["nu_even"] else widest["nu_even"].get(walk["a"], np.nan)
        kappa = far_rate(nu, walk["alpha"], walk["a"])
        rows.append(
            {
                "part": "threshold",
                "a": walk["a"],
                "right": walk["right"],
                "points": walk["points"],
                "alpha": walk["alpha"],
                "nu": nu,
                "kappa": kappa,
                "kappa_right": kappa * walk["right"],
                "mode_found": bool(walk["nu_even"] == walk["nu_even"]),
                "n_unstable_even": walk["n_unstable_even"],
            }
        )
    return rows, widest


def extrapolated_rows(rows: list[dict], widest: pd.DataFrame) -> list[dict]:
    shown = widest.sort_index()  # a nearest -1 first
    a, nu, edge = shown.index.to_numpy(), shown["nu_even"].to_numpy(), shown["alpha"].to_numpy() - 1
    counted = [r["kappa_right"] for r in rows if r["mode_found"]]
    needed = min(counted)
    out = []
    for name, points, degree in (("linear", 2, 1), ("quadratic", 3, 2)):
        nu_end = np.polyval(np.polyfit(a[:points], nu[:points], degree), -1.0)
        alpha_end = 1 + np.polyval(np.polyfit(a[:points], edge[:points], degree), -1.0)
        kappa = far_rate(nu_end, alpha_end, -1.0)
        out.append(
            {
                "part": "extrapolated",
                "a": -1.0,
                "fit": f"{name} through a = {', '.join(f'{x:g}' for x in a[:points])}",
                "alpha": alpha_end,
                "nu": nu_end,
                "kappa": kappa,
                "kappa_right": needed,
                "right": needed / kappa,
            }
        )
    return out


def ccf_odd_mode(coarse, fine, guess: float) -> dict:
    """At a = -1 the same mode in CCF's own odd class of θ: CCF's q from gCLM's p = q + q_s ((I + d/ds) q = p on the
    same grid), its residual as CCF's profile, and the eigenvalue of CCF's odd-class operator nearest `guess` on
    both grids (its distance to the coarser grid's nearest, the error)."""
    found = []
    for solve in (coarse, fine):
        _, diff = operator_matrices(solve.grid)
        q = np.linalg.solve(np.eye(len(solve.q)) + diff, solve.q)
        lam = solve.lam - 1
        (odd,) = CCF_EQUATION.other_classes(lam)
        values = np.linalg.eigvals(odd.operator(q, lam, solve.grid))
        found.append((values, float(np.abs(CCF_EQUATION.residual(q, lam, solve.grid)).max())))
    (coarse_values, _), (values, residual) = found
    nu = complex(values[int(np.argmin(np.abs(values - guess)))])
    return {
        "ccf_residual_max": residual,
        "ccf_odd_nu": nu.real,
        "ccf_odd_nu_imag": nu.imag,
        "ccf_odd_nu_error": float(np.min(np.abs(coarse_values - nu))),
    }


def measured_rows(work: Path, rights: list[float], guess: float) -> list[dict]:
    a, kept = kept_walk(work)
    rows = []
    for right in rights:
        started = time.perf_counter()
        coarse, fine = (widened(solve, right) for solve in kept)
        row = {"part": "measured", "a": a, "right": right, "points": f"{coarse.grid.points}/{fine.grid.points}"}
        if not (coarse.converged and fine.converged):
            rows.append(row | {"converged": False, "seconds": time.perf_counter() - started})
            continue
        (even,) = fine.equation.other_classes(fine.lam)
        coarse_values = np.linalg.eigvals(even.operator(coarse.q, coarse.lam, coarse.grid))  # only ν's error
        values, vectors = np.linalg.eig(even.operator(fine.q, fine.lam, fine.grid))
        ccf = ccf_odd_mode(coarse, fine, guess) if a == -1 else {}
        i = int(np.argmin(np.abs(values - guess)))
        nu, chi, s = complex(values[i]), np.abs(vectors[:, i]), fine.grid.s
        ends = max(chi[:WRAP_ENDS].max(), chi[-WRAP_ENDS:].max())
        fit = (s > FIT_FROM) & (chi > WRAP_MARGIN * ends) & (chi < 1e-2 * chi.max())
        slope = -np.polyfit(s[fit], np.log(chi[fit]), 1)[0] if fit.sum() >= 10 else np.nan
        near = (s < ORIGIN_TO) & (chi > WRAP_MARGIN * ends)  # towards the origin, above what the ends wrap round
        origin_rate = np.polyfit(s[near], np.log(chi[near]), 1)[0] if near.sum() >= 10 else np.nan
        rows.append(
            row
            | pair_fields(coarse, fine)
            | {
                "nu": nu.real,
                "nu_imag": nu.imag,
                "nu_error": float(np.min(np.abs(coarse_values - nu))),
                "kappa": even.far_rate(nu.real),
                "kappa_right": even.far_rate(nu.real) * right,
                "fitted_rate": slope,
                "origin_rate": origin_rate,
                "rough_origin_rate": 2 - nu.real / fine.equation.origin_speed(fine.lam),
                "fit_points": int(fit.sum()),
                "fit_from": float(s[fit].min()) if fit.any() else np.nan,
                "fit_to": float(s[fit].max()) if fit.any() else np.nan,
                "ends_over_max": ends / chi.max(),
                **ccf,
                "seconds": time.perf_counter() - started,
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items()}, default=str), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="a walk kept by gclm_unstable_clustered.py: measure there")
    parser.add_argument("--right", type=float, nargs="+", default=[])
    parser.add_argument("--nu", type=float, default=0.633, help="the even mode's ν to pick out of the spectrum")
    parser.add_argument("--out", required=True, type=Path)
    opts = parser.parse_args()
    if opts.work is not None and not (opts.work / "walk.json").is_file():
        parser.error(f"--work {opts.work}: no walk.json there (keep a walk with gclm_unstable_clustered.py --work)")
    if not opts.out.parent.is_dir():
        parser.error(f"--out {opts.out}: no folder {opts.out.parent}")
    rows, widest = threshold_rows()
    rows += extrapolated_rows(rows, widest)
    measured = pd.DataFrame(measured_rows(opts.work, opts.right, opts.nu) if opts.work is not None else [])
    if opts.out.exists():  # measured rows of other walks and intervals are kept: one CSV from several runs
        kept = pd.read_csv(opts.out)
        kept = kept[kept["part"] == "measured"]
        if len(measured):
            kept = kept[~kept.set_index(["a", "right"]).index.isin(measured.set_index(["a", "right"]).index)]
        measured = pd.concat([kept, measured], ignore_index=True)
    table = pd.concat([pd.DataFrame(rows), measured], ignore_index=True)
    table.to_csv(opts.out, index=False, float_format="%.10g")
    print(table.drop(columns=[c for c in ("points",) if c in table]).to_string())


if __name__ == "__main__":
    main()
