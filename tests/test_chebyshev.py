"""The Chebyshev basis and its derivatives against the trigonometric closed form T_j(cos θ) = cos(jθ)."""

import numpy as np
import pytest

from blowup.solvers.chebyshev import basis_derivatives, first_kind_points


def trigonometric(t: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cos(jθ) and its first two derivatives in t = cos θ (chain rule through θ), columns j."""
    theta = np.arccos(t)[:, None]
    s, c = np.sin(theta), np.cos(theta)
    value = np.cos(j * theta)
    first = j * np.sin(j * theta) / s
    second = (-(j**2) * np.cos(j * theta) * s + j * np.sin(j * theta) * c) / s**3
    return value, first, second


@pytest.mark.parametrize("parity", ["odd", "even", None])
@pytest.mark.parametrize("degree", [1, 7, 540])
def test_the_basis_and_two_derivatives_are_the_closed_form(degree, parity):
    t = first_kind_points(2 * degree + 2)
    t = t[np.abs(t) < 0.95]  # the closed form's 1/sin^3 loses digits at the ends; the recurrence does not
    table, js = basis_derivatives(t, degree, parity, 2)
    assert table.shape == (3, t.size, js.size)
    assert all(j % 2 == (parity == "odd") for j in js) if parity else list(js) == list(range(degree + 1))
    for got, want in zip(table, trigonometric(t, js[None, :].astype(float))):
        scale = np.maximum(np.abs(want).max(axis=0), 1.0)  # each column against its own size: T_j'' ~ j^4
        assert np.abs(got - want).max(axis=0) / scale == pytest.approx(0, abs=1e-12)


def test_the_end_points_take_their_known_values():
    """T_j(1) = 1, T_j'(1) = j^2, T_j''(1) = j^2 (j^2 - 1) / 3, and (-1)^j, (-1)^(j+1) j^2 at t = -1."""
    table, js = basis_derivatives(np.array([1.0, -1.0]), 30, None, 2)
    j = js.astype(float)
    assert np.array_equal(table[0, 0], np.ones(31)) and np.array_equal(table[1, 0], j**2)
    assert np.array_equal(table[2, 0], j**2 * (j**2 - 1) / 3)
    assert np.array_equal(table[0, 1], (-1.0) ** j) and np.array_equal(table[1, 1], (-1.0) ** (j + 1) * j**2)
