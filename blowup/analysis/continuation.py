"""blowup continue RUN_DIR --param KEY --to VALUE: a run's solution followed through an equation parameter.

Pseudo-arclength predictor-corrector with step control (`blowup.solvers.continuation`) on the system the run's
problem gives for KEY (`Problem.continuation`): its unknowns, residual and Newton. Writes branch.csv (a row per
point: the parameter and every figure of the point, with its error estimate and residual between grid points),
events.csv (event, parameter, value: folds, and each --event NAME=VALUE crossing, located to round-off) and
branch.png into --out (default RUN_DIR/branch_<key>). Every point is flushed as it is found and the state is
saved with it: Ctrl-C or a kill loses at most the point in progress, and the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from blowup.errors import ConfigError
from blowup.solvers.continuation import Branch, Event, Point, Settings, first_tangent, follow
from blowup.solvers.hilbert import MappedLogGrid
from blowup.solvers.log_branch import clustered_start, follow_front
from blowup.training.checkpoints import load_trained

STATE = "state.npz"


def parse_event(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise ConfigError(f"--event {text!r} is invalid: allowed NAME=VALUE, e.g. alpha=0") from None


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="blowup continue", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run dir (config.yaml and checkpoint.pt)")
    parser.add_argument("--param", required=True, help="the config key to follow, e.g. equation.a")
    parser.add_argument("--to", type=float, required=True, help="the parameter value to reach")
    parser.add_argument("--event", action="append", default=[], help="NAME=VALUE: where a figure crosses a value")
    parser.add_argument("--step", type=float, default=0.05, help="the first arclength step")
    parser.add_argument("--max-step", type=float, default=0.2)
    parser.add_argument("--max-points", type=int, default=200, help="points at most (each a few Newton solves)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--stability", action="store_true", help="the unstable count at every point (spectra: slow)")
    parser.add_argument(
        "--clustered",
        type=int,
        metavar="N",
        help="follow on N points clustered at the profile's front (log-grid equations), re-centred as it moves and "
        "grown where the residual between grid points passes 1e-9",
    )
    parser.add_argument("--max-grid-points", type=int, default=6615, help="with --clustered: the grids grow to this")
    return parser.parse_args(argv)


def _save_state(out: Path, system, point: Point, step: float, index: int) -> None:
    """The point, the step and the count, and the grid they are on where it is clustered (`--clustered`)."""
    temporary = out / (STATE + ".tmp.npz")
    grid = getattr(system, "grid", None)
    fronts = np.array(grid.fronts) if isinstance(grid, MappedLogGrid) else np.zeros((0, 3))
    points = grid.points if isinstance(grid, MappedLogGrid) else 0
    np.savez(temporary, x=point.x, mu=point.mu, tangent=point.tangent, step=step, index=index, fronts=fronts,
             points=points)  # fmt: skip
    os.replace(temporary, out / STATE)


def _load_state(out: Path, system) -> tuple[object, Point, float, int] | None:
    """The system (on the saved clustered grid, where there is one), the point, the step and the count; None where
    there is no state, or one that does not fit the system (damaged, or another grid's)."""
    try:
        with np.load(out / STATE) as state:
            point = Point(state["x"], float(state["mu"]), state["tangent"])
            step, index = float(state["step"]), int(state["index"])
            fronts = tuple(tuple(float(v) for v in row) for row in state["fronts"]) if "fronts" in state else ()
            points = int(state["points"]) if "points" in state else 0
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # no state (or a damaged one): start again from the run
    if fronts:
        system = system.on(MappedLogGrid(system.grid.left, system.grid.right, points, fronts))
    if len(point.x) != system.size or len(point.tangent) != system.size + 1:
        return None
    return system, point, step, index


def _append(path: Path, row: dict) -> None:
    frame = pd.DataFrame([row])
    frame.to_csv(path, mode="a", header=not path.is_file(), index=False, float_format="%.17g")


def plot(branch: pd.DataFrame, events: pd.DataFrame, key: str, scalar: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    ax[0].plot(branch[key], branch[scalar], "C0.-")
    for _, event in events.iterrows():
        ax[0].axvline(event.parameter, color="C3", lw=0.8, ls=":")
        ax[0].annotate(event.event, (event.parameter, ax[0].get_ylim()[1]), fontsize=8, rotation=90, va="top")
    ax[0].set(xlabel=key, ylabel=scalar, title=f"{scalar} along the branch")
    errors = branch[f"{scalar}_error_estimate"].clip(lower=1e-17)
    ax[1].semilogy(branch[key], errors, "C0.-", label=f"{scalar} error estimate")
    ax[1].semilogy(branch[key], branch["residual_max"].clip(lower=1e-17), "C1.-", label="residual between points")
    ax[1].set(xlabel=key, title="error estimates (floor 1e-17)")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    args = arguments(argv)
    try:
        crossings = [parse_event(text) for text in args.event]
        if args.step <= 0 or args.max_step < args.step or args.max_points < 1:
            raise ConfigError("--step, --max-step, --max-points are invalid: allowed 0 < step <= max-step, points >= 1")
        if args.clustered is not None and not 3 <= args.clustered <= args.max_grid_points:
            raise ConfigError("--clustered, --max-grid-points are invalid: allowed 3 <= clustered <= max-grid-points")
        problem = load_trained(args.run)
        system, x, mu = problem.continuation(args.param)
        if args.clustered is not None and not hasattr(system, "on"):
            raise ConfigError("--clustered is invalid for this equation: allowed only on the log grid (gclm)")
    except ConfigError as err:
        print(f"blowup: error: {err}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        print(f"blowup: error: {args.run}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    if args.to == mu:
        print(f"blowup: error: --to {args.to} is invalid: the run is already at {args.param} = {mu}", file=sys.stderr)
        return 2
    out = args.out or args.run / f"branch_{args.param.replace('.', '_')}"
    out.mkdir(parents=True, exist_ok=True)
    key, scalar = args.param.split(".")[-1], system.scalar_name
    settings = Settings(step=args.step, max_step=args.max_step)
    try:
        branch, start, step, index = _begin(out, args, system, settings, x, mu, key)
    except ValueError as err:  # the run's profile on the clustered grids
        print(f"blowup: error: --clustered {args.clustered}: {err}", file=sys.stderr)
        return 2
    reason = "reached"  # a finished branch, run again, only writes its outputs again
    if start.mu != args.to:
        try:
            reason = _walk(out, args, branch, start, step, index, key, crossings)
        except KeyboardInterrupt:
            print(f"interrupted: the same command resumes from {out}", file=sys.stderr)
            return 130
    return _finish(out, args, key, scalar, mu, reason)


def _row(system, point: Point, step: float, key: str, stability: bool) -> dict:
    """branch.csv's row for a point: the parameter, the point's report, the step that reached it and dμ/ds (and,
    on a clustered grid, its size and where it is centred)."""
    report = system.report(point.x, point.mu, stability)
    row = {key: point.mu, **report, "arclength_step": step, "dparam_ds": point.tangent[-1]}
    grid = getattr(system, "grid", None)
    if isinstance(grid, MappedLogGrid):
        row |= {"grid_points": grid.points, "grid_centre": grid.fronts[0][0], "grid_width": grid.fronts[0][1]}
    return row


def _begin(out: Path, args, system, settings: Settings, x: np.ndarray, mu: float, key: str):
    """The branch, the point to go on from, the step and the points so far: the saved state's (on its grid), else
    the run's solution (on --clustered points at its front where asked; branch.csv and events.csv started afresh
    with it)."""
    resumed = _load_state(out, system)
    if resumed is not None:
        system, start, step, index = resumed
        print(f"resuming {out} at {args.param} = {start.mu:.12g} (point {index})")
        return Branch(system, settings), start, step, index
    for name in ("branch.csv", "events.csv"):
        (out / name).unlink(missing_ok=True)
    if args.clustered is not None:
        system, x = clustered_start(system, x, mu, args.clustered)
    branch = Branch(system, settings)
    start = Point(x, mu, first_tangent(branch, x, mu, np.sign(args.to - mu)))
    _append(out / "branch.csv", _row(system, start, 0.0, key, args.stability))
    _save_state(out, system, start, args.step, 0)
    return branch, start, args.step, 0


def _walk(out: Path, args, branch: Branch, point: Point, step: float, index: int, key: str, crossings) -> str:
    """The branch followed a point at a time (`follow`), each written as it comes (row, events, state), on a
    clustered grid moved after each where its front has moved or its residual between points has grown
    (`follow_front`); the reason the walk ended."""
    rows = pd.read_csv(out / "branch.csv")
    counted = rows[rows["n_unstable"].notna()] if "n_unstable" in rows else rows.iloc[:0]
    last = counted.iloc[-1] if args.stability and len(counted) else None  # the last point with a count
    previous = None if last is None else float(last["n_unstable"])
    previous_in_continuum = 0.0 if last is None else float(last.get("n_unstable_in_continuum", 0.0))
    scalar = branch.system.scalar_name
    while index < args.max_points:
        system = branch.system
        figures = partial(_figures, system)
        steps = follow(branch, point, args.to, 1, crossings, figures, step)
        try:
            point, events, step = next(steps)
        except StopIteration as stop:
            return stop.value
        index += 1
        row = _row(system, point, step, key, args.stability)
        count = row.get("n_unstable", float("nan"))  # NaN: the spectra failed their own check, no count
        in_continuum = row.get("n_unstable_in_continuum", 0.0)
        if previous is not None and np.isfinite(count) and count != previous:
            # located to the step: every spectrum is the costly part of a point. A mode found below its class's
            # continuum edge on either side may have been there, unseen, on the other: said in the name
            unseen = " (found in the continuum: may be detection)" if in_continuum or previous_in_continuum else ""
            events.append(Event(f"n_unstable {previous:g} -> {count:g}{unseen}", point.mu, count))
        if np.isfinite(count):
            previous, previous_in_continuum = count, in_continuum
        _append(out / "branch.csv", row)
        for event in events:
            _append(out / "events.csv", {"event": event.name, "parameter": event.mu, "value": event.value})
            print(f"event {event.name} at {args.param} = {event.mu:.15g}")
        print(
            f"{index:4d}  {args.param} = {point.mu:.10g}  {scalar} = {row[scalar]:.13g}  "
            f"(estimate {row[f'{scalar}_error_estimate']:.1e}, residual {row['residual_max']:.1e})"
        )
        ended = _ended(steps)
        if isinstance(getattr(system, "grid", None), MappedLogGrid) and ended != "reached":
            try:
                branch, point, moved = follow_front(branch, point, row["residual_max"], args.max_grid_points)
            except ValueError as err:
                print(f"lost at {args.param} = {point.mu:.12g}: {err}")
                _save_state(out, system, point, step, index)
                return "lost"
            if moved:
                print(f"      grid {moved}")
        _save_state(out, branch.system, point, step, index)
        if ended == "reached":
            return "reached"
    return "max_points"


def _figures(system, point: Point) -> dict[str, float]:
    return system.measures(point.x, point.mu)


def _ended(steps) -> str | None:
    """What a one-point `follow` returns after its point: "reached" where that point is the target."""
    try:
        next(steps)
    except StopIteration as stop:
        return stop.value
    return None


def _finish(out: Path, args, key: str, scalar: str, mu: float, reason: str) -> int:
    """events.csv, branch.png and branch.json from what is on disk; exit 0 where the target was reached."""
    rows = pd.read_csv(out / "branch.csv")
    events = (
        pd.read_csv(out / "events.csv")
        if (out / "events.csv").is_file()
        else pd.DataFrame(columns=["event", "parameter", "value"])
    )
    events.to_csv(out / "events.csv", index=False, float_format="%.17g")
    plot(rows, events, key, scalar, out / "branch.png")
    summary = {
        "run": str(args.run),
        "param": args.param,
        "from": mu,
        "to": args.to,
        "reason": reason,
        "points": len(rows),
        "reached": float(rows[key].iloc[-1]),
        "events": events.to_dict("records"),
    }
    (out / "branch.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{reason}: {len(rows)} points, {args.param} from {mu:g} to {rows[key].iloc[-1]:.12g}; outputs in {out}")
    return 0 if reason == "reached" else 3
