"""The network itself, measured: `blowup train` runs one at a time (threads=1 unless `--threads`, no time limit), one
row each in a CSV.

    python3 scripts/pinn_study.py                                   # study mode, k = 0..6 x seeds 0-2
    python3 scripts/pinn_study.py --ks 0 1 --sobolev 0 1 2 3 --backends ntp autograd --seeds 0 1 --out knobs.csv
    python3 scripts/pinn_study.py --mode default --out default_mode.csv  # time to acceptance, default mode
    python3 scripts/pinn_study.py --ks 0 1 2 3 4 --seeds 0 --extra equation.stages=3 --out pinn_stages.csv
    python3 scripts/pinn_study.py --ks 0 1 --extra equation=ccf equation.points=601 --out pinn_study_ccf.csv
    python3 scripts/pinn_study.py --ks 0 --extra equation=gclm equation.points=601 --out pinn_study_gclm.csv
    python3 scripts/pinn_study.py --ks 4 --threads null --out pinn_study_k4_two_threads.csv  # as a user runs it alone
    python3 scripts/pinn_study.py --ks 1 --start equation=ccf --extra equation=ccf equation.points=601 \
        equation.collocation=front --out pinn_study_ccf_front.csv  # each run from the default run of its seed

With `--start OVERRIDES`, each study run starts from a default-mode run of its own (k, seed) with those overrides
(`init_from`), trained first and kept beside it; the row's `extra` ends with "init_from=default(OVERRIDES)" and
`start_wall_s` is that run's time. A start run that fails ends its row: status "start run failed (DIR): " and its
error's last line, no study run.

Each row: the network alone's λ error (gCLM's: α's), profile error and residual (and the refined result's, the
reference it is measured against), wall time, the wall time at which |λ - λ_k| first fell to 1e-6 and 1e-9 (from
metrics.csv; where no λ is known in closed form, as for CCF, against the refined λ),
median step and derivative times, each network stage's figures (stage<n>_*) and seconds per phase. Rows already
in the CSV for the same (mode, k, seed, sobolev, backend, extra) are replaced, the rest kept.
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
KEYS = ["mode", "profile", "seed", "sobolev", "backend", "extra"]


def first_time_below(metrics: pd.DataFrame, scalar: str, exact: float, level: float) -> float | None:
    reached = metrics[(metrics[scalar] - exact).abs() <= level]
    return float(reached.wall_time_s.iloc[0]) if len(reached) else None


def run(
    mode: str,
    k: int,
    seed: int,
    sobolev: int,
    backend: str,
    extra: list,
    scratch: Path,
    timeout: float,
    threads: str,
    start: list | None = None,
) -> dict:
    run_dir = scratch / f"{mode}_k{k}_s{seed}_m{sobolev}_{backend}"
    study = ["experiment=pinn_study"] if mode == "study" else []
    common = [f"profile={k}", f"seed={seed}", f"threads={threads}", "max_hours=null"]
    row = {"mode": mode, "profile": k, "seed": seed, "sobolev": sobolev, "backend": backend, "extra": " ".join(extra)}
    if start is not None:  # the default run of this (k, seed) first; the study run starts from its solution
        start_dir = scratch / f"start_k{k}_s{seed}"
        started = time.perf_counter()
        command = ["blowup", "train", *common, *start, f"hydra.run.dir={start_dir}"]
        began = subprocess.run(command, capture_output=True, text=True)
        row["start_wall_s"] = time.perf_counter() - started
        row["extra"] += f" init_from=default({' '.join(start)})"
        if began.returncode != 0:  # no completed solution to start from: the study run would only be refused
            why = (began.stderr.strip().splitlines() or ["no message"])[-1]  # the CLI's one line, or a traceback's last
            return row | {"exit_code": began.returncode, "status": f"start run failed ({start_dir}): {why}"}
        extra = [*extra, f"init_from={start_dir}"]
    args = ["blowup", "train", *common, f"sobolev={sobolev}", f"backend={backend}"]
    args += [*study, "allow_not_converged=true", *extra]
    args.append(f"hydra.run.dir={run_dir}")
    started = time.perf_counter()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        row["exit_code"] = proc.returncode
    except subprocess.TimeoutExpired:
        row["exit_code"] = None
    row["wall_s"] = time.perf_counter() - started
    if not (run_dir / "summary.json").exists():
        return row | {"status": "no summary"}
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = pd.read_csv(run_dir / "metrics.csv")
    scalar = "alpha" if "alpha" in summary else "lambda"  # gCLM's unknown is its exponent α
    exact = summary.get(f"{scalar}_exact", summary[scalar])  # where none is known (CCF): the refined one, the reference
    row |= {key: summary.get(key) for key in ("status", "stop_reason", "steps", "wall_time_s")}
    row |= {key: len(summary.get(key) or []) for key in ("restarts", "handbacks")}
    for key in (f"{scalar}_error", "profile_max_error", "residual_max"):
        row[f"{key}_network"], row[key] = summary.get(f"{key}_network"), summary.get(key)
    if scalar == "alpha":  # gCLM names the refined α's distance from the exact one alpha_vs_exact
        row["alpha_error"] = summary.get("alpha_vs_exact")
    row |= {f"time_to_1e-{n}_s": first_time_below(metrics, scalar, exact, 10.0**-n) for n in (6, 9)}
    row |= {key: summary.get(key) for key in ("step_time_median_s", "deriv_time_median_s")}
    spent = metrics.wall_time_s.diff().fillna(metrics.wall_time_s)  # each step's share, a phase run twice counted once
    row |= {f"{phase}_s": float(t.sum()) for phase, t in spent.groupby(metrics.phase, sort=False)}
    for stage in summary.get("network_stages") or []:
        row |= {f"stage{stage['stage']}_{key}": value for key, value in stage.items() if key != "stage"}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["study", "default"], default="study")
    parser.add_argument("--ks", type=int, nargs="+", default=list(range(7)))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sobolev", type=int, nargs="+", default=[1])
    parser.add_argument("--backends", nargs="+", default=["ntp"])
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--threads", default="1", help="every run's threads= (null: torch's default, every core)")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for every run, e.g. equation.stages=3")
    parser.add_argument("--out", default="pinn_study.csv", help="file name under results/")
    parser.add_argument("--runs", help="keep each run's directory under this folder (default: a temporary one)")
    parser.add_argument("--start", nargs="*", help="start each run from a default run of its (k, seed) with these")
    opts = parser.parse_args()
    out = ROOT / "results" / opts.out
    if not out.parent.is_dir():  # found before the first run, not when its row is written minutes later
        parser.error(f"--out {opts.out}: no folder {out.parent}; allowed: a file name under results/")
    table = pd.read_csv(out, dtype={"extra": str}).fillna({"extra": ""}) if out.exists() else pd.DataFrame(columns=KEYS)
    with tempfile.TemporaryDirectory() as temporary:
        scratch = Path(opts.runs or temporary)
        for seed in opts.seeds:  # every k gets a seed before any gets the next
            for backend in opts.backends:
                for m in opts.sobolev:
                    for k in opts.ks:
                        row = run(
                            opts.mode, k, seed, m, backend, opts.extra, scratch, opts.timeout, opts.threads, opts.start
                        )
                        print(json.dumps(row), flush=True)
                        same = (table[KEYS].astype(str) == pd.Series(row)[KEYS].astype(str)).all(axis=1)
                        table = pd.concat([table[~same], pd.DataFrame([row])], ignore_index=True)
                        table.sort_values(KEYS).to_csv(out, index=False, float_format="%.4g")


if __name__ == "__main__":
    main()
