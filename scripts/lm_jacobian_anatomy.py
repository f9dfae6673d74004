"""Why Levenberg-Marquardt crawls, and what its SVD can skip: a trained network's Jacobian taken apart.

    blowup train profile=4 seed=0 experiment=pinn_study equation.stages=1 optim.lm.steps=300 optim.restarts=0 \\
        hydra.run.dir=runs/lm_k4
    python3 scripts/lm_jacobian_anatomy.py runs/lm_k4 --out lm_anatomy_k4.csv        # the first network's LM
    python3 scripts/lm_jacobian_anatomy.py RUN --phase stage2 --out lm_anatomy_stage.csv  # a study run's stage

At the run's last checkpoint, in the phase named, three tables (one CSV, column `table`):
- `spectrum`: J's singular values by decade (relative to the largest), and the share of the squared residual
  that lies along each decade's left singular vectors: where the loss is left, and so how far along which
  directions a step must go to remove it.
- `damping`: for dampings 1e-14..1, the damped step's size, the loss the linear model predicts, and the loss
  taken (plain, and with the geodesic acceleration LM adds): how large a step the network stays linear over.
- `factorisation`: the step from `SVDSolve` (J factored through its numerical range) against two full-SVD
  routes (J and its transpose, both LAPACK), at the same dampings: their differences are the step's own
  conditioning, not the sketch's; with the widths and seconds each took.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from blowup.solvers.gauss_newton import SVDSolve
from blowup.solvers.lm import LevenbergMarquardt, pointwise_jacobian
from blowup.solvers.losses import residual_vector
from blowup.training.checkpoints import load_trained

ROOT = Path(__file__).resolve().parents[1]
DAMPINGS = [10.0**e for e in range(-14, 1)]


def damped(left, singular, right, r, damping):
    return -right.T @ (singular / (singular**2 + damping) * (left.T @ r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--phase", default="lm", help="the phase whose rows and parameters to take (lm, stage2, ...)")
    parser.add_argument("--out", help="file name under results/ (default: print only)")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    problem = load_trained(opts.run)
    problem.start_phase(opts.phase)
    params = [p for p in problem.parameters() if p.requires_grad]
    start = parameters_to_vector(params).detach().clone()

    def residuals(at):
        with torch.no_grad():
            vector_to_parameters(at, params)
        return residual_vector(problem.residuals()).detach()

    r = residuals(start)
    loss = float(r.square().sum())
    jac = pointwise_jacobian(problem)
    left, singular, right = torch.linalg.svd(jac, full_matrices=False)
    rows = []
    share = (left.T @ r).square() / loss
    decade = np.floor(np.log10((singular / singular[0]).clamp_min(1e-300).numpy()))
    for d in sorted(set(decade), reverse=True):
        at = decade == d
        rows.append(
            {"table": "spectrum", "decade": d, "count": int(at.sum()), "residual_share": float(share[at].sum())}
        )

    h = LevenbergMarquardt.FINITE_DIFFERENCE
    for damping in DAMPINGS:
        v = damped(left, singular, right, r, damping)
        curvature = 2 / h * ((residuals(start + h * v) - r) / h - jac @ v)
        a = damped(left, singular, right, curvature, damping)
        rows.append(
            {
                "table": "damping",
                "damping": damping,
                "step_norm": float(v.norm()),
                "loss": loss,
                "model_loss": float((r + jac @ v).square().sum()),
                "loss_taken": float(residuals(start + v).square().sum()),
                "acceleration_ratio": float(2 * a.norm() / v.norm()),
                "loss_taken_accelerated": float(residuals(start + v + a / 2).square().sum()),
            }
        )
    residuals(start)

    began = time.perf_counter()
    sketched = SVDSolve(jac)
    sketched_s = time.perf_counter() - began
    began = time.perf_counter()
    right_t, singular_t, left_t = torch.linalg.svd(jac.T, full_matrices=False)
    full_s = time.perf_counter() - began
    for damping in DAMPINGS:
        step_t = damped(left_t.T, singular_t, right_t.T, r, damping)
        step_j = damped(left, singular, right, r, damping)
        rows.append(
            {
                "table": "factorisation",
                "damping": damping,
                "width": sketched.width,
                "sketched_s": sketched_s,
                "full_svd_s": full_s,
                "sketch_vs_full": float((sketched.solve(r, damping) - step_t).norm() / step_t.norm()),
                "full_vs_full": float((step_j - step_t).norm() / step_t.norm()),
            }
        )
    table = pd.DataFrame(rows)
    print(f"{opts.run} phase {opts.phase}: J {tuple(jac.shape)}, loss {loss:.3e}, sigma_max {float(singular[0]):.3e}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for _, part in table.groupby("table", sort=False):
            print(part.dropna(axis=1, how="all").to_string(index=False, float_format="%.3g"))
    if opts.out:
        table.insert(0, "run", opts.run.name)
        table.insert(1, "phase", opts.phase)
        table.to_csv(ROOT / "results" / opts.out, index=False, float_format="%.4g")


if __name__ == "__main__":
    main()
