"""Which frequency a later network stage trains best at, and whether the frequency trials pick it.

    python3 scripts/stage_frequencies.py --ks 1 4 --seeds 0 1 --out stage_frequencies.csv
    python3 scripts/stage_frequencies.py --ks 1 --frequencies 5 20 --variants "" damping=100 acceleration=0 --out ...

For each (k, seed), the study run's first network is trained in this process exactly as `blowup train profile=k
seed=s experiment=pinn_study threads=1` trains it, and stopped where its second stage begins (after the frequency
trials, whose pick is recorded). From that state the stage is then trained at each frequency in turn, from the same
draw, as the study trains it (optim.stage: damping, acceleration, steps, patience; or as each of --variants changes
it), one CSV row per (variant, frequency): the
stage's loss (in its own units) after 5, 20, 50, 100 and 200 steps and at its end, its stop reason, steps and
seconds, and the composite network's λ and profile errors against the exact profile. Rows are flushed as they come.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from hydra import compose, initialize_config_dir

import blowup.equations.burgers as burgers
from blowup.config import config_dir
from blowup.solvers.stages import StageTrial, begin_stage
from blowup.solvers.stopping import Convergence
from blowup.training import trainer
from blowup.training.steps import final_loss, make_optimizer, take_step

RESULTS = Path(__file__).resolve().parents[1] / "results"
MARKS = (5, 20, 50, 100, 200)


class AtStage(Exception):
    """Raised where the first stage is trained and the second about to begin: the state to start it from."""


def first_network(k: int, seed: int, extra: list[str]):
    """The problem as the study leaves it where the second stage begins (its rows at the stage's scale), the
    stage's scale, and the frequency the trials picked."""
    overrides = [f"profile={k}", f"seed={seed}", "experiment=pinn_study", "threads=1", "max_hours=null", *extra]
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose("train", overrides=overrides)
    captured, build = {}, burgers.build

    def build_and_keep(cfg):
        captured["run"] = build(cfg)
        return captured["run"]

    def capture(problem, stage, scale, seed, trial):
        if problem is not captured["run"]:  # the start's copies (step-time probe, metrics.csv's columns)
            return begin_stage(problem, stage, scale, seed, trial)
        captured["problem"] = copy.deepcopy(problem)
        captured["scale"] = scale
        captured["picked"] = begin_stage(problem, stage, scale, seed, trial)
        raise AtStage

    burgers.build, burgers.begin_stage = build_and_keep, capture
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            trainer.train(cfg, Path(run_dir))
    except AtStage:
        pass
    finally:
        burgers.build, burgers.begin_stage = build, begin_stage
    if "problem" not in captured:
        raise SystemExit(f"k = {k}, seed {seed}: the run ended before a second stage began")
    return cfg, captured


def train_stage(cfg, at_stage: dict, frequency: float, variant: str) -> dict:
    """The second stage from the captured state at `frequency`, to the study's stopping rule, with `variant`'s
    changes to optim.stage ("key=value,key=value"; "" for none; points=N: the stage's global collocation points, as
    equation.stage_points sets them)."""
    problem, settings = copy.deepcopy(at_stage["problem"]), copy.deepcopy(cfg.optim.stage)
    for change in filter(None, variant.split(",")):
        key, value = change.split("=")
        if key == "points":
            problem.x_stage_global = problem.global_grid(int(value))
        else:
            settings[key] = float(value) if key in ("damping", "acceleration", "rtol") else int(value)
    problem.stage_trial = StageTrial(settings.damping, (frequency,), 1)
    problem.start_phase("stage2")  # the stage's scale, rows and draw, at `frequency`, as the study begins it
    optimizer = make_optimizer("stage2", settings, problem)
    convergence, losses, reason = Convergence(settings.patience, settings.rtol), [], "max_steps"
    t0 = time.perf_counter()
    # losses[m]: the loss step m + 1 starts from, i.e. after m steps
    for _ in range(settings.steps):
        loss, _, _ = take_step("stage2", optimizer, problem, time.perf_counter)
        losses.append(float(loss))
        if convergence.update(float(loss)):
            reason = "converged"
            break
        if optimizer.stalled:
            reason = "stalled"
            break
    seconds = time.perf_counter() - t0
    composite = problem.stage_figures()[-1]
    return {
        "frequency": frequency,
        "variant": variant,
        **{f"loss_after_{m}": losses[m] if m < len(losses) else None for m in MARKS},
        "loss_end": final_loss(problem),
        "stop_reason": reason,
        "steps": len(losses),
        "seconds": seconds,
        "lambda_error": composite["lambda_error"],
        "profile_max_error": composite["profile_max_error"],
        "residual_max": composite["residual_max"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--frequencies", type=float, nargs="+", default=[1.0, 2.0, 5.0, 10.0, 20.0, 40.0])
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for the whole run")
    parser.add_argument(
        "--variants", nargs="*", default=[""], help='changes to optim.stage for the stage alone, e.g. "" damping=100'
    )
    parser.add_argument("--out", required=True, help="file name under results/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = RESULTS / args.out
    for k in args.ks:
        for seed in args.seeds:
            cfg, at_stage = first_network(k, seed, args.extra)
            for variant in args.variants:
                for frequency in args.frequencies:
                    row = {"profile": k, "seed": seed, "extra": " ".join(args.extra), "picked": at_stage["picked"]}
                    row |= train_stage(cfg, at_stage, frequency, variant)
                    pd.DataFrame([row]).to_csv(out, mode="a", header=not out.exists(), index=False)
                    print(row, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
