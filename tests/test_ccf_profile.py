"""CCF self-similar profiles by Newton on the log grid (blowup.equations.ccf.profile), against the published λ."""

import numpy as np
import pytest

from blowup.equations.ccf.hilbert import LogGrid, hilbert_over_y, interpolate
from blowup.equations.ccf.profile import (
    newton,
    refine,
    residual,
    rough_profile,
    smooth_in_bracket,
    smoothness_defect,
    solve_profile,
)

# Wang, Lai, Gómez-Serrano, Buckmaster et al., arXiv 2509.14185, Fig. 2: the stable and 1st unstable profiles
PUBLISHED_STABLE = 1.1807776628998
PUBLISHED_FIRST_UNSTABLE = 0.6057337012032
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
