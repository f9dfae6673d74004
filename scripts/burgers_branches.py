"""Burgers followed through its boundary value (issue 26's test of `blowup continue` on an equation whose every
branch point is known): `blowup train equation=burgers profile=k seed=s`, then `blowup continue RUN --param
equation.boundary` up to b = 1.9 and down to b = 0.6 (U(∓2) = ±b), with the unstable count at every point.

The scaling symmetry makes every U + c U^(2k+3) = -X (c > 0) a profile: along the branch λ stays λ_k = 1/(2k+2)
and the profile is that closed form with c = (2 - b)/b^(2k+3); the event U(1) = -0.8 lies where
(2 - b)/b^(2k+3) = 0.2/0.8^(2k+3) (found here by brentq, independently of the continuation).

Writes results/burgers_boundary.csv (every branch point: k, seed, leg and branch.csv's columns) and
results/burgers_boundary_events.csv (each event beside its closed-form value). One run at a time, threads=1:

    python3 scripts/burgers_branches.py                      # k = 0, 1, 2 x seeds 0-2 (~10 min on one core)
    python3 scripts/burgers_branches.py --ks 0 --seeds 0
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from scipy.optimize import brentq

ROOT = Path(__file__).resolve().parents[1]
LEGS = [("up", 1.9), ("down", 0.6)]
U_MID = -0.8  # the event: U(1) crosses this


def blowup(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["blowup", *args], capture_output=True, text=True, cwd=ROOT)


def crossing(k: int, lo: float, hi: float) -> float | None:
    """b where the closed form has U(1) = U_MID, if it lies in [lo, hi]."""
    p = 2 * k + 3

    def gap(b: float) -> float:
        return (2 - b) / b**p - (-1 - U_MID) / U_MID**p  # c at the boundary value b, and where U(1) = U_MID

    return brentq(gap, lo, hi, xtol=1e-15) if gap(lo) * gap(hi) < 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    points, events = [], []
    with tempfile.TemporaryDirectory(prefix="burgers_branches_") as scratch:
        for k in args.ks:
            for seed in args.seeds:
                run = Path(scratch) / f"k{k}_s{seed}"
                trained = blowup("train", "equation=burgers", f"profile={k}", f"seed={seed}", "threads=1",
                                 f"hydra.run.dir={run}")  # fmt: skip
                if trained.returncode != 0:
                    sys.exit(f"k={k} seed={seed}: training failed: {trained.stderr[-500:]}")
                for leg, to in LEGS:
                    out = run / leg
                    walked = blowup("continue", str(run), "--param", "equation.boundary", "--to", str(to),
                                    "--event", f"u_mid={U_MID}", "--stability", "--out", str(out))  # fmt: skip
                    if not (out / "branch.csv").is_file():
                        sys.exit(f"k={k} seed={seed} {leg}: blowup continue failed: {walked.stderr[-2000:]}")
                    print(f"k={k} seed={seed} {leg}: {(walked.stdout.strip().splitlines() or [''])[-1]}")
                    branch = pd.read_csv(out / "branch.csv")
                    points.append(branch.assign(k=k, seed=seed, leg=leg))
                    found = pd.read_csv(out / "events.csv")
                    exact = crossing(k, *sorted((1.0, to)))
                    for _, event in found.iterrows():
                        events.append({"k": k, "seed": seed, "leg": leg, **event.to_dict(), "exact": exact,
                                       "difference": event.parameter - exact if exact else None})  # fmt: skip
                    if exact is not None and found.empty:
                        events.append({"k": k, "seed": seed, "leg": leg, "event": "missed", "exact": exact})
    table = pd.concat(points, ignore_index=True)
    first = ["k", "seed", "leg"]
    table = table[first + [c for c in table.columns if c not in first]]
    table.to_csv(ROOT / "results" / "burgers_boundary.csv", index=False, float_format="%.17g")
    pd.DataFrame(events).to_csv(ROOT / "results" / "burgers_boundary_events.csv", index=False, float_format="%.17g")
    table["lambda_error"] = (table["lambda"] - table.lambda_exact).abs()
    summary = table.groupby(["k", "leg"]).agg(
        points=("boundary", "size"),
        b_from=("boundary", "min"),
        b_to=("boundary", "max"),
        worst_lambda_error=("lambda_error", "max"),
        worst_profile_error=("profile_max_error", "max"),
        worst_estimate=("lambda_error_estimate", "max"),
        worst_residual=("residual_max", "max"),
        n_unstable=("n_unstable", lambda v: sorted(set(v))),
    )
    print(summary.to_string())
    print(pd.DataFrame(events).to_string())


if __name__ == "__main__":
    main()
