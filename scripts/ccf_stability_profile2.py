"""CCF's 2nd unstable profile: its even stability spectrum by shift-invert on grids `blowup stability` refuses.

`blowup stability` stops past SPECTRUM_POINTS (50001) grid points; profile 2's Newton grids have 98415 and 194481.
This measures what the analysis of `blowup.solvers.log_stability` gives there, unchanged: profile 2 is found as
scripts/ccf_convergence.py finds it (family entered at 0.7, followed into [0.4, 0.52] on the 0.005 scanning
grid, Newton from where it turned smooth, each grid started from the one before), and on each grid of
`--spacings` (0.004, 0.002, 0.001: 25515, 50421, 98415 points on s ∈ [-36, 60]) the NEAREST eigenvalues of L to
each of `--shifts` come from the tool's own `_spectrum` (`_nearest_spectrum`: ARPACK shift-invert, GMRES inner
solves; the module's SHIFT set to the shift; profiles and analyses cached under `--cache`). Each (grid, shift)
runs in a fresh process, so its peak RSS
(resource.getrusage) is that analysis's alone; its GMRES solves are counted (calls, iterations, and how many
stopped short of the tolerance: `_nearest_spectrum` does not look at GMRES's info).

The tests are the tool's (`LogGridStability.analyse`), applied to each pair of neighbouring grids: an eigenvalue on
the finer grid is genuine when Re ν > 0, the coarser grid has one within GRIDS_AGREE·max(1, |ν|), and its
eigenfunction passes `_smooth_and_decaying` (e^s towards the origin, decaying far out). It is counted unstable
when moreover Re ν - error > RESOLVED_FRACTION·λ and it is no symmetry mode (time ν = 1, scaling ν = 0, within
MATCH). On the coarsest grid the pair is taken with the next finer grid as the other one (`err_vs_other`).
One CSV row per grid × shift × eigenvalue; a summary on stdout.

    python3 scripts/ccf_stability_profile2.py [--spacings 0.004 0.002 0.001] [--shifts 0.6]
        [--out results/ccf_stability_profile2.csv] [--cache /tmp/ccf_profile2] [--max-seconds 1200]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def log(message: str, path: str | None) -> None:
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    if path:
        with open(path, "a") as handle:
            handle.write(line + "\n")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def high_water_mb() -> float:
    """This process's own peak RSS (VmHWM): ru_maxrss survives fork + exec, so a spawned child's starts at its
    parent's peak (the profiles' Newton), while VmHWM belongs to the address space the child built."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024
    return float("nan")


def profiles(spacings: list[float], cache: Path, logfile: str | None) -> list[Path]:
    """Profile 2 on each grid (ascending points), as scripts/ccf_convergence.py computes it; cached as .npz."""
    from blowup.equations.ccf.problem import DEFAULTS
    from blowup.equations.ccf.profile import (
        CCF_EQUATION,
        family_measures,
        newton,
        rough_profile,
        smooth_in_bracket,
    )
    from blowup.solvers.hilbert import LogGrid, interpolate
    from blowup.solvers.log_profile import load_solve, save_solve

    defaults, paths, last = DEFAULTS[2], [], None
    cache.mkdir(parents=True, exist_ok=True)
    for spacing in sorted(spacings, reverse=True):
        grid = LogGrid.with_spacing(*defaults.grid, spacing)
        path = cache / f"profile2_{grid.points}.npz"
        paths.append(path)
        if path.exists():
            last, _ = load_solve(path, CCF_EQUATION)
            log(f"profile on {grid.points} points from cache: lambda {last.lam:.15f}", logfile)
            continue
        clock = time.perf_counter()
        if last is None:
            scan_grid = LogGrid.with_spacing(*defaults.grid, defaults.scan_spacing)
            entry = defaults.entry_lambda
            scan = smooth_in_bracket(
                rough_profile(entry, scan_grid), entry, scan_grid, defaults.lambda_bracket, 0.02, entry
            )
            if scan.smooth is None:
                raise RuntimeError(f"no smooth profile in the bracket on the scanning grid: {scan.covered}")
            log(f"scan: smooth at lambda {scan.smooth.lam:.10f} ({time.perf_counter() - clock:.1f} s)", logfile)
            last = scan.smooth
        q = interpolate(last.q, last.grid, grid.points)[0]
        solve = newton(q, last.lam, grid)
        seconds = time.perf_counter() - clock
        measures = family_measures(solve)
        residual = solve.offgrid_residual_max()
        save_solve(solve, path, seconds=seconds, offgrid_residual=residual, speed_min=measures["speed_min"])
        log(
            f"profile on {grid.points} points: lambda {solve.lam:.15f}, converged {solve.converged}, "
            f"off-grid residual {residual:.2e}, c_min {measures['speed_min']:.4f}, {seconds:.1f} s, "
            f"peak {peak_mb():.0f} MB",
            logfile,
        )
        if not solve.converged:
            raise RuntimeError(f"Newton did not converge on {grid.points} points")
        last = solve
    return paths


def analyse(path: str, shift: float, inner_tolerance: float | None) -> dict:
    """In a fresh process: the tool's nearest spectrum to `shift` on the cached profile, and its tests per
    eigenvalue that need the eigenvector (smooth towards the origin, decaying far out)."""
    import scipy.sparse.linalg

    from blowup.equations.ccf.profile import CCF_EQUATION
    from blowup.solvers import log_stability as stability
    from blowup.solvers.log_profile import load_solve

    solve, _ = load_solve(Path(path), CCF_EQUATION)
    grid = solve.grid
    stats = {"gmres_calls": 0, "gmres_iterations": 0, "gmres_short": 0}

    def counted_gmres(*args, **kwargs):  # the same solve, counted: `_nearest_spectrum` calls it by this name
        def count(_residual):
            stats["gmres_iterations"] += 1

        x, info = scipy.sparse.linalg.gmres(*args, callback=count, callback_type="pr_norm", **kwargs)
        stats["gmres_calls"] += 1
        stats["gmres_short"] += int(info != 0)
        return x, info

    stability.gmres = counted_gmres
    stability.SHIFT = shift
    if inner_tolerance is not None:  # a diagnostic only: the tool's analysis is INNER_TOLERANCE's default
        stability.INNER_TOLERANCE = inner_tolerance
    used_tolerance = stability.INNER_TOLERANCE
    clock = time.perf_counter()
    nu, vectors, artefacts = stability._spectrum(solve, solve.lam)
    seconds = time.perf_counter() - clock
    s = grid.s
    near = (s > grid.left + 15) & (s < grid.left + 28)  # `_smooth_and_decaying`'s windows, for the record
    far = (s > grid.right - 40) & (s < grid.right - 20)
    rows = []
    for i in range(len(nu)):
        size = np.abs(vectors[:, i]) + 1e-300
        rows.append(
            {
                "nu_real": float(nu[i].real),
                "nu_imag": float(nu[i].imag),
                "smooth_and_decaying": bool(stability._smooth_and_decaying(solve, vectors[:, i])),
                "rate_toward_origin": float(np.polyfit(s[near], np.log(size[near]), 1)[0]),
                "rate_far_out": float(np.polyfit(s[far], np.log(size[far]), 1)[0]),
            }
        )
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mb": peak_mb(),
        "vm_hwm_mb": high_water_mb(),
        "inner_tolerance": used_tolerance,
        "artefacts_up_to": float(artefacts),
        "points": grid.points,
        "lambda": solve.lam,
        **stats,
    }


def verdicts(frame: pd.DataFrame, points: list[int], lam: float) -> pd.DataFrame:
    """The tool's tests on each pair of neighbouring grids (same shift), per eigenvalue."""
    from blowup.problem import MATCH
    from blowup.solvers.log_stability import GRIDS_AGREE, RESOLVED_FRACTION, SYMMETRIES

    out = []
    for column in ("nu_real", "nu_imag"):
        frame[column] = pd.to_numeric(frame[column])
    for (tolerance, shift, n), group in frame.groupby(["inner_tolerance", "shift", "points"], sort=False):
        index = points.index(n)
        other_points = points[index - 1] if index > 0 else (points[1] if len(points) > 1 else None)
        same = (frame["inner_tolerance"] == tolerance) & (frame["shift"] == shift)
        other = frame[same & (frame["points"] == other_points) & frame["nu_real"].notna()]
        other_nu = (other["nu_real"] + 1j * other["nu_imag"]).to_numpy()
        for _, row in group.iterrows():
            nu = complex(row["nu_real"], row["nu_imag"])
            error = float(np.min(np.abs(other_nu - nu))) if len(other_nu) else np.nan
            agrees = bool(error <= GRIDS_AGREE * max(1.0, abs(nu)))
            genuine = nu.real > 0 and agrees and row["smooth_and_decaying"]
            symmetry = next((s.name for s in SYMMETRIES if abs(nu - s.nu) <= MATCH), None)
            bound = RESOLVED_FRACTION * lam
            out.append(
                {
                    **row.to_dict(),
                    "other_grid_points": other_points,
                    "err_vs_other": error,
                    "agrees_between_grids": agrees,
                    "genuine": genuine,
                    "symmetry": symmetry or "",
                    "counted_unstable": bool(genuine and symmetry is None and nu.real - error > bound),
                    "candidate_below_resolved": bool(genuine and symmetry is None and nu.real - error <= bound),
                    "in_strip_0_half_lambda": bool(0 < nu.real <= lam / 2),
                }
            )
    return pd.DataFrame(out)


def summary(frame: pd.DataFrame, lam: float, logfile: str | None) -> None:
    log(f"lambda {lam:.13f}; lambda/2 {lam / 2:.4f}; resolved above 0.1 lambda = {0.1 * lam:.4f}", logfile)
    for (tolerance, shift, n), group in frame.groupby(["inner_tolerance", "shift", "points"], sort=False):
        if group["nu_real"].isna().all():
            log(f"inner tol {tolerance:g} shift {shift} points {n}: {group['status'].iloc[0]}", logfile)
            continue
        counted = group[group["counted_unstable"]]
        log(
            f"inner tol {tolerance:g} shift {shift} points {n}: {len(group)} eigenvalues, "
            f"{int(group['genuine'].sum())} genuine, "
            f"{len(counted)} counted unstable {[round(v, 10) for v in counted['nu_real']]}; "
            f"symmetry {sorted(set(group.loc[group['genuine'], 'symmetry']) - {''})}; "
            f"{group['seconds'].iloc[0]:.0f} s, VmHWM {group['vm_hwm_mb'].iloc[0]:.0f} MB",
            logfile,
        )
        for _, r in group.sort_values("nu_real", ascending=False).iterrows():
            log(
                f"    nu {r['nu_real']:+.10f} {r['nu_imag']:+.10f}i  smooth/decay {r['smooth_and_decaying']!s:5} "
                f"rates {r['rate_toward_origin']:+.3f} {r['rate_far_out']:+.3f}  err vs {r['other_grid_points']} "
                f"{r['err_vs_other']:.1e}  genuine {r['genuine']!s:5} {r['symmetry']}",
                logfile,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spacings", type=float, nargs="+", default=[0.004, 0.002, 0.001])
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.6])
    parser.add_argument("--out", default=str(ROOT / "results" / "ccf_stability_profile2.csv"))
    parser.add_argument("--cache", default="/tmp/ccf_profile2")
    parser.add_argument("--max-seconds", type=float, default=1200.0, help="no finer grid once one analysis took this")
    parser.add_argument("--timeout", type=float, default=1500.0, help="an analysis is stopped after this (seconds)")
    parser.add_argument(
        "--inner-tolerance", type=float, default=None, help="diagnostic: GMRES's rtol instead of INNER_TOLERANCE"
    )
    parser.add_argument("--cached-only", action="store_true", help="collect cached analyses, run none")
    parser.add_argument("--log", default="/tmp/stab_progress.log")
    opts = parser.parse_args()
    from blowup.equations.ccf.profile import CCF_EQUATION
    from blowup.solvers.log_profile import load_solve
    from blowup.solvers.log_stability import INNER_TOLERANCE

    paths = profiles(opts.spacings, Path(opts.cache), opts.log)
    context = multiprocessing.get_context("spawn")
    raw, points, lam, stop = [], [], None, False
    for path in paths:
        profile, figures = load_solve(path, CCF_EQUATION)
        for shift in opts.shifts:
            tag = "" if opts.inner_tolerance is None else f"_inner{opts.inner_tolerance:g}"
            done = Path(opts.cache) / f"{path.stem}_shift{shift}{tag}.json"
            if done.exists():
                result = json.loads(done.read_text())
                log(f"analysis of {path.name} at shift {shift}{tag} from cache", opts.log)
            elif opts.cached_only:
                n = profile.grid.points
                result = {
                    "rows": [{"nu_real": None, "nu_imag": None, "smooth_and_decaying": False}],
                    **dict.fromkeys(["seconds", "peak_rss_mb", "vm_hwm_mb", "artefacts_up_to"], None),
                    **dict.fromkeys(["gmres_calls", "gmres_iterations", "gmres_short"], None),
                    "points": n,
                    "lambda": profile.lam,
                    "status": "not analysed",
                    "inner_tolerance": opts.inner_tolerance or INNER_TOLERANCE,
                }
            else:
                log(f"analysing {path.name} at shift {shift}{tag}", opts.log)
                with context.Pool(1) as pool:
                    try:
                        result = pool.apply_async(analyse, (str(path), shift, opts.inner_tolerance)).get(opts.timeout)
                        result["status"] = "finished"
                    except multiprocessing.TimeoutError:
                        n = profile.grid.points
                        result = {
                            "rows": [{"nu_real": None, "nu_imag": None, "smooth_and_decaying": False}],
                            "seconds": opts.timeout,
                            "peak_rss_mb": None,
                            "vm_hwm_mb": None,
                            "points": n,
                            "lambda": profile.lam,
                            "artefacts_up_to": None,
                            "gmres_calls": None,
                            "gmres_iterations": None,
                            "gmres_short": None,
                            "status": f"stopped after {opts.timeout:.0f} s",
                            "inner_tolerance": opts.inner_tolerance or INNER_TOLERANCE,
                        }
                done.write_text(json.dumps(result))
            lam = result["lambda"]
            if result["points"] not in points:
                points.append(result["points"])
            if result["status"] != "finished":
                log(f"  {result['points']} points shift {shift}: {result['status']}", opts.log)
            else:
                log(
                    f"  {result['points']} points shift {shift}: {result['seconds']:.1f} s, VmHWM "
                    f"{result['vm_hwm_mb']:.0f} MB (getrusage {result['peak_rss_mb']:.0f} MB), GMRES "
                    f"{result['gmres_calls']} solves {result['gmres_iterations']} iterations "
                    f"{result['gmres_short']} short of tolerance",
                    opts.log,
                )
            for row in result["rows"]:
                raw.append(
                    {
                        "points": result["points"],
                        "spacing": (profile.grid.right - profile.grid.left) / result["points"],
                        "lambda": result["lambda"],
                        "profile_offgrid_residual": figures["offgrid_residual"],
                        "shift": shift,
                        **row,
                        "seconds": result["seconds"],
                        "peak_rss_mb_getrusage": result["peak_rss_mb"],
                        "vm_hwm_mb": result["vm_hwm_mb"],
                        "inner_tolerance": result["inner_tolerance"],
                        "status": result["status"],
                        "gmres_calls": result["gmres_calls"],
                        "gmres_iterations": result["gmres_iterations"],
                        "gmres_short_of_tolerance": result["gmres_short"],
                        "grid_artefacts_up_to": result["artefacts_up_to"],
                    }
                )
            frame = verdicts(pd.DataFrame(raw), points, lam)
            frame.to_csv(opts.out, index=False, float_format="%.16g")
            stop = stop or (result["seconds"] or 0) > opts.max_seconds
        if stop:
            log(f"an analysis took over {opts.max_seconds:.0f} s: no finer grid", opts.log)
            break
    summary(frame, lam, opts.log)


if __name__ == "__main__":
    main()
