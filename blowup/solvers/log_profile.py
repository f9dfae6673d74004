"""Self-similar profiles on a logarithmic grid whose exponent is selected by smoothness at the origin.

Nonlocal 1D blowup models (CCF, the generalised Constantin-Lax-Majda family) share one structure, which this
module solves once for every equation that states its own (`ProfileEquation`):

* the unknown u(s), s = log y, decays at both ends of a periodic grid (`blowup.solvers.hilbert`), and the
  profile equation is R(u, σ) = 0 at every point, σ the self-similar exponent (λ for CCF, α for gCLM);
* for every σ near a profile there is a solution that is smooth except at the origin (u ~ e^(κs) there with
  κ depending on σ): the non-smooth family. One scalar condition, the smoothness defect, vanishes only on the
  smooth member, and it selects σ, as smoothness selects λ_k for Burgers;
* the scaling family of the equation is translation in s: a normalisation u_s(0) = 0 fixes it;
* R's derivative in u has the principal part c(s)(I + d/ds) up to bounded terms (a transport operator),
  which one FFT inverts: the preconditioner that keeps Krylov iterations flat in the grid size.

Newton here is Gauss-Newton on the consistent over-determined system (R at every point, normalisation,
smoothness) in (u, σ): matrix-free (LSMR on products with J and Jᵀ, a few FFTs each: O(N log N) a product,
O(N) memory) or dense (Householder QR; O(N³), the reference the matrix-free one is checked against). A
least-squares minimum need not be a solution, so converged also asks that every equation holds.

Basins of unstable profiles are narrow, but the non-smooth family (σ fixed, no smoothness row) is easy to
follow in σ, and its defect changes sign at each profile: `find_profile` follows it from any start to the
nearest sign change in a bracket and hands that member to Newton.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.linalg
import scipy.optimize
from scipy.sparse.linalg import LinearOperator

from blowup.solvers.gauss_newton import (
    KrylovLeastSquares,
    LeastSquares,
    Linearisation,
    Termination,
    full_step,
    iterate,
)
from blowup.solvers.hilbert import (
    LogGrid,
    MappedLogGrid,
    approximate_shifted_inverse,
    compress,
    fast_odd_size,
    interpolate,
    operator_matrices,
    resample,
    slope_row,
    values_at,
)

STEP_TOLERANCE = 1e-13  # Newton stops when no unknown moves this much
RESIDUAL_TOLERANCE = 1e-10  # ... and has converged only if every equation then holds to this
MAX_STEPS = 30  # Newton converges quadratically inside a basin: many more steps than that only delay a failure
NEWTON_TERMINATION = Termination(MAX_STEPS, STEP_TOLERANCE, strict=True)
# A clustered grid's dense system is worse conditioned: its steps stall at 1e-13 .. 1e-12 (round-off) after the
# quadratic phase, where a uniform grid's reach 1e-14. A step below this there leaves the point at round-off.
CLUSTERED_TERMINATION = Termination(MAX_STEPS, 1e-11, strict=True)
FAMILY_TOLERANCE = 1e-5  # a non-smooth member on a scanning grid: only the sign of its defect is used
KRYLOV_TOLERANCE = 1e-12  # LSMR's relative tolerances: far below what a Newton step needs to keep converging
KRYLOV_ITERATIONS = 500  # several times what a preconditioned solve near a profile takes (results/ccf_scaling.csv)
DENSE_MAPPED_POINTS = 2401  # a mapped grid's Newton is dense (QR) up to this many points, matrix-free past it
DIVERGED = 1e3  # Newton gives up once a residual grows this many times past the start's largest (at least 1)
MIN_SPEED = 1e-3  # the preconditioner's transport speed is kept this far from zero
STEP_HALVINGS = 3  # following the family, a lost member is tried again at half the step, this many times
CLUSTER_WIDTH = 1 / 3  # a clustered grid's width at the front: this times the least transport speed there
PEAK_WIDTH = 2.0  # ... or, where narrower, this times the profile's own steepest scale, max |u| / max |u_s|
ROOT_STEPS = 8  # regula falsi on the defect: a start for Newton, which then pins σ to round-off
RESOLVED = 1e-9  # following a profile on clustered grids: the residual between grid points kept below this ...
GRID_GROWTH = 1.4  # ... by grids growing this much (a clustered pair's finer one is as much larger)
RENARROW = 0.7  # a front this much narrower than its grid's cluster gets a grid of its own
DECAYED = 1e-14  # u at an interval's right end below this times its largest: continued by zero when widened


class Linearised(Protocol):
    """An equation at (u, σ) on a grid, with the products Newton's matrix-free Jacobian is made of."""

    residual: np.ndarray  # R at every grid point
    defect: float  # the smoothness defect: 0 exactly when the profile is smooth at the origin
    slope: np.ndarray  # u_s (the normalisation reads it at s = 0)
    speed: np.ndarray  # c(s), the principal part c (I + d/ds) of ∂R/∂u (the preconditioner's)
    scalar_column: np.ndarray  # ∂R/∂σ
    defect_scalar: float  # ∂(defect)/∂σ

    def apply(self, v: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """(∂R/∂u v, ∂(defect)/∂u v, v_s)."""

    def transpose(self, y: np.ndarray, defect_weight: float, plus_derivative: np.ndarray) -> np.ndarray:
        """(∂R/∂u)ᵀ y + (∂defect/∂u)ᵀ defect_weight + (d/ds)ᵀ plus_derivative."""


@dataclass
class DenseBlocks:
    """The same linearisation as dense blocks (small grids: tests, dense spectra, the dense reference Newton)."""

    residual: np.ndarray
    jacobian: np.ndarray  # ∂R/∂u, N x N
    scalar_column: np.ndarray
    defect: float
    defect_row: np.ndarray
    defect_scalar: float


class ProfileEquation(Protocol):
    """What an equation states for this solver; everything else (Newton, the family, refinement) is shared."""

    scalar_name: str  # "lambda", "alpha": how summaries name σ
    stability_sign: float  # L = sign ∂R/∂u: the self-similar evolution is u_τ = sign R(u) (`log_stability`)
    parity: str  # the profile's parity class, the perturbations' ("even" Θ for CCF, "odd" Ω for gCLM)

    def origin_speed(self, scalar: float) -> float:
        """c₀ at a smooth profile: near the origin a solution of L φ = ν φ goes like e^((1 - ν/c₀)s) or e^s."""

    def local_rate(self, u: np.ndarray, scalar: float, grid: LogGrid) -> np.ndarray:
        """The multiplier of v in L's local part (L = local_rate - c d/ds + nonlocal): grid artefacts reach its
        largest value."""

    def linearise(self, u: np.ndarray, scalar: float, grid: LogGrid) -> Linearised: ...

    def dense(self, u: np.ndarray, scalar: float, grid: LogGrid) -> DenseBlocks: ...

    def residual(self, u: np.ndarray, scalar: float, grid: LogGrid) -> np.ndarray: ...

    def defect(self, u: np.ndarray, scalar: float, grid: LogGrid) -> float: ...

    def rough(self, scalar: float, grid: LogGrid) -> np.ndarray:
        """A start with the right ends and size, meeting the smoothness condition's leading term at σ."""

    def other_classes(self, scalar: float) -> list:
        """Perturbation classes besides the profile's own (`log_stability.PerturbationClass`), for its stability."""

    def measures(self, u: np.ndarray, scalar: float, grid: LogGrid) -> dict[str, float]:
        """What shows where a family goes (the exponent at the origin, the defect, the least speed, ...)."""


@dataclass
class ProfileSolve:
    """A Newton solve's end: `lam` the exponent σ it selected (λ for CCF, α for gCLM), `q` the unknown u on
    `grid` (CCF's Θ/y, gCLM's -Ω)."""

    lam: float
    q: np.ndarray
    grid: LogGrid
    steps: int
    converged: bool
    krylov_iterations: list[int] = field(default_factory=list)  # LSMR's per Newton step (matrix-free solves)
    equation: ProfileEquation | None = None

    def offgrid_residual_max(self, points: int | None = None) -> float:
        """max |R| of the trigonometric interpolant on a finer grid (`points`, odd; default 3x): what the residual
        is between the points Newton made it vanish at."""
        fine_q, fine = interpolate(self.q, self.grid, points or 3 * self.grid.points)
        return float(np.abs(self.equation.residual(fine_q, self.lam, fine)).max())


def save_solve(solve: ProfileSolve, path: Path, **extra: float) -> None:
    """The solve (σ, u, its grid, steps, converged) and `extra` figures as one .npz, written whole beside `path` and
    then renamed over it: a kill mid-write leaves the file before it, never half of one."""
    partial = path.with_name(path.stem + ".partial.npz")
    grid = solve.grid
    if isinstance(grid, MappedLogGrid):
        extra = extra | {"fronts": np.array(grid.fronts, dtype=float).reshape(-1, 3)}
    np.savez(partial, q=solve.q, lam=solve.lam, left=grid.left, right=grid.right, points=grid.points,
             steps=solve.steps, converged=solve.converged, **extra)  # fmt: skip
    partial.replace(path)


def load_solve(path: Path, equation: ProfileEquation) -> tuple[ProfileSolve, dict[str, float]]:
    """A solve saved by `save_solve` (and its extra figures). ValueError, with the reason, where the file is
    missing, unreadable (truncated, not an .npz) or does not hold a finite u on its grid."""
    try:
        with np.load(path) as data:
            fields = {key: data[key] for key in data.files}
        interval = float(fields.pop("left")), float(fields.pop("right"))
        fronts = tuple(tuple(float(x) for x in entry) for entry in fields.pop("fronts", np.zeros((0, 3))))
        grid = MappedLogGrid(*interval, len(fields["q"]), fronts) if fronts else LogGrid(*interval, len(fields["q"]))
        q, lam = np.array(fields.pop("q"), dtype=float), float(fields.pop("lam"))
        points = int(fields.pop("points", grid.points))
        steps, converged = int(fields.pop("steps", 0)), bool(fields.pop("converged", True))
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable profile ({error})") from None
    if points != grid.points or q.ndim != 1 or not np.all(np.isfinite(q)):
        raise ValueError(f"{path} does not hold a finite profile on its grid")
    solve = ProfileSolve(lam, q, grid, steps, converged, equation=equation)
    return solve, {key: float(value) for key, value in fields.items()}


def newton(
    equation: ProfileEquation,
    q: np.ndarray,
    lam: float,
    grid: LogGrid,
    smooth: bool = True,
    tolerance: float = RESIDUAL_TOLERANCE,
    dense: bool | None = None,
) -> ProfileSolve:
    """Gauss-Newton on (residual, normalisation, smoothness) for u on `grid` and σ, from (u, σ). With
    smooth=False, σ stays fixed and the smoothness row is dropped: the family's non-smooth member at σ.

    Full steps, each the least-squares solution of the linearised equations: matrix-free by LSMR
    (`KrylovLeastSquares`, preconditioned by the transport part), or with dense=True by Householder QR
    (`householder_lstsq`). Both solve the same equations, so they converge to the same point. By default a
    uniform grid's is matrix-free, and a `MappedLogGrid`'s dense up to DENSE_MAPPED_POINTS points and matrix-free
    past them (its correction to H then factored once, `hilbert.compress`). converged also asks that every equation
    held to `tolerance` at the start of the last step or at its end: on a grid clustered to spacings of 1e-4 a
    step within the step tolerance can still move R by 1e-7, so a start resampled from another grid converged in
    that one step, from 1e-9 to 1e-13, which the start's residual alone had called lost."""
    mapped = isinstance(grid, MappedLogGrid)
    if dense is None:
        dense = mapped and grid.points <= DENSE_MAPPED_POINTS
    if mapped and not dense:
        compress(grid)
    n, system = grid.points, _ProfileSystem(equation, grid, smooth)
    iterations: list[int] = []

    def apply(point: tuple[np.ndarray, float], update: np.ndarray) -> tuple[np.ndarray, float]:
        return point[0] + update[:n], point[1] + (update[n] if smooth else 0.0)

    def krylov_step(point, lin: Linearisation):
        descent = KrylovLeastSquares(lin.jacobian, system.preconditioner, KRYLOV_TOLERANCE, KRYLOV_ITERATIONS)
        d = descent.solve(lin.residual)
        iterations.extend(descent.iterations)
        return d, apply(point, d)

    if dense:
        linearise, step = system.dense_linearise, full_step(lambda jac: LeastSquares(jac, householder_lstsq), apply)
    else:
        linearise, step = system.linearise, krylov_step
    termination = CLUSTERED_TERMINATION if mapped else NEWTON_TERMINATION
    outcome = iterate((q, lam), linearise, step, termination)
    q, lam = outcome.point
    held = lambda residual: bool(np.abs(residual).max() < tolerance)  # noqa: E731
    converged = outcome.reason == "converged" and (
        held(outcome.linearisation.residual) or held(system.equations(outcome.point))
    )
    return ProfileSolve(lam, q, grid, outcome.steps, converged, iterations, equation)


def family_tangent(solve: ProfileSolve) -> np.ndarray:
    """du/dσ along the non-smooth family at `solve` (its member at σ, on its grid): J_u du = -∂R/∂σ with the
    normalisation held, solved as Newton's steps are (LSMR, the transport preconditioner). A start u + Δσ du/dσ
    for the member at σ + Δσ is off by O(Δσ²) where u alone is off by O(Δσ): near the end of CCF's family below
    profile 2, Newton from u alone lost every step down to 6e-5 in λ, where pseudo-arclength continuation (which
    starts on the tangent) went on without a fold (scripts/ccf_family_fold.py)."""
    if isinstance(solve.grid, MappedLogGrid):
        compress(solve.grid)
    system = _ProfileSystem(solve.equation, solve.grid, smooth=False)
    lin = system.linearise((solve.q, solve.lam))
    descent = KrylovLeastSquares(lin.jacobian, system.preconditioner, KRYLOV_TOLERANCE, KRYLOV_ITERATIONS)
    return descent.solve(np.concatenate([system.products.scalar_column, [0.0]]))


def householder_lstsq(jac: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """The least-squares solution of jac x = rhs for a tall jac of full column rank, by Householder QR without
    column pivoting (LAPACK's geqrf, ormqr, trtrs): Newton's systems have full rank (the normalisation and the
    smoothness row remove the scaling family and fix σ), where pivoting (gelsy) only costs time, three times as
    much on a clustered grid's dense Newton. A singular one gives a step that the divergence check stops."""
    (factors, tau), _ = scipy.linalg.qr(jac, mode="raw", check_finite=False)
    rows, columns = jac.shape
    projected, _, info = scipy.linalg.lapack.dormqr("L", "T", factors, tau, rhs.reshape(rows, -1), 64 * columns)
    if info:
        raise ValueError(f"dormqr: argument {-info} invalid")
    upper = factors[:columns, :columns]
    return scipy.linalg.solve_triangular(upper, projected[:columns], check_finite=False).reshape(-1)


class _ProfileSystem:
    """Newton's equations on a grid: R at every point, the normalisation u_s(0) = 0 and, if `smooth`, the
    smoothness condition, in the unknowns u (and σ if `smooth`), with a matrix-free Jacobian. The normalisation
    is read at the grid point nearest s = 0 on a uniform grid, and at s = 0 itself on a mapped one, whose point
    nearest it moves with the map: two clustered grids then normalise alike, and a profile resampled from one
    to the other starts Newton in its basin (read at the nearest points, they were measured translated by as much
    as a steep front's width: 1e-2 in the normalisation row, and Newton lost them)."""

    def __init__(self, equation: ProfileEquation, grid: LogGrid, smooth: bool):
        self.equation, self.grid, self.smooth = equation, grid, smooth
        self.n, self.centre = grid.points, int(np.argmin(np.abs(grid.s)))
        self.bound: float | None = None  # DIVERGED times the first point's largest residual (at least 1)
        self.preconditioner: LinearOperator | None = None  # the last linearisation's ...
        self.products: Linearised | None = None  # ... and its products (their ∂R/∂σ column: `family_tangent`)

    def diverged(self, residual: np.ndarray) -> bool:
        """Residuals not finite, or grown DIVERGED-fold past the start's: Newton has left every basin, and more
        steps (each a Krylov solve that no longer converges) would only cost time."""
        size = float(np.abs(residual).max())
        if self.bound is None:
            self.bound = DIVERGED * max(1.0, size)
        return not size <= self.bound

    def equations(self, point: tuple[np.ndarray, float], lin=None) -> np.ndarray:
        """Every equation's residual at (u, σ): R, the normalisation and, if `smooth`, the smoothness defect."""
        (q, lam), centre = point, self.centre
        lin = lin if lin is not None else self.equation.linearise(q, lam, self.grid)
        normalisation = slope_row(self.grid) @ q if isinstance(self.grid, MappedLogGrid) else lin.slope[centre]
        return np.concatenate([lin.residual, [normalisation], [lin.defect] if self.smooth else []])

    def linearise(self, point: tuple[np.ndarray, float]) -> Linearisation | None:
        """The equations and their Jacobian (a LinearOperator) at (u, σ); None once they diverged."""
        (q, lam), n, centre, smooth = point, self.n, self.centre, self.smooth
        lin = self.products = self.equation.linearise(q, lam, self.grid)
        at_zero = slope_row(self.grid) if isinstance(self.grid, MappedLogGrid) else None  # else lin.slope[centre]
        residual = self.equations(point, lin)
        if self.diverged(residual):
            return None
        self.preconditioner = transport_preconditioner(lin.speed, self.grid, unscaled=smooth)

        def matvec(x: np.ndarray) -> np.ndarray:
            dr, d_defect, vs = lin.apply(x[:n])
            normalisation = [vs[centre] if at_zero is None else at_zero @ x[:n]]
            if not smooth:
                return np.concatenate([dr, normalisation])
            return np.concatenate([dr + x[n] * lin.scalar_column, normalisation, [d_defect + lin.defect_scalar * x[n]]])

        def rmatvec(z: np.ndarray) -> np.ndarray:
            y, at_centre = z[:n], np.zeros(n)
            if at_zero is None:
                at_centre[centre] = z[n]
            v = lin.transpose(y, z[n + 1] if smooth else 0.0, at_centre)
            if at_zero is not None:
                v = v + z[n] * at_zero
            if not smooth:
                return v
            return np.concatenate([v, [lin.scalar_column @ y + lin.defect_scalar * z[n + 1]]])

        shape = (len(residual), n + smooth)
        return Linearisation(residual, LinearOperator(shape, matvec=matvec, rmatvec=rmatvec, dtype=float))

    def dense_linearise(self, point: tuple[np.ndarray, float]) -> Linearisation | None:
        """The same equations with the dense Jacobian (`ProfileEquation.dense`): O(N²) memory."""
        (q, lam), n, centre, smooth = point, self.n, self.centre, self.smooth
        blocks = self.equation.dense(q, lam, self.grid)
        mapped = isinstance(self.grid, MappedLogGrid)
        diff_centre = slope_row(self.grid) if mapped else operator_matrices(self.grid)[1][centre]
        rows = [blocks.residual, [diff_centre @ q]]
        jac = np.zeros((n + 1 + smooth, n + 1 if smooth else n))
        jac[:n, :n], jac[n, :n] = blocks.jacobian, diff_centre
        if smooth:
            rows.append([blocks.defect])
            jac[:n, n] = blocks.scalar_column
            jac[n + 1, :n], jac[n + 1, n] = blocks.defect_row, blocks.defect_scalar
        residual = np.concatenate(rows)
        return None if self.diverged(residual) or not np.all(np.isfinite(jac)) else Linearisation(residual, jac)


def transport_preconditioner(speed: np.ndarray, grid: LogGrid, unscaled: int = 0) -> LinearOperator:
    """M⁻¹ for M = c (I + d/ds), the transport part of ∂R/∂u, whose derivative is its only unbounded part,
    inverted by one FFT (and `unscaled` more unknowns passed through): exactly on a uniform grid, up to a smoothing
    operator on a mapped one (`approximate_shifted_inverse`). c is kept from zero, where a start far from a
    profile may take it."""
    speed = np.where(np.abs(speed) < MIN_SPEED, np.copysign(MIN_SPEED, speed), speed)
    n = grid.points

    def matvec(x: np.ndarray) -> np.ndarray:
        return np.concatenate([approximate_shifted_inverse(x[:n] / speed, grid), x[n:]])

    def rmatvec(x: np.ndarray) -> np.ndarray:
        return np.concatenate([approximate_shifted_inverse(x[:n], grid, sign=-1.0) / speed, x[n:]])

    return LinearOperator((n + unscaled, n + unscaled), matvec=matvec, rmatvec=rmatvec, dtype=float)


def jacobian_operator(equation: ProfileEquation, q: np.ndarray, lam: float, grid: LogGrid):
    """∂R/∂u at (u, σ) as a LinearOperator (the stability operator is its negative or itself, as the equation
    says) and the linearisation it came from. Applied many times (shift-invert Arnoldi): a mapped grid's
    correction to H is factored first (`compress`)."""
    if isinstance(grid, MappedLogGrid):
        compress(grid)
    lin, n = equation.linearise(q, lam, grid), grid.points
    zero = np.zeros(n)
    operator = LinearOperator(
        (n, n), matvec=lambda v: lin.apply(v)[0], rmatvec=lambda y: lin.transpose(y, 0.0, zero), dtype=float
    )
    return operator, lin


@dataclass
class FamilyScan:
    """What following the non-smooth family found: the σ range it was followed over (None: Newton could not
    enter it) and, if its smoothness defect changed sign there, the member where it did, narrowed."""

    covered: tuple[float, float] | None
    smooth: ProfileSolve | None
    lowest: ProfileSolve | None = None  # the member at the covered range's lower end


def smooth_in_bracket(
    equation: ProfileEquation,
    q: np.ndarray,
    lam: float,
    grid: LogGrid,
    bracket: tuple[float, float],
    step: float,
    entry: float | None = None,
    reenter: bool = False,
) -> FamilyScan:
    """The family's member nearest to σ whose smoothness defect vanishes, searched within `bracket`: a rough
    start for Newton with the smoothness row.

    The non-smooth family (`newton(smooth=False)`) is followed from (u, σ) in steps of `step` (the last one to
    the bracket's edge; halved where Newton loses the family), upwards and downwards in turn, until the defect
    changes sign between two members; regula falsi then narrows that interval. A direction ends at the
    bracket's edge or where Newton loses the family. Where the family cannot be entered at σ (a start outside
    Newton's basin), it is entered at `entry` (default: the bracket's upper end) from the equation's rough
    start and followed down to the bracket's upper end. That scan does not depend on (u, σ): it is done once
    per equation, grid, bracket, step and entry (a run asks for it at every acceptance check). The grid only
    has to give the defect's sign: members are accepted at FAMILY_TOLERANCE, not at the profile's tolerance.

    reenter: where the family followed from (u, σ) turns smooth nowhere in the bracket, it is entered at `entry` as
    well, for a start that is another run's refined profile (`init_from`) and so judges no network. Such a profile
    can be steeper than the scanning grid resolves: CCF's profile 2 (front width 0.010, scanning spacing 0.005),
    resampled there, is the member of a branch that Newton loses or leaves at every step up (for a steeper member
    whose defect keeps the start's sign) and loses a quarter step below; entered from above, the grid's family
    turns smooth at the profile."""
    lo, hi = bracket
    first = _member(equation, q, min(max(lam, lo), hi), grid)
    if first is None:
        return _scan_from_entry(equation, grid, bracket, step, entry)
    followed = _follow(equation, first, grid, bracket, step)
    if followed.smooth is not None or not reenter:
        return followed
    entered = _scan_from_entry(equation, grid, bracket, step, entry)
    return entered if entered.smooth is not None else followed


def _member(equation: ProfileEquation, start: np.ndarray, at: float, grid: LogGrid) -> ProfileSolve | None:
    found = newton(equation, start, at, grid, smooth=False, tolerance=FAMILY_TOLERANCE)
    return found if found.converged else None


@functools.lru_cache(maxsize=2)
def _scan_from_entry(
    equation: ProfileEquation, grid: LogGrid, bracket: tuple[float, float], step: float, entry: float | None
) -> FamilyScan:
    hi = bracket[1]
    at = hi if entry is None else entry
    solve = _member(equation, equation.rough(at, grid), at, grid)
    while solve is not None and solve.lam > hi:  # down to the bracket, no sign looked at on the way
        solve = _member(equation, solve.q, max(solve.lam - step, hi), grid)
    return _follow(equation, solve, grid, bracket, step) if solve is not None else FamilyScan(None, None)


def _follow(
    equation: ProfileEquation, first: ProfileSolve, grid: LogGrid, bracket: tuple[float, float], step: float
) -> FamilyScan:
    """From a member, both ways through the bracket to a sign change of the defect (`smooth_in_bracket`)."""
    lo, hi = bracket

    def member(start: np.ndarray, at: float) -> ProfileSolve | None:
        return _member(equation, start, at, grid)

    def defect(solve: ProfileSolve) -> float:
        return equation.defect(solve.q, solve.lam, grid)

    def advance(last: ProfileSolve, direction: int) -> ProfileSolve | None:
        """The next member in a direction, the step halved (STEP_HALVINGS times at most) where Newton loses the
        family: its members change faster as their fronts steepen. A step cut to the bracket's edge is tried once:
        Newton from the same start loses the same member again."""
        tried = set()
        for halving in range(STEP_HALVINGS + 1):
            nxt = min(max(last.lam + direction * step / 2**halving, lo), hi)
            if nxt == last.lam:
                return None
            if nxt not in tried:
                tried.add(nxt)
                found = member(last.q, nxt)
                if found is not None:
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
    """Narrow [a.σ, b.σ], across which the defect changes sign, to ROOT_STEPS secant steps (Illinois variant)."""
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
    equation: ProfileEquation,
    start: Callable[[LogGrid], np.ndarray],
    lam: float,
    bracket: tuple[float, float],
    interval: tuple[float, float],
    scan_spacing: float,
    scan_step: float,
    newton_spacing: tuple[float, float],
    entry: float | None = None,
    reenter: bool = False,
) -> tuple[FamilyScan, ProfileSolve, ProfileSolve]:
    """The smooth profile in `bracket` nearest to (start, σ), as a run finds it: the family followed to where it
    turns smooth on a scanning grid, then Newton on the coarse and the fine grid of `newton_spacing` over
    `interval`; the fine solve's σ minus the coarse one's is the error estimate. `start(grid)` gives the
    starting u on a grid (a network's, or the equation's rough start); `entry` where the family is entered if
    not there, and with `reenter` also where the family followed from the start does not turn smooth
    (`smooth_in_bracket`)."""
    scan_grid = LogGrid.with_spacing(*interval, scan_spacing)
    scan = smooth_in_bracket(equation, start(scan_grid), lam, scan_grid, bracket, scan_step, entry, reenter)
    coarse_grid, fine_grid = (LogGrid.with_spacing(*interval, h) for h in newton_spacing)
    if scan.smooth is None:
        nothing = ProfileSolve(lam, start(coarse_grid), coarse_grid, 0, False, equation=equation)
        return scan, nothing, nothing
    start_q = interpolate(scan.smooth.q, scan_grid, coarse_grid.points)[0]
    coarse = newton(equation, start_q, scan.smooth.lam, coarse_grid)
    return scan, coarse, refine(coarse, fine_grid) if coarse.converged else coarse


def refine(solve: ProfileSolve, grid: LogGrid) -> ProfileSolve:
    """The same profile on another grid (same interval, more points), started from `solve` interpolated."""
    if (grid.left, grid.right) != (solve.grid.left, solve.grid.right) or grid.points <= solve.grid.points:
        raise ValueError(f"refine needs more points on the same interval, got {grid} after {solve.grid}")
    q, _ = interpolate(solve.q, solve.grid, grid.points)
    return newton(solve.equation, q, solve.lam, grid)


def clustered(solve: ProfileSolve, points: int, smooth: bool = True) -> ProfileSolve:
    """The same profile on `points` points (or the next count FFTs take fast, `fast_odd_size`) clustered at its
    front, started from `solve` resampled: a `MappedLogGrid` over the same interval, centred where the transport
    speed |c| is least, of width CLUSTER_WIDTH·min |c| (or narrower, `front`) and strength its inverse (about
    1/width times denser there). A front as steep as CCF's 2nd unstable profile's (min c = 0.03) takes 10^5
    uniform points to resolve and a few thousand of these. smooth=False: the family's member at solve's σ."""
    grid = clustered_grid(solve, points)
    return newton(solve.equation, normalised_start(solve, grid), solve.lam, grid, smooth=smooth)


def widened_grid(grid: LogGrid, right: float, far_spacing: float | None = None) -> LogGrid:
    """`grid` over [grid.left, right], right beyond its end. A uniform grid keeps its spacing (or the next finer one
    an FFT takes fast). A mapped grid keeps its spacing at each front's centre, and far from them takes
    `far_spacing` (its strengths raised to match) where that is coarser than its own: a front as steep as CCF's 2nd
    unstable profile's holds its points, the far field an eigenfunction's slow tail needs no more than a smooth
    profile's uniform grid does."""
    if not isinstance(grid, MappedLogGrid):
        return LogGrid.with_spacing(grid.left, right, grid.spacing)
    spacing = grid.uniform.spacing
    far = max(spacing, far_spacing or spacing)
    fronts = tuple((centre, width, (1 + strength) * far / spacing - 1) for centre, width, strength in grid.fronts)
    wider = MappedLogGrid(grid.left, right, 3, fronts).uniform
    return MappedLogGrid(grid.left, right, fast_odd_size(int(round((wider.right - wider.left) / far))), fronts)


def widened(solve: ProfileSolve, grid: LogGrid) -> ProfileSolve:
    """The same profile on `grid` (solve's widened, `widened_grid`), by Newton from solve's
    u translated to its normalisation (as `clustered`) and continued past solve's end by u's own decay over the
    last unit of s there (by zero where u has decayed below DECAYED of its largest). Where the profile has
    decayed to round-off a wider interval leaves it unchanged; what it changes is how far out eigenfunctions
    that decay slowly are seen (`blowup.solvers.log_stability.PerturbationClass.shown_above`)."""
    old = solve.grid
    if grid.left != old.left or grid.right <= old.right:
        raise ValueError(f"widened needs {old}'s interval extended to the right, got {grid}")
    at = grid.s + normalisation_offset(solve.q, old)
    start = values_at(solve.q, old, np.clip(at, old.left, old.right))
    past = at > old.s[-1]
    last = old.s > old.s[-1] - 1
    ends = np.abs(solve.q[last])
    if ends[-1] > DECAYED * np.abs(solve.q).max():
        rate = min(np.polyfit(old.s[last], np.log(np.maximum(ends, np.finfo(float).tiny)), 1)[0], 0.0)
        start[past] = solve.q[-1] * np.exp(rate * (at[past] - old.s[-1]))
    else:
        start[past] = 0.0
    return newton(solve.equation, start, solve.lam, grid)


def front(solve: ProfileSolve) -> tuple[float, float]:
    """Where a profile's transport speed |c| is least, and the width a grid clustered there takes:
    CLUSTER_WIDTH·min |c|, or PEAK_WIDTH·max |u| / max |u_s| where that is narrower. The first is a front's width
    (CCF's, whose steepest scale is 9-10 times wider); the second a peak's that sits where c is least without c
    vanishing (gCLM's first unstable branch near a = -0.1: max |u| 88 over a scale 0.011, c_min 0.30: 13125 points
    clustered to the first width, 0.107, left the residual between points at 7e-7, to 0.022 at 3.9e-10 with α
    unchanged to 2e-13; to 0.0055 Newton no longer met its step tolerance, the map's round-off)."""
    lin = solve.equation.linearise(solve.q, solve.lam, solve.grid)
    speed = np.abs(lin.speed)
    least = int(np.argmin(speed))
    peak = PEAK_WIDTH * float(np.abs(solve.q).max() / np.abs(lin.slope).max())
    return float(solve.grid.s[least]), min(CLUSTER_WIDTH * float(speed[least]), peak)


def front_cluster(solve: ProfileSolve) -> tuple[tuple[float, float, float]]:
    """A `MappedLogGrid`'s fronts clustering at solve's `front`: its centre and width, strength 1/width (the grid
    about 1 + 1/width times denser there)."""
    centre, width = front(solve)
    return ((centre, width, 1 / width),)


def clustered_grid(solve: ProfileSolve, points: int) -> MappedLogGrid:
    """A grid of `points` (the next count FFTs take fast) over solve's interval, clustered at its `front`."""
    return MappedLogGrid(solve.grid.left, solve.grid.right, fast_odd_size(points), front_cluster(solve))


def front_moved(solve: ProfileSolve) -> bool:
    """Whether the front has left `solve`'s clustered grid: its least transport speed is more than half the
    cluster's width from the centre, or the front has narrowed to under RENARROW of the cluster's width."""
    centre, width, _ = solve.grid.fronts[0]
    now_at, now_width = front(solve)
    return abs(now_at - centre) > width / 2 or now_width < RENARROW * width


def normalised_start(solve: ProfileSolve, grid: LogGrid) -> np.ndarray:
    """solve's u on `grid`'s points, translated so that its normalisation holds at s = 0 itself."""
    return resample(solve.q, solve.grid, grid, shift=normalisation_offset(solve.q, solve.grid))


def normalisation_offset(u: np.ndarray, grid: LogGrid) -> float:
    """Where u_s = 0 near s = 0 (u's interpolant): 0 for a mapped grid's solve, up to half a spacing off for a
    uniform one's (its normalisation is read at its point nearest 0). `clustered` translates u by it (translation
    in s is the equation's scaling symmetry): a start moved by as much as a steep front's width was measured to
    leave Newton's basin."""
    nearest = int(np.argmin(np.abs(grid.s)))
    spacing = float(np.max(np.abs(np.diff(grid.s[max(nearest - 1, 0) : nearest + 2]))))
    lo, hi = min(0.0, grid.s[nearest]) - spacing, max(0.0, grid.s[nearest]) + spacing
    slope = lambda x: float(slope_row(grid, x) @ u)  # noqa: E731
    return scipy.optimize.brentq(slope, lo, hi, xtol=1e-15) if slope(lo) * slope(hi) < 0 else 0.0
