"""Chebyshev numerics shared by the spectral Newton refinement, the stability collocation and SIR's constrained
fit: which polynomials a parity allows, the basis as coefficient columns, and the point sets they are collocated at.
"""

from __future__ import annotations

import numpy as np


def parity_orders(degree: int, parity: str | None) -> np.ndarray:
    """The orders j = 0..degree a function of this parity uses: odd j for "odd", even j for "even", all for None."""
    orders = np.arange(degree + 1)
    return orders if parity is None else orders[orders % 2 == (parity == "odd")]


def parity_basis(degree: int, parity: str | None) -> np.ndarray:
    """The basis T_j of one parity as Chebyshev coefficient columns, shape (degree + 1, number of j)."""
    return np.eye(degree + 1)[:, parity_orders(degree, parity)]


def basis_derivatives(
    t: np.ndarray, degree: int, parity: str | None, derivatives: int
) -> tuple[np.ndarray, np.ndarray]:
    """(T_j(t) and its first `derivatives` derivatives in t, shape (derivatives + 1, N, number of j); the j used).

    By the three-term recurrence T_{j+1} = 2t T_j - T_{j-1} and its m-th derivative, T^(m)_{j+1} =
    2m T^(m-1)_j + 2t T^(m)_j - T^(m)_{j-1}: O(N degree) a derivative, where summing each T_j's coefficient column
    (Clenshaw on the identity) costs O(N degree^2) and dominated a Newton correction at high degree."""
    t = np.asarray(t, dtype=float)
    table = np.zeros((derivatives + 1, degree + 1, t.size))
    table[0, 0] = 1.0
    if degree >= 1:
        table[0, 1] = t
        if derivatives >= 1:
            table[1, 1] = 1.0
    for j in range(1, degree):
        table[0, j + 1] = 2 * t * table[0, j] - table[0, j - 1]
        for m in range(1, derivatives + 1):
            table[m, j + 1] = 2 * m * table[m - 1, j] + 2 * t * table[m, j] - table[m, j - 1]
    js = parity_orders(degree, parity)
    return table[:, js].transpose(0, 2, 1), js


def first_kind_points(n: int) -> np.ndarray:
    """The n Chebyshev points of the first kind in [-1, 1] (roots of T_n, descending): no end points, where the
    equations the solvers collocate can be singular."""
    return np.cos(np.pi * (np.arange(n) + 0.5) / n)


def second_kind_points(degree: int) -> np.ndarray:
    """The degree + 1 Chebyshev extrema in [-1, 1], ascending: both end points included."""
    return -np.cos(np.pi * np.arange(degree + 1) / degree)
