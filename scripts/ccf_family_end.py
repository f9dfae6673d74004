"""Where CCF's non-smooth family below profile 2 ends, from the members `scripts/ccf_family.py` measured.

Following the family down in λ, the front steepens: the least transport speed c_min falls and max |Ω| grows
with their product nearly constant, the signature of a shock forming at the front. If c_min ~ (λ - λ*)^(1/2)
and max |Ω| ~ (λ - λ*)^(-1/2) as λ → λ*, then c_min² and 1/max|Ω|² are linear in λ and both vanish at λ*,
where the family ends (its front becomes a shock). Each is fitted, linear and quadratic, to the last m
members (m = 3, 4, 5): the spread of the λ* estimates is how well the members fix it. A fold would instead
leave c_min at a positive value where λ turns: c_min = c* + B (λ - λ*)^(1/2) fitted with c* free says which
(`speed_min_limit`). max |Ω| at λ = 0.455 from each 1/max|Ω|² fit compares with arXiv 2511.22819's peak there.

The smoothness defect, whose sign change would be a 3rd smooth profile, is extrapolated to each λ* from
a + b (λ - λ*)^(1/2) + c (λ - λ*) (the same square-root approach, fitted to the same members): its sign there
says whether the fits predict a zero crossing before the family ends, and where (`lambda_defect_zero`: a 3rd
profile's λ, if the extrapolation holds). These are extrapolations, not members; the README says what they
decide and what they do not.

    python3 scripts/ccf_family_end.py [--family results/ccf_family.csv] [--out results/ccf_family_end.csv]
    python3 scripts/ccf_family_end.py --family results/ccf_family_clustered.csv \
        --out results/ccf_family_end_clustered.csv
    python3 scripts/ccf_family_end.py --family results/ccf_family_fold.csv --spacing 5e-5 \
        --out results/ccf_family_end_fold.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

ROOT = Path(__file__).resolve().parents[1]
COMPARED_AT = 0.455  # arXiv 2511.22819: a peak near 40 in its non-smooth solutions at this λ


def end_estimates(family: pd.DataFrame, members: int) -> list[dict]:
    """λ* from c_min² and from 1/max|Ω|², each fitted linear and quadratic in λ to the last `members` members,
    and the defect extrapolated to each λ*."""
    last = family.sort_values("lambda", ascending=False).tail(members)
    lam, defect = last["lambda"].to_numpy(), last.smoothness_defect.to_numpy()
    rows = []
    for quantity, values in (("speed_min^2", last.speed_min**2), ("1/omega_max^2", 1 / last.omega_max**2)):
        for degree in (1, 2):
            if members <= degree:
                continue
            fit = np.polyfit(lam, values.to_numpy(), degree)
            roots = np.roots(fit)
            real = roots[np.isreal(roots)].real
            below = real[real < lam.min()]
            if below.size == 0:
                continue
            end = float(below.max())  # the first zero below the members: where following them down ends
            omega_at = 1 / np.sqrt(np.polyval(fit, COMPARED_AT)) if quantity == "1/omega_max^2" else float("nan")
            rows.append(
                {
                    "quantity": quantity,
                    "degree": degree,
                    "members": members,
                    "lowest_member": float(lam.min()),
                    "lambda_end": end,
                    **defect_extrapolated(lam, defect, end),
                    "omega_max_at_0.455": float(omega_at),
                    "speed_min_limit": speed_limit(lam, last.speed_min.to_numpy())
                    if (quantity, degree) == ("speed_min^2", 1)
                    else float("nan"),
                }
            )
    return rows


def defect_extrapolated(lam: np.ndarray, defect: np.ndarray, end: float) -> dict[str, float]:
    """The defect's a + b r + c r² least-squares fit in r = (λ - λ*)^(1/2): its value at λ* (a), and the λ
    between λ* and the members where it vanishes (NaN if it does not)."""
    root = np.sqrt(lam - end)
    a, b, c = np.linalg.lstsq(np.vstack([np.ones_like(root), root, root**2]).T, defect, rcond=None)[0]
    zeros = [r.real for r in np.roots([c, b, a]) if abs(r.imag) < 1e-12 and 0 < r.real < root.min()]
    return {"defect_at_end": float(a), "lambda_defect_zero": end + max(zeros) ** 2 if zeros else float("nan")}


def speed_limit(lam: np.ndarray, speed: np.ndarray) -> float:
    """c* of c_min = c* + B (λ - λ*)^(1/2) fitted with c*, B and λ* free (least squares): > 0 at a fold."""

    def misfit(p):
        return p[0] + p[1] * np.sqrt(np.maximum(lam - p[2], 0.0)) - speed

    start = [0.0, speed[-1] / np.sqrt(lam.min() - lam.min() * 0.995), lam.min() * 0.995]
    fit = least_squares(misfit, start, bounds=([-1.0, 0.0, 0.4], [1.0, 100.0, lam.min() - 1e-9]))
    return float(fit.x[0])


def thinned(family: pd.DataFrame, spacing: float) -> pd.DataFrame:
    """The members (sorted by λ) at least `spacing` apart, the lowest kept: a pseudo-arclength walk's points lie
    1e-5 apart, and a fit to its last few would extrapolate over 10 times their span."""
    kept, last = [], -np.inf
    for index, lam in family["lambda"].items():
        if lam >= last + spacing:
            kept.append(index)
            last = lam
    return family.loc[kept]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default=str(ROOT / "results" / "ccf_family.csv"))
    parser.add_argument("--out", default=str(ROOT / "results" / "ccf_family_end.csv"))
    parser.add_argument(
        "--spacing", type=float, default=0.0, help="members at least this far apart in λ, from the last"
    )
    opts = parser.parse_args()
    if not Path(opts.family).is_file():
        parser.error(f"--family {opts.family}: no such file (scripts/ccf_family.py writes it)")
    family = pd.read_csv(opts.family)
    if "kind" in family:  # ccf_family_clustered.py's or ccf_family_fold.py's CSV: its non-smooth members only
        family = family[family.kind.isin(["member", "point"])]
    family = thinned(family.sort_values("lambda"), opts.spacing)
    rows = [row for members in (3, 4, 5) for row in end_estimates(family, members)]
    table = pd.DataFrame(rows)
    table.to_csv(opts.out, index=False, float_format="%.6g")
    product = family.speed_min * family.omega_max
    print(table.to_string(index=False))
    print(f"c_min * max|Omega| over the members: {product.min():.4f} .. {product.max():.4f}")
    print(
        f"lambda_end {table.lambda_end.min():.5f} .. {table.lambda_end.max():.5f}; defect there "
        f"{table.defect_at_end.min():.2e} .. {table.defect_at_end.max():.2e}"
    )


if __name__ == "__main__":
    main()
