"""The constrained fit (blowup.equations.sir.ode_fit) against the classical estimator: scipy's least squares around
solve_ivp, on a fast epidemic where a PINN's penalty is most biased."""

from __future__ import annotations

import numpy as np
import pytest

from blowup.equations.sir import problem as sir
from blowup.equations.sir.ode_fit import Collocation, OdeData, fit

FAST = ["equation=sir", "equation.N=763", "equation.initial=[762,1,0]", "equation.horizon=[0,14]"]
FAST_DATA = [
    "equation.data.beta=1.7",
    "equation.data.gamma=0.45",
    "equation.data.grid=15",
    "equation.data.observations=14",
]


def problem_and_start(compose_train, *overrides, off=1.1):
    """The fit's problem in SIR's scaled units, and a start a PINN might leave: the trajectory of rates
    `off` times the truth, and those rates."""
    eq = sir.typed_config(compose_train(*FAST, *FAST_DATA, *overrides))
    obs = sir.synthetic_observations(eq)
    T = eq.horizon[1] - eq.horizon[0]
    problem = OdeData(
        sir.sir_residual,
        np.array(eq.initial) / eq.N,
        (obs.t - eq.horizon[0]) / T,
        obs.counts / eq.N,
        [sir.COMPARTMENTS.index(c) for c in obs.compartments],
    )
    wrong = (off * eq.data.beta, off * eq.data.gamma)
    start = lambda tau: sir.simulate(wrong, eq, eq.horizon[0] + T * tau).T / eq.N  # noqa: E731
    return eq, obs, problem, start, T * np.array(wrong)


def test_collocation_differentiates_and_interpolates_polynomials_exactly():
    grid = Collocation(12)
    tau = grid.tau
    values = np.stack([tau**3 - 2 * tau, np.cos(0 * tau) * 5], 1)
    assert np.allclose(grid.derivative @ values, np.stack([3 * tau**2 - 2, 0 * tau], 1), atol=1e-11)
    assert np.allclose(grid.interpolation(np.array([0.3, 0.77])) @ values[:, 0], [0.3**3 - 0.6, 0.77**3 - 1.54])


def test_noise_free_data_give_the_true_rates_from_a_start_ten_percent_off(compose_train):
    eq, _, problem, start, params = problem_and_start(compose_train, "equation.data.noise=0")
    result = fit(problem, start, params)
    T = eq.horizon[1] - eq.horizon[0]
    assert result.converged and result.residual_max < 1e-10 and result.params_change < 1e-10
    assert np.allclose(result.params / T, [1.7, 0.45], rtol=1e-9, atol=0)


@pytest.mark.parametrize("observed", ["[I]", "[S,R]"])
def test_noisy_data_give_the_least_squares_estimate_and_its_standard_errors(observed, compose_train):
    eq, obs, problem, start, params = problem_and_start(
        compose_train, "equation.data.noise=15", f"equation.data.observed={observed}"
    )
    result = fit(problem, start, params)
    lsq, stderr = sir.least_squares_rates(eq, obs)
    T = eq.horizon[1] - eq.horizon[0]
    assert np.allclose(result.params / T, lsq, rtol=1e-7, atol=0)  # the baseline solves to rtol 1e-10
    assert np.allclose(result.rel_stderr, stderr, rtol=1e-4, atol=0)  # the same Gauss-Newton covariance
    assert not np.allclose(lsq, [1.7, 0.45], rtol=1e-3)  # the noise does move the estimate: not a truth test


def test_a_start_the_trajectory_solve_cannot_follow_is_a_failed_fit_not_an_exception(compose_train):
    _, _, problem, start, params = problem_and_start(compose_train, "equation.data.noise=0")
    result = fit(problem, lambda tau: np.full((len(tau), 3), np.nan), params)
    assert not result.converged and result.residual_max == float("inf")
