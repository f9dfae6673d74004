"""Stability of the stable CCF profile (solvers.log_stability): the time-translation mode against its formula."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from blowup.analysis.stability import write
from blowup.equations.ccf.profile import jacobian_in_q, refine, solve_profile
from blowup.solvers import log_stability as ccf_stability
from blowup.solvers.hilbert import LogGrid, derivative
from blowup.solvers.log_profile import clustered
from blowup.solvers.log_stability import LogGridStability as CCFStability


@pytest.fixture(scope="module")
def stable():
    coarse = solve_profile(1.25, LogGrid.with_spacing(-40.0, 80.0, 0.25))
    return CCFStability(coarse, refine(coarse, LogGrid.with_spacing(-40.0, 80.0, 0.2)))


def test_time_translation_is_an_eigenfunction_with_nu_one(stable):
    """Shifting the blowup time gives φ = λΘ - (1+λ)yΘ', ψ = φ/y = λq - (1+λ)(q + q_s), with ν = 1."""
    solve = stable.fine
    q, lam = solve.q, solve.lam
    psi = lam * q - (1 + lam) * (q + derivative(q, solve.grid))
    jacobian, _ = jacobian_in_q(q, lam, solve.grid)
    assert np.abs(-jacobian.matvec(psi) - psi).max() < 1e-9 * np.abs(psi).max()  # L = -∂R/∂q


def test_space_translation_is_an_odd_eigenfunction_with_nu_one_plus_lambda(stable):
    """Moving the profile gives the odd φ = Θ' = q + q_s, with ν = 1 + λ, under the odd class's operator."""
    solve = stable.fine
    (odd,) = solve.equation.other_classes(solve.lam)
    phi = solve.q + derivative(solve.q, solve.grid)
    operator = odd.operator(solve.q, solve.lam, solve.grid)
    assert np.abs(operator @ phi - (1 + solve.lam) * phi).max() < 1e-9 * np.abs(phi).max()


def test_the_rate_test_sees_past_the_tail_the_interval_truncates():
    """An eigenfunction ~ e^(κs) towards the origin and e^(-s/4) far out still holds ~5e-7 of its maximum at the
    grid's right end; the truncation's error, spread over the grid at a tenth of that (here a cosine), swamps the
    e^s part below ~1e-7. The rate fitted where the function stands above that error is κ: 1 passes, κ = 1.06 and
    0.9 (non-smooth, outside the 0.05 tolerance) fail; a mode that decays fast is judged as before."""
    grid = LogGrid.with_spacing(-36.0, 60.0, 0.04)
    solve = SimpleNamespace(grid=grid)

    def judged(kappa, far):
        chi = np.exp(kappa * grid.s) / (1 + np.exp((kappa + far) * grid.s))
        return ccf_stability._smooth_and_decaying(solve, chi + 0.1 * chi[-1] * np.cos(grid.s), 0.05)

    assert judged(1.0, 0.25) and not judged(1.06, 0.25) and not judged(0.9, 0.25)
    assert judged(1.0, 2.0) and not judged(1.06, 2.0) and not judged(0.9, 2.0)


def test_the_rate_test_sees_past_a_tail_wrapped_round_above_the_usual_stretch():
    """A tail as slow as CCF's profile-1 odd mode's on [-36, 600] (e^(-0.019s), 1e-5 of its maximum at the right
    end) wraps round at that level: above the whole of the usual stretch [-21, -8], where e^s is 3e-4 at most. The
    rate is then fitted nearer the origin, where the function stands above it: κ = 1 passes, 1.06 and 0.9 fail."""
    grid = LogGrid.with_spacing(-36.0, 600.0, 0.15)
    solve = SimpleNamespace(grid=grid)

    def judged(kappa):
        chi = np.exp(kappa * grid.s) / (1 + np.exp((kappa + 0.0192) * grid.s))
        return ccf_stability._smooth_and_decaying(solve, chi + chi[-1] * np.cos(grid.s), 0.05)

    assert judged(1.0) and not judged(1.06) and not judged(0.9)


@pytest.mark.slow  # dense eigenvalues of the stable profile's operator, both classes: the fast suite stays under 30 s
def test_the_stable_profile_has_no_unstable_mode_in_either_class(stable):
    spectrum = stable.analyse()
    modes, counts = spectrum.modes, spectrum.counts
    assert counts["n_unstable"] == counts["n_unstable_even"] == counts["n_unstable_odd"] == 0
    assert counts["candidates_in_continuum"] == [] and counts["classes_not_analysed"] == []
    assert [(m.symmetry, m.parity) for m in modes] == [("translation", "odd"), ("time", "even")]
    assert abs(modes[0].nu - (1 + stable.fine.lam)) < 1e-10 and abs(modes[1].nu - 1) < 1e-10
    # the even class's transport artefacts reach λ - min c (smoothness at the origin makes min c = λ/2), the odd
    # class's λ (its local part has no c)
    assert counts["grid_artefacts_up_to"] == pytest.approx(stable.fine.lam, abs=1e-8)


@pytest.mark.slow
def test_the_first_unstable_profile_has_one_unstable_mode(first_unstable_ccf_profile, tmp_path):
    """One smooth, grid-converged, real mode besides the time mode, inside the range where the grid also has
    transport artefacts, which the tests discard; the scan of both continua finds nothing the eigenvalues missed.
    Written as `blowup stability` writes it, stability.json holds the same counts."""
    _, coarse, fine = first_unstable_ccf_profile
    spectrum = CCFStability(coarse, fine).analyse()
    modes, counts = spectrum.modes, spectrum.counts
    assert counts["n_unstable"] == counts["n_unstable_even"] == 1 and counts["n_unstable_odd"] == 0
    assert set(counts["scanned_by_class"]) == {"even", "odd"} and counts["n_found_by_scan"] == 0
    write(spectrum, tmp_path)
    written = json.loads((tmp_path / "stability.json").read_text())
    assert written["n_unstable"] == 1 and written["n_unstable_in_continuum"] == 0 and written["n_unstable_trusted"]
    assert counts["symmetry_modes"] == {
        "time": pytest.approx(1.0, abs=1e-10),
        "translation": pytest.approx(1 + fine.lam, abs=1e-10),
    }
    unstable = next(m for m in modes if m.symmetry is None)
    assert counts["resolved_above"] < unstable.nu.real < counts["grid_artefacts_up_to"]
    assert abs(unstable.nu.imag) < 1e-10 and unstable.error < 1e-9
    # re-solved on 1215 and 1701 points clustered at its front (`blowup stability` past 2401 points): λ to
    # round-off, the same mode, the same counts in both classes
    solves = [clustered(fine, points) for points in (1215, 1701)]
    assert all(solve.converged and abs(solve.lam - fine.lam) < 1e-12 for solve in solves)
    mapped = CCFStability(*solves).analyse().counts
    assert (mapped["n_unstable_even"], mapped["n_unstable_odd"]) == (1, 0)
    assert mapped["unstable_modes"][0][0] == pytest.approx(unstable.nu.real, abs=1e-9)


@pytest.mark.slow
def test_the_matrix_free_spectrum_reports_what_the_dense_one_does(stable, monkeypatch):
    """Shift-invert Arnoldi on L's action (GMRES inside), forced by DENSE_POINTS = 0, against every eigenvalue of
    the dense matrix: the same reported modes of the profile's class (the time mode alone) with the same
    eigenfunction; the odd class, which has no shift-invert path, is then reported as not analysed. The continuum's
    eigenvalues near Re ν = 0 are not compared: L is far from normal there, and they move by 1e-2 under
    perturbations of 1e-12 (the inner solves' tolerance), in the dense spectrum as much as in this one."""
    dense = stable.analyse()
    monkeypatch.setattr(ccf_stability, "DENSE_POINTS", 0)
    free = stable.analyse()
    assert free.counts["n_unstable"] == dense.counts["n_unstable"] == 0
    assert [m.symmetry for m in free.modes] == ["time"] and abs(free.modes[0].nu - 1) < 1e-10
    assert free.counts["classes_not_analysed"] == ["odd"] and "odd class not analysed" in free.summary
    time_mode = next(m for m in dense.modes if m.symmetry == "time")
    assert np.abs(np.abs(free.modes[0].values) - np.abs(time_mode.values)).max() < 1e-8


@pytest.mark.slow
def test_the_first_unstable_profile_matrix_free_gives_the_dense_mode(first_unstable_ccf_profile, monkeypatch):
    """Past DENSE_POINTS (set to 0 here) the analysis takes the nearest eigenvalues by shift-invert: the same one
    unstable mode and the time mode as the dense spectrum."""
    _, coarse, fine = first_unstable_ccf_profile
    dense = CCFStability(coarse, fine, scan=False).analyse().counts  # the scan is the dense path's alone
    monkeypatch.setattr(ccf_stability, "DENSE_POINTS", 0)
    counts = CCFStability(coarse, fine).analyse().counts
    assert counts["n_unstable"] == dense["n_unstable"] == 1
    assert np.abs(np.subtract(counts["unstable_modes"], dense["unstable_modes"])).max() < 1e-9
    assert counts["symmetry_modes"]["time"] == pytest.approx(1.0, abs=1e-10)
