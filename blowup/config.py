"""Typed config schema (Hydra structured configs) and the checks that turn bad input into one line."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from blowup.engine.derivatives import BACKENDS
from blowup.equations import EQUATIONS, check_equation
from blowup.errors import ConfigError, require
from blowup.problem import STAGE_PHASES
from blowup.solvers.stages import StageTrial

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")
HEADLINES = ("result", "network")
FACTORISATIONS = ("full", "range")


@dataclass
class AdamConfig:
    steps: int = 1000  # the most steps; the phase ends earlier once converged (patience, rtol)
    lr: float = 1e-3
    patience: int = 200
    rtol: float = 1e-2
    accept_every: int = 0  # > 0: every so many steps, end the phase "accepted" if the problem accepts the result


@dataclass
class LBFGSConfig:
    steps: int = 300
    lr: float = 1.0
    history: int = 50
    patience: int = 50
    rtol: float = 1e-3
    accept_every: int = 0


@dataclass
class LMConfig:
    steps: int = 150
    damping: float = 1e-3
    acceleration: float = 0.75
    patience: int = 30
    rtol: float = 1e-2
    accept_every: int = 0
    svd: str | None = None  # how each step factors the Jacobian: "full" (its SVD) or "range" (its SVD through its
    # numerical range, blowup.solvers.gauss_newton.SVDSolve); null: the equation's (Problem.first_network_svd for the
    # first network, the range for a later stage)


@dataclass
class StageConfig(LMConfig):
    """A later network stage's Levenberg-Marquardt, and how its frequency is picked: each of `frequencies` is tried
    for `trial_steps` steps from the same draw (blowup.solvers.stages); one frequency fixes it."""

    frequencies: list[float] = field(default_factory=lambda: list(StageTrial.frequencies))
    trial_steps: int = StageTrial.trial_steps
    accept_at: float | None = 1.0  # with accept_every: the last stage ends "accepted" once it passes this multiple of
    # the tolerance (< 1: a goal beyond it, where the stage's further steps buy digits nobody asked for; null: the
    # equation's, Problem.stage_accept_at)


@dataclass
class OptimConfig:
    guess: LMConfig = field(default_factory=lambda: LMConfig(steps=30, patience=5))
    adam: AdamConfig = field(default_factory=AdamConfig)
    lbfgs: LBFGSConfig = field(default_factory=LBFGSConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    stage: StageConfig = field(
        default_factory=lambda: StageConfig(steps=300, damping=StageTrial.damping, patience=20)
    )  # each later network stage (as conf/optim/default.yaml)
    restarts: int = 2  # fresh initialisations when the problem finds the phases before the last in a bad basin
    handoff: float | None = 1.0  # a PINN study accepts a network later stages will refine at this multiple of the
    # tolerance (null: the equation's, Problem.handoff)


PHASES = ("guess", "adam", "lbfgs", "lm")


def phase_settings(cfg: DictConfig, phase: str) -> DictConfig:
    """optim.<phase>, or optim.stage for every later network stage."""
    return cfg.optim.stage if phase in STAGE_PHASES else cfg.optim[phase]


@dataclass
class BackendConfig:
    name: str = "ntp"


@dataclass
class TrainConfig:
    equation: Any = None  # each equation validates its own group against its dataclass
    backend: BackendConfig = field(default_factory=BackendConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    profile: int = 0
    sobolev: int = 1
    device: str = "auto"
    dtype: str = "float64"
    seed: int = 0
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    resume: str | None = None
    init_from: str | None = None  # a finished run of the same equation and network: its solution starts this one
    checkpoint_every: int = 500
    allow_not_converged: bool = False  # true: a run that ends "not_converged" still exits 0 (tiny test runs)
    max_memory_gb: float | None = None  # refuse runs estimated to need more; None: half this machine's memory
    headline: str = "result"  # what a run leads with: its result (refined) or the network's own figures (a PINN study)
    max_hours: float | None = 2.0  # refuse runs expected to take longer (a probe times their steps); None: no limit


ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def config_dir() -> Path:
    """Hydra's config dir: the copy installed with the package, else the repo's conf/."""
    packaged = Path(str(resources.files("blowup"))) / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "conf"


def group_options(group: str) -> list[str]:
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def check_init_from(cfg: DictConfig) -> None:
    """init_from names a finished run whose equation and network this run's match (ConfigError otherwise)."""
    path = Path(cfg.init_from)
    allowed = f"a run dir with config.yaml and checkpoint.pt of equation {cfg.equation.name!r} and the same network"
    try:
        other = OmegaConf.load(path / "config.yaml")
    except (OSError, ValueError, yaml.YAMLError):
        other = None
    require(other is not None and (path / "checkpoint.pt").is_file(), "init_from", cfg.init_from, allowed)
    equation = other.get("equation") or {}
    same = equation.get("name") == cfg.equation.name and equation.get("model") == cfg.equation.get("model")
    require(same, "init_from", cfg.init_from, allowed)
    require(not cfg.resume, "init_from", cfg.init_from, "null when resume is set (a resumed run has its own start)")


def validate(cfg: DictConfig) -> None:
    """Semantic checks after composition; raises ConfigError naming the key and allowed values."""
    require(
        cfg.equation is not None and cfg.equation.get("name") in EQUATIONS,
        "equation",
        cfg.equation and cfg.equation.get("name"),
        "one of " + ", ".join(EQUATIONS),
    )
    require(cfg.backend.name in BACKENDS, "backend", cfg.backend.name, "one of " + ", ".join(BACKENDS))
    require(cfg.profile >= 0, "profile", cfg.profile, "an integer >= 0")
    require(cfg.sobolev >= 0, "sobolev", cfg.sobolev, "an integer >= 0")
    require(cfg.device in DEVICES, "device", cfg.device, "one of " + ", ".join(DEVICES))
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is invalid: no CUDA GPU is visible; allowed auto, cpu")
    require(cfg.dtype in DTYPES, "dtype", cfg.dtype, "one of " + ", ".join(DTYPES))
    require(cfg.headline in HEADLINES, "headline", cfg.headline, "one of " + ", ".join(HEADLINES))
    require(cfg.threads is None or cfg.threads >= 1, "threads", cfg.threads, "null or an integer >= 1")
    if cfg.get("init_from"):
        check_init_from(cfg)
    require(cfg.checkpoint_every > 0, "checkpoint_every", cfg.checkpoint_every, "an integer > 0")
    require(
        cfg.max_memory_gb is None or cfg.max_memory_gb > 0, "max_memory_gb", cfg.max_memory_gb, "null or a number > 0"
    )
    require(cfg.max_hours is None or cfg.max_hours > 0, "max_hours", cfg.max_hours, "null (no limit) or a number > 0")
    for phase in (*PHASES, "stage"):
        opt = cfg.optim[phase]
        require(opt.steps >= 0, f"optim.{phase}.steps", opt.steps, "an integer >= 0")
        require(opt.patience >= 1, f"optim.{phase}.patience", opt.patience, "an integer >= 1")
        require(0 <= opt.rtol < 1, f"optim.{phase}.rtol", opt.rtol, "a number in [0, 1) (0: run all steps)")
        require(opt.accept_every >= 0, f"optim.{phase}.accept_every", opt.accept_every, "an integer >= 0 (0: never)")
        if "lr" in opt:
            require(opt.lr > 0, f"optim.{phase}.lr", opt.lr, "a number > 0")
        if "history" in opt:
            require(opt.history >= 1, f"optim.{phase}.history", opt.history, "an integer >= 1")
        if "damping" in opt:
            require(opt.damping > 0, f"optim.{phase}.damping", opt.damping, "a number > 0")
            require(
                opt.acceleration >= 0,
                f"optim.{phase}.acceleration",
                opt.acceleration,
                "a number >= 0 (0: no geodesic acceleration)",
            )
            allowed = "null (the equation's), " + " or ".join(FACTORISATIONS)
            require(opt.svd is None or opt.svd in FACTORISATIONS, f"optim.{phase}.svd", opt.svd, allowed)
    frequencies, trial_steps = list(cfg.optim.stage.frequencies), cfg.optim.stage.trial_steps
    allowed = "a non-empty list of numbers > 0, e.g. [1, 2, 5, 10, 20, 40]"
    require(len(frequencies) > 0 and all(f > 0 for f in frequencies), "optim.stage.frequencies", frequencies, allowed)
    require(trial_steps >= 1, "optim.stage.trial_steps", trial_steps, "an integer >= 1")
    accept_at = cfg.optim.stage.accept_at
    allowed = "null (the equation's) or a number in (0, 1] (1: at the tolerance)"
    require(accept_at is None or 0 < accept_at <= 1, "optim.stage.accept_at", accept_at, allowed)
    require(cfg.optim.restarts >= 0, "optim.restarts", cfg.optim.restarts, "an integer >= 0")
    handoff = cfg.optim.handoff
    allowed = "null (the equation's) or a number >= 1 (1: no handoff)"
    require(handoff is None or handoff >= 1, "optim.handoff", handoff, allowed)
    total = sum(cfg.optim[p].steps for p in PHASES)
    require(total > 0, "optim.*.steps", total, "a total number of steps > 0")
    if cfg.resume is not None:
        require((Path(cfg.resume) / "checkpoint.pt").is_file(), "resume", cfg.resume, "a run dir with checkpoint.pt")
    check_equation(cfg)
