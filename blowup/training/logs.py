"""What a run leaves behind: metrics.csv flushed row by row, summary.json, a rich console view."""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from blowup.errors import ConfigError

console = Console(stderr=True)
# versions recorded with every run: the ones whose changes can move a result
PACKAGES = ("blowup", "torch", "numpy", "scipy", "pandas", "hydra-core", "omegaconf", "matplotlib", "rich")


class MetricsLog:
    """Append-only CSV, one row per step, flushed as written so a killed run loses nothing."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = Path(path), columns
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=columns, extrasaction="ignore")
        if fresh:
            self.writer.writeheader()
            self.file.flush()

    def write(self, row: dict) -> None:
        self.writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
        self.file.flush()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def restore_metrics(history: Path, path: Path, columns: list[str], step: int) -> None:
    """Rewrite `path` as the complete rows of `history` (the same file, or the log of the run being
    resumed) with step < `step`. Rows after the checkpoint are about to be logged again, and a kill
    may have cut the last one short; without this the log would not be one row per step."""
    rows = []
    if step > 0 and Path(history).is_file():
        try:
            with open(history, newline="") as file:
                rows = [
                    row
                    for row in csv.DictReader(file)  # short rows get None values, long ones a None key
                    if None not in row and None not in row.values() and row.get("step", "").isdigit()
                    if int(row["step"]) < step
                ]
        except (csv.Error, UnicodeDecodeError) as err:
            raise ConfigError(
                f"{history} cannot be read ({err}): it is corrupt and was left as it is; move it away (the run "
                f"then resumes with an empty log) or start in a new run dir"
            ) from None
    tmp = Path(path).with_suffix(".tmp")
    with open(tmp, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    """Written whole or not at all: a kill mid-write leaves the previous file, never half of one."""
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def git_state() -> tuple[str | None, bool | None]:
    """(HEAD, whether tracked files differ from it) of the repository this package runs from."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if head.returncode:
            return None, None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return head.stdout.strip(), bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return None, None


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_name() -> str:
    """The CPU model (what CPU timings depend on); platform.processor() is often just the architecture."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def hydra_overrides() -> list[str] | None:
    """The command-line overrides of this Hydra job: `blowup train <these>` reproduces it."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None


def environment() -> dict:
    """Where and with what code a run ran (the composed config is in config.yaml beside it)."""
    commit, dirty = git_state()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "hostname": platform.node(),
        "overrides": hydra_overrides(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3e}  {task.fields[scalars]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def estimate_line(expected: dict) -> str:
    """The probe's verdict before training: seconds per step of each phase, and the whole budget's duration."""
    steps = "  ".join(f"{phase} {seconds:.3g} s/step" for phase, seconds in expected["step_time_s"].items())
    total = duration(expected["time_s"])
    return f"expected: {steps}; at most {total} for the step budget (early stopping ends most runs sooner)"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.3g} min" if seconds < 7200 else f"{seconds / 3600:.3g} h"


def summary_table(summary: dict) -> Table:
    table = Table(title="run summary", show_header=False)
    for key, value in summary.items():
        if key == "meta":
            continue
        if isinstance(value, float) and math.isfinite(value) and value != 0 and not 1e-3 <= abs(value) < 1e6:
            value = f"{value:.6e}"
        table.add_row(key, str(value))
    return table
