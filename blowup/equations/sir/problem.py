"""SIR epidemic: recover the transmission rate β and recovery rate γ from noisy counts.

dS/dt = -βSI/N, dI/dt = βSI/N - γI, dR/dt = γI. The network sees scaled time τ = (t - t0)/T on
[0, 1] and returns proportions (s, i, r) = (S, I, R)/N, so inputs, outputs and the rates Tβ, Tγ are
all O(1). A classical fit (solve_ivp inside least_squares) on the same data is the baseline to match.

The network weighs data against the ODE, so where the data do not fit the model exactly its rates are
biased; the reported rates come from a second stage started from it (`blowup.equations.sir.ode_fit`) that minimises
the data misfit with the ODE as a constraint, and so lands on the least-squares estimate, with
Gauss-Newton standard errors. The network's own rates are reported beside them (`*_network`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares
from torch import Tensor, nn

from blowup.engine.derivatives import input_jet
from blowup.engine.jet import Jet
from blowup.engine.models import MLP, ModelConfig
from blowup.equations.sir.ode_fit import OdeData, OdeFit, fit
from blowup.errors import ConfigError, require, require_all
from blowup.problem import Problem, typed_equation_config

COMPARTMENTS = ("S", "I", "R")


@dataclass
class SIRData:
    path: str | None = None  # CSV with column t and the observed compartments; None: synthetic data
    observed: list[str] = field(default_factory=lambda: ["I"])
    beta: float = 0.3  # true rates of the synthetic data
    gamma: float = 0.1
    observations: int = 30  # synthetic observation times, drawn without replacement ...
    grid: int = 61  # ... from this many evenly spaced times on the horizon
    noise: float = 20.0  # Gaussian sigma in people; noisy counts are clipped to [0, N]
    seed: int = 0


@dataclass
class SIRWeights:
    residual: float = 1.0  # the ODE residual on the collocation points
    sobolev: float = 1.0  # its τ-derivatives 1..sobolev
    data: float = 1.0  # misfit to the observed proportions
    initial: float = 1.0e4  # (S, I, R)(t0) = initial, held hard: the baseline takes it as known


@dataclass
class SIRConfig:
    name: str = "sir"
    N: float = 1000.0
    initial: tuple[float, float, float] = (990.0, 10.0, 0.0)
    horizon: tuple[float, float] = (0.0, 60.0)
    guess: tuple[float, float] = (0.2, 0.2)  # starting (β, γ) of the PINN and of the baseline
    data: SIRData = field(default_factory=SIRData)
    points: int = 101
    weights: SIRWeights = field(default_factory=SIRWeights)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(width=16, depth=2))
    eval_points: int = 1001
    refine: bool = True  # report the constrained fit started from the network (false: the network's own rates)
    tolerance: float = 1e-8  # the largest ODE residual (scaled units) of a "completed" run's reported trajectory


def sir_residual(u: Jet, rates: Tensor) -> Jet:
    """The scaled SIR residual from (s, i, r) as a jet in τ and rates (Tβ, Tγ): one order lower than u,
    components on the last dim."""
    s, i, r = u[..., 0], u[..., 1], u[..., 2]
    infection, recovery = rates[0] * s * i, rates[1] * i
    residuals = (s.derivative() + infection, i.derivative() - infection + recovery, r.derivative() - recovery)
    return Jet(torch.stack([f.coeffs for f in residuals], -1))


@dataclass
class Observations:
    t: np.ndarray  # (n,) days, strictly increasing
    counts: np.ndarray  # (n, len(compartments)) people
    compartments: list[str]
    true_rates: tuple[float, float] | None  # known for synthetic data only


def tensor(values) -> Tensor:
    return torch.tensor(np.array(values, dtype=float), dtype=torch.get_default_dtype())


def relative_gap(value: float, reference: float | None) -> float | None:
    return None if reference is None else float(abs(value - reference) / abs(reference))


def typed_config(cfg: DictConfig) -> SIRConfig:
    return typed_equation_config(cfg, SIRConfig)


def check_config(cfg: DictConfig) -> None:
    require(cfg.profile == 0, "profile", cfg.profile, "0 (sir has one solution, no profile index)")
    eq = typed_config(cfg)
    d = eq.data
    require_all(
        [
            ("N", eq.N, eq.N > 0, "a number > 0"),
            (
                "initial",
                eq.initial,
                min(eq.initial) >= 0 and abs(sum(eq.initial) - eq.N) <= 1e-9 * eq.N,
                "(S, I, R) >= 0 summing to N",
            ),
            ("horizon", eq.horizon, eq.horizon[0] < eq.horizon[1], "(start, end) with start < end"),
            ("guess", eq.guess, min(eq.guess) > 0, "(beta, gamma) > 0"),
            (
                "data.observed",
                d.observed,
                len(d.observed) > 0
                and len(set(d.observed)) == len(d.observed)
                and set(d.observed) <= set(COMPARTMENTS),
                "distinct names from S, I, R",
            ),
            ("data.beta", d.beta, d.beta > 0, "a number > 0"),
            ("data.gamma", d.gamma, d.gamma > 0, "a number > 0"),
            ("data.grid", d.grid, d.grid >= 2, "an integer >= 2"),
            ("data.observations", d.observations, 2 <= d.observations <= d.grid, "an integer in [2, data.grid]"),
            ("data.noise", d.noise, d.noise >= 0, "a number >= 0"),
            ("points", eq.points, eq.points >= 2, "an integer >= 2"),
            ("eval_points", eq.eval_points, eq.eval_points >= 1001, "an integer >= 1001"),
            ("tolerance", eq.tolerance, eq.tolerance > 0, "a number > 0"),
            ("model.width", eq.model.width, eq.model.width >= 1, "an integer >= 1"),
            ("model.depth", eq.model.depth, eq.model.depth >= 1, "an integer >= 1"),
            *[(f"weights.{name}", value, value >= 0, "a number >= 0") for name, value in vars(eq.weights).items()],
        ]
    )
    load_observations(eq)


def simulate(rates, eq: SIRConfig, t: np.ndarray) -> np.ndarray:
    """(S, I, R) at times t, shape (3, len(t)), integrated tightly enough to serve as the truth."""
    beta, gamma = rates

    def rhs(_, y):
        infection = beta * y[0] * y[1] / eq.N
        return [-infection, infection - gamma * y[1], gamma * y[1]]

    return solve_ivp(rhs, eq.horizon, eq.initial, method="DOP853", t_eval=t, rtol=1e-10, atol=1e-10 * eq.N).y


def synthetic_observations(eq: SIRConfig) -> Observations:
    d = eq.data
    rng = np.random.default_rng(d.seed)
    t = np.sort(rng.choice(np.linspace(*eq.horizon, d.grid), d.observations, replace=False))
    rows = [COMPARTMENTS.index(c) for c in d.observed]
    exact = simulate((d.beta, d.gamma), eq, t)[rows].T
    counts = np.clip(exact + rng.normal(0.0, d.noise, exact.shape), 0.0, eq.N)
    return Observations(t, counts, list(d.observed), (d.beta, d.gamma))


def csv_observations(eq: SIRConfig) -> Observations:
    """Read and validate data.path; every problem is one ConfigError line naming the file."""
    path, observed = eq.data.path, list(eq.data.observed)
    where = f"equation.data.path={path!r}"
    if not Path(path).is_file():
        raise ConfigError(f"{where} is invalid: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"{where} is not a readable CSV: {str(err).splitlines()[0]}") from None
    missing = [c for c in ["t"] + observed if c not in frame.columns]
    if missing:
        raise ConfigError(f"{where} lacks column(s) {', '.join(missing)}: needs t and data.observed {observed}")
    frame = frame[["t"] + observed]
    for problem, columns in [
        ("non-numeric values", lambda: [c for c in frame if not pd.api.types.is_numeric_dtype(frame[c])]),
        ("NaN", lambda: [c for c in frame if frame[c].isna().any()]),
        ("negative counts", lambda: [c for c in observed if (frame[c] < 0).any()]),
    ]:
        if bad := columns():  # in this order: comparing non-numbers with 0 would raise
            raise ConfigError(f"{where} has {problem} in column(s) {', '.join(bad)}")
    if len(frame) < 2:
        raise ConfigError(f"{where} has {len(frame)} row(s): needs at least 2")
    t = frame["t"].to_numpy(float)
    if not np.all(np.diff(t) > 0):
        row = int(np.argmax(np.diff(t) <= 0)) + 1
        kind = "duplicate" if t[row] == t[row - 1] else "unsorted"
        raise ConfigError(f"{where} has {kind} times at row {row} (t={t[row]:g}): t must strictly increase")
    if t[0] < eq.horizon[0] or t[-1] > eq.horizon[1]:
        raise ConfigError(f"{where} has times outside equation.horizon={list(eq.horizon)}")
    return Observations(t, frame[observed].to_numpy(float), observed, None)


def load_observations(eq: SIRConfig) -> Observations:
    return csv_observations(eq) if eq.data.path else synthetic_observations(eq)


def least_squares_rates(eq: SIRConfig, obs: Observations) -> tuple[np.ndarray, np.ndarray]:
    """The classical baseline: (β, γ) minimising the squared misfit of the exact ODE solution, with their
    relative standard errors (Gauss-Newton covariance): how close to the truth these data can get."""
    rows = [COMPARTMENTS.index(c) for c in obs.compartments]

    def misfit(log_rates):
        return (simulate(np.exp(log_rates), eq, obs.t)[rows].T - obs.counts).ravel()

    fit = least_squares(misfit, np.log(eq.guess), xtol=1e-14, ftol=1e-14, gtol=1e-14, diff_step=1e-7)
    variance = fit.fun @ fit.fun / max(fit.fun.size - 2, 1)
    return np.exp(fit.x), np.sqrt(np.diag(np.linalg.pinv(fit.jac.T @ fit.jac)) * variance)


class SIR(Problem):
    plot_name = "fit.png"
    evaluation_keys = ("refine", "tolerance", "eval_points")

    def __init__(self, cfg: SIRConfig, obs: Observations, sobolev: int, backend: str):
        super().__init__()
        self.cfg, self.obs, self.sobolev, self.backend = cfg, obs, sobolev, backend
        self.t0, self.T = cfg.horizon[0], cfg.horizon[1] - cfg.horizon[0]
        self.net = MLP(1, 3, cfg.model.width, cfg.model.depth)
        self.log_rates = nn.Parameter(tensor(np.log(cfg.guess)))
        self.observed = [COMPARTMENTS.index(c) for c in obs.compartments]
        self.register_buffer("tau_ode", tensor(np.linspace(0, 1, cfg.points)).view(-1, 1))
        self.register_buffer("tau_data", self.tau(tensor(obs.t)).view(-1, 1))
        self.register_buffer("data", tensor(obs.counts) / cfg.N)
        self.register_buffer("tau_initial", torch.zeros(1, 1))
        self.register_buffer("initial", tensor(cfg.initial).view(1, 3) / cfg.N)
        w = cfg.weights
        self.register_buffer(
            "ode_scale", tensor([w.residual] + [w.sobolev] * sobolev).div(cfg.points).sqrt().view(-1, 1)
        )
        self.data_scale = (w.data / len(obs.t)) ** 0.5
        self.initial_scale = w.initial**0.5

    def tau(self, t):
        return (t - self.t0) / self.T

    @property
    def rates(self) -> Tensor:
        """(β, γ) per day, positive by construction."""
        return self.log_rates.exp()

    def ode_residual(self, tau: Tensor, order: int) -> Tensor:
        """Residuals of the scaled ODE and their first `order` τ-derivatives, shape (order + 1, points, 3)."""
        return sir_residual(input_jet(self.net, tau, order + 1, self.backend), self.T * self.rates).derivatives()

    def terms(self) -> dict[str, tuple[Tensor, ...]]:
        return {"ode": (self.tau_ode,), "data": (self.tau_data, self.data), "initial": (self.tau_initial, self.initial)}

    def forward(self, term: str, tau: Tensor, *targets: Tensor) -> Tensor:
        if term == "ode":
            return (self.ode_residual(tau, self.sobolev) * self.ode_scale.unsqueeze(-1)).transpose(0, 1).flatten(1)
        if term == "data":
            return (self.net(tau)[:, self.observed] - targets[0]) * self.data_scale
        if term == "initial":
            return (self.net(tau) - targets[0]) * self.initial_scale
        raise KeyError(term)

    def scalars(self) -> dict[str, Tensor]:
        beta, gamma = self.rates
        return {"beta": beta, "gamma": gamma}

    @cached_property
    def baseline(self) -> tuple[np.ndarray, np.ndarray]:
        return least_squares_rates(self.cfg, self.obs)

    def constrained_fit(self) -> OdeFit:
        """The data fit with the ODE as a constraint, from the trained state (once per state)."""

        def compute() -> OdeFit:
            problem = OdeData(
                residual=sir_residual,
                initial=np.array(self.cfg.initial) / self.cfg.N,
                tau=self.tau(self.obs.t),
                data=self.obs.counts / self.cfg.N,
                observed=self.observed,
            )
            return fit(problem, self.network_values, (self.T * self.rates).detach().cpu().numpy())

        return self.once_per_state("constrained_fit", compute)

    @torch.no_grad()
    def network_values(self, tau: np.ndarray) -> np.ndarray:
        """(s, i, r) of the network at scaled times tau, (N, 3)."""
        return self.net(tensor(tau).to(self.data).view(-1, 1)).cpu().double().numpy()

    def solution(self) -> pd.DataFrame:
        """Counts on the fine grid: the reported trajectory, the network's, and the truth where known."""
        t = np.linspace(*self.cfg.horizon, self.cfg.eval_points)
        network = self.network_values(self.tau(t)) * self.cfg.N
        reported = self.constrained_fit().values(self.tau(t)) * self.cfg.N if self.cfg.refine else network
        frame = pd.DataFrame(
            {
                "t": t,
                **{c: reported[:, k] for k, c in enumerate(COMPARTMENTS)},
                **{f"{c}_network": network[:, k] for k, c in enumerate(COMPARTMENTS)},
            }
        )
        if self.obs.true_rates:
            exact = simulate(self.obs.true_rates, self.cfg, t)
            frame = frame.assign(**{f"{c}_true": exact[k] for k, c in enumerate(COMPARTMENTS)})
        return frame

    def evaluate(self) -> dict:
        (lsq, lsq_stderr), truth = self.baseline, self.obs.true_rates or (None, None)
        network = self.rates.tolist()
        with torch.enable_grad():  # the autograd backend differentiates even at evaluation
            tau = tensor(np.linspace(0, 1, self.cfg.eval_points)).to(self.data).view(-1, 1)
            network_residual = self.ode_residual(tau, 0).detach().abs().max().item()
        misfit = (self.net(self.tau_data)[:, self.observed] - self.data).detach() * self.cfg.N
        summary = {
            "residual_max_network": network_residual,
            "data_rmse_network": misfit.square().mean().sqrt().item(),
        }
        if self.cfg.refine:
            fitted = self.constrained_fit()
            reported, stderr = (fitted.params / self.T).tolist(), fitted.rel_stderr.tolist()
            summary |= {
                "residual_max": fitted.residual_max,
                "data_rmse": float(np.sqrt(np.mean(fitted.misfit**2)) * self.cfg.N),
                "refine_converged": fitted.converged,
                "refine_steps": fitted.steps,
                "rates_error_estimate": fitted.params_change,  # how far the last degree moved them
            }
        else:
            reported, stderr = network, [None, None]
            summary |= {"residual_max": network_residual, "data_rmse": summary["data_rmse_network"]}
        for k, name in enumerate(("beta", "gamma")):
            summary |= {
                name: reported[k],
                f"{name}_true": truth[k],
                f"{name}_rel_error": relative_gap(reported[k], truth[k]),
                f"{name}_rel_stderr": stderr[k],
                f"{name}_lsq": float(lsq[k]),
                f"{name}_lsq_rel_error": relative_gap(lsq[k], truth[k]),
                f"{name}_lsq_rel_stderr": float(lsq_stderr[k]),
                f"{name}_vs_lsq": relative_gap(reported[k], lsq[k]),
                f"{name}_network": network[k],
                f"{name}_network_vs_lsq": relative_gap(network[k], lsq[k]),
            }
        return summary

    def failure(self, evaluation: dict, slack: float = 1.0) -> str | None:
        if self.cfg.refine and not evaluation["refine_converged"]:
            return "the constrained fit from the network did not converge"
        if not evaluation["residual_max"] <= self.cfg.tolerance * slack:  # NaN fails too
            return f"residual_max {evaluation['residual_max']:.2e} > tolerance {self.cfg.tolerance * slack:.0e}"
        return None

    def plot(self, metrics: pd.DataFrame, path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        sol = self.solution()
        fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
        for k, c in enumerate(COMPARTMENTS):
            if f"{c}_true" in sol:
                ax[0].plot(sol.t, sol[f"{c}_true"], color=f"C{k}", lw=3, alpha=0.35)
            if self.cfg.refine:
                ax[0].plot(sol.t, sol[c], f"C{k}-", lw=1, label=f"{c} constrained fit")
            ax[0].plot(sol.t, sol[f"{c}_network"], f"C{k}--", label=f"{c} network")
            if c in self.obs.compartments:
                ax[0].plot(self.obs.t, self.obs.counts[:, self.obs.compartments.index(c)], f"C{k}o", ms=4)
        ax[0].set(
            title="SIR fit (dots: data" + (", thick: truth)" if self.obs.true_rates else ")"),
            xlabel="t",
            ylabel="people",
        )
        ax[0].legend(fontsize=8)
        truth = self.obs.true_rates
        reference = truth or self.baseline[0]
        reported = self.evaluate() if self.cfg.refine else {}
        for k, name in enumerate(("beta", "gamma")):
            if len(metrics):
                gap = (metrics[name] / reference[k] - 1).abs().clip(lower=1e-17)  # exact agreement sits on the floor
                ax[1].semilogy(metrics.step, gap, f"C{k}", label=f"{name} network")
            if truth:
                ax[1].axhline(abs(self.baseline[0][k] / truth[k] - 1), color=f"C{k}", ls=":")
            if reported:
                ax[1].axhline(max(abs(reported[name] / reference[k] - 1), 1e-17), color=f"C{k}", ls="--", lw=1)
        ax[1].set(
            title="relative error vs truth (dotted: least squares, dashed: constrained fit)"
            if truth
            else "relative gap to least squares (dashed: constrained fit)",
            xlabel="step",
            ylim=(1e-17, None),
        )
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def build(cfg: DictConfig) -> SIR:
    eq = typed_config(cfg)
    return SIR(eq, load_observations(eq), cfg.sobolev, cfg.backend.name)
