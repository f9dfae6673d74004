"""`blowup stability RUN --right R` on default CCF runs: the counts once the interval reaches far enough for the odd
class's slowly decaying eigenfunctions (`PerturbationClass.shown_above`).

For each profile in `--profiles` and seed in `--seeds` the default run (`blowup train equation=ccf profile=P seed=S`,
kept in `--work` and reused when there) is analysed by the command itself at every R in `--right` (R = 0: the run's
own interval, no `--right`). One row per (profile, seed, R): the interval, the points, λ, the counts per class, the
unstable modes with their error bars, where each class is complete, and the command's wall time and exit status (a
refusal is a row too, with its reason). `--out` keeps the rows it already holds for other (profile, seed, R).

    python3 scripts/ccf_stability_right.py --profiles 1 --seeds 0 1 2 --right 0 300 600 --work DIR \
        --out results/ccf_stability_right.csv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import pandas as pd


def run_dir(work: Path, profile: int, seed: int) -> Path:
    """The default run of (profile, seed), trained once."""
    path = work / f"ccf_p{profile}_s{seed}"
    if not (path / "summary.json").exists():
        command = ["blowup", "train", "equation=ccf", f"profile={profile}", f"seed={seed}", f"hydra.run.dir={path}"]
        subprocess.run(command, check=True, capture_output=True, text=True)
    return path


def analysed(run: Path, right: float, out: Path) -> dict:
    """`blowup stability` on the run (with `--right` unless 0): its stability.json's figures, or its refusal."""
    command = ["blowup", "stability", str(run), "--out", str(out)] + (["--right", f"{right:g}"] if right else [])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    row = {"right": right or None, "exit": done.returncode, "command_seconds": time.perf_counter() - started}
    if done.returncode != 0:
        return row | {"refused": done.stderr.strip().splitlines()[-1]}
    counts = json.loads((out / "stability.json").read_text())
    return row | {
        "interval": " ".join(f"{end:g}" for end in counts["interval"]),
        "points": "/".join(str(n) for n in counts["grid_points"]),
        "lambda": counts["lambda"],
        "n_unstable": counts["n_unstable"],
        "n_unstable_even": counts["n_unstable_even"],
        "n_unstable_odd": counts["n_unstable_odd"],
        "unstable_modes": " ".join(
            f"{nu:.10f}±{error:.1e}({parity})"
            for (nu, _), error, parity in zip(
                counts["unstable_modes"], counts["unstable_errors"], counts["unstable_parities"]
            )
        ),
        "time_mode": counts["symmetry_modes"].get("time"),
        "translation_mode": counts["symmetry_modes"].get("translation"),
        "complete_above_even": counts["complete_above_by_class"]["even"],
        "complete_above_odd": counts["complete_above_by_class"]["odd"],
        "n_unstable_trusted": counts["n_unstable_trusted"],
        "spectrum_seconds": counts["wall_time_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, nargs="+", default=[1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--right", type=float, nargs="+", default=[0.0, 300.0, 600.0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    opts = parser.parse_args()
    if not opts.out.parent.is_dir():
        parser.error(f"--out {opts.out}: no folder {opts.out.parent}")
    kept = pd.read_csv(opts.out) if opts.out.exists() else pd.DataFrame(columns=["profile", "seed", "right"])
    rows = []
    for profile in opts.profiles:
        for seed in opts.seeds:
            run = run_dir(opts.work, profile, seed)
            for right in opts.right:
                row = {"profile": profile, "seed": seed}
                rows.append(row | analysed(run, right, opts.work / f"{run.name}_right{right:g}"))
                print(json.dumps(rows[-1]), flush=True)
                new = pd.DataFrame(rows)
                keys = ["profile", "seed", "right"]
                others = kept[~kept[keys].fillna(0).apply(tuple, axis=1).isin(new[keys].fillna(0).apply(tuple, axis=1))]
                table = pd.concat([others, new]) if len(others) else new
                table.sort_values(keys, na_position="first").to_csv(opts.out, index=False, float_format="%.12g")


if __name__ == "__main__":
    main()
