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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


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


def derivative(q: np.ndarray, grid: LogGrid) -> np.ndarray:
    """dq/ds, spectrally, along the first axis."""
    k = grid.wavenumbers.reshape((-1,) + (1,) * (q.ndim - 1))
    return np.real(np.fft.ifft(1j * k * np.fft.fft(q, axis=0), axis=0))


def tail_integral(q: np.ndarray, grid: LogGrid) -> np.ndarray:
    """∫_r^right q(t) dt at every grid point r, spectrally (q small at both ends)."""
    k = grid.wavenumbers.reshape((-1,) + (1,) * (q.ndim - 1))
    coefficients = np.fft.fft(q, axis=0)
    mean = coefficients[0].real / grid.points
    nonzero = k != 0
    periodic = np.real(np.fft.ifft(np.where(nonzero, coefficients / np.where(nonzero, 1j * k, 1), 0), axis=0))
    below = mean * (grid.s - grid.left).reshape(k.shape) + periodic - periodic[:1]  # ∫_left^r
    return mean * (grid.right - grid.left) - below


def hilbert_over_y(q: np.ndarray, grid: LogGrid) -> np.ndarray:
    """(1/π) ∫ q(t) (coth(r - t) - 1) dt: HΘ / y from q = Θ / y (Θ even, Θ(0) = 0), or HΩ from an odd Ω."""
    multiplier = grid.kernel_multiplier.reshape((-1,) + (1,) * (q.ndim - 1))
    smooth_part = np.real(np.fft.ifft(multiplier * np.fft.fft(q, axis=0), axis=0))
    return (smooth_part - 2 * tail_integral(q, grid)) / np.pi


def _multiply(q: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifft(multiplier.reshape((-1,) + (1,) * (q.ndim - 1)) * np.fft.fft(q, axis=0), axis=0))


def hilbert_over_y_transpose(y: np.ndarray, grid: LogGrid) -> np.ndarray:
    """The transpose of `hilbert_over_y` on the grid (for products with Newton's Jacobian transposed, as a
    least-squares Krylov method needs them). Its circulant parts are antisymmetric (odd, imaginary multipliers
    on an odd grid); the tail integral's mean and its value at the left end are rank-one terms."""
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


def shifted_derivative_inverse(q: np.ndarray, grid: LogGrid, sign: float = 1.0) -> np.ndarray:
    """(I + sign·d/ds)⁻¹ q, spectrally: the transport operator's principal part inverted (sign -1: its transpose)."""
    return _multiply(q, 1 / (1 + sign * 1j * grid.wavenumbers))


_LAST_MATRICES: dict[LogGrid, tuple[np.ndarray, np.ndarray]] = {}


def operator_matrices(grid: LogGrid) -> tuple[np.ndarray, np.ndarray]:
    """The dense matrices of `hilbert_over_y` and `derivative` on the grid, read-only: for the network's loss on
    its small grid, the dense spectrum of `blowup stability`, and the dense Newton the matrix-free one is
    checked against. The last grid's are kept (a dense Newton asks for them at every step); they are
    dropped before another grid's are built, so that two grids' never take memory at once."""
    if grid not in _LAST_MATRICES:
        _LAST_MATRICES.clear()
        identity = np.eye(grid.points)
        matrices = hilbert_over_y(identity, grid), derivative(identity, grid)
        for matrix in matrices:
            matrix.flags.writeable = False
        _LAST_MATRICES[grid] = matrices
    return _LAST_MATRICES[grid]


def interpolate(q: np.ndarray, grid: LogGrid, points: int) -> tuple[np.ndarray, LogGrid]:
    """q on another grid over the same interval with `points` (odd) points, by trigonometric interpolation:
    finer pads q's spectrum with zeros, coarser drops its highest wavenumbers."""
    other = LogGrid(grid.left, grid.right, points)
    coefficients = np.fft.fftshift(np.fft.fft(q))
    if points >= grid.points:
        pad = (points - grid.points) // 2
        coefficients = np.concatenate([np.zeros(pad), coefficients, np.zeros(pad)])
    else:
        cut = (grid.points - points) // 2
        coefficients = coefficients[cut : cut + points]
    return np.real(np.fft.ifft(np.fft.ifftshift(coefficients))) * points / grid.points, other
