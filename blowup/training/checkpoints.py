"""Checkpoints: everything the next step depends on, written so that a kill mid-save leaves the last one whole.

A checkpoint holds the problem (network and scalars), the phase with its optimiser and stopping-rule state,
the RNG states and the step counters, so a resumed run ends where an uninterrupted one would. One trained on
another problem (equation, profile, Sobolev order or dtype) is refused; optimiser settings and step budgets
may change between the two, and so may the keys the problem declares as evaluation-only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from blowup.engine.device import DTYPES
from blowup.equations import build_problem
from blowup.errors import ConfigError
from blowup.problem import Problem

# what a checkpoint must share with the run continuing it: the problem (optimiser settings and step counts may change)
SAME_PROBLEM = ("equation", "profile", "sobolev", "dtype")


def rng_state(device: torch.device) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())  # map_location moved it to the run's device
    np.random.set_state(state["numpy"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a kill mid-save leaves the previous checkpoint whole


def load_checkpoint(path: Path, cfg: DictConfig, device: torch.device, problem: Problem) -> dict | None:
    """The checkpoint to continue from (None: start fresh); refuses one trained on another problem."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    may_change = tuple(f"equation.{key}" for key in problem.evaluation_keys)
    was = flatten({k: state["config"].get(k) for k in SAME_PROBLEM})
    now = flatten({k: OmegaConf.to_container(cfg, resolve=True).get(k) for k in SAME_PROBLEM})
    changed = [
        f"{k}={was.get(k)!r} (this run: {now.get(k)!r})"
        for k in sorted(set(was) | set(now))
        if was.get(k) != now.get(k) and not k.startswith(may_change)
    ]
    if changed:
        raise ConfigError(
            f"cannot resume {path}: it was trained with {', '.join(changed)}; keep "
            f"{', '.join(SAME_PROBLEM)} as they were, or start in a new run dir"
        )
    return state


def load_trained(run_dir: Path) -> Problem:
    """A finished run's problem as trained (its config.yaml and checkpoint.pt), on the CPU."""
    cfg = OmegaConf.load(Path(run_dir) / "config.yaml")
    torch.set_default_dtype(DTYPES[cfg.dtype])
    problem = build_problem(cfg)
    state = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=False)
    problem.load_state_dict(state["problem"])
    return problem


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"equation": {"model": {"width": 8}}} -> {"equation.model.width": 8}: names what changed."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
