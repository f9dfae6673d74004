"""`blowup COMMAND [OVERRIDES]`: Hydra apps behind one console script.

Overrides are checked before Hydra runs, so bad input costs one line on stderr and exit code 2
instead of a traceback, for single runs and for every value of a sweep.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from blowup.config import config_dir, group_options, validate
from blowup.equations import EQUATIONS
from blowup.errors import ConfigError

# command -> (help, Hydra config name or None for a plain argparse command, "module:function")
COMMANDS = {
    "train": (
        "train a PINN (blowup train --help lists config groups and keys)",
        "train",
        "blowup.training.trainer:train",
    ),
    "bench": (
        "time derivative backends and training steps (blowup bench --help)",
        "bench",
        "blowup.analysis.bench:run",
    ),
    "report": ("tabulate and plot run dirs: blowup report PATH ...", None, "blowup.analysis.report:main"),
    "stability": (
        "stability spectrum of trained runs: blowup stability RUN_DIR ...",
        None,
        "blowup.analysis.stability:main",
    ),
    "continue": (
        "follow a run's solution through a parameter: blowup continue RUN_DIR --param KEY --to VALUE",
        None,
        "blowup.analysis.continuation:main",
    ),
}
USAGE = (
    "usage: blowup {"
    + ",".join(COMMANDS)
    + "} [OVERRIDES ...]\n"
    + "\n".join(f"  {name:10s}{text}" for name, (text, _, _) in COMMANDS.items())
)
# Hydra flags that take a value, and those that only show things (no run, nothing to check)
VALUE_FLAGS = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
SHOW_FLAGS = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}


def fail(message: str) -> None:
    print(f"blowup: error: {message}", file=sys.stderr)
    sys.exit(2)


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra flags with their values, overrides)."""
    flags, overrides, it = [], [], iter(args)
    for arg in it:
        if arg.startswith("-"):
            flags.append(arg)
            if arg in VALUE_FLAGS:
                flags.append(next(it, ""))
        else:
            overrides.append(arg)
    return flags, overrides


def check_overrides(config_name: str, overrides: list[str]) -> None:
    """Compose and validate the config for every value each sweep takes; ConfigError on bad input."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(str(err).splitlines()[0]) from None
    choices = []
    for override, text in zip(parsed, overrides):
        key = override.get_key_element().lstrip("+~")
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
        else:
            values = [text.split("=", 1)[1]] if "=" in text else [None]
        options = [] if key.startswith("hydra/") else group_options(key)
        for value in values:
            if options and value is not None and value not in options and value != "null":
                raise ConfigError(f"{key}={value!r} is invalid: allowed one of {', '.join(options)}")
        choices.append([f"{text.split('=', 1)[0]}={v}" if v is not None else text for v in values])
    # every value of every sweep, the others at their first value: len(sum of values) compositions
    combos = [[c[0] for c in choices]] + [
        [c[0] for c in choices[:i]] + [v] + [c[0] for c in choices[i + 1 :]]
        for i, c in enumerate(choices)
        for v in c[1:]
    ]
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        for combo in combos:
            try:
                cfg = compose(config_name=config_name, overrides=combo)
            except (HydraException, OmegaConfBaseException) as err:
                raise ConfigError(_one_line(err) + _known_keys(config_name, combo, err)) from None
            validate(cfg)


def _known_keys(config_name: str, combo: list[str], err: Exception) -> str:
    """For an override of a key the config lacks: the keys its parent has (composed without that override)."""
    from hydra import compose
    from omegaconf import DictConfig, OmegaConf

    found = re.match(r"Could not override '([^']+)'", str(err))
    if not found or "not in" not in _one_line(err):
        return ""
    key = found.group(1)
    parent = key.rpartition(".")[0]
    node = compose(config_name=config_name, overrides=[o for o in combo if o.split("=", 1)[0].lstrip("+~") != key])
    node = OmegaConf.select(node, parent) if parent else node
    return f"; allowed keys: {', '.join(map(str, node))}" if isinstance(node, DictConfig) else ""


def _one_line(err: BaseException) -> str:
    lines = [str(err).splitlines()[0]]
    if err.__cause__ is not None:
        lines.append(str(err.__cause__).splitlines()[0])
    return ": ".join(line.strip() for line in lines if line.strip())


def load(target: str):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


# exit codes of `blowup train` by final status (bad input: 2); a sweep exits with the largest of its runs'
EXIT_CODES = {"completed": 0, "not_converged": 3, "diverged": 4, "timed_out": 124, "interrupted": 130}


def exit_code(summary: dict, allow_not_converged: bool = False) -> int:
    status = summary.get("status", "completed")
    return 0 if status == "not_converged" and allow_not_converged else EXIT_CODES.get(status, 1)


class SweepExitCodes(Callback):
    """Hydra callback: once a sweep's jobs have ended, the exit code of each from its summary.json. Launchers that
    run jobs in other processes (joblib, submitit) hand their return values to no one here, so the launching
    process reads what each run left; in-process runs are counted by the task itself as well."""

    codes: list[int] = []

    def on_multirun_end(self, config, **kwargs) -> None:
        for summary_path in Path(config.hydra.sweep.dir).glob("*/summary.json"):
            try:
                summary = json.loads(summary_path.read_text())
                allow = bool(OmegaConf.load(summary_path.parent / "config.yaml").get("allow_not_converged"))
            except (OSError, ValueError, yaml.YAMLError):
                continue  # a run that left no readable summary is reported by `blowup report`
            SweepExitCodes.codes.append(exit_code(summary, allow))


def run_hydra_app(config_name: str, target: str) -> None:
    """Run `target(cfg, run_dir) -> summary` as a Hydra app (runs, sweeps, launchers, --help).

    A run that ends other than "completed" sets the exit code (EXIT_CODES) once every run of a sweep
    has finished; Ctrl-C stops a sweep at once."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    codes = [0]

    def task(cfg: DictConfig) -> dict:
        try:
            validate(cfg) if config_name == "train" else None
            summary = load(target)(cfg, Path(HydraConfig.get().runtime.output_dir))
        except ConfigError as err:
            fail(str(err))
        code = exit_code(summary, bool(cfg.get("allow_not_converged")))
        if code == 130:
            sys.exit(code)
        codes.append(code)
        return summary

    hydra.main(config_path=str(config_dir()), config_name=config_name, version_base=None)(task)()
    sys.exit(max(codes + SweepExitCodes.codes))


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    # cached: sweep workers re-resolve the sweep dir and must get the launching process's pid
    OmegaConf.register_new_resolver("pid", os.getpid, replace=True, use_cache=True)
    OmegaConf.register_new_resolver("run_label", run_label, replace=True)


def run_label(*, _root_) -> str:
    """The run dir's name for the equation: its module's `run_label(cfg)` (burgers_k3), else its name (sir)."""
    name = _root_.equation.name
    module = importlib.import_module(EQUATIONS[name]) if name in EQUATIONS else None
    return module.run_label(_root_) if hasattr(module, "run_label") else str(name)


def main(argv: list[str] | None = None) -> None:
    try:
        dispatch(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:  # the output's reader stopped early (`blowup --help | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush cannot fail too
        sys.exit(1)


def dispatch(args: list[str]) -> None:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        fail(f"command {command!r} is invalid: allowed one of {', '.join(COMMANDS)}")
    _, config_name, target = COMMANDS[command]
    if config_name is None:
        sys.exit(load(target)(rest))
    register_resolvers()
    flags, overrides = split_args(rest)
    if config_name == "train" and not SHOW_FLAGS.intersection(flags):
        try:
            check_overrides(config_name, overrides)
        except ConfigError as err:
            fail(str(err))
    sys.argv = [f"blowup {command}"] + rest
    run_hydra_app(config_name, target)


if __name__ == "__main__":
    main()
