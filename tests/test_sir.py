"""SIR: data generation, CSV validation, the residual on the exact solution, and one run through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.integrate import solve_ivp
from torch import nn

from blowup.equations.sir import problem as sir
from blowup.errors import ConfigError
from blowup.solvers.lm import pointwise_jacobian


@pytest.fixture(scope="module")
def make_cfg(compose_train, overridden):
    """`equation=sir` with these value overrides (composed once; the values set on a copy)."""
    defaults = compose_train("equation=sir")
    return lambda *overrides: overridden(defaults, *overrides)


def rk4(eq: sir.SIRConfig, rates, days: np.ndarray, dt: float = 0.01) -> np.ndarray:
    """A plain fixed-step RK4, independent of solve_ivp, sampled at whole multiples of dt."""
    beta, gamma = rates

    def rhs(y):
        infection = beta * y[0] * y[1] / eq.N
        return np.array([-infection, infection - gamma * y[1], gamma * y[1]])

    y, out = np.array(eq.initial, dtype=float), {}
    marks = set(np.rint(days / dt).astype(int))
    for n in range(int(round(days.max() / dt)) + 1):
        if n in marks:
            out[n] = y.copy()
        k1 = rhs(y)
        k2 = rhs(y + dt / 2 * k1)
        k3 = rhs(y + dt / 2 * k2)
        k4 = rhs(y + dt * k3)
        y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return np.stack([out[n] for n in np.rint(days / dt).astype(int)], 1)


def test_simulation_conserves_people_keeps_the_sir_invariant_and_matches_rk4(make_cfg):
    eq = sir.typed_config(make_cfg())
    beta, gamma = eq.data.beta, eq.data.gamma
    days = np.arange(0.0, 61.0, 5.0)
    S, I, R = sir.simulate((beta, gamma), eq, days)
    assert np.allclose(S + I + R, eq.N, rtol=0, atol=1e-7 * eq.N)
    # dS/dR = -beta S / (gamma N) integrates to S = S0 exp(-beta R / (gamma N)) when R0 = 0
    assert np.allclose(S, eq.initial[0] * np.exp(-beta * R / (gamma * eq.N)), rtol=1e-8)
    assert I.max() > 100  # an actual epidemic, not a trivial flat curve
    assert np.abs(np.stack([S, I, R]) - rk4(eq, (beta, gamma), days)).max() < 1e-5


def test_synthetic_observations_are_seeded_noisy_counts_at_grid_times(make_cfg):
    eq = sir.typed_config(make_cfg("equation.data.observed=[S,I]"))
    obs = sir.synthetic_observations(eq)
    grid = np.linspace(*eq.horizon, eq.data.grid)
    assert obs.compartments == ["S", "I"] and obs.counts.shape == (eq.data.observations, 2)
    assert np.all(np.diff(obs.t) > 0) and np.isin(obs.t, grid).all()
    assert obs.counts.min() >= 0 and obs.counts.max() <= eq.N
    noise = obs.counts - sir.simulate(obs.true_rates, eq, obs.t)[:2].T
    assert 10 < noise.std() < 30  # sigma 20 people (clipping only trims the tails)
    assert np.array_equal(sir.synthetic_observations(eq).counts, obs.counts)
    other_seed = sir.typed_config(make_cfg("equation.data.observed=[S,I]", "equation.data.seed=1"))
    assert not np.array_equal(sir.synthetic_observations(other_seed).t, obs.t)


def test_least_squares_baseline_recovers_exact_rates_and_its_error_bars_scale_with_the_noise(make_cfg):
    eq = sir.typed_config(make_cfg("equation.data.noise=0"))
    (beta, gamma), _ = sir.least_squares_rates(eq, sir.synthetic_observations(eq))
    assert beta == pytest.approx(0.3, rel=1e-6) and gamma == pytest.approx(0.1, rel=1e-6)
    stderr = {}
    for noise in (20, 40):
        eq = sir.typed_config(make_cfg(f"equation.data.noise={noise}"))
        _, stderr[noise] = sir.least_squares_rates(eq, sir.synthetic_observations(eq))
    assert np.all((stderr[20] > 1e-3) & (stderr[20] < 0.1))
    assert np.all((1.6 < stderr[40] / stderr[20]) & (stderr[40] / stderr[20] < 2.4))


class ChebyshevSolution(nn.Module):
    """The exact (s, i, r)(τ), solved afresh in scaled units and summed as a Chebyshev series by Clenshaw's
    recurrence: only +, - and *, so it runs on tensors (autograd) and jets (ntp) like the network it replaces."""

    def __init__(self, eq: sir.SIRConfig, degree: int = 60):
        super().__init__()
        days = eq.horizon[1] - eq.horizon[0]
        beta, gamma = days * eq.data.beta, days * eq.data.gamma

        def rhs(_, y):
            return [-beta * y[0] * y[1], beta * y[0] * y[1] - gamma * y[1], gamma * y[1]]

        x = np.sort(np.cos(np.pi * (np.arange(2 * degree) + 0.5) / (2 * degree)))
        y = solve_ivp(
            rhs, (0, 1), np.array(eq.initial) / eq.N, method="DOP853", t_eval=(x + 1) / 2, rtol=1e-13, atol=1e-15
        ).y
        self.register_buffer("coeffs", torch.tensor(np.polynomial.chebyshev.chebfit(x, y.T, degree)))

    def forward(self, tau):
        x = (2 * tau - 1) * torch.ones(3)
        b1, b2 = x * 0, x * 0
        for c in self.coeffs.flip(0)[:-1]:
            b1, b2 = c + 2 * x * b1 - b2, b1
        return self.coeffs[0] + x * b1 - b2


@pytest.mark.parametrize("backend", ["ntp", "autograd"])
def test_every_term_vanishes_on_the_exact_solution_and_only_there(make_cfg, backend):
    cfg = make_cfg("equation.data.noise=0", "equation.data.observed=[S,R]", "sobolev=1", f"backend.name={backend}")
    problem = sir.build(cfg)
    problem.net = ChebyshevSolution(problem.cfg)
    problem.log_rates.data = torch.tensor(np.log([0.3, 0.1]))
    for term, inputs in problem.terms().items():
        assert problem(term, *inputs).abs().max() < 1e-7, term
    assert problem("ode", problem.tau_ode).shape == (problem.cfg.points, 2 * 3)  # residual and derivative, 3 equations
    problem.log_rates.data += torch.tensor([0.01, 0.0])  # 1% off in beta: the residual must notice
    assert problem("ode", problem.tau_ode).abs().max() > 1e-3


def test_terms_are_pointwise_so_lm_jacobians_are_exact(make_cfg):
    problem = sir.build(make_cfg("equation.points=7", "equation.model.width=4", "equation.model.depth=2"))
    params = {name: p.detach() for name, p in problem.named_parameters()}

    def all_residuals(values):
        return torch.cat(
            [
                torch.func.functional_call(problem, values, (term, *inputs)).flatten()
                for term, inputs in problem.terms().items()
            ]
        )

    full = torch.func.jacrev(all_residuals)(params)
    assert torch.allclose(pointwise_jacobian(problem), torch.cat([full[n].flatten(1) for n in params], 1), atol=1e-12)


def write_csv(tmp_path, text: str):
    path = tmp_path / "cases.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("t,S\n0,990\n1,980\n", "lacks column(s) I"),
        ("t,I\n0,10\n1,\n2,14\n", "NaN in column(s) I"),
        ("t,I\n0,10\n1,-3\n", "negative counts in column(s) I"),
        ("t,I\n0,10\n2,12\n1,11\n", "unsorted times at row 2"),
        ("t,I\n0,10\n1,11\n1,12\n", "duplicate times at row 2"),
        ("t,I\n0,10\n61,12\n", "outside equation.horizon"),
        ("t,I\n0,10\n1,ten\n", "non-numeric values in column(s) I"),
    ],
)
def test_bad_csv_is_one_line_naming_the_problem(tmp_path, make_cfg, text, complaint):
    path = write_csv(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        sir.check_config(make_cfg(f"equation.data.path='{path}'"))
    message = str(err.value)
    assert message.startswith("equation.data.path=") and complaint in message and "\n" not in message


def test_missing_csv_and_bad_values_are_config_errors(tmp_path, make_cfg):
    with pytest.raises(ConfigError, match="no such file"):
        sir.check_config(make_cfg(f"equation.data.path='{tmp_path / 'absent.csv'}'"))
    for override, key in [
        ("equation.data.observed=[X]", "equation.data.observed"),
        ("equation.initial=[990,10,5]", "equation.initial"),
        ("equation.data.noise=-1", "equation.data.noise"),
    ]:
        with pytest.raises(ConfigError, match=key):
            sir.check_config(make_cfg(override))


def test_csv_data_has_no_truth_but_a_baseline(tmp_path, make_cfg):
    eq = sir.typed_config(make_cfg("equation.data.noise=0"))
    exact = sir.synthetic_observations(eq)
    path = write_csv(tmp_path, pd.DataFrame({"t": exact.t, "I": exact.counts[:, 0], "S": 0.0}).to_csv(index=False))
    problem = sir.build(
        make_cfg(
            f"equation.data.path='{path}'", "equation.model.width=4", "equation.points=11", "equation.refine=false"
        )
    )
    summary = problem.evaluate()
    assert summary["beta_true"] is None and summary["gamma_rel_error"] is None
    assert summary["beta_lsq"] == pytest.approx(0.3, rel=1e-6)
    assert "S_true" not in problem.solution()


def test_reported_gaps_are_relative_to_the_truth_and_to_least_squares(make_cfg):
    """Rates set by hand 20% and 5% above and below the truth (0.3, 0.1), noise-free data (so least squares lands
    on the truth): every gap is |rate - reference| / reference, with the reference its name says."""
    problem = sir.build(
        make_cfg("equation.data.noise=0", "equation.refine=false", "equation.points=11", "equation.model.width=4")
    )
    problem.log_rates.data = torch.tensor(np.log([0.36, 0.095]))
    summary = problem.evaluate()
    assert (summary["beta"], summary["gamma"]) == pytest.approx((0.36, 0.095), rel=1e-14)
    assert summary["beta_lsq_rel_error"] < 1e-6 and summary["gamma_lsq_rel_error"] < 1e-6
    for name, gap in (("beta", 0.2), ("gamma", 0.05)):
        assert summary[f"{name}_rel_error"] == pytest.approx(gap, rel=1e-12)
        assert summary[f"{name}_vs_lsq"] == pytest.approx(gap, rel=1e-5)
        assert summary[f"{name}_network_vs_lsq"] == pytest.approx(gap, rel=1e-5)


@pytest.mark.slow
def test_cli_smoke_run_writes_rates_and_summary(run_blowup, check_png, make_cfg, tmp_path):
    run = run_blowup(
        "train", "equation=sir", "experiment=smoke", "equation.data.noise=0", f"hydra.run.dir={tmp_path}", timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["equation"] == "sir" and summary["status"] == "completed"
    assert summary["beta_true"] == 0.3 and summary["gamma_true"] == 0.1
    # noise-free data: the reported rates are the true ones
    assert summary["beta"] == pytest.approx(0.3, rel=1e-6) and summary["gamma"] == pytest.approx(0.1, rel=1e-6)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert {"beta", "gamma", "loss_ode", "loss_data", "loss_initial"} <= set(metrics.columns)
    assert np.isfinite(metrics[["beta", "gamma"]]).all().all() and (metrics[["beta", "gamma"]] > 0).all().all()
    solution = pd.read_csv(tmp_path / "solution.csv")
    assert len(solution) == 1001 and {"t", "S", "I", "R", "S_true", "I_true", "R_true"} <= set(solution.columns)
    eq = sir.typed_config(make_cfg())  # N and the initial counts the run used
    truth = rk4(eq, (0.3, 0.1), solution.t.to_numpy())  # an independent integrator
    assert np.abs(solution[["S_true", "I_true", "R_true"]].to_numpy().T - truth).max() < 1e-5
    assert np.abs(solution[["S", "I", "R"]].to_numpy().T - truth).max() < 1e-3 * eq.N
    check_png(tmp_path / "fit.png", 1320, 462)  # figsize (12, 4.2) at 110 dpi


FAST_EPIDEMIC = [  # as in scripts/sir_table.py: N = 763, one case at t = 0, the infected counted daily
    "equation=sir",
    "equation.N=763",
    "equation.initial=[762,1,0]",
    "equation.horizon=[0,14]",
    "equation.data.beta=1.7",
    "equation.data.gamma=0.45",
    "equation.data.grid=15",
    "equation.data.observations=14",
    "equation.data.noise=15",
]


@pytest.mark.slow
def test_a_fast_epidemic_lands_on_the_least_squares_estimate_with_its_error_bars(tmp_path, compose_train):
    """Tiny training, a fast epidemic: the reported rates are the baseline's to 0.1% (in fact to its own
    solver tolerance), the reported trajectory meets the ODE, the standard errors agree; the network alone
    (refine=false) does not meet the ODE, and says so."""
    from blowup.training import trainer

    summary = trainer.train(compose_train(*FAST_EPIDEMIC, "experiment=smoke", "device=cpu"), tmp_path / "fit")
    assert summary["status"] == "completed" and summary["residual_max"] <= 1e-8
    for name in ("beta", "gamma"):
        assert summary[f"{name}_vs_lsq"] <= 1e-3
        assert summary[f"{name}_rel_stderr"] == pytest.approx(summary[f"{name}_lsq_rel_stderr"], rel=0.2)
    network = trainer.train(compose_train(*FAST_EPIDEMIC, "experiment=smoke", "equation.refine=false"), tmp_path / "n")
    assert network["status"] == "not_converged" and network["residual_max"] > 1e-8
    assert network["failure"].startswith("residual_max")
