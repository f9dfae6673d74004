"""The Hilbert transform on the whole line for profiles with power-law tails, on a logarithmic grid.

(Hf)(x) = (1/π) p.v.∫ f(y) / (x - y) dy, so that H[1/(1+y²)] = y/(1+y²). Self-similar profiles grow or
decay like powers of |y|, which a Fourier or Chebyshev basis on a mapped interval resolves only
algebraically. In the coordinate s = log y they decay exponentially instead, and H becomes a convolution:
for an even Θ with Θ(0) = 0 and q(s) = Θ(e^s) / e^s,

    (HΘ)(e^r) / e^r = (1/π) ∫ q(t) (coth(r - t) - 1) dt,

and the same operator takes an odd Ω, sampled as Ω(e^s), to HΩ(e^s) (the kernel comes from pairing y
with -y in the principal value). A function smooth at 0 with power-law tails gives q decaying like e^s
as s → -∞ and like a power of e^-s as s → +∞, so a uniform periodic grid in s is spectrally accurate and
truncating the line costs only the tails beyond its ends.

The kernel splits into coth(x) - sign(x), which decays like e^(-2|x|) and has the Fourier multiplier
-i (π coth(πk/2) - 2/k), and sign(x) - 1 = -2·1{x < 0}, whose convolution is the tail integral
-2 ∫_r^∞ q. The grid has an odd number of points: with an even number the Nyquist mode has no
derivative, and a saw-tooth in q would cost the residual nothing.

A profile with a steep front needs points there and nowhere else: `MappedLogGrid` is uniform in a coordinate
σ(s) that stretches s around the front, and H on it is the uniform operator in σ plus a correction whose
kernel is smooth (the two kernels' poles cancel), summed by the trapezoid rule: a dense matrix for a dense Newton
and a dense spectrum, or, for a matrix-free Newton's hundreds of products, factored once at low rank (`compress`:
its singular values fall geometrically), O(N r) a product.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.sparse.linalg import LinearOperator, gmres


def fast_odd_size(points: int) -> int:
    """The smallest odd number >= points (and >= 3) whose only prime factors are 3, 5 and 7."""
    candidate = max(3, points + 1 - points % 2)
    while True:
        rest = candidate
        for prime in (3, 5, 7):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return candidate
        candidate += 2


@dataclass(frozen=True)
class LogGrid:
    """points uniform points s = log y on [left, right), periodic; `points` odd."""

    left: float
    right: float
    points: int

    def __post_init__(self):
        if self.points < 3 or self.points % 2 == 0:
            raise ValueError(f"LogGrid needs an odd number of points >= 3, got {self.points}")

    @classmethod
    def with_spacing(cls, left: float, right: float, spacing: float) -> LogGrid:
        """The grid over [left, right) with about `spacing` (at most it): the smallest point count from
        (right - left)/spacing up that is odd and a product of 3, 5 and 7 alone, the sizes an FFT takes
        fastest (a large prime count can cost several times more per transform)."""
        points = int(round((right - left) / spacing))
        return cls(left, right, fast_odd_size(points))

    @property
    def spacing(self) -> float:
        return (self.right - self.left) / self.points

    @cached_property
    def s(self) -> np.ndarray:
        return self.left + self.spacing * np.arange(self.points)

    @cached_property
    def wavenumbers(self) -> np.ndarray:
        return 2 * np.pi * np.fft.fftfreq(self.points, d=self.spacing)

    @cached_property
    def kernel_multiplier(self) -> np.ndarray:
        """Fourier multiplier of coth(x) - sign(x): -i (π coth(πk/2) - 2/k), 0 at k = 0."""
        k = self.wavenumbers
        out = np.zeros(k.shape, dtype=complex)
        nonzero = k != 0
        out[nonzero] = -1j * (np.pi / np.tanh(np.pi * k[nonzero] / 2) - 2 / k[nonzero])
        return out


@dataclass(frozen=True)
class MappedLogGrid:
    """`points` points in s on [left, right), uniform in σ = s + Σ strength·width·asinh((s - centre)/width) over
    `fronts` ((centre, width, strength), ...): about 1 + strength times denser at a centre than far from it,
    falling off like strength·width/|s - centre| (a front's neighbourhood needs more points than its far field,
    fewer than its core). The map is analytic within `width` of the real s-axis, so functions resolved in σ
    keep spectral accuracy. Its derivative is an FFT in σ; its H the uniform operator in σ plus a correction with a
    smooth kernel, dense or factored at low rank (`compress`)."""

    left: float
    right: float
    points: int
    fronts: tuple[tuple[float, float, float], ...]

    def __post_init__(self):
        if self.points < 3 or self.points % 2 == 0:
            raise ValueError(f"MappedLogGrid needs an odd number of points >= 3, got {self.points}")
        if any(width <= 0 or strength < 0 for _, width, strength in self.fronts):
            raise ValueError(f"MappedLogGrid needs widths > 0 and strengths >= 0, got {self.fronts}")

    def sigma(self, s: np.ndarray) -> np.ndarray:
        return s + sum(b * w * np.arcsinh((s - c) / w) for c, w, b in self.fronts)

    def _density(self, s: np.ndarray) -> np.ndarray:  # dσ/ds >= 1
        return 1 + sum(b / np.sqrt(1 + ((s - c) / w) ** 2) for c, w, b in self.fronts)

    @cached_property
    def uniform(self) -> LogGrid:
        """The grid in σ: its FFT operators act on functions of σ."""
        return LogGrid(float(self.sigma(self.left)), float(self.sigma(self.right)), self.points)

    def s_of(self, sigma: np.ndarray) -> np.ndarray:
        """s at σ (monotone): a table's interpolation, then Newton (dσ/ds >= 1) to round-off."""
        table = np.linspace(self.left, self.right, 20001)
        s = np.interp(sigma, self.sigma(table), table)
        for _ in range(50):
            step = (self.sigma(s) - sigma) / self._density(s)
            s = s - step
            if np.abs(step).max() <= 1e-15 * max(1.0, abs(self.left), abs(self.right)):
                break
        return s

    @cached_property
    def s(self) -> np.ndarray:
        return self.s_of(self.uniform.s)

    @cached_property
    def stretch(self) -> np.ndarray:
        """ds/dσ at the grid points."""
        return 1 / self._density(self.s)

    @cached_property
    def _stretch_slope(self) -> np.ndarray:
        """d²s/dσ² = -σ''(s) / σ'(s)³ at the grid points."""
        s = self.s
        curvature = sum(-b * (s - c) / w**2 * (1 + ((s - c) / w) ** 2) ** -1.5 for c, w, b in self.fronts)
        return -curvature * self.stretch**3

    def _correction_rows(self, rows: slice) -> np.ndarray:
        """Rows of T - T_σ (T_σ the uniform operator in σ), whose kernel
        (1/π)[(coth(s(σ) - s(τ)) - 1) s'(τ) - (coth(σ - τ) - 1)] is smooth in τ (both kernels have the pole
        1/(σ - τ)) and is summed by the trapezoid rule; on the diagonal its limit -s''/(2s') - s' + 1."""
        s, sigma, stretch = self.s, self.uniform.s, self.stretch
        with np.errstate(divide="ignore", invalid="ignore"):
            kernel = (1 / np.tanh(s[rows, None] - s) - 1) * stretch - (1 / np.tanh(sigma[rows, None] - sigma) - 1)
        index = np.arange(rows.start, rows.stop)
        kernel[index - rows.start, index] = -self._stretch_slope[rows] / (2 * stretch[rows]) - stretch[rows] + 1
        return kernel * (self.uniform.spacing / np.pi)

    def _blocks(self):
        return (
            slice(start, min(start + CORRECTION_BLOCK, self.points))
            for start in range(0, self.points, CORRECTION_BLOCK)
        )

    def correction(self, q: np.ndarray) -> np.ndarray:
        """(T - T_σ) q: by its low-rank factors where `compress` made them for this grid (a matrix-free Newton's
        grid, which asks for hundreds of products), else summed exactly in row blocks, so that memory stays
        O(N·CORRECTION_BLOCK)."""
        if self in _LOW_RANK:
            left, right, first = _LOW_RANK[self]
            out = left @ (right @ q)
            out[0] = first @ q
            return out
        out = np.empty(q.shape)
        for rows in self._blocks():
            out[rows] = self._correction_rows(rows) @ q
        return out

    def correction_transpose(self, y: np.ndarray) -> np.ndarray:
        """(T - T_σ)ᵀ y, as `correction`."""
        if self in _LOW_RANK:
            left, right, first = _LOW_RANK[self]
            rest = y.copy()
            rest[0] = 0.0
            return right.T @ (left.T @ rest) + first * y[0]
        out = np.zeros(y.shape)
        for rows in self._blocks():
            out += self._correction_rows(rows).T @ y[rows]
        return out

    def correction_matrix(self) -> np.ndarray:
        return np.concatenate([self._correction_rows(rows) for rows in self._blocks()])


CORRECTION_BLOCK = 512  # rows of the mapped grid's correction kernel held at once
LOW_RANK_TOLERANCE = 1e-14  # singular values of the correction below this times its largest are dropped ...
LOW_RANK_NOISE = 0.05  # ... or below this times N·ε, where they level off at the kernel's round-off (`compress`)
LOW_RANK_START = 480  # the first rank tried: the kernels of the fronts met so far need about 300 at 1e-12
LOW_RANK_OVERSAMPLING = 60  # columns sampled beyond the rank kept: a randomized range's error is then that rank's


def compress(grid: MappedLogGrid) -> None:
    """Factor the grid's correction T - T_σ as L R (N x r, r x N), kept for this grid (and the one before it), so
    that `correction` and `correction_transpose` cost O(N r) a product and the factors O(N r) memory, where the
    dense correction takes O(N²) of both. Its kernel is smooth in both variables: its singular values fall
    geometrically, to 1e-12 of the largest within about 300 whatever N and the clustering (a randomized range
    finder, two passes over the kernel's row blocks, finds them); the rank tried doubles until the smallest value
    sampled is below the cut (below), so the factors reproduce the correction to about that relative accuracy
    (grids too small for that to pay, or a kernel that needs half the grid's rank, keep the exact blocks). Below
    about 1e-2·N·ε of the largest the singular values stop falling (measured: 4.5e-15 at 3375 points, 2.2e-14 at
    9261): the kernel's entries carry round-off that grows with N (near the diagonal it is a difference of two
    terms like 1/(σ - τ)), and a rank that reproduces it (970 at 9261 points at 1e-14, where 330 hold the kernel)
    buys nothing; so the cut is at LOW_RANK_NOISE·N·ε where that is larger. The first row is kept exactly: the
    smoothness condition reads Tu there alone, and selects σ from it (an error of 1e-13 in that one value moved
    CCF's λ by 2e-13)."""
    if grid in _LOW_RANK or grid.points <= LOW_RANK_START + LOW_RANK_OVERSAMPLING:
        return
    rng, rank = np.random.default_rng(0), LOW_RANK_START
    while True:
        sample = rng.standard_normal((grid.points, rank + LOW_RANK_OVERSAMPLING))
        range_ = np.empty(sample.shape)
        for rows in grid._blocks():
            range_[rows] = grid._correction_rows(rows) @ sample
        basis, _ = np.linalg.qr(range_)
        projected = np.zeros((basis.shape[1], grid.points))
        for rows in grid._blocks():
            projected += basis[rows].T @ grid._correction_rows(rows)
        u, singular, right = np.linalg.svd(projected, full_matrices=False)
        cut = max(LOW_RANK_TOLERANCE, LOW_RANK_NOISE * grid.points * np.finfo(float).eps)
        kept = int(np.sum(singular > cut * singular[0]))
        if kept <= rank:
            break
        rank *= 2
        if rank + LOW_RANK_OVERSAMPLING > grid.points // 2:  # not low-rank here: the exact blocks are as cheap
            return
    if len(_LOW_RANK) >= 2:
        _LOW_RANK.pop(next(iter(_LOW_RANK)))
    first = grid._correction_rows(slice(0, 1))[0]
    _LOW_RANK[grid] = (basis @ (u[:, :kept] * singular[:kept]), right[:kept], first)


_LOW_RANK: dict[MappedLogGrid, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

AnyLogGrid = LogGrid | MappedLogGrid


def _along_first_axis(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    return values.reshape((-1,) + (1,) * (q.ndim - 1))


def derivative(q: np.ndarray, grid: AnyLogGrid) -> np.ndarray:
    """dq/ds, spectrally, along the first axis."""
    if isinstance(grid, MappedLogGrid):
        return derivative(q, grid.uniform) / _along_first_axis(grid.stretch, q)
    k = _along_first_axis(grid.wavenumbers, q)
    return np.real(np.fft.ifft(1j * k * np.fft.fft(q, axis=0), axis=0))


def derivative_transpose(y: np.ndarray, grid: AnyLogGrid) -> np.ndarray:
    """(d/ds)ᵀ y on the grid: -dy/ds on a uniform grid (the spectral derivative is antisymmetric on an odd one);
    on a mapped grid d/ds = diag(1/s') d/dσ, so its transpose is -d/dσ (y / s')."""
    if isinstance(grid, MappedLogGrid):
        return -derivative(y / _along_first_axis(grid.stretch, y), grid.uniform)
    return -derivative(y, grid)


def slope_row(grid: AnyLogGrid, at: float = 0.0) -> np.ndarray:
    """The row r with r @ q = q_s(at) for q's trigonometric interpolant (in the grid's σ): at a grid point, the row
    of the spectral derivative's matrix there. A mapped grid has no point at a given s in general, and which point
    lies nearest moves with the map's centre; a condition read there, and not at `at` itself, differs between two
    such grids."""
    mapped = isinstance(grid, MappedLogGrid)
    uniform = grid.uniform if mapped else grid
    offset = float(grid.sigma(np.asarray(at)) if mapped else at) - uniform.left
    k = uniform.wavenumbers
    row = np.real(np.fft.fft(1j * k * np.exp(1j * k * offset))) / uniform.points
    return row * float(grid._density(np.asarray(at))) if mapped else row


def _integrals(q: np.ndarray, grid: LogGrid) -> tuple[np.ndarray, np.ndarray]:
    """∫_left^r q(t) dt at every grid point r, and ∫_left^right q, spectrally (q small at both ends)."""
    k = _along_first_axis(grid.wavenumbers, q)
    coefficients = np.fft.fft(q, axis=0)
    mean = coefficients[0].real / grid.points
    nonzero = k != 0
    periodic = np.real(np.fft.ifft(np.where(nonzero, coefficients / np.where(nonzero, 1j * k, 1), 0), axis=0))
    return mean * (grid.s - grid.left).reshape(k.shape) + periodic - periodic[:1], mean * (grid.right - grid.left)


def tail_integral(q: np.ndarray, grid: LogGrid) -> np.ndarray:
    """∫_r^right q(t) dt at every grid point r, spectrally (q small at both ends)."""
    below, total = _integrals(q, grid)
    return total - below


def running_integral(q: np.ndarray, grid: AnyLogGrid) -> np.ndarray:
    """∫_left^r q(t) dt at every grid point r, along the first axis (on a mapped grid, of q ds/dσ in σ)."""
    if isinstance(grid, MappedLogGrid):
        return running_integral(q * _along_first_axis(grid.stretch, q), grid.uniform)
    return _integrals(q, grid)[0]


def quadrature_weights(grid: AnyLogGrid) -> np.ndarray:
    """w with w @ q = ∫ q ds over the grid (the trapezoid rule in s, or in σ: spectral for q small at both ends)."""
    if isinstance(grid, MappedLogGrid):
        return grid.stretch * grid.uniform.spacing
    return np.full(grid.points, grid.spacing)


def hilbert_over_y(q: np.ndarray, grid: AnyLogGrid) -> np.ndarray:
    """(1/π) ∫ q(t) (coth(r - t) - 1) dt: HΘ / y from q = Θ / y (Θ even, Θ(0) = 0), or HΩ from an odd Ω."""
    if isinstance(grid, MappedLogGrid):
        if grid in _LAST_MATRICES:  # a dense Newton's or spectrum's grid: its matrix is at hand
            return _LAST_MATRICES[grid][0] @ q
        return hilbert_over_y(q, grid.uniform) + grid.correction(q)
    multiplier = _along_first_axis(grid.kernel_multiplier, q)
    smooth_part = np.real(np.fft.ifft(multiplier * np.fft.fft(q, axis=0), axis=0))
    return (smooth_part - 2 * tail_integral(q, grid)) / np.pi


def _multiply(q: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifft(_along_first_axis(multiplier, q) * np.fft.fft(q, axis=0), axis=0))


def hilbert_over_y_transpose(y: np.ndarray, grid: LogGrid) -> np.ndarray:
    """The transpose of `hilbert_over_y` on the grid (for products with Newton's Jacobian transposed, as a
    least-squares Krylov method needs them). Its circulant parts are antisymmetric (odd, imaginary multipliers
    on an odd grid); the tail integral's mean and its value at the left end are rank-one terms."""
    if isinstance(grid, MappedLogGrid):
        if grid in _LAST_MATRICES:
            return _LAST_MATRICES[grid][0].T @ y
        return hilbert_over_y_transpose(y, grid.uniform) + grid.correction_transpose(y)
    shape = (-1,) + (1,) * (y.ndim - 1)
    k = grid.wavenumbers
    antiderivative = np.zeros(k.shape, dtype=complex)  # the tail integral's periodic part P, multiplier 1/(ik)
    antiderivative[k != 0] = 1 / (1j * k[k != 0])
    first = np.zeros(grid.points)
    first[0] = 1.0
    tail_transpose = (
        ((grid.right - grid.s).reshape(shape) * y).sum(axis=0) / grid.points
        + _multiply(y, antiderivative)
        - _multiply(first, antiderivative).reshape(shape) * y.sum(axis=0)
    )
    return (-_multiply(y, grid.kernel_multiplier) - 2 * tail_transpose) / np.pi


def shifted_derivative_inverse(q: np.ndarray, grid: AnyLogGrid, sign: float = 1.0) -> np.ndarray:
    """(I + sign·d/ds)⁻¹ q, spectrally: the transport operator's principal part inverted (sign -1: its transpose;
    on a mapped grid, where d/ds is not antisymmetric, the transpose of (I + d/ds)⁻¹). On a mapped grid the dense
    inverse serves where the grid's dense operators are at hand (a dense Newton's or spectrum's grid) or a matrix
    is asked for; a vector on any other mapped grid (a matrix-free Newton's, the 3x grid of a residual between
    points) is solved for by `_shifted_derivative_solve`: the dense inverse of 3 x 6587 points took 20 GB to build."""
    if isinstance(grid, MappedLogGrid):
        if q.ndim == 1 and grid not in _LAST_MATRICES and grid not in _LAST_SHIFTED:
            return _shifted_derivative_solve(q, grid, sign)
        inverse, _ = shifted_inverse_matrices(grid)
        return (inverse if sign > 0 else inverse.T) @ q
    return _multiply(q, 1 / (1 + sign * 1j * grid.wavenumbers))


def approximate_shifted_inverse(q: np.ndarray, grid: AnyLogGrid, sign: float = 1.0) -> np.ndarray:
    """An approximate (I + d/ds)⁻¹ (sign -1: its transpose) by one FFT: exact on a uniform grid; on a mapped one
    (c + d/dσ)⁻¹ s' with c the mean of s' (d/ds = (1/s') d/dσ, s' replaced by its mean where it is not a factor),
    which differs from the inverse by a smoothing operator. What a Krylov method's preconditioner needs: a fixed
    linear map, cheap, that removes the derivative's unbounded part."""
    if not isinstance(grid, MappedLogGrid):
        return shifted_derivative_inverse(q, grid, sign)
    if sign > 0:
        return _mean_shifted_inverse(grid.stretch * q, grid, sign)
    return grid.stretch * _mean_shifted_inverse(q, grid, sign)


def _mean_shifted_inverse(y: np.ndarray, grid: MappedLogGrid, sign: float) -> np.ndarray:
    """(c + sign·d/dσ)⁻¹ y by one FFT in σ, c the mean of s' = ds/dσ: the part of (I + d/ds)⁻¹ on a mapped grid that
    one FFT inverts (`approximate_shifted_inverse`, and the preconditioner of `_shifted_derivative_solve`)."""
    return _multiply(y, 1 / (float(grid.stretch.mean()) + sign * 1j * grid.uniform.wavenumbers))


SOLVE_TOLERANCE = 1e-14  # relative residual of `_shifted_derivative_solve`'s GMRES


def _shifted_derivative_solve(q: np.ndarray, grid: MappedLogGrid, sign: float = 1.0) -> np.ndarray:
    """x = (I + d/ds)⁻¹ q on a mapped grid by GMRES on its action, O(N log N) a product and O(N) memory. With
    d/ds = (1/s'(σ)) d/dσ, the equation times s' reads (s' + d/dσ) x = s' q; with x = P⁻¹ y, P = c + d/dσ (c the
    mean of s', P inverted by one FFT in σ), it becomes y + (s' - c) P⁻¹ y = s' q: the identity plus a smoothing
    operator, which GMRES solves in a few dozen iterations however strongly the grid clusters. sign -1 solves
    the transposed system (I + (d/ds)ᵀ) x = q instead: with x = s' z, (s' - d/dσ) z = q, the same form."""
    stretch = grid.stretch
    mean = float(stretch.mean())

    def preconditioned(y: np.ndarray) -> np.ndarray:
        return _mean_shifted_inverse(y, grid, sign)

    n = grid.points
    operator = LinearOperator((n, n), matvec=lambda y: y + (stretch - mean) * preconditioned(y), dtype=float)
    y, info = gmres(operator, stretch * q if sign > 0 else q, rtol=SOLVE_TOLERANCE, atol=0.0, restart=400, maxiter=20)
    if info:
        raise RuntimeError(f"(I + d/ds)⁻¹ on a mapped grid of {n} points: GMRES did not converge ({info} iterations)")
    return preconditioned(y) if sign > 0 else stretch * preconditioned(y)


_LAST_MATRICES: dict[AnyLogGrid, tuple[np.ndarray, np.ndarray]] = {}


def shifted_inverse_matrices(grid: AnyLogGrid) -> tuple[np.ndarray, np.ndarray]:
    """(I + d/ds)⁻¹ and T (I + d/ds)⁻¹ as dense matrices, read-only, built once for the last grid asked about:
    gCLM's dense Jacobian needs the second at every Newton step, and it costs two N³ products to form (seconds at
    a few thousand points, a minute at 6587). On a mapped grid the inverse is a dense one, inverted here."""
    if grid not in _LAST_SHIFTED:
        _LAST_SHIFTED.clear()
        if isinstance(grid, MappedLogGrid):
            inverse = np.linalg.inv(np.eye(grid.points) + operator_matrices(grid)[1])
        else:
            inverse = shifted_derivative_inverse(np.eye(grid.points), grid)
        inverse.flags.writeable = False
        product = operator_matrices(grid)[0] @ inverse
        product.flags.writeable = False
        _LAST_SHIFTED[grid] = inverse, product
    return _LAST_SHIFTED[grid]


_LAST_SHIFTED: dict[AnyLogGrid, tuple[np.ndarray, np.ndarray]] = {}


def operator_matrices(grid: AnyLogGrid) -> tuple[np.ndarray, np.ndarray]:
    """The dense matrices of `hilbert_over_y` and `derivative` on the grid, read-only: for the network's loss on
    its small grid, the dense spectrum of `blowup stability`, and the dense Newton the matrix-free one is
    checked against. The last grid's are kept (a dense Newton asks for them at every step); they are
    dropped before another grid's are built, so that two grids' never take memory at once."""
    if grid not in _LAST_MATRICES:
        _LAST_MATRICES.clear()
        identity = np.eye(grid.points)
        if isinstance(grid, MappedLogGrid):
            matrices = hilbert_over_y(identity, grid.uniform) + grid.correction_matrix(), derivative(identity, grid)
        else:
            matrices = hilbert_over_y(identity, grid), derivative(identity, grid)
        for matrix in matrices:
            matrix.flags.writeable = False
        _LAST_MATRICES[grid] = matrices
    return _LAST_MATRICES[grid]


def interpolate(q: np.ndarray, grid: AnyLogGrid, points: int) -> tuple[np.ndarray, AnyLogGrid]:
    """q on another grid over the same interval (and map) with `points` (odd) points, by trigonometric
    interpolation: finer pads q's spectrum with zeros, coarser drops its highest wavenumbers."""
    if isinstance(grid, MappedLogGrid):
        values, _ = interpolate(q, grid.uniform, points)
        return values, MappedLogGrid(grid.left, grid.right, points, grid.fronts)
    other = LogGrid(grid.left, grid.right, points)
    coefficients = np.fft.fftshift(np.fft.fft(q))
    if points >= grid.points:
        pad = (points - grid.points) // 2
        coefficients = np.concatenate([np.zeros(pad), coefficients, np.zeros(pad)])
    else:
        cut = (grid.points - points) // 2
        coefficients = coefficients[cut : cut + points]
    return np.real(np.fft.ifft(np.fft.ifftshift(coefficients))) * points / grid.points, other


def resample(q: np.ndarray, grid: AnyLogGrid, other: AnyLogGrid, shift: float = 0.0) -> np.ndarray:
    """q at `other`'s points (inside `grid`'s interval), moved by `shift` (q(s + shift), periodic): its
    trigonometric interpolant (in `grid`'s σ) on a grid RESAMPLE_FACTOR times finer, then a cubic spline through
    that. Its error is the finer spacing's fourth power times q's fourth derivative: a start for Newton on the
    other grid (a uniform grid's profile onto a mapped one), which then solves there to round-off; the direct sum
    of the interpolant would cost O(N·M)."""
    if not (grid.left <= other.s[0] and other.s[-1] <= grid.right):
        raise ValueError(f"resample needs points inside [{grid.left}, {grid.right}]")
    at = other.s if shift == 0 else grid.left + np.mod(other.s + shift - grid.left, grid.right - grid.left)
    return values_at(q, grid, at)


def values_at(q: np.ndarray, grid: AnyLogGrid, at: np.ndarray) -> np.ndarray:
    """q's interpolant (as `resample` builds it) at the points `at` (inside its interval)."""
    mapped = isinstance(grid, MappedLogGrid)
    source = grid.uniform if mapped else grid
    finer_q, finer = interpolate(q, source, RESAMPLE_FACTOR * source.points + 1 - RESAMPLE_FACTOR % 2)
    periodic_s = np.append(finer.s, finer.right)
    spline = CubicSpline(periodic_s, np.append(finer_q, finer_q[0]), bc_type="periodic")
    return spline(grid.sigma(at) if mapped else at)


RESAMPLE_FACTOR = 4
