"""Exponential decay, the smallest complete equation: U' + λU = 0 on [0, 1], U(0) = 1, U(1) = 1/e.

Two conditions on a first-order equation select λ = 1 (and U = exp(-X)), as smoothness selects λ_k
for Burgers. This file is the README's "Adding an equation", verbatim.
"""

import math
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from blowup.engine.derivatives import input_jet
from blowup.engine.models import MLP, ModelConfig
from blowup.errors import require, require_all
from blowup.problem import Problem, typed_equation_config


@dataclass
class DecayConfig:
    name: str = "decay"
    points: int = 51
    model: ModelConfig = field(default_factory=lambda: ModelConfig(width=8, depth=2))


def check_config(cfg: DictConfig) -> None:
    require(cfg.profile == 0, "profile", cfg.profile, "0 (decay has one solution, no profile index)")
    eq = typed_equation_config(cfg, DecayConfig)
    require_all([("points", eq.points, eq.points >= 2, "an integer >= 2")])


class Decay(Problem):
    def __init__(self, cfg: DecayConfig, sobolev: int, backend: str):
        super().__init__()
        self.sobolev, self.backend = sobolev, backend
        self.net = MLP(width=cfg.model.width, depth=cfg.model.depth).double()
        self.lam = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))
        self.register_buffer("x", torch.linspace(0, 1, cfg.points, dtype=torch.float64).view(-1, 1))
        self.register_buffer("ends", torch.tensor([[0.0], [1.0]], dtype=torch.float64))
        self.register_buffer("end_values", torch.tensor([[1.0], [math.exp(-1)]], dtype=torch.float64))

    def terms(self):
        return {"residual": (self.x,), "boundary": (self.ends, self.end_values)}

    def forward(self, term, x, *targets):
        if term == "residual":  # the residual once, on jets: its first `sobolev` derivatives come with it
            u = input_jet(self.net, x, self.sobolev + 1, self.backend)
            return (u.derivative() + self.lam * u).derivatives()[..., 0].T / len(self.x) ** 0.5
        return self.net(x) - targets[0]

    def scalars(self):
        return {"lambda": self.lam}

    @torch.no_grad()
    def solution(self) -> pd.DataFrame:
        x = np.linspace(0, 1, 1001)
        u = self.net(torch.from_numpy(x).view(-1, 1).to(self.x)).flatten().cpu().double().numpy()
        return pd.DataFrame({"X": x, "U": u, "U_exact": np.exp(-x)})

    def evaluate(self) -> dict:
        sol = self.solution()
        return {
            "lambda": self.lam.item(),
            "lambda_error": abs(self.lam.item() - 1),
            "profile_max_error": float(np.max(np.abs(sol.U - sol.U_exact))),
        }

    def failure(self, evaluation, slack=1.0):
        return None if evaluation["lambda_error"] < 1e-6 * slack else f"|λ - 1| = {evaluation['lambda_error']:.1e}"

    def plot(self, metrics, path):
        sol = self.solution()
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        ax[0].plot(sol.X, sol.U, label="PINN"), ax[0].plot(sol.X, sol.U_exact, "--", label="exp(-X)")
        ax[0].legend()
        ax[1].semilogy(metrics.step, metrics.loss), ax[1].set(xlabel="step", ylabel="loss")
        fig.savefig(path), plt.close(fig)


def build(cfg: DictConfig) -> Decay:
    return Decay(typed_equation_config(cfg, DecayConfig), cfg.sobolev, cfg.backend.name)
