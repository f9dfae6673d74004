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

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import LinearOperator

from blowup.equations.ccf.hilbert import (
    LogGrid,
    derivative,
    hilbert_over_y,
    hilbert_over_y_transpose,
    interpolate,
    operator_matrices,
    shifted_derivative_inverse,
)
from blowup.solvers.gauss_newton import (
    KrylovLeastSquares,
    LeastSquares,
    Linearisation,
    Termination,
    full_step,
    iterate,
)

STEP_TOLERANCE = 1e-13  # Newton stops when no unknown moves this much
RESIDUAL_TOLERANCE = 1e-10  # ... and has converged only if every equation then holds to this
MAX_STEPS = 30  # Newton converges quadratically inside a basin: many more steps than that only delay a failure
NEWTON_TERMINATION = Termination(MAX_STEPS, STEP_TOLERANCE, strict=True)
FAMILY_TOLERANCE = 1e-5  # a non-smooth member on a scanning grid: only the sign of its defect is used
KRYLOV_TOLERANCE = 1e-12  # LSMR's relative tolerances: far below what a Newton step needs to keep converging
KRYLOV_ITERATIONS = 500  # several times what a preconditioned solve near a profile takes (results/ccf_scaling.csv)
DIVERGED = 1e3  # Newton gives up once a residual grows this many times past the start's largest (at least 1)
MIN_SPEED = 1e-3  # the preconditioner's transport speed is kept this far from zero
STEP_HALVINGS = 3  # following the family, a lost member is tried again at half the step, this many times
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
    krylov_iterations: list[int] = field(default_factory=list)  # LSMR's per Newton step (matrix-free solves)

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
    q: np.ndarray,
    lam: float,
    grid: LogGrid,
    smooth: bool = True,
    tolerance: float = RESIDUAL_TOLERANCE,
    dense: bool = False,
) -> ProfileSolve:
    """Gauss-Newton on (residual, smoothness, normalisation) for q on `grid` and λ, from (q, λ). With
    smooth=False, λ stays fixed and the smoothness row is dropped: the family's non-smooth member at λ.

    Full steps, each the least-squares solution of the linearised equations: matrix-free by LSMR
    (`KrylovLeastSquares`, preconditioned by the transport part: O(N log N) per iteration, O(N) memory), or
    with dense=True by pivoted QR of the dense Jacobian (LAPACK's gelsy; O(N³), the reference the matrix-free
    solve is checked and timed against). Both solve the same equations, so they converge to the same point. A
    least-squares minimum need not be a solution, so converged also asks that every equation held to
    `tolerance` at the start of the last step."""
    n, system = grid.points, _ProfileSystem(grid, smooth)
    iterations: list[int] = []

    def apply(point: tuple[np.ndarray, float], update: np.ndarray) -> tuple[np.ndarray, float]:
        return point[0] + update[:n], point[1] + (update[n] if smooth else 0.0)

    def krylov_step(point, lin: Linearisation):
        descent = KrylovLeastSquares(lin.jacobian, system.preconditioner(point), KRYLOV_TOLERANCE, KRYLOV_ITERATIONS)
        d = descent.solve(lin.residual)
        iterations.extend(descent.iterations)
        return d, apply(point, d)

    if dense:
        linearise, step = system.dense_linearise, full_step(lambda jac: LeastSquares(jac, _qr_lstsq), apply)
    else:
        linearise, step = system.linearise, krylov_step
    outcome = iterate((q, lam), linearise, step, NEWTON_TERMINATION)
    q, lam = outcome.point
    converged = outcome.reason == "converged" and bool(np.abs(outcome.linearisation.residual).max() < tolerance)
    return ProfileSolve(lam, q, grid, outcome.steps, converged, iterations)


def _qr_lstsq(jac: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    return scipy.linalg.lstsq(jac, rhs, lapack_driver="gelsy", check_finite=False)[0]


class _TransportProducts:
    """∂R/∂q at (q, λ) by FFTs: v ↦ -λv + (q + q_s) Tv + c (v + v_s), c = 1 + λ + Tq, and its transpose, with the
    intermediate Tv and v_s that Newton's extra rows read off."""

    def __init__(self, q: np.ndarray, lam: float, grid: LogGrid):
        self.lam, self.grid = lam, grid
        self.tq, self.qs = hilbert_over_y(q, grid), derivative(q, grid)
        self.speed, self.slope = 1 + lam + self.tq, q + self.qs
        self.residual = -lam * q + self.speed * self.slope

    def apply(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tv, vs = hilbert_over_y(v, self.grid), derivative(v, self.grid)
        return -self.lam * v + self.slope * tv + self.speed * (v + vs), tv, vs

    def transpose(self, y: np.ndarray, plus_hilbert: np.ndarray = 0.0, plus_derivative: np.ndarray = 0.0):
        """(∂R/∂q)ᵀ y, plus Tᵀ plus_hilbert and (d/ds)ᵀ plus_derivative (Newton's extra rows, transposed)."""
        v = -self.lam * y + hilbert_over_y_transpose(self.slope * y + plus_hilbert, self.grid) + self.speed * y
        return v - derivative(self.speed * y + plus_derivative, self.grid)  # d/ds is antisymmetric


def jacobian_in_q(q: np.ndarray, lam: float, grid: LogGrid) -> tuple[LinearOperator, np.ndarray]:
    """∂R/∂q as a LinearOperator (the stability operator is its negative) and the transport speed c."""
    products, n = _TransportProducts(q, lam, grid), grid.points
    operator = LinearOperator((n, n), matvec=lambda v: products.apply(v)[0], rmatvec=products.transpose, dtype=float)
    return operator, products.speed


class _ProfileSystem:
    """Newton's equations on a grid: R at every point, the normalisation q_s(0) = 0 and, if `smooth`, the
    smoothness condition, in the unknowns q (and λ if `smooth`). Their Jacobian is matrix-free: products with it
    and its transpose take a few FFTs (O(N log N)), where the dense one (`linearisation`) takes O(N²) memory and
    its least-squares solve O(N³) time."""

    def __init__(self, grid: LogGrid, smooth: bool):
        self.grid, self.smooth = grid, smooth
        self.n, self.centre = grid.points, int(np.argmin(np.abs(grid.s)))
        self.bound: float | None = None  # DIVERGED times the first point's largest residual (at least 1)

    def diverged(self, residual: np.ndarray) -> bool:
        """Residuals not finite, or grown DIVERGED-fold past the start's: Newton has left every basin, and more
        steps (each a Krylov solve that no longer converges) would only cost time."""
        size = float(np.abs(residual).max())
        if self.bound is None:
            self.bound = DIVERGED * max(1.0, size)
        return not size <= self.bound

    def linearise(self, point: tuple[np.ndarray, float]) -> Linearisation | None:
        """The equations and their Jacobian (a LinearOperator) at (q, λ); None once they diverged."""
        (q, lam), n, centre, smooth = point, self.n, self.centre, self.smooth
        products = _TransportProducts(q, lam, self.grid)
        rows = [products.residual, [products.qs[centre]], [products.tq[0] + 1 + lam / 2] if smooth else []]
        residual = np.concatenate(rows)
        if self.diverged(residual):
            return None

        def matvec(x: np.ndarray) -> np.ndarray:
            dr, tv, vs = products.apply(x[:n])
            if not smooth:
                return np.concatenate([dr, [vs[centre]]])
            return np.concatenate([dr + x[n] * products.qs, [vs[centre]], [tv[0] + 0.5 * x[n]]])  # ∂R/∂λ = q_s

        def rmatvec(z: np.ndarray) -> np.ndarray:
            y, at_centre, at_left = z[:n], np.zeros(n), np.zeros(n)
            at_centre[centre] = z[n]
            if smooth:
                at_left[0] = z[n + 1]
            v = products.transpose(y, at_left, at_centre)
            return np.concatenate([v, [products.qs @ y + 0.5 * z[n + 1]]]) if smooth else v

        shape = (len(residual), n + smooth)
        return Linearisation(residual, LinearOperator(shape, matvec=matvec, rmatvec=rmatvec, dtype=float))

    def dense_linearise(self, point: tuple[np.ndarray, float]) -> Linearisation | None:
        """The same equations with the dense Jacobian (`linearisation`): O(N²) memory."""
        (q, lam), n, centre, smooth = point, self.n, self.centre, self.smooth
        hilbert, diff = operator_matrices(self.grid)
        tq, qs, dr_dq = linearisation(q, lam, hilbert, diff)
        rows = [-lam * q + (1 + lam + tq) * (q + qs), [qs[centre]]]
        jac = np.zeros((n + 1 + smooth, n + 1 if smooth else n))
        jac[:n, :n], jac[n, :n] = dr_dq, diff[centre]
        if smooth:
            rows.append([tq[0] + 1 + lam / 2])
            jac[:n, n] = qs  # ∂R/∂λ = -q + (q + q_s)
            jac[n + 1, :n], jac[n + 1, n] = hilbert[0], 0.5
        residual = np.concatenate(rows)
        return None if self.diverged(residual) or not np.all(np.isfinite(jac)) else Linearisation(residual, jac)

    def preconditioner(self, point: tuple[np.ndarray, float]) -> LinearOperator:
        """`transport_preconditioner` at (q, λ), λ's column left unscaled."""
        q, lam = point
        return transport_preconditioner(1 + lam + hilbert_over_y(q, self.grid), self.grid, unscaled=self.smooth)


def transport_preconditioner(speed: np.ndarray, grid: LogGrid, unscaled: int = 0) -> LinearOperator:
    """M⁻¹ for M = c (I + d/ds), the transport part of ∂R/∂q, whose derivative is its only unbounded part,
    inverted exactly by one FFT (and `unscaled` more unknowns passed through). c = 1 + λ + Tq is kept from
    zero, where a start far from a profile may take it."""
    speed = np.where(np.abs(speed) < MIN_SPEED, np.copysign(MIN_SPEED, speed), speed)
    n = grid.points

    def matvec(x: np.ndarray) -> np.ndarray:
        return np.concatenate([shifted_derivative_inverse(x[:n] / speed, grid), x[n:]])

    def rmatvec(x: np.ndarray) -> np.ndarray:
        return np.concatenate([shifted_derivative_inverse(x[:n], grid, sign=-1.0) / speed, x[n:]])

    return LinearOperator((n + unscaled, n + unscaled), matvec=matvec, rmatvec=rmatvec, dtype=float)


@dataclass
class FamilyScan:
    """What following the non-smooth family found: the λ range it was followed over (None: Newton could not
    enter it) and, if its smoothness defect changed sign there, the member where it did, narrowed."""

    covered: tuple[float, float] | None
    smooth: ProfileSolve | None
    lowest: ProfileSolve | None = None  # the member at the covered range's lower end


def family_measures(solve: ProfileSolve) -> dict[str, float]:
    """What the issue asks of a family member, and what shows where the family goes: λ, the exponent p of
    Θ ~ |y|^(1+p) at the origin (1: smooth), the smoothness defect, the least transport speed c = 1 + λ + Tq
    (the front steepens as it falls), the largest |Ω| = |Θ'| = |q + q_s|, and the largest residual on the grid."""
    grid, q, lam = solve.grid, solve.q, solve.lam
    speed = 1 + lam + hilbert_over_y(q, grid)
    return {
        "lambda": lam,
        "exponent_p": lam / speed[0] - 1,
        "smoothness_defect": smoothness_defect(q, lam, grid),
        "speed_min": float(speed.min()),
        "omega_max": float(np.abs(q + derivative(q, grid)).max()),
        "residual_max": float(np.abs(residual(q, lam, grid)).max()),
    }


def smooth_in_bracket(
    q: np.ndarray, lam: float, grid: LogGrid, bracket: tuple[float, float], step: float, entry: float | None = None
) -> FamilyScan:
    """The family's member nearest to λ whose smoothness defect vanishes, searched within `bracket`: a rough
    start for Newton with the smoothness row.

    The non-smooth family (`newton(smooth=False)`) is followed from (q, λ) in steps of `step` (the last one to
    the bracket's edge; halved where Newton loses the family), upwards and downwards in turn, until the defect
    changes sign between two members; regula falsi then narrows that interval. A direction ends at the
    bracket's edge or where Newton loses the family. Where the family cannot be entered at λ (a start outside
    Newton's basin: low λ's members have steep fronts that a rough start misses), it is entered at `entry`
    (default: the bracket's upper end) from `rough_profile`, whose members are gentler there, and followed
    down to the bracket's upper end. That scan does not depend on (q, λ): it is done once per grid, bracket,
    step and entry (a run asks for it at every acceptance check). The grid only has to give the defect's sign:
    members are accepted at FAMILY_TOLERANCE, not at the profile's tolerance."""
    lo, hi = bracket
    first = _member(q, min(max(lam, lo), hi), grid)
    return _follow(first, grid, bracket, step) if first is not None else _scan_from_entry(grid, bracket, step, entry)


def _member(start: np.ndarray, at: float, grid: LogGrid) -> ProfileSolve | None:
    found = newton(start, at, grid, smooth=False, tolerance=FAMILY_TOLERANCE)
    return found if found.converged else None


@functools.lru_cache(maxsize=2)
def _scan_from_entry(grid: LogGrid, bracket: tuple[float, float], step: float, entry: float | None) -> FamilyScan:
    hi = bracket[1]
    at = hi if entry is None else entry
    solve = _member(rough_profile(at, grid), at, grid)
    while solve is not None and solve.lam > hi:  # down to the bracket, no sign looked at on the way
        solve = _member(solve.q, max(solve.lam - step, hi), grid)
    return _follow(solve, grid, bracket, step) if solve is not None else FamilyScan(None, None)


def _follow(first: ProfileSolve, grid: LogGrid, bracket: tuple[float, float], step: float) -> FamilyScan:
    """From a member, both ways through the bracket to a sign change of the defect (`smooth_in_bracket`)."""
    lo, hi = bracket

    def member(start: np.ndarray, at: float) -> ProfileSolve | None:
        return _member(start, at, grid)

    def defect(solve: ProfileSolve) -> float:
        return smoothness_defect(solve.q, solve.lam, grid)

    def advance(last: ProfileSolve, direction: int) -> ProfileSolve | None:
        """The next member in a direction, the step halved (STEP_HALVINGS times at most) where Newton loses the
        family: its members change faster as their fronts steepen."""
        for halving in range(STEP_HALVINGS + 1):
            nxt = min(max(last.lam + direction * step / 2**halving, lo), hi)
            found = member(last.q, nxt) if nxt != last.lam else None
            if found is not None or nxt == last.lam:
                return found
        return None

    ends, lowest, covered = {+1: first, -1: first}, first, [first.lam, first.lam]
    while ends:
        for direction in list(ends):
            last = ends[direction]
            found = advance(last, direction)
            if found is None:
                del ends[direction]
                continue
            covered = [min(covered[0], found.lam), max(covered[1], found.lam)]
            lowest = found if found.lam < lowest.lam else lowest
            if np.sign(defect(found)) != np.sign(defect(last)):
                return FamilyScan(tuple(covered), _regula_falsi(last, found, member, defect), lowest)
            ends[direction] = found
    return FamilyScan(tuple(covered), None, lowest)


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
    entry: float | None = None,
) -> tuple[FamilyScan, ProfileSolve, ProfileSolve]:
    """The smooth profile in `bracket` nearest to (start, λ), as a run finds it: the family followed to where it
    turns smooth on a scanning grid, then Newton on the coarse and the fine grid of `newton_spacing` over
    `interval`; the fine solve's λ minus the coarse one's is the error estimate. `start(grid)` gives the
    starting q on a grid (a network's, or `rough_profile`'s); `entry` where the family is entered if not there
    (`smooth_in_bracket`)."""
    scan_grid = LogGrid.with_spacing(*interval, scan_spacing)
    scan = smooth_in_bracket(start(scan_grid), lam, scan_grid, bracket, scan_step, entry)
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
