"""Grids clustered at a front (blowup.solvers.hilbert.MappedLogGrid): the Hilbert transform and the derivative
against closed forms, and profiles re-solved on them against the uniform grids' (blowup.solvers.log_profile)."""

import numpy as np
import pytest

from blowup.equations.ccf.profile import CCF_EQUATION, refine, solve_profile
from blowup.equations.gclm.profile import GCLMEquation, exact_profile
from blowup.solvers import hilbert
from blowup.solvers.hilbert import (
    LogGrid,
    MappedLogGrid,
    derivative,
    derivative_transpose,
    hilbert_over_y,
    hilbert_over_y_transpose,
    interpolate,
    operator_matrices,
    resample,
    shifted_derivative_inverse,
    slope_row,
)
from blowup.solvers.log_profile import (
    _ProfileSystem,
    clustered,
    front,
    load_solve,
    newton,
    normalisation_offset,
    normalised_start,
    save_solve,
)
from blowup.solvers.log_stability import LogGridStability

# 100x denser within 0.01 of s = -0.2 than far out: a smooth function sees a strongly non-uniform grid
CLUSTERED = MappedLogGrid(-40.0, 80.0, 1201, ((-0.2, 0.01, 100.0),))
Y = np.exp(CLUSTERED.s)


def test_the_map_clusters_where_asked_and_covers_the_interval():
    spacing = np.diff(CLUSTERED.s)
    at_front = spacing[np.argmin(np.abs(CLUSTERED.s[:-1] + 0.2))]
    assert CLUSTERED.s[0] == pytest.approx(-40.0, abs=1e-12) and CLUSTERED.s[-1] < 80.0
    assert np.all(spacing > 0) and spacing.max() / at_front > 50


def test_even_and_odd_closed_forms():
    """H[1/(1+y²)] = y/(1+y²) and H[y/(1+y²)] = -1/(1+y²), as on the uniform grid (tests/test_hilbert.py)."""
    assert np.abs(hilbert_over_y(-Y / (1 + Y**2), CLUSTERED) - 1 / (1 + Y**2)).max() < 1e-12
    assert np.abs(hilbert_over_y(Y / (1 + Y**2), CLUSTERED) + 1 / (1 + Y**2)).max() < 1e-12


def test_growing_profile_like_closed_form_with_the_front_where_it_bends():
    """Θ = Re (1-iy)^b - 1 (growing like |y|^b), HΘ = Im (1-iy)^b, on a grid clustered at y = 1 too."""
    grid = MappedLogGrid(-40.0, 80.0, 1701, ((0.0, 0.02, 50.0), (-5.0, 0.1, 5.0)))
    y, b = np.exp(grid.s), 0.54
    f = (1 - 1j * y) ** b
    q = np.where(y < 1e-6, b * (1 - b) / 2 * y, (f.real - 1) / y)
    keep = y > 1e-2
    assert np.abs(hilbert_over_y(q, grid) - f.imag / y)[keep].max() < 1e-12


def test_derivative_matrices_transpose_and_shifted_inverse():
    f = 1 / np.cosh(CLUSTERED.s)
    slope = -np.tanh(CLUSTERED.s) / np.cosh(CLUSTERED.s)
    hilbert, diff = operator_matrices(CLUSTERED)
    assert np.abs(derivative(f, CLUSTERED) - slope).max() < 1e-11
    assert np.abs(diff @ f - slope).max() < 1e-11
    assert np.abs(hilbert @ f - (hilbert_over_y(f, CLUSTERED.uniform) + CLUSTERED.correction(f))).max() < 1e-13
    g = np.exp(-((CLUSTERED.s - 1) ** 2))
    assert hilbert_over_y_transpose(g, CLUSTERED) @ f == pytest.approx(g @ hilbert_over_y(f, CLUSTERED), rel=1e-12)
    assert np.abs(shifted_derivative_inverse(f + slope, CLUSTERED) - f).max() < 1e-10


def _forget_dense_operators():
    """The module uses the last grid's dense matrices where they are at hand: a test of the matrix-free products
    must not be handed them."""
    hilbert._LAST_MATRICES.clear()
    hilbert._LAST_SHIFTED.clear()


def test_the_shifted_inverse_and_the_transposes_without_dense_matrices_are_the_dense_ones():
    """On a mapped grid whose dense operators are not at hand, (I + d/ds)⁻¹ and its transpose are solved for (GMRES
    on their action): against the closed form f + f' -> f and the dense solves (the oracle); (d/ds)ᵀ and Tᵀ, what
    a matrix-free Newton's transposed products are made of, against the dense matrices transposed."""
    _forget_dense_operators()
    grid = MappedLogGrid(-40.0, 80.0, 1203, ((0.5, 0.005, 200.0),))  # clustered 200x, nowhere else in this module
    f, slope = 1 / np.cosh(grid.s), -np.tanh(grid.s) / np.cosh(grid.s)
    g = np.exp(grid.s - np.exp(grid.s))  # decays like e^s at the origin, like a profile's unknown
    y = g * np.cos(3 * grid.s)
    solved = [shifted_derivative_inverse(v, grid) for v in (f + slope, g)]
    free = derivative_transpose(y, grid), hilbert_over_y_transpose(y, grid), shifted_derivative_inverse(y, grid, -1.0)
    assert grid not in hilbert._LAST_MATRICES  # no N x N matrix was built for it
    assert np.abs(solved[0] - f).max() < 1e-10
    matrix, diff = operator_matrices(grid)
    shifted = np.eye(grid.points) + diff
    dense = np.linalg.solve(shifted, g)
    assert np.abs(solved[1] - dense).max() < 1e-13 * np.abs(dense).max()
    assert np.abs(shifted_derivative_inverse(g, grid) - dense).max() < 1e-13 * np.abs(dense).max()  # now dense
    for found, expected in zip(free, (diff.T @ y, matrix.T @ y, np.linalg.solve(shifted.T, y)), strict=True):
        assert np.abs(found - expected).max() < 1e-12 * np.abs(expected).max()


def test_interpolation_and_resampling_between_uniform_and_clustered_grids():
    """`resample` (a spline through the 4x finer trigonometric interpolant: a start for Newton) to its spline's
    error, (0.05/4)^4 here; `interpolate` on the same map spectrally."""
    uniform = LogGrid.with_spacing(-40.0, 80.0, 0.05)
    bump = 1 / (2 * np.cosh(uniform.s))
    onto = resample(bump, uniform, CLUSTERED)
    assert np.abs(onto - 1 / (2 * np.cosh(CLUSTERED.s))).max() < 1e-9
    back = resample(onto, CLUSTERED, uniform)
    assert np.abs(back - bump).max() < 1e-9
    finer_values, finer = interpolate(1 / (2 * np.cosh(CLUSTERED.s)), CLUSTERED, 2 * CLUSTERED.points + 1)
    assert isinstance(finer, MappedLogGrid) and finer.fronts == CLUSTERED.fronts
    assert np.abs(finer_values - 1 / (2 * np.cosh(finer.s))).max() < 1e-11
    with pytest.raises(ValueError, match="inside"):
        resample(bump, LogGrid(-10.0, 10.0, 201), CLUSTERED)


def test_the_slope_anywhere_and_resampling_moved():
    """`slope_row` (the normalisation's row) between the grid's points and at one of them, and `resample` with a
    shift (a translated start), against the closed forms."""
    f = 1 / np.cosh(CLUSTERED.s)
    for at in (0.0, -0.1937, 3.3, float(CLUSTERED.s[700])):
        assert slope_row(CLUSTERED, at) @ f == pytest.approx(-np.tanh(at) / np.cosh(at), abs=1e-11)
    uniform = LogGrid.with_spacing(-40.0, 80.0, 0.05)
    assert slope_row(uniform, 0.01) @ (1 / np.cosh(uniform.s)) == pytest.approx(-np.tanh(0.01) / np.cosh(0.01), 1e-11)
    moved = resample(1 / np.cosh(uniform.s), uniform, CLUSTERED, shift=0.3)
    assert np.abs(moved - 1 / np.cosh(CLUSTERED.s + 0.3)).max() < 1e-9


@pytest.mark.parametrize("a", [0.0, 0.5])
def test_gclm_closed_forms_solve_the_equations_on_a_clustered_grid(a):
    """gCLM's exact profiles (a = 0: α = 1; a = 1/2: α = 1/3) solve its discrete equations on a clustered grid,
    through (I + d/ds)⁻¹ and T there, and Newton from them stays put (α to 1e-12)."""
    grid = MappedLogGrid(-40.0, 80.0, 701, ((-0.2, 0.05, 20.0),))
    alpha, p = exact_profile(a, grid)
    equation = GCLMEquation(a)
    assert np.abs(equation.residual(p, alpha, grid)).max() < 1e-10
    assert abs(equation.defect(p, alpha, grid)) < 1e-10
    solve = newton(equation, p, alpha + 1e-3, grid)
    assert solve.converged and abs(solve.lam - alpha) < 1e-12


def test_bad_maps_are_refused():
    with pytest.raises(ValueError, match="odd"):
        MappedLogGrid(-1.0, 1.0, 100, ())
    with pytest.raises(ValueError, match="widths"):
        MappedLogGrid(-1.0, 1.0, 101, ((0.0, 0.0, 1.0),))


@pytest.fixture(scope="module")
def stable():
    coarse = solve_profile(1.25, LogGrid.with_spacing(-40.0, 80.0, 0.2))
    return coarse, refine(coarse, LogGrid.with_spacing(-40.0, 80.0, 0.15))


@pytest.mark.slow  # seconds: the fast suite stays under 30 s
def test_the_stable_profile_on_clustered_grids_is_the_uniform_grids_one(stable, tmp_path):
    """Re-solved on two clustered grids (dense Newton), λ is the uniform grids' to round-off, and so is the
    spectrum: no unstable mode, the time mode ν = 1. A clustered solve saves and loads with its map."""
    _, fine = stable
    solves = [clustered(fine, points) for points in (601, 701)]
    for solve in solves:
        assert solve.converged and isinstance(solve.grid, MappedLogGrid)
        assert abs(solve.lam - fine.lam) < 1e-12 and solve.offgrid_residual_max(1203) < 1e-9
    for solve in solves:  # normalised at s = 0 itself, not at a grid point near it: the two grids agree
        assert abs(normalisation_offset(solve.q, solve.grid)) < 1e-12
    moved_map = MappedLogGrid(solves[1].grid.left, solves[1].grid.right, 701, ((solves[1].grid.fronts[0][0] + 0.05,
                              *solves[1].grid.fronts[0][1:]),))  # fmt: skip
    again = newton(CCF_EQUATION, resample(solves[1].q, solves[1].grid, moved_map), fine.lam, moved_map)
    assert again.converged and np.abs(resample(again.q, again.grid, solves[1].grid) - solves[1].q).max() < 1e-7
    spectrum = LogGridStability(*solves).analyse()
    assert spectrum.counts["n_unstable"] == 0 and spectrum.counts["symmetry_modes"]["time"] == pytest.approx(1, 1e-10)
    save_solve(solves[0], tmp_path / "solve.npz")
    loaded, _ = load_solve(tmp_path / "solve.npz", CCF_EQUATION)
    assert loaded.grid == solves[0].grid and np.array_equal(loaded.q, solves[0].q) and loaded.lam == solves[0].lam


def test_a_start_one_small_step_from_the_profile_is_converged(stable):
    """On a grid clustered to spacings of 2e-3, a start 5e-12 off the profile, oscillating at the grid's scale near
    the centre, leaves the equations 3e-9 off; Newton's one step, within the step tolerance, solves them to
    round-off, and the solve is converged (the residual at the start of that step had called it lost)."""
    _, fine = stable
    grid = MappedLogGrid(fine.grid.left, fine.grid.right, 601, ((0.0, 0.01, 100.0),))
    solve = newton(CCF_EQUATION, normalised_start(fine, grid), fine.lam, grid)
    wiggle = 5e-12 * (-1.0) ** np.arange(grid.points) * np.exp(-((grid.s / 0.02) ** 2))
    assert np.abs(CCF_EQUATION.residual(solve.q + wiggle, solve.lam, grid)).max() > 1e-9
    again = newton(CCF_EQUATION, solve.q + wiggle, solve.lam, grid)
    assert again.steps == 1 and again.converged and abs(again.lam - solve.lam) < 1e-13
    assert np.abs(CCF_EQUATION.residual(again.q, again.lam, grid)).max() < 1e-12


def test_the_low_rank_correction_is_the_exact_one():
    """`compress` factors the correction T - T_σ; its products and their transposes against the kernel summed
    exactly (row blocks, and the dense matrix), and H through it against the closed forms."""
    _forget_dense_operators()
    grid = MappedLogGrid(-40.0, 80.0, 1201, ((0.3, 0.005, 200.0),))
    v, y = np.random.default_rng(1).standard_normal((2, grid.points))
    exact, exact_transposed = grid.correction(v), grid.correction_transpose(y)
    assert np.abs(exact_transposed - grid.correction_matrix().T @ y).max() < 1e-12
    hilbert.compress(grid)
    left, right, _ = hilbert._LOW_RANK[grid]
    assert left.shape[1] == right.shape[0] < grid.points // 2
    assert np.abs(grid.correction(v) - exact).max() < 1e-12 * np.abs(exact).max()
    assert np.abs(grid.correction_transpose(y) - exact_transposed).max() < 1e-12 * np.abs(exact_transposed).max()
    y_grid = np.exp(grid.s)
    assert np.abs(hilbert_over_y(-y_grid / (1 + y_grid**2), grid) - 1 / (1 + y_grid**2)).max() < 1e-12


MAPPED = MappedLogGrid(-40.0, 80.0, 601, ((0.1, 0.05, 20.0),))


@pytest.mark.parametrize("smooth", [True, False])
@pytest.mark.parametrize("equation", [CCF_EQUATION, GCLMEquation(-0.3)], ids=["ccf", "gclm"])
def test_the_matrix_free_jacobian_on_a_mapped_grid_is_the_dense_one(equation, smooth):
    """Newton's products with J and Jᵀ on a mapped grid (the correction factored, (I + d/ds)⁻¹ solved for, the
    normalisation read at s = 0) against the dense Jacobian, on random vectors, away from any profile."""
    _forget_dense_operators()
    hilbert.compress(MAPPED)
    uniform = LogGrid.with_spacing(-40.0, 80.0, 0.2)
    u = resample(equation.rough(1.3, uniform), uniform, MAPPED) * (1 + 0.1 * np.sin(MAPPED.s))
    system = _ProfileSystem(equation, MAPPED, smooth)
    free = system.linearise((u, 1.3))
    rows, columns = free.jacobian.shape
    x, z = np.random.default_rng(2).standard_normal((columns, 3)), np.random.default_rng(3).standard_normal((rows, 3))
    products = np.column_stack([free.jacobian.matvec(column) for column in x.T])
    transposed = np.column_stack([free.jacobian.rmatvec(column) for column in z.T])
    assert MAPPED not in hilbert._LAST_MATRICES
    dense = system.dense_linearise((u, 1.3))
    assert np.abs(free.residual - dense.residual).max() < 1e-12
    assert np.abs(products - dense.jacobian @ x).max() < 1e-11 * np.abs(products).max()
    assert np.abs(transposed - dense.jacobian.T @ z).max() < 1e-11 * np.abs(transposed).max()


def test_matrix_free_newton_on_a_mapped_grid_reaches_the_dense_newton_s_profile(stable):
    """CCF's stable profile re-solved on a grid clustered at its front two ways, from the uniform grid's profile
    moved off in λ: the preconditioned LSMR steps (the correction factored) and the dense QR steps reach the same
    profile, and the uniform grid's λ."""
    _, fine = stable
    centre, width = front(fine)
    grid = MappedLogGrid(fine.grid.left, fine.grid.right, 601, ((centre, width, 1 / width),))
    start = normalised_start(fine, grid)
    _forget_dense_operators()
    free = newton(CCF_EQUATION, start, fine.lam + 1e-4, grid, dense=False)
    dense = newton(CCF_EQUATION, start, fine.lam + 1e-4, grid, dense=True)
    assert free.converged and dense.converged and free.krylov_iterations and not dense.krylov_iterations
    assert abs(free.lam - dense.lam) < 1e-13 and abs(free.lam - fine.lam) < 1e-12
    assert np.abs(free.q - dense.q).max() < 1e-10


@pytest.mark.slow  # seconds: every product solves for (I + d/ds)⁻¹ by GMRES
def test_matrix_free_newton_on_a_mapped_grid_solves_gclm_s_closed_form():
    """gCLM's residual has (I + d/ds)⁻¹ in it, solved for by GMRES in each product on a mapped grid: from the
    closed form at a = 1/2 moved off, the matrix-free Newton reaches α = 1/3 and the dense Newton's profile."""
    equation = GCLMEquation(0.5)
    alpha, p = exact_profile(0.5, MAPPED)
    start = p * (1 + 0.01 * np.cos(MAPPED.s) / np.cosh(MAPPED.s / 5))
    _forget_dense_operators()
    free = newton(equation, start, alpha + 1e-3, MAPPED, dense=False)
    dense = newton(equation, start, alpha + 1e-3, MAPPED, dense=True)
    assert free.converged and dense.converged and free.krylov_iterations and not dense.krylov_iterations
    assert abs(free.lam - alpha) < 1e-12 and abs(free.lam - dense.lam) < 1e-13
    assert np.abs(free.q - dense.q).max() < 1e-10
