"""One row per run (results/burgers_seeds.csv) and per block and k the worst and median (.md).

python3 scripts/seed_table.py outputs/seeds --out results
"""

import argparse
import json
from datetime import datetime
from pathlib import Path

import pandas as pd

COLUMNS = [
    "block",
    "profile",
    "seed",
    "threads",
    "status",
    "stop_reason",
    "lambda_error",
    "lambda_error_estimate",
    "profile_max_error",
    "profile_error_estimate",
    "lambda_error_network",
    "profile_max_error_network",
    "restarts",
    "wall_time_s",
    "run_time_s",
    "steps",
    "git_commit",
    "cpu",
]


def rows(root: Path):
    for path in sorted(root.glob("*/*/summary.json")):
        summary = json.loads(path.read_text())
        if summary.get("equation") != "burgers":
            continue
        meta = summary["meta"]
        started, finished = (datetime.fromisoformat(meta[k]) for k in ("started_at", "finished_at"))
        yield {
            "block": path.parent.parent.name,
            **{k: summary.get(k) for k in COLUMNS if k in summary},
            "restarts": len(summary.get("restarts", [])),
            # wall_time_s is the training; run_time_s adds the Newton refinement and the outputs (1 s resolution)
            "run_time_s": (finished - started).total_seconds(),
            "threads": summary["threads"],
            "cpu": meta["cpu"],
        }


ROUND_OFF = 4 * 2.0**-52  # errors below this count as this: a refined λ can be exact, its estimate the float spacing


def ratio(estimate, true):
    """How far apart estimate and true error are, as a factor >= 1 (both floored at round-off)."""
    estimate, true = max(estimate, ROUND_OFF), max(true, ROUND_OFF)
    return max(estimate / true, true / estimate)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    frame = pd.DataFrame(list(rows(args.root)), columns=COLUMNS).sort_values(["block", "profile", "seed"])
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "burgers_seeds.csv", index=False, float_format="%.3e")
    frame["lambda_ratio"] = [ratio(e, t) for e, t in zip(frame.lambda_error_estimate, frame.lambda_error)]
    frame["profile_ratio"] = [ratio(e, t) for e, t in zip(frame.profile_error_estimate, frame.profile_max_error)]
    lines = [
        "| block | k | runs | completed | worst \\|λ err\\| | median | worst max \\|U - U_exact\\| | median "
        "| worst estimate/true (λ, U) | restarts | run s median | run s max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for (block, k), group in frame.groupby(["block", "profile"]):
        lines.append(
            f"| {block} | {k} | {len(group)} | {(group.status == 'completed').sum()} | {group.lambda_error.max():.1e} "
            f"| {group.lambda_error.median():.1e} | {group.profile_max_error.max():.1e} "
            f"| {group.profile_max_error.median():.1e} "
            f"| {group.lambda_ratio.max():.2g}, {group.profile_ratio.max():.2g} | {group.restarts.sum()} "
            f"| {group.run_time_s.median():.0f} | {group.run_time_s.max():.0f} |"
        )
    (args.out / "burgers_seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
