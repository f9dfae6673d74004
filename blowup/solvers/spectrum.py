"""The stability spectrum of a profile whose equation is singular where its velocity vanishes, from the residual
alone: `CollocationStability`, a `blowup.problem.Stability` (Burgers' analysis).

L is never written by hand: its action on any function is the complex step of the equation's own residual
(`blowup.solvers.newton.Linearization`) about the reported profile and λ.

Where the velocity vanishes (X = 0 for Burgers) the eigenvalue problem is singular, and smoothness there
selects the discrete spectrum as it selects λ: L maps X^n to X^n plus higher powers, so its action on Taylor
coefficients at that point is triangular and its eigenvalues are the candidates. A global discretisation
alone cannot find them reliably: |X|^s pseudo-modes fill a continuum in which the smooth eigenvalues are
embedded, and polynomial collocation smears them into eigenvalues that drift with the degree instead of
converging. Each candidate is then checked on the whole domain: its eigenfunction, by Chebyshev collocation
of (L - ν)φ = 0 (no boundary rows: the characteristics leave the domain at both ends) at two degrees. A mode
is reported when that eigenfunction is resolved, with an error bar that also holds how far ν moves when the
profile moves by its own error estimate; the rest are counted as discarded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from numpy.polynomial import chebyshev

from blowup.problem import GRID, LISTED_FROM, MATCH, ExactMode, Mode, Spectrum, Stability, Symmetry
from blowup.solvers.chebyshev import first_kind_points, parity_basis, parity_orders
from blowup.solvers.newton import Linearization

DEGREES = (160, 240)  # each eigenfunction at both; it must agree between them
CONVERGED = 1e-5  # a mode is reported if its eigenfunction is resolved to this (residual and change, relative)
PARITIES = ("even", "odd")


@dataclass
class CollocationStability(Stability):
    """What the analysis needs from an equation: its linearised residual and where smoothness selects modes."""

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
    coordinate: str = "X"

    def analyse(self) -> Spectrum:
        started = time.perf_counter()
        grid = np.linspace(*self.domain, GRID)
        modes, discarded = converged_modes(self, grid)
        identify(modes, self, grid)
        unstable = [m for m in modes if m.nu.real - m.error > 0 and m.symmetry is None]
        counts = {
            "n_unstable": len(unstable),
            "n_unstable_odd": sum(m.parity == "odd" for m in unstable),
            "n_unstable_even": sum(m.parity == "even" for m in unstable),
            "symmetry_modes": {m.symmetry: m.nu.real for m in modes if m.symmetry},
            "symmetry_modes_missing": [s.name for s in self.symmetries if not any(m.symmetry == s.name for m in modes)],
            "n_reported": len(modes),
            "n_discarded": discarded,
            "degrees": list(DEGREES),
            "converged_tolerance": CONVERGED,
            "lambda": self.linearization.scalar,
            "max_error": max((m.error for m in modes), default=None),
            "wall_time_s": time.perf_counter() - started,
        }
        summary = (
            f"unstable (symmetries excluded): {counts['n_unstable']} ({counts['n_unstable_odd']} odd, "
            f"{counts['n_unstable_even']} even); {counts['n_reported']} converged eigenvalues shown down to "
            f"Re ν = {LISTED_FROM}, {counts['n_discarded']} discarded; {counts['wall_time_s']:.1f} s"
        )
        return Spectrum(modes, counts, self.domain, self.coordinate, [e.nu for e in self.exact], summary)


def local_eigenvalues(spec: CollocationStability, parity: str | None, lin: Linearization | None = None) -> np.ndarray:
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


def _apply_series(spec: CollocationStability, coeffs: np.ndarray, t: np.ndarray, half: float) -> np.ndarray:
    """-dF/dU applied to each Chebyshev series (columns of coeffs) at points t = X / half, (N, B)."""
    values, slopes = chebyshev.chebval(t, coeffs).T, chebyshev.chebval(t, chebyshev.chebder(coeffs)).T / half
    x = torch.from_numpy(t * half).view(-1, 1)
    return -spec.linearization.apply(x, torch.from_numpy(np.stack([values, slopes])), 0)[0].numpy()


class Collocation:
    """-dF/dU on a Chebyshev basis of one parity and degree: at collocation points, and as Taylor
    coefficients at the smoothness point; computed once, used for every mode."""

    def __init__(self, spec: CollocationStability, degree: int, parity: str | None):
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


def converged_modes(spec: CollocationStability, grid: np.ndarray, degrees: tuple[int, int] = DEGREES):
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


def identify(modes: list[Mode], spec: CollocationStability, grid: np.ndarray) -> None:
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
