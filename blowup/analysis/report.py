"""`blowup report PATH ... [--out DIR]`: one table (terminal and CSV) and three plots over many runs.

A PATH is a run dir, a multirun folder or a whole outputs/ tree: every dir below it that holds a
summary.json, metrics.csv or checkpoint.pt is a run. A run that cannot be read whole (no or corrupt
summary.json, a run still going or killed before its summary, a truncated metrics.csv) is named on
one line and left out, so a report over a sweep that is still running works on the runs done so far.

Writes report.csv (one row per run), report.md (the same table as Markdown, for a README), and where
the runs allow: speedup.csv/.png (n-TangentProp over nested autograd, runs paired by equation,
profile, sobolev, seed and device), error_vs_time.png (each unknown's error against wall time, per
run) and loss_curves.png.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from blowup.equations import EQUATIONS
from blowup.problem import Problem

RUN_FILES = ("summary.json", "metrics.csv", "checkpoint.pt")
TIMES = ("wall_time_s", "step_time_s", "deriv_time_s")
IDENTITY = ("equation", "profile", "backend", "sobolev", "seed", "device")
PAIR = ("equation", "profile", "sobolev", "seed", "device")  # what an ntp run and an autograd run must share
GREEK = {"lambda": "λ", "beta": "β", "gamma": "γ"}


class BrokenRun(Exception):
    """A run dir that cannot be used (here, or by `blowup stability`); the message says why in a few words."""


def find_runs(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Run dirs under the paths (not inside hidden dirs such as .hydra or .submitit), and paths that do not exist."""
    runs, missing = set(), []
    for path in paths:
        if not path.exists():
            missing.append(f"{path}: no such file or directory")
            continue
        root = path if path.is_dir() else path.parent
        for name in RUN_FILES:
            runs.update(
                p.parent
                for p in root.rglob(name)
                if not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
    return sorted(runs), missing


def read_metrics(path: Path) -> pd.DataFrame:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise BrokenRun(f"unreadable metrics.csv ({err})") from None
    if text and not text.endswith("\n"):
        raise BrokenRun("truncated metrics.csv (its last row is cut short)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise BrokenRun(f"corrupt metrics.csv ({str(err).strip().splitlines()[0]})") from None
    needed = ["step", "loss", *TIMES]
    if not set(needed) <= set(frame.columns):
        raise BrokenRun(f"corrupt metrics.csv (needs columns {', '.join(needed)})")
    if frame[needed].isna().any(axis=None):
        raise BrokenRun("corrupt metrics.csv (rows with empty fields)")
    return frame


def load_run(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """(summary, metrics) of a finished (completed, interrupted or diverged) run, or BrokenRun."""
    summary_path, log_path = run_dir / "summary.json", run_dir / "metrics.csv"
    if not summary_path.is_file():
        raise BrokenRun(
            "no summary.json: still running, or killed before it finished" if log_path.is_file() else "no summary.json"
        )
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BrokenRun(f"corrupt summary.json ({err})") from None
    if not isinstance(summary, dict) or not {"equation", "backend", "steps"} <= set(summary):
        raise BrokenRun("corrupt summary.json (not a run summary)")
    if not log_path.is_file():
        raise BrokenRun("no metrics.csv")
    history = read_metrics(log_path)
    if len(history) != summary["steps"]:
        raise BrokenRun(f"truncated metrics.csv ({len(history)} rows, summary.json says {summary['steps']} steps)")
    return summary, history


def unknowns(history: pd.DataFrame) -> list[str]:
    """The logged unknowns (λ; β, γ; ...): the metrics columns that are not step, phase, loss or time."""
    return [c for c in history.columns if c not in ("step", "phase", "loss", *TIMES) and not c.startswith("loss_")]


def error_key(summary: dict, name: str) -> str | None:
    """The summary's error of an unknown: absolute (name_error) or relative (name_rel_error)."""
    return next((k for k in (f"{name}_error", f"{name}_rel_error") if k in summary), None)


def record(run_dir: Path, summary: dict, history: pd.DataFrame) -> dict:
    row = {
        "run_dir": str(run_dir),
        **{k: summary.get(k) for k in IDENTITY},
        "device_name": summary.get("device_name"),
        "status": summary.get("status"),
    }
    for name in unknowns(history):
        row[name] = summary.get(name, history[name].iloc[-1] if len(history) else None)
        if key := error_key(summary, name):
            row[key] = summary[key]
    row |= {k: summary[k] for k in ("profile_max_error", "residual_max") if k in summary}  # profile runs
    network = {k: v for k, v in summary.items() if k.endswith(("error_network", "residual_max_network"))}
    network = {k: v for k, v in network.items() if "estimate" not in k}
    if summary.get("headline") == "network":  # a PINN study: the network's figures lead
        row = {k: row[k] for k in ("run_dir", *IDENTITY, "device_name", "status")} | network | row
    else:
        row |= network
    return row | {
        k: summary.get(k) for k in ("loss", "steps", "wall_time_s", "step_time_median_s", "deriv_time_median_s")
    }


def speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Autograd time over ntp time, per step and per derivative pass, for each pair of runs
    (several runs of one pair: their medians)."""
    times = ["step_time_median_s", "deriv_time_median_s"]
    both = frame[frame.backend.isin(["ntp", "autograd"])]
    medians = both.groupby([*PAIR, "backend"], dropna=False)[times].median().unstack("backend")
    if medians.empty or "ntp" not in medians.columns.levels[1] or "autograd" not in medians.columns.levels[1]:
        return pd.DataFrame()
    pairs = pd.DataFrame(
        {
            "step_speedup": medians[("step_time_median_s", "autograd")] / medians[("step_time_median_s", "ntp")],
            "deriv_speedup": medians[("deriv_time_median_s", "autograd")] / medians[("deriv_time_median_s", "ntp")],
        }
    ).dropna(how="all")
    return pairs.reset_index()


def plot_speedups(pairs: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, column, title in zip(axes, ("step_speedup", "deriv_speedup"), ("training step", "derivatives")):
        for (equation, sobolev, device), group in pairs.groupby(["equation", "sobolev", "device"], dropna=False):
            median = group.groupby("profile")[column].median()  # over seeds; each pair is a dot
            (line,) = ax.plot(median.index, median.to_numpy(), "-", label=f"{equation} m={sobolev} {device}")
            ax.plot(group.profile, group[column], "o", color=line.get_color())
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=f"ntp speed-up over autograd: {title}", xlabel=profile_axis(pairs.equation), yscale="log")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("autograd time / ntp time")
    _save(fig, path)


def problem_class(equation: str) -> type[Problem]:
    """The Problem subclass defined by the equation's module (Problem itself for a name no longer registered)."""
    if equation not in EQUATIONS:
        return Problem
    module = importlib.import_module(EQUATIONS[equation])
    defined = (c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Problem))
    return next((c for c in defined if c.__module__ == module.__name__), Problem)


def profile_axis(equations) -> str:
    """The axis label of plots over profile numbers: what each equation's Problem says they mean."""
    said = [axis for name in sorted(set(equations)) if (axis := problem_class(name).profile_axis)]
    return "; ".join(said) or "profile"


def plot_errors(runs: list[tuple[dict, pd.DataFrame]], path: Path) -> bool:
    """Each unknown's error (against the exact or true value in the summary) over wall time, per run."""
    import matplotlib.pyplot as plt

    panels = {}  # unknown -> [(label, seconds, errors)]
    for summary, history in runs:
        for name in unknowns(history):
            key, reference = error_key(summary, name), summary.get(f"{name}_exact", summary.get(f"{name}_true"))
            if key is None or reference is None:
                continue
            error = (history[name] - reference).abs()
            error = error / abs(reference) if key.endswith("_rel_error") else error
            panels.setdefault((name, key), []).append((_label(summary), history.wall_time_s, error))
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, ((name, key), curves) in zip(axes[0], panels.items()):
        for label, seconds, error in curves:
            (line,) = ax.semilogy(seconds, error + 1e-300, label=label)
            ax.plot(seconds.iloc[-1:], error.iloc[-1:] + 1e-300, "o", color=line.get_color())
        symbol, relative = GREEK.get(name, name), key.endswith("_rel_error")
        ax.set(
            title=f"{symbol}: {'relative ' if relative else ''}error against wall time",
            xlabel="wall time (s)",
            xscale="log",
            ylabel=f"|{symbol} - exact|" + (" / |exact|" if relative else ""),
        )
        ax.legend(fontsize=7) if len(curves) <= 20 else None
    _save(fig, path)
    return True


def plot_losses(runs: list[tuple[dict, pd.DataFrame]], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    styles = {"ntp": "-", "autograd": "--"}
    for summary, history in runs:
        ax.semilogy(history.step, history.loss, styles.get(summary["backend"], ":"), label=_label(summary))
    ax.set(title="training loss", xlabel="step", ylabel="loss")
    ax.legend(fontsize=7) if len(runs) <= 20 else None
    _save(fig, path)


def _label(summary: dict) -> str:
    profile = "" if summary.get("profile") is None else f" k={summary['profile']}"
    return f"{summary['equation']}{profile} {summary['backend']} m={summary.get('sobolev')} s={summary.get('seed')}"


def _note(line: str) -> None:
    print(line, file=sys.stderr)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cell(column: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column.endswith("_error") or column == "residual_max":
        return f"{value:.2e}"
    if column == "wall_time_s":
        return f"{value:.1f}"
    if column.endswith("median_s"):
        return f"{value * 1e3:.2f}"
    if isinstance(value, float):
        return f"{value:.13g}"
    return str(value)


def _heading(column: str) -> str:
    name = column.removesuffix("_rel_error").removesuffix("_error")
    symbol = GREEK.get(name, name)
    headings = {
        "wall_time_s": "wall s",
        "step_time_median_s": "step ms",
        "deriv_time_median_s": "deriv ms",
        "sobolev": "m",
        f"{name}_error": f"|{symbol} err|",
        f"{name}_rel_error": f"{symbol} rel err",
        "profile_max_error": "max |U - U_exact|",
        "residual_max": "max |residual|",
    }
    return headings.get(column, GREEK.get(column, column))


def _shown(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("run_dir", "device_name", "seed", "loss")]


def render(frame: pd.DataFrame) -> Table:
    columns = _shown(frame)
    table = Table(title=f"{len(frame)} runs", header_style="bold")
    for column in columns:
        table.add_column(_heading(column), justify="right" if pd.api.types.is_numeric_dtype(frame[column]) else "left")
    for _, row in frame.iterrows():
        table.add_row(*(_cell(c, row[c]) for c in columns))
    return table


def markdown(frame: pd.DataFrame) -> str:
    """The terminal table as Markdown, so a README shows exactly what the command printed."""

    def line(cells) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"

    columns = _shown(frame)
    align = ["---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---" for c in columns]
    return (
        line(map(_heading, columns))
        + "|"
        + "|".join(align)
        + "|\n"
        + "".join(line(_cell(c, row[c]) for c in columns) for _, row in frame.iterrows())
    )


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="blowup report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="run dirs, multirun folders or outputs/")
    parser.add_argument(
        "--out", type=Path, help="where report.csv and the plots go (default: the first PATH if a dir, else .)"
    )
    opts = parser.parse_args(args)
    run_dirs, missing = find_runs(opts.paths)
    for line in missing:
        _note(f"skipped {line}")
    runs, records = [], []
    for run_dir in run_dirs:
        try:
            summary, history = load_run(run_dir)
        except BrokenRun as why:
            _note(f"skipped {run_dir}: {why}")
            continue
        runs.append((summary, history))
        records.append(record(run_dir, summary, history))
    if not records:
        print(f"blowup: error: no readable run under {' '.join(map(str, opts.paths))}", file=sys.stderr)
        return 2

    frame = pd.DataFrame(records).sort_values(list(IDENTITY), na_position="last", kind="stable")
    Console(width=None if sys.stdout.isatty() else 200).print(render(frame))
    out = opts.out or (opts.paths[0] if opts.paths[0].is_dir() else Path.cwd())
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "report.csv", index=False)
    (out / "report.md").write_text(markdown(frame))
    written = ["report.csv", "report.md"]

    import matplotlib

    matplotlib.use("Agg")
    pairs = speedups(frame)
    if len(pairs):
        pairs.to_csv(out / "speedup.csv", index=False)
        plot_speedups(pairs, out / "speedup.png")
        written += ["speedup.csv", "speedup.png"]
    else:
        _note("no ntp/autograd pairs of runs: no speed-up plot")
    if plot_errors(runs, out / "error_vs_time.png"):
        written.append("error_vs_time.png")
    plot_losses(runs, out / "loss_curves.png")
    written.append("loss_curves.png")
    _note(f"wrote {', '.join(written)} to {out}")
    return 0
