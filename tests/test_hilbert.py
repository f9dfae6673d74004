"""The log-grid Hilbert transform against closed forms (blowup.solvers.hilbert)."""

import numpy as np
import pytest

from blowup.solvers.hilbert import (
    LogGrid,
    MappedLogGrid,
    derivative,
    fast_odd_size,
    hilbert_over_y,
    hilbert_over_y_transpose,
    interpolate,
    operator_matrices,
    quadrature_weights,
    running_integral,
    shifted_derivative_inverse,
)

GRID = LogGrid.with_spacing(-40.0, 80.0, 0.1)
Y = np.exp(GRID.s)


def test_even_function_closed_form():
    """H[1/(1+y²)] = y/(1+y²); with Θ = 1/(1+y²) - 1 (even, Θ(0) = 0; H[1] = 0), q = Θ/y and T q = HΘ/y."""
    q = -Y / (1 + Y**2)
    assert np.abs(hilbert_over_y(q, GRID) - 1 / (1 + Y**2)).max() < 1e-13


def test_odd_function_closed_form():
    """H[y/(1+y²)] = -1/(1+y²): the same operator applied to an odd function's values."""
    assert np.abs(hilbert_over_y(Y / (1 + Y**2), GRID) + 1 / (1 + Y**2)).max() < 1e-13


@pytest.mark.parametrize("a", [0.3, 0.46, 0.8])
def test_algebraic_decay_like_the_profiles(a):
    """(1 - iy)^(-a) is analytic in the upper half plane and decays like |y|^(-a), as the profiles' Θ' do, so
    H[Im (1-iy)^(-a)] = -Re (1-iy)^(-a): a slowly decaying odd function, where a mapped Fourier basis
    converges only algebraically. The grid reaches far enough right for the tail e^(-a s) to be round-off."""
    grid = LogGrid.with_spacing(-40.0, 36.0 / a, 0.1)
    y = np.exp(grid.s)
    f = (1 - 1j * y) ** (-a)
    assert np.abs(hilbert_over_y(f.imag, grid) + f.real).max() < 1e-13


def test_growing_profile_like_closed_form():
    """Θ = Re (1-iy)^b - 1 grows like |y|^b (b < 1) as the profiles do; HΘ = Im (1-iy)^b. Checked where the
    closed form itself has no cancellation (y > 1e-2)."""
    b = 0.54
    f = (1 - 1j * Y) ** b
    q = np.where(Y < 1e-6, b * (1 - b) / 2 * Y, (f.real - 1) / Y)
    keep = Y > 1e-2
    assert np.abs(hilbert_over_y(q, GRID) - f.imag / Y)[keep].max() < 1e-12


def test_matrices_agree_with_the_operators_and_derivative_is_spectral():
    grid = LogGrid.with_spacing(-30.0, 30.0, 0.2)
    hilbert, diff = operator_matrices(grid)
    f = 1 / np.cosh(grid.s)
    assert np.abs(hilbert @ f - hilbert_over_y(f, grid)).max() < 1e-14
    assert np.abs(diff @ f + np.tanh(grid.s) / np.cosh(grid.s)).max() < 1e-8
    assert np.abs(derivative(f, grid) - diff @ f).max() < 1e-14
    fine_f, fine = interpolate(f, grid, 3 * grid.points)
    assert np.abs(fine_f - 1 / np.cosh(fine.s)).max() < 1e-9


@pytest.mark.parametrize("grid", [GRID, MappedLogGrid(-40.0, 80.0, 801, ((1.0, 0.5, 3.0),))], ids=["uniform", "mapped"])
def test_running_integral_and_quadrature_against_closed_forms(grid):
    """∫_left^s sech² = tanh s - tanh(left), ∫ sech² = 2, on a uniform grid and on one clustered at s = 1."""
    f = 1 / np.cosh(grid.s) ** 2
    assert np.abs(running_integral(f, grid) - (np.tanh(grid.s) - np.tanh(grid.left))).max() < 1e-13
    assert abs(quadrature_weights(grid) @ f - 2) < 1e-14
    assert abs(quadrature_weights(grid) @ (grid.s * np.exp(-(grid.s**2))) - 0.0) < 1e-14
    assert abs(quadrature_weights(grid) @ (grid.s**2 * np.exp(-(grid.s**2))) - np.sqrt(np.pi) / 2) < 1e-13


def test_even_number_of_points_is_refused():
    with pytest.raises(ValueError, match="odd"):
        LogGrid(-1.0, 1.0, 10)


def test_the_transpose_and_the_inverted_transport_part_agree_with_dense_matrices():
    """The products a matrix-free least-squares solve needs, against the dense matrices and numpy's inverse."""
    grid = LogGrid.with_spacing(-20.0, 30.0, 0.3)
    hilbert, diff = operator_matrices(grid)
    identity = np.eye(grid.points)
    y = np.random.default_rng(0).standard_normal((grid.points, 2))
    assert np.abs(hilbert_over_y_transpose(y, grid) - hilbert.T @ y).max() < 1e-13
    assert np.abs(shifted_derivative_inverse(y, grid) - np.linalg.solve(identity + diff, y)).max() < 1e-13
    assert np.abs(shifted_derivative_inverse(y, grid, sign=-1.0) - np.linalg.solve(identity - diff, y)).max() < 1e-13


def test_with_spacing_takes_the_fastest_transform_size_at_or_above_the_spacing():
    def smooth(n: int) -> bool:
        for prime in (3, 5, 7):
            while n % prime == 0:
                n //= prime
        return n == 1

    for points in (2, 100, 3841, 4801, 96001, 192001):
        size = fast_odd_size(points)
        assert size >= points and size % 2 == 1 and smooth(size)
        assert not any(smooth(n) for n in range(points + 1 - points % 2, size, 2))  # none smaller qualifies
    grid = LogGrid.with_spacing(-36.0, 60.0, 0.001)
    assert grid.spacing <= 0.001 and grid.points == fast_odd_size(96000)
