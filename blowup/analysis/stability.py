"""`blowup stability RUN_DIR ... [--out DIR]`: the linear stability spectrum of trained profiles.

Self-similar variables turn a blowup profile into a steady state: with τ = -log(1 - t) the profile
evolves by U_τ = -F(U), so a perturbation φ evolves by φ_τ = Lφ, L = -dF/dU. An eigenvalue ν with
Re ν > 0 is a direction in which initial data must be tuned for the blowup to follow this profile.

L is never written by hand: its action on any function is the complex step of the equation's own
residual (`blowup.solvers.newton.Linearization`) about the run's reported profile and λ, so an equation that
declares its residual has its stability analysis.

Where the velocity vanishes (X = 0 for Burgers) the eigenvalue problem is singular, and smoothness
there selects the discrete spectrum as it selects λ: L maps X^n to X^n plus higher powers, so its
action on Taylor coefficients at that point is triangular and its eigenvalues are the candidates.
A global discretisation alone cannot find them reliably: |X|^s pseudo-modes fill a continuum in
which the smooth eigenvalues are embedded, and polynomial collocation smears them into eigenvalues
that drift with the degree (measured: beyond the first few modes they never settle). Each candidate
is then checked on the whole domain: its eigenfunction, by Chebyshev collocation of (L - ν)φ = 0
(no boundary rows: the characteristics leave the domain at both ends) at two degrees. A mode is
reported when that eigenfunction is resolved, with an error bar that also holds how far ν moves
when the profile moves by its own error estimate; the rest are counted as discarded.

An equation opts in with `Problem.stability()`: the linearisation, the domain and parity, its
symmetry modes (eigenvalues as formulas in the trained scalars: not instabilities of the profile,
but of the blowup's position, time, frame or scale) and, where known, the exact modes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.linalg
import torch
from numpy.polynomial import chebyshev
from rich.console import Console
from rich.table import Table

from blowup.solvers.chebyshev import first_kind_points, parity_basis, parity_orders
from blowup.solvers.newton import Linearization

DEGREES = (160, 240)  # each eigenfunction at both; it must agree between them
CONVERGED = 1e-5  # a mode is reported if its eigenfunction is resolved to this (residual and change, relative)
MATCH = 1e-4  # a symmetry or exact mode within this of an eigenvalue is that mode
PARITIES = ("even", "odd")
GRID = 801  # points (symmetric about the middle) where eigenfunctions are compared and plotted


@dataclass
class Symmetry:
    name: str
    nu: float
    parity: str | None


@dataclass
class ExactMode:
    index: int
    nu: float
    parity: str | None
    eigenfunction: Callable[[np.ndarray], np.ndarray]


@dataclass
class StabilitySpec:
    """What the analysis needs from an equation (Problem.stability())."""

    linearization: Linearization  # about the reported profile and scalar
    domain: tuple[float, float]
    parity: str | None  # "odd": the profile is odd, so L keeps parity and each class is solved apart
    symmetries: list[Symmetry]
    exact: list[ExactMode]  # empty where no closed form is known
    smooth_point: float = 0.0  # where smoothness selects the discrete spectrum ...
    local_order: int = 0  # ... from L's action on Taylor coefficients there up to this order
    # the same equation about the profile plus its estimated error (the next Newton correction): how far
    # each eigenvalue moves with it is part of its error bar
    perturbed: Linearization | None = None


@dataclass
class Mode:
    nu: complex
    error: float
    parity: str
    values: np.ndarray  # the eigenfunction on the analysis grid, max |φ| = 1
    symmetry: str | None = None
    exact: float | None = None
    exact_index: int | None = None
    eigenfunction_error: float | None = None


def local_eigenvalues(spec: StabilitySpec, parity: str | None, lin: Linearization | None = None) -> np.ndarray:
    """Eigenvalues of L acting on Taylor coefficients at the smoothness point, orders 0..local_order.

    For a differential operator whose velocity vanishes at that point, L maps X^n to X^n plus higher
    powers: the matrix is triangular, and its eigenvalues are the only candidates for smooth modes
    (whether one extends to the whole domain is `Collocation.mode`'s part)."""
    order = spec.local_order
    powers = parity_orders(order, parity)
    taylor = np.zeros((order + 2, len(powers)))
    taylor[powers, np.arange(len(powers))] = 1.0
    x0 = torch.full((1, 1), spec.smooth_point, dtype=torch.float64)
    lin = lin or spec.linearization
    dfdu = lin.apply(x0, torch.from_numpy(taylor).unsqueeze(1), order, local=True)[:, 0].numpy()
    nu = scipy.linalg.eigvals(-dfdu[powers])
    return nu[np.argsort(-nu.real)]


def _apply_series(spec: StabilitySpec, coeffs: np.ndarray, t: np.ndarray, half: float) -> np.ndarray:
    """-dF/dU applied to each Chebyshev series (columns of coeffs) at points t = X / half, (N, B)."""
    values, slopes = chebyshev.chebval(t, coeffs).T, chebyshev.chebval(t, chebyshev.chebder(coeffs)).T / half
    x = torch.from_numpy(t * half).view(-1, 1)
    return -spec.linearization.apply(x, torch.from_numpy(np.stack([values, slopes])), 0)[0].numpy()


class Collocation:
    """-dF/dU on a Chebyshev basis of one parity and degree: at collocation points, and as Taylor
    coefficients at the smoothness point; computed once, used for every mode."""

    def __init__(self, spec: StabilitySpec, degree: int, parity: str | None):
        self.spec, self.parity, self.half = spec, parity, max(abs(spec.domain[0]), abs(spec.domain[1]))
        self.basis = parity_basis(degree, parity)
        n = self.basis.shape[1]
        t = first_kind_points(2 * n)
        self.t = t[t > spec.smooth_point / self.half] if parity else t[::2]
        self.values = chebyshev.chebval(self.t, self.basis).T
        self.operator = _apply_series(spec, self.basis, self.t, self.half)

    def mode(self, nu: complex) -> tuple[np.ndarray, float]:
        """The eigenfunction for ν: Chebyshev coefficients of φ with (L - ν)φ = 0 at the points and
        φ = 1 at the right end, by least squares; and max |(L - ν)φ| / max |φ| on a finer grid.

        Away from the singular point (L - ν)φ = 0 is a first-order equation, so on each side φ is
        unique up to scale; it is smooth at the point only where ν is an eigenvalue. Elsewhere it
        behaves like |X|^s there, which polynomials fit only slowly: the residual and the change with
        the degree say whether ν is one."""
        end = chebyshev.chebval(1.0, self.basis)[None, :]
        matrix = np.concatenate([end, self.operator - nu * self.values])
        target = np.concatenate([[1.0], np.zeros(len(self.t))])
        scale = np.abs(matrix).max(axis=0)
        coeffs = self.basis @ (np.linalg.lstsq(matrix / scale, target, rcond=None)[0] / scale)
        check = np.linspace(-1, 1, 2 * GRID + 1)[1::2] if self.parity is None else np.linspace(0, 1, GRID + 1)[1:]
        phi = chebyshev.chebval(check, coeffs)
        residual = _apply_series(self.spec, coeffs[:, None], check, self.half)[:, 0] - nu * phi
        return coeffs, float(np.max(np.abs(residual)) / np.max(np.abs(phi)))


def _parity_of(grid: np.ndarray, phi: np.ndarray) -> str:
    """even / odd / mixed, on a grid symmetric about 0."""
    mirrored, size = phi[::-1], np.max(np.abs(phi))
    if np.max(np.abs(phi - mirrored)) < 1e-8 * size:
        return "even"
    return "odd" if np.max(np.abs(phi + mirrored)) < 1e-8 * size else "mixed"


def converged_modes(spec: StabilitySpec, grid: np.ndarray, degrees: tuple[int, int] = DEGREES):
    """The local eigenvalues whose eigenfunctions are smooth on the whole domain: error bar the larger
    of the eigenfunction's residual and its change between the two degrees; the others are counted."""
    half = max(abs(spec.domain[0]), abs(spec.domain[1]))
    modes, discarded = [], 0
    for parity in PARITIES if spec.parity == "odd" else (None,):
        coarse_grid, fine_grid = (Collocation(spec, d, parity) for d in degrees)
        moved = local_eigenvalues(spec, parity, spec.perturbed) if spec.perturbed else None
        for nu in local_eigenvalues(spec, parity):
            (coarse, _), (fine, residual) = coarse_grid.mode(nu), fine_grid.mode(nu)
            phi, phi_coarse = (chebyshev.chebval(grid / half, c) for c in (fine, coarse))
            size = phi[np.argmax(np.abs(phi))]
            error = max(residual, float(np.max(np.abs(phi - phi_coarse)) / abs(size)))
            if not error <= CONVERGED:  # the eigenfunction is not resolved
                discarded += 1
                continue
            if moved is not None:  # an unconverged profile: reported, with the error bar saying so
                error = max(error, float(np.min(np.abs(moved - nu))))
            modes.append(Mode(nu, error, parity or _parity_of(grid, phi), phi / size))
    modes.sort(key=lambda m: -m.nu.real)
    return modes, discarded


def identify(modes: list[Mode], spec: StabilitySpec, grid: np.ndarray) -> None:
    """Name the symmetry modes and attach the exact eigenvalue and eigenfunction error where known."""

    def near(mode: Mode, nu: float, parity: str | None) -> bool:
        same_parity = parity is None or mode.parity in (parity, "mixed")
        return same_parity and abs(mode.nu - nu) <= MATCH

    for mode in modes:
        mode.symmetry = next((s.name for s in spec.symmetries if near(mode, s.nu, s.parity)), None)
        exact = [e for e in spec.exact if near(mode, e.nu, e.parity)]
        if exact:
            best = min(exact, key=lambda e: abs(e.nu - mode.nu))
            mode.exact, mode.exact_index = best.nu, best.index
            want = best.eigenfunction(grid)
            scale = np.vdot(mode.values, want) / np.vdot(mode.values, mode.values)  # best scale (sign, phase)
            mode.eigenfunction_error = float(np.max(np.abs(scale * mode.values - want)) / np.max(np.abs(want)))


def analyse(spec: StabilitySpec) -> tuple[list[Mode], dict]:
    started = time.perf_counter()
    grid = np.linspace(*spec.domain, GRID)
    modes, discarded = converged_modes(spec, grid)
    identify(modes, spec, grid)
    unstable = [m for m in modes if m.nu.real - m.error > 0 and m.symmetry is None]
    counts = {
        "n_unstable": len(unstable),
        "n_unstable_odd": sum(m.parity == "odd" for m in unstable),
        "n_unstable_even": sum(m.parity == "even" for m in unstable),
        "symmetry_modes": {m.symmetry: m.nu.real for m in modes if m.symmetry},
        "symmetry_modes_missing": [s.name for s in spec.symmetries if not any(m.symmetry == s.name for m in modes)],
        "n_reported": len(modes),
        "n_discarded": discarded,
        "degrees": list(DEGREES),
        "converged_tolerance": CONVERGED,
        "lambda": spec.linearization.scalar,
        "max_error": max((m.error for m in modes), default=None),
        "wall_time_s": time.perf_counter() - started,
    }
    return modes, counts


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
        }
    )


def plot(modes: list[Mode], spec: StabilitySpec, path: Path, leading: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    for parity, marker in (("even", "o"), ("odd", "s"), ("mixed", "^")):
        chosen = [m for m in modes if m.parity == parity]
        if chosen:
            ax[0].plot([m.nu.real for m in chosen], [m.nu.imag for m in chosen], marker, mfc="none", label=parity)
    exact = [e.nu for e in spec.exact]
    if exact:
        ax[0].plot(exact, np.zeros(len(exact)), "k+", ms=10, label="exact")
    ax[0].axvline(0, color="gray", lw=0.8)
    ax[0].set(xlabel="Re ν", ylabel="Im ν", title="converged eigenvalues of L = -dF/dU")
    ax[0].legend()
    grid = np.linspace(*spec.domain, GRID)
    for m in modes[:leading]:
        ax[1].plot(grid, m.values.real, label=f"ν = {m.nu.real:.6g}" + (f" ({m.symmetry})" if m.symmetry else ""))
    ax[1].set(
        xlabel=getattr(spec, "coordinate", "X"), title=f"leading {min(leading, len(modes))} eigenfunctions (max 1)"
    )
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def show(run_dir: Path, modes: list[Mode], counts: dict, console: Console) -> None:
    grid = Table(title=f"{run_dir}: λ = {counts['lambda']:.15g}")
    for column in ("ν", "error", "parity", "symmetry", "exact", "eigenfunction err"):
        grid.add_column(column, justify="right")
    for m in modes:
        if m.nu.real < -1.5:
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
    if counts.get("resolved_above") is not None:  # a grid spectrum: counted right of where it is resolved
        console.print(
            f"unstable (symmetries excluded) with Re ν > {counts['resolved_above']:.4f}: {counts['n_unstable']} "
            f"(even class); at or below that a smooth eigenfunction is not told from a non-smooth one: "
            f"{len(counts['candidates_in_continuum'])} candidates there, not counted; "
            f"{counts['n_reported']} converged, {counts['n_discarded']} discarded; {counts['wall_time_s']:.1f} s"
        )
        return
    console.print(
        f"unstable (symmetries excluded): {counts['n_unstable']} ({counts['n_unstable_odd']} odd, "
        f"{counts['n_unstable_even']} even); {counts['n_reported']} converged eigenvalues shown down to "
        f"Re ν = -1.5, {counts['n_discarded']} discarded; {counts['wall_time_s']:.1f} s"
    )


def stability_of(run_dir: Path):
    """The trained problem of a run dir, loaded from its config.yaml and checkpoint.pt."""
    from blowup.training.trainer import load_trained

    problem = load_trained(run_dir)
    try:
        return problem.stability()
    except NotImplementedError:
        raise BrokenRun(f"equation {type(problem).__name__} has no stability analysis") from None


class BrokenRun(Exception):
    """A run dir that cannot be analysed; the message says why in a few words."""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="blowup stability", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run dirs (with config.yaml and checkpoint.pt)")
    parser.add_argument("--out", type=Path, default=None, help="write the files here (default: each run dir)")
    args = parser.parse_args(argv)
    console, done = Console(), 0
    for run_dir in args.runs:
        try:
            spec = stability_of(run_dir)
        except (BrokenRun, OSError, KeyError, RuntimeError, ValueError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            print(f"{run_dir}: skipped: {reason}", file=sys.stderr)
            continue
        modes, counts = spec.analyse() if hasattr(spec, "analyse") else analyse(spec)  # CCF: its own grid
        out = args.out / run_dir.name if args.out and len(args.runs) > 1 else args.out or run_dir
        out.mkdir(parents=True, exist_ok=True)
        table(modes).to_csv(out / "stability.csv", index=False, float_format="%.17g")
        (out / "stability.json").write_text(json.dumps(counts, indent=2) + "\n")
        plot(modes, spec, out / "stability.png")
        show(run_dir, modes, counts, console)
        done += 1
    return 0 if done else 2
