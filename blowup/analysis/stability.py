"""`blowup stability RUN_DIR ... [--out DIR] [--complex] [--right R]`: the stability spectrum of trained profiles.

Self-similar variables turn a blowup profile into a steady state: with τ = -log(1 - t) the profile
evolves by U_τ = -F(U), so a perturbation φ evolves by φ_τ = Lφ, L = -dF/dU. An eigenvalue ν with
Re ν > 0 is a direction in which initial data must be tuned for the blowup to follow this profile.

An equation opts in with `Problem.stability()`, a `blowup.problem.Stability` about the run's reported
profile: its `analyse()` gives the `Spectrum` (the modes it vouches for, with error bars and symmetry
modes named: not instabilities of the profile, but of the blowup's position, time, frame or scale; and
the counts). This command loads the runs and writes what each spectrum holds: stability.csv (one row per
mode), stability.json (the counts), stability.png (spectrum and leading eigenfunctions) and a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from blowup.analysis.report import BrokenRun
from blowup.problem import GRID, LISTED_FROM, Mode, Spectrum, Stability
from blowup.training.checkpoints import load_trained


def table(modes: list[Mode]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "index": range(len(modes)),
            "real": [m.nu.real for m in modes],
            "imag": [m.nu.imag for m in modes],
            "error": [m.error for m in modes],
            "parity": [m.parity for m in modes],
            "symmetry": [m.symmetry or "" for m in modes],
            "exact": [m.exact for m in modes],
            "exact_index": [m.exact_index for m in modes],
            "eigenfunction_error": [m.eigenfunction_error for m in modes],
            "found_by": [m.found_by for m in modes],
        }
    )


def plot(spectrum: Spectrum, path: Path, leading: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = spectrum.modes
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    for parity, marker in (("even", "o"), ("odd", "s"), ("mixed", "^")):
        chosen = [m for m in modes if m.parity == parity]
        if chosen:
            ax[0].plot([m.nu.real for m in chosen], [m.nu.imag for m in chosen], marker, mfc="none", label=parity)
    if spectrum.exact:
        ax[0].plot(spectrum.exact, np.zeros(len(spectrum.exact)), "k+", ms=10, label="exact")
    ax[0].axvline(0, color="gray", lw=0.8)
    ax[0].set(xlabel="Re ν", ylabel="Im ν", title="converged eigenvalues of L = -dF/dU")
    ax[0].legend()
    grid = np.linspace(*spectrum.domain, GRID)
    for m in modes[:leading]:
        ax[1].plot(grid, m.values.real, label=f"ν = {m.nu.real:.6g}" + (f" ({m.symmetry})" if m.symmetry else ""))
    ax[1].set(xlabel=spectrum.coordinate, title=f"leading {min(leading, len(modes))} eigenfunctions (max 1)")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def show(run_dir: Path, spectrum: Spectrum, console: Console) -> None:
    name = next((key for key in ("lambda", "alpha") if key in spectrum.counts), None)
    symbol = {"lambda": "λ", "alpha": "α"}.get(name, "")
    grid = Table(title=f"{run_dir}: {symbol} = {spectrum.counts[name]:.15g}" if name else str(run_dir))
    for column in ("ν", "error", "parity", "symmetry", "exact", "eigenfunction err"):
        grid.add_column(column, justify="right")
    for m in spectrum.modes:
        if m.nu.real < LISTED_FROM:
            continue
        nu = f"{m.nu.real:.9f}" + (f" {m.nu.imag:+.2g}i" if abs(m.nu.imag) > m.error else "")
        grid.add_row(
            nu,
            f"{m.error:.1e}",
            m.parity,
            m.symmetry or "",
            "" if m.exact is None else f"{m.exact:.9f}",
            "" if m.eigenfunction_error is None else f"{m.eigenfunction_error:.1e}",
        )
    console.print(grid)
    console.print(spectrum.summary)
    missing = spectrum.counts.get("symmetry_modes_missing")
    if missing:
        console.print(
            f"[bold red]not a count:[/] the symmetry mode(s) {', '.join(missing)} every profile has were not found: "
            "the grids do not resolve the eigenfunctions, or the mode lies in the continuum of non-smooth ones, where "
            "dense eigenvalues miss it (stability.json: n_unstable_trusted false, untrusted_classes)"
        )


def stability_of(run_dir: Path, right: float | None = None) -> Stability:
    """The stability analysis of a run dir's trained problem (its config.yaml and checkpoint.pt), on a domain
    reaching `right` where given (`Problem.stability`)."""
    problem = load_trained(run_dir)
    try:
        return problem.stability(right)
    except NotImplementedError as reason:
        raise BrokenRun(str(reason) or f"equation {type(problem).__name__} has no stability analysis") from None


def write(spectrum: Spectrum, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table(spectrum.modes).to_csv(out / "stability.csv", index=False, float_format="%.17g")
    counts = spectrum.counts | {"n_unstable_trusted": bool(np.isfinite(spectrum.unstable_count()))}
    (out / "stability.json").write_text(json.dumps(counts, indent=2) + "\n")
    plot(spectrum, out / "stability.png")


def right_end(text: str) -> float:
    """--right's value: a finite number (each run's analysis checks it against its interval)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: allowed a finite number beyond the run's interval")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="blowup stability", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run dirs (with config.yaml and checkpoint.pt)")
    parser.add_argument("--out", type=Path, default=None, help="write the files here (default: each run dir)")
    parser.add_argument(
        "--complex",
        action="store_true",
        help="also look for complex modes below each class's continuum edge, in the square of the complex plane above "
        "the real stretch scanned (log-grid equations: CCF, gCLM)",
    )
    parser.add_argument(
        "--right",
        type=right_end,
        default=None,
        help="solve the profile again on an interval reaching this far (s = log y for log-grid equations) and analyse "
        "it there: eigenfunctions that decay slowly, missed on the run's interval, show there",
    )
    args = parser.parse_args(argv)
    console, done = Console(), 0
    for run_dir in args.runs:
        try:
            stability = stability_of(run_dir, args.right)
            stability = stability.with_complex_scan() if args.complex else stability
        except (BrokenRun, OSError, KeyError, RuntimeError, ValueError, NotImplementedError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            print(f"{run_dir}: skipped: {reason}", file=sys.stderr)
            continue
        spectrum = stability.analyse()
        write(spectrum, args.out / run_dir.name if args.out and len(args.runs) > 1 else args.out or run_dir)
        show(run_dir, spectrum, console)
        done += 1
    return 0 if done else 2
