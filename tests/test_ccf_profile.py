"""CCF self-similar profiles by Newton on the log grid (blowup.equations.ccf.profile), against the published λ."""

import numpy as np
import pytest
import scipy.linalg

from blowup.equations.ccf.profile import (
    CCF_EQUATION,
    newton,
    refine,
    residual,
    rough_profile,
    smooth_in_bracket,
    smoothness_defect,
    solve_profile,
)
from blowup.solvers.hilbert import LogGrid, hilbert_over_y, interpolate
from blowup.solvers.log_profile import DIVERGED, _ProfileSystem, _scan_from_entry, family_tangent, householder_lstsq

# Wang, Lai, Gómez-Serrano, Buckmaster et al., arXiv 2509.14185, Fig. 2: the stable and 1st unstable profiles
PUBLISHED_STABLE = 1.1807776628998
PUBLISHED_FIRST_UNSTABLE = 0.6057337012032
PUBLISHED_SECOND_UNSTABLE = 0.4713248638620  # its table's value (arXiv 2509.14185, Fig. 3b)
GRID = LogGrid.with_spacing(-40.0, 80.0, 0.2)


@pytest.fixture(scope="module")
def stable():
    return solve_profile(1.25, GRID)


@pytest.mark.parametrize("start", [1.0, 1.5])
def test_the_stable_profile_from_either_end_of_its_bracket(start):
    found = solve_profile(start, GRID)
    assert found.converged
    assert abs(found.lam - PUBLISHED_STABLE) < 1e-12


def test_the_profile_solves_the_equation_between_grid_points_and_is_smooth_at_the_origin(stable):
    assert stable.offgrid_residual_max() < 1e-10
    assert abs(smoothness_defect(stable.q, stable.lam, GRID)) < 1e-12
    finer = refine(stable, LogGrid.with_spacing(-40.0, 80.0, 0.15))
    assert finer.converged and abs(finer.lam - stable.lam) < 1e-12


def test_far_field_and_origin_behaviour(stable):
    """Not imposed anywhere: Θ ~ |y|^b with b = λ/(1+λ) far out (q ~ e^((b-1)s)), Θ ~ y² at the origin (q ~ e^s),
    and Θ > 0 away from 0 (the sign convention of the issue's equation)."""
    s, q = GRID.s, stable.q
    b = stable.lam / (1 + stable.lam)
    far = (s > 30) & (s < 45)
    assert abs(np.polyfit(s[far], np.log(q[far]), 1)[0] - (b - 1)) < 1e-6
    near = (s > -25) & (s < -10)
    assert abs(np.polyfit(s[near], np.log(q[near]), 1)[0] - 1) < 1e-5
    assert (q[(s > -25) & (s < 45)] > 0).all()


def test_a_wrong_lambda_leaves_a_residual(stable):
    """The residual is not satisfied by the profile at a nearby λ: it resolves λ, not just the shape."""
    assert np.abs(residual(stable.q, stable.lam + 1e-6, GRID)).max() > 1e-8


def test_a_least_squares_minimum_is_not_a_profile():
    """A grid that stops before the tail has decayed (right end s = 25, q still 1e-5 there) makes the system
    inconsistent: Newton's steps settle within a few iterations on a least-squares minimum, λ 3e-5 off. That
    must not count as converged."""
    short = LogGrid.with_spacing(-40.0, 25.0, 0.2)
    result = newton(rough_profile(1.2, short), 1.2, short)
    assert result.steps < 20 and not result.converged
    assert result.offgrid_residual_max() > 1e-7


def test_the_non_smooth_family_has_the_derived_exponent_at_the_origin(stable):
    """Away from a profile's λ, Newton without the smoothness row still solves the equation, and Θ ~ |y|^(1+p)
    at the origin with p = λ/c - 1, c = 1 + λ + Tq(-∞): the derivation of the smoothness condition, checked
    against the slope of log q that nothing imposes."""
    grid = LogGrid.with_spacing(-40.0, 80.0, 0.1)  # the member's far left is at round-off, not at GRID's 1e-10
    member = newton(interpolate(stable.q, GRID, grid.points)[0], 1.0, grid, smooth=False)
    assert member.converged and member.lam == 1.0
    p = 1.0 / (2.0 + hilbert_over_y(member.q, grid)[0]) - 1
    near = (grid.s > -25) & (grid.s < -12)
    assert abs(np.polyfit(grid.s[near], np.log(member.q[near]), 1)[0] - p) < 1e-5
    assert p > 1.1 and abs(smoothness_defect(member.q, 1.0, grid)) > 1e-2


@pytest.mark.slow  # follows the family over a bracket: the fast suite stays under 30 s
def test_following_the_family_finds_the_stable_profile_and_nothing_where_there_is_none():
    scan = smooth_in_bracket(rough_profile(1.45, GRID), 1.45, GRID, (1.0, 1.5), 0.05)
    assert scan.smooth is not None and abs(scan.smooth.lam - PUBLISHED_STABLE) < 1e-8
    empty = smooth_in_bracket(rough_profile(1.45, GRID), 1.45, GRID, (1.3, 1.5), 0.05)
    assert empty.smooth is None and empty.covered == (1.3, 1.5)  # followed to both edges


@pytest.mark.slow
def test_the_first_unstable_profile_from_the_family(first_unstable_ccf_profile):
    """Entered at the bracket's top (a rough start at 0.62 is outside Newton's basin), the family turns smooth
    near 0.6057 on the scanning grid; Newton on grids that resolve the profile's front gives the published λ."""
    scan, coarse, fine = first_unstable_ccf_profile
    assert abs(scan.smooth.lam - PUBLISHED_FIRST_UNSTABLE) < 1e-4 and scan.covered[1] == 0.9  # entered at the top
    assert coarse.converged and fine.converged
    assert abs(fine.lam - PUBLISHED_FIRST_UNSTABLE) < 1e-12 and abs(fine.lam - coarse.lam) < 1e-11
    assert fine.offgrid_residual_max() < 1e-8
    dense = newton(
        interpolate(scan.smooth.q, scan.smooth.grid, coarse.grid.points)[0], scan.smooth.lam, coarse.grid, dense=True
    )
    assert dense.converged and abs(dense.lam - coarse.lam) < 1e-13  # the matrix-free solve's λ, to round-off


@pytest.mark.slow  # profile 2's family on its 19201-point scanning grid: about two minutes
def test_a_start_at_the_second_unstable_profile_that_the_scanning_grid_does_not_resolve_reenters_the_family():
    """A start at profile 2's λ (init_from's refined profile; here the scanning grid's own smooth member moved to
    0.4713, which lands on the same branch) is a member whose branch Newton loses or leaves at every step up (for
    a steeper member with the same sign of the defect): followed from it, the family turns smooth nowhere in the
    bracket. With reenter, the family is entered at 0.7 as from a rough start and turns smooth within the scanning
    grid's error of the published 0.4713248638620, where the default run finds it."""
    grid, bracket, entry = LogGrid.with_spacing(-36.0, 60.0, 0.005), (0.46, 0.48), 0.7
    entered = _scan_from_entry(CCF_EQUATION, grid, bracket, 0.02, entry)  # the default run's path
    assert entered.smooth is not None and abs(entered.smooth.lam - PUBLISHED_SECOND_UNSTABLE) < 2e-4
    start = newton(entered.smooth.q, 0.4713, grid, smooth=False, tolerance=1e-5)
    assert start.converged and smoothness_defect(start.q, 0.4713, grid) < 0
    followed = smooth_in_bracket(start.q, 0.4713, grid, bracket, 0.02, entry)
    assert followed.smooth is None and followed.covered[0] < 0.4713 < followed.covered[1]
    reentered = smooth_in_bracket(start.q, 0.4713, grid, bracket, 0.02, entry, reenter=True)
    assert reentered.smooth is not None and abs(reentered.smooth.lam - PUBLISHED_SECOND_UNSTABLE) < 2e-4


@pytest.mark.parametrize("smooth", [True, False])
def test_the_matrix_free_jacobian_and_its_transpose_are_the_dense_ones(stable, smooth):
    """Newton's matrix-free products, column by column, against the dense Jacobian (`linearisation`)."""
    grid = LogGrid.with_spacing(-40.0, 80.0, 0.5)
    q = interpolate(stable.q, GRID, grid.points)[0] * 1.01  # away from the profile: every term of J matters
    system = _ProfileSystem(CCF_EQUATION, grid, smooth)
    free, dense = system.linearise((q, 1.2)), system.dense_linearise((q, 1.2))
    rows, columns = dense.jacobian.shape
    products = np.column_stack([free.jacobian.matvec(unit) for unit in np.eye(columns)])
    transposed = np.column_stack([free.jacobian.rmatvec(unit) for unit in np.eye(rows)])
    assert np.abs(products - dense.jacobian).max() < 1e-13
    assert np.abs(transposed - dense.jacobian.T).max() < 1e-13
    assert np.abs(free.residual - dense.residual).max() < 1e-15


def test_matrix_free_and_dense_newton_reach_the_same_profile():
    """The same equations solved two ways: the preconditioned LSMR steps and Householder QR of the dense Jacobian."""
    free, dense = (newton(rough_profile(1.25, GRID), 1.25, GRID, dense=flag) for flag in (False, True))
    assert free.converged and dense.converged
    assert abs(free.lam - dense.lam) < 1e-13 and np.abs(free.q - dense.q).max() < 1e-12
    assert len(free.krylov_iterations) == free.steps and not dense.krylov_iterations


def test_householder_least_squares_is_the_svd_solution_of_a_tall_ill_conditioned_system():
    """The oracle: the SVD's least-squares solution (LAPACK's gelsd), on a system shaped like Newton's (one row more
    than unknowns) with singular values spread over ten decades, inconsistent, so the least-squares part counts."""
    rng = np.random.default_rng(0)
    n = 60
    left, _ = np.linalg.qr(rng.standard_normal((n + 1, n + 1)))
    right, _ = np.linalg.qr(rng.standard_normal((n, n)))
    jac = left[:, :n] @ np.diag(np.logspace(0, -10, n)) @ right.T
    rhs = rng.standard_normal(n + 1)
    oracle = scipy.linalg.lstsq(jac, rhs, lapack_driver="gelsd")[0]
    x = householder_lstsq(jac, rhs)
    assert np.linalg.norm(x - oracle) <= 1e-6 * np.linalg.norm(oracle)  # cond 1e10: cond x eps is all either can say
    normal = [np.linalg.norm(jac.T @ (jac @ y - rhs)) for y in (x, oracle)]  # the normal equations, to round-off
    assert normal[0] <= 10 * normal[1]


def test_newton_gives_up_once_the_residual_has_grown_a_thousandfold(stable):
    """Past DIVERGED times the start's residual, Newton has left every basin: it stops (no linearisation) rather
    than spend its remaining steps on Krylov solves that cannot converge. Not-a-number stops it too."""
    system = _ProfileSystem(CCF_EQUATION, GRID, smooth=True)
    start = rough_profile(1.25, GRID)
    assert system.linearise((start, 1.25)) is not None
    assert np.abs(residual(start * 100, 1.25, GRID)).max() > DIVERGED * np.abs(residual(start, 1.25, GRID)).max()
    assert system.linearise((start * 100, 1.25)) is None
    assert system.linearise((start * np.nan, 1.25)) is None
    assert system.linearise((stable.q, stable.lam)) is not None


def test_the_family_tangent_is_the_members_derivative_in_lambda(stable):
    """du/dλ along the non-smooth family from one linear solve against members solved by Newton at λ ± h: the
    central difference agrees to O(h²), far closer than the one-sided one (O(h)) does."""
    lam, h = stable.lam - 0.05, 1e-3
    member, up, down = (newton(stable.q, at, GRID, smooth=False) for at in (lam, lam + h, lam - h))
    assert member.converged and up.converged and down.converged
    tangent = family_tangent(member)
    central = np.abs(tangent - (up.q - down.q) / (2 * h)).max()
    one_sided = np.abs(tangent - (up.q - member.q) / h).max()
    assert central < 1e-5 * np.abs(tangent).max() and central < 1e-2 * one_sided
