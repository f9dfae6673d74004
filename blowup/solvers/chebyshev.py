"""Chebyshev numerics shared by the spectral Newton refinement, the stability collocation and SIR's constrained
fit: which polynomials a parity allows, the basis as coefficient columns, and the point sets they are collocated at.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import chebyshev


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
    """(T_j(t) and its first `derivatives` derivatives in t, shape (derivatives + 1, N, number of j); the j used)."""
    js = parity_orders(degree, parity)
    coeffs = np.eye(degree + 1)[:, js]
    out = [chebyshev.chebval(t, coeffs).T]
    for _ in range(derivatives):
        coeffs = chebyshev.chebder(coeffs)
        out.append(chebyshev.chebval(t, coeffs).T)
    return np.stack(out), js


def first_kind_points(n: int) -> np.ndarray:
    """The n Chebyshev points of the first kind in [-1, 1] (roots of T_n, descending): no end points, where the
    equations the solvers collocate can be singular."""
    return np.cos(np.pi * (np.arange(n) + 0.5) / n)


def second_kind_points(degree: int) -> np.ndarray:
    """The degree + 1 Chebyshev extrema in [-1, 1], ascending: both end points included."""
    return -np.cos(np.pi * np.arange(degree + 1) / degree)
