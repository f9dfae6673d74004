"""The generalised Constantin-Lax-Majda family on the log grid (blowup.equations.gclm), against its closed forms
at a = 0 and 1/2 and against CCF (its member a = -1)."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.linalg import svdvals

from blowup.config import validate
from blowup.equations.ccf.profile import CCF_EQUATION, solve_profile
from blowup.equations.ccf.profile import find_profile as ccf_find_profile
from blowup.equations.ccf.profile import rough_profile as ccf_rough_profile
from blowup.equations.gclm.profile import GCLMEquation, exact_profile
from blowup.errors import ConfigError
from blowup.problem import Mode
from blowup.solvers import log_profile
from blowup.solvers.hilbert import LogGrid, MappedLogGrid, derivative
from blowup.solvers.log_stability import SMOOTH_CUT, LogGridStability, SmoothResidual, own_class, plane_minima

GRID = LogGrid.with_spacing(-40.0, 60.0, 0.1)


def closed_form(a: float, xi: np.ndarray) -> tuple[float, np.ndarray]:
    """(α, -Ω) as the issue states them (v = 1), written out here: a = 0 Ω = -2ξ/(ξ² + 1), a = 1/2
    Ω = -(16/3) ξ/(ξ² + 1)²."""
    if a == 0:
        return 1.0, 2 * xi / (xi**2 + 1)
    return 1 / 3, 16 / 3 * xi / (xi**2 + 1) ** 2


@pytest.mark.parametrize("a", [0.0, 0.5])
def test_the_closed_forms_solve_the_equation_on_the_grid(a):
    """Substituted into the residual and the smoothness condition on the solver's grid: zero to round-off."""
    alpha, p = closed_form(a, np.exp(GRID.s))
    equation = GCLMEquation(a)
    assert np.abs(equation.residual(p, alpha, GRID)).max() < 1e-12
    assert abs(equation.defect(p, alpha, GRID)) < 1e-12
    assert abs(equation.defect(p, alpha * 1.01, GRID)) > 1e-3  # the condition selects α


@pytest.mark.parametrize("a", [0.0, 0.5])
def test_newton_from_a_rough_start_finds_the_exact_exponent_and_profile(a):
    equation = GCLMEquation(a)
    alpha, _ = closed_form(a, np.exp(GRID.s))
    solve = log_profile.newton(equation, equation.rough(1.2 * alpha, GRID), 1.2 * alpha, GRID)
    assert solve.converged and abs(solve.lam - alpha) < 1e-12
    exact_alpha, exact_p = exact_profile(a, GRID)  # the closed form at Newton's scale (max |Ω| at ξ = 1)
    assert exact_alpha == pytest.approx(alpha, abs=1e-15)
    assert np.abs(solve.q - exact_p).max() < 1e-10
    assert solve.offgrid_residual_max() < 1e-12


@pytest.mark.parametrize("a, v", [(0.0, 1.0), (0.5, np.sqrt(3.0))])
def test_the_closed_form_at_the_networks_normalisation_peaks_at_xi_one(a, v):
    """The network holds u_s(0) = 0 at s = 0 itself, Newton at its grid point nearest 0: the network's closed form
    is the one whose |Ω| peaks at ξ = 1 (v = 1 at a = 0, √3 at a = 1/2) whatever the grid's points. Against it,
    not against Newton's (a translation in s away), is the network's profile measured."""
    grid = LogGrid.with_spacing(-40.0, 80.0, 0.15)  # gCLM's profile-0 fine grid
    assert np.abs(grid.s).min() > 0.01  # no point at s = 0: the two normalisations differ
    _, p = exact_profile(a, grid, peak=0.0)
    assert np.abs(p - closed_form(a, np.exp(grid.s) / v)[1]).max() < 1e-14
    _, newtons = exact_profile(a, grid)
    assert np.abs(newtons - p).max() > 1e-3


@pytest.mark.parametrize("smooth", [True, False])
def test_the_matrix_free_jacobian_and_its_transpose_are_the_dense_ones(smooth):
    """Away from any profile (every term counts), column by column against the dense blocks."""
    grid = LogGrid.with_spacing(-30.0, 40.0, 0.7)
    equation = GCLMEquation(-0.3)
    p = equation.rough(1.4, grid) * (1 + 0.1 * np.sin(grid.s))
    system = log_profile._ProfileSystem(equation, grid, smooth)
    free, dense = system.linearise((p, 1.4)), system.dense_linearise((p, 1.4))
    rows, columns = dense.jacobian.shape
    products = np.column_stack([free.jacobian.matvec(unit) for unit in np.eye(columns)])
    transposed = np.column_stack([free.jacobian.rmatvec(unit) for unit in np.eye(rows)])
    assert np.abs(products - dense.jacobian).max() < 1e-12
    assert np.abs(transposed - dense.jacobian.T).max() < 1e-12


@pytest.mark.slow  # seconds: the fast suite stays under 30 s
def test_at_a_minus_one_the_stable_profile_is_ccf_s():
    """gCLM at a = -1 is CCF with α = 1 + λ: found from gCLM's own rough start, its α - 1 is the λ CCF's own
    equation gives on the same grids."""
    interval, spacing = (-40.0, 80.0), (0.2, 0.15)
    equation = GCLMEquation(-1.0)
    _, _, gclm = log_profile.find_profile(
        equation, lambda g: equation.rough(2.25, g), 2.25, (1.9, 2.6), interval, 0.1, 0.02, spacing
    )
    _, _, ccf = ccf_find_profile(lambda g: ccf_rough_profile(1.25, g), 1.25, (0.9, 1.6), interval, 0.1, 0.02, spacing)
    assert gclm.converged and ccf.converged
    assert abs((gclm.lam - 1) - ccf.lam) < 1e-12


@pytest.mark.parametrize("a", [0.0, 0.5])
def test_the_rough_start_at_the_exact_exponent_is_the_closed_form(a):
    """At α = 1 (a = 0) and α = 1/3 (a = 1/2) the rough start is the closed form up to its scale and position."""
    equation = GCLMEquation(a)
    alpha, exact = closed_form(a, np.exp(GRID.s))
    rough = equation.rough(alpha, GRID)
    shift = GRID.s[np.argmax(exact)]  # the start is moved so that its maximum sits at s = 0
    exact = np.interp(GRID.s, GRID.s - shift, exact, left=0.0, right=0.0)
    assert np.abs(rough / rough.max() - exact / exact.max()).max() < 1e-12


@pytest.mark.slow
def test_the_rough_start_enters_the_steep_family_of_ccf_s_second_unstable_profile():
    """At α = 1.7 on CCF's profile-2 scanning grid, Newton at fixed α from the rough start converges to the
    non-smooth family's member, which is -(I + d/ds) of CCF's own member at λ = 0.7 (found from CCF's start)."""
    grid = LogGrid.with_spacing(-36.0, 60.0, 0.005)
    equation = GCLMEquation(-1.0)
    gclm = log_profile._member(equation, equation.rough(1.7, grid), 1.7, grid)
    ccf = log_profile._member(CCF_EQUATION, ccf_rough_profile(0.7, grid), 0.7, grid)
    assert gclm is not None and ccf is not None
    ours, theirs = equation.measures(gclm.q, 1.7, grid), CCF_EQUATION.measures(ccf.q, 0.7, grid)
    assert abs(equation.defect(gclm.q, 1.7, grid) - CCF_EQUATION.defect(ccf.q, 0.7, grid)) < 1e-8  # the same Tq(-∞)
    assert ours["exponent"] == pytest.approx(theirs["exponent_p"], abs=1e-8)  # Ω ~ ξ^κ, Θ ~ |y|^(1+p): κ = p
    assert ours["speed_min"] == pytest.approx(theirs["speed_min"], rel=1e-4)  # the grid's minima, not the curves'
    assert ours["omega_max"] == pytest.approx(theirs["omega_max"], rel=1e-4)


@pytest.mark.slow
def test_the_time_mode_is_found_on_the_default_grids_at_a_half():
    """Time translation gives the eigenvalue ν = 1 exactly; on profile 0's default grids (spacings 0.2 and 0.15)
    at a = 1/2 it is reported as that symmetry, and no unstable mode is."""
    equation = GCLMEquation(0.5)
    coarse, fine = (LogGrid.with_spacing(-40.0, 80.0, h) for h in (0.2, 0.15))
    solves = []
    for grid in (coarse, fine):
        alpha, p = exact_profile(0.5, grid)
        solves.append(log_profile.newton(equation, p, alpha, grid))
    spectrum = LogGridStability(*solves).analyse()
    assert spectrum.counts["symmetry_modes"]["time"] == pytest.approx(1.0, abs=1e-6)
    assert spectrum.counts["n_unstable"] == 0


@pytest.mark.parametrize(
    "a, grid, far",
    [
        (0.0, LogGrid.with_spacing(-40.0, 30.0, 0.1), None),
        (0.5, LogGrid.with_spacing(-40.0, 30.0, 0.1), None),
        (0.5, MappedLogGrid(-40.0, 30.0, 801, ((1.0, 0.5, 3.0),)), None),
        (0.0, MappedLogGrid(-40.0, 30.0, 801, ((1.0, 0.5, 3.0),)), 0.15),
    ],
    ids=["uniform-0", "uniform-half", "mapped-half", "mapped-far-0"],
)
def test_a_profile_widened_is_the_closed_form_on_the_wider_interval(a, grid, far):
    """`widened` (`blowup stability --right`) solves a profile again over [left, 60]: the closed form there (at
    a = 0 its tail, 2/ξ, is still 2e-13 at the old end, continued by its own decay; at 1/2 16/(3ξ³) has decayed to
    round-off), at Newton's normalisation (a uniform grid's point nearest 0, a mapped grid's s = 0: `exact_profile`'s
    peak). The spacing where the grid is densest is kept; far out it is the grid's own or `far`, the coarser."""
    equation, mapped = GCLMEquation(a), isinstance(grid, MappedLogGrid)
    alpha, p = closed_form(a, np.exp(grid.s))
    start = log_profile.newton(equation, p, alpha, grid)
    wide = log_profile.widened(start, log_profile.widened_grid(grid, 60.0, far))
    assert start.converged and wide.converged and (wide.grid.left, wide.grid.right) == (-40.0, 60.0)
    densest, far_out = (lambda g: np.diff(g.s).min()), (lambda g: g.s[-1] - g.s[-2])
    assert 0.9 * densest(grid) < densest(wide.grid) <= 1.01 * densest(grid)
    assert far_out(wide.grid) == pytest.approx(max(far or 0, far_out(grid)), rel=0.1)
    _, exact = exact_profile(a, wide.grid, peak=0.0 if mapped else None)
    assert abs(wide.lam - alpha) < 1e-12 and np.abs(wide.q - exact).max() < 1e-10
    assert wide.offgrid_residual_max() < 1e-12


@pytest.mark.parametrize(
    "grid",
    [LogGrid.with_spacing(-40.0, 80.0, 0.15), MappedLogGrid(-40.0, 80.0, 801, ((1.0, 0.5, 3.0),))],
    ids=["uniform", "mapped"],
)
def test_space_translation_is_an_even_eigenfunction_with_nu_alpha(grid):
    """Moving the a = 1/2 closed form gives the even φ = Ω', χ = ξΩ' = -p_s, with ν = α = 1/3, under the even
    class's operator: every term of it is exercised (the induced velocity V enters with a ≠ 0)."""
    alpha, p = closed_form(0.5, np.exp(grid.s))
    (even,) = GCLMEquation(0.5).other_classes(alpha)
    xi = np.exp(grid.s)
    chi = -(16 / 3) * xi * (1 - 3 * xi**2) / (1 + xi**2) ** 3  # -ξ p'(ξ), p = (16/3) ξ/(ξ² + 1)²
    operator = even.operator(p, alpha, grid)
    assert np.abs(operator @ chi - alpha * chi).max() < 1e-10 * np.abs(chi).max()
    assert np.abs(operator @ chi - 1.01 * alpha * chi).max() > 1e-4 * np.abs(chi).max()


@pytest.mark.parametrize("a", [0.0, 0.5])
def test_the_even_class_far_field_law_is_the_translation_modes_tail(a):
    """Far out an even-class eigenfunction at ν decays like e^(-κs), κ = (ν - (α - 1))/α (`far_field`): the
    translation mode of the closed forms, χ = -ξ p'(ξ) at ν = α, has κ = 1/α, its tail fitted on the grid (a = 0:
    χ ~ 2/ξ, κ = 1; a = 1/2: χ ~ 16/ξ³, κ = 3). A law with the edge at 0 instead of α - 1 would give 1 at a = 1/2."""
    grid = LogGrid.with_spacing(-40.0, 60.0, 0.1)
    xi = np.exp(grid.s)
    alpha, p = closed_form(a, xi)
    chi = -(16 / 3) * xi * (1 - 3 * xi**2) / (1 + xi**2) ** 3  # -ξ p'(ξ), p = (16/3) ξ/(ξ² + 1)²
    if a == 0:
        chi = -2 * xi * (1 - xi**2) / (1 + xi**2) ** 2  # -ξ p'(ξ), p = 2ξ/(ξ² + 1)
    far = (grid.s > 10) & (grid.s < 20)
    fitted = -np.polyfit(grid.s[far], np.log(np.abs(chi[far])), 1)[0]
    (even,) = GCLMEquation(a).other_classes(alpha)
    assert even.far_rate(alpha) == pytest.approx(fitted, rel=1e-6)
    assert even.far_rate(alpha) == pytest.approx(1 / alpha)


@pytest.mark.slow
def test_the_even_class_at_a_minus_one_is_ccf_s_odd_class():
    """At a = -1 even perturbations of Ω are CCF's odd perturbations of θ (χ = -f_s): on the stable profile the same
    analysis finds the same modes, translation (ν = α = 1 + λ) and time, and no unstable one in either class."""
    grids = [LogGrid.with_spacing(-40.0, 80.0, h) for h in (0.25, 0.2)]
    equation = GCLMEquation(-1.0)
    solves = [log_profile.newton(equation, equation.rough(2.25, grid), 2.25, grid) for grid in grids]
    spectrum = LogGridStability(*solves).analyse()
    ccf = LogGridStability(*(solve_profile(1.25, grid) for grid in grids)).analyse()
    counts = spectrum.counts
    assert spectrum.unstable_counts() == {
        "n_unstable": 0.0,
        "n_unstable_even": 0.0,
        "n_unstable_odd": 0.0,
        "n_unstable_in_continuum": 0.0,
        "n_found_by_scan": 0.0,
        "n_scan_not_smooth": 0.0,
    }
    assert [(m.symmetry, m.parity) for m in spectrum.modes] == [("translation", "even"), ("time", "odd")]
    assert [(m.symmetry, m.parity) for m in ccf.modes] == [("translation", "odd"), ("time", "even")]
    assert abs(spectrum.modes[0].nu - ccf.modes[0].nu) < 1e-10 and abs(spectrum.modes[0].nu - solves[1].lam) < 1e-10
    assert counts["resolved_above_by_class"]["even"] == pytest.approx(ccf.counts["resolved_above_by_class"]["odd"])
    shown = counts["tail_shown_above_by_class"]["even"]  # the same far field: the same modes hidden by the interval
    assert shown == pytest.approx(ccf.counts["tail_shown_above_by_class"]["odd"], rel=1e-9)
    assert counts["complete_above_by_class"]["even"] == max(shown, counts["continuum_edge_by_class"]["even"])
    assert counts["grid_artefacts_up_to"] == pytest.approx(ccf.counts["grid_artefacts_up_to"], abs=1e-8)


@pytest.mark.slow
def test_the_scan_finds_the_translation_mode_the_eigenvalues_miss():
    """At a = -0.1 the translation mode ν = α lies inside the even class's continuum (Re ν < 2c₀): the exact pair
    holds on the grid, but no dense eigenvalue comes near it. Without the scan of smooth eigenfunctions the even
    count (and the total) is NaN, never a number, while the odd class's, whose time mode is found, stands; with it
    the mode is found at α within its error bar and every count is one."""
    grids = [LogGrid.with_spacing(-40.0, 80.0, h) for h in (0.2, 0.15)]
    solves = []
    for grid in grids:
        alpha, p = exact_profile(0.0, grid)
        for a in (-0.05, -0.1):  # continued from the exact a = 0 member
            solve = log_profile.newton(GCLMEquation(a), p, alpha, grid)
            alpha, p = solve.lam, solve.q
        solves.append(solve)
    fine = solves[1]
    (even,) = fine.equation.other_classes(fine.lam)
    chi = derivative(fine.q, fine.grid)
    exact_pair = even.operator(fine.q, fine.lam, fine.grid) @ chi - fine.lam * chi
    assert np.abs(exact_pair).max() < 1e-9 * np.abs(chi).max()
    eigenvalues_only = LogGridStability(*solves, scan=False).analyse()
    counts = eigenvalues_only.unstable_counts()
    assert counts["n_unstable_odd"] == 0 and eigenvalues_only.counts["symmetry_modes"]["time"] == pytest.approx(1)
    assert "translation" not in eigenvalues_only.counts["symmetry_modes"]
    assert np.isnan(counts["n_unstable_even"]) and np.isnan(counts["n_unstable"])
    assert eigenvalues_only.counts["untrusted_classes"] == ["even"]
    scanned = LogGridStability(*solves).analyse()
    (translation,) = [m for m in scanned.modes if m.symmetry == "translation"]
    assert translation.found_by == "scan" and translation.parity == "even"
    assert abs(translation.nu - fine.lam) <= max(translation.error, 1e-7)
    assert scanned.unstable_counts() == {
        "n_unstable": 0.0,
        "n_unstable_even": 0.0,
        "n_unstable_odd": 0.0,
        "n_unstable_in_continuum": 0.0,
        "n_found_by_scan": 1.0,
        "n_scan_not_smooth": 0.0,
    }
    assert scanned.counts["scanned_by_class"]["even"] == [even.resolved_above, even.continuum_edge]


@pytest.mark.slow  # SVDs of the stacked matrix at many ν: the fast suite stays under 30 s
def test_the_smooth_residual_is_the_least_singular_value_of_the_stacked_matrix():
    """`SmoothResidual` (Hessenberg form, Givens rotations, a triangular-pentagonal QR and inverse iteration) against
    the dense SVD of [L - ν; (d/ds - 1) on its rows], on the a = 1/2 closed form's own class: the same σ at every ν,
    its vector attains it (real and complex ν), and σ falls to the grid's round-off at the time mode ν = 1 alone."""
    grid = LogGrid.with_spacing(-40.0, 80.0, 0.2)
    alpha, p = closed_form(0.5, np.exp(grid.s))
    operator = own_class(GCLMEquation(0.5), alpha).operator(p, alpha, grid)
    residual = SmoothResidual(operator, grid)
    assert np.all(grid.s[residual.rows] < SMOOTH_CUT) and len(residual.rows) > 10
    identity = np.eye(grid.points)
    smooth_rows = (derivative(identity, grid) - identity)[residual.rows]
    for nu in (0.7, 0.95, 1.0, 1.2, 1.0 + 0.05j):  # complex ν too
        dense = svdvals(np.vstack([operator - nu * identity, smooth_rows]))[-1]
        sigma, chi = residual.least(nu)
        assert sigma == pytest.approx(dense, rel=1e-6, abs=1e-13)
        stacked = np.concatenate([operator @ chi - nu * chi, smooth_rows @ chi])
        assert np.linalg.norm(stacked) == pytest.approx(sigma, rel=1e-6, abs=1e-13)
        assert (sigma < 1e-8) == (nu == 1.0) and (sigma > 1e-6) == (nu != 1.0)
    nu, least = residual.minimum(0.9, 1.1)
    assert abs(nu - 1) < 1e-7 and least < 1e-8
    # a mode found inside the continuum: its error bar reaches σ's minimum beside it (the exact ν = 1), which a mode
    # at the exact ν keeps as it was and one placed 3e-3 off widens to that distance
    values = np.zeros(3)
    exact, off = (Mode(complex(nu), 1e-10, "odd", values) for nu in (1.0, 1.003))
    assert LogGridStability._beside_minimum(residual, exact, 0.01).error < 1e-7
    assert LogGridStability._beside_minimum(residual, off, 0.01).error == pytest.approx(3e-3, abs=1e-7)


def planted_pair(spacing: float, nu: complex) -> tuple[np.ndarray, LogGrid]:
    """The a = 1/2 closed form's own-class operator with a complex pair planted by a rank-2 change: L' = L +
    (VΛ - LV)Wᵀ, WᵀV = I, holds L'χ = νχ exactly for χ = V (1, i)ᵀ, V = (e^s/(1 + e^2s), e^s/(1 + e^2s)²): smooth
    at the origin (χ ~ (1 + i) e^s) and decaying far out, as a genuine mode's eigenfunction is."""
    grid = LogGrid.with_spacing(-40.0, 80.0, spacing)
    alpha, p = closed_form(0.5, np.exp(grid.s))
    operator = own_class(GCLMEquation(0.5), alpha).operator(p, alpha, grid)
    e = np.exp(grid.s)
    v = np.stack([e / (1 + e**2), e / (1 + e**2) ** 2], axis=1)
    block = np.array([[nu.real, nu.imag], [-nu.imag, nu.real]])
    planted = operator + (v @ block - operator @ v) @ np.linalg.solve(v.T @ v, v.T)
    chi = v[:, 0] + 1j * v[:, 1]
    assert np.abs(planted @ chi - nu * chi).max() < 1e-12
    return planted, grid


@pytest.mark.slow
def test_the_complex_scan_finds_a_pair_the_eigenvalues_miss():
    """A complex mode planted inside the continuum (no dense eigenvalue within 0.05 of it, the matrix being far from
    normal there) is found by the complex scan at its ν within the error bar, on two grids, and nothing else is found
    in the square scanned; without the plant, nothing at all."""
    nu = 0.2713 + 0.0937j
    fine, coarse = (planted_pair(spacing, nu) for spacing in (0.15, 0.2))
    grids = [coarse[1], fine[1]]
    eigenvalues = np.linalg.eigvals(fine[0])
    assert np.abs(eigenvalues - nu).min() > 0.05
    found = plane_minima(SmoothResidual(*fine), lambda: SmoothResidual(*coarse), 0.05, 0.45, [])
    assert len(found) == 1
    ((root, error),) = found
    assert abs(root - nu) <= error and error < 1e-4
    plain = [own_class(GCLMEquation(0.5), 1 / 3).operator(closed_form(0.5, np.exp(g.s))[1], 1 / 3, g) for g in grids]
    assert (
        plane_minima(SmoothResidual(plain[1], grids[1]), lambda: SmoothResidual(plain[0], grids[0]), 0.05, 0.45, [])
        == []
    )


@pytest.fixture(scope="module")
def gclm_defaults(compose_train):
    return compose_train("equation=gclm")


@pytest.mark.parametrize(
    "override, key",
    [
        ("equation.a=1.0", "equation.a"),  # the smoothness condition divides by 1 - a
        ("equation.a=0.9", "equation.a"),  # past a_c profile 0's α is not positive
        ("equation.alpha_bracket=[1.5,1.0]", "equation.alpha_bracket"),
        ("equation.newton_spacing=[0.1,0.2]", "equation.newton_spacing"),
        ("equation.entry_alpha=0.5", "equation.entry_alpha"),
        ("equation.alpha_tolerance=0", "equation.alpha_tolerance"),
    ],
)
def test_bad_values_name_their_key(gclm_defaults, overridden, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(overridden(gclm_defaults, override))


def test_an_unstable_profile_off_ccf_needs_its_bracket(gclm_defaults, overridden):
    with pytest.raises(ConfigError, match=r"equation\.alpha_bracket"):
        validate(overridden(gclm_defaults, "profile=1", "equation.a=0.2"))
    validate(overridden(gclm_defaults, "profile=1", "equation.a=-1.0"))  # CCF's defaults there


@pytest.mark.slow
@pytest.mark.parametrize("a, alpha", [(0.0, 1.0), (0.5, 1 / 3)])
def test_the_default_command_at_the_exact_members(tmp_path, run_blowup, a, alpha):
    import json

    run = run_blowup("train", "equation=gclm", f"equation.a={a}", "seed=2", "threads=1", f"hydra.run.dir={tmp_path}")
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert abs(summary["alpha"] - alpha) < 1e-12 and summary["alpha_error_estimate"] < 1e-11
    assert summary["profile_max_error"] < 1e-10 and summary["lambda"] == summary["alpha"] - 1


def test_init_from_refuses_a_run_of_another_equation_or_network(gclm_defaults, overridden, compose_train, tmp_path):
    from omegaconf import OmegaConf

    other = tmp_path / "ccf_run"
    other.mkdir()
    (other / "checkpoint.pt").write_bytes(b"")
    OmegaConf.save(compose_train("equation=ccf"), other / "config.yaml")
    with pytest.raises(ConfigError, match="init_from"):
        validate(overridden(gclm_defaults, f"init_from={other}"))  # another equation
    with pytest.raises(ConfigError, match="init_from"):
        validate(overridden(gclm_defaults, f"init_from={tmp_path / 'none'}"))  # no run there
    OmegaConf.save(compose_train("equation=gclm", "equation.model.width=8"), other / "config.yaml")
    with pytest.raises(ConfigError, match="init_from"):
        validate(overridden(gclm_defaults, f"init_from={other}"))  # another network
    OmegaConf.save(compose_train("equation=gclm", "equation.a=0.2"), other / "config.yaml")
    validate(overridden(gclm_defaults, f"init_from={other}"))  # the same equation and network at another a


def test_init_from_fits_the_guess_to_the_other_runs_profile_and_starts_sigma_at_its_alpha(compose_train):
    """The other run's refined profile (here a = 0's closed form, α = 1, on a finer grid) becomes the guess phase's
    target on this run's grid (the closed form there, to the interpolation's error) and σ starts at its α, the
    network taken over; where the other run's Newton did not converge, the rough guess stays and σ is the other
    network's."""
    import torch

    from blowup.equations import build_problem

    cfg = compose_train("equation=gclm", "equation.a=0", "equation.points=101", "equation.model.width=8")
    problem, other = build_problem(cfg), build_problem(cfg)
    with torch.no_grad():
        other.lam_raw.fill_(1.5)  # the other network's σ, away from α = 1
    fine_grid = LogGrid.with_spacing(problem.grid.left, problem.grid.right, 0.01)
    alpha, exact = exact_profile(0.0, fine_grid)
    rough = problem.q_guess.clone()
    for converged in (False, True):
        fine = SimpleNamespace(q=exact, grid=fine_grid, lam=alpha, converged=converged)
        other.newton_solves = lambda fine=fine: (None, None, fine)
        problem.init_from(other)
        assert all(torch.equal(a, b) for a, b in zip(problem.w.parameters(), other.w.parameters()))
        if not converged:
            assert torch.equal(problem.q_guess, rough) and problem.lam.item() == pytest.approx(other.lam.item())
    peak = float(fine_grid.s[np.argmin(np.abs(fine_grid.s))])
    _, closed_form = exact_profile(0.0, problem.grid, peak=peak)
    assert np.abs(problem.q_guess.flatten().numpy() - closed_form).max() < 1e-4 * closed_form.max()
    assert np.abs(rough.flatten().numpy() - closed_form).max() > 1e-2 * closed_form.max()  # the rough one is not it
    assert problem.lam.item() == pytest.approx(alpha, abs=1e-12)


def test_the_guess_target_holds_the_profile_relative_to_its_envelope_where_the_start_is_at_round_off(compose_train):
    """The guess phase fits u/e. A start as Newton leaves it carries round-off far out (here 1e-16 of its largest,
    added) and ends short of this run's grid; its u/e must still be the profile's: at a = 0 with v = 1,
    u/e = 2(1 + ξ²)/(ξ² + 1) = 2 at every s (e at α = 1), the closed form's own."""
    import torch

    from blowup.equations import build_problem

    cfg = compose_train("equation=gclm", "equation.a=0", "equation.points=101", "equation.model.width=8")
    problem, other = build_problem(cfg), build_problem(cfg)
    start_grid = LogGrid.with_spacing(problem.grid.left + 4, problem.grid.right - 4, 1e-3)
    alpha, exact = exact_profile(0.0, start_grid, peak=0.0)
    noisy = exact + 1e-16 * exact.max() * np.random.default_rng(0).standard_normal(exact.shape)
    fine = SimpleNamespace(q=noisy, grid=start_grid, lam=alpha, converged=True)
    other.newton_solves = lambda: (None, None, fine)
    problem.init_from(other)
    e, _ = problem.envelope(problem.s, torch.tensor(alpha))
    w = (problem.q_guess / e).flatten().numpy()
    assert np.abs(w - 2).max() < 1e-5  # interpolation and the trusted floor; u/e of round-off misses by O(1)


@pytest.mark.slow
def test_a_run_started_from_a_neighbour_finds_the_same_profile(tmp_path, run_blowup):
    """a = 0.1 from the a = 0 run's network and profile, and from scratch: the same α (a sweep that walks a by
    hand gets what each run alone gets)."""
    import json

    common = ["train", "equation=gclm", "seed=1", "threads=1"]
    runs = {"clm": ["equation.a=0"], "fresh": ["equation.a=0.1"], "walked": ["equation.a=0.1"]}
    runs["walked"].append(f"init_from={tmp_path / 'clm'}")
    alphas = {}
    for name, extra in runs.items():
        run = run_blowup(*common, *extra, f"hydra.run.dir={tmp_path / name}")
        assert run.returncode == 0, run.stderr[-2000:]
        alphas[name] = json.loads((tmp_path / name / "summary.json").read_text())["alpha"]
    assert "starting from" in run.stdout + run.stderr
    assert abs(alphas["walked"] - alphas["fresh"]) < 1e-12 and abs(alphas["fresh"] - 1) > 0.1


def test_collocation_at_the_front_moves_the_networks_points_and_their_operators_with_them(compose_train):
    """equation.collocation=front: after init_from the network's points cluster where the other run's profile has
    its least transport speed (a = 1/2's closed form: far out, s = 77), as many as before, and every operator its
    rows apply moves with them: the closed form satisfies the network's own residual rows at the new points, and
    the guess phase's target is the closed form there. Rows left on the uniform points' operators fail by O(1)."""
    import torch

    from blowup.equations import build_problem

    a = 0.5
    cfg = compose_train("equation=gclm", f"equation.a={a}", "equation.points=601", "equation.collocation=front")
    problem, other = build_problem(cfg), build_problem(cfg)
    fine_grid = LogGrid.with_spacing(problem.grid.left, problem.grid.right, 0.01)
    alpha, exact = exact_profile(a, fine_grid, peak=0.0)
    fine = SimpleNamespace(q=exact, grid=fine_grid, lam=alpha, converged=False, equation=GCLMEquation(a))
    other.newton_solves = lambda: (None, None, fine)
    with pytest.raises(ConfigError, match="init_from's run has no converged profile"):  # no front to cluster at
        problem.init_from(other)
    fine.converged = True

    def rows_on_the_closed_form() -> float:  # max |G/e| of the closed form through the network's rows at σ = α
        _, p = exact_profile(a, problem.grid, peak=0.0)
        u = torch.tensor(p).view(-1, 1)
        e, log_slope = problem.envelope(problem.s, problem.lam)
        with torch.no_grad():
            return float((problem.network_residual(u, (problem.diff @ u) / e, e) * e).abs().max())

    uniform_spacing = problem.grid.spacing
    stale = {name: getattr(problem, name).clone() for name in ("hilbert", "diff", "shift_inverse")}
    problem.init_from(other)
    grid = problem.grid
    assert isinstance(grid, MappedLogGrid) and grid.points == 601 and problem.s.shape == (601, 1)
    speed = np.abs(GCLMEquation(a).linearise(exact, alpha, fine_grid).speed)
    densest = grid.s[np.argmin(np.diff(grid.s))]
    assert abs(densest - fine_grid.s[np.argmin(speed)]) < 0.05 and np.diff(grid.s).min() < uniform_spacing / 5
    assert np.allclose(problem.s.flatten().numpy(), grid.s, rtol=0, atol=1e-15)
    _, closed_form = exact_profile(a, grid, peak=0.0)
    assert np.abs(problem.q_guess.flatten().numpy() - closed_form).max() < 1e-4 * closed_form.max()
    assert problem.lam.item() == pytest.approx(alpha, abs=1e-12)
    assert rows_on_the_closed_form() < 1e-6  # 8e-8: the closed form resolved at 601 points, not the rows
    with torch.no_grad():
        for name, matrix in stale.items():
            getattr(problem, name).copy_(matrix)
    assert rows_on_the_closed_form() > 1e-2


def test_a_run_started_from_another_refines_once_whatever_its_network_does(compose_train, monkeypatch):
    """From init_from's profile the refinement does not depend on the network (its start and σ are that profile's):
    done once a run, not again at every acceptance check; a run's own network is refined again when it changes."""
    import torch

    import blowup.equations.log_grid as log_grid
    from blowup.equations import build_problem

    calls = []
    monkeypatch.setattr(log_grid, "find_profile", lambda *args, **kwargs: calls.append(kwargs) or (None, None, None))
    cfg = compose_train("equation=gclm", "equation.a=0.5")
    problem, other, fresh = build_problem(cfg), build_problem(cfg), build_problem(cfg)
    fine_grid = LogGrid.with_spacing(problem.grid.left, problem.grid.right, 0.01)
    alpha, exact = exact_profile(0.5, fine_grid, peak=0.0)
    fine = SimpleNamespace(q=exact, grid=fine_grid, lam=alpha, converged=True, equation=GCLMEquation(0.5))
    other.newton_solves = lambda: (None, None, fine)
    problem.init_from(other)
    for trained in (problem, fresh):
        for _ in range(2):
            trained.newton_solves()
            with torch.no_grad():
                trained.lam_raw.add_(0.1)  # the network moved, as between two acceptance checks
    assert [kwargs["reenter"] for kwargs in calls] == [True, False, False]


def test_collocation_at_the_front_needs_a_run_to_take_it_from(gclm_defaults, overridden):
    with pytest.raises(ConfigError, match="equation.collocation='front' is invalid: allowed uniform, or front with"):
        validate(overridden(gclm_defaults, "equation.collocation=front"))
    with pytest.raises(ConfigError, match="equation.collocation='clustered' is invalid"):
        validate(overridden(gclm_defaults, "equation.collocation=clustered"))
