"""Linear stability of a log-grid profile (`blowup.solvers.log_profile`): the spectrum of L at two spacings.

In self-similar variables (τ = -log(1 - t)) a profile evolves by u_τ = ±R(u): L = ±∂R/∂u, the sign the
equation states (`ProfileEquation.stability_sign`; CCF's Θ_τ = -F gives L = -∂R/∂q, gCLM's p_τ = G gives
L = ∂G/∂p), the operator Newton already applies. So the spectrum in the profile's parity class (CCF's even Θ,
gCLM's odd Ω) is one eigenvalue call per grid: every eigenvalue of the dense matrix on grids up to
DENSE_POINTS; past that (CCF's profile 2 needs 10^5 points) the NEAREST to SHIFT by shift-invert Arnoldi on L's
action, whose products cost what Newton's steps do.

What makes an eigenvalue genuine is its eigenfunction. Near the origin, where the transport speed tends to
c₀ (`ProfileEquation.origin_speed`: CCF's λ/2), an eigenfunction at ν is A e^s (smooth) plus B e^((1 - ν/c₀)s)
(not smooth, or not even decaying for Re ν > c₀). In a space that does not ask for smoothness every ν in a strip
is an eigenvalue, so a mode is reported only when its eigenfunction decays like e^s towards the origin (B = 0),
decays far out, and its eigenvalue is found on both grids (their difference is its error). The grid adds
artefacts of its own: transport around the periodic grid gives eigenvalues up to the largest local rate of L
(`ProfileEquation.local_rate`; CCF's λ - min c), with eigenfunctions that change between grids or decay at the
origin like the non-smooth part, and the same tests discard them. The rate an eigenfunction must show is 1
within SMOOTH_RATE, or within a quarter of its distance from the non-smooth rate where that is less: the two
rates close in as ν falls, and below Re ν = 4·FINEST_RATE·c₀ (`resolved_above`) e^s is not told from
e^((1 - ν/c₀)s): eigenvalues there that pass are listed as candidates, not counted.

Below a class's continuum edge the dense eigenvalues can miss a genuine mode altogether (the matrix is far from
normal there), so that stretch of the real axis is also scanned for smooth eigenfunctions directly
(`SmoothResidual`): the least singular value of L - ν with smoothness rows appended dips to round-off at a
genuine mode and nowhere else. Complex modes below the edge are looked for on request (`complex_scan`, `blowup
stability --complex`) in the square of the complex plane above that stretch: the eigenvalues of L on the subspace
the smoothness rows leave (`SmoothResidual.smooth_eigenvalues`) there, each kept where σ dips to it on both grids.

Symmetry modes of the self-similar ansatz: time translation ν = 1 and the scaling family ν = 0, both in the
profile's class (space translation and, for CCF, adding a constant to θ lie outside it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg import eigvals, hessenberg, lapack, null_space, solve_triangular
from scipy.optimize import minimize_scalar
from scipy.sparse.linalg import LinearOperator, eigs, gmres

from blowup.problem import GRID, MATCH, Mode, Spectrum, Stability, Symmetry
from blowup.solvers.hilbert import AnyLogGrid, LogGrid, derivative_transpose
from blowup.solvers.log_profile import (
    ProfileEquation,
    ProfileSolve,
    jacobian_operator,
    transport_preconditioner,
    widened,
    widened_grid,
)

SMOOTH_RATE = 0.05  # eigenfunctions must decay towards the origin like e^s within this rate, or within a quarter
FINEST_RATE = 2.5e-3  # of the non-smooth rate's distance from 1 where less, down to this: the fitted rates of genuine
# modes lie within 5e-4 of 1 on the grids tried (the worst, gCLM's time mode at a = 1/2, inside the continuum)
ROUND_OFF = 1e-12  # ... and far out, unless already this small against their maximum
NOISE_FLOOR = 1e-9  # a dense eigenvector's entries below this (relative) are round-off: measured, gCLM's even mode
MIN_FIT_POINTS = 5  # of CCF's profile 2 at a = -1 flat at 1e-11 towards the origin (fitted rate 0.81, above it 1.0004)
WRAP_MARGIN = 100.0  # ... and entries within this factor of what the grid's ends hold: a slowly decaying tail that the
WRAP_ENDS = 5  # interval truncates is wrapped by the periodic grid onto its left end (this many points each end)
ORIGIN_FIT_END = -5.0  # ... up to here where needed: a smooth eigenfunction's e^s still leads (CCF's profile 1, odd
# mode on [-36, 600]: its tail wraps round at 8e-7 of its maximum; fitted over [-7, -5] its rate is 1.00, over the
# usual [-21, -8] 0.40)
GRIDS_AGREE = 1e-4  # the same eigenvalue on both grids, relative to max(1, |ν|): artefacts move by O(1) between
# grids, a resolved mode by its error, which on coarse default grids can exceed 1e-6
SHOWN = (-15.0, 30.0)  # s-range of the eigenfunctions kept for the plot
DENSE_POINTS = 6001  # all eigenvalues, dense, up to this many grid points (about 100 bytes a matrix entry) ...
WIDE_SPACING = 0.15  # a widened clustered grid's spacing far from its front (the finer of the pair; the stable
# profile's uniform Newton spacing), the coarser one's as much larger as its pair's points are fewer
DENSE_SECONDS = 2.5e-9  # ... both classes' on a pair of grids of N₁ and N₂ points take about this times N₁³ + N₂³
# seconds on the 2-core reference machine (measured: 2.0e-9 to 2.4e-9 from 1875/2625 to 3375/4725 points)
SHIFT = 0.6  # ... past it the NEAREST to SHIFT: the unstable modes of profiles 1 and 2 and the time mode (ν = 1)
NEAREST = 12
INNER_TOLERANCE = 1e-12  # each shift-invert product's GMRES solve
INNER_RESTART = 200
SYMMETRIES = [Symmetry("time", 1.0, None), Symmetry("scaling", 0.0, None)]  # those inside the profile's class
SMOOTH_CUT = -12.0  # `SmoothResidual` asks χ ~ A e^s where s < SMOOTH_CUT: a smooth eigenfunction's next term
# departs from it by e^(2s) there (the scan's mode sat 8e-8 off gCLM's translation with the cut at -8, ~e^-16) ...
SMOOTH_ROWS = 40  # ... on this many points spread over that part of the grid
SCAN_STEPS = 30  # the stretch scanned, sampled at this many steps (and one beyond each end) ...
SCAN_DEPTH = 1e-2  # ... where a local minimum of σ at most this of σ a step either side, on both grids, is a mode
# (measured, genuine modes: 1e-7 ... 1e-3, the deepest where the grid resolves the eigenfunction best; a mode that
# decays slowly in the far field is held at σ ~ 1e-8 by the interval's truncation, gCLM's even mode at a = -0.8:
# 2.3e-8 on both grids, 1e-3 of its neighbours, where a floor of 1e-4 of the scan's median missed it)
INVERSE_STEPS = 60  # inverse iterations for σ's singular vector at most
PLANE_DEPTH_STEPS = 10  # complex ν: a mode's σ is compared with σ a tenth of the square's width away (SCAN_DEPTH)
TAIL_SHOWN = 9.5  # κR past which a mode whose eigenfunction decays like e^(-κs) far out shows on [.., R]: measured on
# gCLM's even mode of the 1st unstable branch over a = -0.98 ... -0.84, absent on every interval with κR ≤ 8.4, found
# on every one with κR ≥ 9.0 (scripts/gclm_even_mode_tail.py)


def _nearest_spectrum(solve: ProfileSolve) -> tuple[np.ndarray, np.ndarray]:
    """The NEAREST eigenvalues of L to SHIFT, by shift-invert Arnoldi (ARPACK) on L's action alone: each
    (L - σ)⁻¹ b a GMRES solve of (±∂R/∂u - σ) x = b preconditioned by the transport part, as Newton's steps are.
    The unstable modes and the time mode lie nearest σ; the grid's transport artefacts, whose eigenvalues
    have large imaginary parts, and the continuum near Re ν = 0 lie farther."""
    jacobian, lin = jacobian_operator(solve.equation, solve.q, solve.lam, solve.grid)
    sign, n = solve.equation.stability_sign, solve.grid.points
    preconditioner = transport_preconditioner(lin.speed, solve.grid)
    shifted = LinearOperator((n, n), matvec=lambda v: jacobian.matvec(v) - sign * SHIFT * v, dtype=float)

    def inverse(b: np.ndarray) -> np.ndarray:
        x, _ = gmres(shifted, sign * b, M=preconditioner, rtol=INNER_TOLERANCE, restart=INNER_RESTART, maxiter=20)
        return x

    operator = LinearOperator((n, n), matvec=lambda v: sign * jacobian.matvec(v), dtype=float)
    return eigs(operator, k=NEAREST, sigma=SHIFT, OPinv=LinearOperator((n, n), matvec=inverse, dtype=float), tol=1e-12)


def _smooth_and_decaying(solve: ProfileSolve, vector: np.ndarray, tolerance: float) -> bool:
    """The eigenfunction ~ e^s towards the origin (smooth: its fitted rate within `tolerance` of 1), and far out
    either decaying or already at round-off (an exact mode whose leading far-field term cancels, as the time
    mode's does). The rate is fitted where the eigenfunction stands above round-off and above the tail that the
    interval truncates: a mode decaying slowly far out still holds a little at the right end, and the periodic
    grid carries that onto the left end, where it bends the fitted rate off 1 (the grid's ends hold round-off for
    a mode that decays fast, and then this changes nothing). Where the tail has wrapped round above the whole of
    the usual stretch, the rate is fitted on as much of the stretch up to ORIGIN_FIT_END as stands above it."""
    s, size = solve.grid.s, np.abs(vector) + 1e-300
    near = (s > solve.grid.left + 15) & (s < solve.grid.left + 28)
    far = (s > solve.grid.right - 40) & (s < solve.grid.right - 20)
    ends = max(size[:WRAP_ENDS].max(), size[-WRAP_ENDS:].max())
    above_noise = size > max(NOISE_FLOOR * size.max(), WRAP_MARGIN * ends)
    nearer = (s > solve.grid.left + 15) & (s < ORIGIN_FIT_END) & above_noise
    if (near & above_noise).sum() >= MIN_FIT_POINTS:
        near = near & above_noise
    elif nearer.sum() >= MIN_FIT_POINTS:
        near = nearer
    toward_origin = np.polyfit(s[near], np.log(size[near]), 1)[0]
    far_out = np.polyfit(s[far], np.log(size[far]), 1)[0]
    return abs(toward_origin - 1) <= tolerance and (far_out < 0 or size[far].max() <= ROUND_OFF * size.max())


class SmoothResidual:
    """σ(ν) = the least singular value of [L - ν; S] (ν real or complex), S = (d/ds - 1) on SMOOTH_ROWS points with
    s < SMOOTH_CUT: it asks (L - ν)χ = 0 and χ ~ A e^s towards the origin, which a non-smooth part B e^(κs) (κ ≠ 1)
    violates by (κ - 1) B e^(κs). So σ falls to the grid's round-off at a genuine mode, smooth eigenfunction and all,
    and stays orders of magnitude higher elsewhere, where the dense matrix of L alone has a near-null vector at
    every ν of the continuum and its eigenvalues need not come near the genuine one.

    L is reduced to Hessenberg form once, L = Q H Qᵀ: [H - ν; S Q] has the same singular values, and its
    triangular factor takes O(N²) Givens rotations and a triangular-pentagonal QR for S's rows (O(N² rows)); σ and
    its vector then come from inverse iteration on the triangle. A ν costs O(N²) where an SVD costs O(N³)."""

    def __init__(self, operator: np.ndarray, grid: AnyLogGrid):
        self.hessenberg, self.q = hessenberg(operator, calc_q=True)
        near = np.flatnonzero(grid.s < SMOOTH_CUT)
        self.rows = near[np.unique(np.linspace(0, len(near) - 1, min(SMOOTH_ROWS, len(near))).round().astype(int))]
        unit = np.zeros((grid.points, len(self.rows)))
        unit[self.rows, np.arange(len(self.rows))] = 1.0
        self.smooth = (derivative_transpose(unit, grid).T - unit.T) @ self.q  # rows of (d/ds - 1), in Q's basis
        self.start = np.random.default_rng(0).standard_normal(grid.points)

    def _triangle(self, nu: complex) -> np.ndarray:
        """R of [H - ν; S Q] = Q'R (complex where ν is)."""
        r = self.hessenberg - nu * np.eye(len(self.hessenberg))
        for k in range(len(r) - 1):  # Givens rotations zero the subdiagonal
            radius = np.hypot(abs(r[k, k]), abs(r[k + 1, k]))
            if radius > 0:
                c, s = r[k, k] / radius, r[k + 1, k] / radius
                r[k : k + 2, k:] = np.array([[np.conj(c), np.conj(s)], [-s, c]]) @ r[k : k + 2, k:]
        smooth = self.smooth.astype(r.dtype)
        (tpqrt,) = lapack.get_lapack_funcs(("tpqrt",), (r, smooth))
        return np.triu(tpqrt(0, min(32, len(r)), np.triu(r), smooth)[0])

    def least(self, nu: complex) -> tuple[float, np.ndarray]:
        """σ(ν) and its right singular vector χ (unit norm, on the grid); ν may be complex."""
        triangle = self._triangle(nu)
        size = np.abs(np.diag(triangle))
        np.fill_diagonal(triangle, np.where(size > 0, np.diag(triangle), np.finfo(float).eps * size.max()))
        x = self.start / np.linalg.norm(self.start)
        for _ in range(INVERSE_STEPS):
            z = solve_triangular(triangle, solve_triangular(triangle, x, trans="C"))
            z /= np.linalg.norm(z)
            settled = abs(abs(np.vdot(x, z)) - 1) < 1e-13
            x = z
            if settled:
                break
        return float(np.linalg.norm(triangle @ x)), self.q @ x

    def minimum(self, low: float, high: float) -> tuple[float, float]:
        """The ν in [low, high] where σ is least (bounded Brent on log σ) and σ there."""
        found = minimize_scalar(
            lambda nu: np.log(self.least(nu)[0]),
            bounds=(low, high),
            method="bounded",
            options={"xatol": 1e-12, "maxiter": 60},
        )
        return float(found.x), float(np.exp(found.fun))

    def smooth_eigenvalues(self) -> np.ndarray:
        """The eigenvalues of L on the smooth subspace, the null space N of the smoothness rows S: those of NᵀLN.
        A genuine mode's eigenfunction lies in it (S χ is the e^(3s) of its next term), so its ν is an eigenvalue
        there, and a far better conditioned one than among L's own: the continuum's non-smooth near-null vectors are
        gone from that subspace (measured on pairs planted into CCF's operators: README, Stability). Not every
        eigenvalue of NᵀLN is a mode: σ tells (`plane_minima`)."""
        basis = null_space(self.smooth)
        return eigvals(basis.T @ self.hessenberg @ basis)

    def deep(self, nu: complex, least: float, step: float) -> bool:
        """Whether σ's minimum `least` at ν is at most SCAN_DEPTH of σ a step away in each direction of the plane
        (along the real axis alone for real ν, where σ is symmetric about it)."""
        away = [nu - step, nu + step] + ([nu - 1j * step, nu + 1j * step] if nu.imag else [])
        return least <= SCAN_DEPTH * min(self.least(other)[0] for other in away)


def plane_minima(
    fine: SmoothResidual, coarse: Callable[[], SmoothResidual], low: float, high: float, known: list[complex]
) -> list[tuple[complex, float]]:
    """Complex modes with low < Re ν ≤ high and 0 < Im ν ≤ high - low, each with its error (the grids'
    difference): eigenvalues of L on the smooth subspace (`smooth_eigenvalues`) there where σ is at most SCAN_DEPTH of
    σ a PLANE_DEPTH_STEPS-th of the square's width away in each direction, on both grids. ν in `known` (the dense
    eigenvalues', within GRIDS_AGREE) are left out; `coarse()` gives the other grid's σ, asked only once a mode is to
    be confirmed. Sampling σ over the square instead (a first version) misses modes whose σ rises slowly from its
    zero (an ill-conditioned eigenvalue: |ν - ν₀| over its condition number) where the continuum's σ is smaller a
    sample away."""
    reach = high - low
    step = reach / PLANE_DEPTH_STEPS
    inside = [nu for nu in fine.smooth_eigenvalues() if low < nu.real <= high and 0 < nu.imag <= reach]
    sigma = [fine.least(nu)[0] for nu in inside]
    found, other, others = [], None, None
    for i in np.argsort(sigma):
        nu = inside[i]
        if any(_grids_agree(abs(k - nu), nu) for k in [*known, *(f for f, _ in found)]):
            continue
        if not fine.deep(nu, sigma[i], step):
            continue
        other = other or coarse()
        others = others if others is not None else other.smooth_eigenvalues()
        coarse_nu = others[np.argmin(np.abs(others - nu))]
        error = abs(coarse_nu - nu)
        if _grids_agree(error, nu) and other.deep(coarse_nu, other.least(coarse_nu)[0], step):
            found.append((complex(nu), float(error)))
    return found


@dataclass(frozen=True)
class PerturbationClass:
    """Perturbations of one parity about a profile: L's dense matrix there (`operator(u, σ, grid)`), the symmetry
    modes the class holds, L's largest local rate (its grid artefacts reach it), the rate at which a non-smooth
    eigenfunction at Re ν decays towards the origin (`rough_rate`) and the Re ν above which it is told from a
    smooth one (`resolved_above`). An equation's own class comes from its
    Newton Jacobian (`own_class`); an equation may state others (`ProfileEquation.other_classes`: CCF's odd
    perturbations of its even θ, gCLM's even ones of its odd Ω, the same perturbations at a = -1)."""

    parity: str
    operator: Callable[[np.ndarray, float, LogGrid], np.ndarray]
    symmetries: list[Symmetry]
    local_rate: Callable[[np.ndarray, float, LogGrid], np.ndarray]
    rough_rate: Callable[[float], float]
    resolved_above: float
    continuum_edge: float  # below this Re ν the non-smooth eigenfunctions decay (rough_rate > 0): see `_modes`
    own: bool = False  # the profile's own class: past DENSE_POINTS its spectrum is the shift-invert one
    far_field: tuple[float, float] | None = None  # (r, c): far out L ≈ r - c d/ds, so an eigenfunction at Re ν
    # decays there like e^(-κs), κ = (ν - r)/c (None: not stated for the class)

    def far_rate(self, nu: float) -> float:
        """κ: how fast an eigenfunction at Re ν decays far out, e^(-κs)."""
        r, c = self.far_field
        return (nu - r) / c

    def shown_above(self, right: float) -> float | None:
        """The Re ν above which a mode's eigenfunction has decayed enough by s = `right` for an interval ending there
        to show it (κ · right ≥ TAIL_SHOWN). Below it the tail the interval truncates, wrapped round by the periodic
        grid, hides the mode from the eigenvalues and the rate test alike. None where the class states no far field."""
        if self.far_field is None:
            return None
        r, c = self.far_field
        return r + TAIL_SHOWN * c / right

    def named(self, nu: complex) -> str | None:
        """The class's symmetry mode within MATCH of ν, by name, or None."""
        return next((s.name for s in self.symmetries if abs(nu - s.nu) <= MATCH), None)

    def rate_tolerance(self, nu: float) -> float:
        """How close to 1 the rate of a smooth eigenfunction at Re ν must come: a quarter of the non-smooth rate's
        distance from it, at most SMOOTH_RATE."""
        return min(SMOOTH_RATE, abs(self.rough_rate(nu) - 1) / 4)


def second_rate_class(
    parity: str,
    operator: Callable[[np.ndarray, float, LogGrid], np.ndarray],
    symmetries: list[Symmetry],
    local_rate: Callable[[np.ndarray, float, LogGrid], np.ndarray],
    origin_speed: float,
    far_field: tuple[float, float] | None = None,
) -> PerturbationClass:
    """A class whose eigenfunctions near the origin are A e^s + B e^((2 - ν/c₀)s) (CCF's odd perturbations of θ,
    gCLM's even ones of Ω): the non-smooth part decays faster than e^s below ν = c₀, where the rate test cannot
    see it, and is told from e^s from Re ν = (1 + 4 FINEST_RATE) c₀ up. `far_field`: see `PerturbationClass`."""
    bound = (1 + 4 * FINEST_RATE) * origin_speed

    def rough(nu: float) -> float:
        return 2 - nu / origin_speed

    return PerturbationClass(
        parity, operator, symmetries, local_rate, rough, bound, 2 * origin_speed, far_field=far_field
    )


def own_class(equation: ProfileEquation, lam: float) -> PerturbationClass:
    def operator(u: np.ndarray, scalar: float, grid: LogGrid) -> np.ndarray:
        return equation.stability_sign * equation.dense(u, scalar, grid).jacobian

    origin_speed = equation.origin_speed(lam)
    bound = 4 * FINEST_RATE * origin_speed

    def rough(nu: float) -> float:
        return 1 - nu / origin_speed

    return PerturbationClass(
        equation.parity, operator, SYMMETRIES, equation.local_rate, rough, bound, origin_speed, own=True
    )


def check_right_end(interval: tuple[float, float], right: float | None) -> None:
    """ValueError unless `right` (None: the run's own interval) lies beyond the interval's right end."""
    if right is not None and right <= interval[1]:
        raise ValueError(f"--right {right:g} must lie beyond the run's interval [{interval[0]:g}, {interval[1]:g}]")


@dataclass
class LogGridStability(Stability):
    """`blowup stability` on a log-grid run: the coarse and fine Newton solves of its profile, every perturbation
    class the equation states (its own, and `other_classes`)."""

    coarse: ProfileSolve
    fine: ProfileSolve
    scan: bool = True  # the stretch between a class's resolved bound and its continuum edge scanned (`_scanned`)
    complex_scan: bool = False  # ... and the square of the complex plane above it (`plane_minima`)
    tolerance: float | None = None  # the run's σ tolerance: a profile solved again (`widened`) must give its σ to it

    def with_complex_scan(self) -> LogGridStability:
        return replace(self, complex_scan=True)

    def widened(self, right: float) -> LogGridStability:
        """Both solves again on grids over [left, right] (`log_profile.widened`: a uniform grid's spacing kept, a
        clustered one's at its front, WIDE_SPACING far from it, so that the points grow with the interval), refused
        before any solve where the finer one would pass DENSE_POINTS (the other classes' dense spectra), and after
        it where either solve does not converge to the run's σ."""
        check_right_end((self.fine.grid.left, self.fine.grid.right), right)
        far = (WIDE_SPACING * self.fine.grid.points / self.coarse.grid.points, WIDE_SPACING)
        grids = [widened_grid(solve.grid, right, h) for solve, h in zip((self.coarse, self.fine), far)]
        if grids[1].points > DENSE_POINTS:
            spacing = (right - self.fine.grid.right) / (grids[1].points - self.fine.grid.points)
            largest = self.fine.grid.right + (DENSE_POINTS - self.fine.grid.points) * spacing
            raise ValueError(
                f"--right {right:g} takes {grids[1].points} points at its far spacing, past the dense spectra's "
                f"{DENSE_POINTS}: allowed up to about {largest:.0f}"
            )
        minutes = DENSE_SECONDS * sum(g.points**3 for g in grids) / 60
        print(
            f"the profile is solved again on [{self.fine.grid.left:g}, {right:g}] ({grids[0].points} and "
            f"{grids[1].points} points) and their dense spectra taken "
            f"({'about a minute' if minutes < 1.5 else f'about {minutes:.0f} minutes'})",
            file=sys.stderr,
        )
        name = self.fine.equation.scalar_name
        coarse, fine = (widened(solve, grid) for solve, grid in zip((self.coarse, self.fine), grids))
        for solve in (coarse, fine):
            off = abs(solve.lam - self.fine.lam)
            if not solve.converged or (self.tolerance is not None and off > self.tolerance):
                raise ValueError(
                    f"the profile solved again on [{solve.grid.left:g}, {right:g}] ({solve.grid.points} points) is not "
                    f"the run's ({name} {solve.lam:.15g}, {off:.1e} off, converged {solve.converged}): no spectrum"
                )
        return replace(self, coarse=coarse, fine=fine)

    def analyse(self) -> Spectrum:
        started = time.perf_counter()
        lam, equation = self.fine.lam, self.fine.equation
        classes = [own_class(equation, lam), *equation.other_classes(lam)]
        analysed = [c for c in classes if c.own or self.fine.grid.points <= DENSE_POINTS]
        modes, discarded, artefacts = [], 0, 0.0
        scanned, medians, by_scan, rough = {}, {}, 0, []
        for perturbations in analysed:
            found, dropped, reach = self._modes(perturbations, lam)
            stretch = [float(perturbations.resolved_above), float(perturbations.continuum_edge)]
            if self._scannable() and stretch[0] < stretch[1]:
                scanned[perturbations.parity] = stretch
                found, more, medians[perturbations.parity], failed = self._scanned(perturbations, found)
                rough += [[complex(nu).real, complex(nu).imag, perturbations.parity] for nu in failed]
                found, by_scan = found + more, by_scan + len(more)
            modes, discarded, artefacts = modes + found, discarded + dropped, max(artefacts, reach)
        bounds = {c.parity: c.resolved_above for c in analysed}
        edges = {c.parity: c.continuum_edge for c in analysed}
        shown = {c.parity: c.shown_above(self.fine.grid.right) for c in analysed if c.far_field is not None}
        complete = {parity: max(edge, shown.get(parity, edge)) for parity, edge in edges.items()}
        unstable = [m for m in modes if m.nu.real - m.error > bounds[m.parity] and m.symmetry is None]
        in_continuum = [m for m in modes if m.nu.real <= bounds[m.parity] and m.symmetry is None]
        modes.sort(key=lambda m: -m.nu.real)
        counts = {
            "n_unstable": len(unstable),
            **{f"n_unstable_{c.parity}": sum(m.parity == c.parity for m in unstable) for c in analysed},
            "classes_not_analysed": [c.parity for c in classes if c not in analysed],  # past DENSE_POINTS
            "unstable_modes": [[m.nu.real, m.nu.imag] for m in unstable],
            "unstable_errors": [m.error for m in unstable],  # each one's error bar
            "unstable_parities": [m.parity for m in unstable],
            "resolved_above": bounds[equation.parity],  # at or below this Re ν smooth and non-smooth eigenfunctions
            "resolved_above_by_class": bounds,  # look alike: eigenvalues there that pass the same tests are
            "continuum_edge_by_class": edges,
            "complete_above_by_class": complete,  # below: the continuum or a tail too long for the interval, where
            "tail_shown_above_by_class": shown,  # a genuine mode may be missed (`PerturbationClass.shown_above`), and
            "n_unstable_in_continuum": sum(bool(m.nu.real < edges[m.parity]) for m in unstable),  # ... these were found
            "scanned_by_class": scanned,  # real ν there scanned for smooth eigenfunctions: complete there, real ν
            "complex_scanned_up_to": {p: high - low for p, (low, high) in scanned.items()} if self.complex_scan else {},
            "n_found_by_scan": by_scan,  # modes there the dense eigenvalues missed
            "scan_median_by_class": medians,  # σ over the samples, away from modes
            "scan_not_smooth": rough,  # deep on both grids, but the eigenfunction fails the rate test: not counted
            "candidates_in_continuum": [[m.nu.real, m.nu.imag] for m in in_continuum],  # candidates, not counted
            "grid_artefacts_up_to": artefacts,  # L's largest local rate: discarded there
            "symmetry_modes": {m.symmetry: m.nu.real for m in modes if m.symmetry},
            "symmetry_modes_missing": [s.name for c in analysed for s in _missing(c, modes)],
            "untrusted_classes": [c.parity for c in analysed if _missing(c, modes)],  # their counts are NaN
            "n_reported": len(modes),
            "n_discarded": discarded,
            "grid_points": [self.coarse.grid.points, self.fine.grid.points],
            "interval": [self.fine.grid.left, self.fine.grid.right],  # in s = log y
            equation.scalar_name: lam,
            "max_error": max((m.error for m in modes), default=None),
            "wall_time_s": time.perf_counter() - started,
        }
        return Spectrum(modes, counts, SHOWN, "s = log y", [], _summary(counts, [c.parity for c in analysed]))

    def _modes(self, perturbations: PerturbationClass, lam: float) -> tuple[list[Mode], int, float]:
        """One class's modes (eigenvalues with Re ν > 0 on both grids whose eigenfunctions are smooth and decay),
        how many were discarded, and how far its grid artefacts reach. Below the class's `continuum_edge` every ν
        is an eigenvalue of L on decaying functions, with a non-smooth eigenfunction: the dense matrix is far from
        normal there, and its eigenvalues need not come near a genuine mode although the mode holds on the grid to
        round-off (measured: gCLM's translation at a = -0.1; an even mode of gCLM's first unstable branch found at
        a = -0.6 ... -0.41 and not at -0.7 or -0.31). A mode found there passes every test and is genuine; the
        count there is a lower bound, complete only above the edge."""
        (coarse_nu, _, coarse_reach), (nu, vectors, fine_reach) = (
            _spectrum(solve, lam, perturbations) for solve in (self.coarse, self.fine)
        )
        modes, discarded = [], 0
        for i in np.argsort(-nu.real):
            if nu[i].real <= 0:
                break
            error = float(np.min(np.abs(coarse_nu - nu[i])))
            smooth = _smooth_and_decaying(self.fine, vectors[:, i], perturbations.rate_tolerance(nu[i].real))
            if not _grids_agree(error, nu[i]) or not smooth:
                discarded += 1
                continue
            values = self._shown(vectors[:, i])
            modes.append(Mode(complex(nu[i]), error, perturbations.parity, values, symmetry=perturbations.named(nu[i])))
        return modes, discarded, max(coarse_reach, fine_reach)

    def _scannable(self) -> bool:
        """Scanned where asked, on dense grids that reach SMOOTH_ROWS points below SMOOTH_CUT."""
        reach = min(int(np.sum(solve.grid.s < SMOOTH_CUT)) for solve in (self.coarse, self.fine))
        return self.scan and self.fine.grid.points <= DENSE_POINTS and reach >= SMOOTH_ROWS

    def _scanned(
        self, perturbations: PerturbationClass, found: list[Mode]
    ) -> tuple[list[Mode], list[Mode], float, list[float]]:
        """Between the class's resolved bound and its continuum edge: the modes the dense eigenvalues `found` there,
        each real one's error bar widened to its distance from σ's minimum beside it (below); the real modes the
        eigenvalues missed, the local minima of the fine grid's `SmoothResidual`, each deep (SCAN_DEPTH) on both
        grids (the two grids' difference its error) with a smooth, decaying eigenfunction; the median of σ over the
        samples (what σ is away from modes); and the ν of minima that pass all but the eigenfunction's test.

        Where a mode's tail decays slowly the interval truncates it (both grids alike, so their difference does not
        see it): the dense eigenvalue, exact for the truncated L, and σ's minimum, which also asks the smoothness
        rows, then part by about the truncation's effect on ν (measured: gCLM's even mode of the 1st unstable branch,
        3.6e-5 at a = -0.8, 1.6e-6 at -0.7, where each pair agrees between grids to 1e-7), and the error bar says so.
        For a mode that decays fast the two agree to round-off."""
        low, high = perturbations.resolved_above, perturbations.continuum_edge
        step = (high - low) / SCAN_STEPS
        nus = low + step * np.arange(-1, SCAN_STEPS + 2)

        def residual(solve: ProfileSolve) -> SmoothResidual:
            return SmoothResidual(perturbations.operator(solve.q, solve.lam, solve.grid), solve.grid)

        fine, coarse = residual(self.fine), None  # the coarse grid's only once a minimum is to be confirmed
        sigma = np.array([fine.least(nu)[0] for nu in nus])
        inside = [m.nu.imag == 0 and low < m.nu.real <= high for m in found]
        found = [self._beside_minimum(fine, m, step) if there else m for m, there in zip(found, inside)]
        modes, failed = [], []
        for i in range(1, len(nus) - 1):
            if not sigma[i] < sigma[i - 1] or not sigma[i] <= sigma[i + 1]:
                continue
            nu, least = fine.minimum(nus[i - 1], nus[i + 1])
            if not low < nu <= high or not fine.deep(nu, least, step):
                continue
            if any(_grids_agree(abs(m.nu - nu), nu) for m in found):  # the eigenvalues have it
                continue
            coarse = coarse or residual(self.coarse)
            coarse_nu, coarse_least = coarse.minimum(nu - step, nu + step)
            error = abs(coarse_nu - nu)
            if not coarse.deep(coarse_nu, coarse_least, step) or not _grids_agree(error, nu):
                continue
            vector = fine.least(nu)[1]
            if not _smooth_and_decaying(self.fine, vector, perturbations.rate_tolerance(nu)):
                failed.append(nu)
                continue
            values, symmetry = self._shown(vector), perturbations.named(nu)
            modes.append(Mode(complex(nu), error, perturbations.parity, values, symmetry=symmetry, found_by="scan"))
        if self.complex_scan:
            known = [m.nu for m in found + modes]
            for nu, error in plane_minima(fine, lambda: coarse or residual(self.coarse), low, high, known):
                vector = fine.least(nu)[1]
                if not _smooth_and_decaying(self.fine, vector, perturbations.rate_tolerance(nu.real)):
                    failed.append(nu)
                    continue
                for root, chi in ((nu, vector), (nu.conjugate(), vector.conj())):  # L is real: the pair
                    modes.append(Mode(root, error, perturbations.parity, self._shown(chi), found_by="scan"))
        return found, modes, float(np.median(sigma)), failed

    @staticmethod
    def _beside_minimum(fine: SmoothResidual, mode: Mode, step: float) -> Mode:
        """The mode with its error at least its distance from σ's minimum within a scan step of it."""
        nu, _ = fine.minimum(mode.nu.real - step, mode.nu.real + step)
        return replace(mode, error=max(mode.error, abs(nu - mode.nu.real)))

    def _shown(self, vector: np.ndarray) -> np.ndarray:
        """The eigenfunction (real part, max 1) on GRID points of SHOWN in s."""
        values = np.interp(np.linspace(*SHOWN, GRID), self.fine.grid.s, vector.real)
        return values / np.max(np.abs(values))


def _grids_agree(difference: float, nu: complex) -> bool:
    """The same eigenvalue on both grids: within GRIDS_AGREE of max(1, |ν|)."""
    return difference <= GRIDS_AGREE * max(1.0, abs(nu))


def _missing(perturbations: PerturbationClass, modes: list[Mode]) -> list[Symmetry]:
    """The class's symmetry modes above its resolved bound that were not found. Either the grids do not resolve
    eigenfunctions, or the mode lies inside the continuum of non-smooth ones (Re ν < 2c₀ for gCLM's even class near
    a = 0), where the dense eigenvalues are those of a far non-normal matrix and need not come near it although the
    exact mode satisfies L χ = ν χ on the grid to round-off: measured, gCLM's translation at a = -0.1. Either way
    the class's count is not one."""
    found = {m.symmetry for m in modes}
    return [s for s in perturbations.symmetries if s.nu > perturbations.resolved_above and s.name not in found]


def _spectrum(solve: ProfileSolve, lam: float, perturbations: PerturbationClass):
    """L's eigenvalues and eigenvectors in a class on the solve's grid (all of them up to DENSE_POINTS, past it the
    NEAREST to SHIFT, the profile's own class only), and L's largest local rate: up to where its artefacts reach."""
    if solve.grid.points <= DENSE_POINTS:
        nu, vectors = np.linalg.eig(perturbations.operator(solve.q, solve.lam, solve.grid))
    else:
        nu, vectors = _nearest_spectrum(solve)
    return nu, vectors, float(perturbations.local_rate(solve.q, lam, solve.grid).max())


def _summary(counts: dict, parities: list[str]) -> str:
    """The console's line: counted right of where smooth and non-smooth eigenfunctions are told apart."""
    bounds = ", ".join(f"{parity} Re ν > {counts['resolved_above_by_class'][parity]:.4f}" for parity in parities)
    edges = ", ".join(f"{parity} {counts['continuum_edge_by_class'][parity]:.4f}" for parity in parities)
    complete = ", ".join(f"{parity} Re ν > {counts['complete_above_by_class'][parity]:.4f}" for parity in parities)
    left = f"; {', '.join(counts['classes_not_analysed'])} class not analysed" if counts["classes_not_analysed"] else ""
    per_class = ", ".join(f"{counts['n_unstable_' + parity]} {parity}" for parity in parities)
    rough = counts["scan_not_smooth"]
    tails = "".join(
        f"; a mode of the {parity} class below Re ν = {above:.4f} may be missed, its tail too long for the interval "
        f"[{counts['interval'][0]:g}, {counts['interval'][1]:g}] (--right widens it)"
        for parity, above in counts["tail_shown_above_by_class"].items()
        if above > counts["resolved_above_by_class"][parity]
    )
    scanned = (
        f"real ν were scanned for smooth eigenfunctions ({counts['n_found_by_scan']} found the eigenvalues missed"
        + (
            f"; {len(rough)} more whose eigenfunction fails the rate test, not counted: a slowly decaying tail the "
            "interval truncates looks so"
            if rough
            else ""
        )
        + (
            ") and complex ν above that stretch up to Im ν = "
            + ", ".join(f"{reach:.4f} ({parity})" for parity, reach in counts["complex_scanned_up_to"].items())
            + ", beyond which complex modes may be missed"
            if counts["complex_scanned_up_to"]
            else ") and complex modes may be missed"
        )
        if counts["scanned_by_class"]
        else "more may be missed"
    )
    return (
        f"unstable (symmetries excluded) with {bounds}: {counts['n_unstable']} "
        f"({per_class}){left}, of which {counts['n_unstable_in_continuum']} below the continuum's edge ({edges}), "
        f"where {scanned}{tails}; complete for {complete}; at or below the first bound a smooth "
        f"eigenfunction is not told from a non-smooth one: {len(counts['candidates_in_continuum'])} candidates "
        f"there, not counted; {counts['n_reported']} converged, {counts['n_discarded']} discarded; "
        f"{counts['wall_time_s']:.1f} s"
    )
