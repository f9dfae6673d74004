"""Stability of the stable CCF profile (blowup.ccf_stability): the time-translation mode against its formula."""

import numpy as np
import pytest

from blowup.ccf_profile import refine, solve_profile
from blowup.ccf_stability import CCFStability, _operator
from blowup.hilbert import LogGrid, derivative


@pytest.fixture(scope="module")
def stable():
    coarse = solve_profile(1.25, LogGrid.with_spacing(-40.0, 80.0, 0.2))
    return CCFStability(coarse, refine(coarse, LogGrid.with_spacing(-40.0, 80.0, 0.15)))


def test_time_translation_is_an_eigenfunction_with_nu_one(stable):
    """Shifting the blowup time gives φ = λΘ - (1+λ)yΘ', ψ = φ/y = λq - (1+λ)(q + q_s), with ν = 1."""
    solve = stable.fine
    q, lam = solve.q, solve.lam
    psi = lam * q - (1 + lam) * (q + derivative(q, solve.grid))
    operator, _ = _operator(solve)
    assert np.abs(operator @ psi - psi).max() < 1e-9 * np.abs(psi).max()


def test_the_stable_profile_has_no_unstable_mode_in_the_resolved_part(stable):
    modes, counts = stable.analyse()
    assert counts["n_unstable"] == 0 and counts["candidates_in_continuum"] == []
    assert [m.symmetry for m in modes] == ["time"] and abs(modes[0].nu - 1) < 1e-10
    # the continuum's edge is λ - min c, and smoothness at the origin makes min c = λ/2
    assert counts["resolved_above"] == pytest.approx(stable.fine.lam / 2, abs=1e-8)
