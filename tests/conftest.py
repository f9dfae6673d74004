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
