"""gCLM branches in the advection strength a (issue 26), each a `blowup train` then `blowup continue`:

* fundamental: from the exact a = 0 member (α = 1) up to a = 1/2 (exact α = 1/3) and down to a = -1 (CCF's
  stable profile, α = 1 + 1.1807776628998);
* collapse: the same branch on a finer grid up towards a_c, where α vanishes (Lushnikov, Silantyev and Siegel:
  a_c = 0.6890665337007457), until the grid no longer resolves it; then, from its last point, the branch at fixed
  α = 0.012 ... 0.006 (α held, a solved for) on grids of spacing α/3 and α/4 over [-40, 40] (the profile's far
  decay e^(-s/α) steepens as α falls); α = 0 itself has no decaying profile, so a_c is a(α) extrapolated to
  α = 0 by polynomials through the branch's points below α = 0.12 and those (every degree listed: their spread
  is the estimate's);
* stability: the fundamental branch again, a = 0 to 1/2 and to -1, with the unstable count at every point
  (`blowup continue --stability`: both grids' spectra);
* unstable1: CCF's 1st unstable profile (α = 1.6057337012032) continued from a = -1 both ways, on a grid four
  times finer than CCF's default, with the unstable count at every point: new (nobody has published how it
  continues in a);
* unstable2: CCF's 2nd unstable profile (α = 1 + 0.471324227764692, this tool's value) continued from a = -1
  to a = -0.5 and -1.5 on CCF's profile-2 grids (98415 and 194481 points; minutes a point): new. (On half
  those grids, 50421 and 98415 points, every acceptance check of the training failed for 20 minutes: not used.)

Writes results/gclm_<case>_<leg>.csv (branch.csv), results/gclm_events.csv (events and the checks against exact
and published values) and results/gclm_branches.png. One run at a time, threads=1:

    python3 scripts/gclm_branches.py                 # every case (~30 min on one core; unstable2 1 h or more)
    python3 scripts/gclm_branches.py --only fundamental
    python3 scripts/gclm_branches.py --only unstable2 --work /tmp/gclm_work   # kept: rerun to resume its legs
    python3 scripts/gclm_branches.py --plot          # redraw the figure (with gclm_unstable_clustered.py's CSVs)
    python3 scripts/gclm_branches.py --only unstable2 --work /tmp/gclm_work --collect   # what they hold so far
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from blowup.analysis.continuation import _load_state
from blowup.equations.gclm.profile import GCLMEquation
from blowup.solvers.continuation import Branch, Point, Settings
from blowup.solvers.hilbert import LogGrid
from blowup.solvers.log_branch import ParameterBranch

ROOT = Path(__file__).resolve().parents[1]
A_C = 0.6890665337007457  # Lushnikov, Silantyev, Siegel, arXiv 2010.01201
CCF_ALPHA = {0: 2.1807776628998, 1: 1.6057337012032, 2: 1.4713248638620}  # 1 + λ, Wang et al. 2509.14185
CASES = {
    "fundamental": (["equation.a=0"], [("up", 0.5, ["alpha=0.5"]), ("down", -1.0, ["alpha=2"])]),
    "collapse": (
        ["equation.a=0", "equation.grid=[-40,60]", "equation.newton_spacing=[0.04,0.03]", "equation.eval_points=10001"],
        [("up", 0.689, ["alpha=0.1", "alpha=0.05"])],
    ),
    "stability": (["equation.a=0"], [("up", 0.5, ["n_unstable=0.5"]), ("down", -1.0, ["n_unstable=0.5"])]),
    "unstable1": (
        ["equation.a=-1", "profile=1", "equation.newton_spacing=[0.0125,0.01]"],
        [("up", 0.5, ["alpha=1.5", "alpha=1.4", "n_unstable=1.5"]), ("down", -2.0, ["alpha=1.7", "n_unstable=1.5"])],
    ),
    "unstable2": (
        ["equation.a=-1", "profile=2"],
        [("up", -0.5, ["alpha=1.4"]), ("down", -1.5, ["alpha=1.6"])],
    ),
}
FIXED_ALPHA = [0.012, 0.01, 0.008, 0.006]  # below the collapse branch's last point, on finer grids
# p is round-off past s = 5 for α below 0.015, but U/ξ = -T(I + d/ds)⁻¹p decays only like e^(-s): the right end
# at 12 moved a(0.012) by 2e-6 against 20 (measured); at 40 that tail is below round-off
COLLAPSE_INTERVAL = (-40.0, 40.0)
EXTRAPOLATE_BELOW = 0.12  # the collapse branch's points with α below this enter the fit of a(α) too


def blowup(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["blowup", *args], capture_output=True, text=True, cwd=ROOT)


def run_case(name: str, work: Path, walk: bool = True) -> list[dict]:
    """Train (unless `work` has the run) and follow each leg; with walk False only collect what the legs in `work`
    have written so far (a branch stopped by hand: its state resumes with the same command and --work)."""
    train_args, legs = CASES[name]
    run_dir = work / name
    clock = time.perf_counter()
    if walk and not (run_dir / "summary.json").is_file():
        trained = blowup("train", "equation=gclm", "seed=0", "threads=1", *train_args, f"hydra.run.dir={run_dir}")
        if trained.returncode != 0:
            sys.exit(f"{name}: training failed: {trained.stderr[-500:]}")
        print(f"{name}: trained in {time.perf_counter() - clock:.0f} s")
    events = []
    for leg, to, crossings in legs:
        out = work / f"{name}_{leg}"
        clock = time.perf_counter()
        if walk:
            flags = [f"--event={event}" for event in crossings if not event.startswith("n_unstable")]
            flags += ["--stability"] if any(event.startswith("n_unstable") for event in crossings) else []
            walked = blowup("continue", str(run_dir), "--param", "equation.a", "--to", str(to), "--out", str(out),
                            "--max-step", "0.1", "--max-points", "150", *flags)  # fmt: skip
            seconds = time.perf_counter() - clock
            ended = walked.stdout.strip().splitlines()[-1] if walked.stdout.strip() else walked.stderr[-300:]
        else:
            finished = out / "branch.json"  # written when a leg ends, with the reason
            reason = json.loads(finished.read_text())["reason"] if finished.is_file() else "stopped"
            ended, seconds = f"{reason}: collected", float("nan")
        branch = pd.read_csv(out / "branch.csv")
        branch.to_csv(ROOT / "results" / f"gclm_{name}_{leg}.csv", index=False, float_format="%.17g")
        print(f"{name} {leg}: {ended} ({seconds:.0f} s)")
        if (out / "events.csv").is_file():
            for _, event in pd.read_csv(out / "events.csv").iterrows():
                events.append({"case": name, "leg": leg, **event.to_dict()})
        if name == "collapse":
            run_grid = LogGrid.with_spacing(-40.0, 60.0, 0.04)  # the collapse run's coarse grid (CASES)
            fixed = fixed_alpha_points(out, run_grid)
            fixed.to_csv(ROOT / "results" / "gclm_collapse_fixed_alpha.csv", index=False, float_format="%.17g")
        last = branch.iloc[-1]
        events.append({"case": name, "leg": leg, "event": "end", "parameter": last.a, "value": last.alpha,
                       "reason": ended.split(":")[0], "seconds": seconds})  # fmt: skip
    return events


def checks(events: list[dict]) -> list[dict]:
    """The branches against the exact and published values they should meet."""
    rows = []
    ends = {(e["case"], e["leg"]): e for e in events if e["event"] == "end"}
    for (case, leg), exact, what in [
        (("fundamental", "up"), 1 / 3, "alpha at a = 1/2 vs exact 1/3"),
        (("fundamental", "down"), CCF_ALPHA[0], "alpha at a = -1 vs CCF stable 1 + 1.1807776628998"),
    ]:
        if (case, leg) in ends:
            end = ends[(case, leg)]
            rows.append({"case": case, "leg": leg, "event": what, "parameter": end["parameter"],
                         "value": end["value"], "reference": exact, "difference": end["value"] - exact})  # fmt: skip
    path = ROOT / "results" / "gclm_collapse_fixed_alpha.csv"
    if path.is_file():
        rows.extend(extrapolate_collapse(pd.read_csv(path)))
    return rows


def fixed_alpha_points(out: Path, run_grid: LogGrid) -> pd.DataFrame:
    """From the collapse branch's last point, a at each FIXED_ALPHA on grids of spacing α/3 and α/4 (the finer
    one's a reported, their difference its estimate), each started from the last, a extrapolated linearly."""
    point, _, _ = _load_state(out)
    u, grid, alpha, a = point.x[:-1], run_grid, point.x[-1], point.mu
    known, rows = [(alpha, a)], []
    for target in FIXED_ALPHA:
        (s1, a1), (s2, a2) = known[-2:] if len(known) > 1 else (known[-1], known[-1])
        a_guess = a2 + ((a2 - a1) / (s2 - s1) * (target - s2) if s2 != s1 else 0.0)
        found = {}
        for spacing in (target / 3, target / 4):
            clock = time.perf_counter()
            fine = LogGrid.with_spacing(*COLLAPSE_INTERVAL, spacing)
            start = np.interp(fine.s, grid.s, u, left=0.0, right=0.0)
            system = ParameterBranch(GCLMEquation, fine, fine, 3 * fine.points, "alpha")
            branch = Branch(system, Settings(krylov_iterations=3000))
            origin = Point(np.concatenate([start, [alpha]]), a_guess, np.zeros(system.size + 1))
            row = np.zeros(system.size + 1)
            row[-2] = system.size  # α held at the target: the branch norm weighs unknowns by 1/size
            solved, _ = branch.correct(origin, np.concatenate([start, [target, a_guess]]), row, target - alpha)
            if solved is None:
                print(f"collapse: alpha = {target} not solved on {fine.points} points")
                return pd.DataFrame(rows)
            found[spacing] = (solved, fine, time.perf_counter() - clock)
        (coarse, _, _), (best, best_grid, seconds) = found.values()
        rows.append({"alpha": target, "a": best.mu, "a_error_estimate": abs(best.mu - coarse.mu),
                     "points": best_grid.points, "seconds": seconds})  # fmt: skip
        print(f"collapse: alpha = {target}: a = {best.mu:.13f} (estimate {abs(best.mu - coarse.mu):.1e}, "
              f"{best_grid.points} points, {seconds:.0f} s)")  # fmt: skip
        u, grid, alpha = best.x[:-1], best_grid, target
        known.append((target, best.mu))
    return pd.DataFrame(rows)


def extrapolate_collapse(points: pd.DataFrame) -> list[dict]:
    """a_c as a(α = 0): polynomials of each degree through the collapse branch's points below EXTRAPOLATE_BELOW
    and the fixed-α points."""
    branch = pd.read_csv(ROOT / "results" / "gclm_collapse_up.csv")
    near = pd.concat([branch[branch.alpha < EXTRAPOLATE_BELOW][["alpha", "a"]], points[["alpha", "a"]]])
    near = near.drop_duplicates("alpha").sort_values("alpha")
    rows = []
    for degree in range(1, 7):
        a_c = float(np.polyval(np.polyfit(near.alpha, near.a, degree), 0.0))
        rows.append({"case": "collapse", "leg": "fixed_alpha", "event": f"alpha=0 extrapolated (degree {degree}, "
                     f"{len(near)} points, alpha {near.alpha.min():.3g}..{near.alpha.max():.3g})",
                     "parameter": a_c, "value": 0.0, "reference": A_C, "difference": a_c - A_C})  # fmt: skip
    return rows


def plot(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for csv, style, label in [
        ("gclm_fundamental_up.csv", "C0-", "fundamental (profile 0)"),
        ("gclm_fundamental_down.csv", "C0-", None),
        ("gclm_collapse_up.csv", "C0--", "fundamental, fine grid, towards a_c"),
        ("gclm_collapse_fixed_alpha.csv", "C0o", "fundamental at fixed α, finer grids"),
        ("gclm_unstable1_up.csv", "C1-", "CCF's 1st unstable, continued (new)"),
        ("gclm_unstable1_down.csv", "C1-", None),
        ("gclm_unstable2_up.csv", "C3-", "CCF's 2nd unstable, continued (new)"),
        ("gclm_unstable2_down.csv", "C3-", None),
        ("gclm_unstable1_clustered.csv", "C1:", "CCF's 1st unstable, clustered grids (gclm_unstable_clustered.py)"),
        ("gclm_unstable2_clustered.csv", "C3:", "CCF's 2nd unstable, clustered grids"),
        ("gclm_unstable2_clustered_walk3.csv", "C3-.", "CCF's 2nd unstable, clustered grids, matrix-free Newton"),
    ]:
        file = ROOT / "results" / csv
        if file.is_file():
            branch = pd.read_csv(file)
            ax.plot(branch.a, branch.alpha, style, label=label)
            ax.plot(branch.a.iloc[-1:], branch.alpha.iloc[-1:], "kx")
    ax.plot([0, 0.5], [1, 1 / 3], "ks", mfc="none", label="exact (a = 0, 1/2)")
    ax.plot([-1] * 3, list(CCF_ALPHA.values()), "k^", mfc="none", label="CCF (a = -1), published")
    ax.plot([A_C], [0], "kD", mfc="none", label="a_c (Lushnikov et al.)")
    ax.set(xlabel="a", ylabel="α", title="gCLM self-similar exponent α along the branches (x: where each ended)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=list(CASES), default=list(CASES))
    parser.add_argument("--work", type=Path, help="keep runs and branches here (<case>, <case>_<leg>); rerun to resume")
    parser.add_argument("--collect", action="store_true", help="with --work: write what its legs hold, run nothing")
    parser.add_argument("--plot", action="store_true", help="only redraw the figure from the CSVs in results/")
    args = parser.parse_args()
    if args.plot:
        plot(ROOT / "results" / "gclm_branches.png")
        return
    if args.collect and args.work is None:
        parser.error("--collect needs --work")
    work = args.work or Path(tempfile.mkdtemp(prefix="gclm_branches_"))
    events_path = ROOT / "results" / "gclm_events.csv"
    kept = pd.read_csv(events_path) if events_path.is_file() else pd.DataFrame(columns=["case"])
    kept = kept[~kept.case.isin(args.only)]
    events = [row for name in args.only for row in run_case(name, work, walk=not args.collect)]
    table = pd.concat([kept[kept.reference.isna()] if "reference" in kept else kept, pd.DataFrame(events)])
    table = pd.concat([table, pd.DataFrame(checks(table.to_dict("records")))], ignore_index=True)
    table.to_csv(events_path, index=False, float_format="%.17g")
    print(table[[c for c in ("case", "leg", "event", "parameter", "value", "difference") if c in table]].to_string())
    plot(ROOT / "results" / "gclm_branches.png")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
