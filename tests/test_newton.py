"""Newton corrections (blowup.solvers.newton) against the closed-form Burgers profiles: no training involved.

A profile built from the exact one plus a known perturbation, with a known λ offset, must get that
perturbation and offset back as its correction (to second order), and refining must reach round-off."""

import math

import numpy as np
import pytest
import torch

from blowup.engine.jet import Jet
from blowup.equations.burgers import exact_lambda, exact_profile, residual
from blowup.solvers.newton import ROUND_OFF, Linearization, ProfileSpec, newton_correction, refine


def perturbation_jet(x: torch.Tensor, order: int, size: float) -> Jet:
    """size * sin(X) (1 - X^2/4): odd, zero at X = ±2, with all its Taylor coefficients."""
    sin = [torch.sin(x), torch.cos(x), -torch.sin(x), -torch.cos(x)]
    bump = Jet(
        torch.stack([1 - x**2 / 4, -x / 2, -torch.ones_like(x) / 4] + [torch.zeros_like(x)] * (order - 2))[: order + 1]
    )
    return Jet(torch.stack([sin[d % 4] / math.factorial(d) for d in range(order + 1)]) * size) * bump


@pytest.fixture(name="perturbed")
def perturbed_fixture(exact_profile_jet):
    """`perturbed(k, size)`: the exact profile plus size * sin(X) (1 - X^2/4), as a jet-valued profile."""

    def perturbed(k: int, size: float):
        """U_k + size * sin(X)(1 - X^2/4), as the `profile(x, order)` a Linearization takes."""
        return lambda x, order: Jet(exact_profile_jet(x, k, order).coeffs + perturbation_jet(x, order, size).coeffs)

    return perturbed


def refined_lambda(lin: Linearization, result) -> float:
    """λ after the refinement: the linearisation corrected by each applied correction in turn."""
    for correction in result.applied:
        lin = lin.corrected(correction)
    return lin.scalar


def spec(k: int) -> ProfileSpec:
    return ProfileSpec(domain=(-2.0, 2.0), boundary={2.0: -1.0}, smooth_order=2 * k + 3, parity="odd")


def test_complex_step_operator_is_the_linearised_residual(perturbed, exact_profile_jet):
    """L φ = -λφ + ((1+λ)X + U)φ' + U'φ, written out by hand, against the complex step through F."""
    k, lam = 1, 0.27
    x = torch.linspace(-1.9, 1.9, 17).view(-1, 1)
    lin = Linearization(residual, perturbed(k, 0.0), lam)
    phi = torch.stack([x**3 - x, 3 * x**2 - 1], dim=0)  # φ = X^3 - X with its first derivative
    u = exact_profile_jet(x, k, 1).coeffs
    by_hand = -lam * phi[0] + ((1 + lam) * x + u[0]) * phi[1] + u[1] * phi[0]
    assert torch.allclose(lin.apply(x, phi, 0)[0], by_hand, rtol=0, atol=1e-14)


@pytest.mark.parametrize("k", [0, 2])
def test_correction_returns_the_known_perturbation(k, perturbed):
    size, offset = 1e-5, 3e-6
    lin = Linearization(residual, perturbed(k, size), exact_lambda(k) + offset)
    correction = newton_correction(lin, spec(k), 160)
    grid = np.linspace(-2, 2, 401)
    expected = -size * np.sin(grid) * (1 - grid**2 / 4)
    assert correction.delta_scalar == pytest.approx(-offset, rel=1e-3)  # first order: error O(size * offset)
    assert np.max(np.abs(correction.series(grid) - expected)) < 1e-3 * size


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 4])
def test_refinement_reaches_round_off_and_estimates_its_error(k, perturbed):
    size, offset = 1e-3, 1e-4
    lin = Linearization(residual, perturbed(k, size), exact_lambda(k) + offset)
    result = refine(lin, spec(k), steps=3)
    grid = np.linspace(-2, 2, 801)
    x = torch.from_numpy(grid).view(-1, 1)
    u = perturbed(k, size)(x, 0).coeffs[0, :, 0].numpy() + result.profile(grid)
    profile_error = np.max(np.abs(u - exact_profile(grid, k)))
    assert abs(refined_lambda(lin, result) - exact_lambda(k)) < 1e-14 and profile_error < 1e-12
    # from a profile 1e-3 off, one correction is not enough: its successor measures what it left
    once = refine(lin, spec(k), steps=1)
    left = np.max(
        np.abs(perturbed(k, size)(x, 0).coeffs[0, :, 0].numpy() + once.profile(grid) - exact_profile(grid, k))
    )
    assert 1e-11 < left and once.next.profile_error(grid) == pytest.approx(left, rel=0.1)


@pytest.mark.slow
def test_refinement_from_a_poor_start_runs_until_newton_has_converged(perturbed):
    """A profile 3e-2 off with λ 0.16 off (what a network in a bad basin hands over at k = 0) needs more
    than a fixed few steps; the refinement goes on until the next correction is round-off, and no further."""
    k, size, offset = 0, 3e-2, -0.16
    lin = Linearization(residual, perturbed(k, size), exact_lambda(k) + offset)
    result = refine(lin, spec(k), steps=12)
    grid = np.linspace(-2, 2, 801)
    u = perturbed(k, size)(torch.from_numpy(grid).view(-1, 1), 0).coeffs[0, :, 0].numpy() + result.profile(grid)
    assert abs(refined_lambda(lin, result) - exact_lambda(k)) < 1e-14
    assert np.max(np.abs(u - exact_profile(grid, k))) < 1e-13
    assert 3 < len(result.applied) < 12 and result.next.size() <= ROUND_OFF
