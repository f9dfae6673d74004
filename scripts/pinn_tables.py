"""The README's tables for the PINN study, from the CSVs scripts/pinn_study.py writes: results/pinn_study.md.

python3 scripts/pinn_tables.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def sci(value) -> str:
    return "" if pd.isna(value) else f"{value:.1e}"


def seconds(value) -> str:
    return "" if pd.isna(value) else f"{value:.0f}"


def per_profile(frame: pd.DataFrame) -> list[str]:
    """Worst case over seeds, per k: the network alone against the goals, and how many runs met the multi-stage goal
    (λ error <= 1e-13 and profile error <= 1e-12; and, where the CSV records them, how many
    runs restarted or handed back, optim.handoff). A run that ended without a summary (the sweep's time limit) counts
    in `runs` and not in `completed`, and its figures are not in the worst cases."""
    counted = "handbacks" in frame
    lines = [
        "| k | runs | completed | at 1e-13 / 1e-12 | worst \\|λ err\\| network | worst max \\|U - U_exact\\| network | "
        "worst residual network | one network: worst \\|λ err\\|, profile | worst s | median s |"
        + (" restarted, handed back |" if counted else ""),
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|" + ("---|" if counted else ""),
    ]
    for k, group in frame.groupby("profile"):
        goal = (group.lambda_error_network <= 1e-13) & (group.profile_max_error_network <= 1e-12)
        lines.append(
            f"| {k} | {len(group)} | {int((group.status == 'completed').sum())} | {int(goal.sum())} | "
            f"{sci(group.lambda_error_network.max())} | "
            f"{sci(group.profile_max_error_network.max())} | {sci(group.residual_max_network.max())} | "
            f"{sci(group.stage1_lambda_error.max())}, {sci(group.stage1_profile_max_error.max())} | "
            f"{seconds(group.wall_s.max())} | {seconds(group.wall_s.median())} |"
            + (f" {int((group.restarts > 0).sum())}, {int((group.handbacks > 0).sum())} |" if counted else "")
        )
    return lines


def kept(value) -> str:
    """A stage's verdict: "no" where it was dropped (it lowered nothing), blank where the run predates the rule."""
    return "" if pd.isna(value) else ("yes" if str(value) == "True" else "no")


def per_stage(frame: pd.DataFrame) -> list[str]:
    """What each stage buys: one row per (k, stage), seed 0."""
    lines = [
        "| k | stage | \\|λ err\\| | max \\|U - U_exact\\| | residual | parameters | s | kept |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    stages = sorted(int(c[5]) for c in frame.columns if c.startswith("stage") and c.endswith("_parameters"))
    for _, row in frame.sort_values("profile").iterrows():
        for n in stages:
            if pd.isna(row.get(f"stage{n}_parameters")):
                continue
            phases = ["guess_s", "adam_s", "lbfgs_s", "lm_s"] if n == 1 else [f"stage{n}_s"]
            spent = sum(row.get(p, 0) or 0 for p in phases if not pd.isna(row.get(p)))
            lines.append(
                f"| {row.profile} | {n} | {sci(row[f'stage{n}_lambda_error'])} | "
                f"{sci(row[f'stage{n}_profile_max_error'])} | {sci(row[f'stage{n}_residual_max'])} | "
                f"{int(row[f'stage{n}_parameters'])} | {seconds(spent)} | {kept(row.get(f'stage{n}_kept'))} |"
            )
    return lines


def slowest(group: pd.DataFrame, column: str) -> str:
    """The slowest seed's time to a level, or "never" if a seed never reached it."""
    return "never" if group[column].isna().any() else seconds(group[column].max())


def knobs(frame: pd.DataFrame) -> list[str]:
    """Sobolev order x backend, worst over the seeds run: the network alone and the times (medians of the
    seeds' medians for steps, the slowest seed for the rest)."""
    lines = [
        "| backend | k | m | seeds | worst \\|λ err\\| network | worst profile network | worst residual network | "
        "to 1e-6 s (max) | to 1e-9 s (max) | run s (max) | step ms (median) | derivatives ms (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = ["backend", "profile", "sobolev"]
    for (backend, k, m), group in frame.groupby(keys, sort=False):
        lines.append(
            f"| {backend} | {k} | {m} | {len(group)} | {sci(group.lambda_error_network.max())} | "
            f"{sci(group.profile_max_error_network.max())} | {sci(group.residual_max_network.max())} | "
            f"{slowest(group, 'time_to_1e-6_s')} | {slowest(group, 'time_to_1e-9_s')} | "
            f"{seconds(group.wall_s.max())} | "
            f"{group.step_time_median_s.median() * 1e3:.1f} | {group.deriv_time_median_s.median() * 1e3:.1f} |"
        )
    return lines


def speedup(frame: pd.DataFrame) -> list[str]:
    """ntp against autograd where both ran: step and derivative time ratios, and the accuracy each reached."""
    lines = [
        "| k | m | step ms autograd / ntp | derivatives ms autograd / ntp | run s autograd / ntp (max) | "
        "worst \\|λ err\\| autograd, ntp |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    medians = frame.groupby(["backend", "profile", "sobolev"])
    for (k, m), group in frame[frame.backend == "autograd"].groupby(["profile", "sobolev"]):
        if ("ntp", k, m) not in medians.groups:
            continue
        ntp = medians.get_group(("ntp", k, m))
        lines.append(
            f"| {k} | {m} | {group.step_time_median_s.median() * 1e3:.1f} / {ntp.step_time_median_s.median() * 1e3:.1f}"
            f" = {group.step_time_median_s.median() / ntp.step_time_median_s.median():.1f} | "
            f"{group.deriv_time_median_s.median() / ntp.deriv_time_median_s.median():.1f} | "
            f"{seconds(group.wall_s.max())} / {seconds(ntp.wall_s.max())} | "
            f"{sci(group.lambda_error_network.max())}, {sci(ntp.lambda_error_network.max())} |"
        )
    return lines


def default_mode(frame: pd.DataFrame) -> list[str]:
    """The default mode: how fast the network gets into Newton's basin (training ends `accepted`)."""
    lines = [
        "| k | m | status | stop | run s | \\|λ err\\| network when accepted | profile network | to 1e-6 s |",
        "|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for _, row in frame.sort_values(["profile", "sobolev"]).iterrows():
        lines.append(
            f"| {row.profile} | {row.sobolev} | {row.status} | {row.stop_reason} | {seconds(row.wall_time_s)} | "
            f"{sci(row.lambda_error_network)} | {sci(row.profile_max_error_network)} | "
            f"{seconds(row['time_to_1e-6_s'])} |"
        )
    return lines


def seed_zero_stages(frame: pd.DataFrame) -> list[str]:
    return per_stage(frame[frame.seed == 0])


def with_study_rows(knobs_frame: pd.DataFrame) -> pd.DataFrame:
    """The knobs table's m = 1 ntp rows are the study's own runs, for the seeds the knobs were run with."""
    study = pd.read_csv(RESULTS / "pinn_study.csv") if (RESULTS / "pinn_study.csv").exists() else pd.DataFrame()
    if study.empty:
        return knobs_frame
    same = study[study.seed.isin(knobs_frame.seed.unique()) & study.profile.isin(knobs_frame.profile.unique())]
    ordered = pd.concat([knobs_frame, same], ignore_index=True)
    return ordered.sort_values(["backend", "profile", "sobolev"], ascending=[False, True, True])


def main() -> None:
    out = []
    for name, title, table in (
        (
            "pinn_study_first_network_full_svd.csv",
            "Study mode now at k = 0..4 (the first network's LM on the full SVD, stages through the range): network "
            "alone, worst over seeds",
            per_profile,
        ),
        ("pinn_study_first_network_full_svd.csv", "What each stage buys, k = 0..4 now (seed 0)", seed_zero_stages),
        (
            "pinn_study_sketched_svd.csv",
            "Study mode now at k = 5, 6, tried at k = 0..4 (every LM through the Jacobian's range): network alone, "
            "worst over seeds",
            per_profile,
        ),
        ("pinn_study_sketched_svd.csv", "What each stage buys, every LM through the range (seed 0)", seed_zero_stages),
        (
            "pinn_study_k4_two_threads.csv",
            "k = 4 alone at two threads (threads=null), the stage capped at 1500 steps",
            per_profile,
        ),
        ("pinn_study_k4_more_seeds.csv", "k = 4, seeds 3-5, now", per_profile),
        ("pinn_study_k4_more_seeds_full_svd.csv", "k = 4, seeds 3-5, before (the full SVD, ce94c92)", per_profile),
        (
            "pinn_study_k6_accept1.csv",
            "Before at k = 6 (the stage accepted at the tolerance): network alone, worst over seeds",
            per_profile,
        ),
        ("pinn_study_k6_accept1.csv", "What each stage buys at k = 6, before (seed 0)", seed_zero_stages),
        ("pinn_study_k6_accept1e-2.csv", "Tried at k = 6: the stage accepted at 1e-2 x the tolerance", per_profile),
        ("pinn_study_k6_stage_freq2.csv", "Tried at k = 6: the stage begun at frequency 2", per_profile),
        ("pinn_study_k6_threads2_handoff.csv", "Tried at k = 6: one run on both cores (threads=2)", per_profile),
        (
            "pinn_study_handoff_by_k.csv",
            "Study mode now at k = 0..5, before at k = 6 (handoff 100, 1000 from k = 5 on; the stage accepted at the "
            "multi-stage goal): network alone, worst over seeds",
            per_profile,
        ),
        ("pinn_study_handoff_by_k.csv", "What each stage buys, k = 0..5 now (seed 0)", seed_zero_stages),
        (
            "pinn_study_handoff1000_all.csv",
            "Tried: handoff 1000 at every k (seeds 1-2; seed 0 at k = 5, 6 only), worst over seeds",
            per_profile,
        ),
        (
            "pinn_study_stage_accept.csv",
            "Before: handoff 100 at every k (the stage accepted at the multi-stage goal), worst over seeds",
            per_profile,
        ),
        ("pinn_study_stage_accept.csv", "What each stage buys, handoff 100 at every k (seed 0)", seed_zero_stages),
        ("pinn_study_f5.csv", "Before: the stage at frequency 5 run to its stall, worst over seeds", per_profile),
        (
            "pinn_study_f5_pts601_all.csv",
            "The same with 601 stage points (equation.stage_points=601): network alone, worst over seeds",
            per_profile,
        ),
        ("pinn_study_f5.csv", "What each stage buys, the stage run to its stall (seed 0)", seed_zero_stages),
        ("pinn_study_wide_svd.csv", "Damping 1e4, the trials' pick: network alone, worst over seeds", per_profile),
        ("pinn_study_wide_svd.csv", "What each stage buys, the trials' pick (seed 0)", seed_zero_stages),
        ("pinn_study_ceiling.csv", "Ceiling sweep (stage damping 100): network alone, worst over seeds", per_profile),
        ("pinn_study_ceiling.csv", "What each stage buys, ceiling sweep (seed 0)", seed_zero_stages),
        (
            "pinn_study_ceiling_damp1e4.csv",
            "A stage started at damping 1e4 (optim.stage.damping=1e4), seed 2",
            per_profile,
        ),
        (
            "pinn_study_handoff.csv",
            "With the handoff, before LM's stall ceiling: network alone, worst over seeds",
            per_profile,
        ),
        ("pinn_study_handoff.csv", "What each stage buys, before the ceiling (seed 0)", seed_zero_stages),
        (
            "pinn_study_handoff_stage300.csv",
            "The first handoff sweep, stages capped at 300, worst over seeds",
            per_profile,
        ),
        (
            "pinn_study_goal.csv",
            "Before the handoff (the first network to the goal itself), worst over seeds",
            per_profile,
        ),
        ("pinn_study_goal.csv", "What each stage buys, before the handoff (seed 0)", seed_zero_stages),
        ("pinn_study.csv", "Study mode with LM capped at 400 (before), worst over seeds", per_profile),
        ("pinn_study.csv", "What each stage buys, LM capped at 400 (before), seed 0", seed_zero_stages),
        ("pinn_stages.csv", "Three stages (equation.stages=3), seed 0", per_stage),
        (
            "pinn_knobs.csv",
            "Sobolev order x backend, study mode, worst over seeds 0-1",
            lambda f: knobs(with_study_rows(f)),
        ),
        ("pinn_knobs.csv", "n-TangentProp against nested autograd, same runs", lambda f: speedup(with_study_rows(f))),
        ("pinn_default_mode.csv", "Default mode (refinement accepts), ntp, seed 0: time to acceptance", default_mode),
    ):
        path = RESULTS / name
        if path.exists():
            out += [f"### {title}", "", *table(pd.read_csv(path)), ""]
    (RESULTS / "pinn_study.md").write_text("\n".join(out))
    print("\n".join(out))


if __name__ == "__main__":
    main()
