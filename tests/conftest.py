"""Shared fixtures. Test modules take what they share from here as fixtures, never by importing this file."""

import copy
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from blowup.config import config_dir
from blowup.engine.jet import Jet
from blowup.equations.burgers import Burgers, exact_profile
from blowup.problem import ResidualTerms
from blowup.training import logs


@pytest.fixture(autouse=True)
def float64():
    """The engine's contract is stated in float64; restore the default after each test."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def blowup(*args, cwd=None, env=None, timeout=300):
    """The installed console script, as a user runs it: its CompletedProcess with stdout and stderr."""
    return subprocess.run(["blowup", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def compose_train(*overrides):
    """The train config as `blowup train` composes it (not yet validated)."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose("train", overrides=list(overrides))


@pytest.fixture(name="run_blowup", scope="session")
def run_blowup_fixture():
    """`run_blowup("train", "profile=1", ...)`: the installed console script's CompletedProcess."""
    return blowup


@pytest.fixture(name="compose_train", scope="session")
def compose_train_fixture():
    """`compose_train("equation=sir", ...)`: the train config as `blowup train` composes it (not yet validated)."""
    return compose_train


def overridden(cfg, *overrides):
    """A copy of a composed config with value overrides (KEY=VALUE as on the command line) set, without composing it
    again: composing costs a tenth of a second, and the checks under test see the same values."""
    out = copy.deepcopy(cfg)
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        OmegaConf.update(out, override.key_or_group, override.value(), merge=False)
    return out


@pytest.fixture(name="overridden", scope="session")
def overridden_fixture():
    """`overridden(cfg, "profile=-1", ...)`: a copy of a composed config with those values set."""
    return overridden


def exact_burgers_jet(x: torch.Tensor, k: int, order: int) -> Jet:
    """Taylor coefficients of the exact Burgers profile U_k by implicit differentiation of U + U^p = -X
    (p = 2k + 3), computed order by order with jet arithmetic (an independent route from the network)."""
    p = 2 * k + 3
    u0 = torch.from_numpy(exact_profile(x.numpy().ravel(), k)).view(-1, 1)
    coeffs = torch.zeros(order + 1, *u0.shape)
    coeffs[0] = u0
    for n in range(1, order + 1):
        # G(U) = U + U^p + X = 0; with coefficient n unknown, G's n-th coefficient is linear in it
        trial = Jet(coeffs[: n + 1].clone())
        power = trial
        for _ in range(p - 1):
            power = power * trial
        g = trial + power + Jet.variable(x, n)
        coeffs[n] = -g.coeffs[n] / (1 + p * u0 ** (p - 1))
    return Jet(coeffs)


@pytest.fixture(scope="session")
def exact_profile_jet():
    """`exact_profile_jet(x, k, order)`: the exact Burgers profile's Taylor coefficients at x, as a Jet."""
    return exact_burgers_jet


def check_png(path, width: int, height: int) -> np.ndarray:
    """A figure as written: it decodes, has the size its figsize and dpi give, and shows curves (a fair share of
    non-white pixels, some in matplotlib's first line colour C0); returns the pixels."""
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (height, width) and image.shape[2] in (3, 4), image.shape
    rgb = image[..., :3]
    assert 0.01 < (rgb < 0.95).any(-1).mean() < 0.9  # drawn on: neither blank nor filled
    c0 = np.array([0x1F, 0x77, 0xB4]) / 255  # the first curve's colour, where it is drawn solid
    assert (np.abs(rgb - c0).max(-1) < 0.02).sum() > 100, "no curve in colour C0"
    return image


@pytest.fixture(name="check_png", scope="session")
def check_png_fixture():
    """`check_png(path, width, height)`: the figure decodes to that size and is not blank."""
    return check_png


@pytest.fixture
def at_step():
    """`at_step(n, action)`: in this process, once a training run has logged step n (its row is in metrics.csv),
    call `action(problem)` before the run goes on; calling it again replaces the hook, `at_step(None)` removes it.
    Works through what every run does, whatever the trainer's insides: a row per step in metrics.csv
    (`logs.MetricsLog.write`) and the loss from `problem.residuals()`."""
    patch = pytest.MonkeyPatch()

    def arm(step: int | None, action=None) -> None:
        patch.undo()
        if step is None:
            return
        problems = [None]  # the problem the run is training, as last seen
        residuals, write = ResidualTerms.residuals, logs.MetricsLog.write

        def seen_residuals(problem):
            problems[-1] = problem
            return residuals(problem)

        def write_then_act(log, row):
            write(log, row)
            if row["step"] == step:
                action(problems[-1])

        patch.setattr(ResidualTerms, "residuals", seen_residuals)
        patch.setattr(logs.MetricsLog, "write", write_then_act)

    yield arm
    patch.undo()


# `blowup train ARGS` in a fresh interpreter, made to do HOW once step STEP is logged: send itself SIGINT or SIGTERM
# (a real signal to a real process), or put a NaN in the network's first parameter (a run that diverges)
STOPPED_TRAIN = """
import math, os, signal, sys
import torch
from blowup.cli import main
from blowup.problem import ResidualTerms
from blowup.training import logs
step, how, args, problems = int(sys.argv[1]), sys.argv[2], sys.argv[3:], [None]
residuals, write = ResidualTerms.residuals, logs.MetricsLog.write
def seen_residuals(problem):
    problems[-1] = problem
    return residuals(problem)
def write_then_act(log, row):
    write(log, row)
    if row["step"] == step and how == "nan":
        with torch.no_grad():
            next(problems[-1].parameters()).fill_(math.nan)
    elif row["step"] == step:
        os.kill(os.getpid(), getattr(signal, how))
ResidualTerms.residuals, logs.MetricsLog.write = seen_residuals, write_then_act
main(["train", *args])
"""


def stopped_train(step: int, how: str, *args) -> subprocess.Popen:
    """`blowup train *args` as a process that does `how` ("SIGINT", "SIGTERM" or "nan") once step `step` is logged;
    its stderr is piped."""
    command = [sys.executable, "-c", STOPPED_TRAIN, str(step), how, *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture(name="stopped_train", scope="session")
def stopped_train_fixture():
    """`stopped_train(step, how, *args)`: a `blowup train` process stopped at a step (Popen, stderr piped)."""
    return stopped_train


@pytest.fixture(scope="module")
def no_plots():
    """profile.png takes longer than tiny runs themselves; modules that never look at it skip it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Burgers, "plot", lambda self, history, path: None)
        yield


@pytest.fixture(scope="session")
def first_unstable_ccf_profile():
    """CCF's first unstable profile as a run finds it: the non-smooth family followed from a rough start (entered at
    the bracket's top) to where it turns smooth, then Newton on two grids that resolve its steep front."""
    from blowup.equations.ccf.profile import find_profile, rough_profile

    scan, coarse, fine = find_profile(
        lambda grid: rough_profile(0.62, grid), 0.62, (0.52, 0.9), (-36.0, 60.0), 0.1, 0.05, (0.03, 0.025)
    )
    assert scan.smooth is not None
    return scan, coarse, fine
