import subprocess

import pytest
import torch
from hydra import compose, initialize_config_dir

from blowup.config import config_dir
from blowup.equations.burgers import Burgers


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


@pytest.fixture(scope="module")
def no_plots():
    """profile.png takes longer than tiny runs themselves; modules that never look at it skip it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Burgers, "plot", lambda self, history, path: None)
        yield
