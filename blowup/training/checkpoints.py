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
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

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


CHECKPOINT_KEYS = {"problem", "phase", "phase_step", "step", "optimizer", "rng", "config"}


def unreadable(path: Path, why: str, remedy: str) -> ConfigError:
    """The one line for a file a command cannot read: which file, why, that it was left alone, what to do."""
    return ConfigError(f"{path} cannot be read ({why}): it is truncated or corrupt and was left as it is; {remedy}")


def read_checkpoint(path: Path, device: torch.device | str, remedy: str) -> dict:
    """checkpoint.pt as saved, or a ConfigError naming it: a disk that filled up or a copy cut short leaves a
    file torch cannot unpack (it raises whatever its zip or pickle reader meets), or one without a run's keys."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # every way of failing to unpack means the same to the user
        raise unreadable(path, _first_line(err), remedy) from None
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= state.keys():
        raise unreadable(path, "not a blowup checkpoint", remedy)
    return state


def restore(problem: Problem, state: dict, path: Path, remedy: str) -> None:
    """The checkpoint's trained state into `problem`, or a ConfigError naming the file: one written by another
    version of blowup may hold another set of parameters and buffers (torch lists them all, over many lines)."""
    try:
        problem.load_state_dict(state["problem"])
    except RuntimeError as err:
        lines = [line.strip().rstrip(".") for line in str(err).strip().splitlines()]
        why = "; ".join(lines[1:] or lines)  # the first says only "Error(s) in loading state_dict for Burgers"
        raise ConfigError(
            f"{path} does not fit this version of blowup's problem ({why}): it was left as it is; {remedy}"
        ) from None


def load_checkpoint(path: Path, cfg: DictConfig, device: torch.device, problem: Problem) -> dict | None:
    """The checkpoint to continue from (None: start fresh); refuses one trained on another problem."""
    if not path.is_file():
        return None
    remedy = "move it away to start afresh, or resume= a run dir whose checkpoint is whole"
    state = read_checkpoint(path, device, remedy)
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
    remedy = "train the run again into a new run dir"
    path = Path(run_dir) / "config.yaml"
    try:
        cfg = OmegaConf.load(path)
        torch.set_default_dtype(DTYPES[cfg.dtype])
        problem = build_problem(cfg)
    except (OSError, ValueError, KeyError, AttributeError, yaml.YAMLError, OmegaConfBaseException) as err:
        raise unreadable(path, _first_line(err), remedy) from None
    path = Path(run_dir) / "checkpoint.pt"
    restore(problem, read_checkpoint(path, "cpu", remedy), path, remedy)
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


def _first_line(err: Exception) -> str:
    """The error's first sentence (torch's zip reader adds a paragraph of advice)."""
    text = str(err).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(err).__name__
