"""Where the method stops: Burgers profiles k past the published range, per dtype, one run each (seed 0,
threads=1, no time limit), recorded whatever happens. The supported range in `blowup.equations.burgers`
(MAX_PROFILE) and the README's "Supported profiles" come from this table.

    python3 scripts/profile_range.py                         # writes results/burgers_range.csv
    python3 scripts/profile_range.py --ks 11 12 --dtypes float64
    python3 scripts/profile_range.py --ks 30 --tolerance 1e-6      # past the default range, with a looser tolerance
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FIELDS = (
    "status",
    "lambda_error",
    "profile_max_error",
    "lambda_error_estimate",
    "profile_error_estimate",
    "lambda_error_network",
    "failure",
    "stop_reason",
)


def run(k: int, dtype: str, scratch: Path, timeout: float, tolerance: float | None) -> dict:
    run_dir = scratch / f"k{k}_{dtype}"
    looser = [f"equation.tolerance.{key}={tolerance}" for key in ("lambda_error", "profile_error")] if tolerance else []
    args = [
        "blowup",
        "train",
        f"profile={k}",
        f"dtype={dtype}",
        "seed=0",
        "threads=1",
        "max_hours=null",
        "allow_not_converged=true",
        *looser,
        f"hydra.run.dir={run_dir}",
    ]
    started = time.perf_counter()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        code, err = proc.returncode, proc.stderr.strip().splitlines()[-1:] or [""]
    except subprocess.TimeoutExpired:
        code, err = None, [f"no result within {timeout:.0f} s"]
    row = {
        "profile": k,
        "dtype": dtype,
        "tolerance": tolerance or 1e-9,
        "exit_code": code,
        "wall_s": time.perf_counter() - started,
    }
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        row |= {key: summary.get(key) for key in FIELDS}
    else:
        row |= {"status": "refused" if code == 2 else "no summary", "failure": err[0]}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 11, 12, 13, 14, 16, 20])
    parser.add_argument("--dtypes", nargs="+", default=["float64"])
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--tolerance", type=float, default=None, help="both error tolerances (default: the config's)")
    opts = parser.parse_args()
    out = ROOT / "results" / "burgers_range.csv"
    earlier = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=["profile", "dtype"])
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for dtype in opts.dtypes:
            for k in opts.ks:
                rows.append(run(k, dtype, Path(scratch), opts.timeout, opts.tolerance))
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
                new = pd.DataFrame(rows)
                kept = earlier[
                    ~earlier.set_index(["profile", "dtype"]).index.isin(new.set_index(["profile", "dtype"]).index)
                ]
                table = pd.concat([kept, new]).sort_values(["dtype", "profile"])
                table.to_csv(out, index=False, float_format="%.3g")


if __name__ == "__main__":
    main()
