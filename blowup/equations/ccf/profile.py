"""Self-similar profiles of the Córdoba-Córdoba-Fontelos model θ_t + (Hθ) θ_x = 0, by Newton on a log grid.

With θ = (1 - t)^λ Θ(x / (1 - t)^(1+λ)) the profile solves -λΘ + ((1+λ) y + HΘ) Θ' = 0 on the whole line.
Θ is even (θ even is preserved by the equation) and Θ(0) = 0 (the equation at y = 0). In s = log y with
q = Θ / y (`blowup.equations.ccf.hilbert`), dividing by y:

    R(q, λ) = -λ q + (1 + λ + T q) (q + q_s) = 0,      T q = HΘ / y.

Near y = 0 the transport speed (1+λ) y + HΘ vanishes; with c = 1 + λ + T q(-∞) the equation leaves q ~ e^(ps),
p = λ / c - 1, that is Θ ~ |y|^(1+p). Smoothness at the origin (Θ ~ y²) is the scalar condition c = λ/2,
T q(-∞) = -(1 + λ/2): it selects λ, as smoothness selects λ_k for Burgers; without it every λ near a profile
has a non-smooth one. As s → +∞, q ~ e^((b-1)s) with b = λ/(1+λ): Θ grows like |y|^b. The scaling family
Θ_μ(y) = μ Θ(y/μ) is translation in s; the normalisation puts the maximum of q at y = 1 (q_s(0) = 0).

Unknowns q on the grid and λ; equations: R at every point, smoothness, normalisation. Gauss-Newton on
this consistent over-determined system converges quadratically from a rough start in the profile's basin;
from outside it, it can settle on a least-squares minimum that solves nothing, so convergence also asks that
every equation hold.

The basins of the unstable profiles are narrow, but the non-smooth family (λ fixed, no smoothness row) is
easy to follow in λ, and its smoothness defect changes sign at each profile: `find_profile` follows it from
any start to the nearest sign change in a bracket and hands that member to Newton. The unstable profiles have
steep fronts where the transport speed 1 + λ + Tq dips towards zero; the grid's spacing must resolve them, or
their error wraps around the periodic grid and leaves q a plateau at both ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from blowup.equations.ccf.hilbert import LogGrid, derivative, hilbert_over_y, interpolate, operator_matrices
from blowup.solvers.gauss_newton import LeastSquares, Linearisation, Termination, full_step, iterate

STEP_TOLERANCE = 1e-13  # Newton stops when no unknown moves this much
RESIDUAL_TOLERANCE = 1e-10  # ... and has converged only if every equation then holds to this
MAX_STEPS = 30  # Newton converges quadratically inside a basin: many more steps than that only delay a failure
NEWTON_TERMINATION = Termination(MAX_STEPS, STEP_TOLERANCE, strict=True)
FAMILY_TOLERANCE = 1e-5  # a non-smooth member on a scanning grid: only the sign of its defect is used
ROOT_STEPS = 8  # regula falsi on the defect: a start for Newton, which then pins λ to round-off


def residual(q: np.ndarray, lam: float, grid: LogGrid) -> np.ndarray:
    """R = -λq + (1 + λ + Tq)(q + q_s): the profile equation divided by y, at the grid points."""
    return -lam * q + (1 + lam + hilbert_over_y(q, grid)) * (q + derivative(q, grid))


def smoothness_defect(q: np.ndarray, lam: float, grid: LogGrid) -> float:
    """T q(-∞) + 1 + λ/2 (read at the grid's left end): zero exactly when Θ is smooth (~ y²) at the origin."""
    return float(hilbert_over_y(q, grid)[0] + 1 + lam / 2)


@dataclass
class ProfileSolve:
    lam: float
    q: np.ndarray
    grid: LogGrid
    steps: int
    converged: bool

    def offgrid_residual_max(self, points: int | None = None) -> float:
        """max |R| of the trigonometric interpolant on a finer grid (`points`, odd; default 3x): what the residual
        is between the points Newton made it vanish at."""
        fine_q, fine = interpolate(self.q, self.grid, points or 3 * self.grid.points)
        return float(np.abs(residual(fine_q, self.lam, fine)).max())


def linearisation(q: np.ndarray, lam: float, hilbert: np.ndarray, diff: np.ndarray):
    """Tq, q_s and the dense ∂R/∂q: Newton's Jacobian, and minus the stability operator (`stability`)."""
    tq, qs = hilbert @ q, diff @ q
    identity = np.eye(len(q))
    return tq, qs, -lam * identity + (q + qs)[:, None] * hilbert + (1 + lam + tq)[:, None] * (identity + diff)


def newton(
    q: np.ndarray, lam: float, grid: LogGrid, smooth: bool = True, tolerance: float = RESIDUAL_TOLERANCE
) -> ProfileSolve:
    """Gauss-Newton on (residual, smoothness, normalisation) for q on `grid` and λ, from (q, λ). With
    smooth=False, λ stays fixed and the smoothness row is dropped: the family's non-smooth member at λ.

    Full steps (`full_step`), each a least-squares solve by pivoted QR (LAPACK's gelsy: faster than an SVD).
    A least-squares minimum need not be a solution, so converged also asks that every equation held to
    `tolerance` at the start of the last step."""
    n = grid.points

    def apply(point: tuple[np.ndarray, float], update: np.ndarray) -> tuple[np.ndarray, float]:
        return point[0] + update[:n], point[1] + (update[n] if smooth else 0.0)

    step = full_step(lambda jac: LeastSquares(jac, _qr_lstsq), apply)
    outcome = iterate((q, lam), _ProfileSystem(grid, smooth).linearise, step, NEWTON_TERMINATION)
    q, lam = outcome.point
    converged = outcome.reason == "converged" and bool(np.abs(outcome.linearisation.residual).max() < tolerance)
    return ProfileSolve(lam, q, grid, outcome.steps, converged)


def _qr_lstsq(jac: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    return scipy.linalg.lstsq(jac, rhs, lapack_driver="gelsy", check_finite=False)[0]


class _ProfileSystem:
    """Newton's equations on a grid: R at every point, the normalisation q_s(0) = 0 and, if `smooth`, the
    smoothness condition, in the unknowns q (and λ if `smooth`)."""

    def __init__(self, grid: LogGrid, smooth: bool):
        self.hilbert, self.diff = operator_matrices(grid)
        self.n, self.centre = grid.points, int(np.argmin(np.abs(grid.s)))
        self.smooth = smooth

    def linearise(self, point: tuple[np.ndarray, float]) -> Linearisation | None:
        """The equations and their Jacobian at (q, λ); None once they are not finite (a diverged start)."""
        (q, lam), n, centre, hilbert, smooth = point, self.n, self.centre, self.hilbert, self.smooth
        tq, qs, dr_dq = linearisation(q, lam, hilbert, self.diff)
        rows = [-lam * q + (1 + lam + tq) * (q + qs), [qs[centre]]]
        jac = np.zeros((n + 1 + smooth, n + 1 if smooth else n))
        jac[:n, :n], jac[n, :n] = dr_dq, self.diff[centre]
        if smooth:
            rows.append([tq[0] + 1 + lam / 2])
            jac[:n, n] = qs  # ∂R/∂λ = -q + (q + q_s)
            jac[n + 1, :n], jac[n + 1, n] = hilbert[0], 0.5
        return Linearisation(np.concatenate(rows), jac) if np.all(np.isfinite(jac)) else None


@dataclass
class FamilyScan:
    """What following the non-smooth family found: the λ range it was followed over (None: Newton could not
    enter it) and, if its smoothness defect changed sign there, the member where it did, narrowed."""

    covered: tuple[float, float] | None
    smooth: ProfileSolve | None


def smooth_in_bracket(
    q: np.ndarray, lam: float, grid: LogGrid, bracket: tuple[float, float], step: float
) -> FamilyScan:
    """The family's member nearest to λ whose smoothness defect vanishes, searched within `bracket`: a rough
    start for Newton with the smoothness row.

    The non-smooth family (`newton(smooth=False)`) is followed from (q, λ) in steps of `step` (the last one to
    the bracket's edge), upwards and downwards in turn, until the defect changes sign between two members;
    regula falsi then narrows that interval. A direction ends at the bracket's edge or where Newton loses the
    family. Where the family cannot be entered at λ (a start outside Newton's basin: low λ's members have
    steep fronts that a rough start misses), it is entered at the bracket's upper end from `rough_profile`,
    whose members are gentler. The grid only has to give the defect's sign: members are accepted at
    FAMILY_TOLERANCE, not at the profile's tolerance."""
    lo, hi = bracket

    def member(start: np.ndarray, at: float) -> ProfileSolve | None:
        found = newton(start, at, grid, smooth=False, tolerance=FAMILY_TOLERANCE)
        return found if found.converged else None

    def defect(solve: ProfileSolve) -> float:
        return smoothness_defect(solve.q, solve.lam, grid)

    first = member(q, min(max(lam, lo), hi)) or member(rough_profile(hi, grid), hi)
    if first is None:
        return FamilyScan(None, None)
    ends = {+1: first, -1: first}
    covered = [first.lam, first.lam]
    while ends:
        for direction in list(ends):
            last = ends[direction]
            nxt = min(max(last.lam + direction * step, lo), hi)
            found = member(last.q, nxt) if nxt != last.lam else None
            if found is None:
                del ends[direction]
                continue
            covered = [min(covered[0], nxt), max(covered[1], nxt)]
            if np.sign(defect(found)) != np.sign(defect(last)):
                return FamilyScan(tuple(covered), _regula_falsi(last, found, member, defect))
            ends[direction] = found
    return FamilyScan(tuple(covered), None)


def _regula_falsi(a: ProfileSolve, b: ProfileSolve, member, defect) -> ProfileSolve:
    """Narrow [a.λ, b.λ], across which the defect changes sign, to ROOT_STEPS secant steps (Illinois variant)."""
    fa, fb = defect(a), defect(b)
    for _ in range(ROOT_STEPS):
        at = b.lam - fb * (b.lam - a.lam) / (fb - fa)
        c = member((a if abs(at - a.lam) < abs(at - b.lam) else b).q, at)
        if c is None:
            break
        fc = defect(c)
        if np.sign(fc) == np.sign(fb):
            fa /= 2  # Illinois: the end that stays is weighed down, so both ends move
        else:
            a, fa = b, fb
        b, fb = c, fc
        if abs(b.lam - a.lam) < 1e-9:
            break
    return b


def find_profile(
    start: Callable[[LogGrid], np.ndarray],
    lam: float,
    bracket: tuple[float, float],
    interval: tuple[float, float],
    scan_spacing: float,
    scan_step: float,
    newton_spacing: tuple[float, float],
) -> tuple[FamilyScan, ProfileSolve, ProfileSolve]:
    """The smooth profile in `bracket` nearest to (start, λ), as a run finds it: the family followed to where it
    turns smooth on a scanning grid, then Newton on the coarse and the fine grid of `newton_spacing` over
    `interval`; the fine solve's λ minus the coarse one's is the error estimate. `start(grid)` gives the
    starting q on a grid (a network's, or `rough_profile`'s)."""
    scan_grid = LogGrid.with_spacing(*interval, scan_spacing)
    scan = smooth_in_bracket(start(scan_grid), lam, scan_grid, bracket, scan_step)
    coarse_grid, fine_grid = (LogGrid.with_spacing(*interval, h) for h in newton_spacing)
    if scan.smooth is None:
        nothing = ProfileSolve(lam, start(coarse_grid), coarse_grid, 0, False)
        return scan, nothing, nothing
    coarse = newton(interpolate(scan.smooth.q, scan_grid, coarse_grid.points)[0], scan.smooth.lam, coarse_grid)
    return scan, coarse, refine(coarse, fine_grid) if coarse.converged else coarse


def rough_profile(lam: float, grid: LogGrid) -> np.ndarray:
    """A start with the right ends and size: Θ = Re (1 - iy)^b - 1 (~ -b(b-1)/2 y² at 0, ~ |y|^b at ∞),
    scaled so that its T q(-∞) meets the smoothness condition at this λ, its maximum moved to s = 0."""
    b = lam / (1 + lam)
    y = np.exp(grid.s)
    small = y < 1e-6  # the closed form cancels there; its Taylor term instead
    theta = np.where(small, b * (1 - b) / 2 * y**2, np.real((1 - 1j * y) ** b) - 1)
    q = theta / y
    q = np.interp(grid.s, grid.s - grid.s[np.argmax(q)], q, left=0.0, right=0.0)
    return q * (1 + lam / 2) / (2 / np.pi * q.sum() * grid.spacing)


def solve_profile(lam: float, grid: LogGrid, q: np.ndarray | None = None) -> ProfileSolve:
    """The profile nearest to the start (`rough_profile(lam)` unless q is given) on `grid`."""
    return newton(rough_profile(lam, grid) if q is None else q, lam, grid)


def refine(solve: ProfileSolve, grid: LogGrid) -> ProfileSolve:
    """The same profile on another grid (same interval, more points), started from `solve` interpolated."""
    if (grid.left, grid.right) != (solve.grid.left, solve.grid.right) or grid.points <= solve.grid.points:
        raise ValueError(f"refine needs more points on the same interval, got {grid} after {solve.grid}")
    q, _ = interpolate(solve.q, solve.grid, grid.points)
    return newton(q, solve.lam, grid)
